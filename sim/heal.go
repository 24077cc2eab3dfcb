package sim

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// The failures HealTime measures, each aimed at one node.
const (
	HealUnit      = "unit"      // a unit of the open segment crashes
	HealSequencer = "sequencer" // the sequencer crashes (a standby is there)
	HealPartition = "partition" // a unit of the open segment is cut off from every other node
	HealPause     = "pause"     // a unit of the open segment freezes
)

// HealKinds lists the failures HealTime measures.
func HealKinds() []string { return []string{HealUnit, HealSequencer, HealPartition, HealPause} }

// Heal-time runs: the fault starts at healFault and lasts until the end of
// the fault phase, healPhase, longer than any heal should take.
const (
	healFault = 500 * time.Millisecond
	healPhase = 3 * time.Second
)

// HealResult is one heal-time run (see HealTime).
type HealResult struct {
	Seed   uint64
	Kind   string
	Target transport.NodeID
	// Append is the time from the fault to the first append invoked and
	// acknowledged after it on the affected chain (for the sequencer, on
	// any chain) at an address above every address acknowledged before
	// it; Read, to the
	// first read of the affected chain invoked after the fault that
	// returned an entry or junk. Negative if there was none before the
	// fault ended.
	Append, Read time.Duration
	// Detection is the detector's detection timeout, Misses x (Interval +
	// Timeout).
	Detection time.Duration
	Err       error // the run's violation or failure, if any
}

// HealOptions returns the options of the heal-time run of kind on seed,
// and the node its fault hits: six units in chains of two with two spares
// and a standby sequencer, the failure detector with its default timing
// (corfu.DefaultProbeInterval and friends), clients whose requests time
// out after 20 ms, the cloud latency model (Cloud) in the fault phase and
// its mean one-way delay before and after; four appenders and two readers
// busy throughout.
func HealOptions(seed uint64, kind string) (Options, transport.NodeID, error) {
	o := Options{Seed: seed, Latency: 1860 * time.Microsecond}
	o.Cluster = ClusterConfig{Layouts: 3, Units: 6, Replicas: 2, Spares: 2}
	o.Workload = Workload{Appenders: 4, Appends: 150, Readers: 2, Reads: 150, Think: 5 * time.Millisecond,
		Detector: true, MoveSequencer: true, FillOneIn: 1 << 30}
	o.Client = corfu.Config{RPCTimeout: 20 * time.Millisecond, HoleFillWait: 100 * time.Millisecond}
	o.Detector = corfu.DetectorConfig{Interval: corfu.DefaultProbeInterval, Timeout: corfu.DefaultProbeTimeout, Misses: corfu.DefaultProbeMisses}
	o.Faults = FaultConfig{Seed: seed, Duration: healPhase, Latency: "cloud"}
	servers, err := corfutest.Build(o.Cluster)
	if err != nil {
		return Options{}, "", err
	}
	p := servers.Projection
	r := rand.New(rand.NewPCG(seed, 0x4ea1))
	open := p.Segments[len(p.Segments)-1]
	chain := open.Stripes[r.IntN(len(open.Stripes))]
	target := chain[r.IntN(len(chain))]
	switch kind {
	case HealUnit:
		o.Plan = func(f *Faults, _ Topology) { f.Crash(healFault, healPhase, target) }
	case HealPause:
		o.Plan = func(f *Faults, _ Topology) { f.Pause(healFault, healPhase, target) }
	case HealPartition:
		o.Plan = func(f *Faults, t Topology) {
			var rest []transport.NodeID
			for _, n := range slices.Concat(t.Layouts, []transport.NodeID{t.Sequencer, t.Standby}, t.Units, t.Clients,
				[]transport.NodeID{clientNode(len(t.Clients) + 1)}) {
				if n != target && n != "" {
					rest = append(rest, n)
				}
			}
			f.Partition(healFault, healPhase, PartitionIsolateSingle, []transport.NodeID{target}, rest)
		}
	case HealSequencer:
		target = p.Sequencer
		o.Plan = func(f *Faults, _ Topology) { f.Crash(healFault, healPhase, target) }
	default:
		return Options{}, "", fmt.Errorf("sim: unknown heal kind %q; want one of %v", kind, HealKinds())
	}
	return o.Expanded(), target, nil
}

// HealTime runs the heal-time run of kind on seed (see HealOptions) and
// measures how long the log took to heal (see HealResult).
func HealTime(seed uint64, kind string) HealResult {
	o, target, err := HealOptions(seed, kind)
	hr := HealResult{Seed: seed, Kind: kind, Target: target, Append: -1, Read: -1, Err: err}
	if err != nil {
		return hr
	}
	d := o.Detector
	hr.Detection = time.Duration(d.Misses) * (d.Interval + d.Timeout)
	res := Run(o)
	hr.Err = res.Err
	servers, _ := corfutest.Build(o.Cluster)
	stripe := -1 // the affected chain's stripe; -1: every chain
	for i, chain := range servers.Projection.Segments[0].Stripes {
		if slices.Contains(chain, target) {
			stripe = i
		}
	}
	affected := func(a storage.Address) bool {
		if stripe < 0 {
			return true
		}
		loc, err := res.Projection.Locate(a)
		return err == nil && loc.Stripe == stripe
	}
	var before storage.Address // one past the highest address acked before the fault
	for _, op := range res.History.Ops {
		if op.Kind == OpAppend && op.Outcome == OK && op.Return < healFault {
			before = max(before, op.Addr+1)
		}
	}
	for _, op := range res.History.Ops {
		switch {
		case op.Return < healFault || op.Return >= healPhase:
		case op.Kind == OpAppend && op.Outcome == OK && op.Invoke >= healFault && op.Addr >= before && affected(op.Addr):
			if hr.Append < 0 || op.Return-healFault < hr.Append {
				hr.Append = op.Return - healFault
			}
		case op.Kind == OpRead && (op.Outcome == OK || op.Outcome == Junk) && op.Invoke >= healFault && affected(op.Addr):
			if hr.Read < 0 || op.Return-healFault < hr.Read {
				hr.Read = op.Return - healFault
			}
		}
	}
	return hr
}
