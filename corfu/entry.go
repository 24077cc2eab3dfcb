package corfu

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// StreamID names a stream; see sequencer.StreamID.
type StreamID = sequencer.StreamID

// WriterID identifies the client that appended an entry (Config.Writer).
type WriterID uint64

// Entry is one log entry as a reader sees it.
type Entry struct {
	// Address is the entry's global address.
	Address storage.Address
	// Writer and Seq identify the append that wrote the entry: the
	// appending client's Config.Writer, and the number of that client's
	// Append call (its first Append is 1). Two appends of the same bytes
	// are two entries with different identities; the client recognises its
	// own entry by identity, never by comparing bytes.
	Writer WriterID
	Seq    uint64
	// Data is the payload given to Append.
	Data []byte
	// Streams lists the streams the entry belongs to.
	Streams []StreamID
	// Backpointers holds, for each stream in Streams, the addresses of that
	// stream's previous entries (newest first) as the sequencer knew them
	// when the entry got its address. Some of them may be junk.
	Backpointers [][]storage.Address
}

// In reports whether the entry belongs to stream id.
func (e *Entry) In(id StreamID) bool { return slices.Contains(e.Streams, id) }

// backpointers returns the entry's backpointers for stream id.
func (e *Entry) backpointers(id StreamID) []storage.Address {
	if i := slices.Index(e.Streams, id); i >= 0 {
		return e.Backpointers[i]
	}
	return nil
}

// entryID is an entry's identity: its writer and the writer's sequence
// number of the append.
type entryID struct {
	writer WriterID
	seq    uint64
}

// idOf returns the identity recorded in an entry's stored form, and false
// if b does not decode as an entry.
func idOf(b []byte) (entryID, bool) {
	e, err := decodeEntry(0, b)
	return entryID{e.Writer, e.Seq}, err == nil
}

// entryVersion is the first byte of every entry's stored form.
const entryVersion = 2

// maxEntryHeaderBytes bounds the stored form of an entry less its payload:
// a version byte, the writer and sequence number, the stream count, and per
// stream its ID, its backpointer count and at most MaxBackpointers
// backpointers.
const maxEntryHeaderBytes = 1 + 3*binary.MaxVarintLen64 +
	sequencer.MaxStreams*(2+MaxBackpointers)*binary.MaxVarintLen64

// encodeEntry lays an entry out as stored on the units: a version byte, the
// writer and the sequence number, the number of streams, then per stream its
// ID, its number of backpointers and the backpointers (all uvarints), then
// the payload. Each stream keeps the newest k of its backpointers (k at most
// MaxBackpointers).
func encodeEntry(id entryID, streams []StreamID, tails []sequencer.StreamTail, k int, data []byte) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64*(3+len(streams)*6)+len(data))
	b = append(b, entryVersion)
	b = binary.AppendUvarint(b, uint64(id.writer))
	b = binary.AppendUvarint(b, id.seq)
	b = binary.AppendUvarint(b, uint64(len(streams)))
	for i, s := range streams {
		b = binary.AppendUvarint(b, uint64(s))
		var bps []storage.Address
		if i < len(tails) && tails[i].Stream == s {
			bps = tails[i].Addrs
		}
		bps = bps[:min(len(bps), k)]
		b = binary.AppendUvarint(b, uint64(len(bps)))
		for _, a := range bps {
			b = binary.AppendUvarint(b, uint64(a))
		}
	}
	return append(b, data...)
}

// decodeEntry parses an entry's stored form. The result does not alias b.
func decodeEntry(addr storage.Address, b []byte) (Entry, error) {
	bad := func(what string) (Entry, error) {
		return Entry{}, fmt.Errorf("%w at address %d: %s", ErrCorruptEntry, addr, what)
	}
	if len(b) == 0 || b[0] != entryVersion {
		return bad("unknown version")
	}
	b = b[1:]
	next := func() (uint64, bool) {
		v, n := binary.Uvarint(b)
		if n <= 0 {
			return 0, false
		}
		b = b[n:]
		return v, true
	}
	writer, ok := next()
	if !ok {
		return bad("truncated writer")
	}
	seq, ok := next()
	if !ok {
		return bad("truncated sequence number")
	}
	ns, ok := next()
	if !ok || ns > sequencer.MaxStreams {
		return bad("bad stream count")
	}
	e := Entry{Address: addr, Writer: WriterID(writer), Seq: seq}
	if ns > 0 {
		e.Streams = make([]StreamID, 0, ns)
		e.Backpointers = make([][]storage.Address, 0, ns)
	}
	for range ns {
		id, ok := next()
		if !ok {
			return bad("truncated stream id")
		}
		nb, ok := next()
		if !ok || nb > MaxBackpointers || nb > uint64(len(b)) {
			return bad("bad backpointer count")
		}
		bps := make([]storage.Address, 0, nb)
		for range nb {
			a, ok := next()
			if !ok || a >= uint64(storage.MaxAddress) {
				return bad("bad backpointer")
			}
			bps = append(bps, storage.Address(a))
		}
		e.Streams = append(e.Streams, StreamID(id))
		e.Backpointers = append(e.Backpointers, bps)
	}
	e.Data = append([]byte{}, b...)
	return e, nil
}
