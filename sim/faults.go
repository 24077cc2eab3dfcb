package sim

import (
	"cmp"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/corfulog/corfu/transport"
)

// FaultKind names one kind of fault of the catalog in docs/faults.md.
type FaultKind string

// The faults the simulator injects. Each one acts at a boundary: on messages
// (the network's Policy and Gate), on a node's server (crash and restart,
// the cluster's wrapper) or on a client's clock (its Env); none is a hook in
// protocol code.
const (
	// FaultLatency (N2, N3) replaces the healthy latency by another model,
	// a ParseLatency spec, for a window: bimodal or exponential delays make
	// timeouts fire on operations that still complete.
	FaultLatency FaultKind = "latency"
	// FaultDrop (N4) loses each message with a probability.
	FaultDrop FaultKind = "drop"
	// FaultDuplicate (N5) delivers an extra, late copy of a message with a
	// probability: a replay that arrives after the original, often after
	// the sender gave up on it.
	FaultDuplicate FaultKind = "duplicate"
	// FaultReorder (N6) forces, with a probability, a message to trade
	// arrival times with an earlier one still in flight on its link.
	FaultReorder FaultKind = "reorder"
	// FaultClog (N7) holds every message sent on one directed path until
	// the clog ends, then delivers them as a burst.
	FaultClog FaultKind = "clog"
	// FaultSwizzle (N8) clogs every link of a set of nodes, one node after
	// another, and unclogs them in a random order.
	FaultSwizzle FaultKind = "swizzle"
	// FaultPartition (N9) cuts the network into groups; messages between
	// groups are lost.
	FaultPartition FaultKind = "partition"
	// FaultAsymmetric (N10) loses every message to a node (it can send but
	// not receive) or every message from it (the reverse).
	FaultAsymmetric FaultKind = "asymmetric"
	// FaultBridge (N11) cuts two groups from each other while one bridge
	// node still talks to both: A-B and B-C work, A-C does not.
	FaultBridge FaultKind = "bridge"
	// FaultFlap (N12) takes the links between two nodes down and up again,
	// over and over, for a window.
	FaultFlap FaultKind = "flap"
	// FaultBlackout (N13) silences one live node for a long window: every
	// message to or from it is lost, and it carries on afterwards with
	// whatever it believed before.
	FaultBlackout FaultKind = "blackout"
	// FaultOutage loses every message in the network for a window. (An
	// outage in a latency spec, "+outage:", only delays.)
	FaultOutage FaultKind = "outage"
	// FaultPause (P1) freezes a node: messages that reach it are held
	// until it resumes, and so are those it sends. A paused server
	// processes nothing. A client is a task, not a process the network can
	// freeze: pausing it holds its traffic both ways while its own timers
	// run on, so its calls time out and, when it resumes, its held requests
	// go out stamped with the epoch and tokens it had: a zombie client.
	FaultPause FaultKind = "pause"
	// FaultCrash (P2) kills a server node and restarts it at the end of the
	// window. Messages to it meanwhile are lost, and so is everything in
	// flight to or from it when it crashed. What it keeps is the cluster's
	// business (see Cluster.Crash): a sequencer loses its state, storage
	// and layout servers keep theirs.
	FaultCrash FaultKind = "crash"
	// FaultReformat (P4) crashes a storage unit and restarts it with an
	// empty disk: whatever it held is gone for good. What the unit comes
	// back as is the cluster's Disk's business (see Cluster.RestartFrom).
	// The plan hits only units in chains of 2 or more replicas, at most f
	// (replicas-1) over the whole run: without a rebuild, a second reformat
	// in one chain could lose committed data.
	FaultReformat FaultKind = "reformat"
	// FaultAmnesia crashes a sequencer and restarts it with nothing at
	// all, its durable reservation mark included: it comes back as a new
	// sequencer at zero, as a host whose disk lost the mark would bring it
	// back. What it comes back as is the cluster's business (see
	// Cluster.RestartFrom). Recovering the log's tail is then up to the
	// units' seal answers alone.
	FaultAmnesia FaultKind = "amnesia"
	// FaultSlowDisk (D1) makes one server's disk slow for a window: every
	// read, write and sync takes up to FaultConfig.SlowDisk, and the
	// server's answer leaves only once its disk is done. Durable mode only
	// (Options.Disk), as are the other disk faults.
	FaultSlowDisk FaultKind = "slowdisk"
	// FaultCorrupt (D2) makes a unit's disk flip a bit of a read of its
	// segments, with probability FaultConfig.DiskErrorRate, for a window.
	// The unit's checksums must catch it: it answers storage.ErrCorrupt,
	// never the bytes (S15).
	FaultCorrupt FaultKind = "corrupt"
	// FaultMisdirect (D3) makes a unit's disk put a segment write, with
	// probability FaultConfig.DiskErrorRate, at another offset and report
	// success, for a window: the record it meant to write is missing and
	// another is overwritten. The unit's checksums must catch both. Like a
	// reformat, it may cost the unit what it held (a disk damaged beyond
	// recovery is wiped), so it shares the reformats' budget.
	FaultMisdirect FaultKind = "misdirect"
	// FaultTorn (D4) cuts a unit's power in the middle of its next segment
	// write in a window: a prefix of the write lands, its sync fails, and
	// the unit is down until the window ends, when it recovers from its
	// disk (dropping the torn record, never acknowledged).
	FaultTorn FaultKind = "torn"
	// FaultDiskFull (D5) fills a server's disk for a window: writes, syncs
	// and creates fail with ENOSPC. A unit then refuses writes, a layout
	// server or sequencer answers ErrNotDurable, until the window ends and
	// the node, if its disk refused anything, is restarted.
	FaultDiskFull FaultKind = "diskfull"
	// FaultSwap (D6) crashes a unit and, at the window's end, brings it
	// back on another unit's disk, which it must refuse (its identity is
	// another node's), then on its own.
	FaultSwap FaultKind = "swap"
	// FaultClock (C1) offsets one client's clock for a window: it jumps
	// ahead or back at the start and jumps back at the end. Only timeouts
	// read clocks, so safety must not notice.
	FaultClock FaultKind = "clock"
	// FaultReconfig (M1) is a reconfiguration run by the workload's
	// reconfiguring client during the other faults: a new epoch, or a unit
	// replaced by a spare. It is recorded, not injected.
	FaultReconfig FaultKind = "reconfig"
)

