package corfu

import (
	"cmp"
	"container/heap"
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
	c     *Client
	id    StreamID
	pos   storage.Address // every entry of the stream below pos was returned
	epoch storage.Epoch   // the epoch in which pos was taken (see projection.Reset)
	start storage.Address // where the last Sync began reading
	// trimmedBelow is one past the highest trimmed address the last Sync
	// stepped over (see TrimmedBelow).
	trimmedBelow storage.Address
	// reads, while SyncStreams syncs several readers, holds what they
	// read, so that an entry of several of their streams is read once.
	reads map[storage.Address]readResult
	wait  *follower // Wait's, once it has run
}

// Stream returns a reader of stream id that starts at address from.
func (c *Client) Stream(id StreamID, from storage.Address) *Stream {
	return &Stream{c: c, id: id, pos: from, epoch: c.Epoch()}
}

// ID returns the stream's ID.
func (s *Stream) ID() StreamID { return s.id }

// Start returns where the last Sync began reading: the position before it,
// or a reset's tail below that (see Sync). The last Sync returned the
// stream's entries in [Start, Position).
func (s *Stream) Start() storage.Address { return s.start }

// Position returns the address below which the reader has returned every
// entry of the stream.
func (s *Stream) Position() storage.Address { return s.pos }

// Append appends data to the stream (and to no other). Its errors are
// those of Client.Append.
func (s *Stream) Append(ctx context.Context, data []byte) (storage.Address, error) {
	return s.c.Append(ctx, data, s.id)
}

// Wait returns once the log may hold entries of the stream past the
// reader's position: once an entry (of any stream) is written at the
// position's address, where the last Sync found the log's tail, or after
// Config.FollowWait, whichever comes first. It does not poll: it waits at
// the tail replica of that address's chain, which answers the moment the
// entry is written there (see transport.ReadWaits). Where a unit cannot
// park a read, it returns after Config.FollowPoll. The only error it
// returns is ctx's.
//
// A follower calls Sync and Wait in turn; Sync then returns what was
// appended meanwhile, if anything. While the address at the position is a
// hole (its token taken and never written), each Wait lasts FollowWait,
// until a reader fills it.
func (s *Stream) Wait(ctx context.Context) error {
	if s.wait == nil {
		s.wait = &follower{c: s.c, parks: true}
	}
	_, _, err := s.wait.await(ctx, s.pos)
	return err
}

// Sync returns the stream's entries between the reader's position and the
// current tail, in log order, and moves the position to that tail.
//
// If a reconfiguration since the last Sync started the sequencer below the
// position (a projection.Reset: it could not learn the old sequencer's
// tail), the position first goes back to that tail, whose addresses are
// handed out again; nothing the reader returned lies at or above it.
//
// Trimmed addresses are stepped over: the entries there are gone, and
// TrimmedBelow says up to where. Addresses below the log's trim mark (see
// Client.TrimMark, which Sync learns with the tail) are not read at all.
//
// Errors: those of Read except ErrJunk (junk is skipped), ErrTrimmed and
// ErrUnwritten. On an error the position does not move, but for going back
// to a reset.
func (s *Stream) Sync(ctx context.Context) ([]Entry, error) {
	var tok sequencer.Token
	var at *projection.Projection
	err := s.c.withEpoch(ctx, func(p *projection.Projection) (err error) {
		if tok, err = s.c.next(ctx, p, 0, s.c.withTrimStream(s.id)); err != nil {
			return err
		}
		at = p
		return s.c.confirmEpoch(ctx, p)
	})
	if err != nil {
		return nil, fmt.Errorf("corfu: stream %d: %w", s.id, err)
	}
	// NB: a sequencer that started below the position (a reset) hands
	// those addresses out again: the reader goes back for them.
	s.pos, s.epoch = at.Rewind(s.pos, s.epoch), at.Epoch
	s.start = s.pos
	s.trimmedBelow = 0
	tail := tok.Start
	if tail <= s.pos {
		return nil, nil
	}
	var tokens []storage.Address
	for _, bp := range tok.Backpointers {
		switch bp.Stream {
		case s.id:
			tokens = bp.Addrs
		case TrimStream:
			// NB: the log's trim mark, learned in the same request: a
			// reader behind it may find no trace of what the trim took
			// (a sequencer rebuilt since knows only the untrimmed log).
			s.c.learnTrim(ctx, bp.Addrs)
		}
	}
	found, err := s.collect(ctx, tail, tokens)
	if err != nil {
		return nil, fmt.Errorf("corfu: stream %d: %w", s.id, err)
	}
	if s.c.mut.StreamDropsOldest && len(found) > 0 {
		found = found[1:] // mutant: the oldest entry goes missing
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
	k := s.c.backpointers()
	low := storage.Address(0)
	if len(tokens) >= k && len(tokens) > 0 {
		low = slices.Min(tokens)
	}
	known := map[storage.Address]bool{} // every token found, and every address scanned
	var unread addrHeap                 // the tokens found and not read yet, lowest first
	learn := func(a storage.Address) {
		if a >= s.pos && a < tail && !known[a] {
			known[a] = true
			heap.Push(&unread, a)
		}
	}
	for _, a := range tokens {
		learn(a)
	}
	var entries []Entry
	asked := false // whether this walk asked for the log's trim mark
	read := func(a storage.Address) error {
		e, err := s.read(ctx, a)
		if errors.Is(err, ErrJunk) {
			return nil
		}
		if errors.Is(err, ErrTrimmed) {
			// NB: stepped over like junk, but said. Below the log's trim
			// mark nothing is left to read: the walk stops there.
			s.stepTrimmed(a)
			if !asked {
				asked = true
				_, _ = s.c.TrimMark(ctx)
			}
			return nil
		}
		if err != nil {
			return err
		}
		if !e.In(s.id) {
			return nil
		}
		entries = append(entries, e)
		bps := e.backpointers(s.id)
		for _, b := range bps {
			if b < a {
				learn(b)
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
	for {
		var next storage.Address
		floor := max(s.pos, s.c.knownTrim()) // [s.pos, floor) is trimmed
		switch {
		case unread.Len() > 0:
			// Read the lowest unread token: it extends coverage furthest.
			next = heap.Pop(&unread).(storage.Address)
			if next < floor {
				s.stepTrimmed(next)
				continue
			}
		case low > floor:
			// Every known token is read and coverage stops short of pos:
			// the tokens just below low were junk. Scan down one address.
			low--
			if known[low] {
				continue
			}
			known[low] = true
			next = low
		default:
			if floor > s.pos {
				s.stepTrimmed(floor - 1) // NB: the stream may have had entries there
			}
			slices.SortFunc(entries, func(a, b Entry) int { return cmp.Compare(a.Address, b.Address) })
			return entries, nil
		}
		if err := read(next); err != nil {
			return nil, err
		}
	}
}

// addrHeap is a min-heap of addresses (container/heap).
type addrHeap []storage.Address

func (h addrHeap) Len() int           { return len(h) }
func (h addrHeap) Less(i, j int) bool { return h[i] < h[j] }
func (h addrHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *addrHeap) Push(x any)        { *h = append(*h, x.(storage.Address)) }
func (h *addrHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}
