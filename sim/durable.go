package sim

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/persist"
)

// The disk modes of Options.Disk.
const (
	// DiskMemory runs the in-memory units (storage.Memory), whose contents
	// survive a crash as if every write were synced, and keeps the layout
	// servers' and sequencers' state in memory across crashes (MemoryDisk).
	DiskMemory = "memory"
	// DiskDurable runs the production code's durable state beneath every
	// role (see Durable): disk.Unit for the units, persist.Dir for the
	// layout servers and sequencers, each node on a disk that loses what
	// was not synced when its power goes, with the disk faults D1-D6.
	DiskDurable = "durable"
)

// Where a node keeps its state on its disk.
const (
	unitDir  = "/data"
	stateDir = "/state"
)

// durableSegmentBytes is the segment size of the simulated units: small, so
// that runs roll segments and prefix trims delete them.
const durableSegmentBytes = 8 << 10

// Durable is a cluster's durable mode (Cluster.UseDurable): every storage
// unit is a disk.Unit, and every layout server and sequencer keeps its
// state in a persist.Dir (the transport.Server persists it before each
// answer that depends on it). Each node has a disk of its own: a vfs.MemFS,
// which keeps only what was synced when the power goes, beneath an
// errorfs.FS through which the disk faults of the catalog (D1-D6) reach
// the very code that runs in production.
//
// A crash (P2) is a power loss: the node comes back from what its disk
// synced, unsynced bytes dropped or torn (P3), a unit recovering its
// segments and a layout server or sequencer restarting from its persisted
// state. A reformat (P4) gives a unit a new, empty disk, and amnesia a
// sequencer an empty state directory.
//
// Faults are injected only while the node's server handles a request: a
// recovery and the checker's inspections read the disk as it is.
//
// Durable implements Disk. It is used by one task or event at a time, as
// its Cluster is, and draws its randomness from the scheduler's stream
// "disk", so a seed replays it.
type Durable struct {
	c     *Cluster
	rng   *rand.Rand
	nodes map[transport.NodeID]*diskNode // looked up, never iterated
	stats DiskStats
}

// DiskStats counts what the disks of a durable run went through.
type DiskStats struct {
	PowerLosses  int // crashes, each a power loss of the node's disk
	TornWrites   int // writes the power cut in the middle (D4)
	Misdirected  int // writes that landed elsewhere (D3)
	CorruptReads int // reads whose bytes the disk corrupted (D2), serving requests
	// RecoveryReads counts the reads the disk corrupted (D2) while a unit
	// or a state directory recovered at a restart: recovery must read
	// through them (read again), not take them for damage on the disk.
	RecoveryReads int
	CaughtReads   int // reads a unit caught: answered storage.ErrCorrupt, or a repair it let land
	FullRefusals  int // operations a full disk refused (D5)
	SlowOps       int // operations a slow disk delayed (D1)
	// Refused counts the restarts on a swapped disk that the unit refused,
	// as it must (D6).
	Refused int
	// Wipes counts the units whose disk a misdirected write damaged so
	// that they refused to open, and that came back blank (an operator's
	// wipe of a damaged disk).
	Wipes int
	// Lost counts the records a unit had acknowledged and no longer held
	// after recovering from a disk a misdirected write damaged: the
	// write that put them elsewhere left recovery nothing to find.
	Lost int
	// Recovered counts the records a unit answered a write of with a
	// failure (disk.ErrFailed: outcome unknown) and held after its
	// restart all the same.
	Recovered int
}

// Stats returns what the run's disks went through so far.
func (d *Durable) Stats() DiskStats { return d.stats }

var _ Disk = (*Durable)(nil)