// FaultKinds returns every FaultKind that acts in any run, in catalog
// order; the disk faults, for durable runs only, are DiskFaultKinds.
func FaultKinds() []FaultKind {
	return []FaultKind{
		FaultLatency, FaultDrop, FaultDuplicate, FaultReorder, FaultClog, FaultSwizzle,
		FaultPartition, FaultAsymmetric, FaultBridge, FaultFlap, FaultBlackout, FaultOutage,
		FaultPause, FaultCrash, FaultReformat, FaultAmnesia, FaultClock, FaultReconfig,
	}
}

// DiskFaultKinds returns the disk faults (D1-D6), in catalog order: they
// act only in durable runs (Options.Disk), and FaultKinds leaves them out.
func DiskFaultKinds() []FaultKind { return slices.Clone(diskKinds) }

// FaultRecord is one fault injected in a run: its kind, what it hit, and
// its window in virtual time since the run started. A fault acts in
// [Start, End).
type FaultRecord struct {
	Kind FaultKind
	// Target names what the fault hits: a node ("unit2"), a directed path
	// ("client1->seq"), a pair of nodes ("unit0<->layout1"), groups of
	// nodes ("layout0,unit1|seq,client2"), or "*" for every link.
	Target     string
	Start, End time.Duration
	Detail     string // the fault's parameters: probability, mode, offset
}

// String formats the record on one line.
func (r FaultRecord) String() string {
	s := fmt.Sprintf("%s %s [%v, %v)", r.Kind, r.Target, r.Start, r.End)
	if r.Detail != "" {
		s += " " + r.Detail
	}
	return s
}

// episode is one fault as the policy applies it.
type episode struct {
	rec    FaultRecord
	active bool

	p       float64       // drop, duplicate, reorder: probability
	late    time.Duration // duplicate: the most a copy trails the original
	model   LatencyModel  // latency
	from    transport.NodeID
	to      transport.NodeID // clog: the path; flap: the pair
	node    transport.NodeID // asymmetric, blackout, pause, crash, clock, swizzle
	inbound bool             // asymmetric: the node cannot receive (else cannot send)
	// side gives a partition's or a bridge's nodes their group; nodes not
	// in it are unaffected. A bridge's bridge node has side 0 and its
	// groups sides 1 and 2.
	side     map[transport.NodeID]int // looked up, never iterated
	bridge   bool
	period   time.Duration // flap: the length of each down and each up stretch
	offset   time.Duration // clock
	slow     time.Duration // slowdisk: the most one operation takes
	powerCut bool          // torn, diskfull: the node was taken down (CutPower)
}

// Faults is a Policy that injects faults into the messages of a Network,
// over an inner Policy that gives the healthy delays (usually a
// LatencyPolicy). It also implements Gate, for the faults that act when a
// message arrives (pause and crash). Faults are added as windows of virtual
// time, each by a method of its kind or all at once by Plan; each start and
// end is an event of the scheduler, labelled "fault" in traces, and each
// fault is listed by Records.
//
// Decisions are taken at sending for link faults (a message sent while a
// link is cut is lost, one sent before is delivered) and at arrival for
// node faults (pause, crash); a message sent to a crashed node is lost at
// sending too. Random draws come from the scheduler's stream
// "faults", so they never shift the network's.
//
// Like its Scheduler, a Faults is used by one task or event at a time.
// Windows must be added before their start time has passed.
type Faults struct {
	// OnCrash and OnRestart, if set, are called when a crash window starts
	// and ends, with the node, so that the node's server can lose its
	// volatile state (see Cluster.Crash).
	OnCrash, OnRestart func(node transport.NodeID)
	// OnReformat, if set, is called instead of OnRestart when a reformat
	// window ends (OnCrash is called when it starts); OnAmnesia likewise
	// when an amnesia window ends.
	OnReformat, OnAmnesia func(node transport.NodeID)
	// OnDisk, if set, is called when a disk fault's window (slowdisk,
	// corrupt, misdirect, torn, diskfull) starts (on) and ends, with its
	// probability p or its slowness; for a diskfull window's end it reports
	// whether the node must be restarted (its disk refused something), and
	// Faults then restarts it (OnCrash, then OnRestartFrom or OnRestart).
	OnDisk func(kind FaultKind, node transport.NodeID, on bool, p float64, slow time.Duration) (restart bool)
	// OnRestartFrom, if set, is called instead of OnRestart at the end of
	// a swap window, and for the restarts of torn and diskfull windows,
	// with the kind.
	OnRestartFrom func(node transport.NodeID, kind FaultKind)
	// ReplyDelay, if set, is asked for every response a node sends: how
	// much longer than the network's delay it takes to leave (the time a
	// slow disk took to serve the request). Faults adds it to the delay.
	ReplyDelay func(node transport.NodeID) time.Duration

	s      *Scheduler
	inner  Policy
	rng    *rand.Rand
	all    []*episode // in order of adding
	active []*episode // in order of starting
	down   map[transport.NodeID]bool
	// crashes holds each node's crash times, as Elapsed, in order.
	crashes map[transport.NodeID][]time.Duration
}

// NewFaults returns a Faults over inner, on s, with no faults yet.
func NewFaults(s *Scheduler, inner Policy) *Faults {
	return &Faults{
		s:       s,
		inner:   inner,
		rng:     s.Fork("faults"),
		down:    make(map[transport.NodeID]bool),
		crashes: make(map[transport.NodeID][]time.Duration),
	}
}

