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
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/persist"
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

	// Standby is the standby sequencer's node (see AddStandby); "" if
	// none.
	Standby transport.NodeID
	// Wrap, if set, wraps the Caller of every client opened afterwards,
	// outside the Monitor's view of its requests: a workload's filter on a
	// client's own transport (losing, holding or cutting short some of its
	// requests). It returns c for a client it leaves alone.
	Wrap func(node transport.NodeID, c transport.Caller) transport.Caller

	unregister []func() // mutant registrations of the clients opened

	// committed lists every projection the layout servers committed, in
	// epoch order, for translating units' local addresses to global ones;
	// commits has the time each was first seen committed.
	committed    []*projection.Projection
	commits      []EpochChange
	incarnations uint64 // sequencer starts after the first (nextIncarnation)
	// known has the projection chosen for each epoch, as soon as the
	// cluster knows it: committed at some layout server, or accepted by a
	// majority of them at one rank (a client may use a chosen projection
	// before any commit arrives); knownEpochs lists its keys, increasing.
	// accepts counts the acceptances of each proposal.
	known       map[storage.Epoch]*projection.Projection // looked up, never iterated
	knownEpochs []storage.Epoch
	// unplaced lists the writes and fills that no known projection placed
	// when they were served: a rebuild copies a chain to a unit before a
	// projection names it in the chain (corfu.Rebuild). Each is reported
	// to the Monitor once a projection learned later places it.
	unplaced []unplacedStore
	// Batches counts the write batches the units answered (OpWriteBatch)
	// and the writes they carried.
	Batches BatchStats
	accepts []acceptance
	clients int
	// tokensFrom is the sequencer node that last handed out tokens.
	tokensFrom transport.NodeID
	servers    map[transport.NodeID]*transport.Server // looked up, never iterated
	crashed    map[transport.NodeID]bool              // looked up, never iterated
	// inspectors has the view of the unit each unit node serves now (see
	// setUnit): every unit has one, or the cluster refused it.
	inspectors map[transport.NodeID]storage.Inspector // looked up, never iterated
	// observers has each server node's wrapper, whose server a durable
	// restart replaces (see replaceServer).
	observers map[transport.NodeID]*observed // looked up, never iterated
	// waits has each unit node's parked reads (OpReadWait), which a
	// crash loses.
	waits map[transport.NodeID]*transport.ReadWaits // looked up, never iterated

	// durable is the cluster's durable mode, nil for the in-memory one
	// (see UseDurable).
	durable *Durable
	// CutPower, if set, takes a node down at once, as Faults.CutPower
	// does: a durable unit's power went during a write (FaultTorn).
	CutPower func(node transport.NodeID)
	// replyDelay is the time a node's slow disk took for the request it
	// just served, until its answer leaves (see ReplyDelay).
	replyDelay map[transport.NodeID]time.Duration // looked up, never iterated
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
//
// Every unit a Disk returns must implement storage.Inspector, the view the
// cluster's checks read (S8 fencing, S16, the blank units a chain's order
// runs around): the cluster refuses one that does not, with an error,
// rather than skip a check.
type Disk interface {
	// Restart returns the unit that serves node after it restarts from a
	// fault of the given kind, u being the unit it served before.
	Restart(node transport.NodeID, kind FaultKind, u storage.Unit) (storage.Unit, error)
}

// ErrNoInspector reports a storage unit that does not implement
// storage.Inspector: the simulator cannot check it.
var ErrNoInspector = errors.New("sim: unit does not implement storage.Inspector")

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
		committed:  []*projection.Projection{servers.Projection},
		commits:    []EpochChange{{Epoch: servers.Projection.Epoch, At: s.Elapsed()}},
		servers:    make(map[transport.NodeID]*transport.Server),
		crashed:    make(map[transport.NodeID]bool),
		inspectors: make(map[transport.NodeID]storage.Inspector),
		observers:  make(map[transport.NodeID]*observed),
		waits:      make(map[transport.NodeID]*transport.ReadWaits),
		replyDelay: make(map[transport.NodeID]time.Duration),
		known:      make(map[storage.Epoch]*projection.Projection)}
	c.Monitor.Committed("", servers.Projection)
	c.learn(servers.Projection)
	c.Monitor.InChain = c.inChain
	c.Monitor.ChainOf = c.chainOf
	c.Monitor.TrimmedOn = c.trimmedOn
	ids, hs := servers.Handlers()
	for i, id := range ids {
		if srv, ok := hs[i].(*transport.Server); ok {
			c.servers[id] = srv
			if srv.Unit != nil {
				if err := c.setUnit(id, srv.Unit); err != nil {
					return nil, err
				}
			}
		}
		o := &observed{inner: hs[i], c: c, node: id}
		c.observers[id] = o
		var h transport.Handler = o
		if srv, ok := hs[i].(*transport.Server); ok && srv.Unit != nil {
			// NB: outside the observer, so that what a parked read
			// reads is observed as a read, after the write that woke it.
			w := transport.NewReadWaits(o, s)
			c.waits[id] = w
			h = w
		}
		net.AddNode(id, h)
	}
	return c, nil
}

