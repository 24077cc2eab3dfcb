package storage

import (
	"context"
	"errors"
	"fmt"
	"math"
)

// Address is a position in a log address space: global in the client's view,
// local on one storage unit.
type Address uint64

// MaxAddress is the largest valid address. Addresses at or above it are
// rejected with ErrInvalidAddress; the top half of the 64-bit space is kept
// free so that address arithmetic cannot overflow.
const MaxAddress Address = math.MaxInt64

// Epoch numbers projections. Every request carries the epoch of the sender's
// projection; a unit sealed at a newer epoch refuses it.
type Epoch uint64

// MaxEntryBytes is the largest payload a unit stores at one address.
const MaxEntryBytes = 1 << 20

var (
	// ErrWritten reports that an address already holds data or junk.
	ErrWritten = errors.New("storage: address already written")
	// ErrUnwritten reports that nothing was written at an address.
	ErrUnwritten = errors.New("storage: address not written")
	// ErrTrimmed reports that an address was trimmed; its data is gone for good.
	ErrTrimmed = errors.New("storage: address trimmed")
	// ErrJunk reports that an address was filled with junk by a hole filler.
	// It is a definite outcome, not a failure: the address holds no entry.
	ErrJunk = errors.New("storage: address filled with junk")
	// ErrSealed reports that the request's epoch is older than the unit's.
	// It is returned wrapped in a *SealedError.
	ErrSealed = errors.New("storage: sealed at a newer epoch")
	// ErrFutureEpoch reports a request stamped with an epoch newer than the
	// unit's. A unit never adopts such an epoch silently: the sender must seal
	// the unit at that epoch first (which it may do only with a committed
	// projection of that epoch in hand).
	ErrFutureEpoch = errors.New("storage: epoch newer than the unit's")
	// ErrTooLarge reports a payload above MaxEntryBytes.
	ErrTooLarge = errors.New("storage: entry too large")
	// ErrInvalidAddress reports an address at or above MaxAddress.
	ErrInvalidAddress = errors.New("storage: invalid address")
	// ErrNilData reports a write with nil data. An empty, non-nil slice is a
	// valid entry.
	ErrNilData = errors.New("storage: nil data")
	// ErrBlank reports a unit that came back with an empty disk (fault
	// catalog P4): it lost whatever it held, so it answers nothing, not even
	// a seal, until a reconfiguration that took it out of every chain whose
	// data it held lets it join again (see Memory.Join).
	ErrBlank = errors.New("storage: unit lost its data and must rejoin")
	// ErrNotBlank reports a join of a unit that is not blank, or that
	// already joined at another epoch.
	ErrNotBlank = errors.New("storage: unit is not blank")
	// ErrCorrupt reports an address whose stored record fails its checksum
	// (a durable unit's disk damaged it): the unit held something there but
	// cannot say what, so it answers neither the bad bytes nor
	// ErrUnwritten. A replica elsewhere may still hold the entry.
	ErrCorrupt = errors.New("storage: stored record is corrupt")
)

// SealedError reports that a request's epoch is older than the epoch the
// receiver was sealed at. It unwraps to ErrSealed; Epoch is the receiver's
// current epoch.
type SealedError struct{ Epoch Epoch }

// Error implements error.
func (e *SealedError) Error() string {
	return fmt.Sprintf("storage: sealed at epoch %d", e.Epoch)
}

// Unwrap returns ErrSealed.
func (e *SealedError) Unwrap() error { return ErrSealed }

