package disk

import (
	"github.com/google/btree"

	"github.com/corfulog/corfu/storage"
)

// state is what the index knows of an address.
type state uint8

const (
	stateData    state = iota + 1 // data at (seg, off)
	stateJunk                     // filled
	stateTrimmed                  // trimmed singly, above the prefix mark
	stateCorrupt                  // its record failed its checksum at recovery
)

// storageState maps st to the State that Inspect reports. A corrupt address
// reports StateData (it held something) with no bytes.
func (st state) storageState() storage.State {
	switch st {
	case stateData, stateCorrupt:
		return storage.StateData
	case stateJunk:
		return storage.StateJunk
	case stateTrimmed:
		return storage.StateTrimmed
	}
	return storage.StateUnwritten
}

// entry is one indexed address: 24 bytes. For stateData, seg and off locate
// the record and length is its payload's.
type entry struct {
	addr   storage.Address
	seg    uint32
	off    uint32
	length uint32 // low 24 bits: payload length; top 8 bits: state
}

const lengthBits = 24 // MaxEntryBytes fits

func newEntry(addr storage.Address, st state, seg uint32, off uint32, n int) entry {
	return entry{addr: addr, seg: seg, off: off, length: uint32(st)<<lengthBits | uint32(n)}
}

func (e entry) state() state { return state(e.length >> lengthBits) }
func (e entry) n() int       { return int(e.length & (1<<lengthBits - 1)) }

func entryLess(a, b entry) bool { return a.addr < b.addr }

// btreeDegree is the index's branching factor. A high one keeps the
// per-entry overhead of node headers and child pointers small.
const btreeDegree = 64

func newIndex() *btree.BTreeG[entry] {
	return btree.NewG(btreeDegree, entryLess)
}