// add registers e and schedules its start and end.
func (f *Faults) add(e *episode) {
	if e.rec.End < e.rec.Start {
		e.rec.End = e.rec.Start
	}
	f.all = append(f.all, e)
	now := f.s.Elapsed()
	label := "fault " + string(e.rec.Kind) + " " + e.rec.Target
	f.s.Schedule(e.rec.Start-now, label+" start", func() { f.start(e) })
	f.s.Schedule(e.rec.End-now, label+" end", func() { f.stop(e) })
}

func (f *Faults) start(e *episode) {
	if e.active || e.rec.End <= e.rec.Start {
		return
	}
	e.active = true
	f.active = append(f.active, e)
	if e.rec.Kind.crashes() {
		f.down[e.node] = true
		f.crashes[e.node] = append(f.crashes[e.node], f.s.Elapsed())
		if f.OnCrash != nil {
			f.OnCrash(e.node)
		}
	}
	if e.rec.Kind.isDiskKind() && e.rec.Kind != FaultSwap && f.OnDisk != nil {
		f.OnDisk(e.rec.Kind, e.node, true, e.p, e.slow)
	}
}

// CutPower takes node down now, in its open torn or diskfull window, until
// the window ends and the node restarts: the power went during a write
// (FaultTorn), or the node could not make its state durable and must stop
// serving (FaultDiskFull). It does nothing if node has no such open window
// or is down already.
func (f *Faults) CutPower(node transport.NodeID) {
	for _, e := range f.active {
		if (e.rec.Kind == FaultTorn || e.rec.Kind == FaultDiskFull) && e.node == node && !e.powerCut && !f.down[node] {
			e.powerCut = true
			f.down[node] = true
			f.crashes[node] = append(f.crashes[node], f.s.Elapsed())
			if f.OnCrash != nil {
				f.OnCrash(node)
			}
			return
		}
	}
}

// restartFrom brings node back after a fault of kind.
func (f *Faults) restartFrom(node transport.NodeID, kind FaultKind) {
	f.down[node] = false
	switch {
	case f.OnRestartFrom != nil:
		f.OnRestartFrom(node, kind)
	case f.OnRestart != nil:
		f.OnRestart(node)
	}
}

func (f *Faults) stop(e *episode) {
	if !e.active {
		return
	}
	e.active = false
	f.active = slices.DeleteFunc(f.active, func(o *episode) bool { return o == e })
	switch {
	case e.rec.Kind == FaultReformat && f.OnReformat != nil:
		f.down[e.node] = false
		f.OnReformat(e.node)
	case e.rec.Kind == FaultAmnesia && f.OnAmnesia != nil:
		f.down[e.node] = false
		f.OnAmnesia(e.node)
	case e.rec.Kind == FaultSwap:
		f.restartFrom(e.node, FaultSwap)
	case e.rec.Kind.crashes():
		f.down[e.node] = false
		if f.OnRestart != nil {
			f.OnRestart(e.node)
		}
	}
	if !e.rec.Kind.isDiskKind() || e.rec.Kind == FaultSwap || f.OnDisk == nil {
		return
	}
	restart := f.OnDisk(e.rec.Kind, e.node, false, e.p, e.slow)
	switch {
	case e.powerCut:
		f.restartFrom(e.node, e.rec.Kind)
	case e.rec.Kind == FaultDiskFull && restart && !f.down[e.node]:
		// NB: a restart, as after a crash: what was in flight to or
		// from the node is lost.
		f.crashes[e.node] = append(f.crashes[e.node], f.s.Elapsed())
		if f.OnCrash != nil {
			f.OnCrash(e.node)
		}
		f.restartFrom(e.node, FaultDiskFull)
	}
}

// crashes reports whether a fault of kind k takes its node down.
func (k FaultKind) crashes() bool {
	return k == FaultCrash || k == FaultReformat || k == FaultAmnesia || k == FaultSwap
}

// Records returns every fault added, ordered by start time (then by order
// of adding).
func (f *Faults) Records() []FaultRecord {
	out := make([]FaultRecord, len(f.all))
	for i, e := range f.all {
		out[i] = e.rec
	}
	slices.SortStableFunc(out, func(a, b FaultRecord) int { return cmp.Compare(a.Start, b.Start) })
	return out
}

// Counts returns how many faults of each kind were added.
func (f *Faults) Counts() map[FaultKind]int {
	out := make(map[FaultKind]int)
	for _, e := range f.all {
		out[e.rec.Kind]++
	}
	return out
}

// Active reports whether any fault window is open now.
func (f *Faults) Active() bool { return len(f.active) > 0 }

// Latency replaces the inner policy's delays by model's in [start, end).
// spec names the model in the record.
func (f *Faults) Latency(start, end time.Duration, model LatencyModel, spec string) {
	f.add(&episode{rec: FaultRecord{Kind: FaultLatency, Target: "*", Start: start, End: end, Detail: spec}, model: model})
}

// Drop loses each message sent in [start, end) with probability p.
func (f *Faults) Drop(start, end time.Duration, p float64) {
	f.add(&episode{rec: FaultRecord{Kind: FaultDrop, Target: "*", Start: start, End: end,
		Detail: fmt.Sprintf("p=%.3f", p)}, p: p})
}

// Duplicate gives each message sent in [start, end), with probability p,
// an extra copy that arrives up to late after the original (uniformly).
func (f *Faults) Duplicate(start, end time.Duration, p float64, late time.Duration) {
	f.add(&episode{rec: FaultRecord{Kind: FaultDuplicate, Target: "*", Start: start, End: end,
		Detail: fmt.Sprintf("p=%.3f late<=%v", p, late)}, p: p, late: late})
}

// Reorder makes each message sent in [start, end), with probability p,
// swap arrival times with an earlier message in flight on its link (see
// Decision.Swap).
func (f *Faults) Reorder(start, end time.Duration, p float64) {
	f.add(&episode{rec: FaultRecord{Kind: FaultReorder, Target: "*", Start: start, End: end,
		Detail: fmt.Sprintf("p=%.3f", p)}, p: p})
}

// Clog holds every message sent from from to to in [start, end) until end,
// when it leaves with its usual delay. The reverse path is not clogged.
func (f *Faults) Clog(start, end time.Duration, from, to transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultClog, Target: string(from) + "->" + string(to), Start: start, End: end},
		from: from, to: to})
}

