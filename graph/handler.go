package graph

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"
	"github.com/99designs/gqlgen/graphql/handler"
	"github.com/99designs/gqlgen/graphql/handler/extension"
	"github.com/99designs/gqlgen/graphql/handler/lru"
	"github.com/99designs/gqlgen/graphql/handler/transport"
	"github.com/vektah/gqlparser/v2/ast"

	"github.com/compshare/imagegraph/graph/model"
)

// HandlerConfig configures the GraphQL endpoint.
type HandlerConfig struct {
	// Service is the upstream the loaders call.
	Service Service
	// Log receives internal errors and mapping warnings.
	Log *slog.Logger
	// MaxPageSize bounds first and last (default 500).
	MaxPageSize int
	// Introspection turns schema introspection on.
	Introspection bool
	// FederationSecret, when set, lets a request carrying it in the
	// X-Federation-Secret header read `_service` (and introspect) even
	// with Introspection off: the way a federation router composes.
	FederationSecret string
	// DeduplicateOperations makes identical concurrent requests share one
	// execution (see dedupeOperations).
	DeduplicateOperations bool
	// BatchWait is the loaders' batch window (default DefaultBatchWait).
	BatchWait time.Duration
	// QueryCacheSize bounds the parsed-query cache (default 1000 documents).
	QueryCacheSize int
	// Extensions are added after the built-in ones: the place for query cost
	// limits, tracing or metrics. One that intercepts fields
	// (graphql.FieldInterceptor) turns off the inline reading of plain
	// fields, so that it sees every field.
	Extensions []graphql.HandlerExtension
}

// DefaultMaxPageSize is the bound on first and last when none is configured.
const DefaultMaxPageSize = model.DefaultMaxPageSize

// NewHandler returns the GraphQL endpoint: gqlgen with explicit transports
// (GET, POST, OPTIONS), a bounded query cache, the error presenter, panic
// recovery, fresh loaders for every request, and the status codes the
// GraphQL-over-HTTP spec asks for.
func NewHandler(cfg HandlerConfig) http.Handler {
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.MaxPageSize <= 0 {
		cfg.MaxPageSize = DefaultMaxPageSize
	}
	if cfg.QueryCacheSize <= 0 {
		cfg.QueryCacheSize = 1000
	}
	resolver := &Resolver{MaxPageSize: cfg.MaxPageSize, PlainFieldsInline: true}
	srv := handler.New(NewExecutableSchema(Config{Resolvers: resolver}))
	srv.AddTransport(transport.Options{})
	srv.AddTransport(transport.GET{})
	srv.AddTransport(postTransport{})
	srv.SetQueryCache(lru.New[*ast.QueryDocument](cfg.QueryCacheSize))
	if cfg.Introspection {
		srv.Use(extension.Introspection{})
	} else if cfg.FederationSecret != "" {
		srv.Use(routerIntrospection{secret: []byte(cfg.FederationSecret)})
	}
	// A field interceptor added here (AroundFields, or an extension) must
	// also clear resolver.PlainFieldsInline, or it will miss plain fields.
	srv.AroundRootFields(introspectionGate)
	for _, ext := range cfg.Extensions {
		srv.Use(ext)
		if _, ok := ext.(graphql.FieldInterceptor); ok {
			// It must see every field: no field is read inline.
			resolver.PlainFieldsInline = false
		}
	}
	srv.SetErrorPresenter(ErrorPresenter(cfg.Log))
	srv.SetRecoverFunc(RecoverFunc)
	h := overHTTP(Middleware(cfg.Service, LoaderOptions{Wait: cfg.BatchWait, Log: cfg.Log, MaxPageSize: cfg.MaxPageSize}, srv))
	if cfg.DeduplicateOperations {
		h = dedupeOperations(cfg.Log, h)
	}
	return h
}
