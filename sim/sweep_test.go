package sim_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
)

func TestSeeds(t *testing.T) {
	assert.Equal(t, []uint64{5, 6, 7}, sim.Seeds(5, 3))
	assert.Empty(t, sim.Seeds(1, 0))
	assert.Empty(t, sim.Seeds(1, -2))
}

// TestSweepDeterministic checks that a sweep's result does not depend on
// the number of workers, and that it matches runs made one by one.
func TestSweepDeterministic(t *testing.T) {
	seeds := []uint64{9, 3, 1, 12, 7, 4, 10, 2, 8, 5, 11, 6} // out of order on purpose
	one := sim.Sweep(seeds, 1, nil, nil)
	many := sim.Sweep(seeds, 4, nil, nil)
	require.Equal(t, one, many)

	require.Len(t, one.Runs, len(seeds))
	for i, r := range one.Runs {
		require.Equal(t, uint64(i+1), r.Seed, "runs are sorted by seed")
	}
	assert.Empty(t, one.FailedSeeds)
	assert.Equal(t, len(seeds), one.Total.Runs)

	r7 := one.Runs[6]
	res := sim.Run(sim.Swarm(7))
	require.NoError(t, res.Err)
	assert.Equal(t, res.TraceHash, r7.TraceHash)
	assert.Equal(t, res.Steps, r7.Steps)
	assert.Equal(t, len(res.History.Ops), r7.Ops)
	assert.Equal(t, res.Appends, r7.Appends)
	assert.Equal(t, sim.Swarm(7), r7.Options)
	assert.Equal(t, sim.FaultCounts(res), r7.Faults)

	faults := map[string]int{}
	for _, r := range one.Runs {
		for k, n := range r.Faults {
			faults[k] += n
		}
	}
	require.NotEmpty(t, faults, "Swarm injects faults in most seeds")
	assert.Equal(t, faults, one.Total.Faults)

	var appends int
	for _, r := range one.Runs {
		appends += r.Appends
	}
	assert.Equal(t, appends, one.Total.Appends)
	assert.Positive(t, one.Total.Steps)
	assert.Positive(t, one.Total.VirtualTime)
}

// TestSweepFailures checks that failing seeds are reported in order, with
// their errors, and that progress counts every run.
func TestSweepFailures(t *testing.T) {
	opts := func(seed uint64) sim.Options {
		o := sim.Swarm(seed)
		switch seed % 5 {
		case 0: // a cluster that cannot be built: the run fails at once
			o.Cluster.Replicas, o.Cluster.Units = 2, 3
		case 3: // the run itself panics, outside any simulated task
			panic("boom")
		}
		return o
	}
	var calls, lastDone, lastFailed int
	res := sim.Sweep(sim.Seeds(1, 15), 3, opts, func(done, total, failed int) {
		calls++
		assert.Equal(t, 15, total)
		assert.Equal(t, lastDone+1, done, "progress counts up by one")
		assert.GreaterOrEqual(t, failed, lastFailed)
		lastDone, lastFailed = done, failed
	})
	assert.Equal(t, 15, calls)
	assert.Equal(t, 6, lastFailed)
	assert.Equal(t, []uint64{3, 5, 8, 10, 13, 15}, res.FailedSeeds)
	assert.Equal(t, 6, res.Total.FailedRuns)
	assert.Equal(t, 15, res.Total.Runs)

	failures := res.Failures()
	require.Len(t, failures, 6)
	assert.ErrorContains(t, failures[0].Err, "panicked: boom")
	assert.ErrorContains(t, failures[1].Err, "corfutest: bad options")
	for _, r := range res.Runs {
		assert.Equal(t, r.Passed(), r.Err == nil)
	}
}

func TestFaultCounts(t *testing.T) {
	assert.Nil(t, sim.FaultCounts(sim.Result{}))
	assert.Nil(t, sim.FaultCounts(sim.Result{FaultCounts: map[sim.FaultKind]int{sim.FaultDrop: 0}}))
	assert.Equal(t, map[string]int{"crash": 2, "reconfig": 1}, sim.FaultCounts(sim.Result{
		FaultCounts: map[sim.FaultKind]int{sim.FaultCrash: 2, sim.FaultReconfig: 1, sim.FaultDrop: 0}}))
}

func TestSweepEmpty(t *testing.T) {
	res := sim.Sweep(nil, 0, nil, nil)
	assert.Empty(t, res.Runs)
	assert.Empty(t, res.FailedSeeds)
	assert.Zero(t, res.Total.Runs)
}

// TestScenarioCheck: each part Check refuses is named in a
// *sim.ScenarioError, and a scenario that passes Check gives Options.
func TestScenarioCheck(t *testing.T) {
	for _, tt := range []struct {
		sc    sim.Scenario
		field string
	}{
		{sim.Scenario{Faults: "crash,meteor"}, "faults"},
		{sim.Scenario{Latency: "warp:9"}, "latency"},
		{sim.Scenario{Latency: "cloud"}, "latency"},
		{sim.Scenario{FaultLatency: "warp:9"}, "fault-latency"},
		{sim.Scenario{Duration: -time.Second, SetDuration: true}, "duration"},
		{sim.Scenario{Disk: "tape"}, "disk"},
		{sim.Scenario{Detector: "yes"}, "detector"},
		{sim.Scenario{Async: "maybe"}, "async"},
	} {
		var se *sim.ScenarioError
		require.ErrorAs(t, tt.sc.Check(), &se, "%+v", tt.sc)
		require.Equal(t, tt.field, se.Field)
		require.Panics(t, func() { tt.sc.Options(1) })
	}
	sc := sim.Scenario{Faults: "all", Disk: sim.DiskDurable, Detector: "on", Async: "off", Latency: "constant:2ms",
		FaultLatency: "bimodal", Duration: 2 * time.Second, SetDuration: true}
	require.NoError(t, sc.Check())
	o := sc.Options(5)
	require.Equal(t, sim.DiskDurable, o.Disk)
	require.True(t, o.Workload.Detector)
	require.Zero(t, o.Workload.Bursts)
	require.Equal(t, 2*time.Millisecond, o.Latency)
	require.Equal(t, "bimodal", o.Faults.Latency)
	require.Equal(t, 2*time.Second, o.Faults.Duration)
	require.Equal(t, o, sc.Options(5), "deterministic")
}
