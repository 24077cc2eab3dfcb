package sim

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// ClusterConfig shapes a simulated cluster; see corfutest.Options. Its zero
// value is 3 layout servers, a sequencer and 6 units in chains of 2.
type ClusterConfig = corfutest.Options

func setDefault[T int | time.Duration](v *T, def T) {
	if *v == 0 {
		*v = def
	}
}

// Cluster is a CORFU deployment inside the simulator: layout servers, a
// sequencer and storage units, each a node of the simulated network serving
// the same transport.Server that production uses.
//
// A Cluster is used by one task or event of its scheduler at a time.
type Cluster struct {
	*corfutest.Servers
	Sched   *Scheduler
	Net     *Network
	Monitor *Monitor
	// Disk decides what a unit keeps across a crash; nil means MemoryDisk.
	Disk Disk
	// Clock, if set, gives how far a client node's clock is off now; the
	// Env of every client opened afterwards adds it to Now (fault catalog
	// C1). Faults.ClockOffset fits.
	Clock func(node transport.NodeID) time.Duration
	// Mutants switches on deliberately broken protocol variants, for the
	// checker's own tests (see internal/mutant): in the clients opened
	// afterwards and in the servers' wrappers.
	Mutants mutant.Set

	unregister []func() // mutant registrations of the clients opened

	// committed lists every projection the layout servers committed, in
	// epoch order, for translating units' local addresses to global ones;
	// commits has the time each was first seen committed.
	committed []*projection.Projection
	commits   []EpochChange
	clients   int
	servers   map[transport.NodeID]*transport.Server // looked up, never iterated
	crashed   map[transport.NodeID]bool              // looked up, never iterated
}

// EpochChange is a projection committed during a run: its epoch and the
// virtual time, since the run started, when a layout server first
// committed it.
type EpochChange struct {
	Epoch storage.Epoch
	At    time.Duration
}

// Disk decides what a storage unit keeps when its node crashes. It is the
// hook for the storage faults that need a durable unit: a power loss that
// discards what was not synced (fault catalog P3), a restart with an empty
// disk (P4), and the disk faults D1-D6. A Disk that cannot model a kind
// returns an error wrapping ErrUnsupportedFault.
type Disk interface {
	// Restart returns the unit that serves node after it restarts from a
	// fault of the given kind, u being the unit it served before.
	Restart(node transport.NodeID, kind FaultKind, u storage.Unit) (storage.Unit, error)
}

// ErrUnsupportedFault reports a fault that a component cannot model.
var ErrUnsupportedFault = errors.New("sim: fault not supported")

// MemoryDisk is the Disk of the in-memory units (storage.Memory). It treats
// a unit's contents and sealed epoch as durable, as if every write were
// synced before its ack: a crash (P2) keeps the unit as it was. A reformat
// (P4) brings it back blank (storage.NewBlank). It models no other storage
// fault.
type MemoryDisk struct{}

// Restart returns u for a crash, a blank unit for a reformat, and an error
// wrapping ErrUnsupportedFault for any other kind.
func (MemoryDisk) Restart(node transport.NodeID, kind FaultKind, u storage.Unit) (storage.Unit, error) {
	switch kind {
	case FaultCrash:
		return u, nil
	case FaultReformat:
		return storage.NewBlank(), nil
	}
	return nil, fmt.Errorf("%w: %s of %s needs a durable unit", ErrUnsupportedFault, kind, node)
}

