package sim

import (
	"errors"
	"fmt"
	"math/rand/v2"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/transport"
)

// DetectorConfig returns the failure detector's configuration for a run of
// o on cl (Workload.Detector): the cluster's spares and standby, probes
// paced by the client's RPC timeout, and, in a run whose faults may wipe a
// unit's data (reformats, misdirected writes, swapped disks), closed chains
// that keep one replica more per such fault: the fault plan wipes at most
// replicas-1 units, and a unit the detector replaced while it was only cut
// off must not count as one of the survivors.
func DetectorConfig(o Options, cl *Cluster, counts map[FaultKind]int) corfu.DetectorConfig {
	cfg := corfu.DetectorConfig{
		Interval: o.Client.RPCTimeout / 2,
		Timeout:  o.Client.RPCTimeout,
		Spares:   cl.UnitIDs[len(cl.UnitIDs)-cl.Options.Spares:],
		Replicas: cl.Options.Replicas,
	}
	if cl.Standby != "" {
		cfg.Standbys = []transport.NodeID{cl.Standby}
	}
	cfg.MinReplicas = 1 + counts[FaultReformat] + counts[FaultMisdirect] + counts[FaultSwap]
	if o.Disk == DiskDurable {
		cfg.Scrub = 64 // NB: disks that damage records (D2, D3)
	}
	if n := 1 + o.peerDetectors(); n > 1 {
		cfg.Confirm = n/2 + 1
	}
	if t := o.Detector; t.Interval > 0 || t.Timeout > 0 || t.Misses > 0 {
		cfg.Interval, cfg.Timeout, cfg.Misses = t.Interval, t.Timeout, t.Misses
	}
	return cfg
}

// detector runs a corfu.Detector (Workload.Detector) until the other
// clients are done, recording what it did as reconfigurations; once the
// run has healed it runs one reconfiguration of its own, which must
// commit a new epoch (L2).
func (r *run) detector(id int, rng *rand.Rand) error { return r.runDetector(id, true) }

// peerDetector runs another detector (Workload.Vantages), which confirms
// the first one's suspicions and has them confirmed, until the other
// clients are done.
func (r *run) peerDetector(id int, rng *rand.Rand) error { return r.runDetector(id, false) }

// runDetector runs a detector on client id; first says it is the
// reconfiguring client's, which also runs the reconfiguration after the
// heal.
func (r *run) runDetector(id int, first bool) error {
	c, err := r.open(id)
	if err != nil {
		return err
	}
	cfg := DetectorConfig(r.o, r.cl, r.faults.Counts())
	cfg.OnEvent = func(ev corfu.DetectorEvent) {
		if ev.Kind == "suspect" {
			return
		}
		// NB: the client's clock may be skewed (fault clock): the run's
		// own time places the record.
		r.recordReconfig(detectorWhat(ev), r.since(), ev.Epoch, ev.Err)
	}
	d := corfu.NewDetector(c, cfg)
	healed := r.heal == 0 || !first
	// NB: the detectors run until every other client is done.
	for r.running > 1+r.o.peerDetectors() || !healed {
		ctx, cancel := r.s.WithTimeout(r.bg, r.w.OpTimeout)
		d.Step(ctx)
		cancel()
		if !healed && r.since() >= r.heal {
			healed = true
			r.healedReconfig = r.reconfigureOnce(c)
		}
		if err := r.s.Sleep(r.bg, cfg.Interval); err != nil {
			return err
		}
	}
	return nil
}

// reconfigureOnce runs the reconfiguration after the heal (L2): a new
// epoch with the layout unchanged, tried again on top of a concurrent
// recovery that took the epoch.
func (r *run) reconfigureOnce(c *corfu.Client) error {
	var err error
	for range 3 {
		begin := r.since()
		ctx, cancel := r.s.WithTimeout(r.bg, r.w.OpTimeout)
		var p *projection.Projection
		p, err = c.Reconfigure(ctx, nil)
		cancel()
		r.recordReconfig("new epoch after the heal", begin, epochOf(p), err)
		if !errors.Is(err, corfu.ErrReconfigLost) {
			return err
		}
	}
	// NB: lost every time to the detector's own reconfigurations or the
	// clients' recoveries: what L2 asks for, a new epoch committed after
	// the heal, is there all the same.
	for _, ch := range r.cl.Commits() {
		if ch.At >= r.heal {
			return nil
		}
	}
	return err
}

// detectorWhat describes a detector event for the run's fault list.
func detectorWhat(ev corfu.DetectorEvent) string {
	switch ev.Kind {
	case "replace":
		if ev.Fresh == "" {
			return fmt.Sprintf("detector: take %s out of its chain", ev.Node)
		}
		return fmt.Sprintf("detector: replace %s by %s", ev.Node, ev.Fresh)
	case "move":
		return fmt.Sprintf("detector: move the sequencer from %s to %s", ev.Node, ev.Fresh)
	case "rejoin":
		return fmt.Sprintf("detector: let blank %s rejoin", ev.Node)
	case "grow":
		return fmt.Sprintf("detector: add %s to a short chain", ev.Fresh)
	case "drop":
		return fmt.Sprintf("detector: take %s out of the closed chains", ev.Node)
	case "rebuild":
		return "detector: rebuild " + ev.Detail
	}
	return "detector: " + ev.Kind
}
