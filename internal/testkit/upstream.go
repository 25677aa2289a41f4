package testkit

import (
	"context"
	"sync"
	"sync/atomic"

	"github.com/compshare/imagegraph/upstream"
)

// Upstream is a fake upstream.Service: it counts its calls and the most in
// flight at once, keeps their requests, answers through Answer, fails every
// call while Fail has set an error, and, once Hold is called, holds every
// call until Release.
//
// Answer expresses what a fake answers: a canned page, a page computed from
// the request, a panic, or a real Service's answer (Answer:
// svc.DescribeCommunityImages), edited or failed as the test needs.
type Upstream struct {
	// Answer answers a call; nil answers an empty page. It may be called
	// concurrently.
	Answer func(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error)
	// OnCall, when set, is called as each call starts, before any hold or
	// failure: to record what only a call's context carries, say. It may
	// be called concurrently.
	OnCall func(ctx context.Context, req *upstream.DescribeCommunityImagesRequest)

	calls, inFlight, maxInFlight atomic.Int64

	mu      sync.Mutex
	started chan struct{}
	release chan struct{}
	reqs    []*upstream.DescribeCommunityImagesRequest
	err     error
}

var _ upstream.Service = (*Upstream)(nil)

// DescribeCommunityImages counts the call, waits while calls are held, and
// fails with Fail's error or answers.
func (u *Upstream) DescribeCommunityImages(ctx context.Context, req *upstream.DescribeCommunityImagesRequest) (*upstream.DescribeCommunityImagesResponse, error) {
	u.calls.Add(1)
	n := u.inFlight.Add(1)
	defer u.inFlight.Add(-1)
	for {
		m := u.maxInFlight.Load()
		if n <= m || u.maxInFlight.CompareAndSwap(m, n) {
			break
		}
	}
	if u.OnCall != nil {
		u.OnCall(ctx, req)
	}
	u.mu.Lock()
	u.reqs = append(u.reqs, req)
	started, release := u.started, u.release
	u.mu.Unlock()
	if started != nil {
		started <- struct{}{}
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	u.mu.Lock()
	err := u.err
	u.mu.Unlock()
	if err != nil {
		return nil, err
	}
	if u.Answer != nil {
		return u.Answer(ctx, req)
	}
	return &upstream.DescribeCommunityImagesResponse{}, nil
}

// Hold makes every call from now on wait for Release, and returns a channel
// that receives once as each call starts waiting.
func (u *Upstream) Hold() <-chan struct{} {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.started = make(chan struct{}, 1024)
	u.release = make(chan struct{})
	return u.started
}

// Release lets every held call go on, and calls answer at once again.
func (u *Upstream) Release() {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.release != nil {
		close(u.release)
	}
	u.started, u.release = nil, nil
}

// Fail makes every call from now on fail with err (once any hold is over)
// instead of answering; Fail(nil) lets calls answer again.
func (u *Upstream) Fail(err error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.err = err
}

// Calls is how many calls were made.
func (u *Upstream) Calls() int64 { return u.calls.Load() }

// MaxInFlight is the most calls in flight at once.
func (u *Upstream) MaxInFlight() int64 { return u.maxInFlight.Load() }

// Requests returns the requests of every call, in the order they came.
func (u *Upstream) Requests() []*upstream.DescribeCommunityImagesRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*upstream.DescribeCommunityImagesRequest(nil), u.reqs...)
}