// replaceServer makes srv the server of node: a durable node restarted
// from its disk serves anew.
func (c *Cluster) replaceServer(node transport.NodeID, srv *transport.Server) {
	c.servers[node] = srv
	c.observers[node].inner = srv
	if srv.Sequencer != nil && node == c.Projection.Sequencer {
		c.Servers.Sequencer = srv.Sequencer
	}
}

// ReplyDelay returns, and forgets, the time node's slow disk took for the
// request it just served (FaultSlowDisk): its answer leaves that much
// later. It fits Faults.ReplyDelay.
func (c *Cluster) ReplyDelay(node transport.NodeID) time.Duration {
	d := c.replyDelay[node]
	if d != 0 {
		delete(c.replyDelay, node)
	}
	return d
}

// Nodes returns the cluster's server nodes in a fixed order: layout
// servers, the sequencer, then the units, spares last, then the standby
// sequencer if there is one.
func (c *Cluster) Nodes() []transport.NodeID {
	ids, _ := c.Handlers()
	if c.Standby != "" {
		ids = append(ids, c.Standby)
	}
	return ids
}

// StandbyName is the node of the standby sequencer AddStandby adds.
const StandbyName transport.NodeID = "seq1"

// AddStandby adds a second sequencer node, StandbyName, outside the
// projection: a new sequencer, not bootstrapped, that a reconfiguration
// can move the log's sequencer to (corfu.MoveSequencer), and back from.
// It returns the node. Adding it twice adds nothing.
func (c *Cluster) AddStandby() transport.NodeID {
	if c.Standby == "" {
		c.Standby = StandbyName
		srv := &transport.Server{Sequencer: sequencer.New(sequencer.Config{Backpointers: c.Options.Backpointers, Incarnation: c.nextIncarnation()})}
		c.servers[c.Standby] = srv
		o := &observed{inner: srv, c: c, node: c.Standby}
		c.observers[c.Standby] = o
		c.Net.AddNode(c.Standby, o)
		if c.durable != nil {
			// NB: a new sequencer, not bootstrapped, that restarts from
			// its directory at once: its state is empty.
			if err := c.durable.startSequencer(c.Standby, false); err != nil {
				c.Sched.fail(err)
			}
		}
	}
	return c.Standby
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
	var inner transport.Caller = c.Net.Caller(name)
	if c.Wrap != nil {
		inner = c.Wrap(name, inner)
	}
	stamped := &stampedCaller{inner: inner, node: name, m: c.Monitor}
	cfg.Transport = stamped
	cfg.Env = c.Sched.Env(string(name))
	if c.Clock != nil {
		cfg.Env = &skewedEnv{Env: cfg.Env, node: name, offset: c.Clock}
	}
	cfg.Backpointers = c.Options.Backpointers
	if c.Mutants.Any() {
		c.unregister = append(c.unregister, mutant.Register(cfg.Env, c.Mutants))
	}
	cl, err := corfu.Open(ctx, cfg)
	if err == nil {
		stamped.client = cl
	}
	return cl, err
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
//
// It also samples the epoch of the projection the client has installed,
// before and after every request: that never goes back either (a client
// installs only newer projections), whatever the layout servers it asked.
type stampedCaller struct {
	inner transport.Caller
	node  transport.NodeID
	m     *Monitor
	high  storage.Epoch // the newest epoch of a token or trim sent
	op    transport.Op  // the request that carried it
	// client is the client, once opened; installed is the newest epoch
	// sampled from its projection.
	client    *corfu.Client
	installed storage.Epoch
}

func (s *stampedCaller) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	switch req.Op {
	case transport.OpToken, transport.OpTrim, transport.OpPrefixTrim:
		if req.Epoch < s.high {
			s.m.ClientWentBack(s.node, req.Op.String(), req.Epoch, s.high)
		}
		s.high = max(s.high, req.Epoch)
	}
	s.sample()
	resp, err := s.inner.Call(ctx, to, req)
	s.sample()
	return resp, err
}