// Swizzle clogs every link to and from each of nodes, one node after
// another over the first quarter of [start, end), and unclogs them one by
// one in a random order over its second half, the last at end. Each node's
// clog is one record.
func (f *Faults) Swizzle(start, end time.Duration, nodes []transport.NodeID) {
	if len(nodes) == 0 {
		return
	}
	span := end - start
	order := f.rng.Perm(len(nodes))
	for i, node := range nodes {
		on := start + span/4*time.Duration(i)/time.Duration(len(nodes))
		off := end - span/2*time.Duration(len(nodes)-1-order[i])/time.Duration(len(nodes))
		f.add(&episode{rec: FaultRecord{Kind: FaultSwizzle, Target: string(node), Start: on, End: off,
			Detail: fmt.Sprintf("clog %d of %d, unclog %d", i+1, len(nodes), order[i]+1)}, node: node})
	}
}

// Partition cuts the network into groups in [start, end): a message sent
// between nodes of different groups is lost. Nodes in no group are
// unaffected.
func (f *Faults) Partition(start, end time.Duration, mode string, groups ...[]transport.NodeID) {
	side := make(map[transport.NodeID]int)
	names := make([]string, len(groups))
	for i, g := range groups {
		for _, n := range g {
			side[n] = i + 1
		}
		names[i] = joinNodes(g)
	}
	f.add(&episode{rec: FaultRecord{Kind: FaultPartition, Target: strings.Join(names, "|"), Start: start, End: end,
		Detail: mode}, side: side})
}

// Asymmetric cuts one direction of every link of node in [start, end):
// with inbound set the node can send but receives nothing; otherwise it
// receives but nothing it sends arrives.
func (f *Faults) Asymmetric(start, end time.Duration, node transport.NodeID, inbound bool) {
	d := "outbound lost"
	if inbound {
		d = "inbound lost"
	}
	f.add(&episode{rec: FaultRecord{Kind: FaultAsymmetric, Target: string(node), Start: start, End: end, Detail: d},
		node: node, inbound: inbound})
}

// Bridge cuts groups a and c from each other in [start, end) while bridge
// still talks to both: a non-transitive partition. Nodes in neither group
// are unaffected.
func (f *Faults) Bridge(start, end time.Duration, a []transport.NodeID, bridge transport.NodeID, c []transport.NodeID) {
	side := map[transport.NodeID]int{bridge: 0}
	for _, n := range a {
		side[n] = 1
	}
	for _, n := range c {
		side[n] = 2
	}
	f.add(&episode{rec: FaultRecord{Kind: FaultBridge, Target: joinNodes(a) + "|" + string(bridge) + "|" + joinNodes(c),
		Start: start, End: end}, side: side, bridge: true})
}

// Flap takes both directions of the link between a and b down and up in
// turns of period, starting down, in [start, end).
func (f *Faults) Flap(start, end time.Duration, a, b transport.NodeID, period time.Duration) {
	period = max(period, time.Millisecond)
	f.add(&episode{rec: FaultRecord{Kind: FaultFlap, Target: string(a) + "<->" + string(b), Start: start, End: end,
		Detail: fmt.Sprintf("period=%v", period)}, from: a, to: b, period: period})
}

// Blackout loses every message sent to or from node in [start, end).
func (f *Faults) Blackout(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultBlackout, Target: string(node), Start: start, End: end}, node: node})
}

// Outage loses every message sent in [start, end).
func (f *Faults) Outage(start, end time.Duration) {
	f.add(&episode{rec: FaultRecord{Kind: FaultOutage, Target: "*", Start: start, End: end}})
}

// Pause freezes node in [start, end): whatever reaches it is held until
// end, then delivered in order of arrival, and whatever it sends is held
// too. See FaultPause for what this means for a client.
func (f *Faults) Pause(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultPause, Target: string(node), Start: start, End: end}, node: node})
}

// Crash kills node at start and restarts it at end. Messages arriving at
// it meanwhile are lost, and so is every message to or from it that was in
// flight when it crashed, even if it arrives after the restart (the
// connections it travelled on are gone). OnCrash and OnRestart are called
// at start and end.
func (f *Faults) Crash(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultCrash, Target: string(node), Start: start, End: end}, node: node})
}

// Reformat crashes node at start, as Crash does, and restarts it at end
// with an empty disk: OnCrash is called at start and OnReformat (else
// OnRestart) at end.
func (f *Faults) Reformat(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultReformat, Target: string(node), Start: start, End: end}, node: node})
}

// Amnesia crashes node, a sequencer, at start, as Crash does, and restarts
// it at end with no state at all: OnCrash is called at start and OnAmnesia
// (else OnRestart) at end.
func (f *Faults) Amnesia(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultAmnesia, Target: string(node), Start: start, End: end}, node: node})
}

// SlowDisk makes node's disk slow in [start, end): each operation takes up
// to most (FaultSlowDisk).
func (f *Faults) SlowDisk(start, end time.Duration, node transport.NodeID, most time.Duration) {
	f.add(&episode{rec: FaultRecord{Kind: FaultSlowDisk, Target: string(node), Start: start, End: end,
		Detail: fmt.Sprintf("op<=%v", most)}, node: node, slow: most})
}

// Corrupt makes node's disk flip a bit of a segment read with probability
// p in [start, end) (FaultCorrupt).
func (f *Faults) Corrupt(start, end time.Duration, node transport.NodeID, p float64) {
	f.add(&episode{rec: FaultRecord{Kind: FaultCorrupt, Target: string(node), Start: start, End: end,
		Detail: fmt.Sprintf("p=%.3f", p)}, node: node, p: p})
}

// Misdirect makes node's disk put a segment write elsewhere with
// probability p in [start, end) (FaultMisdirect).
func (f *Faults) Misdirect(start, end time.Duration, node transport.NodeID, p float64) {
	f.add(&episode{rec: FaultRecord{Kind: FaultMisdirect, Target: string(node), Start: start, End: end,
		Detail: fmt.Sprintf("p=%.3f", p)}, node: node, p: p})
}

