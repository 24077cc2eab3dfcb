package sim

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

// Violation is one broken invariant found by the checker. Invariant names the
// rule as docs/invariants.md numbers it ("S1", "S3", ...), Addr is the global
// address it concerns (0 when the rule is not about one address), and Detail
// says what was seen, naming the operations involved.
type Violation struct {
	Invariant string
	Addr      storage.Address
	Detail    string
	// Warning marks a finding the protocol may produce by design, so that a
	// run need not fail on it: S5, one value at two addresses, which an
	// append retried inside the client can leave behind (at-least-once);
	// and S13 for a stream read whose range a tail reset handed out again
	// (see checker.reissued).
	Warning bool
}

// String formats the violation on one line.
func (v Violation) String() string {
	kind := "violation"
	if v.Warning {
		kind = "warning"
	}
	return fmt.Sprintf("%s %s at address %d: %s", v.Invariant, kind, v.Addr, v.Detail)
}

// sortViolations orders violations by invariant (S2 before S10), address and
// detail, so that a report never depends on the order in which checks ran or
// maps iterated.
func sortViolations(vs []Violation) {
	slices.SortStableFunc(vs, func(a, b Violation) int {
		return cmp.Or(
			compareInvariants(a.Invariant, b.Invariant),
			cmp.Compare(a.Addr, b.Addr),
			cmp.Compare(a.Detail, b.Detail),
		)
	})
}

// compareInvariants orders invariant names by their letters, then by the
// number that follows them, then as strings.
func compareInvariants(a, b string) int {
	split := func(s string) (string, int) {
		i := strings.IndexAny(s, "0123456789")
		if i < 0 {
			return s, -1
		}
		j := i
		for j < len(s) && s[j] >= '0' && s[j] <= '9' {
			j++
		}
		n, _ := strconv.Atoi(s[i:j])
		return s[:i], n
	}
	pa, na := split(a)
	pb, nb := split(b)
	return cmp.Or(cmp.Compare(pa, pb), cmp.Compare(na, nb), cmp.Compare(a, b))
}

// maxKeptViolations bounds the violations a Monitor keeps with their detail;
// it still counts the rest.
const maxKeptViolations = 100

// Monitor watches every replica and the sequencer while a simulation runs and
// checks the invariants that need that inside view (docs/invariants.md marks them
// O):
//
//   - S1 write-once: per global address, the distinct things stored on all
//     replicas together number at most one. Each distinct byte string is one
//     thing and junk is one thing, so data and junk never both appear.
//   - S6 fill never clobbers: no replica is junk-filled at an address where
//     some replica already stored data. Such a fill also breaks S1 and is
//     reported under both names.
//   - S10 no reissued address: the sequencer never hands out one address
//     twice, in one epoch or across epochs.
//   - S8 epoch fencing: a unit sealed at an epoch serves no mutation, and
//     no read with data, of an older epoch (Fenced).
//   - S9 projection agreement: one projection per epoch at every layout
//     server, each a valid successor of the one before (Committed); a
//     layout server's epoch never goes back (LayoutAnswered); nor does a
//     client's (ClientWentBack).
//
// The simulator calls Stored, Filled and Tokens from wrappers around the
// storage units and the sequencer, Committed and LayoutAnswered from the
// layout servers' wrappers, and ClientWentBack from the clients' Callers. A Monitor keeps what every replica ever
// stored, including what a crash later lost, so a value that was stored and
// lost still counts for S1.
//
// NB: docs/invariants.md forbids data and junk only when both are committed, but
// a Monitor does not know chain order, so it flags them as soon as both are
// stored on replicas that are still in the address's chain. InChain tells it
// which those are; without it every replica counts, and a head that took
// data and lost it (a crash before the sync, or a replacement during
// reconfiguration) before a legitimate junk fill is reported as well. With
// it, data or junk held only by replicas that a committed projection took
// out of the address's chain does not conflict with what is stored later:
// it was never committed, since a committed entry is on every replica of
// its chain and a reconfiguration keeps at least one replica of each chain,
// and no reader can see it any more. The same holds for what a stale writer
// stores on such a replica after it left the chain.
//
// A Monitor is safe for concurrent use. OnViolation, if used, must be set
// before the first call.
type Monitor struct {
	// OnViolation, if not nil, is called with each violation as soon as it
	// is found, outside the Monitor's lock and on the goroutine that made
	// the call that found it, so that a run can stop at once.
	OnViolation func(Violation)
	// InChain, if not nil, reports whether node is now a replica of global
	// address global's chain (see the NB above). It is called with the
	// Monitor's lock held.
	InChain func(global storage.Address, node projection.NodeID) bool
	// ChainOf, if not nil, returns global's chain, head first, in the
	// projection of epoch (the one chosen for it, if known, else the
	// newest known below it), for S7 (chain prefix): a replica stores a
	// thing only after the replica before it in the chain has. It is
	// called with the Monitor's lock held.
	ChainOf func(global storage.Address, epoch storage.Epoch) []projection.NodeID
	// TrimmedOn, if not nil, reports whether replica node has trimmed
	// global (in the projection of epoch): a trimmed replica holds nothing
	// and never will, so for S7 it stands for whatever the replicas after
	// it hold. It is called with the Monitor's lock held.
	TrimmedOn func(global storage.Address, node projection.NodeID, epoch storage.Epoch) bool

	mu    sync.Mutex
	addrs map[storage.Address]*stored
	// unitWrites holds, per unit and local address, the hashes of what the
	// unit acknowledged writing there (S15).
	unitWrites map[unitWrite][][sha256.Size]byte
	tokens     []tokenSpan // disjoint, sorted by start
	// tokenEpoch is the newest epoch any tokens were handed out in.
	tokenEpoch storage.Epoch
	kept       []Violation
	count      int

	// epochs lists the epochs committed anywhere, increasing, and
	// projections the first projection committed for each (S9).
	epochs      []storage.Epoch
	projections map[storage.Epoch]committedAt
	// layoutEpochs is the newest epoch each layout server has answered a
	// get-layout with.
	layoutEpochs map[projection.NodeID]storage.Epoch
	// tokenEnd is one past the highest address any sequencer handed out;
	// resets lists the bootstraps below it (S11).
	tokenEnd storage.Address
	tailHigh storage.Address // the highest tail a sequencer answered (TailAnswered)
	resets   []Reset
	// handedBy is, per sequencer node, one past the highest address it
	// handed out since it last started with no mark (SequencerAnswered,
	// SequencerRestarted).
	handedBy map[projection.NodeID]storage.Address
}

// Reset is a bootstrap of a sequencer at a tail below addresses handed out
// before: its predecessor could not be sealed (a reconfiguration moved the
// sequencer away from a node it could not reach) or lost its reservation
// mark (amnesia), so the tail came from the units, and addresses handed
// out and never written are handed out again. Tails may go back across it
// (S11), never below it.
type Reset struct {
	At    time.Duration // when the sequencer took the bootstrap, in virtual time since the start
	Epoch storage.Epoch
	Tail  storage.Address // the tail it was bootstrapped at
	High  storage.Address // one past the highest address handed out before it
}