// sample checks that the client's installed projection did not go back.
func (s *stampedCaller) sample() {
	if s.client == nil {
		return
	}
	e := s.client.Epoch()
	if e < s.installed {
		s.m.ProjectionWentBack(s.node, e, s.installed)
	}
	s.installed = max(s.installed, e)
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
// acceptors. In durable mode (UseDurable) the node's power goes instead,
// and a layout server or sequencer restarts at once from what its state
// directory synced. Crash reports an unknown node as an error, and in
// durable mode a state directory that does not reopen.
func (c *Cluster) Crash(node transport.NodeID) error {
	srv := c.servers[node]
	if srv == nil {
		return fmt.Errorf("sim: crash: no server %s", node)
	}
	c.crashed[node] = true
	if w := c.waits[node]; w != nil {
		w.Drop()
	}
	if c.durable != nil {
		return c.crashDurable(node, srv)
	}
	if srv.Sequencer != nil {
		// NB: the reservation mark and the epoch of the last bootstrap
		// are the sequencer's durable state (its host persists them
		// before answering); the rest is lost.
		st, kept := srv.Sequencer.State(), !srv.Sequencer.NoMark()
		fresh := sequencer.New(sequencer.Config{Backpointers: c.Options.Backpointers, Floor: st.Mark, Booted: st.Booted,
			Recovered: kept, Incarnation: c.nextIncarnation()})
		c.replaceSequencer(node, fresh)
		c.Monitor.SequencerLost()
		c.Monitor.SequencerRestarted(node, st.Mark, kept)
	}
	return nil
}

// crashDurable is Crash in durable mode: node's power goes (its disk keeps
// what it synced), and a layout server or sequencer restarts at once from
// its state directory, down until Restart as any crashed node. A unit
// restarts from its disk at Restart.
func (c *Cluster) crashDurable(node transport.NodeID, srv *transport.Server) error {
	d := c.durable
	d.powerLoss(node)
	switch {
	case srv.Sequencer != nil:
		if err := d.startSequencer(node, false); err != nil {
			return err
		}
		c.Monitor.SequencerLost()
	case srv.Layout != nil:
		dir, err := d.openState(node)
		if err != nil {
			return err
		}
		acc := projection.NewAcceptor(c.committed[0].Clone())
		if st, ok := dir.Layout(); ok {
			if acc, err = projection.RestoreAcceptor(st); err != nil {
				return fmt.Errorf("sim: restart %s: %w", node, err)
			}
		}
		if c.Mutants.Any() {
			c.unregister = append(c.unregister, mutant.Register(acc, c.Mutants))
		}
		c.replaceServer(node, &transport.Server{Layout: acc, Persist: dir})
	}
	return nil
}

// newSequencerServer returns the server of a sequencer started from its
// state directory: from its saved reservation mark, unless fresh (the
// cluster's start), with the incarnation the directory drew.
func newSequencerServer(c *Cluster, dir *persist.Dir, fresh bool) *transport.Server {
	cfg := sequencer.Config{Backpointers: c.Options.Backpointers, Incarnation: dir.Incarnation(), Reserve: simReserve}
	if !fresh {
		cfg = dir.SequencerConfig(cfg)
	}
	srv := &transport.Server{Sequencer: sequencer.New(cfg)}
	// NB: the mark of a sequencer with no mark to vouch for is not saved
	// (see persist.Dir.ForSequencer).
	srv.Persist = dir.ForSequencer(func() *sequencer.Sequencer { return srv.Sequencer })
	return srv
}

// simReserve is a simulated durable sequencer's reserve
// (sequencer.Config.Reserve): small, so that a run's few hundred tokens
// move the mark, and race its background saves, often.
const simReserve = 4

// stateSaveTime is how long a sequencer's background save of its state
// (transport.Server.Ahead) takes here: a real one writes, fsyncs and
// renames a file, and answers leave meanwhile, so a crash in that window
// restarts the sequencer from the mark saved before.
const stateSaveTime = 10 * time.Millisecond

// slowSaves runs background saves stateSaveTime late in the scheduler
// itself (the save never blocks here: the disk is in memory), so that no
// task seems to have run when it did; a save whose server was replaced
// meanwhile (it crashed) never happens.
type slowSaves struct {
	s    *Scheduler
	live func() bool // the server is still the one its node runs
}

// lateSaves is mutant SequencerSavesLate's Persister: it says a
// sequencer's state is saved at once and saves it stateSaveTime later, so
// that answers leave before what they depend on is durable.
type lateSaves struct {
	transport.Persister
	s    *Scheduler
	live func() bool // the server is still the one its node runs
}

// lateSaveTime is how late lateSaves saves: a disk slow enough (D1) that
// crashes fall in the window.
const lateSaveTime = 300 * time.Millisecond

// SaveSequencer reports success at once and saves st later, unless the
// server crashed meanwhile.
func (l lateSaves) SaveSequencer(st sequencer.State) error {
	l.s.Schedule(lateSaveTime, "sequencer late save", func() {
		if l.live() {
			_ = l.Persister.SaveSequencer(st) // NB: the answer it owed has left
		}
	})
	return nil
}

// AfterFunc implements transport.Timers. The save cannot be stopped.
func (t slowSaves) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	t.s.Schedule(d+stateSaveTime, "sequencer save", func() {
		if t.live() {
			f()
		}
	})
	return func() bool { return false }
}