// Torn cuts node's power during its first segment write in [start, end),
// and restarts it at end (FaultTorn).
func (f *Faults) Torn(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultTorn, Target: string(node), Start: start, End: end}, node: node})
}

// DiskFull fills node's disk in [start, end) (FaultDiskFull).
func (f *Faults) DiskFull(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultDiskFull, Target: string(node), Start: start, End: end}, node: node})
}

// Swap crashes node at start and brings it back at end on another unit's
// disk first, then on its own (FaultSwap).
func (f *Faults) Swap(start, end time.Duration, node transport.NodeID) {
	f.add(&episode{rec: FaultRecord{Kind: FaultSwap, Target: string(node), Start: start, End: end}, node: node})
}

// Clock offsets node's clock by offset in [start, end); see ClockOffset.
func (f *Faults) Clock(start, end time.Duration, node transport.NodeID, offset time.Duration) {
	f.add(&episode{rec: FaultRecord{Kind: FaultClock, Target: string(node), Start: start, End: end,
		Detail: fmt.Sprintf("offset=%v", offset)}, node: node, offset: offset})
}

// ClockOffset returns how far node's clock is off now: the sum of the
// offsets of its open clock windows. The cluster adds it to the Now of the
// node's client.
func (f *Faults) ClockOffset(node transport.NodeID) time.Duration {
	var d time.Duration
	for _, e := range f.active {
		if e.rec.Kind == FaultClock && e.node == node {
			d += e.offset
		}
	}
	return d
}

// Down reports whether node is crashed now.
func (f *Faults) Down(node transport.NodeID) bool { return f.down[node] }

// Route applies the open fault windows to a message being sent, over the
// inner policy's decision.
func (f *Faults) Route(now time.Time, r *rand.Rand, m *Message) Decision {
	if f.down[m.To] || f.down[m.From] {
		// A crashed node refuses connections and sends nothing.
		return Decision{Drop: true}
	}
	var extra time.Duration // the time a slow disk took before the answer
	if m.Reply && f.ReplyDelay != nil {
		extra = f.ReplyDelay(m.From)
	}
	var d Decision
	replaced := false
	for _, e := range f.active {
		if e.rec.Kind == FaultLatency && !replaced {
			d.Delay = e.model.Delay(r, m.From, m.To)
			replaced = true
		}
	}
	if !replaced {
		d = f.inner.Route(now, r, m)
	}
	elapsed := f.s.Elapsed()
	var hold time.Duration // until the end of a clog or a pause
	for _, e := range f.active {
		switch e.rec.Kind {
		case FaultDrop:
			if f.rng.Float64() < e.p {
				d.Drop = true
			}
		case FaultDuplicate:
			if f.rng.Float64() < e.p {
				late := time.Duration(f.rng.Int64N(int64(e.late) + 1))
				d.Duplicates = append(d.Duplicates, d.Delay+late)
			}
		case FaultReorder:
			if f.rng.Float64() < e.p {
				d.Swap = true
			}
		case FaultClog:
			if m.From == e.from && m.To == e.to {
				hold = max(hold, e.rec.End-elapsed)
			}
		case FaultSwizzle:
			if m.From == e.node || m.To == e.node {
				hold = max(hold, e.rec.End-elapsed)
			}
		case FaultPause:
			if m.From == e.node {
				hold = max(hold, e.rec.End-elapsed)
			}
		case FaultPartition, FaultBridge:
			if e.cut(m.From, m.To) {
				d.Drop = true
			}
		case FaultAsymmetric:
			if e.inbound && m.To == e.node || !e.inbound && m.From == e.node {
				d.Drop = true
			}
		case FaultFlap:
			if (m.From == e.from && m.To == e.to || m.From == e.to && m.To == e.from) &&
				(elapsed-e.rec.Start)/e.period%2 == 0 {
				d.Drop = true
			}
		case FaultBlackout:
			if m.From == e.node || m.To == e.node {
				d.Drop = true
			}
		case FaultOutage:
			d.Drop = true
		}
	}
	if d.Drop {
		return Decision{Drop: true}
	}
	if hold += extra; hold > 0 {
		d.Delay += hold
		for i := range d.Duplicates {
			d.Duplicates[i] += hold
		}
	}
	return d
}

// cut reports whether a partition or bridge episode cuts from->to.
func (e *episode) cut(from, to transport.NodeID) bool {
	a, okA := e.side[from]
	b, okB := e.side[to]
	if !okA || !okB || a == b {
		return false
	}
	if e.bridge {
		return a != 0 && b != 0
	}
	return true
}

// Admit applies the node faults to an arriving message: a message to a
// paused node (a request to a server, a response to a client) is held until
// the pause ends; a message to a crashed node is lost, and so is one to or
// from a node that crashed after it was sent.
func (f *Faults) Admit(now time.Time, m *Message) Admission {
	sent := m.Sent.Sub(epoch)
	for _, n := range []transport.NodeID{m.To, m.From} {
		for _, at := range f.crashes[n] {
			if at > sent {
				return Admission{Drop: true}
			}
		}
	}
	if f.down[m.To] {
		return Admission{Drop: true}
	}
	elapsed := f.s.Elapsed()
	var hold time.Duration
	for _, e := range f.active {
		if e.rec.Kind == FaultPause && e.node == m.To {
			hold = max(hold, e.rec.End-elapsed)
		}
	}
	return Admission{Hold: hold}
}

func joinNodes(nodes []transport.NodeID) string {
	s := make([]string, len(nodes))
	for i, n := range nodes {
		s[i] = string(n)
	}
	return strings.Join(s, ",")
}

var (
	_ Policy = (*Faults)(nil)
	_ Gate   = (*Faults)(nil)
)

