package storage

import (
	"context"
	"fmt"
	"sync"

	"github.com/google/btree"
)

// State is what a unit holds at one address, as reported by the inspection
// methods of Memory.
type State uint8

const (
	// StateUnwritten means the address holds nothing yet.
	StateUnwritten State = iota
	// StateData means the address holds an entry written by Write.
	StateData
	// StateJunk means a hole filler marked the address with Fill.
	StateJunk
	// StateTrimmed means the address was trimmed, singly or by a prefix trim.
	StateTrimmed
)

// String returns the lower-case name of s.
func (s State) String() string {
	switch s {
	case StateUnwritten:
		return "unwritten"
	case StateData:
		return "data"
	case StateJunk:
		return "junk"
	case StateTrimmed:
		return "trimmed"
	default:
		return fmt.Sprintf("State(%d)", uint8(s))
	}
}

// btreeDegree is the branching factor of the address index.
const btreeDegree = 32

// slot is one stored address: data, junk, or a trimmed tombstone above the
// prefix trim mark.
type slot struct {
	addr  Address
	state State
	data  []byte // nil unless state is StateData; empty but non-nil for an empty entry
}

func slotLess(a, b slot) bool { return a.addr < b.addr }

// Memory is an in-memory Unit indexed by a B-tree. It is a plain synchronous
// state machine: it starts no goroutines, reads no clock and draws no
// randomness, so the simulator can drive it directly.
//
// A new Memory is at epoch 0, empty, with its trim mark at 0. It keeps only
// addresses at or above the prefix trim mark; trimming drops the stored bytes.
// Nothing survives the process: a crash loses everything, so Memory stands in
// for a unit whose every write is synced, or for one that is wiped on restart.
//
// Memory is safe for concurrent use by multiple goroutines. Create it with
// NewMemory; the zero value is not usable.
type Memory struct {
	mu          sync.RWMutex
	epoch       Epoch
	trimMark    Address // every address below it is trimmed
	tail        Address // one past the highest address written or filled
	storedBytes int     // sum of the payload lengths held in index
	index       *btree.BTreeG[slot]

	// blank is set for a unit that came back with an empty disk, until it
	// joins; blankSeal is the newest epoch a seal asked of it meanwhile
	// (sealedBlank says one did), the only epoch it may join at.
	blank       bool
	sealedBlank bool
	blankSeal   Epoch
}

var _ Unit = (*Memory)(nil)

// NewMemory returns an empty Memory at epoch 0.
func NewMemory() *Memory {
	return &Memory{index: btree.NewG(btreeDegree, slotLess)}
}

// NewBlank returns a unit that came back with an empty disk (fault catalog
// P4). It must not rejoin as if it held data: until Join it answers every
// Unit method, Seal included, with ErrBlank, so it never reports an address
// unwritten or takes a fill where it may once have held an entry.
func NewBlank() *Memory {
	m := NewMemory()
	m.blank = true
	return m
}

// Join lets a blank unit serve again, empty, at epoch. A reconfiguration
// calls it once it has committed, at epoch, a projection that places the
// unit only where it holds nothing: in the open segment, above the log's
// tail, and in no chain whose data it held. The unit must have refused a
// seal at epoch since it came back (which is how the reconfiguration
// learned it was blank): a join at an older epoch than the newest such seal
// gets a *SealedError, one at an epoch no seal asked for gets
// ErrFutureEpoch, so that a join delayed from before an earlier reformat
// cannot revive the unit. Joining again at the epoch it joined at succeeds;
// a unit that is not blank otherwise gets ErrNotBlank. ctx is ignored.
func (m *Memory) Join(ctx context.Context, epoch Epoch) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	switch {
	case !m.blank && m.sealedBlank && epoch == m.blankSeal && epoch <= m.epoch:
		return nil // a retried join
	case !m.blank:
		return ErrNotBlank
	case !m.sealedBlank || epoch > m.blankSeal:
		return ErrFutureEpoch
	case epoch < m.blankSeal:
		return &SealedError{Epoch: m.blankSeal}
	}
	m.blank = false
	m.epoch = epoch
	return nil
}

// checkEpoch returns the error for a request stamped with epoch, or nil if
// epoch is the unit's. The caller holds mu.
func (m *Memory) checkEpoch(epoch Epoch) error {
	switch {
	case m.blank:
		return ErrBlank
	case epoch < m.epoch:
		return &SealedError{Epoch: m.epoch}
	case epoch > m.epoch:
		return ErrFutureEpoch
	}
	return nil
}

