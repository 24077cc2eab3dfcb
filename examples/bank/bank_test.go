package bank_test

import (
	"flag"
	"runtime"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/corfulog/corfu/examples/bank"
	"github.com/corfulog/corfu/examples/internal/simworld"
	"github.com/corfulog/corfu/sim"
)

var (
	flagSeed  = flag.Uint64("bank.seed", 0, "run only this seed of TestSimBank")
	flagSeeds = flag.Int("bank.seeds", 0, "seeds of TestSimBank (default 1000; 400 under the race detector, 50 with -short)")
)

// TestSimBank runs the bank under the faults of the simulator's seeds
// (sim.Swarm, the whole catalog), with a checkpoint-and-trim cycle and a
// replica that joins after it in every run: the total never changes and no
// committed transfer is lost (see Simulate for every check).
func TestSimBank(t *testing.T) {
	var seeds []uint64
	switch n := *flagSeeds; {
	case *flagSeed != 0:
		seeds = []uint64{*flagSeed}
	case n == 0 && testing.Short():
		n = 50
		fallthrough
	default:
		if n == 0 {
			n = 1000
			if raceEnabled {
				n = 400
			}
		}
		for s := range n {
			seeds = append(seeds, uint64(s+1))
		}
	}
	failed := map[uint64]error{}
	var total bank.Report
	for i, r := range simulateAll(seeds, bank.SimOptions{}) {
		if r.err != nil {
			failed[seeds[i]] = r.err
		}
		if rep := r.rep; rep != nil {
			total.Acked += rep.Acked
			total.Unknown += rep.Unknown
			total.Declined += rep.Declined
			total.Failed += rep.Failed
			total.Audits += rep.Audits
			total.Trims += rep.Trims
			total.Steps += rep.Steps
		}
	}
	var bad []uint64
	for s := range failed {
		bad = append(bad, s)
	}
	slices.Sort(bad)
	for i, s := range bad {
		if i == 5 {
			t.Errorf("... and %d more", len(bad)-5)
			break
		}
		t.Errorf("seed %d: %v\nreplay: go run ./examples/bank/cmd/bank -seed %d", s, failed[s], s)
	}
	t.Logf("%d seeds: %d transfers committed, %d of unknown outcome, %d declined, %d failed; %d audits; %d checkpoint-and-trim cycles; %d simulator steps",
		len(seeds), total.Acked, total.Unknown, total.Declined, total.Failed, total.Audits, total.Trims, total.Steps)
	assert.Empty(t, bad, "failing seeds")
	assert.Positive(t, total.Acked)
}

type sentinel string

func (s sentinel) Error() string { return string(s) }

const errNoTrim = sentinel("no checkpoint-and-trim cycle trimmed")

// TestSimBankEveryKind runs the bank with every kind of fault at once
// (simworld.EveryKind on top of each seed's draws): the total never
// changes, no committed transfer is lost, every run has a
// checkpoint-and-trim cycle, and every kind was injected.
func TestSimBankEveryKind(t *testing.T) {
	n := 1000
	switch {
	case testing.Short():
		n = 50
	case raceEnabled:
		n = 400
	}
	seeds := make([]uint64, n)
	for i := range seeds {
		seeds[i] = uint64(i + 1)
	}
	runs := simulateAll(seeds, bank.SimOptions{Tune: simworld.EveryKind})
	kinds := map[sim.FaultKind]int{}
	for i, r := range runs {
		if r.err != nil {
			t.Errorf("seed %d: %v", seeds[i], r.err)
			continue
		}
		for k, v := range r.rep.Faults {
			kinds[k] += v
		}
	}
	for _, k := range sim.FaultKinds() {
		if k == sim.FaultReconfig {
			continue // NB: a workload task, not counted as an injected fault
		}
		assert.Positive(t, kinds[k], "no %s fault in %d seeds", k, n)
	}
	t.Logf("%d seeds with every kind of fault: %v", n, kinds)
}

// simRun is one seed's bank.Simulate: its report, and its error, or
// errNoTrim if it passed without a checkpoint-and-trim cycle that trimmed.
type simRun struct {
	rep *bank.Report
	err error
}

// simulateAll runs bank.Simulate with o for each seed, GOMAXPROCS at a
// time, and returns the runs in the order of seeds.
func simulateAll(seeds []uint64, o bank.SimOptions) []simRun {
	runs := make([]simRun, len(seeds))
	next := make(chan int)
	var wg sync.WaitGroup
	for range runtime.GOMAXPROCS(0) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				rep, err := bank.Simulate(seeds[i], o)
				if err == nil && rep.Trims == 0 {
					err = errNoTrim
				}
				runs[i] = simRun{rep, err}
			}
		}()
	}
	for i := range seeds {
		next <- i
	}
	close(next)
	wg.Wait()
	return runs
}