// diskNode is one node's disk and the disk faults active on it.
type diskNode struct {
	node    transport.NodeID
	mem     *vfs.MemFS
	fs      *errorfs.FS
	entropy *rand.ChaCha8 // identities and incarnations of what it formats
	// serving says the node's server is handling a request: faults act
	// then, and recovering says the node recovers from its disk at a
	// restart: only a slow disk and corrupt reads act then (a unit opens
	// through them; see Durable.inject).
	serving, recovering bool
	// delay is the time the slow disk took for the request being served.
	delay time.Duration

	slow      time.Duration // D1: the most one operation takes; 0 if not slow
	corrupt   float64       // D2: probability that a read flips a bit
	misdirect float64       // D3: probability that a segment write lands elsewhere
	damaged   bool          // a misdirected write hit it
	torn      bool          // D4: armed: its next segment write is torn
	tornSync  bool          // the torn write's sync fails
	tornCut   bool          // a torn write happened: the power goes now
	full      bool          // D5: writes, syncs and creates fail with ENOSPC
	fullHits  int           // operations the full disk refused
	// unacked lists the writes its unit answered with disk.ErrFailed
	// since it last opened: each may be on the disk or not, as the
	// answer says (see Durable.unacked).
	unacked []unackedWrite
}

// unackedWrite is a write a unit failed: what it carried, where.
type unackedWrite struct {
	local storage.Address
	epoch storage.Epoch
	data  []byte
}