// NewCluster builds a cluster on s and net. Every node's server is wrapped
// so the cluster's Monitor sees each replica write and fill and each token.
func NewCluster(s *Scheduler, net *Network, cfg ClusterConfig) (*Cluster, error) {
	servers, err := corfutest.Build(cfg)
	if err != nil {
		return nil, err
	}
	c := &Cluster{Servers: servers, Sched: s, Net: net, Monitor: NewMonitor(),
		committed: []*projection.Projection{servers.Projection},
		commits:   []EpochChange{{Epoch: servers.Projection.Epoch, At: s.Elapsed()}},
		servers:   make(map[transport.NodeID]*transport.Server),
		crashed:   make(map[transport.NodeID]bool)}
	c.Monitor.Committed("", servers.Projection)
	c.Monitor.InChain = c.inChain
	c.Monitor.ChainOf = func(global storage.Address) []projection.NodeID {
		loc, err := c.Latest().Locate(global)
		if err != nil {
			return nil
		}
		// NB: a blank unit (back with an empty disk, not yet rejoined) holds
		// nothing and serves nothing; the chain's order runs around it, as
		// the client's does.
		return slices.DeleteFunc(slices.Clone(loc.Chain), func(n projection.NodeID) bool {
			srv := c.servers[n]
			if srv == nil {
				return false
			}
			m, ok := srv.Unit.(*storage.Memory)
			return ok && m.Blank()
		})
	}
	ids, hs := servers.Handlers()
	for i, id := range ids {
		if srv, ok := hs[i].(*transport.Server); ok {
			c.servers[id] = srv
		}
		net.AddNode(id, &observed{inner: hs[i], c: c, node: id})
	}
	return c, nil
}

// Nodes returns the cluster's server nodes in a fixed order: layout
// servers, the sequencer, then the units, spares last.
func (c *Cluster) Nodes() []transport.NodeID {
	ids, _ := c.Handlers()
	return ids
}

// Client opens a client on its own network node, named "client1",
// "client2"... in order of opening; see ClientAs.
func (c *Cluster) Client(ctx context.Context, cfg corfu.Config) (*corfu.Client, error) {
	c.clients++
	return c.ClientAs(ctx, projection.NodeID(fmt.Sprintf("client%d", c.clients)), cfg)
}

// ClientAs opens a client on the network node name, with its own random
// sub-stream Fork(name). It must run inside a task of the cluster's
// scheduler. cfg's Layout, Transport, Env and Backpointers are set by the
// cluster. Opening a client twice under one name gives two clients that
// share a node and a random stream.
func (c *Cluster) ClientAs(ctx context.Context, name transport.NodeID, cfg corfu.Config) (*corfu.Client, error) {
	cfg.Layout = c.Projection.Layout
	cfg.Transport = &stampedCaller{inner: c.Net.Caller(name), node: name, m: c.Monitor}
	cfg.Env = c.Sched.Env(string(name))
	if c.Clock != nil {
		cfg.Env = &skewedEnv{Env: cfg.Env, node: name, offset: c.Clock}
	}
	cfg.Backpointers = c.Options.Backpointers
	if c.Mutants.Any() {
		c.unregister = append(c.unregister, mutant.Register(cfg.Env, c.Mutants))
	}
	return corfu.Open(ctx, cfg)
}

// stampedCaller is a client's Caller. It watches the epochs the client
// stamps its requests with, in the order the client issues them (before the
// network can reorder them), and reports to the Monitor a request whose
// epoch is below one the client issued before.
//
// NB: only tokens and trims count. A client stamps them with the projection
// it has installed, and nothing else; a reconfiguring client reads, fills,
// writes (completing chains) and seals at the epoch it is moving to before
// that epoch is committed, and carries on at its installed epoch if the
// reconfiguration fails, which is no regression.
type stampedCaller struct {
	inner transport.Caller
	node  transport.NodeID
	m     *Monitor
	high  storage.Epoch // the newest epoch of a token or trim sent
	op    transport.Op  // the request that carried it
}

func (s *stampedCaller) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	switch req.Op {
	case transport.OpToken, transport.OpTrim, transport.OpPrefixTrim:
		if req.Epoch < s.high {
			s.m.ClientWentBack(s.node, req.Op.String(), req.Epoch, s.high)
		}
		s.high = max(s.high, req.Epoch)
	}
	return s.inner.Call(ctx, to, req)
}

