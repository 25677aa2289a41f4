package limits_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/codes"
	"github.com/compshare/imagegraph/internal/limits"
)

// TestInflightBoundsTheCostRunning: operations take their estimated cost
// (at least 1, at most the bound) and give it back once, however often
// they release; one without room waits, and gets it when another gives
// its room back; past the wait, or when its caller leaves, it is refused
// with SERVER_OVERLOADED and holds nothing.
func TestInflightBoundsTheCostRunning(t *testing.T) {
	t.Parallel()
	f := limits.NewInflight(100, time.Hour)
	ctx := context.Background()

	a, err := f.Acquire(ctx, 60)
	require.NoError(t, err)
	b, err := f.Acquire(ctx, 0) // an operation that reads nothing costs 1
	require.NoError(t, err)
	assert.Equal(t, limits.InflightStats{Cost: 61, Max: 100, Running: 2}, f.Stats())

	// 40 does not fit beside 61: it waits until a gives its room back.
	got := make(chan error, 1)
	go func() {
		release, err := f.Acquire(ctx, 40)
		if err == nil {
			defer release()
		}
		got <- err
	}()
	require.Eventually(t, func() bool { return f.Stats().Waiting == 1 }, 10*time.Second, time.Millisecond)
	a()
	a() // a second release gives nothing back twice
	require.NoError(t, <-got)
	assert.Equal(t, limits.InflightStats{Cost: 1, Max: 100, Running: 1}, f.Stats())

	// More than the bound runs alone: it waits for the whole of it.
	huge, err := func() (func(), error) {
		cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
		defer cancel()
		return f.Acquire(cctx, 1_000_000)
	}()
	var over *limits.OverloadedError
	require.ErrorAs(t, err, &over, "b still holds 1 of 100: the caller left first")
	assert.Nil(t, huge)
	assert.Equal(t, codes.Overloaded, over.ErrorCode())
	assert.Equal(t, map[string]any{"retryAfterSeconds": 1}, over.ErrorExtensions())
	assert.EqualValues(t, 100, over.Cost, "clamped to the bound")
	b()
	huge, err = f.Acquire(ctx, 1_000_000)
	require.NoError(t, err)
	assert.Equal(t, limits.InflightStats{Cost: 100, Max: 100, Running: 1, Refused: 1}, f.Stats())
	huge()
	assert.Equal(t, limits.InflightStats{Max: 100, Refused: 1}, f.Stats())
}

// TestInflightWait: with no room, an operation is refused once it has
// waited the Inflight's wait; with a wait of zero, at once.
func TestInflightWait(t *testing.T) {
	t.Parallel()
	for _, wait := range []time.Duration{0, 10 * time.Millisecond} {
		f := limits.NewInflight(10, wait)
		hold, err := f.Acquire(context.Background(), 10)
		require.NoError(t, err)
		_, err = f.Acquire(context.Background(), 1)
		var over *limits.OverloadedError
		require.ErrorAs(t, err, &over, wait)
		assert.Equal(t, limits.InflightStats{Cost: 10, Max: 10, Running: 1, Refused: 1}, f.Stats(), wait)
		hold()
	}
}

// TestNoInflightBound: a bound of zero is none; its nil Inflight admits
// everything.
func TestNoInflightBound(t *testing.T) {
	t.Parallel()
	f := limits.NewInflight(0, time.Second)
	assert.Nil(t, f)
	release, err := f.Acquire(context.Background(), 1<<30)
	require.NoError(t, err)
	release()
	assert.Equal(t, limits.InflightStats{}, f.Stats())
}

// BenchmarkInflightAcquire is what the bound adds to an operation that
// finds room: one acquire and its release, from both cores at once.
func BenchmarkInflightAcquire(b *testing.B) {
	f := limits.NewInflight(limits.DefaultInflightCost, limits.DefaultInflightWait)
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			release, err := f.Acquire(ctx, 491)
			if err != nil {
				b.Fatal(err)
			}
			release()
		}
	})
}
