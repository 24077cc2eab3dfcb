package sim_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/transport"
)

// TestHealTimes: every kind of failure HealTime aims at one node heals
// within a second, with no violation, on a few seeds.
func TestHealTimes(t *testing.T) {
	for _, kind := range sim.HealKinds() {
		for seed := uint64(1); seed <= 3; seed++ {
			h := sim.HealTime(seed, kind)
			require.NoError(t, h.Err, "%s seed %d", kind, seed)
			require.Positive(t, h.Append, "%s seed %d: no append after the fault", kind, seed)
			require.Less(t, h.Append, time.Second, "%s seed %d", kind, seed)
		}
	}
}

// TestRemovedUnitCutOffAndPaused closes the stale-projection case of the
// healing issue: a unit loses its outbound links (it hears requests, nobody
// hears it), the detector replaces it, and then it freezes for a second and
// comes back answering, in its old epoch, whatever requests reached it.
// Readers read the newest addresses throughout. Every check holds, and the
// detector did replace the unit. With the read-side epoch confirmation
// switched off (mutant ReadTrustsRemovedUnit) every check holds too: the
// seal rule already covers it (docs/guarantees.md).
func TestRemovedUnitCutOffAndPaused(t *testing.T) {
	seeds := uint64(12)
	if testing.Short() {
		seeds = 4
	}
	for _, m := range []mutant.Set{{}, {ReadTrustsRemovedUnit: true}} {
		replaced := 0
		for seed := uint64(1); seed <= seeds; seed++ {
			o, target, err := sim.HealOptions(seed, sim.HealUnit)
			require.NoError(t, err)
			o.Workload.ReadNewest = true
			o.Workload.FillOneIn = 4
			o.Mutants = m
			o.Plan = func(f *sim.Faults, _ sim.Topology) {
				f.Asymmetric(500*time.Millisecond, 1500*time.Millisecond, target, false)
				f.Pause(1500*time.Millisecond, 2800*time.Millisecond, target)
			}
			res := sim.Run(o)
			require.NoError(t, res.Err, "seed %d, mutants %+v", seed, m)
			for _, f := range res.Faults {
				if f.Kind == sim.FaultReconfig && strings.HasPrefix(f.Target, fmt.Sprintf("detector: replace %s ", transport.NodeID(target))) {
					replaced++
					break
				}
			}
		}
		require.Equal(t, int(seeds), replaced, "the detector replaced the cut-off unit in every run")
	}
}

// TestSecondVantage: the link between the failure detector's node and one
// unit of the open segment is cut; every other node still reaches the unit.
// A lone detector takes the unit out (its only view says it is dead). With
// a second detector elsewhere (Workload.Vantages), which still reaches it,
// the suspicion is never confirmed and the unit stays. Both runs pass every
// check.
func TestSecondVantage(t *testing.T) {
	seeds := uint64(6)
	if testing.Short() {
		seeds = 2
	}
	for _, vantages := range []int{1, 2} {
		for seed := uint64(1); seed <= seeds; seed++ {
			o, target, err := sim.HealOptions(seed, sim.HealUnit)
			require.NoError(t, err)
			o.Workload.Vantages = vantages
			detector := transport.NodeID(fmt.Sprintf("client%d", o.Workload.Appenders+o.Workload.Readers+1))
			o.Plan = func(f *sim.Faults, _ sim.Topology) {
				f.Partition(500*time.Millisecond, 2500*time.Millisecond, sim.PartitionIsolateSingle,
					[]transport.NodeID{detector}, []transport.NodeID{target})
			}
			res := sim.Run(o)
			require.NoError(t, res.Err, "seed %d, %d vantages", seed, vantages)
			took := false
			for _, f := range res.Faults {
				if f.Kind == sim.FaultReconfig && strings.HasPrefix(f.Target, fmt.Sprintf("detector: replace %s ", target)) {
					took = true
				}
			}
			require.Equal(t, vantages == 1, took, "seed %d, %d vantages: %v", seed, vantages, res.Faults)
		}
	}
}
