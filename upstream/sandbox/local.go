package sandbox

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/http"
	"time"
)

// Local is a sandbox served on a loopback port, with a key pair drawn at
// random, for a server in sandbox mode: its calls go through the real
// client, signer and decoder.
type Local struct {
	*Server
	// URL is where it listens; PublicKey and PrivateKey are its key pair.
	URL, PublicKey, PrivateKey string

	srv *http.Server
}

// Listen starts a Local with opts (WithKeys is added, drawn at random).
func Listen(opts ...Option) (*Local, error) {
	pub, priv := "sandbox-"+randomHex(8), randomHex(20)
	sb, err := New(append(opts, WithKeys(pub, priv))...)
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("sandbox: %w", err)
	}
	l := &Local{Server: sb, URL: "http://" + ln.Addr().String(), PublicKey: pub, PrivateKey: priv,
		srv: &http.Server{Handler: sb, ReadHeaderTimeout: 5 * time.Second}}
	go func() { _ = l.srv.Serve(ln) }()
	return l, nil
}

// Close stops serving.
func (l *Local) Close() error { return l.srv.Close() }

// Admin serves the sandbox's own endpoints under /sandbox/, for tests and
// demos of a server in sandbox mode:
//
//   - GET /sandbox/stats answers the call counters as
//     {"calls":N,"maxInFlight":N,"inFlight":N}; POST /sandbox/stats/reset
//     resets them (ResetStats) and answers 204.
//   - POST /sandbox/versions/{imageId} changes one version (UpdateVersion).
//     The body is a JSON object of any of "status" (Available, Reviewing
//     or Offline, the upstream's version statuses, in any case), "price"
//     (a number, not negative), "name" (not blank) and "versionDesc";
//     absent or null fields are left alone. It answers 200 with the
//     version as the upstream spells it in a CompShareImage, GroupId
//     added: {"CompShareImageId":…,"Status":"Available",…,"GroupId":…}.
//   - POST /sandbox/groups/{groupId} changes one group's counts
//     (UpdateGroup). The body is a JSON object of "favoritesCount" and/or
//     "imageUseTime" (integers, not negative). It answers 200 with the
//     group as the upstream spells it in a CompshareImageGroup, every
//     version included.
//
// A change endpoint answers 404 for an unknown id, 400 for a body that is
// not such an object (an unknown field, a wrong type, an invalid value, no
// field at all) and 413 for one over MaxChangeBodyBytes, each with
// {"error":"…"} saying what is wrong. Every Describe, and so every upstream
// call, that starts after the answer sees the change. For example:
//
//	curl -X POST localhost:8080/sandbox/versions/compshareImage-reviewing001 -d '{"status":"Available","price":1.5}'
//	curl -X POST localhost:8080/sandbox/groups/group-unsorted -d '{"favoritesCount":1000}'
func (s *Server) Admin() http.Handler {
	mux := http.NewServeMux()
	s.changeRoutes(mux, "/sandbox")
	mux.HandleFunc("GET /sandbox/stats", func(w http.ResponseWriter, _ *http.Request) {
		st := s.Stats()
		w.Header().Set("Cache-Control", "no-store")
		writeJSON(w, map[string]any{"calls": st.Calls, "maxInFlight": st.MaxInFlight, "inFlight": st.InFlight})
	})
	mux.HandleFunc("POST /sandbox/stats/reset", func(w http.ResponseWriter, _ *http.Request) {
		s.ResetStats()
		w.WriteHeader(http.StatusNoContent)
	})
	return mux
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
