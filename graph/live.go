package graph

import (
	"context"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/executor"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/upstream"
)

// poller runs a subscription's operation as the query of the same fields:
// what the live queries' hub (internal/live) does every interval for each
// cohort. Subscription's fields mirror Query's (imageVersion, imageGroup,
// imageGroups with a subset of its arguments), so the operation runs
// through Query's resolvers, with fresh loaders each time.
type poller struct {
	exec   *executor.Executor
	svc    upstream.Service
	loader LoaderOptions
}

// newPoller returns the poller of cfg: an executor of its own (the
// subscriptions' transports hold the handler's), with the handler's error
// presenter and panic recovery, and the operation limits' upstream-call
// budget and deadline.
func newPoller(cfg HandlerConfig, es graphql.ExecutableSchema, loader LoaderOptions) *poller {
	exec := executor.New(es)
	exec.SetErrorPresenter(errorPresenter(cfg.Log, !cfg.Introspection))
	exec.SetRecoverFunc(RecoverFunc)
	exec.Use(staleData{})
	exec.Use(&limits.Extension{Limits: cfg.Limits, Timeout: cfg.OperationTimeout})
	return &poller{exec: exec, svc: cfg.Service, loader: loader}
}

// Execute runs oc's subscription operation as a query and returns its
// answer. ctx carries what the hub decided for the poll (data no older
// than its interval, the quota's share for polls).
func (p *poller) Execute(ctx context.Context, oc *graphql.OperationContext) *graphql.Response {
	op := *oc.Operation
	op.Operation = ast.Query
	q := &graphql.OperationContext{
		RawQuery: oc.RawQuery, Variables: oc.Variables, OperationName: oc.OperationName,
		Doc: oc.Doc, Extensions: oc.Extensions, Headers: oc.Headers,
		Operation:            &op,
		DisableIntrospection: oc.DisableIntrospection,
		// The subscription's field middleware: the handler's extensions
		// (the introspection gate among them) hold for its polls too.
		RecoverFunc:            oc.RecoverFunc,
		ResolverMiddleware:     oc.ResolverMiddleware,
		RootResolverMiddleware: oc.RootResolverMiddleware,
	}
	ctx = upstream.WithUsage(ctx, &upstream.Usage{})
	ctx = WithLoaders(ctx, NewLoaders(p.svc, p.loader))
	responses, ctx := p.exec.DispatchOperation(ctx, q)
	resp := responses(ctx)
	return resp
}

// errNoLiveHub is what a subscription gets from a handler built without
// HandlerConfig.Live: the hub answers subscriptions in place of their
// resolvers (as live queries, run through Query's), so these resolvers run
// only when there is none.
var errNoLiveHub = &ForbiddenError{Message: "subscriptions are off on this server"}
