package graph

import (
	"cmp"
	"context"
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/apollofederatedtracingv1"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/graph/model"
	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/documents"
	"github.com/compshare/imagegraph/internal/gqlhttp"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/live"
	"github.com/compshare/imagegraph/upstream"
)

// HandlerConfig configures the GraphQL endpoint.
type HandlerConfig struct {
	// Service is the upstream the loaders call.
	Service upstream.Service
	// Log receives internal errors and mapping warnings.
	Log *slog.Logger
	// MaxPageSize bounds first and last (default 500).
	MaxPageSize int
	// Introspection turns schema introspection on. With it off, validation
	// errors no longer suggest field, argument, type or value names.
	Introspection bool
	// FederationSecret, when set, lets a request carrying it in the
	// X-Federation-Secret header read `_service` (and introspect) even
	// with Introspection off: the way a federation router composes.
	FederationSecret string
	// Live, when set, serves subscriptions as live queries over WebSocket
	// and Server-Sent Events (see package live); LiveTransports configure
	// the streams.
	Live           *live.Options
	LiveTransports live.TransportOptions
	// Answers, when set, answers repeats from the cache of whole answers
	// in front of execution, and makes identical requests that miss at
	// the same time share one execution (see package answers; build it
	// with the handler's QueryCache, HTTPCaching.Judge, and Variant and
	// Bypass below).
	Answers *answers.Cache
	// FederatedTracing answers a request that asks for it with header
	// Apollo-Federation-Include-Trace: ftv1 (a federation router) with
	// Apollo's federated trace of its fields in extensions.ftv1. Only those
	// requests pay for it: they run on an executor of their own that sees
	// every field, while the others keep reading plain fields inline. With
	// FederationSecret set, only a request that carries it gets a trace.
	FederatedTracing bool
	// ftv1 is the federated tracer (a test's own; nil: gqlgen's).
	ftv1 graphql.HandlerExtension
	// live is the hub NewHandler built of Live.
	live *live.Hub
	// QueryCache holds parsed and validated documents, for every executor
	// of the handler; the default is a documents.Cache of
	// DocumentCacheBytes.
	QueryCache graphql.Cache[*ast.QueryDocument]
	// DocumentCacheBytes bounds the default query cache (0:
	// documents.DefaultMaxBytes).
	DocumentCacheBytes int64
	// ParserTokenLimit stops the parser at this many tokens (0: no limit);
	// a longer document is a GRAPHQL_PARSE_FAILED request error.
	ParserTokenLimit int
	// Limits bound every operation (see package limits; a zero field is no
	// bound), and every answer with data says in extensions.cost what its
	// operation cost. The bound on upstream calls holds at run time only
	// when Service is wrapped in limits.Meter (below any cache, so that
	// only real calls count).
	Limits limits.Limits
	// OperationTimeout is the deadline of one operation (0: none).
	OperationTimeout time.Duration
	// Admit, when set, is charged each operation's estimated cost (a
	// client rate limit); its error refuses the operation.
	Admit func(ctx context.Context, cost int) error
	// Inflight, when set, bounds the estimated cost of the operations
	// running at once; an operation without room in time is refused with
	// SERVER_OVERLOADED (503).
	Inflight *limits.Inflight
	// HTTPCaching says how HTTP caches may keep answers (the zero value:
	// every answer says no-store).
	HTTPCaching HTTPCaching
	// Extensions are added after the built-in ones, in order: the place
	// for persisted operations, operation limits, tracing or metrics. One
	// that intercepts fields (graphql.FieldInterceptor) turns off the
	// inline reading of plain fields, so that it sees every field.
	Extensions []graphql.HandlerExtension
}

// DefaultMaxPageSize is the bound on first and last when none is configured.
const DefaultMaxPageSize = model.DefaultMaxPageSize

