package soak_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/compshare/imagegraph/internal/soak"
)

func TestPlanAtTheDefaultDuration(t *testing.T) {
	t.Parallel()
	p, err := soak.NewPlan(soak.DefaultDuration)
	require.NoError(t, err)
	assert.Equal(t, 2*time.Minute, p.WarmUp)
	assert.Equal(t, 20*time.Second, p.Level)
	var kinds []soak.Kind
	for _, s := range p.Steps {
		kinds = append(kinds, s.Kind)
	}
	assert.Equal(t, []soak.Kind{
		soak.KindUpstream503, soak.KindUpstream429, soak.KindUpstreamTimeout, soak.KindUpstreamMalformed,
		soak.KindUpstreamOutage, soak.KindRedisKill, soak.KindReplicaKill, soak.KindReplicaDrain,
	}, kinds)
	assert.Equal(t, time.Minute, p.Steps[4].For, "a minute of outage")
	assert.Equal(t, "upstream 503 on 3%", p.Steps[0].Label)
	assert.Equal(t, 1, p.Steps[6].Replica)
	assert.Equal(t, 2, p.Steps[7].Replica)
	assert.GreaterOrEqual(t, p.Duration-p.TailStart(), 2*time.Minute, "a quiet tail of two minutes")
}

func TestPlanScales(t *testing.T) {
	t.Parallel()
	for _, d := range []time.Duration{soak.MinDuration, 3 * time.Minute, soak.DefaultDuration, time.Hour} {
		p, err := soak.NewPlan(d)
		require.NoError(t, err, d)
		at := p.WarmUp
		for _, s := range p.Steps {
			assert.Equal(t, at, s.At, "%s: %s follows the one before after a gap", d, s.Kind)
			assert.Positive(t, s.For)
			at = s.End() + p.Gap
		}
		assert.Equal(t, at, p.TailStart())
		assert.Less(t, p.TailStart(), d)
		assert.GreaterOrEqual(t, d-p.TailStart(), p.Level, "%s: the tail holds the final level", d)
	}
	short, _ := soak.NewPlan(soak.MinDuration)
	long, _ := soak.NewPlan(time.Hour)
	assert.Less(t, short.Steps[4].For, long.Steps[4].For, "the outage scales")
	assert.Equal(t, 6*time.Minute, long.Steps[4].For)
}

func TestPlanRefusesTooShort(t *testing.T) {
	t.Parallel()
	_, err := soak.NewPlan(45 * time.Second)
	assert.ErrorContains(t, err, "at least 2m0s")
}
