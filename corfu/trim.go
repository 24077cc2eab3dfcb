package corfu

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// Trimmed logs. A trimmed address reads ErrTrimmed forever. Range and
// Follow step over trimmed addresses, reporting each run of them as one
// *TrimmedError, and a Stream steps over its trimmed entries and says so
// (Stream.TrimmedBelow). TrimMark tells where the log starts: every address
// below it is trimmed, so a reader may start there.

// TrimmedError reports the run of trimmed addresses [From, To) that an
// iterator stepped over (see Range). It matches ErrTrimmed with errors.Is.
type TrimmedError struct {
	From, To storage.Address
}

// Error implements error.
func (e *TrimmedError) Error() string {
	return fmt.Sprintf("corfu: addresses [%d, %d) trimmed", e.From, e.To)
}

// Is reports whether target is ErrTrimmed.
func (e *TrimmedError) Is(target error) bool { return target == ErrTrimmed }

// TrimStream is the stream of the log's trim records: RecordTrim appends
// to it, TrimMark reads its newest entries. Applications must not append to
// it otherwise.
const TrimStream StreamID = math.MaxUint64

// trimRecordMagic starts every trim record's payload.
var trimRecordMagic = []byte("corfu trim mark\x00")

// noteTrim raises the trim mark the client knows: every address below mark
// is trimmed on every unit that holds it.
func (c *Client) noteTrim(mark storage.Address) {
	for {
		old := c.trimKnown.Load()
		if uint64(mark) <= old || c.trimKnown.CompareAndSwap(old, uint64(mark)) {
			return
		}
	}
}

// knownTrim returns the trim mark the client knows, without asking the log.
func (c *Client) knownTrim() storage.Address { return storage.Address(c.trimKnown.Load()) }

// RecordTrim records in the log, on TrimStream, that the log is trimmed
// below mark, so that TrimMark reports it to every client and stream
// readers learn it with their tails. Call it before PrefixTrim(ctx, mark),
// and call PrefixTrim until it succeeds: from the record on, readers take
// every address below mark as gone, and skip it. (Recorded after the trim
// instead, a reader behind the mark could miss what the trim took without
// a trace: a sequencer rebuilt between the two knows only the untrimmed
// log, and the entries after the mark may point at nothing below it.)
//
// Errors: those of Append.
func (c *Client) RecordTrim(ctx context.Context, mark storage.Address) error {
	b := binary.AppendUvarint(bytes.Clone(trimRecordMagic), uint64(mark))
	if _, err := c.Append(ctx, b, TrimStream); err != nil {
		return fmt.Errorf("corfu: record trim %d: %w", mark, err)
	}
	c.noteTrim(mark)
	return nil
}

// TrimMark returns the log's trim mark: every address below it is trimmed,
// or about to be, and a reader of the whole log may start there. It is the
// highest of the marks that this client's PrefixTrim calls trimmed and the
// newest trim record (RecordTrim) that is still readable. A PrefixTrim
// that nobody recorded moves it on its own client only.
//
// Errors: ctx's error, ErrRetriesExhausted, ErrSealed (see Append); a read
// of a trim record that fails otherwise than trimmed or junk.
func (c *Client) TrimMark(ctx context.Context) (storage.Address, error) {
	var tok sequencer.Token
	err := c.withEpoch(ctx, func(p *projection.Projection) (err error) {
		if tok, err = c.next(ctx, p, 0, []StreamID{TrimStream}); err != nil {
			return err
		}
		return c.confirmEpoch(ctx, p)
	})
	if err != nil {
		return 0, fmt.Errorf("corfu: trim mark: %w", err)
	}
	if len(tok.Backpointers) == 1 {
		if err := c.learnTrim(ctx, tok.Backpointers[0].Addrs); err != nil {
			return c.knownTrim(), fmt.Errorf("corfu: trim mark: %w", err)
		}
	}
	return c.knownTrim(), nil
}

// withTrimStream returns the streams of a tail query for stream id and
// TrimStream, so that the query tells the newest trim records too.
func (c *Client) withTrimStream(id StreamID) []StreamID {
	if id == TrimStream {
		return []StreamID{id}
	}
	return []StreamID{id, TrimStream}
}

// learnTrim reads the newest readable trim record of addrs (TrimStream's
// newest addresses, newest first) unless the client read it or a newer one
// before, and raises the trim mark the client knows to its mark.
//
// Errors: a read that fails otherwise than trimmed or junk.
func (c *Client) learnTrim(ctx context.Context, addrs []storage.Address) error {
	for _, a := range addrs {
		if uint64(a) < c.trimSeen.Load() {
			return nil // NB: read before: what it said is known
		}
		e, err := c.Read(ctx, a)
		if errors.Is(err, ErrTrimmed) || errors.Is(err, ErrJunk) {
			continue // NB: a later trim took it, or its append failed
		}
		if err != nil {
			return err
		}
		if m, ok := decodeTrimRecord(e); ok {
			c.noteTrim(m)
			for {
				old := c.trimSeen.Load()
				if uint64(a)+1 <= old || c.trimSeen.CompareAndSwap(old, uint64(a)+1) {
					break
				}
			}
			return nil
		}
	}
	return nil
}

// decodeTrimRecord returns the mark of a trim record.
func decodeTrimRecord(e Entry) (storage.Address, bool) {
	rest, ok := bytes.CutPrefix(e.Data, trimRecordMagic)
	if !ok || !e.In(TrimStream) {
		return 0, false
	}
	m, n := binary.Uvarint(rest)
	if n <= 0 || n != len(rest) || m > uint64(storage.MaxAddress) {
		return 0, false
	}
	return storage.Address(m), true
}

// TrimmedBelow returns one past the highest address of [Start, Position)
// that the last Sync stepped over because it was trimmed and that held, or
// may have held, an entry of the stream (an address of the stream's, or one
// its walk had to scan); 0 if it stepped over none. An entry there is gone:
// a reader that needs every entry of the stream rebuilds from a snapshot
// taken at or above it (see examples/tango's checkpoints).
func (s *Stream) TrimmedBelow() storage.Address { return s.trimmedBelow }

// stepTrimmed records that the reader stepped over the trimmed address a.
func (s *Stream) stepTrimmed(a storage.Address) {
	s.trimmedBelow = max(s.trimmedBelow, a+1)
}

// rangeTrims walks the trimmed runs of Range: what it stepped over and has
// not reported yet.
type rangeTrims struct {
	c     *Client
	run   *TrimmedError
	asked bool // whether the walk asked for the log's trim mark
}

// step records that address a reads trimmed and returns where the walk
// goes on: past the log's trim mark if that lies above a (asked once per
// walk), else at a+1. to bounds the walk.
func (t *rangeTrims) step(ctx context.Context, a, to storage.Address) storage.Address {
	next := a + 1
	if k := t.c.knownTrim(); k > next {
		next = k
	} else if !t.asked {
		t.asked = true
		if k, err := t.c.TrimMark(ctx); err == nil && k > next {
			next = k
		}
	}
	next = min(next, to)
	if t.run != nil && t.run.To == a {
		t.run.To = next
	} else {
		t.run = &TrimmedError{From: a, To: next}
	}
	return next
}

// flush yields the pending run, if any, and reports whether the consumer
// wants more.
func (t *rangeTrims) flush(yield func(Entry, error) bool) bool {
	if t.run == nil {
		return true
	}
	r := t.run
	t.run = nil
	return yield(Entry{Address: r.From}, r)
}