// Partition modes of FaultConfig.PartitionMode (fault catalog N9).
const (
	// PartitionUniformSize cuts off a random subset whose size is uniform
	// in [1, n-1].
	PartitionUniformSize = "uniform_size"
	// PartitionUniformPartition puts each node in one of two or three
	// groups, uniformly.
	PartitionUniformPartition = "uniform_partition"
	// PartitionIsolateSingle cuts one node off from all the others.
	PartitionIsolateSingle = "isolate_single"
)

// FaultConfig shapes the faults of a run. Swarm derives one from the seed;
// its zero value injects nothing. Counts are numbers of windows, each placed
// at random in the fault phase [0, Duration), and every window ends by
// Duration: that is when the run heals.
type FaultConfig struct {
	// Seed is the fault plan's sub-seed: the plan draws its targets and
	// windows from the scheduler's stream "faults.plan/Seed", so that one
	// workload can be run under other plans. Swarm draws it from the run's
	// seed.
	Seed uint64
	// Duration is the fault phase. At its end every fault stops (the heal)
	// and the liveness phase starts. Zero: no faults, healed from the start.
	Duration time.Duration
	// Latency is a ParseLatency spec that replaces the healthy latency over
	// the whole fault phase (N2 "bimodal", N3 "exp:..."); "" keeps it.
	Latency string
	// Drop is the probability that a message sent in the fault phase is
	// lost (N4), in [0, 0.3].
	Drop float64
	// Duplicate is the probability that a message sent in the fault phase
	// gets an extra copy (N5), in [0, 0.5], arriving up to DuplicateLate
	// after the original; DuplicateLate defaults to 1s.
	Duplicate     float64
	DuplicateLate time.Duration
	// Reorder is the probability that a message sent in the fault phase is
	// forced to swap with an earlier one on its link (N6).
	Reorder float64
	// Clogs is the number of clogged directed paths (N7), each for an
	// exponential time of mean ClogMean (default Duration/5).
	Clogs    int
	ClogMean time.Duration
	// Swizzles is the number of swizzles (N8), each over a random subset of
	// nodes.
	Swizzles int
	// Partitions is the number of symmetric partitions (N9), one after
	// another with healthy gaps. PartitionMode picks how the nodes are
	// split; "" draws a mode for each.
	Partitions    int
	PartitionMode string
	Asymmetric    int // N10: nodes that lose one direction of their links
	Bridges       int // N11: non-transitive partitions
	Flaps         int // N12: flapping links
	Blackouts     int // N13: nodes silenced for most of the fault phase
	Outages       int // windows in which every message is lost
	Pauses        int // P1: paused nodes, servers or clients
	Crashes       int // P2: crashed and restarted servers
	// Reformats is the number of storage units crashed and restarted with
	// an empty disk (P4). The plan places at most Topology.Replicas-1 in a
	// run, and none with chains of one replica; each counts against
	// MaxFailedUnits while it is down.
	Reformats int
	// Amnesias is the number of sequencer restarts with no state at all,
	// not even the reservation mark (FaultAmnesia); each picks one of the
	// sequencer nodes (the standby too, if the cluster has one).
	Amnesias int
	// Clocks is the number of client clock offsets (C1), each ahead or
	// back by up to ClockJump (default 5s).
	Clocks    int
	ClockJump time.Duration
	// The disk faults (D1-D6), for runs in durable mode (Options.Disk);
	// a run on in-memory units ignores them. Each is a number of windows.
	SlowDisks  int // D1: servers whose disk is slow, each op up to SlowDisk (default 20ms)
	SlowDisk   time.Duration
	Corrupts   int // D2: units whose disk corrupts reads, at DiskErrorRate
	Misdirects int // D3: units whose disk misdirects writes, at DiskErrorRate; shares the reformats' budget
	// DiskErrorRate is the probability that a read (D2) or a write (D3) of
	// a faulty disk goes wrong; default 0.05.
	DiskErrorRate float64
	Torn          int // D4: units whose power goes during a write
	FullDisks     int // D5: servers whose disk is full
	Swaps         int // D6: units restarted on another unit's disk
	// MaxFailedUnits bounds the storage units that are paused, crashed or
	// blacked out at one time. Zero means the catalog's default, f: one
	// less than the replicas per chain. Layout servers are held to a
	// minority the same way.
	MaxFailedUnits int
}

// Topology names the nodes a fault plan may hit.
type Topology struct {
	Layouts   []transport.NodeID
	Sequencer transport.NodeID
	// Standby is a second sequencer node, outside the projection until a
	// reconfiguration moves the sequencer there; "" if none.
	Standby  transport.NodeID
	Units    []transport.NodeID // spares included
	Clients  []transport.NodeID
	Replicas int // per chain, for FaultConfig.MaxFailedUnits
}

func (t Topology) servers() []transport.NodeID {
	out := slices.Clone(t.Layouts)
	out = append(out, t.Sequencer)
	if t.Standby != "" {
		out = append(out, t.Standby)
	}
	return append(out, t.Units...)
}

func (t Topology) all() []transport.NodeID { return append(t.servers(), t.Clients...) }

// nodeWindow is a node fault already planned, for the limits.
type nodeWindow struct {
	node       transport.NodeID
	start, end time.Duration
}

// planner holds what the steps of one Plan share: the faults being
// planned, the config and topology, the fault phase d, the random stream
// every draw comes from, and the node faults placed so far.
//
// NB: every draw of a plan comes from r, in the order the steps are called
// in Plan; a step moved, or a draw added in the middle, changes the plan
// (and the trace) of every seed that reaches it.
type planner struct {
	f   *Faults
	cfg FaultConfig
	t   Topology
	d   time.Duration
	r   *rand.Rand
	all []transport.NodeID

	maxUnits   int // storage units down at once
	maxLayouts int // layout servers down at once
	planned    []nodeWindow
}