// committedAt is a projection committed at a layout server, or chosen
// (node then says by which majority).
type committedAt struct {
	p    *projection.Projection
	node projection.NodeID
	how  string // "committed at" or "chosen by"
}

// stored is what the replicas hold at one global address: each distinct
// thing, in the order first seen. More than one is a violation.
type stored struct {
	things []thing
	// wiped lists what replicas held here before a reformat wiped them
	// (see Wiped): no longer stored, for S1, but stored before, for S7.
	wiped []wipedThing
	// gone lists what a reformat wiped off the only replica that held it:
	// stored once, for S3 (see Holds), though no replica holds it now.
	gone []thing
}

// wipedThing is a thing that node held before it was wiped.
type wipedThing struct {
	junk bool
	sum  [sha256.Size]byte
	node projection.NodeID
}

// thing is one distinct content stored at an address: junk, or data
// identified by its hash.
type thing struct {
	junk   bool
	sum    [sha256.Size]byte
	size   int
	prefix string // the start of the data, for reports
	// data is the whole of the data if it is at most maxKeptBytes long,
	// for matching an acknowledged append's payload (see Holds).
	data   []byte
	node   projection.NodeID
	others []projection.NodeID // the other replicas that stored it
	epoch  storage.Epoch       // the epoch of the request that stored it
}

// live reports whether a replica that still belongs to global's chain holds
// t.
func (m *Monitor) live(global storage.Address, t thing) bool {
	if m.InChain == nil || m.InChain(global, t.node) {
		return true
	}
	for _, n := range t.others {
		if m.InChain(global, n) {
			return true
		}
	}
	return false
}

// prefix checks S7 for a store of t at t.node, where held is the same
// thing as the replicas hold it (nil if none holds it now): the replica
// before t.node in global's chain must have stored it already. It may have
// lost it since to a reformat (see Wiped): the order of the stores was
// kept. m.mu is held.
func (m *Monitor) prefix(global storage.Address, t thing, held *thing, found []Violation) []Violation {
	if m.ChainOf == nil {
		return found
	}
	node, epoch := t.node, t.epoch
	chain := m.ChainOf(global, epoch)
	k := slices.Index(chain, node)
	if k <= 0 {
		return found // the head, or a replica outside the chain (see live)
	}
	prev := chain[k-1]
	if held != nil && (held.node == prev || slices.Contains(held.others, prev)) {
		return found
	}
	if s := m.addrs[global]; s != nil && slices.Contains(s.wiped, wipedThing{junk: t.junk, sum: t.sum, node: prev}) {
		return found
	}
	if m.TrimmedOn != nil && m.TrimmedOn(global, prev, epoch) {
		return found
	}
	return append(found, Violation{Invariant: "S7", Addr: global, Detail: fmt.Sprintf(
		"%s stored at epoch %d before %s, the replica ahead of it in the chain %v, held it", node, epoch, prev, chain)})
}

func (t thing) String() string {
	if t.junk {
		return fmt.Sprintf("junk at %s", t.node)
	}
	if t.size > len(t.prefix) {
		return fmt.Sprintf("data %q... (%d bytes) at %s", t.prefix, t.size, t.node)
	}
	return fmt.Sprintf("data %q at %s", t.prefix, t.node)
}

// tokenSpan records the addresses [start, end) handed out in epoch.
type tokenSpan struct {
	start, end storage.Address
	epoch      storage.Epoch
	forgotten  bool // handed out by a sequencer that lost its state since
}

// reportPrefixBytes bounds how much of an entry a report quotes, and
// maxKeptBytes the entries a Monitor keeps whole.
const (
	reportPrefixBytes = 32
	maxKeptBytes      = 4 << 10
)

// NewMonitor returns a Monitor that has seen nothing.
func NewMonitor() *Monitor {
	return &Monitor{addrs: make(map[storage.Address]*stored),
		projections:  make(map[storage.Epoch]committedAt),
		layoutEpochs: make(map[projection.NodeID]storage.Epoch),
		handedBy:     make(map[projection.NodeID]storage.Address)}
}

// Stored records that replica node now holds data at global address global:
// call it after every successful write at a replica, with the epoch of the
// request and the raw bytes the replica stored. It checks S1 and S7.
func (m *Monitor) Stored(global storage.Address, node projection.NodeID, epoch storage.Epoch, data []byte) {
	t := thing{sum: sha256.Sum256(data), size: len(data), node: node, epoch: epoch}
	t.prefix = string(data[:min(len(data), reportPrefixBytes)])
	if len(data) <= maxKeptBytes {
		t.data = slices.Clone(data)
	}
	m.observe(global, t)
}

// Holds reports whether some replica ever stored, at global address
// global, data that ends with payload (wiped since or not): the stored form of an entry ends
// with its payload, so an acknowledged append's bytes must be among what
// its chain stored. Data too long for the Monitor to keep counts as a
// match.
func (m *Monitor) Holds(global storage.Address, payload []byte) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.addrs[global]
	if s == nil {
		return false
	}
	for _, t := range slices.Concat(s.things, s.gone) {
		if !t.junk && (t.size > maxKeptBytes || bytes.HasSuffix(t.data, payload)) {
			return true
		}
	}
	return false
}

// Filled records that replica node junk-filled global address global: call it
// after every successful fill at a replica, with the epoch of the request.
// It checks S1, S6 and S7.
func (m *Monitor) Filled(global storage.Address, node projection.NodeID, epoch storage.Epoch) {
	m.observe(global, thing{junk: true, node: node, epoch: epoch})
}

// Returned checks S7 from the reader's side, for a read of global address
// global that returned junk, or an entry that match recognises in its
// stored form: what a read returns is committed, so the last replica of
// the address's chain in the projection of epoch (the reader's) must hold
// it already. A reader that returned what only the head holds (read there,
// or found there by a fill that did not copy it down) breaks it: a
// reconfiguration that drops the head may lose it.
func (m *Monitor) Returned(global storage.Address, epoch storage.Epoch, junk bool, match func(stored []byte) bool, what string) {
	m.mu.Lock()
	if m.ChainOf == nil {
		m.mu.Unlock()
		return
	}
	chain := m.ChainOf(global, epoch)
	if len(chain) == 0 {
		m.mu.Unlock()
		return
	}
	last := chain[len(chain)-1]
	held := false
	if s := m.addrs[global]; s != nil {
		for _, t := range s.things {
			if t.junk == junk && (t.node == last || slices.Contains(t.others, last)) &&
				(junk || t.size > maxKeptBytes || match(t.data)) {
				held = true
				break
			}
		}
	}
	m.mu.Unlock()
	if !held {
		m.report(Violation{Invariant: "S7", Addr: global, Detail: fmt.Sprintf(
			"a read or fill at epoch %d returned what %s, the last replica of the chain %v, did not hold: %s", epoch, last, chain, what)})
	}
}

