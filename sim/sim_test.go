package sim_test

import (
	"flag"
	"fmt"
	"runtime"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
)

var (
	flagSeed  = flag.Uint64("sim.seed", 0, "run only this seed")
	flagSeeds = flag.Int("sim.seeds", 0, "number of seeds to sweep (default 500, 50 with -short)")
)

// seeds returns the seeds TestSim runs: -sim.seed=N alone, else 1..K.
func seeds(t *testing.T) []uint64 {
	if *flagSeed != 0 {
		return []uint64{*flagSeed}
	}
	n := *flagSeeds
	if n == 0 {
		n = 500
		if testing.Short() {
			n = 50
		}
	}
	out := make([]uint64, n)
	for i := range out {
		out[i] = uint64(i + 1)
	}
	return out
}

// TestSim sweeps seeds: each derives a cluster shape, a workload and a
// network latency, runs them and checks the history and the replicas.
func TestSim(t *testing.T) {
	list := seeds(t)
	var (
		mu       sync.Mutex
		failures []string
		appends  int
	)
	work := make(chan uint64)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for seed := range work {
				o := sim.Swarm(seed)
				res := sim.Run(o)
				mu.Lock()
				appends += res.Appends
				if res.Err != nil {
					failures = append(failures, fmt.Sprintf("seed=%d: %v\nopts=%+v\nreproduce: go test ./sim -run '^TestSim$' -sim.seed=%d",
						seed, res.Err, o, seed))
				}
				mu.Unlock()
			}
		}()
	}
	for _, s := range list {
		work <- s
	}
	close(work)
	wg.Wait()
	t.Logf("%d seeds, %d acknowledged appends checked", len(list), appends)
	for i, f := range failures {
		if i == 5 {
			t.Errorf("... and %d more failing seeds", len(failures)-5)
			break
		}
		t.Error(f)
	}
}

// TestSimDeterministic runs one seed twice and compares trace hashes, and
// checks that different seeds give different traces.
func TestSimDeterministic(t *testing.T) {
	for _, seed := range []uint64{1, 7, 42} {
		a := sim.Run(sim.Swarm(seed))
		b := sim.Run(sim.Swarm(seed))
		require.NoError(t, a.Err)
		require.Equal(t, a.TraceHash, b.TraceHash, "seed %d: two runs diverged", seed)
		require.Equal(t, a.Steps, b.Steps)
		require.Equal(t, a.History.Ops, b.History.Ops)
	}
	hashes := map[uint64]uint64{}
	for seed := uint64(1); seed <= 20; seed++ {
		h := sim.Run(sim.Swarm(seed)).TraceHash
		if prev, dup := hashes[h]; dup {
			t.Fatalf("seeds %d and %d gave the same trace hash %x", prev, seed, h)
		}
		hashes[h] = seed
	}
}
