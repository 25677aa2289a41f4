package graph

import (
	"context"
	"crypto/subtle"
	"net/http"
	"strings"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/ast"
)

// FederationSecretHeader is the header a federation router sends, with the
// configured secret, to read `_service { sdl }` (and introspect) while
// introspection is off for the public.
const FederationSecretHeader = "X-Federation-Secret"

// CarriesFederationSecret reports whether h's X-Federation-Secret is
// secret, compared in constant time; with no secret, nothing carries it.
func CarriesFederationSecret(h http.Header, secret []byte) bool {
	return len(secret) > 0 && subtle.ConstantTimeCompare([]byte(h.Get(FederationSecretHeader)), secret) == 1
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

// RouterVariant returns the Variant of the cache of answers: a request
// carrying secret (a federation router) may introspect and run operations
// outside the safelist, so its answers are kept apart from everyone
// else's. With no secret every request is alike.
func RouterVariant(secret string) func(*http.Request) string {
	want := []byte(secret)
	return func(r *http.Request) string {
		if CarriesFederationSecret(r.Header, want) {
			return "router"
		}
		return ""
	}
}
