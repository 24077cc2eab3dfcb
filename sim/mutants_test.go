package sim_test

import (
	"cmp"
	"flag"
	"slices"
	"testing"
	"time"

	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/sim"
)

var flagMutantSeeds = flag.Int("sim.mutantseeds", 0, "seeds each mutant gets to be caught in (default: its own budget, 200 or 500)")

// TestMutants switches on one deliberately broken protocol variant at a
// time and requires the checker to catch it, by a violation (a warning is
// no catch), within its budget of seeds: 200 for the first five, 500 for
// the others. The catching seed must then pass without the mutant. With -v
// it logs the table: each mutant, the seed that caught it and the
// invariant that fired.
func TestMutants(t *testing.T) {
	mutants := []struct {
		name  string
		set   mutant.Set
		tune  func(*sim.Options) // bends the seed's workload towards the mutant's weak spot
		seeds int                // its budget; 0 means 500; above 500, skipped with -short
		// base is what the control runs with: no mutant, or for a pair
		// the mutant the other one needs, so that the catch is the
		// other's doing.
		base mutant.Set
	}{
		{"unit ignores the seal epoch", mutant.Set{UnitIgnoresSeal: true}, nil, 200, mutant.Set{}},
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
		}, 200, mutant.Set{}},
		{"fill overwrites", mutant.Set{FillOverwrites: true}, nil, 200, mutant.Set{}},
		{"sequencer restarts at zero", mutant.Set{SequencerRestartsAtZero: true}, nil, 200, mutant.Set{}},
		{"ack before the last replica", mutant.Set{AckBeforeLast: true}, nil, 200, mutant.Set{}},
		// The same mutant in AppendAsync's batches: every turn a burst.
		{"batch acks before the last replica", mutant.Set{AckBeforeLast: true}, func(o *sim.Options) {
			o.Workload.Bursts, o.Workload.MaxBurst = 1, 16
		}, 200, mutant.Set{}},
		{"writer carries its token into the next epoch", mutant.Set{CarryToken: true}, nil, 0, mutant.Set{}},
		// Two writers meet at one address only when an address is handed
		// out twice, as after a sequencer that lost its mark: a writer
		// stalled with its token across the recovery then finds at the
		// head another writer's entry of the same bytes in the same (no)
		// streams, which only its identity tells apart.
		{"writer knows its entry by its bytes", mutant.Set{OursByBytes: true}, func(o *sim.Options) {
			o.Workload.SamePayloadOneIn = 1
			o.Workload.NoStreams = true
			o.Workload.SlowWriteOneIn = 3
			o.Workload.Appenders = max(o.Workload.Appenders, 3)
			o.Faults.Amnesias = max(o.Faults.Amnesias, 2)
			if o.Faults.Duration == 0 {
				o.Faults.Duration = 3 * time.Second
			}
		}, 0, mutant.Set{}},
		// NB: masked while S7 holds: a replica after the head holds only
		// what the head holds, and a writer whose write the head took
		// owns the head's entry, so what it meets after the head is its
		// own. It is searched for still; its survival is a skip.
		{"writer trusts a replica after the head", mutant.Set{TrustsNonHead: true}, nil, 0, mutant.Set{}},
		// A reader that waited out a hole fills it as its writer, stalled
		// with its token, finally reaches the head: the fill meets the
		// entry there and (mutant) returns it uncopied, so the read
		// returns what the chain's last replica lacks.
		{"fill skips copying the head's data", mutant.Set{FillSkipsCopy: true}, func(o *sim.Options) {
			o.Workload.ReadNewest = true
			o.Workload.SlowWriteOneIn = 2
			o.Workload.SlowWrite = 2 * o.Client.HoleFillWait
			o.Workload.Readers = max(o.Workload.Readers, 3)
			o.Workload.FillOneIn = 2
			o.Cluster.Replicas = max(o.Cluster.Replicas, 2)
			o.Cluster.Units = o.Cluster.Replicas * max(1, o.Cluster.Units/o.Cluster.Replicas)
			o.Faults.Latency = "exp:min=5ms,mean=50ms"
			if o.Faults.Duration == 0 {
				o.Faults.Duration = 3 * time.Second
			}
		}, 0, mutant.Set{}},
		// NB: alone it is masked: with epoch-scoped tokens no writer can
		// land in [written, tail) once the units are sealed, so the late
		// fill finds nothing there. With writers that carry their tokens
		// into the new epoch, an entry lands there that the stream tails
		// never learn.
		{"recovery bootstraps before filling (with tokens carried)", mutant.Set{BootstrapBeforeFill: true, CarryToken: true}, func(o *sim.Options) {
			o.Workload.SlowWriteOneIn = 2 // a recovery slow to fill the gap
			o.Workload.SlowWrite = 2 * time.Second
			// NB: the detector's fast seals leave the window open more
			// often than the hand-driven client's: a weak catch (budget
			// 1000 seeds), see docs/simulation.md.
			sim.UseDetector(o, true)
			// NB: the window needs a sequencer that restarts from its mark
			// while a chain head the seal misses takes a stalled write:
			// crashes and pauses, often. 7 of seeds 1..1000 catch it with
			// 6 crashes and 3 pauses, 1 with 3 crashes and none.
			o.Faults.Crashes = max(o.Faults.Crashes, 6)
			o.Faults.Pauses = max(o.Faults.Pauses, 3)
			o.Workload.Streamers = max(o.Workload.Streamers, 2)
			o.Workload.StreamReads = max(o.Workload.StreamReads, 10)
		}, 1000, mutant.Set{CarryToken: true}},
		{"stream-tail scan stops at a trim", mutant.Set{ScanStopsAtTrim: true}, func(o *sim.Options) {
			o.Workload.SparseTrimOneIn = 3
			o.Faults.Crashes = max(o.Faults.Crashes, 3)
			o.Workload.Streamers = max(o.Workload.Streamers, 2)
			o.Workload.StreamReads = max(o.Workload.StreamReads, 10)
		}, 0, mutant.Set{}},
		{"stream reader drops the oldest entry", mutant.Set{StreamDropsOldest: true}, nil, 0, mutant.Set{}},
		{"client installs older projections", mutant.Set{EpochGoesBack: true}, laggingLayouts, 0, mutant.Set{}},
		{"proposer ignores accepted values", mutant.Set{ProposerIgnoresAccepted: true}, laggingLayouts, 0, mutant.Set{}},
		// A reconfiguration that dies once it has sealed leaves the log
		// sealed past an epoch that one layout server alone committed; a
		// proposer that cannot see that server takes the sealed epoch
		// over from the epoch before.
		{"acceptor skips epochs", mutant.Set{AcceptorSkipsEpochs: true}, func(o *sim.Options) {
			laggingLayouts(o)
			o.Workload.Detector = false // NB: the shapes below are the hand-driven client's
			o.Workload.Reconfigs = max(o.Workload.Reconfigs, 3)
			o.Workload.AbortOneIn = 2
			o.Workload.ReplaceOneIn = 1 // so that the epoch skipped changed the layout
			o.Cluster.Spares = max(o.Cluster.Spares, o.Workload.Reconfigs)
			// NB: reconfigurations 100ms apart, and crashes, overlap more
			// of them: 18 of seeds 1..1000 catch it, against 6 with the
			// default 300ms gap.
			o.Workload.ReconfigGap = 100 * time.Millisecond
			o.Faults.Crashes = max(o.Faults.Crashes, 5)
		}, 1000, mutant.Set{}},
		{"sequencer's backpointer off by one", mutant.Set{WrongBackpointer: true}, nil, 0, mutant.Set{}},
		{"unit serves stale reads", mutant.Set{UnitServesStaleReads: true}, nil, 0, mutant.Set{}},
		{"unit acknowledges writes below the trim", mutant.Set{UnitWritesBelowTrim: true}, func(o *sim.Options) {
			o.Workload.TrimOneIn = 3
			o.Workload.TrimNearTail = true
		}, 0, mutant.Set{}},
		{"rebuild skips junk", mutant.Set{RebuildSkipsJunk: true}, func(o *sim.Options) { sim.UseDetector(o, true) }, 0, mutant.Set{}},
		{"rebuild joins before it caught up", mutant.Set{RebuildJoinsEarly: true}, func(o *sim.Options) { sim.UseDetector(o, true) }, 0, mutant.Set{}},
		{"rebuild keeps a replaced unit's late writes", mutant.Set{RebuildKeepsLateWrites: true}, func(o *sim.Options) {
			sim.UseDetector(o, true)
			o.Cluster.Replicas = max(o.Cluster.Replicas, 2)
			o.Cluster.Units = o.Cluster.Replicas * max(o.Cluster.Units/o.Cluster.Replicas, 1)
			o.Faults.Pauses = max(o.Faults.Pauses, 2) // NB: the replaced unit comes back with what reached it meanwhile
			o.Workload.SlowWriteOneIn = 2
		}, 0, mutant.Set{}},
		// The sequencer's host answers before its mark is durable: only a
		// crash while a save is on its way shows it, so durable roles,
		// crashes, and a save that lands late (a slow disk).
		{"sequencer answers before its mark is saved", mutant.Set{SequencerSavesLate: true}, func(o *sim.Options) {
			o.Disk = sim.DiskDurable
			o.Faults.Crashes = max(o.Faults.Crashes, 4)
		}, 0, mutant.Set{}},
		// NB: masked (see below): 100 seeds document it; they cost 500's
		// time for nothing under -race.
		{"read trusts junk from a removed unit", mutant.Set{ReadTrustsRemovedUnit: true}, func(o *sim.Options) { sim.UseDetector(o, true) }, 100, mutant.Set{}},
	}
	for _, m := range mutants {
		t.Run(m.name, func(t *testing.T) {
			t.Parallel()
			if (m.set == mutant.Set{ReadTrustsRemovedUnit: true} || m.set == mutant.Set{TrustsNonHead: true}) && testing.Short() {
				t.Skip("masked (see below): its seeds run without -short")
			}
			if m.seeds > 500 && testing.Short() && *flagMutantSeeds == 0 {
				t.Skipf("a weak catch (budget %d seeds): runs without -short", m.seeds)
			}
			budget := cmp.Or(*flagMutantSeeds, m.seeds, 500)
			if masked := m.set == (mutant.Set{TrustsNonHead: true}); masked && raceEnabled && *flagMutantSeeds == 0 {
				// NB: a masked mutant survives whatever its budget; under
				// the race detector, which checks concurrency, not seed
				// coverage, 100 seeds show it still runs and survives.
				budget = min(budget, 100)
			}
			opts := make([]sim.Options, budget)
			for i := range opts {
				o := sim.Swarm(uint64(i + 1))
				o.Mutants = m.set
				if m.tune != nil {
					m.tune(&o)
				}
				opts[i] = o
			}
			// NB: the search runs its seeds a few at a time, so that the
			// last rows still searching keep every core busy; it finds the
			// same first seed as a search one at a time.
			i, v := firstMatch(opts, func(o sim.Options, res sim.Result) (sim.Violation, bool) {
				// NB: only a violation is a catch; a warning (S5) is
				// something a correct protocol may produce too.
				i := slices.IndexFunc(res.Violations, func(v sim.Violation) bool { return !v.Warning })
				if i < 0 {
					return sim.Violation{}, false
				}
				// The control: the same seed and workload without the
				// mutant (with base only) passes, so the catch is the
				// mutant's doing. A seed that fails without it too (a
				// protocol bug of its own) catches nothing.
				o.Mutants = m.base
				return res.Violations[i], sim.Run(o).Err == nil
			})
			if i >= 0 {
				t.Logf("mutant %q caught by seed %d: %s", m.name, opts[i].Seed, v)
				return
			}
			if m.set == (mutant.Set{ReadTrustsRemovedUnit: true}) {
				// NB: masked by the seal rule: a reconfiguration seals every
				// chain head of the open segment or the sequencer, so a unit
				// that answers in an old epoch is a chain's later replica,
				// after which the read asks the head (sealed), or the
				// sequencer is sealed and the read's tail check is refused
				// (see docs/guarantees.md).
				t.Skipf("mutant %q survived %d seeds, as expected: masked by the seal rule", m.name, budget)
			}
			if m.set == (mutant.Set{TrustsNonHead: true}) {
				t.Skipf("mutant %q survived %d seeds, as expected: masked by S7 (see docs/simulation.md)", m.name, budget)
			}
			t.Errorf("mutant %q survived %d seeds: the checker cannot see it", m.name, budget)
		})
	}
}

// laggingLayouts is manyReconfigs with layout servers left behind: the
// reconfiguring client's commits reach one layout server only, which
// every client reaches only half the time during the fault phase.
func laggingLayouts(o *sim.Options) {
	manyReconfigs(o)
	o.Workload.LaggingLayouts = true
}

// manyReconfigs makes reconfigurations race: many of them, under lost
// messages and partitions that leave layout servers behind.
func manyReconfigs(o *sim.Options) {
	o.Workload.Reconfigs = max(o.Workload.Reconfigs, 6)
	o.Faults.Drop = max(o.Faults.Drop, 0.2)
	o.Faults.Partitions = max(o.Faults.Partitions, 2)
	o.Faults.Crashes = max(o.Faults.Crashes, 2)
	if o.Faults.Duration == 0 {
		o.Faults.Duration = 3 * time.Second
	}
}