func (m *Monitor) observe(global storage.Address, t thing) {
	var found []Violation
	m.mu.Lock()
	s := m.addrs[global]
	if s == nil {
		s = &stored{}
		m.addrs[global] = s
	}
	for i, old := range s.things {
		if old.junk == t.junk && old.sum == t.sum {
			if old.node != t.node && !slices.Contains(old.others, t.node) {
				found = m.prefix(global, t, &old, found)
				s.things[i].others = append(s.things[i].others, t.node)
			}
			m.record(found)
			m.mu.Unlock()
			m.notify(found)
			return
		}
	}
	found = m.prefix(global, t, nil, found)
	var conflicts []thing
	for _, old := range s.things {
		// Two things conflict only on replicas still in the address's
		// chain. NB: a stale writer can still reach a replica that a
		// reconfiguration took out of the chain while it was cut off from
		// the seal; what it stores there no reader of the committed epoch
		// ever reads (a stale reader meets a sealed replica of the chain
		// first), so it is garbage, not a second value.
		if m.live(global, old) && m.live(global, t) {
			conflicts = append(conflicts, old)
		}
	}
	if len(conflicts) > 0 {
		names := make([]string, 0, len(conflicts))
		for _, old := range conflicts {
			names = append(names, old.String())
		}
		found = append(found, Violation{Invariant: "S1", Addr: global, Detail: fmt.Sprintf(
			"%s stored where replicas already held %s", t, strings.Join(names, ", "))})
		if t.junk {
			for _, old := range conflicts {
				if !old.junk {
					found = append(found, Violation{Invariant: "S6", Addr: global, Detail: fmt.Sprintf(
						"%s filled after %s", t, old)})
					break
				}
			}
		}
	}
	s.things = append(s.things, t)
	m.record(found)
	m.mu.Unlock()
	m.notify(found)
}

// Wiped records that node lost everything it stored (it came back with an
// empty disk, fault reformat): what it held there no longer counts as
// stored, so an address that only it ever held is free again (S1, S10).
// Copies on other replicas stay. For S7 it still counts as stored before:
// a write that was on its way down the chain when the replica ahead of its
// target lost the entry (a late copy of a stale epoch, to a replica no seal
// reached) follows the chain's order.
func (m *Monitor) Wiped(node projection.NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.forgetUnit(node)
	for _, s := range m.addrs {
		s.forget(node)
	}
}

// Repaired records that node's record at global address global failed its
// checksum and a repair replaced it (storage.Repairer): what node stored
// there before is lost, as if wiped, and only the repair's content counts
// for it from now on. Call it before Stored or Filled for the repair. A
// repair that puts junk where another replica of the chain still holds
// data still breaks S1 and S6.
func (m *Monitor) Repaired(global storage.Address, node projection.NodeID) { m.Lost(global, node) }

// Lost records that node no longer holds its record at global address
// global, which a disk fault destroyed without a trace that recovery could
// find (see Durable): what node stored there is gone, as if wiped, and
// what it stores there next counts on its own. Data lost there while
// another replica holds it is still caught: a fill of the lost replica
// then breaks S1 and S6, and replicas that disagree break S16.
func (m *Monitor) Lost(global storage.Address, node projection.NodeID) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s := m.addrs[global]; s != nil {
		s.forget(node)
	}
}

// forget drops node from what s records as stored, keeping for S7 that it
// stored it.
func (s *stored) forget(node projection.NodeID) {
	kept := s.things[:0]
	for _, t := range s.things {
		if t.node == node || slices.Contains(t.others, node) {
			if w := (wipedThing{junk: t.junk, sum: t.sum, node: node}); !slices.Contains(s.wiped, w) {
				s.wiped = append(s.wiped, w)
			}
		}
		t.others = slices.DeleteFunc(t.others, func(n projection.NodeID) bool { return n == node })
		if t.node == node {
			if len(t.others) == 0 {
				s.gone = append(s.gone, t)
				continue // held by node alone: gone
			}
			t.node, t.others = t.others[0], t.others[1:]
		}
		kept = append(kept, t)
	}
	s.things = kept
}

// Tokens records that the sequencer handed out the n addresses from start in
// epoch: call it for every successful token request, with n = 0 for a request
// that only asked for the tail. It checks S10: no address is handed out
// twice, whatever the epochs.
//
// NB: a new sequencer bootstrapped from the seal's tail may hand out again an
// address tokened in the old epoch but never written. docs/invariants.md counts
// that as a violation too; the report says whether a replica held the address
// when it was handed out again, which is the harmful case. After
// SequencerLost only the harmful case is reported for the addresses handed
// out before the loss. Tokens of an epoch older than one tokens were
// handed out in already come from a stale sequencer (one the log moved
// away from without reaching it) and are not checked.
func (m *Monitor) Tokens(epoch storage.Epoch, start storage.Address, n int) {
	if n <= 0 {
		return
	}
	m.mu.Lock()
	if epoch < m.tokenEpoch {
		// NB: only a sequencer the log moved away from, whose seal was
		// lost, still serves an older epoch; the units fence what its
		// clients write (S8), and S1 catches what gets past them.
		m.mu.Unlock()
		return
	}
	m.tokenEpoch = epoch
	m.mu.Unlock()
	end := start + storage.Address(n)
	if end < start { // overflow
		end = storage.Address(math.MaxUint64)
	}
	var found []Violation
	m.mu.Lock()
	m.tokenEnd = max(m.tokenEnd, end)
	found = m.reissueForgotten(epoch, start, end, found)
	// i is the first span that ends after start: the first that may overlap.
	i := sort.Search(len(m.tokens), func(j int) bool { return m.tokens[j].end > start })
	var gaps []tokenSpan
	next := start
	for j := i; j < len(m.tokens) && m.tokens[j].start < end; j++ {
		old := m.tokens[j]
		if old.start > next {
			gaps = append(gaps, tokenSpan{start: next, end: old.start, epoch: epoch})
		}
		lo, hi := max(old.start, start), min(old.end, end)
		written := ""
		if s := m.addrs[lo]; s != nil && len(s.things) > 0 {
			written = fmt.Sprintf("; a replica already held %s", s.things[0])
		}
		found = append(found, Violation{Invariant: "S10", Addr: lo, Detail: fmt.Sprintf(
			"addresses [%d, %d) handed out in epoch %d were already handed out in epoch %d%s",
			lo, hi, epoch, old.epoch, written)})
		next = max(next, hi)
	}
	if next < end {
		gaps = append(gaps, tokenSpan{start: next, end: end, epoch: epoch})
	}
	m.insertSpans(i, gaps)
	m.record(found)
	m.mu.Unlock()
	m.notify(found)
}

