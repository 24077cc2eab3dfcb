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

// This file holds the client calls that object runtimes over the log (such
// as examples/tango) build on.

// Env returns the environment the client takes its clock, timers, tasks and
// randomness from (Config.Env, or the system one). Code that runs beside the
// client, such as an object runtime that waits for the log, takes them from
// it too, so that it runs unchanged in the simulator.
func (c *Client) Env() Env { return c.env }

// StreamAt returns a reader of stream id at address from, a position that
// was taken in epoch since: every entry of the stream below from as the log
// stood in that epoch has been seen. Its first Sync goes back to the tail of
// any tail reset after since that lies below from (see Stream.Sync), which
// Client.Stream, taking the client's current epoch, would not: a reader that
// resumes from a position saved earlier (a checkpoint's) must name the epoch
// the position was taken in.
func (c *Client) StreamAt(id StreamID, from storage.Address, since storage.Epoch) *Stream {
	return &Stream{c: c, id: id, pos: from, epoch: since}
}

// Epoch returns the epoch in which the reader's position was taken: the
// projection epoch of its last Sync, or the one it was created with.
func (s *Stream) Epoch() storage.Epoch { return s.epoch }

// SyncStreams syncs several readers of this client's at once, as Sync does
// each, with one tail query and one epoch confirmation for all of them, so
// that all read up to one tail taken under one projection: what a reader of
// several streams needs to merge them in log order. At most
// sequencer.MaxStreams-1 readers, of distinct streams. The result holds
// each reader's entries, in the readers' order.
//
// Errors: ErrInvalidStreams for too many readers, or two of one stream;
// otherwise those of Sync. On an error no reader's position moves, but for
// going back to a reset.
func (c *Client) SyncStreams(ctx context.Context, readers []*Stream) ([][]Entry, error) {
	ids := make([]StreamID, 0, len(readers)+1)
	for _, s := range readers {
		if s.c != c || slices.Contains(ids, s.id) {
			return nil, fmt.Errorf("corfu: sync streams: %w: stream %d named twice, or another client's reader", ErrInvalidStreams, s.id)
		}
		ids = append(ids, s.id)
	}
	if !slices.Contains(ids, TrimStream) {
		ids = append(ids, TrimStream)
	}
	if len(ids) > sequencer.MaxStreams {
		return nil, fmt.Errorf("corfu: sync streams: %w: %d readers, limit %d", ErrInvalidStreams, len(readers), sequencer.MaxStreams-1)
	}
	var tok sequencer.Token
	var at *projection.Projection
	err := c.withEpoch(ctx, func(p *projection.Projection) (err error) {
		if tok, err = c.next(ctx, p, 0, ids); err != nil {
			return err
		}
		at = p
		return c.confirmEpoch(ctx, p)
	})
	if err != nil {
		return nil, fmt.Errorf("corfu: sync streams: %w", err)
	}
	tokens := map[StreamID][]storage.Address{}
	for _, bp := range tok.Backpointers {
		if bp.Stream == TrimStream {
			_ = c.learnTrim(ctx, bp.Addrs) // NB: see Sync
		}
		tokens[bp.Stream] = bp.Addrs
	}
	tail := tok.Start
	out := make([][]Entry, len(readers))
	reads := map[storage.Address]readResult{}
	defer func() {
		for _, s := range readers {
			s.reads = nil
		}
	}()
	for i, s := range readers {
		s.reads = reads
		s.pos, s.epoch = at.Rewind(s.pos, s.epoch), at.Epoch
		s.start = s.pos
		s.trimmedBelow = 0
		if tail <= s.pos {
			continue
		}
		found, err := s.collect(ctx, tail, tokens[s.id])
		if err != nil {
			return nil, fmt.Errorf("corfu: stream %d: %w", s.id, err)
		}
		if c.mut.StreamDropsOldest && len(found) > 0 {
			found = found[1:] // mutant: the oldest entry goes missing
		}
		out[i] = found
	}
	for _, s := range readers {
		s.pos = max(s.pos, tail)
	}
	return out, nil
}

// readResult is what one read returned.
type readResult struct {
	e   Entry
	err error
}

// read reads a, once per SyncStreams call (see Stream.reads). A read that
// failed otherwise than with an answer about the address (junk, trimmed)
// is not kept.
func (s *Stream) read(ctx context.Context, a storage.Address) (Entry, error) {
	if s.reads == nil {
		return s.c.Read(ctx, a)
	}
	if r, ok := s.reads[a]; ok {
		return r.e, r.err
	}
	e, err := s.c.Read(ctx, a)
	if err == nil || errors.Is(err, ErrJunk) || errors.Is(err, ErrTrimmed) {
		s.reads[a] = readResult{e, err}
	}
	return e, err
}
