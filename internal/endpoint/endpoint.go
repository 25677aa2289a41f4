// Package endpoint assembles /query: the GraphQL handler (package graph)
// with what decides who may ask and how much. From the outside in: CORS,
// API keys (a federation router that carries its secret passes without
// one), then the handler with its persisted operations (APQ and the
// safelist), its operation limits and in-flight bound, and the client rate
// limit.
//
// It is wiring: it knows the settings and the packages it puts together,
// and does nothing of its own.
package endpoint

import (
	"context"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"time"

	"github.com/99designs/gqlgen/graphql"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/answers"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/documents"
	"github.com/compshare/imagegraph/internal/fleet"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/live"
	"github.com/compshare/imagegraph/internal/persisted"
	"github.com/compshare/imagegraph/internal/settings"
	"github.com/compshare/imagegraph/internal/telemetry"
	"github.com/compshare/imagegraph/upstream"
)

// Parts are what /query is built from besides the settings.
type Parts struct {
	// Upstream is the upstream as the loaders see it (the response cache
	// and the call meter around the client).
	Upstream upstream.Service
	// Shared is the fleet's shared state; nil for a replica alone.
	Shared *fleet.Redis
	// Telemetry records every operation.
	Telemetry *telemetry.Telemetry
	// Log receives the server's log lines.
	Log *slog.Logger
}

// apqTTL is how long the fleet keeps an APQ document after its last
// registration (a frontend registers it again on a miss, at no cost).
const apqTTL = 24 * time.Hour

// federationClient is the client name of a request that carries the
// federation secret.
const federationClient = "federation-router"

// Endpoint is /query, and the hub of its subscriptions.
type Endpoint struct {
	http.Handler
	// Live serves the subscriptions: drain it at shutdown.
	Live *live.Hub
}

