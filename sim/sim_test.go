package sim_test

import (
	"flag"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
)

var (
	flagSeed  = flag.Uint64("sim.seed", 0, "run only this seed (and log its faults)")
	flagSeeds = flag.Int("sim.seeds", 0, "number of seeds to sweep (default 2000; 100 with -short, 500 under the race detector)")
)

// Sweep sizes. The default sweep is the same with and without the race
// detector: CI runs it under -race.
const (
	defaultSeeds = 2000
	shortSeeds   = 100
	raceSeeds    = 500 // under the race detector
)

// seeds returns the seeds TestSim runs: -sim.seed=N alone, else 1..K.
func seeds(t *testing.T) []uint64 {
	if *flagSeed != 0 {
		return []uint64{*flagSeed}
	}
	n := *flagSeeds
	if n == 0 {
		n = defaultSeeds
		switch {
		case testing.Short():
			n = shortSeeds
		case raceEnabled:
			n = raceSeeds
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// TestSim sweeps seeds: each derives a cluster shape, a workload, the
// client's timeouts, the network's latency and a mix of faults; runs a
// fault phase, heals, runs a liveness phase and a final read of every
// address; and checks safety (Check, CheckLinearizable) and liveness
// (CheckLiveness). Across a sweep of 100 seeds or more, every kind of fault
// must have been injected.
func TestSim(t *testing.T) {
	list := seeds(t)
	opts := make([]sim.Options, len(list))
	for i, seed := range list {
		opts[i] = sim.Swarm(seed)
	}
	var (
		failures = map[uint64]string{}
		appends  int
		counts   = map[sim.FaultKind]int{}
		healed   int
	)
	for i, res := range runAll(opts, withoutHistory) {
		o, seed := opts[i], list[i]
		appends += res.Appends
		for k, n := range res.FaultCounts {
			counts[k] += n
		}
		if res.Heal > 0 {
			healed++
		}
		if res.Err != nil {
			failures[seed] = fmt.Sprintf("seed=%d: %v\nopts=%+v\nreproduce: go test ./sim -run '^TestSim$' -sim.seed=%d",
				seed, res.Err, o, seed)
		}
		if len(list) == 1 {
			for _, f := range res.Faults {
				t.Logf("fault %v", f)
			}
			t.Logf("heal at %v, %d epoch changes after it, %d acked appends, %d unseen, %d steps, %v virtual",
				res.Heal, res.EpochChanges, res.Appends, res.Unseen, res.Steps, res.VirtualTime)
		}
	}
	t.Logf("%d seeds (%d with faults), %d acknowledged appends checked; faults injected: %v",
		len(list), healed, appends, counts)
	failed := make([]uint64, 0, len(failures))
	for s := range failures {
		failed = append(failed, s)
	}
	slices.Sort(failed)
	for i, s := range failed {
		if i == 5 {
			t.Errorf("... and %d more failing seeds", len(failed)-5)
			break
		}
		t.Error(failures[s])
	}
	if len(failed) > 0 {
		t.Errorf("%d of %d seeds failed: %v", len(failed), len(list), failed)
	}
	if len(list) >= shortSeeds {
		for _, k := range append(sim.FaultKinds(), sim.DiskFaultKinds()...) {
			if k == sim.FaultMisdirect && !sim.SwarmDiskKinds()[k] {
				continue // see SwarmDiskKinds
			}
			assert.Positive(t, counts[k], "no %s fault in %d seeds", k, len(list))
		}
	}
}

// TestSimDeterministic runs seeds twice, with faults on, and compares trace
// hashes, and checks that different seeds give different traces.
func TestSimDeterministic(t *testing.T) {
	faulted := 0
	for _, seed := range []uint64{1, 2, 3, 42} {
		o := sim.Swarm(seed)
		if o.Faults.Duration > 0 {
			faulted++
		}
		a := sim.Run(o)
		b := sim.Run(sim.Swarm(seed))
		require.Equal(t, fmt.Sprint(a.Err), fmt.Sprint(b.Err), "seed %d", seed)
		require.Equal(t, a.TraceHash, b.TraceHash, "seed %d: two runs diverged", seed)
		require.Equal(t, a.Steps, b.Steps)
		require.Equal(t, a.History.Ops, b.History.Ops)
		require.Equal(t, a.Faults, b.Faults)
	}
	require.Positive(t, faulted, "no seed with faults")
	hashes := map[uint64]uint64{}
	for seed := uint64(1); seed <= 20; seed++ {
		h := sim.Run(sim.Swarm(seed)).TraceHash
		if prev, dup := hashes[h]; dup {
			t.Fatalf("seeds %d and %d gave the same trace hash %x", prev, seed, h)
		}
		hashes[h] = seed
	}
}

// TestSwarmPrintsInFull checks that a seed's options print as a complete
// repro: every default is filled in.
func TestSwarmPrintsInFull(t *testing.T) {
	o := sim.Swarm(5)
	s := fmt.Sprintf("%+v", o)
	for _, want := range []string{"OpTimeout:10s", "Layouts:3", "MaxRetries:16", "Faults:{Seed:"} {
		assert.True(t, strings.Contains(s, want), "%q lacks %q", s, want)
	}
	assert.Equal(t, o, o.Expanded(), "Swarm's options are already expanded")
}

// TestBurstsShareBatches: appends started together with AppendAsync reach
// the units in batches of several writes, and every one is acknowledged
// and checked like any append.
func TestBurstsShareBatches(t *testing.T) {
	o := sim.Swarm(3)
	o.Faults = sim.FaultConfig{}
	o.Workload.Bursts, o.Workload.MaxBurst = 1, 16
	o.Workload.Appends, o.Workload.HealedAppends = 40, 8
	o.Workload.Think = 20 * time.Millisecond
	o.Workload.NoStreams = true // NB: a change of streams cuts a batch
	res := sim.Run(o)
	require.NoError(t, res.Err)
	require.Equal(t, o.Workload.Appenders*(40+8), res.Appends, "every append acknowledged")
	require.Positive(t, res.Batches.Requests)
	require.Greater(t, res.Batches.Writes, 2*res.Batches.Requests, "batches of more than two writes on average: %+v", res.Batches)

	o.Workload.Bursts = 0
	res = sim.Run(o)
	require.NoError(t, res.Err)
	require.Zero(t, res.Batches.Requests, "one Append at a time sends no batch")
}