// NewHandler returns the GraphQL endpoint: gqlgen with explicit transports
// (GET, POST, OPTIONS), a bounded query cache, the error presenter, panic
// recovery, fresh loaders for every request, and the status codes the
// GraphQL-over-HTTP spec asks for.
func NewHandler(cfg HandlerConfig) *Handler {
	if cfg.QueryCache == nil {
		// One cache for both executors: they share the schema, so a
		// document validated for one is valid for the other.
		cfg.QueryCache = documents.New(documents.Options{MaxBytes: cfg.DocumentCacheBytes, MaxTokens: cfg.ParserTokenLimit})
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	loader := LoaderOptions{Log: cfg.Log, MaxPageSize: cmp.Or(cfg.MaxPageSize, DefaultMaxPageSize)}
	var hub *live.Hub
	if cfg.Live != nil {
		opts := *cfg.Live
		opts.Execute = newPoller(cfg, NewExecutableSchema(Config{Resolvers: &Resolver{MaxPageSize: loader.MaxPageSize}}), loader).Execute
		hub = live.New(opts)
		cfg.live = hub
	}
	srv, _ := newServer(cfg)
	var exec http.Handler = srv
	if cfg.FederatedTracing {
		tracer := cfg.ftv1
		if tracer == nil {
			// Errors are masked in the trace: a router's trace store is
			// not where their messages belong.
			tracer = &apollofederatedtracingv1.Tracer{}
		}
		traced := cfg
		traced.Extensions = append(append([]graphql.HandlerExtension{}, cfg.Extensions...), tracer)
		tracedSrv, _ := newServer(traced)
		exec = federatedTracing{secret: []byte(cfg.FederationSecret), traced: tracedSrv, plain: srv}
	}
	h := Middleware(cfg.Service, loader, exec)
	if cfg.Answers != nil {
		h = cfg.Answers.Handler(h)
	}
	return &Handler{Handler: h, live: hub}
}

// Handler is the GraphQL endpoint.
type Handler struct {
	http.Handler
	live *live.Hub
}

// Live returns the hub that serves its subscriptions, or nil.
func (h *Handler) Live() *live.Hub { return h.live }

// newServer builds gqlgen's server for cfg.
func newServer(cfg HandlerConfig) (*handler.Server, *Resolver) {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	resolver := &Resolver{MaxPageSize: cfg.MaxPageSize, PlainFieldsInline: true}
	es := NewExecutableSchema(Config{Resolvers: resolver})
	srv := handler.New(es)
	if cfg.live != nil {
		// First: SSE answers POSTs that accept text/event-stream, and
		// WebSocket answers upgrades.
		for _, t := range cfg.live.Transports(cfg.LiveTransports) {
			srv.AddTransport(t)
		}
		// Operations over a stream get loaders of their own, each.
		srv.Use(streamLoaders{svc: cfg.Service, opts: LoaderOptions{Log: cfg.Log, MaxPageSize: cfg.MaxPageSize}})
	}
	srv.AddTransport(transport.Options{})
	srv.AddTransport(gqlhttp.GET{Cache: cfg.HTTPCaching.policy})
	srv.AddTransport(gqlhttp.POST{Cache: cfg.HTTPCaching.policy})
	srv.AddTransport(gqlhttp.Unsupported{})
	srv.SetQueryCache(cfg.QueryCache)
	srv.SetParserTokenLimit(cfg.ParserTokenLimit)
	// Suggestions name fields and types: with introspection off they would
	// leak the schema it hides.
	srv.SetDisableSuggestion(!cfg.Introspection)
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	} else if cfg.FederationSecret != "" {
		srv.Use(routerIntrospection{secret: []byte(cfg.FederationSecret)})
	}
	// A field interceptor added here (AroundFields, or an extension) must
	// also clear resolver.PlainFieldsInline, or it will miss plain fields.
	srv.AroundRootFields(introspectionGate)
	srv.Use(newRepresentationCheck(es.Schema()))
	srv.Use(staleData{})
	for _, ext := range cfg.Extensions {
		srv.Use(ext)
		if _, ok := ext.(graphql.FieldInterceptor); ok {
			// It must see every field: no field is read inline.
			resolver.PlainFieldsInline = false
		}
	}
	// After the others: a document a persisted-operations extension
	// refuses is neither measured nor charged.
	srv.Use(&limits.Extension{
		Limits:     cfg.Limits,
		Calls:      CallEstimator{MaxPageSize: cfg.MaxPageSize},
		QueryCache: cfg.QueryCache,
		Tokens:     cfg.ParserTokenLimit,
		Admit:      cfg.Admit,
		Timeout:    cfg.OperationTimeout,
		Inflight:   cfg.Inflight,
	})
	if cfg.live != nil {
		// After the limits, which measure a subscription and charge it,
		// and give its in-flight room back once its first event is out.
		srv.Use(cfg.live)
	}
	srv.SetErrorPresenter(errorPresenter(cfg.Log, !cfg.Introspection))
	srv.SetRecoverFunc(RecoverFunc)
	return srv, resolver
}