// checkRequest validates the epoch, then the address. The caller holds mu.
func (m *Memory) checkRequest(epoch Epoch, addr Address) error {
	if err := m.checkEpoch(epoch); err != nil {
		return err
	}
	if addr >= MaxAddress {
		return ErrInvalidAddress
	}
	return nil
}

// lookup returns the state of addr and the stored slice (not a copy). The
// caller holds mu.
func (m *Memory) lookup(addr Address) (State, []byte) {
	if addr < m.trimMark {
		return StateTrimmed, nil
	}
	s, ok := m.index.Get(slot{addr: addr})
	if !ok {
		return StateUnwritten, nil
	}
	return s.state, s.data
}

// errFor maps a non-empty state to the error a Write or Fill gets.
func errFor(s State) error {
	if s == StateTrimmed {
		return ErrTrimmed
	}
	return ErrWritten
}

// Write stores a copy of data at addr; the caller may reuse data afterwards.
// It returns a *SealedError if epoch is older than the unit's, ErrFutureEpoch
// if it is newer, ErrInvalidAddress if addr is at or above MaxAddress,
// ErrNilData if data is nil, ErrTooLarge if data exceeds MaxEntryBytes,
// ErrTrimmed if addr was trimmed and ErrWritten if addr holds data or junk.
// ctx is ignored.
func (m *Memory) Write(ctx context.Context, epoch Epoch, addr Address, data []byte) error {
	// Copy outside the lock: most writes succeed.
	var buf []byte
	if data != nil && len(data) <= MaxEntryBytes {
		buf = make([]byte, len(data))
		copy(buf, data)
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkRequest(epoch, addr); err != nil {
		return err
	}
	if data == nil {
		return ErrNilData
	}
	if len(data) > MaxEntryBytes {
		return ErrTooLarge
	}
	if s, _ := m.lookup(addr); s != StateUnwritten {
		return errFor(s)
	}
	m.index.ReplaceOrInsert(slot{addr: addr, state: StateData, data: buf})
	m.storedBytes += len(buf)
	m.tail = max(m.tail, addr+1)
	return nil
}

// Read returns a copy of the data at addr; the caller owns it. An empty entry
// reads back as an empty, non-nil slice. Read returns a *SealedError if epoch
// is older than the unit's, ErrFutureEpoch if it is newer, ErrInvalidAddress
// if addr is at or above MaxAddress, ErrTrimmed if addr was trimmed, ErrJunk
// if it was filled and ErrUnwritten if nothing is there yet. ctx is ignored.
func (m *Memory) Read(ctx context.Context, epoch Epoch, addr Address) ([]byte, error) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if err := m.checkRequest(epoch, addr); err != nil {
		return nil, err
	}
	switch s, data := m.lookup(addr); s {
	case StateData:
		out := make([]byte, len(data))
		copy(out, data)
		return out, nil
	case StateJunk:
		return nil, ErrJunk
	case StateTrimmed:
		return nil, ErrTrimmed
	default:
		return nil, ErrUnwritten
	}
}

// Fill marks an unwritten addr as junk (CORFU paper, hole filling: a reader
// that finds a hole fills it so that no late writer can complete there).
// Filling junk again succeeds. Fill returns a *SealedError if epoch is older
// than the unit's, ErrFutureEpoch if it is newer, ErrInvalidAddress if addr is
// at or above MaxAddress, ErrTrimmed if addr was trimmed and ErrWritten if
// addr holds data. ctx is ignored.
func (m *Memory) Fill(ctx context.Context, epoch Epoch, addr Address) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkRequest(epoch, addr); err != nil {
		return err
	}
	switch s, _ := m.lookup(addr); s {
	case StateJunk:
		return nil
	case StateUnwritten:
		m.index.ReplaceOrInsert(slot{addr: addr, state: StateJunk})
		m.tail = max(m.tail, addr+1)
		return nil
	default:
		return errFor(s)
	}
}

// Trim drops whatever addr holds and leaves a tombstone, so that later reads,
// writes and fills of addr return ErrTrimmed. Trimming a trimmed or unwritten
// address succeeds. A trim consumes addr: the tail that Seal reports is
// above it afterwards, so that a sequencer rebuilt from the units' tails
// never hands out a trimmed address (which no write could ever take). It returns
// a *SealedError if epoch is older than the unit's, ErrFutureEpoch if it is
// newer and ErrInvalidAddress if addr is at or above MaxAddress. ctx is
// ignored.
func (m *Memory) Trim(ctx context.Context, epoch Epoch, addr Address) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkRequest(epoch, addr); err != nil {
		return err
	}
	if addr < m.trimMark {
		return nil
	}
	old, _ := m.index.ReplaceOrInsert(slot{addr: addr, state: StateTrimmed})
	m.storedBytes -= len(old.data)
	m.tail = max(m.tail, addr+1)
	return nil
}