// Unit is a CORFU storage unit: a write-once address space guarded by an epoch.
//
// Every method checks the request's epoch first: an epoch older than the
// unit's gives a *SealedError carrying the unit's epoch, and one newer gives
// ErrFutureEpoch. Addresses at or above MaxAddress give ErrInvalidAddress.
//
// Implementations are safe for concurrent use. ctx is for remote stubs; a
// local unit answers at once and may ignore it.
type Unit interface {
	// Write stores data at addr. It returns ErrWritten if addr holds data or
	// junk, ErrTrimmed if addr was trimmed, ErrTooLarge if data exceeds
	// MaxEntryBytes and ErrNilData if data is nil.
	Write(ctx context.Context, epoch Epoch, addr Address, data []byte) error
	// Read returns the data at addr. It returns ErrUnwritten if nothing is
	// there yet, ErrJunk if addr was filled and ErrTrimmed if it was trimmed.
	// The returned slice is the caller's: the unit keeps no reference to it.
	Read(ctx context.Context, epoch Epoch, addr Address) ([]byte, error)
	// Fill marks an unwritten addr as junk. It returns ErrWritten if addr
	// holds data and ErrTrimmed if it was trimmed; filling junk again
	// succeeds, so a retried fill is harmless.
	Fill(ctx context.Context, epoch Epoch, addr Address) error
	// Trim lets the unit reclaim addr. Later reads, writes and fills of addr
	// return ErrTrimmed; the address is never reused. Trimming a trimmed
	// address succeeds.
	Trim(ctx context.Context, epoch Epoch, addr Address) error
	// PrefixTrim trims every address below addr. The trim mark only moves
	// up: a PrefixTrim below the current mark succeeds and changes nothing.
	PrefixTrim(ctx context.Context, epoch Epoch, addr Address) error
	// Seal moves the unit to epoch: from then on it refuses every request
	// with a smaller epoch. It returns the unit's local tail, one past the
	// highest address written, filled or trimmed (0 if none): every
	// address below it may be taken, none at or above it is. Sealing at the current
	// epoch again succeeds and returns the tail, so a retried seal is
	// harmless; sealing at an older epoch gives a *SealedError.
	Seal(ctx context.Context, epoch Epoch) (tail Address, err error)
}

// Inspector is the read-only view of a unit's contents that tests, checkers
// and tools use (the simulator's checks among them): it bypasses epochs and
// never changes the unit. Memory implements it, and so must every Unit the
// simulator runs, so that no check is skipped for want of a view.
//
// Implementations are safe to call concurrently with the Unit methods.
type Inspector interface {
	// Epoch returns the epoch the unit was last sealed at (0 for a new
	// unit).
	Epoch() Epoch
	// Blank reports whether the unit came back with an empty disk and has
	// not joined yet (see NewBlank).
	Blank() bool
	// TrimMark returns the prefix trim mark: every address below it is
	// trimmed.
	TrimMark() Address
	// Inspect reports the state of addr and, for StateData, a copy of its
	// data. Addresses below the trim mark report StateTrimmed.
	Inspect(addr Address) (State, []byte)
	// Ascend calls fn for every stored address at or above the trim mark,
	// in increasing order, until fn returns false; data is a copy for
	// StateData and nil otherwise. fn must not call methods of the unit.
	Ascend(fn func(addr Address, s State, data []byte) bool)
}

var _ Inspector = (*Memory)(nil)

// Repairer is a Unit that can replace a record its disk damaged: the
// optional repair path of a durable unit (disk.Unit is one; Memory, whose
// records cannot be damaged, is not). A reader that met ErrCorrupt at a
// replica and found the entry, or junk, at another replica of the chain
// hands it back with Repair.
//
// Repair checks epoch like every other method. Then it replaces what addr
// holds with data (or with junk, if junk is set; data is then ignored)
// only if the record stored at addr is corrupt, that is, fails its
// checksum: for a good record it returns ErrWritten, so write-once holds
// (a repair never overwrites an entry that reads back). It returns
// ErrUnwritten if nothing is stored at addr, ErrTrimmed if addr was
// trimmed, ErrNilData for a data repair with nil data and ErrTooLarge if
// data exceeds MaxEntryBytes. The repaired record is durable, as a write
// is, before Repair returns nil; reads see it from then on.
type Repairer interface {
	Repair(ctx context.Context, epoch Epoch, addr Address, data []byte, junk bool) error
}

// WriteItem is one write of a batch: Data at the unit's address Addr.
type WriteItem struct {
	Addr Address
	Data []byte
}

// BatchWriter is a Unit that stores a batch of writes together: a durable
// unit puts them in one group commit and waits once for it, where a Write
// per item would wait for each. disk.Unit is one.
//
// WriteBatch returns one error per item, in order: what Write would have
// returned for it, written in that order. Items are independent: one that
// fails (ErrWritten, say) does not stop the others. An epoch the unit
// refuses gives every item the same error.
type BatchWriter interface {
	WriteBatch(ctx context.Context, epoch Epoch, items []WriteItem) []error
}

// WriteBatch writes items to u: with one call if u is a BatchWriter, and
// otherwise with one Write per item, in order. It returns one error per
// item, as BatchWriter.WriteBatch does.
func WriteBatch(ctx context.Context, u Unit, epoch Epoch, items []WriteItem) []error {
	if b, ok := u.(BatchWriter); ok {
		return b.WriteBatch(ctx, epoch, items)
	}
	errs := make([]error, len(items))
	for i, it := range items {
		errs[i] = u.Write(ctx, epoch, it.Addr, it.Data)
	}
	return errs
}