// Plan adds the faults cfg asks for, on the nodes of t, drawing their
// targets and windows from the scheduler's stream "faults.plan/cfg.Seed". A node
// fault (pause, crash, blackout) that cannot be placed within the limits
// (one at a time per node, at most MaxFailedUnits units and a minority of
// layout servers at once) after a few draws is left out. It returns an
// error if cfg.Latency does not parse.
func (f *Faults) Plan(cfg FaultConfig, t Topology) error {
	d := cfg.Duration
	if d <= 0 {
		return nil
	}
	p := &planner{f: f, cfg: cfg, t: t, d: d, r: f.s.Fork(fmt.Sprintf("faults.plan/%d", cfg.Seed)), all: t.all()}
	if err := p.messageFaults(); err != nil {
		return err
	}
	p.linkFaults()
	p.partitions()
	p.cuts()
	p.nodeFaults()
	p.clocks()
	// NB: last, so that a plan without amnesia draws as it did before the
	// kind existed.
	p.amnesias()
	// NB: the disk faults last, so that a plan without them draws as it
	// did before they existed.
	p.diskFaults()
	return nil
}

// span returns a duration drawn uniformly in [lo, hi], or lo if hi <= lo
// (with no draw).
func (p *planner) span(lo, hi time.Duration) time.Duration {
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(p.r.Int64N(int64(hi-lo)+1))
}

// window returns a window within the fault phase whose length is drawn
// in [lo, hi] (capped at d), and then its start.
func (p *planner) window(lo, hi time.Duration) (time.Duration, time.Duration) {
	n := min(p.span(lo, hi), p.d)
	s := p.span(0, p.d-n)
	return s, s + n
}

// pick returns one of nodes, drawn uniformly.
func (p *planner) pick(nodes []transport.NodeID) transport.NodeID {
	return nodes[p.r.IntN(len(nodes))]
}

// messageFaults plans the faults that hold over the whole fault phase and
// hit every message: the fault latency (N2, N3), drops (N4), duplicates
// (N5) and reordering (N6). They draw nothing. It returns an error if
// cfg.Latency does not parse.
func (p *planner) messageFaults() error {
	cfg, d, f := p.cfg, p.d, p.f
	if cfg.Latency != "" {
		m, err := ParseLatency(cfg.Latency, f.s.Elapsed)
		if err != nil {
			return err
		}
		f.Latency(0, d, m, cfg.Latency)
	}
	if cfg.Drop > 0 {
		f.Drop(0, d, cfg.Drop)
	}
	if cfg.Duplicate > 0 {
		late := cfg.DuplicateLate
		if late <= 0 {
			late = time.Second
		}
		f.Duplicate(0, d, cfg.Duplicate, late)
	}
	if cfg.Reorder > 0 {
		f.Reorder(0, d, cfg.Reorder)
	}
	return nil
}

// linkFaults plans the clogged paths (N7), each for an exponential time of
// mean cfg.ClogMean (default d/5), and the swizzles (N8), each over a
// random subset of the nodes.
func (p *planner) linkFaults() {
	cfg, d, r, all := p.cfg, p.d, p.r, p.all
	clogMean := cfg.ClogMean
	if clogMean <= 0 {
		clogMean = d / 5
	}
	for range cfg.Clogs {
		from := p.pick(all)
		to := p.pick(all)
		for to == from {
			to = p.pick(all)
		}
		n := min(time.Duration(r.ExpFloat64()*float64(clogMean)), d)
		s := p.span(0, d-n)
		p.f.Clog(s, s+n, from, to)
	}
	for range cfg.Swizzles {
		perm := r.Perm(len(all))
		k := 2 + r.IntN(max(len(all)/2-1, 1))
		nodes := make([]transport.NodeID, 0, k)
		for _, i := range perm[:min(k, len(all))] {
			nodes = append(nodes, all[i])
		}
		s, e := p.window(d/4, d/2)
		p.f.Swizzle(s, e, nodes)
	}
}

// partitions plans the symmetric partitions (N9), one after another with
// healthy gaps between them, as many of cfg.Partitions as fit in the fault
// phase. Each splits the nodes by cfg.PartitionMode, or by a mode drawn
// for it.
func (p *planner) partitions() {
	cfg, d, r := p.cfg, p.d, p.r
	at := p.span(0, d/10)
	for i := 0; i < cfg.Partitions && at < d; i++ {
		end := min(at+p.span(d/10, d/3), d)
		mode := cfg.PartitionMode
		if mode == "" {
			mode = []string{PartitionUniformSize, PartitionUniformPartition, PartitionIsolateSingle}[r.IntN(3)]
		}
		p.f.Partition(at, end, mode, splitNodes(r, p.all, mode)...)
		at = end + p.span(0, d/10)
	}
}

// cuts plans the other faults that cut links, each in its own window:
// asymmetric ones (N10), bridges (N11), flapping links (N12) and outages,
// in which every message is lost.
func (p *planner) cuts() {
	cfg, d, r, all := p.cfg, p.d, p.r, p.all
	for range cfg.Asymmetric {
		s, e := p.window(d/10, d/2)
		p.f.Asymmetric(s, e, p.pick(all), r.IntN(2) == 0)
	}
	for range cfg.Bridges {
		perm := r.Perm(len(all))
		bridge := all[perm[0]]
		rest := perm[1:]
		cut := 1 + r.IntN(len(rest)-1)
		var a, c []transport.NodeID
		for i, k := range rest {
			if i < cut {
				a = append(a, all[k])
			} else {
				c = append(c, all[k])
			}
		}
		s, e := p.window(d/10, d/2)
		p.f.Bridge(s, e, a, bridge, c)
	}
	for range cfg.Flaps {
		a := p.pick(all)
		b := p.pick(all)
		for b == a {
			b = p.pick(all)
		}
		s, e := p.window(d/10, d/2)
		period := min(p.span(50*time.Millisecond, 5*time.Second), max((e-s)/4, time.Millisecond))
		p.f.Flap(s, e, a, b, period)
	}
	for range cfg.Outages {
		s, e := p.window(d/50, d/10)
		p.f.Outage(s, e)
	}
}