// TailAnswered tells the Monitor that a sequencer answered a tail query
// with tail: a later bootstrap below it is a Reset too, as one below an
// address handed out is.
func (m *Monitor) TailAnswered(tail storage.Address) {
	m.mu.Lock()
	m.tailHigh = max(m.tailHigh, tail)
	m.mu.Unlock()
}

// Bootstrapped tells the Monitor that a sequencer was bootstrapped in
// epoch and starts from tail, at virtual time at: from then on, tokens of
// older epochs come from a stale sequencer and are not checked (see
// Tokens). A tail below an address handed out, or a tail answered, before
// is a Reset (see Resets).
func (m *Monitor) Bootstrapped(epoch storage.Epoch, tail storage.Address, at time.Duration) {
	m.mu.Lock()
	m.tokenEpoch = max(m.tokenEpoch, epoch)
	if high := max(m.tokenEnd, m.tailHigh); tail < high {
		m.resets = append(m.resets, Reset{At: at, Epoch: epoch, Tail: tail, High: high})
	}
	m.mu.Unlock()
}

// Resets returns the bootstraps so far whose tail was below an address
// handed out before them, in the order they happened.
func (m *Monitor) Resets() []Reset {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.resets)
}

// SequencerLost tells the Monitor that the sequencer lost its state (a
// crash, fault catalog P2). From then on, handing out again an address that
// was handed out before the loss is a violation of S10 only if a replica
// holds something there when it is handed out again.
//
// NB: this narrows S10 as docs/invariants.md words it ("above every address
// written or tokened"), and rightly: a sequencer that lost its state is
// bootstrapped from the tail the seal finds on the units, which can only
// know the addresses some replica holds. An address handed out but never
// written is reissued harmlessly: the units are sealed, so its old holder's
// write is refused at the old epoch and, retried at the same address in the
// new epoch, meets the new holder's entry at the chain's head and takes a
// fresh token (or wins the address first, and the new holder does so); a
// reader's fill in the new epoch races the new holder the same way. An
// address a replica holds data at, or junk from an older epoch, must still
// never be handed out again.
func (m *Monitor) SequencerLost() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.tokens {
		m.tokens[i].forgotten = true
	}
}

// SequencerAnswered records that the sequencer on node handed out
// addresses up to end (one past the last), in a token request's answer,
// for the check at its next restart (SequencerRestarted).
func (m *Monitor) SequencerAnswered(node projection.NodeID, end storage.Address) {
	m.mu.Lock()
	m.handedBy[node] = max(m.handedBy[node], end)
	m.mu.Unlock()
}

// SequencerRestarted tells the Monitor that the sequencer on node
// restarted after a crash: from the reservation mark its host kept, floor
// (sequencer.Config.Floor, with Recovered), if kept, or with no mark at all
// (amnesia), if not. It checks S10's half that SequencerLost does not
// relax: a sequencer restarted from its mark starts at or above every
// address it handed out before, since its host saves a mark before it
// answers with a token at or above the saved one. A restart below is a
// host that answered before its save was durable; the reissue it leads to
// would otherwise pass as a harmless tail reset.
func (m *Monitor) SequencerRestarted(node projection.NodeID, floor storage.Address, kept bool) {
	m.mu.Lock()
	high := m.handedBy[node]
	if !kept {
		// NB: nothing left vouches for what it handed out: the seal of
		// a sequencer with no mark says so, and the units bound the tail.
		delete(m.handedBy, node)
	}
	var found []Violation
	if kept && floor < high {
		found = []Violation{{Invariant: "S10", Addr: floor, Detail: fmt.Sprintf(
			"sequencer %s restarted from its kept mark %d, below address %d it handed out before: its host answered before the mark was durable",
			node, floor, high-1)}}
	}
	m.record(found)
	m.mu.Unlock()
	m.notify(found)
}

// reissueForgotten carves [start, end) out of the forgotten spans, reporting
// under S10 the first address of each overlap that a replica holds. m.mu is
// held.
func (m *Monitor) reissueForgotten(epoch storage.Epoch, start, end storage.Address, found []Violation) []Violation {
	var kept []tokenSpan
	carved := false
	for _, sp := range m.tokens {
		if !sp.forgotten || sp.end <= start || sp.start >= end {
			kept = append(kept, sp)
			continue
		}
		carved = true
		lo, hi := max(sp.start, start), min(sp.end, end)
		for a := lo; a < hi; a++ {
			if t, ok := m.heldBefore(a, epoch); ok {
				found = append(found, Violation{Invariant: "S10", Addr: a, Detail: fmt.Sprintf(
					"address %d handed out in epoch %d, after the sequencer lost its state, was handed out in epoch %d and a replica holds %s",
					a, epoch, sp.epoch, t)})
				break
			}
		}
		if sp.start < lo {
			kept = append(kept, tokenSpan{start: sp.start, end: lo, epoch: sp.epoch, forgotten: true})
		}
		if hi < sp.end {
			kept = append(kept, tokenSpan{start: hi, end: sp.end, epoch: sp.epoch, forgotten: true})
		}
	}
	if carved {
		m.tokens = kept
	}
	return found
}

// heldBefore returns what a replica holds at global that makes handing it
// out again in epoch a reissue, if anything: data, or junk a fill of an
// older epoch stored. m.mu is held.
//
// NB: junk a fill of epoch itself stored before the address was handed out
// in it (a reader's fill of a hole it saw handed out before the loss)
// races the new holder at the chain's head, and write-once settles it: the
// holder takes another address, or the fill returns its entry. Only junk
// the seal could have found, of an older epoch, makes the reissue wrong.
// Data of epoch itself before the address was handed out in it came from a
// writer that kept an older epoch's token (mutant CarryToken).
//
// Only what a replica of global's chain in the projection of epoch holds
// counts (where ChainOf tells it): that is where a reader of epoch looks.
// A reconfiguration that lost the race for an epoch may fill, in that
// epoch, an address above the tail the winner's seal found, through the
// old layout; the winner's projection opens its new segment at that tail
// and places the address on other replicas, so the junk is where no
// reader looks.
func (m *Monitor) heldBefore(global storage.Address, epoch storage.Epoch) (thing, bool) {
	s := m.addrs[global]
	if s == nil {
		return thing{}, false
	}
	var chain []projection.NodeID
	if m.ChainOf != nil {
		chain = m.ChainOf(global, epoch)
	}
	for _, t := range s.things {
		if t.junk && t.epoch >= epoch {
			continue
		}
		if len(chain) == 0 || slices.Contains(chain, t.node) || slices.ContainsFunc(t.others, func(n projection.NodeID) bool { return slices.Contains(chain, n) }) {
			return t, true
		}
	}
	return thing{}, false
}

