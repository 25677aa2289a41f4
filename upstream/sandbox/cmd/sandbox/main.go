// Command sandbox serves the sandbox upstream (package
// github.com/compshare/imagegraph/upstream/sandbox) as a process of its own:
// CompShare's DescribeCommunityImages wire protocol over the embedded
// dataset, for load tests and for pointing a facade at it with
// COMPSHARE_BASE_URL and the sandbox's key pair.
//
// Usage:
//
//	sandbox [-addr 127.0.0.1:8081] [-latency 20ms] [-tick 1m]
//	sandbox -print-request
//
// Routes: POST / (and any path under it, since a client posts to
// {base}/?Action=…) answers the wire protocol; GET /stats answers the call
// counters as {"calls":N,"maxInFlight":N,"inFlight":N}; POST /stats/reset
// resets them and answers 204. POST /versions/{imageId} and POST
// /groups/{groupId} change the data, as a server in sandbox mode's
// /sandbox/versions/{imageId} and /sandbox/groups/{groupId} do (see
// sandbox.Server.Admin for the bodies and answers):
//
//	curl -X POST localhost:8081/versions/compshareImage-reviewing001 -d '{"status":"Available"}'
//	curl -X POST localhost:8081/groups/group-unsorted -d '{"favoritesCount":1000}'
//
// The data is the embedded dataset, unchanged unless asked; -tick makes it
// change on its own, one sandbox.Server.Tick per interval (a version
// published, another sent back to review, a favourites count raised).
//
// POST /faults makes calls of the wire protocol fail, for chaos tests (make
// soak): a share of them, evenly spread, with {"kind": K, "rate": R}, where
// R is above 0 and at most 1 and K is "503" (HTTP 503), "429" (HTTP 429
// with Retry-After: 1), "timeout" (the call hangs until its client gives
// up) or "malformed" (HTTP 200 with truncated JSON); or every one of them,
// an outage, with {"outage": true} (503s, or {"outage": true, "kind": K}).
// Each POST replaces the faults before it and answers 204; DELETE /faults
// ends them (204). A body it cannot use gets 400 and {"error": "…"}.
//
//	curl -X POST localhost:8081/faults -d '{"kind":"503","rate":0.03}'
//	curl -X POST localhost:8081/faults -d '{"outage":true}'
//	curl -X DELETE localhost:8081/faults
//
// The sandbox accepts one key pair: SANDBOX_PUBLIC_KEY and
// SANDBOX_PRIVATE_KEY when both are set, otherwise sandbox.DefaultPublicKey
// and sandbox.DefaultPrivateKey (public test keys). -print-request prints
// the form body of the reference request (Offset=0, Limit=20, the client's
// default region) signed with that pair, and exits; the sandbox checks no
// timestamp, so the body can be replayed (e2e/load/upstream.lua does).
//
// It listens only on -addr (port 0 picks a free one), writes one line to
// stderr naming the address once it listens, and stops gracefully on SIGINT
// or SIGTERM.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/compshare/imagegraph/upstream"
	"github.com/compshare/imagegraph/upstream/sandbox"
)

const (
	defaultAddr = "127.0.0.1:8081"
	// shutdownTimeout is what in-flight calls get after a signal, on top of
	// the configured latency.
	shutdownTimeout = 5 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "sandbox:", err)
		os.Exit(1)
	}
}

// run is the whole command: it serves until ctx ends, or prints the
// reference request and returns.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sandbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", defaultAddr, "`host:port` to listen on (port 0 picks a free port)")
	latency := fs.Duration("latency", 0, "latency added to every call (Go duration)")
	tick := fs.Duration("tick", 0, "change the data on its own every `interval` (Go duration; 0, the default, never)")
	printRequest := fs.Bool("print-request", false, "print the signed form body of the reference request (Offset=0, Limit=20) and exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	if *tick < 0 {
		return fmt.Errorf("-tick must not be negative, got %s", *tick)
	}
	pub, priv, err := keys(getenv)
	if err != nil {
		return err
	}
	if *printRequest {
		body, err := referenceRequest(pub, priv)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, body)
		return err
	}

	sb, err := sandbox.New(sandbox.WithKeys(pub, priv), sandbox.WithLatency(*latency))
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{
		Handler:           newMux(sb),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      *latency + 30*time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	fmt.Fprintf(stderr, "sandbox: listening on http://%s (%s)\n", ln.Addr(), settingsLine(*latency, *tick))
	sb.StartTicking(ctx, *tick)

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), shutdownTimeout+*latency)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	return nil
}

// keys returns the key pair from the environment, or the sandbox's defaults
// when neither key is set.
func keys(getenv func(string) string) (publicKey, privateKey string, err error) {
	publicKey, privateKey = getenv("SANDBOX_PUBLIC_KEY"), getenv("SANDBOX_PRIVATE_KEY")
	switch {
	case publicKey == "" && privateKey == "":
		return sandbox.DefaultPublicKey, sandbox.DefaultPrivateKey, nil
	case publicKey == "" || privateKey == "":
		return "", "", errors.New("set both SANDBOX_PUBLIC_KEY and SANDBOX_PRIVATE_KEY, or neither for the default keys")
	}
	return publicKey, privateKey, nil
}

// referenceRequest returns the signed form body of the call the facade makes
// for the reference operation: the first page of 20 groups.
func referenceRequest(publicKey, privateKey string) (string, error) {
	req := &upstream.DescribeCommunityImagesRequest{Offset: upstream.Int(0), Limit: upstream.Int(20)}
	params, err := req.Params(upstream.DefaultRegion)
	if err != nil {
		return "", err
	}
	return upstream.SignedForm(params, publicKey, privateKey), nil
}

// stats is the JSON of GET /stats.
type stats struct {
	Calls       int64 `json:"calls"`
	MaxInFlight int64 `json:"maxInFlight"`
	InFlight    int64 `json:"inFlight"`
}

// settingsLine describes the latency and, when on, the tick interval.
func settingsLine(latency, tick time.Duration) string {
	if tick > 0 {
		return fmt.Sprintf("latency %s, tick %s", latency, tick)
	}
	return fmt.Sprintf("latency %s", latency)
}

// newMux routes the wire protocol, the counters, the changes and the
// faults to sb.
func newMux(sb *sandbox.Server) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("POST /", sb)
	changes := sb.ChangeHandler()
	mux.Handle("POST /versions/{imageId}", changes)
	mux.Handle("POST /groups/{groupId}", changes)
	faults := serveFaults(sb)
	mux.Handle("POST /faults", faults)
	mux.Handle("DELETE /faults", faults)
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, _ *http.Request) {
		st := sb.Stats()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(stats{Calls: st.Calls, MaxInFlight: st.MaxInFlight, InFlight: st.InFlight})
	})
	mux.HandleFunc("POST /stats/reset", func(w http.ResponseWriter, _ *http.Request) {
		sb.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}