// skewedEnv is a client's Env whose clock is off by what offset says: only
// Now changes (a pointer, so that it can key maps as Envs do); durations (Sleep, WithTimeout, AfterFunc) run in true
// virtual time, as a monotonic clock's would.
type skewedEnv struct {
	corfu.Env
	node   transport.NodeID
	offset func(transport.NodeID) time.Duration
}

func (e *skewedEnv) Now() time.Time { return e.Env.Now().Add(e.offset(e.node)) }

// Crash kills node's server: until Restart it is down (the network's
// Faults drop what reaches it). A sequencer loses its state at once but for
// its durable reservation mark; its replacement, installed here, restarts
// from that mark and is not ready, so
// clients must recover it by reconfiguring. A storage unit is handed to the
// Disk at Restart. A layout server keeps its acceptor: Paxos needs durable
// acceptors. Crash reports an unknown node as an error.
func (c *Cluster) Crash(node transport.NodeID) error {
	srv := c.servers[node]
	if srv == nil {
		return fmt.Errorf("sim: crash: no server %s", node)
	}
	c.crashed[node] = true
	if srv.Sequencer != nil {
		// NB: the reservation mark is the sequencer's one durable value
		// (its host persists it before answering); the rest is lost.
		fresh := sequencer.New(sequencer.Config{Backpointers: c.Options.Backpointers, Floor: srv.Sequencer.Mark(), Recovered: true})
		srv.Sequencer = fresh
		c.Servers.Sequencer = fresh
		c.Monitor.SequencerLost()
	}
	return nil
}

// Restart brings a crashed node back. A unit comes back with what the
// Disk keeps of it.
func (c *Cluster) Restart(node transport.NodeID) error { return c.RestartFrom(node, FaultCrash) }

// RestartFrom brings a node back from a crash of the given kind: FaultCrash,
// or FaultReformat for a unit whose disk came back empty. A unit comes back
// with what the Disk keeps of it after that kind of fault.
func (c *Cluster) RestartFrom(node transport.NodeID, kind FaultKind) error {
	srv := c.servers[node]
	if srv == nil || !c.crashed[node] {
		return fmt.Errorf("sim: restart: %s is not a crashed server", node)
	}
	c.crashed[node] = false
	if srv.Unit != nil {
		d := c.Disk
		if d == nil {
			d = MemoryDisk{}
		}
		u, err := d.Restart(node, kind, srv.Unit)
		if err != nil {
			return err
		}
		srv.Unit = u
	}
	return nil
}

// ServingUnit returns the unit node serves now: after a reformat, the one
// the Disk brought back, not the one in Units. It returns nil for a node
// that serves no unit.
func (c *Cluster) ServingUnit(node transport.NodeID) storage.Unit {
	if srv := c.servers[node]; srv != nil {
		return srv.Unit
	}
	return nil
}

// Commits returns every projection committed so far, the initial one
// first, with the time each was first committed.
func (c *Cluster) Commits() []EpochChange { return slices.Clone(c.commits) }

// global maps a unit's local address to the global address, through the
// newest committed projection that places the unit's local address in one
// of its segments. A node's local ranges never overlap across segments, and
// a closed segment keeps its mapping in every later projection.
func (c *Cluster) global(node projection.NodeID, local storage.Address) (storage.Address, bool) {
	for i := len(c.committed) - 1; i >= 0; i-- {
		p := c.committed[i]
		for si, seg := range p.Segments {
			k := storage.Address(len(seg.Stripes))
			if local < seg.Base || seg.End != 0 && local >= seg.Base+(seg.End-seg.Start+k-1)/k {
				continue
			}
			for ci, chain := range seg.Stripes {
				if slices.Contains(chain, node) {
					g, err := p.Global(si, ci, local)
					return g, err == nil
				}
			}
		}
	}
	return 0, false
}

// inChain reports whether node is a replica of global's chain in the newest
// committed projection; an address no segment covers counts every node.
func (c *Cluster) inChain(global storage.Address, node projection.NodeID) bool {
	loc, err := c.Latest().Locate(global)
	if err != nil {
		return true
	}
	return slices.Contains(loc.Chain, node)
}

