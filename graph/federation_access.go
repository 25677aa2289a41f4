package graph

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

// FederationSecretHeader is the header a federation router sends, with the
// configured secret, to read `_service { sdl }` (and introspect) while
// introspection is off for the public.
const FederationSecretHeader = "X-Federation-Secret"

// routerIntrospection turns introspection on for one operation when it
// carries the configured router secret. gqlgen serves `_service` only where
// introspection is on, so this is what keeps composition working when the
// public has introspection off.
type routerIntrospection struct{ secret []byte }

var _ interface {
	graphql.HandlerExtension
	graphql.OperationContextMutator
} = routerIntrospection{}

func (routerIntrospection) ExtensionName() string { return "RouterIntrospection" }

func (routerIntrospection) Validate(graphql.ExecutableSchema) error { return nil }

func (e routerIntrospection) MutateOperationContext(_ context.Context, oc *graphql.OperationContext) *gqlerror.Error {
	if CarriesFederationSecret(oc.Headers, e.secret) {
		oc.DisableIntrospection = false
	}
	return nil
}

// CarriesFederationSecret reports whether h's X-Federation-Secret is
// secret, compared in constant time; with no secret, nothing carries it.
func CarriesFederationSecret(h http.Header, secret []byte) bool {
	return len(secret) > 0 && subtle.ConstantTimeCompare([]byte(h.Get(FederationSecretHeader)), secret) == 1
}

// introspectionGate answers the introspection root fields (__schema,
// __type, and federation's _service) with a FORBIDDEN error of its own while
// introspection is off for the operation, instead of gqlgen's untyped error
// (which the presenter could only call internal). It wraps root fields only,
// so it costs nothing per nested field.
func introspectionGate(ctx context.Context, next graphql.RootResolver) graphql.Marshaler {
	rf := graphql.GetRootFieldContext(ctx)
	if rf == nil || !graphql.GetOperationContext(ctx).DisableIntrospection {
		return next(ctx)
	}
	var msg string
	switch rf.Field.Name {
	case "_service":
		msg = "_service is off while introspection is off: a federation router sends the " + FederationSecretHeader + " header"
	case "__schema", "__type":
		msg = "introspection is off on this server"
	default:
		return next(ctx)
	}
	name := rf.Field.Alias
	if name == "" {
		name = rf.Field.Name
	}
	graphql.AddError(graphql.WithPathContext(ctx, graphql.NewPathWithField(name)), &ForbiddenError{Message: msg})
	return graphql.Null
}

// SubgraphSDL returns the subgraph schema a federation router composes:
// exactly what `_service { sdl }` answers, for registries and gateways that
// compose from files.
func SubgraphSDL() string {
	var parts []string
	for _, src := range sources {
		if !src.BuiltIn {
			parts = append(parts, src.Input)
		}
	}
	return strings.Join(parts, "\n")
}

// FromFederationRouter returns a check of whether an operation carries
// secret in its X-Federation-Secret header (compared in constant time): a
// federation router's, whose query plans are in no safelist. With no secret
// nothing passes.
func FromFederationRouter(secret string) func(context.Context, *graphql.OperationContext) bool {
	want := []byte(secret)
	return func(_ context.Context, oc *graphql.OperationContext) bool {
		return oc != nil && CarriesFederationSecret(oc.Headers, want)
	}
}

// Schema returns the API's schema (what a manifest of persisted operations
// is validated against).
func Schema() *ast.Schema {
	return NewExecutableSchema(Config{Resolvers: &Resolver{}}).Schema()
}

// FederatedTraceHeader is the header with which a federation router asks
// for Apollo's federated trace (value "ftv1").
const FederatedTraceHeader = "Apollo-Federation-Include-Trace"

// federatedTracing sends a request that asks for a federated trace (and,
// when a secret is set, carries it) to traced, an executor with gqlgen's
// ftv1 tracer, and every other request to plain. The tracer intercepts
// every field, which turns off the inline reading of plain fields: on an
// executor of its own, only the requests that ask pay for that.
type federatedTracing struct {
	secret        []byte
	traced, plain http.Handler
}

func (f federatedTracing) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// With no secret set, any router may ask.
	if r.Header.Get(FederatedTraceHeader) == "ftv1" && (len(f.secret) == 0 || CarriesFederationSecret(r.Header, f.secret)) {
		f.traced.ServeHTTP(w, r)
		return
	}
	f.plain.ServeHTTP(w, r)
}
