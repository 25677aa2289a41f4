// Package sandbox is an in-process stand-in for CompShare's upstream endpoint.
// It speaks the same wire protocol as the real DescribeCommunityImages action
// (signed form POST in, HTTP 200 JSON with a RetCode out) over an embedded,
// deterministic dataset, so the project's real client, signer and decoder are
// exercised end to end in tests and in the server's no-credentials sandbox
// mode. Tests can also inject faults (latency, HTTP errors, RetCodes,
// malformed bodies, hangs) and read call statistics.
//
// The data can change while it is served, so that a poller (the server's
// live queries) sees events: UpdateVersion changes one version's status,
// price, name or release note, UpdateGroup one group's favourites or use
// count, and Tick makes one small scripted change (a version published,
// another sent back to review, a favourites count raised), which
// StartTicking repeats on an interval. Nothing changes unless asked: a new
// Server serves the embedded dataset exactly. Each change swaps in a new
// snapshot of the data at once, so every answer comes from one snapshot and
// every call that starts after a change returns sees it. Admin serves the
// changes over HTTP, as POST /sandbox/versions/{imageId} and POST
// /sandbox/groups/{groupId} with a JSON body, for instance against a server
// in sandbox mode:
//
//	curl -X POST localhost:8080/sandbox/versions/compshareImage-reviewing001 -d '{"status":"Available","price":1.5}'
//	curl -X POST localhost:8080/sandbox/groups/group-unsorted -d '{"favoritesCount":1000}'
//
// It knows nothing of GraphQL: it depends only on package upstream's wire
// types and signer.
package sandbox

//go:generate go run ./internal/gen -o data/images.json

import (
	"errors"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/compshare/imagegraph/upstream"
)

// DefaultPublicKey is the public key a Server accepts unless WithKeys says otherwise.
const DefaultPublicKey = "sandbox-public-key"

// DefaultPrivateKey is the private key paired with DefaultPublicKey.
const DefaultPrivateKey = "sandbox-private-key"

// Server is the sandbox upstream: an http.Handler for the wire protocol and,
// through Describe, the pure query logic behind it. It is safe for
// concurrent use.
type Server struct {
	publicKey  string
	privateKey string
	latency    time.Duration
	// data is the dataset served now. Readers load it once per request and
	// so see one consistent snapshot; writers hold dataMu, build a new
	// index from it and store that (copy on write).
	data atomic.Pointer[index]
	// now is the clock of the times a change sets (time.Now but in tests).
	now func() time.Time

	dataMu sync.Mutex // serialises changes to data, and guards ticks
	ticks  tickState

	calls       atomic.Int64
	inFlight    atomic.Int64
	maxInFlight atomic.Int64

	mu     sync.Mutex
	faults []queuedFault
}

// Option configures a Server in New.
type Option func(*Server) error

// WithKeys sets the one key pair the Server accepts. Both must be non-empty.
func WithKeys(publicKey, privateKey string) Option {
	return func(s *Server) error {
		if publicKey == "" || privateKey == "" {
			return errors.New("sandbox: WithKeys needs a non-empty public and private key")
		}
		s.publicKey, s.privateKey = publicKey, privateKey
		return nil
	}
}

// WithLatency adds d to every request the handler serves (not to Describe).
func WithLatency(d time.Duration) Option {
	return func(s *Server) error {
		if d < 0 {
			return errors.New("sandbox: WithLatency needs a non-negative duration")
		}
		s.latency = d
		return nil
	}
}

// WithGroups replaces the embedded dataset with a deep copy of groups, in
// that order, for tests that want a small, hand-made catalogue. Nil slices
// are served as empty arrays.
func WithGroups(groups []upstream.ImageGroup) Option {
	return func(s *Server) error {
		s.data.Store(newIndex(copyGroups(groups)))
		return nil
	}
}

// New returns a Server over the embedded dataset (parsed once per process and
// shared read-only between Servers: a change, by UpdateVersion, UpdateGroup
// or Tick, is seen by that Server alone), accepting DefaultPublicKey and
// DefaultPrivateKey unless an Option says otherwise.
func New(opts ...Option) (*Server, error) {
	s := &Server{publicKey: DefaultPublicKey, privateKey: DefaultPrivateKey, now: time.Now}
	for _, opt := range opts {
		if err := opt(s); err != nil {
			return nil, err
		}
	}
	if s.data.Load() == nil {
		idx, err := embedded()
		if err != nil {
			return nil, err
		}
		s.data.Store(idx)
	}
	return s, nil
}

