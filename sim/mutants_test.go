package sim_test

import (
	"flag"
	"slices"
	"testing"

	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/sim"
)

var flagMutantSeeds = flag.Int("sim.mutantseeds", 200, "seeds each mutant gets to be caught in")

// TestMutants switches on one deliberately broken protocol variant at a
// time and requires the checker to catch it within the first 200 seeds; the
// catching seed must then pass without the mutant. With -v it logs the
// table: each mutant, the seed that caught it and the invariant that fired.
func TestMutants(t *testing.T) {
	mutants := []struct {
		name string
		set  mutant.Set
		tune func(*sim.Options) // bends the seed's workload towards the mutant's weak spot
	}{
		{"unit ignores the seal epoch", mutant.Set{UnitIgnoresSeal: true}, nil},
		// Reading the head is wrong only once a reconfiguration drops a
		// head that holds an uncommitted write: replace heads, often,
		// while lost messages stall writers between head and tail, and
		// read the newest address, where writes are in flight.
		{"reader trusts the chain head", mutant.Set{ReadFromHead: true}, func(o *sim.Options) {
			o.Workload.ReplaceHeads = true
			o.Workload.ReadNewest = true
			o.Workload.Reconfigs = max(o.Workload.Reconfigs, 5)
			o.Cluster.Spares = o.Workload.Reconfigs
			o.Cluster.Replicas = max(o.Cluster.Replicas, 2)
			o.Cluster.Units = o.Cluster.Replicas * max(1, o.Cluster.Units/o.Cluster.Replicas)
			o.Faults.Drop = max(o.Faults.Drop, 0.2)
		}},
		{"fill overwrites", mutant.Set{FillOverwrites: true}, nil},
		{"sequencer restarts at zero", mutant.Set{SequencerRestartsAtZero: true}, nil},
		{"ack before the last replica", mutant.Set{AckBeforeLast: true}, nil},
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			for seed := uint64(1); seed <= uint64(*flagMutantSeeds); seed++ {
				o := sim.Swarm(seed)
				o.Mutants = m.set
				if m.tune != nil {
					m.tune(&o)
				}
				res := sim.Run(o)
				// NB: only a violation is a catch; a warning (S5) is
				// something a correct protocol may produce too.
				i := slices.IndexFunc(res.Violations, func(v sim.Violation) bool { return !v.Warning })
				if i < 0 {
					continue
				}
				v := res.Violations[i]
				t.Logf("mutant %q caught by seed %d: %s", m.name, seed, v)
				// The control: the same seed and workload without the
				// mutant passes, so the catch is the mutant's doing.
				o.Mutants = mutant.Set{}
				if ctl := sim.Run(o); ctl.Err != nil {
					t.Errorf("seed %d fails without the mutant too: %v", seed, ctl.Err)
				}
				return
			}
			t.Errorf("mutant %q survived %d seeds: the checker cannot see it", m.name, *flagMutantSeeds)
		})
	}
}