// replaceSequencer makes seq the sequencer node serves.
func (c *Cluster) replaceSequencer(node transport.NodeID, seq *sequencer.Sequencer) {
	c.servers[node].Sequencer = seq
	if node == c.Projection.Sequencer {
		c.Servers.Sequencer = seq
	}
}

// Restart brings a crashed node back. A unit comes back with what the
// Disk keeps of it.
func (c *Cluster) Restart(node transport.NodeID) error { return c.RestartFrom(node, FaultCrash) }

// RestartFrom brings a node back from a crash of the given kind: FaultCrash,
// FaultReformat for a unit whose disk came back empty, or FaultAmnesia for
// a sequencer that lost even its reservation mark: it comes back as a new
// sequencer that never ran (sequencer.New with no Floor, not Recovered),
// whose seal vouches for no tail. A unit comes back with what the Disk
// keeps of it after that kind of fault.
func (c *Cluster) RestartFrom(node transport.NodeID, kind FaultKind) error {
	srv := c.servers[node]
	if srv == nil || !c.crashed[node] {
		return fmt.Errorf("sim: restart: %s is not a crashed server", node)
	}
	c.crashed[node] = false
	switch {
	case srv.Sequencer != nil && kind == FaultAmnesia && c.durable != nil:
		// NB: the state directory is lost with its disk: a new one.
		c.durable.node(node).attach(c.durable, vfs.NewMem())
		if err := c.durable.startSequencer(node, false); err != nil {
			return err
		}
	case srv.Sequencer != nil && kind == FaultAmnesia:
		c.replaceSequencer(node, sequencer.New(sequencer.Config{Backpointers: c.Options.Backpointers, Incarnation: c.nextIncarnation()}))
		c.Monitor.SequencerRestarted(node, 0, false)
	}
	if srv.Unit != nil {
		if kind == FaultReformat {
			c.Monitor.Wiped(node)
			c.forgetUnplaced(node)
		}
		d := c.Disk
		if d == nil {
			d = MemoryDisk{}
		}
		u, err := d.Restart(node, kind, srv.Unit)
		if err != nil {
			return err
		}
		if err := c.setUnit(node, u); err != nil {
			return err
		}
	}
	return nil
}

// setUnit makes u the unit node serves. It returns an error wrapping
// ErrNoInspector, and leaves node's unit as it was, if u does not
// implement storage.Inspector.
func (c *Cluster) setUnit(node transport.NodeID, u storage.Unit) error {
	in, ok := u.(storage.Inspector)
	if !ok {
		return fmt.Errorf("%w: %s serves a %T", ErrNoInspector, node, u)
	}
	c.servers[node].Unit = u
	c.inspectors[node] = in
	return nil
}

// inspector returns the view of the unit node serves now, nil for a node
// that serves no unit.
func (c *Cluster) inspector(node transport.NodeID) storage.Inspector { return c.inspectors[node] }

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

// acceptance is one proposal (an epoch, a rank and a projection) and the
// layout servers that accepted it.
type acceptance struct {
	epoch storage.Epoch
	rank  uint64
	p     *projection.Projection
	nodes []projection.NodeID
}

