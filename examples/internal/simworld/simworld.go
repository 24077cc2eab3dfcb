// Package simworld runs object workloads on the simulator: a cluster, its
// network and the faults of a sim.Swarm seed (the whole catalog, drawn as
// the simulator's own sweep draws it), with client tasks that the caller
// writes. It is what package sim's Run does for its built-in workload, with
// the workload left to the caller.
package simworld

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/transport"
)

// World is one simulated run: a cluster under the faults of its options,
// and the workload's client tasks. It is driven by one goroutine, and its
// methods other than Run are called from its tasks.
type World struct {
	Options sim.Options
	Sched   *sim.Scheduler
	Net     *sim.Network
	Cluster *sim.Cluster
	Faults  *sim.Faults
	// Heal is when the fault phase ends, from the start.
	Heal time.Duration

	start   time.Time
	bg      context.Context
	names   []transport.NodeID
	next    int
	errs    []error
	running int
}

// New builds the world of options o (see sim.Swarm) with clients client
// nodes, named "client1" and on, that the fault plan may aim at.
func New(o sim.Options, clients int) (*World, error) {
	o = o.Expanded()
	s := sim.NewScheduler(o.Seed)
	s.MaxSteps = uint64(o.MaxSteps)
	net := sim.NewNetwork(s, sim.Constant(o.Latency))
	cl, err := sim.NewCluster(s, net, o.Cluster)
	if err != nil {
		s.Close()
		return nil, err
	}
	w := &World{Options: o, Sched: s, Net: net, Cluster: cl, start: s.Now(), bg: context.Background()}
	var durable *sim.Durable
	if o.Disk == sim.DiskDurable {
		if durable, err = cl.UseDurable(); err != nil {
			w.Close()
			return nil, err
		}
	}
	for i := range clients {
		w.names = append(w.names, transport.NodeID(fmt.Sprintf("client%d", i+1)))
	}
	if err := w.plan(durable); err != nil {
		w.Close()
		return nil, err
	}
	return w, nil
}

// plan plans the faults on the cluster's nodes and the clients, and wires
// the node faults to the cluster, as the simulator's own runs do.
func (w *World) plan(durable *sim.Durable) error {
	cl, s := w.Cluster, w.Sched
	topo := sim.Topology{
		Layouts:   cl.Projection.Layout,
		Sequencer: cl.Projection.Sequencer,
		Standby:   cl.Standby,
		Units:     cl.UnitIDs,
		Clients:   w.names,
		Replicas:  cl.Options.Replicas,
	}
	f := sim.NewFaults(s, w.Net.Policy())
	fail := func(err error) {
		if err != nil {
			w.errs = append(w.errs, err)
		}
	}
	f.OnCrash = func(n transport.NodeID) { fail(cl.Crash(n)) }
	f.OnRestart = func(n transport.NodeID) { fail(cl.Restart(n)) }
	f.OnReformat = func(n transport.NodeID) { fail(cl.RestartFrom(n, sim.FaultReformat)) }
	f.OnAmnesia = func(n transport.NodeID) { fail(cl.RestartFrom(n, sim.FaultAmnesia)) }
	cfg := w.Options.Faults
	if durable != nil {
		f.OnDisk = durable.DiskFault
		f.OnRestartFrom = func(n transport.NodeID, kind sim.FaultKind) { fail(cl.RestartFrom(n, kind)) }
		f.ReplyDelay = cl.ReplyDelay
		cl.CutPower = f.CutPower
	} else {
		// NB: the disk faults need durable units.
		cfg.SlowDisks, cfg.Corrupts, cfg.Misdirects, cfg.Torn, cfg.FullDisks, cfg.Swaps = 0, 0, 0, 0, 0, 0
	}
	if err := f.Plan(cfg, topo); err != nil {
		return err
	}
	w.Net.SetPolicy(f)
	cl.Clock = f.ClockOffset
	w.Faults = f
	w.Heal = max(cfg.Duration, 0)
	return nil
}