// Close releases what the cluster registered for its mutants.
func (c *Cluster) Close() {
	for _, f := range c.unregister {
		f()
	}
	c.unregister = nil
}

// isMutation reports whether op changes what a unit stores.
func isMutation(op transport.Op) bool {
	return op == transport.OpWrite || op == transport.OpFill || op == transport.OpTrim || op == transport.OpPrefixTrim
}

// mutate applies the server-side mutants to a request on its way in.
func (o *observed) mutate(req *transport.Request) {
	mut := o.c.Mutants
	if !mut.Any() {
		return
	}
	srv := o.c.servers[o.node]
	switch {
	case mut.UnitIgnoresSeal && srv != nil && srv.Unit != nil && req.Op >= transport.OpWrite && req.Op < transport.OpSeal:
		// Mutant: a stale request is served as if it were current.
		if m, ok := srv.Unit.(*storage.Memory); ok && req.Epoch < m.Epoch() {
			req.Epoch = m.Epoch()
		}
	case mut.SequencerRestartsAtZero && srv != nil && srv.Sequencer != nil && req.Op == transport.OpSeqSeal:
		// Mutant: the sequencer loses everything, its reservation mark
		// included, at every seal...
		fresh := sequencer.New(sequencer.Config{Backpointers: o.c.Options.Backpointers})
		srv.Sequencer = fresh
		o.c.Servers.Sequencer = fresh
	case mut.SequencerRestartsAtZero && srv != nil && srv.Sequencer != nil && req.Op == transport.OpBootstrap:
		req.Addr = 0 // ...and comes back at zero, whatever the tail.
	}
}

// Latest returns the newest projection the layout servers committed.
func (c *Cluster) Latest() *projection.Projection { return c.committed[len(c.committed)-1] }

// observed reports what a node's server did to the cluster's Monitor: every
// replica write and fill it accepted, and every token it handed out. It sits
// at the network boundary, outside the protocol code.
type observed struct {
	inner transport.Handler
	c     *Cluster
	node  projection.NodeID
}

func (o *observed) Handle(req *transport.Request) *transport.Response {
	// S8 (fencing) is checked here, where the unit's sealed epoch and the
	// request's are both in view, before any mutant touches the request.
	var sealed storage.Epoch
	var stale bool
	if srv := o.c.servers[o.node]; srv != nil && srv.Unit != nil && (isMutation(req.Op) || req.Op == transport.OpRead) {
		if m, ok := srv.Unit.(*storage.Memory); ok {
			sealed = m.Epoch()
			stale = req.Epoch < sealed
		}
	}
	epoch := req.Epoch
	o.mutate(req)
	resp := o.inner.Handle(req)
	if resp.Err != nil {
		return resp
	}
	m := o.c.Monitor
	if stale {
		m.Fenced(o.node, req.Op.String(), req.Addr, epoch, sealed)
	}
	switch req.Op {
	case transport.OpWrite:
		if g, ok := o.c.global(o.node, req.Addr); ok {
			m.Stored(g, o.node, req.Data)
		}
	case transport.OpFill:
		if g, ok := o.c.global(o.node, req.Addr); ok {
			m.Filled(g, o.node)
		}
	case transport.OpCommit:
		if p := req.Projection; p != nil {
			m.Committed(o.node, p)
			if p.Epoch > o.c.Latest().Epoch {
				o.c.committed = append(o.c.committed, p.Clone())
				o.c.commits = append(o.c.commits, EpochChange{Epoch: p.Epoch, At: o.c.Sched.Elapsed()})
			}
		}
	case transport.OpGetLayout:
		if p := resp.Projection; p != nil {
			m.LayoutAnswered(o.node, p.Epoch)
		}
	case transport.OpToken:
		if req.N > 0 {
			m.Tokens(req.Epoch, resp.Addr, int(req.N))
		}
	}
	return resp
}