// UseDurable switches the cluster to its durable mode (see Durable). It
// must be called before the cluster serves any request, after AddStandby
// if the cluster has a standby; it replaces each unit by a disk.Unit on a
// new disk and gives each layout server and sequencer a persist.Dir (the
// sequencer starts again, bootstrapped at epoch 0, with an incarnation its
// directory drew). It returns an error if a unit or a directory does not
// open.
func (c *Cluster) UseDurable() (*Durable, error) {
	d := &Durable{c: c, rng: c.Sched.Fork("disk"), nodes: make(map[transport.NodeID]*diskNode)}
	c.durable, c.Disk = d, d
	for _, id := range c.UnitIDs {
		u, err := d.openUnit(id, false)
		if err != nil {
			return nil, err
		}
		if err := c.setUnit(id, u); err != nil {
			return nil, err
		}
	}
	for _, id := range c.Projection.Layout {
		dir, err := d.openState(id)
		if err != nil {
			return nil, err
		}
		c.servers[id].Persist = dir
	}
	for _, id := range []transport.NodeID{c.Projection.Sequencer, c.Standby} {
		if id == "" {
			continue
		}
		// NB: only the log's sequencer serves epoch 0 from the start; a
		// standby bootstrapped there too would save a mark, and once
		// restarted vouch for a tail it never knew (seed 52040696 of the
		// detector sweep: a move to the standby committed, the standby
		// crashed before its bootstrap, came back Recovered at mark 0,
		// and the next reconfiguration handed address 1 out again).
		if err := d.startSequencer(id, id == c.Projection.Sequencer); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// node returns node's disk, making a new empty one the first time.
func (d *Durable) node(id transport.NodeID) *diskNode {
	n := d.nodes[id]
	if n == nil {
		var seed [32]byte
		for i := range 4 {
			v := d.rng.Uint64()
			for j := range 8 {
				seed[8*i+j] = byte(v >> (8 * j))
			}
		}
		n = &diskNode{node: id, entropy: rand.NewChaCha8(seed)}
		d.nodes[id] = n
		n.attach(d, vfs.NewMem())
	}
	return n
}

// attach makes mem node n's disk, beneath its fault injector.
func (n *diskNode) attach(d *Durable, mem *vfs.MemFS) {
	n.mem = mem
	n.fs = errorfs.Wrap(mem, errorfs.InjectorFunc(func(op errorfs.Op) errorfs.Fault { return d.inject(n, op) }),
		errorfs.Options{Delay: func(errorfs.Op) {
			n.delay += time.Duration(d.rng.Int64N(int64(n.slow) + 1))
		}})
}

// recover marks n as recovering from its disk until the function it
// returns is called. The time a slow disk added is not charged to the
// next request.
func (n *diskNode) recover() func() {
	n.recovering = true
	return func() { n.recovering, n.delay = false, 0 }
}

// powerLoss cuts node's power: its disk becomes what a power loss leaves
// of it, unsynced bytes dropped or, drawn from the stream, torn.
func (d *Durable) powerLoss(id transport.NodeID) {
	n := d.node(id)
	d.stats.PowerLosses++
	n.attach(d, n.mem.CrashClone(vfs.CrashOptions{Rand: d.rng}))
	n.torn, n.tornSync, n.tornCut = false, false, false
}

// openUnit opens node's unit on its disk; heldData says it served data
// there before, so an empty disk brings it back blank.
func (d *Durable) openUnit(id transport.NodeID, heldData bool) (*disk.Unit, error) {
	n := d.node(id)
	defer n.recover()()
	u, err := disk.Open(n.fs, unitDir, disk.Options{Node: string(id), Rand: n.entropy, HeldData: heldData,
		SegmentBytes: durableSegmentBytes})
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", id, err)
	}
	return u, nil
}

// openState opens node's state directory on its disk.
func (d *Durable) openState(id transport.NodeID) (*persist.Dir, error) {
	n := d.node(id)
	defer n.recover()()
	dir, err := persist.Open(n.fs, stateDir, persist.Options{Node: string(id), Entropy: n.entropy})
	if err != nil {
		return nil, fmt.Errorf("sim: %s: %w", id, err)
	}
	return dir, nil
}

// Restart implements Disk: a unit restarted from a crash (and its power
// loss) recovers from what its disk synced; from a reformat it comes back
// blank on a new disk; from a swap (D6) it is first offered another
// unit's disk, which it must refuse, then its own. A unit whose disk a
// misdirected write damaged so that it refuses to open is wiped and comes
// back blank, as an operator would bring it back. Other kinds get an error
// wrapping ErrUnsupportedFault.
func (d *Durable) Restart(node transport.NodeID, kind FaultKind, u storage.Unit) (storage.Unit, error) {
	switch kind {
	case FaultCrash, FaultTorn, FaultDiskFull:
	case FaultSwap:
		d.swapped(node)
	case FaultReformat:
		d.node(node).attach(d, vfs.NewMem())
		return d.openUnit(node, true)
	default:
		return nil, fmt.Errorf("%w: %s of %s", ErrUnsupportedFault, kind, node)
	}
	n := d.node(node)
	unacked := n.unacked
	n.unacked = nil
	nu, err := d.openUnit(node, true)
	if err != nil && n.damaged && (errors.Is(err, storage.ErrCorrupt) || errors.Is(err, disk.ErrBadMeta) || errors.Is(err, disk.ErrNoMeta)) {
		// NB: a disk damaged beyond recovery is wiped: the unit comes
		// back blank, as after a reformat, and the misdirect budget is
		// the reformats' (a chain keeps a replica of what it held).
		d.stats.Wipes++
		d.c.Monitor.Wiped(node)
		d.c.forgetUnplaced(node)
		n.attach(d, vfs.NewMem())
		n.damaged = false
		return d.openUnit(node, true)
	}
	if err == nil && n.damaged {
		d.forgetLost(node, u, nu)
	}
	if err == nil {
		d.foundUnacked(node, nu, unacked)
	}
	return nu, err
}

// unacked records that node's unit answered a write of data at local with
// disk.ErrFailed: the commit that held it failed (a torn write, say), so
// the outcome is unknown. A record that the commit wrote in full before
// the failure survives recovery even so (with several records in one
// commit, the tear may come after it), and the unit then holds and serves
// it: foundUnacked tells the Monitor at the restart.
func (d *Durable) unacked(node transport.NodeID, local storage.Address, epoch storage.Epoch, data []byte) {
	n := d.node(node)
	n.unacked = append(n.unacked, unackedWrite{local: local, epoch: epoch, data: slices.Clone(data)})
}

// foundUnacked reports to the Monitor each write of unacked that nu,
// recovered from node's disk, holds: the very bytes that request carried,
// at its address (an entry's bytes carry its writer and sequence number,
// so they name one write), as a write the unit stored.
func (d *Durable) foundUnacked(node transport.NodeID, nu *disk.Unit, unacked []unackedWrite) {
	for _, w := range unacked {
		if s, got := nu.Inspect(w.local); s != storage.StateData || !bytes.Equal(got, w.data) {
			continue
		}
		d.stats.Recovered++
		d.c.Monitor.UnitWrote(node, w.local, w.data)
		if g, ok := d.c.global(node, w.local, w.epoch); ok {
			d.c.Monitor.Stored(g, node, w.epoch, w.data)
		}
	}
}

// forgetLost tells the Monitor about every record that node's unit old had
// acknowledged and nu, recovered from old's disk after misdirected writes
// damaged it, does not hold: the record a misdirected write meant to put
// there is missing (its bytes landed elsewhere), and with its header gone
// recovery cannot know the address was ever written. The unit answers it
// unwritten, as a replica that lost a record does (a scrub writes it again
// from a replica after it); what the unit stores there next is not a
// second write of the address (S1).
func (d *Durable) forgetLost(node transport.NodeID, old storage.Unit, nu *disk.Unit) {
	in, ok := old.(storage.Inspector)
	if !ok {
		return
	}
	var held []storage.Address
	in.Ascend(func(addr storage.Address, s storage.State, _ []byte) bool {
		if s == storage.StateData || s == storage.StateJunk {
			held = append(held, addr)
		}
		return true
	})
	for _, local := range held {
		if s, _ := nu.Inspect(local); s != storage.StateUnwritten {
			continue
		}
		d.stats.Lost++
		if g, ok := d.c.placed(node, local); ok {
			d.c.Monitor.Lost(g, node)
		}
	}
}

// swapped offers node a copy of another unit's disk (D6), as if the disks
// were swapped: the unit must refuse it with disk.ErrForeign. One that
// opens it is an S15 violation.
func (d *Durable) swapped(node transport.NodeID) {
	var others []transport.NodeID
	for _, id := range d.c.UnitIDs {
		if id != node {
			others = append(others, id)
		}
	}
	if len(others) == 0 {
		return
	}
	other := others[d.rng.IntN(len(others))]
	fs := d.node(other).mem.CrashClone(vfs.CrashOptions{})
	u, err := disk.Open(fs, unitDir, disk.Options{Node: string(node), Rand: d.node(node).entropy, HeldData: true,
		SegmentBytes: durableSegmentBytes})
	switch {
	case err == nil:
		_ = u.Close()
		d.c.Monitor.report(Violation{Invariant: "S15", Detail: fmt.Sprintf(
			"%s opened the disk of %s (swapped, D6) instead of refusing it", node, other)})
	case errors.Is(err, disk.ErrForeign):
		d.stats.Refused++
	default:
		d.c.Monitor.report(Violation{Invariant: "S15", Detail: fmt.Sprintf(
			"%s refused the disk of %s (swapped, D6) with %v, not as another node's", node, other, err)})
	}
}

// startSequencer gives sequencer node a new server: a sequencer restarted
// from its state directory (fresh says the cluster is starting: it is
// bootstrapped at epoch 0, as the cluster's first sequencer is).
func (d *Durable) startSequencer(id transport.NodeID, fresh bool) error {
	dir, err := d.openState(id)
	if err != nil {
		return err
	}
	srv := newSequencerServer(d.c, dir, fresh)
	live := func() bool { return d.c.servers[id] == srv }
	srv.Ahead = slowSaves{s: d.c.Sched, live: live}
	if d.c.Mutants.SequencerSavesLate {
		srv.Persist = lateSaves{Persister: srv.Persist, s: d.c.Sched, live: live}
	}
	if !fresh {
		st, kept := dir.Sequencer()
		d.c.Monitor.SequencerRestarted(id, st.Mark, kept)
	}
	if fresh {
		if err := srv.Sequencer.Bootstrap(0, 0, nil); err != nil {
			return err
		}
	}
	d.c.replaceServer(id, srv)
	return nil
}

// inject decides the fault of one operation on node n's disk.
func (d *Durable) inject(n *diskNode, op errorfs.Op) errorfs.Fault {
	segment := strings.HasSuffix(op.Path, ".seg")
	if !n.serving {
		if n.recovering {
			return d.recoveryFault(n, op, segment)
		}
		return errorfs.Fault{}
	}
	switch {
	case n.full && (op.Kind == errorfs.OpWrite || op.Kind == errorfs.OpSync || op.Kind == errorfs.OpCreate):
		n.fullHits++
		d.stats.FullRefusals++
		return errorfs.Fault{Kind: errorfs.NoSpace}
	case n.tornSync && op.Kind == errorfs.OpSync:
		n.tornSync = false
		return errorfs.Fault{Kind: errorfs.Error}
	case n.torn && segment && op.Kind == errorfs.OpWrite && op.Len > 1:
		// NB: the power goes in the middle of this write: a prefix of
		// it lands, its sync fails, and the node is cut off at once.
		n.torn, n.tornSync, n.tornCut = false, true, true
		d.stats.TornWrites++
		return errorfs.Fault{Kind: errorfs.Torn, Keep: 1 + d.rng.IntN(op.Len-1)}
	case n.misdirect > 0 && segment && op.Kind == errorfs.OpWrite && d.rng.Float64() < n.misdirect:
		n.damaged = true
		d.stats.Misdirected++
		shift := int64(1 + d.rng.IntN(512))
		if d.rng.IntN(2) == 0 {
			shift = -shift
		}
		return errorfs.Fault{Kind: errorfs.Misdirect, Shift: shift}
	}
	return d.readFault(n, op, segment, &d.stats.CorruptReads)
}

// recoveryFault decides the fault of one operation on node n's disk while
// it recovers at a restart: a read of a segment corrupted on its way (D2),
// or a slow operation (D1). The faults that would make a correct unit fail
// to open (a full disk, a torn or misdirected write) act only while it
// serves.
func (d *Durable) recoveryFault(n *diskNode, op errorfs.Op, segment bool) errorfs.Fault {
	return d.readFault(n, op, segment, &d.stats.RecoveryReads)
}

// readFault decides the faults that act both while node n serves and while
// it recovers: a read of a segment corrupted on its way (D2), counted in
// corrupted, or a slow operation (D1).
func (d *Durable) readFault(n *diskNode, op errorfs.Op, segment bool, corrupted *int) errorfs.Fault {
	switch {
	case n.corrupt > 0 && segment && op.Kind == errorfs.OpRead && d.rng.Float64() < n.corrupt:
		*corrupted++
		return errorfs.Fault{Kind: errorfs.Corrupt, Bit: d.rng.IntN(1 << 30)}
	case n.slow > 0 && (op.Kind == errorfs.OpWrite || op.Kind == errorfs.OpSync || op.Kind == errorfs.OpRead):
		d.stats.SlowOps++
		return errorfs.Fault{Kind: errorfs.Delay}
	}
	return errorfs.Fault{}
}

// serve marks node's server as handling a request (on) or done with it;
// when done, it returns the time its disk took (D1) and whether a torn
// write cut the power (D4).
func (d *Durable) serve(id transport.NodeID, on bool) (delay time.Duration, cut bool) {
	n := d.nodes[id]
	if n == nil {
		return 0, false
	}
	n.serving = on
	if on {
		n.delay = 0
		return 0, false
	}
	delay, cut = n.delay, n.tornCut
	n.delay, n.tornCut = 0, false
	return delay, cut
}

// DiskFault switches a disk fault of the given kind on or off on node's
// disk, with its parameter: the most one operation takes for slowdisk, a
// probability for corrupt and misdirect. Torn arms the next segment write
// (the power goes during it). It returns, when a diskfull window ends,
// whether the full disk refused an operation (the node must be restarted).
func (d *Durable) DiskFault(kind FaultKind, node transport.NodeID, on bool, p float64, slow time.Duration) (failed bool) {
	n := d.node(node)
	switch kind {
	case FaultSlowDisk:
		n.slow = 0
		if on {
			n.slow = max(slow, time.Microsecond)
		}
	case FaultCorrupt:
		n.corrupt = 0
		if on {
			n.corrupt = p
		}
	case FaultMisdirect:
		n.misdirect = 0
		if on {
			n.misdirect = p
		}
	case FaultTorn:
		n.torn = on
	case FaultDiskFull:
		n.full = on
		if !on {
			failed, n.fullHits = n.fullHits > 0, 0
		}
	}
	return failed
}

// diskKinds are the fault kinds that act on disks, in catalog order.
var diskKinds = []FaultKind{FaultSlowDisk, FaultCorrupt, FaultMisdirect, FaultTorn, FaultDiskFull, FaultSwap}

// isDiskKind reports whether k acts on a node's disk.
func (k FaultKind) isDiskKind() bool { return slices.Contains(diskKinds, k) }

// diskFaults are a seed's draws for durable mode: whether it runs
// durable, and the disk faults of its fault phase.
type diskFaults struct {
	durable                                                 bool
	slowDisks, corrupts, misdirects, torn, fullDisks, swaps int
	slow                                                    time.Duration
	rate                                                    float64
}

// drawDiskFaults draws a seed's durable mode and disk faults from a stream
// of their own, so that they shift no other draw: one seed in four is
// durable, and each disk fault is in with probability 1/3, with one or two
// windows. Every count is drawn, in or not.
func drawDiskFaults(seed uint64) diskFaults {
	r := rand.New(rand.NewPCG(seed, 0xd15c))
	var d diskFaults
	d.durable = r.IntN(4) == 0
	for _, c := range []*int{&d.slowDisks, &d.corrupts, &d.misdirects, &d.torn, &d.fullDisks, &d.swaps} {
		if n := 1 + r.IntN(2); r.IntN(3) == 0 {
			*c = n
		}
	}
	d.slow = time.Duration(1+r.IntN(50)) * time.Millisecond
	d.rate = 0.01 + 0.19*r.Float64()
	return d
}

// apply sets f's disk faults to d's, keeping only the kinds on says (all
// if on is nil).
func (d diskFaults) apply(f *FaultConfig, on map[FaultKind]bool) {
	keep := func(k FaultKind, n int) int {
		if on != nil && !on[k] {
			return 0
		}
		return n
	}
	f.SlowDisks = keep(FaultSlowDisk, d.slowDisks)
	f.Corrupts = keep(FaultCorrupt, d.corrupts)
	f.Misdirects = keep(FaultMisdirect, d.misdirects)
	f.Torn = keep(FaultTorn, d.torn)
	f.FullDisks = keep(FaultDiskFull, d.fullDisks)
	f.Swaps = keep(FaultSwap, d.swaps)
	f.SlowDisk, f.DiskErrorRate = 0, 0
	if f.SlowDisks > 0 {
		f.SlowDisk = d.slow
	}
	if f.Corrupts+f.Misdirects > 0 {
		f.DiskErrorRate = d.rate
	}
}

// SwarmDiskKinds returns the disk faults Swarm draws for its durable
// seeds: all of them (slowdisk, corrupt, misdirect, torn, diskfull, swap).
// A misdirected write (D3) leaves records that their replica answers
// storage.ErrCorrupt for; reads, fills and reconfigurations read around
// them and repair them from another replica, a write that got no further
// than a damaged head is filled once a reconfiguration has closed its
// segment, and the detector's scrub (and the final pass's, before S16
// compares the replicas) repairs those no read reaches. Like a reformat, a
// misdirect may cost its unit what it held, so the two share one damage
// budget, and so do the hand-driven client's replacements (which leave
// closed segments one replica short).
func SwarmDiskKinds() map[FaultKind]bool {
	on := map[FaultKind]bool{}
	for _, k := range diskKinds {
		on[k] = true
	}
	return on
}

// ApplyDiskFaults makes a durable run's options inject exactly the disk
// faults that on names, as a front end's fault list would: a disk kind on
// keeps the seed's count, or takes one drawn from the seed if the seed
// left it out; a disk kind not on is off. It leaves the other kinds, and
// the disk mode, alone; on in-memory options it only switches the disk
// faults off.
func ApplyDiskFaults(o *Options, on map[FaultKind]bool) {
	f := &o.Faults
	if o.Disk != DiskDurable || f.Duration <= 0 {
		diskFaults{}.apply(f, nil)
		return
	}
	d := drawDiskFaults(o.Seed)
	for _, c := range []struct {
		k     FaultKind
		have  int
		drawn *int
	}{{FaultSlowDisk, f.SlowDisks, &d.slowDisks}, {FaultCorrupt, f.Corrupts, &d.corrupts},
		{FaultMisdirect, f.Misdirects, &d.misdirects}, {FaultTorn, f.Torn, &d.torn},
		{FaultDiskFull, f.FullDisks, &d.fullDisks}, {FaultSwap, f.Swaps, &d.swaps}} {
		if c.have > 0 {
			*c.drawn = c.have
		} else if *c.drawn == 0 {
			*c.drawn = 1
		}
	}
	d.apply(f, on)
}