// insertSpans adds the disjoint, sorted spans gaps, all of which lie between
// m.tokens[i-1] and the spans from i on, merging a span with its predecessor
// when they touch and share an epoch (the common case: one growing span per
// epoch).
func (m *Monitor) insertSpans(i int, gaps []tokenSpan) {
	for _, g := range gaps {
		for i < len(m.tokens) && m.tokens[i].end <= g.start {
			i++
		}
		if i > 0 && m.tokens[i-1].end == g.start && m.tokens[i-1].epoch == g.epoch && !m.tokens[i-1].forgotten {
			m.tokens[i-1].end = g.end
			continue
		}
		m.tokens = slices.Insert(m.tokens, i, g)
		i++
	}
}

// Fenced records that replica node, sealed at epoch sealed, served a
// mutation (a write, fill or trim) stamped with the older epoch stale. That
// breaks S8: after a unit acknowledges a seal it refuses every request of an
// older epoch.
//
// The cluster calls it for reads too: a read of an older epoch answered
// with data after the seal is as stale as a write (a reader of the old
// epoch must meet the seal and refresh its projection).
func (m *Monitor) Fenced(node projection.NodeID, op string, addr storage.Address, stale, sealed storage.Epoch) {
	m.report(Violation{Invariant: "S8", Addr: addr, Detail: fmt.Sprintf(
		"%s served %s of epoch %d at local address %d after sealing at epoch %d", node, op, stale, addr, sealed)})
}

// report records and notifies the violations found outside observe.
func (m *Monitor) report(found ...Violation) {
	m.mu.Lock()
	m.record(found)
	m.mu.Unlock()
	m.notify(found)
}

// Committed records that layout server node acknowledged a commit of p.
// It checks S9 (projection agreement): every commit of one epoch, at any
// layout server, is of the same projection; and each epoch's committed
// projection may follow the committed projection of the epoch before it
// (projection.ValidateNext: a later epoch, the closed segments' mapping
// kept), epochs being allowed to skip (a reconfiguration that takes over
// a sealed epoch). Call it with the initial projection too.
func (m *Monitor) Committed(node projection.NodeID, p *projection.Projection) {
	m.agreed(committedAt{p: p, node: node, how: "committed at"})
}

// Chosen records that the layout servers nodes, a majority, accepted p at
// one rank: p is chosen for its epoch, commits or not. It checks S9 as
// Committed does: one projection chosen per epoch (Paxos's safety), each a
// valid successor of the one before.
func (m *Monitor) Chosen(nodes []projection.NodeID, rank uint64, p *projection.Projection) {
	m.agreed(committedAt{p: p, node: projection.NodeID(fmt.Sprintf("%v at rank %#x", nodes, rank)), how: "chosen by"})
}

// agreed is Committed and Chosen.
func (m *Monitor) agreed(c committedAt) {
	p, node := c.p, c.node
	var found []Violation
	m.mu.Lock()
	if old, ok := m.projections[p.Epoch]; ok {
		if !old.p.Equal(p) {
			found = append(found, Violation{Invariant: "S9", Detail: fmt.Sprintf(
				"two projections for epoch %d: %s %s %s, %s %s %s",
				p.Epoch, projString(old.p), old.how, old.node, projString(p), c.how, node)})
		}
	} else {
		i, _ := slices.BinarySearch(m.epochs, p.Epoch)
		m.epochs = slices.Insert(m.epochs, i, p.Epoch)
		m.projections[p.Epoch] = committedAt{p: p.Clone(), node: node, how: c.how}
		successor := func(prev, next committedAt) {
			if err := projection.ValidateNext(prev.p, next.p); err != nil {
				found = append(found, Violation{Invariant: "S9", Detail: fmt.Sprintf(
					"projection of epoch %d %s %s (%s) may not follow that of epoch %d %s %s (%s): %v",
					next.p.Epoch, next.how, next.node, projString(next.p), prev.p.Epoch, prev.how, prev.node, projString(prev.p), err)})
			}
		}
		if i > 0 {
			successor(m.projections[m.epochs[i-1]], m.projections[p.Epoch])
		}
		if i+1 < len(m.epochs) {
			successor(m.projections[p.Epoch], m.projections[m.epochs[i+1]])
		}
	}
	m.record(found)
	m.mu.Unlock()
	m.notify(found)
}

// LayoutAnswered records that layout server node answered a get-layout
// with a projection of epoch. It checks the other half of S9: the epoch a
// layout server holds committed never goes back.
func (m *Monitor) LayoutAnswered(node projection.NodeID, epoch storage.Epoch) {
	m.mu.Lock()
	prev, ok := m.layoutEpochs[node]
	if !ok || epoch > prev {
		m.layoutEpochs[node] = epoch
	}
	m.mu.Unlock()
	if ok && epoch < prev {
		m.report(Violation{Invariant: "S9", Detail: fmt.Sprintf(
			"layout server %s answered epoch %d after epoch %d", node, epoch, prev)})
	}
}

// ClientWentBack records that a client issued a request stamped with
// epoch after one stamped with the newer epoch before: its epoch went
// back (S9 as a client sees it: the epochs it works in only increase).
func (m *Monitor) ClientWentBack(client projection.NodeID, op string, epoch, before storage.Epoch) {
	m.report(Violation{Invariant: "S9", Detail: fmt.Sprintf(
		"client %s sent %s at epoch %d after a request at epoch %d", client, op, epoch, before)})
}

// ProjectionWentBack records that the projection a client has installed
// is of epoch, after it had installed one of the newer epoch before (S9:
// a client installs only newer projections, whatever the layout servers
// it asked answered).
func (m *Monitor) ProjectionWentBack(client projection.NodeID, epoch, before storage.Epoch) {
	m.report(Violation{Invariant: "S9", Detail: fmt.Sprintf(
		"client %s went back to a projection of epoch %d after installing epoch %d", client, epoch, before)})
}

// projString formats a projection on one line for a report.
func projString(p *projection.Projection) string {
	var segs []string
	for _, s := range p.Segments {
		segs = append(segs, fmt.Sprintf("[%d,%d)@%d%v", s.Start, s.End, s.Base, s.Stripes))
	}
	return fmt.Sprintf("epoch %d seq %s %s", p.Epoch, p.Sequencer, strings.Join(segs, " "))
}

func (m *Monitor) record(found []Violation) {
	for _, v := range found {
		m.count++
		if len(m.kept) < maxKeptViolations {
			m.kept = append(m.kept, v)
		}
	}
}

func (m *Monitor) notify(found []Violation) {
	if m.OnViolation == nil {
		return
	}
	for _, v := range found {
		m.OnViolation(v)
	}
}

// Violations returns the first violations the Monitor found (at most 100 of
// them, with their detail), sorted by invariant and address. Count says how
// many there were in all.
func (m *Monitor) Violations() []Violation {
	m.mu.Lock()
	vs := slices.Clone(m.kept)
	m.mu.Unlock()
	sortViolations(vs)
	return vs
}

// Count returns the number of violations the Monitor found, including those
// it did not keep.
func (m *Monitor) Count() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}