// Groups returns a deep copy of the whole dataset, as it is now, in stored
// order.
func (s *Server) Groups() []upstream.ImageGroup {
	return copyGroups(s.data.Load().groups)
}

// Stats are the handler's counters since New or the last ResetStats.
type Stats struct {
	// Calls is the number of requests that reached the handler.
	Calls int64
	// MaxInFlight is the most requests handled at once.
	MaxInFlight int64
	// InFlight is the number of requests being handled now.
	InFlight int64
}

// Stats returns the current counters.
func (s *Server) Stats() Stats {
	return Stats{
		Calls:       s.calls.Load(),
		MaxInFlight: s.maxInFlight.Load(),
		InFlight:    s.inFlight.Load(),
	}
}

// ResetStats sets Calls to zero and MaxInFlight to the current InFlight.
func (s *Server) ResetStats() {
	s.calls.Store(0)
	s.maxInFlight.Store(s.inFlight.Load())
}

// begin counts a request in and returns the function that counts it out.
func (s *Server) begin() func() {
	s.calls.Add(1)
	n := s.inFlight.Add(1)
	for {
		m := s.maxInFlight.Load()
		if n <= m || s.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	return func() { s.inFlight.Add(-1) }
}

// Fault is a failure the handler imitates, injected with InjectFault. The
// fields combine in this order: Latency is waited first (then the request is
// served normally unless another field is set); Hang blocks until the
// client gives up; HTTPStatus answers with that status (and a Retry-After
// header when RetryAfter is set); Malformed answers HTTP 200 with a body
// that is not valid JSON; RetCode answers HTTP 200 with that RetCode and
// Message. Rate makes it apply to a share of the requests only.
type Fault struct {
	// Latency is waited before anything else.
	Latency time.Duration
	// HTTPStatus, when not 0, is the HTTP status of the answer.
	HTTPStatus int
	// RetryAfter is sent as the Retry-After header of an HTTPStatus answer.
	RetryAfter string
	// RetCode, when not 0, is the RetCode of an HTTP 200 JSON answer.
	RetCode int
	// Message is the Message of a RetCode answer or the body of an HTTPStatus one.
	Message string
	// Malformed answers HTTP 200 with a truncated JSON body.
	Malformed bool
	// Hang blocks until the request's context ends, then writes nothing.
	Hang bool
	// Times is the number of requests the fault applies to; 0 or less
	// means every request until ClearFaults.
	Times int
	// Rate, above 0 and below 1, is the share of requests the fault
	// applies to while it is the oldest queued, spread evenly: counting
	// from 1 the requests it sees, it applies to request n when ⌊n·Rate⌋
	// passes ⌊(n−1)·Rate⌋, so to exactly ⌊n·Rate⌋ of the first n (0.03:
	// requests 34, 67, 100, …). The others are served normally and do not
	// count against Times. 0, 1 or more (or a negative Rate) applies it to
	// every request.
	Rate float64
}

type queuedFault struct {
	f    Fault
	left int
	// seen counts the requests a fault with a Rate has seen.
	seen int
}

// InjectFault queues f. Faults apply first in, first out: the oldest queued
// fault applies to each request that reaches the handler (or, with a Rate,
// to its share of them) until its Times are used up, then the next one does. A fault with Times 0 applies until
// ClearFaults, so faults queued after it never apply.
func (s *Server) InjectFault(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = append(s.faults, queuedFault{f: f, left: f.Times})
}

// ClearFaults drops every queued fault.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults = nil
}

// nextFault takes the fault for one request, if any.
func (s *Server) nextFault() (Fault, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.faults) == 0 {
		return Fault{}, false
	}
	q := &s.faults[0]
	f := q.f
	if r := f.Rate; r > 0 && r < 1 {
		q.seen++
		if math.Floor(float64(q.seen)*r) == math.Floor(float64(q.seen-1)*r) {
			return Fault{}, false
		}
	}
	if q.f.Times > 0 {
		q.left--
		if q.left == 0 {
			s.faults = s.faults[1:]
		}
	}
	return f, true
}
