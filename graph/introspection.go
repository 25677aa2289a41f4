package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/vektah/gqlparser/v2/gqlerror"
)

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
