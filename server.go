// Command imagegraph serves a GraphQL API over CompShare's community image
// catalogue (the DescribeCommunityImages action). With no credentials it
// serves a built-in sandbox dataset through the real client.
//
// This file wires the parts together; each is a package of its own (see
// docs/architecture.md). main only calls run, so that tests start the real
// server the same way.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strconv"
	"syscall"

	"github.com/compshare/imagegraph/graph"
	"github.com/compshare/imagegraph/internal/access"
	"github.com/compshare/imagegraph/internal/cache"
	"github.com/compshare/imagegraph/internal/endpoint"
	"github.com/compshare/imagegraph/internal/fleet"
	"github.com/compshare/imagegraph/internal/httpserver"
	"github.com/compshare/imagegraph/internal/limits"
	"github.com/compshare/imagegraph/internal/settings"
	"github.com/compshare/imagegraph/internal/telemetry"
	"github.com/compshare/imagegraph/playground"
	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.LookupEnv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "imagegraph:", err)
		os.Exit(1)
	}
}

// Addrs are where a running server listens: the API, and /metrics ("" when
// off).
type Addrs struct{ API, Metrics string }

// run serves until ctx is done, then drains and shuts down. listening, when
// given, is told where the server listens once it does (tests use it).
func run(ctx context.Context, args []string, lookupEnv func(string) (string, bool), stdout, stderr io.Writer, listening ...func(Addrs)) error {
	cfg, err := settings.Load(args, lookupEnv, stderr)
	if err != nil || cfg.PrintSchema {
		if err == nil {
			_, err = io.WriteString(stdout, graph.SubgraphSDL())
		}
		return err
	}
	log := slog.New(httpserver.LogHandler(telemetry.LogHandler(telemetry.NewLogHandler(stdout, cfg.LogFormat.Text(stdout), cfg.LogLevel))))
	tracing, err := telemetry.TracingFromEnv(func(k string) string { v, _ := lookupEnv(k); return v }, telemetry.Version())
	if err != nil {
		return err
	}
	defer tracing.Close(log)
	var metrics *telemetry.Metrics
	if cfg.MetricsAddr != "" {
		metrics = telemetry.NewMetrics(telemetry.DefaultMaxOperationNames)
	}
	tel := telemetry.New(telemetry.Options{Metrics: metrics, Tracing: tracing, Log: log, RequestAttrs: access.LogAttrs})

	// The upstream: CompShare, or the sandbox on a loopback port.
	baseURL, pub, priv := cfg.BaseURL, cfg.PublicKey, cfg.PrivateKey
	var sb *sandbox.Local
	if cfg.Sandbox() {
		if sb, err = sandbox.Listen(sandbox.WithLatency(cfg.SandboxLatency)); err != nil {
			return err
		}
		defer sb.Close()
		sb.StartTicking(ctx, cfg.SandboxTick)
		baseURL, pub, priv = sb.URL, sb.PublicKey, sb.PrivateKey
	}
	var shared *fleet.Redis // the fleet's shared state, when REDIS_URL is set
	if cfg.RedisURL != "" {
		if shared, err = fleet.Connect(cfg.RedisURL, log); err != nil {
			return err
		}
		defer shared.Close()
	}
	client, err := upstream.NewClient(upstream.WithBaseURL(baseURL), upstream.WithRegion(cfg.Region), upstream.WithProjectID(cfg.ProjectID),
		upstream.WithCredentials(pub, priv), upstream.WithTimeout(cfg.Timeout), upstream.WithRetryPolicy(upstream.RetryPolicy{MaxRetries: cfg.Retries}),
		upstream.WithMaxInFlight(cfg.MaxInflight), upstream.WithRateLimit(cfg.QPS, cfg.Burst), shared.UpstreamQuota(cfg.QPS, cfg.Burst),
		upstream.WithCircuitBreaker(cfg.BreakerFailures, cfg.BreakerCooldown), upstream.WithLogger(log), upstream.WithObserver(tel.UpstreamObserver(baseURL)))
	if err != nil {
		return fmt.Errorf("upstream client: %w", err)
	}
	metrics.WatchClient(client)
	metrics.WatchFleet(shared)

	// The decorators of the upstream, outermost first: the response cache,
	// then the count of each operation's calls (below the cache, so that
	// hits cost nothing), then the client.
	svc := limits.Meter(client)
	if cfg.Cache.TTL > 0 {
		opts := cfg.Cache
		opts.Log, opts.Tier = log, shared.CacheTier()
		c := cache.New(svc, opts)
		defer c.Close()
		metrics.WatchCache(c)
		svc = c
	}
	query, err := endpoint.New(cfg, endpoint.Parts{Upstream: svc, Shared: shared, Telemetry: tel, Log: log})
	if err != nil {
		return err
	}
	ready := httpserver.NewReadiness(client)
	routes := httpserver.Routes{Query: query, Ready: ready, Health: map[string]any{"mode": cfg.Mode(), "sandbox": cfg.Sandbox()}}
	if cfg.Playground {
		routes.Playground = playground.Handler("/query")
	}
	if sb != nil {
		routes.Sandbox = sb.Admin()
	}
	srv := httpserver.New(httpserver.Handler(routes, httpserver.Middleware{Trusted: cfg.TrustedProxies,
		MaxBodyBytes: cfg.MaxBodyBytes, Telemetry: tel, Log: log}), cfg.HTTP, log)

	ln, err := httpserver.Listen(net.JoinHostPort("", strconv.Itoa(cfg.Port)), cfg.HTTP)
	if err != nil {
		return err
	}
	metrics.WatchConnections(ln)
	addrs := Addrs{API: ln.Addr().String()}
	if cfg.MetricsAddr != "" {
		var stopMetrics func()
		if addrs.Metrics, stopMetrics, err = httpserver.ServeMetrics(cfg.MetricsAddr, metrics.Handler(), log); err != nil {
			ln.Close()
			return err
		}
		defer stopMetrics()
	}
	httpserver.Announce(log, httpserver.Announcement{API: addrs.API, Metrics: addrs.Metrics, Mode: cfg.Mode(), Playground: cfg.Playground, Tracing: tracing.String()})
	if cfg.Sandbox() {
		log.Warn("no CompShare credentials: serving the built-in sandbox dataset, not the real catalogue")
	}
	log.Debug("settings", "settings", cfg)
	for _, f := range listening {
		f(addrs)
	}
	return httpserver.Serve(ctx, srv, ln, ready, cfg.ShutdownDrain, cfg.ShutdownTimeout, query.Live.Drain, log)
}