// Check checks a history against the invariants a client can see
// (docs/invariants.md, marked H) and returns every violation found, together with
// those m found online (m may be nil), sorted by invariant and address.
//
// The history checks, where "acked" means an append with outcome OK at the
// address it returned, "before" is real (virtual) time order, and an
// operation returned before another when its Return is strictly smaller than
// the other's Invoke (equal times count as concurrent):
//
//   - S1 (history side): at most one append is acked at an address, and no
//     read concurrent with that append returns another value there.
//   - S2 agreement: the successful reads of an address (OK or Junk) and the
//     fills that report having junk-filled it all see the same thing.
//   - S3 durability: a read of a invoked after an append was acked at a
//     returns its value with OK, or Trimmed if a trim covering a (a single
//     trim of a, or a prefix trim above a) that did not fail was invoked
//     before the read returned. Unwritten, Junk, another value, or Trimmed
//     with no such trim is a violation. A trim concurrent with the read is
//     accepted because it may have taken effect first.
//   - S4 no phantom reads: a value a read returns was appended by an
//     operation that did not fail and was invoked before the read returned.
//   - S5 no duplicates (a warning, see Violation.Warning): a value is seen at
//     two addresses (acked there or read there) although every append of it
//     was acked. Values whose append had an unknown outcome may legitimately
//     appear twice and are not reported.
//   - S6 fill never clobbers: no read returns Junk and no fill reports Junk
//     at an address where an append was acked, whatever the timing.
//   - S11 tail monotonic: a tail that returned before another tail was
//     invoked is not larger than it, and a tail invoked after an append was
//     acked at a is above a.
//   - Stream reads (see streamReads): each returns exactly its stream's
//     acked entries in its range, in log order, nothing foreign.

// Each rule reports an address once per kind of failure, naming the first
// operation that broke it and how many did. Check runs in O(n log n) time.
func Check(h *History, m *Monitor) []Violation {
	c := newChecker(h)
	if m != nil {
		c.resets = m.Resets()
	}
	c.writeOnce()
	c.agreement()
	c.durability()
	c.phantoms()
	c.duplicates()
	c.fills()
	c.tails()
	c.streamReads()
	out := c.flush()
	if m != nil {
		out = append(out, m.Violations()...)
	}
	sortViolations(out)
	return out
}

// addrOps gathers the operations on one address that the checks need.
type addrOps struct {
	addr  storage.Address
	acked []*Op // appends acked at addr, by return time
	reads []*Op // reads with a definite answer, by ID
	fills []*Op // fills that report junk, by ID
	// trimAt is the earliest Invoke of a single-address trim of addr that
	// did not fail; it is valid when trimmed is set.
	trimAt  time.Duration
	trimmed bool
}

// aggKey identifies one kind of failure at one address.
type aggKey struct {
	inv  string
	addr storage.Address
	what string
}

// agg is the first failure of one kind at one address and how many there
// were.
type agg struct {
	first   string
	n       int
	warning bool
}

type checker struct {
	h       *History
	byAddr  []*addrOps // sorted by address
	prefix  []prefixTrim
	appends map[string][]*Op // append ops by value, by ID
	// live is, per value, the earliest Invoke of an append of it that did
	// not fail.
	live  map[string]time.Duration
	found map[aggKey]*agg
	// resets are the sequencer's bootstraps below addresses handed out
	// before (Monitor.Resets), which tails may go back across (S11).
	resets []Reset
}

// prefixTrim is the highest prefix trim mark invoked up to a time.
type prefixTrim struct {
	invoke time.Duration
	mark   storage.Address // max over this and every earlier prefix trim
}

func newChecker(h *History) *checker {
	c := &checker{
		h:       h,
		appends: make(map[string][]*Op),
		live:    make(map[string]time.Duration),
		found:   make(map[aggKey]*agg),
	}
	var idx []*Op
	for i := range h.Ops {
		o := &h.Ops[i]
		switch o.Kind {
		case OpAppend, OpPut:
			c.appends[o.Value] = append(c.appends[o.Value], o)
			if t, ok := c.live[o.Value]; o.Outcome != Failed && (!ok || o.Invoke < t) {
				c.live[o.Value] = o.Invoke
			}
			if o.Kind == OpAppend && o.Outcome == OK {
				idx = append(idx, o)
			}
		case OpRead:
			if definite(o.Outcome) {
				idx = append(idx, o)
			}
		case OpFill:
			if o.Outcome == Junk {
				idx = append(idx, o)
			}
		case OpTrim:
			if o.Outcome == Failed {
				continue
			}
			if o.Value == "prefix" {
				c.prefix = append(c.prefix, prefixTrim{invoke: o.Invoke, mark: o.Addr})
			} else {
				idx = append(idx, o)
			}
		}
	}
	slices.SortStableFunc(idx, func(a, b *Op) int { return cmp.Compare(a.Addr, b.Addr) })
	for _, o := range idx {
		if len(c.byAddr) == 0 || c.byAddr[len(c.byAddr)-1].addr != o.Addr {
			c.byAddr = append(c.byAddr, &addrOps{addr: o.Addr})
		}
		a := c.byAddr[len(c.byAddr)-1]
		switch o.Kind {
		case OpAppend:
			a.acked = append(a.acked, o)
		case OpRead:
			a.reads = append(a.reads, o)
		case OpFill:
			a.fills = append(a.fills, o)
		case OpTrim:
			if !a.trimmed || o.Invoke < a.trimAt {
				a.trimAt, a.trimmed = o.Invoke, true
			}
		}
	}
	for _, a := range c.byAddr {
		slices.SortStableFunc(a.acked, func(x, y *Op) int { return cmp.Compare(x.Return, y.Return) })
	}
	slices.SortStableFunc(c.prefix, func(x, y prefixTrim) int { return cmp.Compare(x.invoke, y.invoke) })
	for i := 1; i < len(c.prefix); i++ {
		c.prefix[i].mark = max(c.prefix[i].mark, c.prefix[i-1].mark)
	}
	return c
}

// opString formats o for a report.
func opString(o *Op) string { return strings.TrimSpace(o.String()) }

// definite reports whether a read with outcome o gave an answer.
func definite(o Outcome) bool {
	return o == OK || o == Junk || o == Unwritten || o == Trimmed
}

// returnedBefore reports whether a returned before b was invoked.
func returnedBefore(a, b *Op) bool {
	return a.Outcome != Pending && a.Return < b.Invoke
}

// report records a failure of invariant inv at addr; what groups failures of
// one kind so that each kind is reported once per address.
func (c *checker) report(inv string, addr storage.Address, what, detail string) {
	k := aggKey{inv: inv, addr: addr, what: what}
	a := c.found[k]
	if a == nil {
		a = &agg{first: detail, warning: inv == "S5"}
		c.found[k] = a
	}
	a.n++
}