// learn records p as the projection chosen for its epoch, unless one is
// known for it already (the Monitor checks that the two agree).
func (c *Cluster) learn(p *projection.Projection) {
	if c.known[p.Epoch] != nil {
		return
	}
	c.known[p.Epoch] = p.Clone()
	i, _ := slices.BinarySearch(c.knownEpochs, p.Epoch)
	c.knownEpochs = slices.Insert(c.knownEpochs, i, p.Epoch)
	kept := c.unplaced[:0]
	for _, u := range c.unplaced {
		g, ok := place(p, u.node, u.local)
		switch {
		case !ok:
			kept = append(kept, u)
		case u.junk:
			c.Monitor.Filled(g, u.node, u.epoch)
		default:
			c.Monitor.Stored(g, u.node, u.epoch, u.data)
		}
	}
	c.unplaced = kept
}

// forgetUnplaced drops the unplaced stores of node, which lost its data.
func (c *Cluster) forgetUnplaced(node projection.NodeID) {
	c.unplaced = slices.DeleteFunc(c.unplaced, func(u unplacedStore) bool { return u.node == node })
}

// unplacedStore is a write (or, if junk, a fill) that a unit served at a
// local address no known projection placed (see Cluster.unplaced).
type unplacedStore struct {
	node  projection.NodeID
	local storage.Address
	epoch storage.Epoch
	junk  bool
	data  []byte
}

// accepted records that layout server node accepted p for epoch at rank.
// Once a majority of the layout servers has accepted one proposal, p is
// chosen: the Monitor checks it against every other projection chosen or
// committed (S9), and the cluster maps the requests of its epoch through
// it, commits or not.
func (c *Cluster) accepted(node projection.NodeID, epoch storage.Epoch, rank uint64, p *projection.Projection) {
	var a *acceptance
	for i := range c.accepts {
		if x := &c.accepts[i]; x.epoch == epoch && x.rank == rank && x.p.Equal(p) {
			a = x
			break
		}
	}
	if a == nil {
		c.accepts = append(c.accepts, acceptance{epoch: epoch, rank: rank, p: p.Clone()})
		a = &c.accepts[len(c.accepts)-1]
	}
	if slices.Contains(a.nodes, node) {
		return
	}
	a.nodes = append(a.nodes, node)
	if len(a.nodes) == len(c.Projection.Layout)/2+1 {
		c.Monitor.Chosen(a.nodes, rank, a.p)
		c.learn(a.p)
	}
}

// projectionAt returns the projection chosen for epoch if the cluster
// knows it, else the newest one known below it, else the oldest known.
func (c *Cluster) projectionAt(epoch storage.Epoch) *projection.Projection {
	if p := c.known[epoch]; p != nil {
		return p
	}
	i, _ := slices.BinarySearch(c.knownEpochs, epoch)
	if i > 0 {
		return c.known[c.knownEpochs[i-1]]
	}
	return c.known[c.knownEpochs[0]]
}

// newest returns the newest projection known to be chosen (see known).
func (c *Cluster) newest() *projection.Projection {
	return c.known[c.knownEpochs[len(c.knownEpochs)-1]]
}

// global maps a unit's local address, in a request of the given epoch, to
// the global address: through the projection of that epoch if the unit's
// local address lies in one of its segments (the sender mapped it so); if
// that projection is known and does not place it, not at all (a rebuild's
// copy, see unplaced); if it is not known, through the newest known
// projection below it that places it, else any newer one, oldest first. A node's local ranges never overlap across the
// closed segments, and a closed segment keeps its mapping in every later
// projection; but an open segment covers every local address above its
// base, which a later projection may give to a new segment.
func (c *Cluster) global(node projection.NodeID, local storage.Address, epoch storage.Epoch) (storage.Address, bool) {
	if g, ok := place(c.known[epoch], node, local); ok {
		return g, true
	}
	if c.known[epoch] != nil {
		// NB: the sender held the projection of epoch, which does not
		// place the address: a rebuild copying a chain to a unit that a
		// later projection adds to it (see unplaced).
		return 0, false
	}
	i, _ := slices.BinarySearch(c.knownEpochs, epoch)
	for j := i - 1; j >= 0; j-- {
		if g, ok := place(c.known[c.knownEpochs[j]], node, local); ok {
			return g, true
		}
	}
	for _, e := range c.knownEpochs[i:] {
		if g, ok := place(c.known[e], node, local); ok {
			return g, true
		}
	}
	return 0, false
}

// placed returns the global address that node's local address local held
// in the newest projection known to place it there.
func (c *Cluster) placed(node projection.NodeID, local storage.Address) (storage.Address, bool) {
	for i := len(c.knownEpochs) - 1; i >= 0; i-- {
		if g, ok := place(c.known[c.knownEpochs[i]], node, local); ok {
			return g, true
		}
	}
	return 0, false
}