// fits reports whether a fault of node over [s, e) keeps within the limits
// with the node faults planned so far: one at a time per node, at most
// maxUnits storage units and maxLayouts layout servers at once.
func (p *planner) fits(node transport.NodeID, s, e time.Duration) bool {
	units, layouts := 0, 0
	for _, w := range p.planned {
		if w.end <= s || w.start >= e {
			continue
		}
		if w.node == node {
			return false
		}
		switch {
		case slices.Contains(p.t.Units, w.node):
			units++
		case slices.Contains(p.t.Layouts, w.node):
			layouts++
		}
	}
	switch {
	case slices.Contains(p.t.Units, node):
		return units < p.maxUnits
	case slices.Contains(p.t.Layouts, node):
		return layouts < p.maxLayouts
	}
	return true
}

// place draws a node of targets and a window of length in [lo, hi] for a
// node fault, and adds it with add if it fits the limits. It tries 8
// times, then leaves the fault out.
func (p *planner) place(targets []transport.NodeID, lo, hi time.Duration, add func(s, e time.Duration, node transport.NodeID)) {
	for range 8 {
		node := p.pick(targets)
		s, e := p.window(lo, hi)
		if p.fits(node, s, e) {
			p.planned = append(p.planned, nodeWindow{node: node, start: s, end: e})
			add(s, e, node)
			return
		}
	}
}

// nodeFaults sets the limits of the node faults and places the reformats
// (P4), blackouts (N13), crashes (P2) and pauses (P1).
func (p *planner) nodeFaults() {
	cfg, t, d, f := p.cfg, p.t, p.d, p.f
	p.maxUnits = cfg.MaxFailedUnits
	if p.maxUnits == 0 {
		p.maxUnits = max(t.Replicas-1, 0)
	}
	p.maxLayouts = (len(t.Layouts) - 1) / 2
	// NB: a reformatted unit's data is gone for good, and nothing rebuilds
	// it: over the whole run, at most f of them, so that every chain keeps
	// a replica of what it held whichever units the draws hit (spares
	// included: one may have joined a chain by then).
	for range min(cfg.Reformats, max(t.Replicas-1, 0)) {
		p.place(t.Units, d/20, d/4, f.Reformat)
	}
	for range cfg.Blackouts {
		p.place(p.all, d/2, d*9/10, f.Blackout)
	}
	for range cfg.Crashes {
		p.place(t.servers(), d/20, d/4, f.Crash)
	}
	for range cfg.Pauses {
		p.place(p.all, d/20, d/3, f.Pause)
	}
}

// clocks plans the client clock offsets (C1), each ahead or back by up to
// cfg.ClockJump; none if there are no clients.
func (p *planner) clocks() {
	cfg, t, d := p.cfg, p.t, p.d
	jump := cfg.ClockJump
	if jump <= 0 {
		jump = 5 * time.Second
	}
	for i := 0; i < cfg.Clocks && len(t.Clients) > 0; i++ {
		s, e := p.window(d/10, d/2)
		off := p.span(time.Millisecond, jump)
		if p.r.IntN(2) == 0 {
			off = -off
		}
		p.f.Clock(s, e, p.pick(t.Clients), off)
	}
}

// amnesias places the sequencer restarts with no state, each on the
// sequencer or the standby, within the limits of the node faults.
func (p *planner) amnesias() {
	sequencers := []transport.NodeID{p.t.Sequencer}
	if p.t.Standby != "" {
		sequencers = append(sequencers, p.t.Standby)
	}
	for range p.cfg.Amnesias {
		p.place(sequencers, p.d/20, p.d/4, p.f.Amnesia)
	}
}

// diskFaults plans the disk faults (D1-D6): slow disks, corrupted reads,
// misdirected writes, torn writes, full disks and swapped disks.
//
// NB: those that cost a unit its service count against the limits;
// misdirected writes, which may cost it its data, share the reformats'
// budget.
func (p *planner) diskFaults() {
	cfg, t, d, f := p.cfg, p.t, p.d, p.f
	slow := cfg.SlowDisk
	if slow <= 0 {
		slow = 20 * time.Millisecond
	}
	rate := cfg.DiskErrorRate
	if rate <= 0 {
		rate = 0.05
	}
	for range cfg.SlowDisks {
		s, e := p.window(d/10, d/2)
		f.SlowDisk(s, e, p.pick(t.servers()), slow)
	}
	for range cfg.Corrupts {
		s, e := p.window(d/10, d/2)
		f.Corrupt(s, e, p.pick(t.Units), rate)
	}
	damage := max(t.Replicas-1, 0) - min(cfg.Reformats, max(t.Replicas-1, 0))
	for range min(cfg.Misdirects, damage) {
		p.place(t.Units, d/10, d/2, func(s, e time.Duration, node transport.NodeID) { f.Misdirect(s, e, node, rate) })
	}
	for range cfg.Torn {
		p.place(t.Units, d/20, d/4, f.Torn)
	}
	for range cfg.FullDisks {
		p.place(t.servers(), d/20, d/4, f.DiskFull)
	}
	if len(t.Units) > 1 {
		for range cfg.Swaps {
			p.place(t.Units, d/20, d/4, f.Swap)
		}
	}
}

// splitNodes splits nodes into the groups of a partition mode.
func splitNodes(r *rand.Rand, nodes []transport.NodeID, mode string) [][]transport.NodeID {
	perm := r.Perm(len(nodes))
	switch mode {
	case PartitionIsolateSingle:
		var rest []transport.NodeID
		for _, p := range perm[1:] {
			rest = append(rest, nodes[p])
		}
		return [][]transport.NodeID{{nodes[perm[0]]}, rest}
	case PartitionUniformPartition:
		k := 2 + r.IntN(2)
		groups := make([][]transport.NodeID, k)
		for _, n := range nodes {
			g := r.IntN(k)
			groups[g] = append(groups[g], n)
		}
		return slices.DeleteFunc(groups, func(g []transport.NodeID) bool { return len(g) == 0 })
	}
	size := 1 + r.IntN(len(nodes)-1)
	var a, b []transport.NodeID
	for i, p := range perm {
		if i < size {
			a = append(a, nodes[p])
		} else {
			b = append(b, nodes[p])
		}
	}
	return [][]transport.NodeID{a, b}
}