// warn is report for a finding that is no failure (see Violation.Warning).
func (c *checker) warn(inv string, addr storage.Address, what, detail string) {
	c.report(inv, addr, what, detail)
	c.found[aggKey{inv: inv, addr: addr, what: what}].warning = true
}

func (c *checker) flush() []Violation {
	keys := make([]aggKey, 0, len(c.found))
	for k := range c.found {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b aggKey) int {
		return cmp.Or(compareInvariants(a.inv, b.inv), cmp.Compare(a.addr, b.addr), cmp.Compare(a.what, b.what))
	})
	out := make([]Violation, 0, len(keys))
	for _, k := range keys {
		a := c.found[k]
		d := k.what + ": " + a.first
		if a.n > 1 {
			d += fmt.Sprintf(" (and %d more)", a.n-1)
		}
		out = append(out, Violation{Invariant: k.inv, Addr: k.addr, Detail: d, Warning: a.warning})
	}
	return out
}

// writeOnce checks the history side of S1.
func (c *checker) writeOnce() {
	for _, a := range c.byAddr {
		if len(a.acked) == 0 {
			continue
		}
		first := a.acked[0]
		for _, o := range a.acked[1:] {
			c.report("S1", a.addr, "two appends acked at one address", opString(first)+" and "+opString(o))
		}
		for _, r := range a.reads {
			if r.Outcome == OK && r.Value != first.Value && !returnedBefore(first, r) {
				c.report("S1", a.addr, "read concurrent with an acked append returned another value",
					opString(r)+", acked "+opString(first))
			}
		}
	}
}

// agreement checks S2.
func (c *checker) agreement() {
	for _, a := range c.byAddr {
		var first *Op
		for _, o := range mergeByID(a.reads, a.fills) {
			if o.Outcome != OK && o.Outcome != Junk {
				continue
			}
			if first == nil {
				first = o
				continue
			}
			if o.Outcome != first.Outcome || o.Value != first.Value {
				c.report("S2", a.addr, "operations saw different things", opString(first)+", but "+opString(o))
			}
		}
	}
}

// mergeByID merges two slices sorted by ID.
func mergeByID(x, y []*Op) []*Op {
	out := make([]*Op, 0, len(x)+len(y))
	for len(x) > 0 && len(y) > 0 {
		if x[0].ID < y[0].ID {
			out, x = append(out, x[0]), x[1:]
		} else {
			out, y = append(out, y[0]), y[1:]
		}
	}
	return append(append(out, x...), y...)
}

// trimmedBy reports whether a trim covering addr that did not fail was
// invoked by time t.
func (c *checker) trimmedBy(a *addrOps, t time.Duration) bool {
	if a.trimmed && a.trimAt <= t {
		return true
	}
	// The last prefix trim invoked by t carries the highest mark so far.
	i := sort.Search(len(c.prefix), func(j int) bool { return c.prefix[j].invoke > t })
	return i > 0 && c.prefix[i-1].mark > a.addr
}

// durability checks S3.
func (c *checker) durability() {
	for _, a := range c.byAddr {
		if len(a.acked) == 0 {
			continue
		}
		ack := a.acked[0]
		for _, r := range a.reads {
			if !returnedBefore(ack, r) {
				continue
			}
			switch {
			case r.Outcome == OK && r.Value == ack.Value:
			case r.Outcome == Trimmed && c.trimmedBy(a, r.Return):
			case r.Outcome == Trimmed:
				c.report("S3", a.addr, "read of an acked append returned trimmed with no trim",
					opString(r)+" after "+opString(ack))
			case r.Outcome == OK:
				c.report("S3", a.addr, "read of an acked append returned another value",
					opString(r)+" after "+opString(ack))
			default:
				c.report("S3", a.addr, "read of an acked append returned "+r.Outcome.String(),
					opString(r)+" after "+opString(ack))
			}
		}
	}
}

// phantoms checks S4.
func (c *checker) phantoms() {
	for _, a := range c.byAddr {
		for _, r := range a.reads {
			if r.Outcome != OK {
				continue
			}
			if t, ok := c.live[r.Value]; !ok || t > r.Return {
				c.report("S4", a.addr, "read returned a value no live append wrote before it returned",
					opString(r))
			}
		}
	}
}

// duplicates checks S5.
func (c *checker) duplicates() {
	seen := make(map[string][]storage.Address) // value -> addresses, in address order
	add := func(v string, addr storage.Address) {
		s := seen[v]
		if len(s) == 0 || s[len(s)-1] != addr {
			seen[v] = append(s, addr)
		}
	}
	for _, a := range c.byAddr {
		for _, w := range a.acked {
			add(w.Value, a.addr)
		}
		for _, r := range a.reads {
			if r.Outcome == OK {
				add(r.Value, a.addr)
			}
		}
	}
	values := make([]string, 0, len(seen))
	for v, addrs := range seen {
		if len(addrs) > 1 {
			values = append(values, v)
		}
	}
	slices.Sort(values)
	for _, v := range values {
		acked, ambiguous := 0, false
		for _, w := range c.appends[v] {
			switch w.Outcome {
			case OK:
				acked++
			case Unknown, Pending:
				ambiguous = true
			}
		}
		if acked == 0 || ambiguous {
			continue
		}
		addrs := seen[v]
		c.report("S5", addrs[1], "value seen at more than one address",
			fmt.Sprintf("value %q at addresses %v, appended by %d acked append(s)", v, addrs, acked))
	}
}

// CheckStored checks S3 at the replicas, against a Monitor that saw every
// write of the run: every acked append's payload was stored at its address
// by some replica (see Monitor.Holds), since an append is acknowledged only
// once every replica of its chain took its entry. An ack for a write that
// no replica took is a lost append, even where a trim hides it from
// readers, or a reformat wiped what was stored.
func CheckStored(h *History, m *Monitor) []Violation {
	c := newChecker(h)
	c.stored(m)
	return c.flush()
}

func (c *checker) stored(m *Monitor) {
	for _, a := range c.byAddr {
		// NB: trimmed or not: a trim may take an entry from every
		// replica, never from the record of what they stored.
		for _, w := range a.acked {
			if !m.Holds(a.addr, []byte(payload(w.Value))) {
				c.report("S3", a.addr, "acked append that no replica stored", opString(w))
			}
		}
	}
}

