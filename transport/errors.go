package transport

import (
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

var (
	// ErrMalformed reports a message that does not decode: truncated,
	// oversized, of an unknown version, kind or operation, or with bytes left
	// over. The wrapped message says what is wrong.
	ErrMalformed = errors.New("transport: malformed message")
	// ErrWrongRole reports a request for a role (storage unit, sequencer,
	// layout server) that the receiving node does not serve.
	ErrWrongRole = errors.New("transport: operation not served by this node")
	// ErrUnreachable reports that a node is not known to the network or
	// cannot be reached. The request may or may not have been delivered
	// when a transport that loses messages returns it; an in-process network
	// returns it only when it delivered nothing.
	ErrUnreachable = errors.New("transport: node unreachable")
	// ErrNotSent reports a request that left nothing at the node: the
	// transport knows it was never delivered (no such node, or a
	// connection that could not be made). It matches ErrUnreachable too
	// (errors.Is). Only the caller's side returns it; it has no wire code.
	ErrNotSent = fmt.Errorf("%w: request not sent", ErrUnreachable)
	// ErrRemote reports an error from a remote node that has no wire code
	// of its own. The error returned wraps ErrRemote and keeps the remote
	// error's message.
	ErrRemote = errors.New("transport: remote error")
	// ErrNotDurable reports a request whose answer depended on state the
	// server could not make durable (its Persister failed). The request may
	// have changed the server's memory; the answer is withheld.
	ErrNotDurable = errors.New("transport: state not made durable")
)

// MaxErrorBytes bounds the message text carried with an error. Encoders
// truncate longer messages; decoders reject them.
const MaxErrorBytes = 4 << 10

// maxErrorCodes bounds how many codes one error may carry on the wire.
const maxErrorCodes = 32

// codeSealed is the wire code of storage.ErrSealed; it alone is followed by
// the epoch of a *storage.SealedError, when there is one.
const codeSealed = 5

// errorTable maps each sentinel error to its wire code and back. Codes are
// stable: a code is never reused for another error. The table is sorted by
// code, so the codes of one error go on the wire in ascending order.
var errorTable = []struct {
	code uint64
	err  error
}{
	{1, storage.ErrWritten},
	{2, storage.ErrUnwritten},
	{3, storage.ErrTrimmed},
	{4, storage.ErrJunk},
	{codeSealed, storage.ErrSealed},
	{6, storage.ErrFutureEpoch},
	{7, storage.ErrTooLarge},
	{8, storage.ErrInvalidAddress},
	{9, storage.ErrNilData},
	{10, storage.ErrBlank},
	{11, storage.ErrNotBlank},
	{12, storage.ErrCorrupt},

	{16, sequencer.ErrNotReady},
	{17, sequencer.ErrInvalid},
	{18, sequencer.ErrRestarted},

	{32, projection.ErrInvalid},
	{33, projection.ErrNoSegment},
	{34, projection.ErrStaleEpoch},
	{35, projection.ErrRejected},
	{36, projection.ErrConflict},
	{37, projection.ErrEpochGap},

	{48, ErrMalformed},
	{49, ErrWrongRole},
	{50, ErrUnreachable},
	{51, ErrRemote}, // the catch-all: errors that match no other entry
	{52, ErrNotDurable},
	{53, ErrReadBatchFull},
}

// codeRemote is the wire code of ErrRemote.
const codeRemote = 51

// errorByCode returns the sentinel for a wire code, or nil for an unknown
// code.
func errorByCode(code uint64) error {
	for _, e := range errorTable {
		if e.code == code {
			return e.err
		}
	}
	return nil
}

// wireError is an error decoded from the wire that is not exactly one
// sentinel: it keeps the remote message and unwraps to every sentinel the
// remote error matched, so errors.Is and errors.As answer as they did on
// the remote side.
type wireError struct {
	msg  string
	errs []error
}

func (e *wireError) Error() string   { return e.msg }
func (e *wireError) Unwrap() []error { return e.errs }

// appendError appends the wire form of err:
//
//	count    uvarint: number of codes; 0 means no error and ends the field
//	codes    count uvarints, strictly ascending
//	sealed   if code 5 (ErrSealed) is present, one byte: 1 if an epoch
//	         follows (a *storage.SealedError), 0 if not (a bare ErrSealed)
//	epoch    uvarint, only after sealed byte 1
//	message  uvarint length, then the bytes; empty when the error is exactly
//	         the one sentinel (or *SealedError) its code names
func appendError(b []byte, err error) []byte {
	if err == nil {
		return append(b, 0)
	}
	var buf [maxErrorCodes]uint64
	codes := buf[:0]
	for _, e := range errorTable {
		if errors.Is(err, e.err) {
			codes = append(codes, e.code)
		}
	}
	if len(codes) == 0 {
		codes = append(codes, codeRemote)
	}
	b = appendUvarint(b, uint64(len(codes)))
	var sealed *storage.SealedError
	for _, c := range codes {
		b = appendUvarint(b, c)
		if c == codeSealed {
			if errors.As(err, &sealed) && sealed != nil {
				b = append(b, 1)
				b = appendUvarint(b, uint64(sealed.Epoch))
			} else {
				sealed = nil
				b = append(b, 0)
			}
		}
	}
	msg := err.Error()
	if len(codes) == 1 {
		plain := errorByCode(codes[0])
		if sealed != nil {
			plain = &storage.SealedError{Epoch: sealed.Epoch}
		}
		if msg == plain.Error() {
			msg = ""
		}
	}
	msg = truncateMessage(msg)
	b = appendUvarint(b, uint64(len(msg)))
	return append(b, msg...)
}

// truncateMessage cuts msg to at most MaxErrorBytes, at a rune boundary.
func truncateMessage(msg string) string {
	if len(msg) <= MaxErrorBytes {
		return msg
	}
	n := MaxErrorBytes
	for n > 0 && !utf8.RuneStart(msg[n]) {
		n--
	}
	return msg[:n]
}

// error decodes the wire form written by appendError. Codes it does not know
// (from a newer peer) are skipped; an error with no known code decodes as
// ErrRemote with its message. The result is canonical: encoding it again
// gives a frame that decodes to an equal error.
func (d *decoder) error() error {
	count := d.uvarint("error code count")
	if d.err != nil || count == 0 {
		return nil
	}
	if count > maxErrorCodes {
		d.fail("%d error codes, above the limit of %d", count, maxErrorCodes)
		return nil
	}
	var buf [maxErrorCodes]error
	errs := buf[:0]
	var prev uint64
	for i := uint64(0); i < count; i++ {
		code := d.uvarint("error code")
		if d.err != nil {
			return nil
		}
		if i > 0 && code <= prev {
			d.fail("error codes not strictly ascending")
			return nil
		}
		prev = code
		sentinel := errorByCode(code)
		if code == codeSealed {
			switch d.byte("sealed flag") {
			case 0:
			case 1:
				sentinel = &storage.SealedError{Epoch: storage.Epoch(d.uvarint("sealed epoch"))}
			default:
				d.fail("sealed flag not 0 or 1")
			}
		}
		if sentinel != nil {
			errs = append(errs, sentinel)
		}
	}
	msg := d.string("error message", MaxErrorBytes)
	if d.err != nil {
		return nil
	}
	if len(errs) == 0 {
		errs = append(errs, ErrRemote)
	}
	if len(errs) == 1 && (msg == "" || msg == errs[0].Error()) {
		return errs[0]
	}
	if msg == "" {
		parts := make([]string, len(errs))
		for i, e := range errs {
			parts[i] = e.Error()
		}
		msg = strings.Join(parts, "; ")
	}
	return &wireError{msg: msg, errs: append([]error(nil), errs...)}
}
