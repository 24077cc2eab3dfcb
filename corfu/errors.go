package corfu

import (
	"errors"
	"fmt"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// The storage and sequencer errors a client call may return, re-exported so
// that callers need import only this package. Check them with errors.Is.
var (
	// ErrWritten: the address holds data (Fill) or the write lost a race.
	ErrWritten = storage.ErrWritten
	// ErrUnwritten: nothing has been written at the address, which lies at
	// or beyond the tail.
	ErrUnwritten = storage.ErrUnwritten
	// ErrTrimmed: the address was trimmed.
	ErrTrimmed = storage.ErrTrimmed
	// ErrJunk: the address was filled by a hole filler and holds no entry.
	ErrJunk = storage.ErrJunk
	// ErrSealed: a server is sealed at a newer epoch than the client's
	// projection. The client refreshes its projection and retries on its
	// own; this surfaces only when retries run out.
	ErrSealed = storage.ErrSealed
	// ErrTooLarge: the entry is larger than Config.MaxEntryBytes.
	ErrTooLarge = storage.ErrTooLarge
	// ErrNilData: Append was given nil data. An empty slice is a valid entry.
	ErrNilData = storage.ErrNilData
	// ErrInvalidAddress: the address is at or above storage.MaxAddress.
	ErrInvalidAddress = storage.ErrInvalidAddress
	// ErrBlank: a unit came back with an empty disk and is the only
	// replica of the address's chain: the data there is lost. (A blank unit
	// with a surviving peer is taken out and back in by a reconfiguration,
	// and the operation carries on.)
	ErrBlank = storage.ErrBlank
	// ErrCorrupt: every replica of the address's chain holds a record there
	// that fails its checksum (a disk fault). A read that meets one
	// corrupt replica reads the others.
	ErrCorrupt = storage.ErrCorrupt
	// ErrNotReady: the sequencer is not bootstrapped in the current epoch.
	ErrNotReady = sequencer.ErrNotReady
	// ErrNoSegment: no segment of the projection covers the address.
	ErrNoSegment = projection.ErrNoSegment
)

var (
	// ErrUnknownOutcome reports an Append that may or may not have taken
	// effect: part of its chain was written when it had to give up. It is
	// returned as an *UnknownOutcomeError, distinct from ctx's error.
	ErrUnknownOutcome = errors.New("corfu: append outcome unknown")
	// ErrRetriesExhausted reports an operation that kept failing for
	// Config.MaxRetries attempts without a definite answer.
	ErrRetriesExhausted = errors.New("corfu: retries exhausted")
	// ErrBeyondTail reports a Fill, Trim or PrefixTrim above the tail.
	ErrBeyondTail = errors.New("corfu: address beyond the tail")
	// ErrInvalidConfig reports a Config that cannot work; the message says why.
	ErrInvalidConfig = errors.New("corfu: invalid config")
	// ErrInvalidStreams reports a stream named twice in one Append, or too
	// many streams.
	ErrInvalidStreams = errors.New("corfu: invalid streams")
	// ErrCorruptEntry reports stored bytes that do not decode as an entry.
	ErrCorruptEntry = errors.New("corfu: corrupt entry")
	// ErrDiverged reports replicas of one chain holding different things at
	// one address: a broken invariant that the client refuses to paper over.
	ErrDiverged = errors.New("corfu: replicas diverged")
	// ErrUnavailable reports a server the transport could not send to
	// (transport.ErrNotSent), twice in a row, with no newer projection
	// that replaces it: an append fails fast with it, having stored
	// nothing, while a failure detector (see Detector) replaces the node;
	// once the new projection is installed, appends succeed again.
	ErrUnavailable = errors.New("corfu: server unavailable")
)

// UnknownOutcomeError is returned by Append when the entry may have been
// written: some replica of the chain at Addr took it, and the append gave up
// (its ctx ended or retries ran out) before the chain was complete. A later
// reader may complete the chain, so the entry may appear at Addr; it never
// appears at an address the caller was not told about in this error or in a
// successful return. It matches ErrUnknownOutcome with errors.Is and does not
// unwrap to Cause, so that errors.Is(err, context.DeadlineExceeded) is false.
type UnknownOutcomeError struct {
	Addr  storage.Address // the address the entry may occupy
	Cause error           // why the append gave up
}

// Error implements error.
func (e *UnknownOutcomeError) Error() string {
	return fmt.Sprintf("corfu: append outcome unknown at address %d: %v", e.Addr, e.Cause)
}

// Is reports whether target is ErrUnknownOutcome.
func (e *UnknownOutcomeError) Is(target error) bool { return target == ErrUnknownOutcome }
