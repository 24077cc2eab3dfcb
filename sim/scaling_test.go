package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
)

// smallScaling is the scaling experiment cut down for tests: fewer
// clients and a shorter window than the command's, still enough requests
// in flight to keep 16 chains or the sequencer busy.
func smallScaling(chains int) sim.ScalingConfig {
	return sim.ScalingConfig{Seed: 1, Chains: chains, Clients: 32, Workers: 4,
		Warmup: 10 * time.Millisecond, Window: 30 * time.Millisecond}
}

// perChain is the most entries a second one unit's link carries: every
// entry of a chain crosses each of its units' links (an append's write
// comes in on each replica's, a read's answer goes out on the tail's), and
// each crossing is more than EntryBytes on the wire.
func perChain() float64 { return sim.Gbps / sim.DefaultEntryBytes }

// TestScalingReads: the read throughput grows with the chains, as each
// chain's tail unit serves its own share of the reads; one chain reaches
// most of what its tail's link carries, and never more.
func TestScalingReads(t *testing.T) {
	one, err := sim.MeasureReads(smallScaling(1))
	require.NoError(t, err)
	eight, err := sim.MeasureReads(smallScaling(8))
	require.NoError(t, err)
	t.Logf("reads/s: 1 chain %.0f, 8 chains %.0f", one.PerSecond, eight.PerSecond)
	assert.LessOrEqual(t, one.PerSecond, perChain())
	assert.Greater(t, one.PerSecond, 0.8*perChain())
	assert.GreaterOrEqual(t, eight.PerSecond, 6*one.PerSecond, "8 chains read at least 6 times what 1 does")
	assert.LessOrEqual(t, eight.PerSecond, 8*perChain())
	assert.Zero(t, one.Errors+eight.Errors)
}

// TestScalingAppends: below the sequencer's cap the append throughput
// grows with the chains, each chain bounded by its units' links; above
// it, the sequencer caps it, and halving the sequencer's rate halves it.
func TestScalingAppends(t *testing.T) {
	one, err := sim.MeasureAppends(smallScaling(1))
	require.NoError(t, err)
	two, err := sim.MeasureAppends(smallScaling(2))
	require.NoError(t, err)
	assert.LessOrEqual(t, one.PerSecond, perChain())
	assert.Greater(t, one.PerSecond, 0.8*perChain())
	assert.InDelta(t, 2, two.PerSecond/one.PerSecond, 0.2, "2 chains append twice what 1 does")

	// 16 chains could take eight times the sequencer's 200K tokens/s.
	cfg := smallScaling(16)
	capped, err := sim.MeasureAppends(cfg)
	require.NoError(t, err)
	cap := float64(time.Second / sim.DefaultTokenService)
	assert.LessOrEqual(t, capped.PerSecond, 1.01*cap, "the sequencer caps appends")
	assert.Greater(t, capped.PerSecond, 0.9*cap, "16 chains keep the sequencer busy")

	cfg.TokenService = 2 * sim.DefaultTokenService
	halved, err := sim.MeasureAppends(cfg)
	require.NoError(t, err)
	t.Logf("appends/s: 1 chain %.0f, 2 chains %.0f, 16 chains %.0f, with the cap halved %.0f",
		one.PerSecond, two.PerSecond, capped.PerSecond, halved.PerSecond)
	assert.InDelta(t, 0.5, halved.PerSecond/capped.PerSecond, 0.05, "halving the sequencer's rate halves the appends")
}

// TestScalingDeterministic: one seed gives the same run twice, event for
// event.
func TestScalingDeterministic(t *testing.T) {
	a, err := sim.Scale(smallScaling(2))
	require.NoError(t, err)
	b, err := sim.Scale(smallScaling(2))
	require.NoError(t, err)
	assert.Equal(t, a, b)
	assert.Equal(t, 4, a.Units)
	assert.Positive(t, a.Appends.Ops)
	assert.Positive(t, a.Reads.Ops)
}

// TestScalingBadConfig: a config that cannot run is an error, not a run.
func TestScalingBadConfig(t *testing.T) {
	for _, cfg := range []sim.ScalingConfig{
		{Chains: -1},
		{Window: -time.Second},
		{EntryBytes: 8},
		{Link: -1},
	} {
		_, err := sim.Scale(cfg)
		assert.Error(t, err, "%+v", cfg)
	}
}