// place maps node's local address to a global one through p, if one of p's
// segments places it there.
func place(p *projection.Projection, node projection.NodeID, local storage.Address) (storage.Address, bool) {
	if p == nil {
		return 0, false
	}
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
	return 0, false
}

// inChain reports whether node is a replica of global's chain in the newest
// known projection; an address no segment covers counts every node.
func (c *Cluster) inChain(global storage.Address, node projection.NodeID) bool {
	loc, err := c.newest().Locate(global)
	if err != nil {
		return true
	}
	return slices.Contains(loc.Chain, node)
}

// trimmedOn reports whether unit node has trimmed global, which it holds at
// its local address in the projection of epoch.
func (c *Cluster) trimmedOn(global storage.Address, node projection.NodeID, epoch storage.Epoch) bool {
	loc, err := c.projectionAt(epoch).Locate(global)
	in := c.inspector(node)
	if err != nil || in == nil {
		return false
	}
	state, _ := in.Inspect(loc.Local)
	return state == storage.StateTrimmed
}

// chainOf returns global's chain, head first, in the projection of epoch
// (see projectionAt), less the blank units.
func (c *Cluster) chainOf(global storage.Address, epoch storage.Epoch) []projection.NodeID {
	loc, err := c.projectionAt(epoch).Locate(global)
	if err != nil {
		return nil
	}
	// NB: a blank unit (back with an empty disk, not yet rejoined) holds
	// nothing and serves nothing; the chain's order runs around it, as
	// the client's does.
	return slices.DeleteFunc(slices.Clone(loc.Chain), func(n projection.NodeID) bool {
		in := c.inspector(n)
		return in != nil && in.Blank()
	})
}

// SetMutants switches mutants on (see Mutants), registering them for the
// layout servers' acceptors too (mutant.AcceptorSkipsEpochs is looked up
// by the acceptor itself).
func (c *Cluster) SetMutants(s mutant.Set) {
	c.Mutants = s
	if s.Any() {
		for _, a := range c.Layouts {
			c.unregister = append(c.unregister, mutant.Register(a, s))
		}
	}
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
	return op == transport.OpWrite || op == transport.OpFill || op == transport.OpTrim || op == transport.OpPrefixTrim ||
		op == transport.OpRepair || op == transport.OpWriteBatch
}

// mutate applies the server-side mutants to a request on its way in.
func (o *observed) mutate(req *transport.Request) {
	mut := o.c.Mutants
	if !mut.Any() {
		return
	}
	srv := o.c.servers[o.node]
	switch {
	case mut.UnitIgnoresSeal && srv != nil && srv.Unit != nil && (req.Op >= transport.OpWrite && req.Op < transport.OpSeal || req.Op == transport.OpWriteBatch):
		// Mutant: a stale request is served as if it were current.
		if e := o.c.inspector(o.node).Epoch(); req.Epoch < e {
			req.Epoch = e
		}
	case mut.SequencerRestartsAtZero && srv != nil && srv.Sequencer != nil && req.Op == transport.OpSeqSeal:
		// Mutant: the sequencer loses everything, its reservation mark
		// included, at every seal...
		fresh := sequencer.New(sequencer.Config{Backpointers: o.c.Options.Backpointers, Incarnation: o.c.nextIncarnation()})
		srv.Sequencer = fresh
		o.c.Servers.Sequencer = fresh
	case mut.SequencerRestartsAtZero && srv != nil && srv.Sequencer != nil && req.Op == transport.OpBootstrap:
		req.Addr = 0 // ...and comes back at zero, whatever the tail.
	case mut.UnitServesStaleReads && srv != nil && srv.Unit != nil && (req.Op == transport.OpRead || req.Op == transport.OpReadBatch):
		// Mutant: a stale read is served as if it were current.
		if e := o.c.inspector(o.node).Epoch(); req.Epoch < e {
			req.Epoch = e
		}
	}
}