// streamReads checks what the stream reads returned from their range
// [Addr, To): entries in log order, none twice, none outside the range (S13:
// a sequential reader never goes back or skips); each written by an append
// of the stream that did not fail and was invoked before the read returned
// (S4: nothing foreign, nothing aborted); the value acked at its address, if
// any (S2); and every append of the stream acked in the range, unless a trim
// covering it was invoked before the read returned (S13, no skip). An
// append whose outcome is unknown may or may not appear.
func (c *checker) streamReads() {
	for i := range c.h.Ops {
		o := &c.h.Ops[i]
		if o.Kind != OpStreamSync || o.Outcome != OK {
			continue
		}
		in := func(streams []corfu.StreamID) bool {
			return len(o.Streams) == 0 || slices.Contains(streams, o.Streams[0])
		}
		got := make(map[storage.Address]string, len(o.Entries))
		for j, e := range o.Entries {
			switch {
			case e.Addr < o.Addr || e.Addr >= o.To:
				c.report("S13", e.Addr, "stream read returned an entry outside its range", opString(o))
			case j > 0 && e.Addr <= o.Entries[j-1].Addr:
				c.report("S13", e.Addr, "stream read went back or returned an entry twice", opString(o))
			}
			got[e.Addr] = e.Value
			live := false
			for _, w := range c.appends[e.Value] {
				live = live || w.Outcome != Failed && w.Invoke <= o.Return && in(w.Streams)
			}
			if !live {
				c.report("S4", e.Addr, "stream read returned an entry no live append to the stream wrote",
					fmt.Sprintf("value %q in %s", e.Value, opString(o)))
			}
			if a := c.at(e.Addr); a != nil && len(a.acked) > 0 && a.acked[0].Value != e.Value {
				c.report("S2", e.Addr, "stream read returned another value than the append acked there",
					fmt.Sprintf("value %q in %s, acked %s", e.Value, opString(o), opString(a.acked[0])))
			}
		}
		lo, _ := slices.BinarySearchFunc(c.byAddr, o.Addr, func(a *addrOps, t storage.Address) int { return cmp.Compare(a.addr, t) })
		for _, a := range c.byAddr[lo:] {
			if a.addr >= o.To {
				break
			}
			for _, w := range a.acked {
				if v, ok := got[a.addr]; (!ok || v != w.Value) && in(w.Streams) && !c.trimmedBy(a, o.Return) {
					if c.reissued(o, w) {
						// NB: a consequence of tail resets, which the
						// protocol allows: reported, but no failure.
						c.warn("S13", a.addr, "stream read's range was handed out again after a tail reset, and an acked entry of its stream landed below its end",
							opString(o)+" lacks "+opString(w))
						continue
					}
					c.report("S13", a.addr, "stream read skipped an acked entry of its stream",
						opString(o)+" lacks "+opString(w))
				}
			}
		}
	}
}

// reissued reports whether w, an append acked in the range of the stream
// read o, may have taken its address after a Reset that came after o was
// invoked: a reset hands out again addresses the old sequencer handed out,
// so o may have fixed its range on the old sequencer's tail, when w's
// address was another writer's that nobody wrote (S11 explains resets).
func (c *checker) reissued(o, w *Op) bool {
	for _, r := range c.resets {
		if r.At > o.Invoke && r.At < w.Return && r.Tail <= w.Addr {
			return true
		}
	}
	return false
}

// at returns the operations on addr, or nil.
func (c *checker) at(addr storage.Address) *addrOps {
	i, ok := slices.BinarySearchFunc(c.byAddr, addr, func(a *addrOps, t storage.Address) int { return cmp.Compare(a.addr, t) })
	if !ok {
		return nil
	}
	return c.byAddr[i]
}

// fills checks S6.
func (c *checker) fills() {
	for _, a := range c.byAddr {
		if len(a.acked) == 0 {
			continue
		}
		for _, o := range mergeByID(a.reads, a.fills) {
			if o.Outcome == Junk {
				c.report("S6", a.addr, o.Kind.String()+" found junk where an append was acked",
					opString(o)+", acked "+opString(a.acked[0]))
			}
		}
	}
}

// tails checks S11 with one sweep over the tails in invocation order, keeping
// the largest tail and the largest acked address among the operations
// returned so far; and the half of S13 about reads that answered
// unwritten.
//
// A tail may go back across a Reset (see Monitor.Resets): a tail q below
// an earlier tail t1 is excused by a reset that the sequencer took after
// t1 was invoked and before q returned, if q is not below the reset's
// tail; likewise a read that answered unwritten at an address below t1.
// Nothing excuses a tail at or below an acked append, or an unwritten
// read there.
func (c *checker) tails() {
	var queries, tails, appends []*Op
	for i := range c.h.Ops {
		o := &c.h.Ops[i]
		switch {
		case o.Kind == OpTail && o.Outcome == OK:
			queries = append(queries, o)
			tails = append(tails, o)
		case o.Kind == OpRead && o.Outcome == Unwritten:
			queries = append(queries, o) // S13: nothing below a known tail?
		case o.Kind == OpAppend && o.Outcome == OK:
			appends = append(appends, o)
		}
	}
	slices.SortStableFunc(queries, func(a, b *Op) int { return cmp.Compare(a.Invoke, b.Invoke) })
	byReturn := func(a, b *Op) int { return cmp.Compare(a.Return, b.Return) }
	slices.SortStableFunc(tails, byReturn)
	slices.SortStableFunc(appends, byReturn)
	var maxTail, maxAppend *Op
	i, j := 0, 0
	for _, q := range queries {
		for ; i < len(tails) && tails[i].Return < q.Invoke; i++ {
			if maxTail == nil || tails[i].Addr > maxTail.Addr {
				maxTail = tails[i]
			}
		}
		for ; j < len(appends) && appends[j].Return < q.Invoke; j++ {
			if maxAppend == nil || appends[j].Addr > maxAppend.Addr {
				maxAppend = appends[j]
			}
		}
		high := maxTail
		if high != nil && q.Addr < high.Addr {
			if cut, ok := c.resetBefore(q); ok {
				// NB: only the tails invoked after the reset count.
				high = nil
				for _, t := range tails[:i] {
					if t.Invoke > cut && (high == nil || t.Addr > high.Addr) {
						high = t
					}
				}
			}
		}
		if q.Kind == OpRead {
			// S13: a read of an address below a tail seen before it began
			// waits for the writer, then fills: it never answers unwritten.
			if high != nil && q.Addr < high.Addr {
				c.report("S13", q.Addr, "unwritten below the tail", opString(q)+" after "+opString(high))
			} else if maxAppend != nil && q.Addr <= maxAppend.Addr {
				c.report("S13", q.Addr, "unwritten below an acked append", opString(q)+" after "+opString(maxAppend))
			}
			continue
		}
		if high != nil && q.Addr < high.Addr {
			c.report("S11", q.Addr, "tail went back", opString(q)+" after "+opString(high))
		}
		if maxAppend != nil && q.Addr <= maxAppend.Addr {
			c.report("S11", q.Addr, "tail not past an acked append", opString(q)+" after "+opString(maxAppend))
		}
	}
}

// resetBefore returns the time of the latest Reset that q may have seen
// (taken before q returned) and that does not lie above q's address; a
// tail invoked before it may be above q.
func (c *checker) resetBefore(q *Op) (time.Duration, bool) {
	var at time.Duration
	ok := false
	for _, r := range c.resets {
		if r.At < q.Return && r.Tail <= q.Addr && (!ok || r.At > at) {
			at, ok = r.At, true
		}
	}
	return at, ok
}
