package corfu

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// Stream reads one stream of the log: the entries appended with its ID, in
// log order. It finds them by following backpointers from the stream's tail
// (Tango's scheme) rather than reading the whole log.
//
// A Stream is not safe for concurrent use; give each reader its own.
type Stream struct {
	c   *Client
	id  StreamID
	pos storage.Address // every entry of the stream below pos was returned
}

// Stream returns a reader of stream id that starts at address from.
func (c *Client) Stream(id StreamID, from storage.Address) *Stream {
	return &Stream{c: c, id: id, pos: from}
}

// ID returns the stream's ID.
func (s *Stream) ID() StreamID { return s.id }

// Position returns the address below which the reader has returned every
// entry of the stream.
func (s *Stream) Position() storage.Address { return s.pos }

// Append appends data to the stream (and to no other). Its errors are
// those of Client.Append.
func (s *Stream) Append(ctx context.Context, data []byte) (storage.Address, error) {
	return s.c.Append(ctx, data, s.id)
}

// Sync returns the stream's entries between the reader's position and the
// current tail, in log order, and moves the position to that tail.
//
// Errors: those of Read except ErrJunk (junk is skipped) and ErrUnwritten.
// On an error the position does not move.
func (s *Stream) Sync(ctx context.Context) ([]Entry, error) {
	var tok sequencer.Token
	err := s.c.withEpoch(ctx, func(p *projection.Projection) (err error) {
		tok, err = s.c.next(ctx, p, 0, []StreamID{s.id})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("corfu: stream %d: %w", s.id, err)
	}
	tail := tok.Start
	if tail <= s.pos {
		return nil, nil
	}
	var tokens []storage.Address
	if len(tok.Backpointers) == 1 {
		tokens = tok.Backpointers[0].Addrs
	}
	found, err := s.collect(ctx, tail, tokens)
	if err != nil {
		return nil, fmt.Errorf("corfu: stream %d: %w", s.id, err)
	}
	s.pos = tail
	return found, nil
}

// collect finds the stream's entries in [s.pos, tail). tokens are the
// newest addresses the sequencer handed out to the stream, newest first.
//
// Coverage argument: a list of the K newest tokens below some address x
// (the sequencer's list below the tail, or an entry's backpointers below its
// own address) names every token of the stream in [min(list), x). So
// [low, tail) is fully known, where low starts at the sequencer list's
// minimum and drops whenever an entry at or above low lists older tokens. A
// list shorter than K reaches the stream's start. Junk tokens have no
// backpointers; if every known token down to low is junk, the walk falls
// back to scanning down from low address by address: each scanned address
// joins the known range, and the first entry of the stream it meets carries
// the walk on with its backpointers.
func (s *Stream) collect(ctx context.Context, tail storage.Address, tokens []storage.Address) ([]Entry, error) {
	k := s.c.cfg.Backpointers
	low := storage.Address(0)
	if len(tokens) >= k && len(tokens) > 0 {
		low = slices.Min(tokens)
	}
	known := map[storage.Address]bool{} // token -> read yet
	for _, a := range tokens {
		if a >= s.pos && a < tail {
			known[a] = false
		}
	}
	entries := map[storage.Address]Entry{}
	read := func(a storage.Address) error {
		known[a] = true
		e, err := s.c.Read(ctx, a)
		if errors.Is(err, ErrJunk) {
			return nil
		}
		if err != nil {
			return err
		}
		if !e.In(s.id) {
			return nil
		}
		entries[a] = e
		bps := e.backpointers(s.id)
		for _, b := range bps {
			if b >= s.pos && b < a {
				if _, ok := known[b]; !ok {
					known[b] = false
				}
			}
		}
		// NB: the entry's list joins the known range only if the two
		// touch, that is if the entry itself lies in it.
		switch {
		case a < low:
		case len(bps) < k:
			low = 0
		case slices.Min(bps) < low:
			low = slices.Min(bps)
		}
		return nil
	}
	for low > s.pos {
		// Read the lowest unread token: it extends coverage furthest.
		next, ok := storage.Address(0), false
		for _, a := range sortedKeys(known) {
			if !known[a] {
				next, ok = a, true
				break
			}
		}
		if !ok {
			// Every known token is read and coverage stops short of pos:
			// the tokens just below low were junk. Scan down one address.
			low--
			next = low
			if _, seen := known[next]; seen {
				continue
			}
		}
		if err := read(next); err != nil {
			return nil, err
		}
	}
	for _, a := range sortedKeys(known) {
		if !known[a] {
			if err := read(a); err != nil {
				return nil, err
			}
		}
	}
	out := make([]Entry, 0, len(entries))
	for _, a := range sortedKeys(entries) {
		out = append(out, entries[a])
	}
	return out, nil
}

func sortedKeys[V any](m map[storage.Address]V) []storage.Address {
	keys := make([]storage.Address, 0, len(m))
	for a := range m {
		keys = append(keys, a)
	}
	slices.Sort(keys)
	return keys
}