// mutateResponse applies the server-side mutants to a response on its way
// out, once the Monitor has seen the true one.
func (o *observed) mutateResponse(req *transport.Request, resp *transport.Response) {
	mut := o.c.Mutants
	if !mut.Any() {
		return
	}
	switch {
	case mut.UnitWritesBelowTrim && req.Op == transport.OpWrite && errors.Is(resp.Err, storage.ErrTrimmed):
		resp.Err = nil // Mutant: a write refused below the trim mark is acknowledged.
	case mut.UnitWritesBelowTrim && req.Op == transport.OpWriteBatch && resp.Err == nil:
		// The same mutant, item by item.
		if errs, err := transport.DecodeBatchErrors(resp.Data); err == nil {
			for i, e := range errs {
				if errors.Is(e, storage.ErrTrimmed) {
					errs[i] = nil
				}
			}
			resp.Data = transport.AppendBatchErrors(nil, errs)
		}
	case mut.WrongBackpointer && req.Op == transport.OpToken && resp.Err == nil:
		// Mutant: each stream's newest address is off by one.
		// (A copy: the answer may share the sequencer's own lists.)
		tails := slices.Clone(resp.Tails)
		for i := range tails {
			if a := slices.Clone(tails[i].Addrs); len(a) > 0 && a[0] > 0 {
				a[0]--
				tails[i].Addrs = a
			}
		}
		resp.Tails = tails
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
	if in := o.c.inspector(o.node); in != nil && (isMutation(req.Op) || req.Op == transport.OpRead || req.Op == transport.OpReadBatch) {
		sealed = in.Epoch()
		stale = req.Epoch < sealed
	}
	epoch := req.Epoch
	o.mutate(req)
	d := o.c.durable
	if d != nil {
		d.serve(o.node, true)
	}
	resp := o.inner.Handle(req)
	if d != nil {
		delay, cut := d.serve(o.node, false)
		if delay > 0 {
			o.c.replyDelay[o.node] = delay
		}
		// NB: a host that could not persist what an answer depends on
		// stops serving until it restarted from its disk (see
		// transport.Server.Persist): its memory is ahead of its disk.
		cut = cut || errors.Is(resp.Err, transport.ErrNotDurable)
		if cut && o.c.CutPower != nil {
			defer o.c.CutPower(o.node) // after the Monitor saw the answer
		}
	}
	// NB: the Monitor sees what the server did; a mutant's answer to the
	// client may then lie about it.
	o.observe(req, resp, stale, epoch, sealed)
	o.mutateResponse(req, resp)
	return resp
}

// observe reports to the Monitor what the server did with req: resp is
// its answer, stale says req's epoch (epoch, before any mutant touched it)
// was below the unit's sealed epoch.
func (o *observed) observe(req *transport.Request, resp *transport.Response, stale bool, epoch, sealed storage.Epoch) {
	switch req.Op {
	case transport.OpWriteBatch:
		o.observeBatch(req, resp, stale, epoch, sealed)
		return
	case transport.OpReadBatch:
		o.observeReads(req, resp, stale, epoch, sealed)
		return
	}
	m := o.c.Monitor
	if o.c.inspector(o.node) != nil {
		// S15: a unit serves only the bytes of a write it acknowledged.
		switch {
		case req.Op == transport.OpWrite && resp.Err == nil:
			m.UnitWrote(o.node, req.Addr, req.Data)
		case req.Op == transport.OpRepair && resp.Err == nil && req.N == 0:
			// A repair with data is a write the unit acknowledged.
			m.UnitWrote(o.node, req.Addr, req.Data)
		case req.Op == transport.OpRead && resp.Err == nil:
			m.Served(o.node, req.Addr, resp.Data)
		case req.Op == transport.OpRead && errors.Is(resp.Err, storage.ErrCorrupt) && o.c.durable != nil:
			o.c.durable.stats.CaughtReads++
		}
		if req.Op == transport.OpRepair && resp.Err == nil && o.c.durable != nil {
			// NB: a repair lands only on a record the unit found corrupt
			// when it read it back (or at recovery).
			o.c.durable.stats.CaughtReads++
		}
	}
	if resp.Err != nil {
		// NB: in a batch's answer, decoded, a unit's failure is no
		// sentinel of the codec's: it reads as transport.ErrRemote.
		if req.Op == transport.OpWrite && o.c.durable != nil && (errors.Is(resp.Err, disk.ErrFailed) || errors.Is(resp.Err, transport.ErrRemote)) {
			o.c.durable.unacked(o.node, req.Addr, req.Epoch, req.Data)
		}
		return
	}
	if stale {
		m.Fenced(o.node, req.Op.String(), req.Addr, epoch, sealed)
	}
	op := req.Op
	if op == transport.OpRepair {
		// A repair replaces a record that failed its checksum, and
		// stores what it carries as a write or a fill does.
		if g, ok := o.c.global(o.node, req.Addr, req.Epoch); ok {
			m.Repaired(g, o.node)
		}
		op = transport.OpWrite
		if req.N != 0 {
			op = transport.OpFill
		}
	}
	switch op {
	case transport.OpWrite:
		if g, ok := o.c.global(o.node, req.Addr, req.Epoch); ok {
			m.Stored(g, o.node, req.Epoch, req.Data)
		} else {
			o.c.unplaced = append(o.c.unplaced, unplacedStore{node: o.node, local: req.Addr, epoch: req.Epoch, data: slices.Clone(req.Data)})
		}
	case transport.OpFill:
		if g, ok := o.c.global(o.node, req.Addr, req.Epoch); ok {
			m.Filled(g, o.node, req.Epoch)
		} else {
			o.c.unplaced = append(o.c.unplaced, unplacedStore{node: o.node, local: req.Addr, epoch: req.Epoch, junk: true})
		}
	case transport.OpPropose:
		if p := req.Projection; p != nil {
			o.c.accepted(o.node, req.Epoch, req.Rank, p)
		}
	case transport.OpCommit:
		if p := req.Projection; p != nil {
			m.Committed(o.node, p)
			o.c.learn(p)
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
			m.SequencerAnswered(o.node, resp.Addr+storage.Address(req.N))
			// NB: tokens, not a tail query (a failure detector's probe of a
			// standby asks for the tail too).
			o.c.tokensFrom = o.node
		} else {
			m.TailAnswered(resp.Addr)
		}
	case transport.OpBootstrap:
		// NB: a bootstrap never lowers a sequencer's tail: what it starts
		// from is the sequencer's tail now, not the one requested.
		tail := req.Addr
		if srv := o.c.servers[o.node]; srv != nil && srv.Sequencer != nil {
			tail = srv.Sequencer.Tail()
		}
		m.Bootstrapped(req.Epoch, tail, o.c.Sched.Elapsed())
		if o.c.tokensFrom != "" && o.c.tokensFrom != o.node {
			// NB: a sequencer moved to another node knows only the tail the
			// seal found, as a restarted one does: if the seal missed the
			// old one, the addresses it handed out and nobody wrote may be
			// handed out again, harmlessly (see Monitor.SequencerLost).
			m.SequencerLost()
		}
	}
}

// observeBatch observes a batch of writes as the writes it carries, each
// with its own answer.
func (o *observed) observeBatch(req *transport.Request, resp *transport.Response, stale bool, epoch, sealed storage.Epoch) {
	if resp.Err != nil {
		return // NB: refused whole (malformed, wrong role): nothing stored
	}
	items, err := transport.DecodeWriteBatch(req.Data)
	if err != nil {
		return
	}
	errs, err := transport.DecodeBatchErrors(resp.Data)
	if err != nil || len(errs) != len(items) {
		panic(fmt.Sprintf("sim: %s answered a batch of %d writes with %d answers (%v)", o.node, len(items), len(errs), err))
	}
	o.c.Batches.Requests++
	o.c.Batches.Writes += len(items)
	for i, it := range items {
		w := &transport.Request{Op: transport.OpWrite, Epoch: req.Epoch, Addr: it.Addr, Data: it.Data}
		o.observe(w, &transport.Response{Err: errs[i]}, stale, epoch, sealed)
	}
}

// observeReads observes a batched read as the reads it carries, each with
// its own answer.
func (o *observed) observeReads(req *transport.Request, resp *transport.Response, stale bool, epoch, sealed storage.Epoch) {
	if resp.Err != nil {
		return
	}
	addrs, err := transport.DecodeReadBatch(req.Data)
	if err != nil {
		return
	}
	rs, err := transport.DecodeReadResults(resp.Data)
	if err != nil || len(rs) != len(addrs) {
		panic(fmt.Sprintf("sim: %s answered a batch of %d reads with %d answers (%v)", o.node, len(addrs), len(rs), err))
	}
	for i, a := range addrs {
		r := &transport.Request{Op: transport.OpRead, Epoch: req.Epoch, Addr: a}
		o.observe(r, &transport.Response{Data: rs[i].Data, Err: rs[i].Err}, stale, epoch, sealed)
	}
}

// BatchStats counts write batches (transport.OpWriteBatch) the units
// answered.
type BatchStats struct {
	Requests int // batches answered
	Writes   int // the writes they carried
}

// nextIncarnation numbers the starts of the cluster's sequencers, for
// sequencer.Config.Incarnation; the initial one is 1.
func (c *Cluster) nextIncarnation() uint64 {
	c.incarnations++
	return 1 + c.incarnations
}