// PrefixTrim trims every address below addr and frees what they held. The
// trim mark only moves up: a PrefixTrim at or below the current mark succeeds
// and changes nothing. Like Trim, it consumes what it trims: the tail that
// Seal reports is at least addr afterwards.
// It returns a *SealedError if epoch is older than the unit's, ErrFutureEpoch
// if it is newer and ErrInvalidAddress if addr is at or above MaxAddress. ctx
// is ignored.
func (m *Memory) PrefixTrim(ctx context.Context, epoch Epoch, addr Address) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.checkRequest(epoch, addr); err != nil {
		return err
	}
	if addr <= m.trimMark {
		return nil
	}
	for {
		s, ok := m.index.Min()
		if !ok || s.addr >= addr {
			break
		}
		m.index.DeleteMin()
		m.storedBytes -= len(s.data)
	}
	m.trimMark = addr
	m.tail = max(m.tail, addr)
	return nil
}

// Seal moves the unit to epoch and returns its local tail: one past the
// highest address ever written, filled or trimmed, 0 if none. From then on every
// request with a smaller epoch gets a *SealedError. Sealing at the current
// epoch again changes nothing and returns the tail. Seal returns a
// *SealedError carrying the unit's epoch if epoch is older. A blank unit
// (NewBlank) answers ErrBlank and only remembers epoch, the epoch it may
// join at. ctx is ignored.
func (m *Memory) Seal(ctx context.Context, epoch Epoch) (tail Address, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.blank {
		if !m.sealedBlank || epoch > m.blankSeal {
			m.sealedBlank, m.blankSeal = true, epoch
		}
		return 0, ErrBlank
	}
	if epoch < m.epoch {
		return 0, &SealedError{Epoch: m.epoch}
	}
	m.epoch = epoch
	return m.tail, nil
}

// The methods below are for tests, checkers and tools. They bypass the epoch,
// never change the unit, and are safe to call concurrently with the Unit
// methods.

// Inspect reports the state of addr and, for StateData, a copy of its data.
// It ignores epochs. Addresses below the trim mark report StateTrimmed;
// addresses at or above MaxAddress report StateUnwritten. Inspect is meant for
// tests and tools.
func (m *Memory) Inspect(addr Address) (State, []byte) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	s, data := m.lookup(addr)
	if s != StateData {
		return s, nil
	}
	out := make([]byte, len(data))
	copy(out, data)
	return s, out
}

// Epoch returns the epoch the unit was last sealed at (0 for a new unit). It
// is meant for tests and tools.
func (m *Memory) Epoch() Epoch {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.epoch
}

// Blank reports whether the unit came back with an empty disk and has not
// joined yet (see NewBlank). It is meant for tests and tools.
func (m *Memory) Blank() bool {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.blank
}

// TrimMark returns the prefix trim mark: every address below it is trimmed.
// It is meant for tests and tools.
func (m *Memory) TrimMark() Address {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.trimMark
}

// Tail returns what Seal would return, without sealing: one past the highest
// address ever written or filled, 0 if none. It is meant for tests and tools.
func (m *Memory) Tail() Address {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.tail
}

// StoredBytes returns the total length of the entries the unit holds. Trimmed
// entries do not count: their bytes were freed. It is meant for tests, tools
// and metrics.
func (m *Memory) StoredBytes() int {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.storedBytes
}

// Ascend calls fn for every stored address in increasing order until fn
// returns false. Stored addresses are those at or above the trim mark that
// hold data, junk, or a single-address trim; unwritten addresses and those
// below the trim mark are skipped. data is a copy for StateData and nil
// otherwise.
//
// Ascend holds a read lock while it runs: fn must not call methods of m.
// Ascend is meant for tests and tools.
func (m *Memory) Ascend(fn func(addr Address, s State, data []byte) bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	m.index.Ascend(func(s slot) bool {
		var data []byte
		if s.state == StateData {
			data = make([]byte, len(s.data))
			copy(data, s.data)
		}
		return fn(s.addr, s.state, data)
	})
}
