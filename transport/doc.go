// Package transport carries the requests and responses of the storage units,
// the sequencer and the layout servers between nodes.
//
// A Caller sends a Request to a node and returns its Response; a Handler
// (usually a Server) answers requests for the roles its node plays. The
// stubs UnitClient, SequencerClient and LayoutClient turn a Caller into the
// interfaces of the storage, sequencer and projection packages, so a client
// uses a remote unit as it would a local one. Package inproc is an
// in-process network, which encodes and decodes every message with this
// package's codec; package tcp carries the same messages over TCP and TLS
// (its framing and handshake are in docs/wire.md).
//
// # Errors
//
// Errors cross the wire by code: each sentinel error of the storage,
// sequencer, projection and transport packages has a stable code, so
// errors.Is gives the same answer for a remote error as for a local one. A
// *storage.SealedError carries its epoch and decodes to a *storage.SealedError.
// An error that wraps a sentinel keeps its message and still matches the
// sentinel; an error that matches no sentinel arrives as one that wraps
// ErrRemote and keeps the message.
//
// # Wire format
//
// A message is a version byte (Version), a kind byte ('Q' for a request,
// 'R' for a response, so that neither decoder accepts the other's), then its
// fields in a fixed order. Every field is always present, whatever the
// operation. Integers are unsigned varints (encoding/binary); a field that may
// be nil starts with a count that is 0 for nil and n+1 for n elements, so nil
// and empty survive a round trip (a write of empty data is valid; a write of
// nil data is not).
//
//	request:  version kind op(1 byte) epoch addr data n rank streams tails projection
//	response: version kind error addr data rank tails projection
//
//	data        count, then the bytes
//	streams     count, then one varint per stream
//	tails       count, then per tail: stream, a count, one varint per address
//	projection  count (of bytes), then the projection's JSON form
//	error       a count of codes (0: no error, and nothing else follows), the
//	            codes in ascending order, after the ErrSealed code a byte that
//	            is 1 if a *storage.SealedError's epoch follows as a varint and 0
//	            if not, then the message as a varint length and bytes (empty
//	            when the error is exactly the sentinel its one code names)
//
// Decoders never panic and never allocate for a length they have not checked:
// a message above MaxFrameBytes, more than sequencer.MaxStreams streams,
// MaxTails tails or MaxTailAddrs addresses per tail, a projection above
// projection.MaxJSONBytes, an error message above MaxErrorBytes, or any count
// larger than the bytes left is rejected first. They also reject an unknown
// version, kind or operation, a varint longer than 64 bits, a truncated
// message, bytes left over, and a projection that projection.Parse rejects.
// Every such error wraps ErrMalformed (and, where a limit of another package
// is broken, that package's sentinel too: sequencer.ErrInvalid,
// projection.ErrInvalid). Data is bounded by the frame only: the storage unit
// enforces storage.MaxEntryBytes after it has checked the epoch, as a local
// call would. An error code the decoder does not know, from a newer peer, is
// read as ErrRemote with its message. A decoded message shares no memory with
// the bytes it came from.
package transport
