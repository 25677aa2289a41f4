package soak

import (
	"slices"
	"sync"
	"time"
)

// Request is one request of the workload, as recorded.
type Request struct {
	// At is when it was sent.
	At time.Time
	// Latency is how long its answer took (an APQ miss and the request
	// that registers the query again count as one).
	Latency time.Duration
	// Replica is the replica that answered (HAProxy's X-Replica), "" when
	// none did.
	Replica string
	// Transport is post, apq (a GET by hash) or persisted (a documentId).
	Transport string
	// Kind is the query's label (Query.Label): page, group, version, node
	// or watched, and "of no such id" for a lookup of one.
	Kind string
	// Outcome is Answer.Outcome.
	Outcome string
	// Data reports an answer with data and no error.
	Data bool
}

// Resource is one sample of a replica's process.
type Resource struct {
	// Tick numbers the sampling round; one round samples every replica.
	Tick int
	// At is when it was taken.
	At time.Time
	// Replica names the replica ("replica 1").
	Replica string
	// PID is its process's.
	PID int
	// RSS is the process's resident set (VmRSS), in bytes.
	RSS int64
	// FDs is the number of its open descriptors.
	FDs int
	// RedisConns is how many of them are connections to Redis. go-redis's
	// pool keeps as many as its busiest moment needed (a burst after Redis
	// restarts), up to its PoolSize, for as long as the process lives:
	// bounded, not a leak, so the descriptors' level leaves them out.
	RedisConns int
	// Goroutines is go_goroutines from its metrics, -1 when they did not
	// answer.
	Goroutines int
	// UpstreamCalls and LimiterWait are, from the same metrics, the
	// upstream requests it sent and the seconds its calls waited for the
	// account's rate limiter, since it started (counters).
	UpstreamCalls, LimiterWait float64
}

// Process is one life of a replica: a process, from its start to its end
// (zero while it runs).
type Process struct {
	Replica string    `json:"replica"`
	PID     int       `json:"pid"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end,omitzero"`
}

// Window is a fault as it happened.
type Window struct {
	Kind  Kind      `json:"kind"`
	Label string    `json:"label"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Recorder collects what the soak sees, safe for concurrent use.
type Recorder struct {
	mu        sync.Mutex
	requests  []Request
	resources []Resource
	windows   []Window
	processes []Process
	problems  []Problem
	counts    map[string]int
}

// maxProblems bounds the problems kept in full; every one is counted.
const maxProblems = 200

// Request records a request.
func (r *Recorder) Request(q Request) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.requests = append(r.requests, q)
}

// Resources records a sampling round.
func (r *Recorder) Resources(rs ...Resource) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.resources = append(r.resources, rs...)
}

// Window records a fault as it happened.
func (r *Recorder) Window(w Window) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.windows = append(r.windows, w)
}

// Started records the start of a replica's process.
func (r *Recorder) Started(replica string, pid int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.processes = append(r.processes, Process{Replica: replica, PID: pid, Start: at})
}

// Ended records the end of a replica's process.
func (r *Recorder) Ended(pid int, at time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.processes {
		if r.processes[i].PID == pid && r.processes[i].End.IsZero() {
			r.processes[i].End = at
		}
	}
}

// Problem records problems.
func (r *Recorder) Problem(ps ...Problem) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.counts == nil {
		r.counts = map[string]int{}
	}
	for _, p := range ps {
		r.counts[p.Kind]++
		if len(r.problems) < maxProblems {
			r.problems = append(r.problems, p)
		}
	}
}

// ProblemCount returns the number of problems recorded so far.
func (r *Recorder) ProblemCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.counts {
		n += c
	}
	return n
}

// Input returns what was recorded, for Summarize.
func (r *Recorder) Input() Input {
	r.mu.Lock()
	defer r.mu.Unlock()
	counts := map[string]int{}
	for k, v := range r.counts {
		counts[k] = v
	}
	return Input{
		Requests:      slices.Clone(r.requests),
		Resources:     slices.Clone(r.resources),
		Windows:       slices.Clone(r.windows),
		Processes:     slices.Clone(r.processes),
		Problems:      slices.Clone(r.problems),
		ProblemCounts: counts,
	}
}