// New returns /query. Its errors are a manifest or an API keys file that
// cannot be read.
func New(cfg settings.Settings, p Parts) (*Endpoint, error) {
	var keys *access.Keys
	if cfg.APIKeysFile != "" {
		var err error
		if keys, err = access.LoadKeys(cfg.APIKeysFile); err != nil {
			return nil, fmt.Errorf("API_KEYS_FILE: %w", err)
		}
		p.Log.Info("API keys required on /query", "keys", keys.Len())
	}
	secret := []byte(cfg.FederationSecret)
	fromRouter := func(h http.Header) bool { return graph.CarriesFederationSecret(h, secret) }
	ops := &persisted.Extension{
		Store:   p.Shared.APQStore(persisted.NewMemoryStore(cfg.APQMaxBytes), apqTTL),
		Only:    cfg.PersistedOperationsOnly,
		Trusted: graph.FromFederationRouter(cfg.FederationSecret),
	}
	if cfg.PersistedOperations != "" {
		var err error
		if ops.Manifest, err = persisted.LoadManifest(cfg.PersistedOperations, graph.Schema()); err != nil {
			return nil, fmt.Errorf("PERSISTED_OPERATIONS: %w", err)
		}
		p.Log.Info("persisted operations", "manifest", cfg.PersistedOperations, "operations", ops.Manifest.Len(), "only", cfg.PersistedOperationsOnly)
		// The safelist's operations are counted under their own names.
		p.Telemetry.Metrics().KnowOperations(ops.Manifest.Names())
	}
	// The polls' share of the account's quota, the fleet's when it has
	// Redis.
	polls := p.Shared.PollQuota(cfg.QPS*cfg.LivePollShare, int(math.Ceil(float64(cfg.Burst)*cfg.LivePollShare)))
	inflight := limits.NewInflight(cfg.MaxInflightCost, cfg.InflightWait)
	p.Telemetry.Metrics().WatchInflight(inflight)
	docs := documents.New(documents.Options{MaxBytes: cfg.DocumentCacheMaxBytes, MaxTokens: cfg.MaxTokens})
	hc := graph.HandlerConfig{
		Service:          p.Upstream,
		Log:              p.Log,
		MaxPageSize:      cfg.MaxPageSize,
		Introspection:    cfg.Introspection,
		FederationSecret: cfg.FederationSecret,
		FederatedTracing: cfg.FederatedTracing,
		ParserTokenLimit: cfg.MaxTokens,
		QueryCache:       docs,
		Limits:           cfg.Limits,
		OperationTimeout: cfg.OperationTimeout,
		Inflight:         inflight,
		// Telemetry first, so that it sees each answer as the others
		// leave it.
		Extensions: []graphql.HandlerExtension{p.Telemetry.Extension(), ops},
		// Answers need a key when keys are on: only private caches then.
		HTTPCaching: graph.HTTPCaching{MaxAge: cfg.Cache.TTL, Private: cfg.APIKeysFile != ""},
	}
	if cfg.ClientRateLimit > 0 {
		burst := cfg.RateLimitBurst()
		limiter := p.Shared.ClientLimiter(cfg.ClientRateLimit, burst, access.NewLocalLimiter(cfg.ClientRateLimit, burst))
		hc.Admit = (&access.RateLimit{Limiter: limiter, Burst: burst, Log: p.Log}).Admit
	}
	if cfg.AnswerCache {
		hc.Answers = answers.New(answers.Options{
			MaxBytes:  cfg.AnswerCacheMaxBytes,
			Documents: docs,
			Judge:     hc.HTTPCaching.Judge,
			Resolve:   ops.Manifest.Resolve,
			Variant:   graph.RouterVariant(cfg.FederationSecret),
			Bypass:    graph.WantsTrace,
			Admit:     hc.Admit,
			Private:   hc.HTTPCaching.Private,
			Answered:  p.Telemetry.Answered,
			Log:       p.Log,
		})
		p.Telemetry.Metrics().WatchAnswers(hc.Answers)
	}
	hc.Live = &live.Options{
		Interval: cfg.LivePollInterval,
		PollContext: func(ctx context.Context, maxAge time.Duration) context.Context {
			return upstream.WithCallLimiter(cache.WithMaxAge(ctx, maxAge), polls)
		},
		Key: func(oc *graphql.OperationContext) (string, bool) {
			variant := ""
			if fromRouter(oc.Headers) {
				variant = "router"
			}
			return answers.OperationKey(docs, oc.RawQuery, oc.OperationName, oc.Variables, variant)
		},
		Client:           access.ClientKey,
		MaxPerClient:     cfg.MaxSubscriptionsPerClient,
		MaxSubscriptions: cfg.MaxSubscriptions,
		Observer:         p.Telemetry.Metrics().LiveObserver(),
		Log:              p.Log,
	}
	hc.LiveTransports = live.TransportOptions{
		KeepAlive:         cfg.LiveKeepAlive,
		InitTimeout:       cfg.LiveInitTimeout,
		WriteTimeout:      cfg.LiveWriteTimeout,
		Origins:           cfg.CORSAllowedOrigins,
		MaxConnsPerClient: cfg.MaxSubscriptionsPerClient,
	}
	if keys != nil {
		hc.LiveTransports.Authorize = func(ctx context.Context, h http.Header, payload map[string]any) (context.Context, error) {
			if fromRouter(h) {
				if c := access.ClientFrom(ctx); c != nil {
					c.Name = federationClient
				}
				return ctx, nil
			}
			return keys.Authorize(ctx, h, payload)
		}
	}
	gh := graph.NewHandler(hc)
	p.Telemetry.Metrics().WatchLive(gh.Live())
	var h http.Handler = gh
	if keys != nil {
		h = access.Exempt(func(r *http.Request) bool { return fromRouter(r.Header) }, federationClient, h, access.Authenticate(keys, h))
	}
	return &Endpoint{Handler: access.CORS(cfg.CORSAllowedOrigins)(h), Live: gh.Live()}, nil
}