// Close releases the world.
func (w *World) Close() {
	w.Cluster.Close()
	w.Sched.Close()
}

// Since returns the virtual time since the start.
func (w *World) Since() time.Duration { return w.Sched.Now().Sub(w.start) }

// Healed reports whether the fault phase is over.
func (w *World) Healed() bool { return w.Since() >= w.Heal }

// UntilHeal sleeps until the fault phase is over.
func (w *World) UntilHeal() error { return w.Sched.Sleep(w.bg, w.Heal-w.Since()) }

// Context returns a context for one operation of the workload: it ends
// after the workload's operation timeout.
func (w *World) Context() (context.Context, context.CancelFunc) {
	return w.Sched.WithTimeout(w.bg, w.Options.Workload.OpTimeout)
}

// Sleep sleeps d.
func (w *World) Sleep(d time.Duration) error { return w.Sched.Sleep(w.bg, d) }

// Go starts the workload's next client task. f gets the task's node name
// for Open; an error it returns fails the run.
func (w *World) Go(f func(node transport.NodeID) error) {
	if w.next >= len(w.names) {
		w.errs = append(w.errs, fmt.Errorf("simworld: more tasks than the %d clients planned", len(w.names)))
		return
	}
	node := w.names[w.next]
	w.next++
	w.running++
	w.Sched.Go(string(node), func() {
		defer func() { w.running-- }()
		if err := f(node); err != nil {
			w.errs = append(w.errs, fmt.Errorf("%s: %w", node, err))
		}
	})
}

// Open opens a client on node, trying again while faults keep it from the
// layout servers; after the heal it must succeed within the operation
// timeout.
func (w *World) Open(node transport.NodeID) (*corfu.Client, error) {
	for {
		ctx, cancel := w.Context()
		c, err := w.Cluster.ClientAs(ctx, node, w.Options.Client)
		cancel()
		if err == nil {
			return c, nil
		}
		if w.Since() >= w.Heal+w.Options.Workload.OpTimeout {
			return nil, fmt.Errorf("cannot open a client %v after the heal: %w", w.Since()-w.Heal, err)
		}
		if err := w.Sleep(w.Options.Client.RPCTimeout + time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// Run runs the tasks started with Go (and those they start) to their end,
// and returns the first failure: a task's error, a fault hook's, a stall or
// a panic.
func (w *World) Run() error {
	err := w.Sched.Run()
	if err == nil && w.running > 0 {
		err = fmt.Errorf("simworld: %d tasks never finished", w.running)
	}
	return errors.Join(append([]error{err}, w.errs...)...)
}

// EveryKind turns on, in o, every kind of fault that sim.Swarm left out of
// its seed, so that the run injects the whole catalog at once: a fault
// phase of 3 s if there was none, the bimodal latency model, 10% loss, 20%
// duplication (up to 1 s late), 10% reordering, one window of every counted
// kind and two reconfigurations. Kinds the seed chose keep its draws. The
// disk faults strike only the seeds Swarm made durable.
func EveryKind(o *sim.Options) {
	f := &o.Faults
	if f.Duration == 0 {
		f.Duration = 3 * time.Second
	}
	if f.Latency == "" {
		f.Latency = "bimodal"
	}
	if f.Drop == 0 {
		f.Drop = 0.1
	}
	if f.Duplicate == 0 {
		f.Duplicate, f.DuplicateLate = 0.2, time.Second
	}
	if f.Reorder == 0 {
		f.Reorder = 0.1
	}
	for _, c := range []*int{&f.Clogs, &f.Swizzles, &f.Partitions, &f.Asymmetric, &f.Bridges, &f.Flaps,
		&f.Blackouts, &f.Outages, &f.Pauses, &f.Crashes, &f.Clocks, &f.Reformats, &f.Amnesias} {
		if *c == 0 {
			*c = 1
		}
	}
	if o.Workload.Reconfigs == 0 {
		o.Workload.Reconfigs = 2
	}
}
