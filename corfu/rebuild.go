package corfu

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// ErrRebuildConflict reports a unit that holds, at an address of a chain it
// was to join, something other than what the chain holds there: it kept an
// entry of its own from an earlier membership (say, a write only it took
// before it was cut off). Such a unit cannot join that chain; another one
// can.
var ErrRebuildConflict = errors.New("corfu: rebuild: the unit holds other data than the chain")

// RebuildError reports a join that Rebuild dropped, and why.
type RebuildError struct {
	Join Join
	Err  error
}

// Error implements error.
func (e *RebuildError) Error() string {
	return fmt.Sprintf("corfu: rebuild of %s into stripe %d of the segment at %d: %v", e.Join.Node, e.Join.Stripe, e.Join.Start, e.Err)
}

// Unwrap returns Err.
func (e *RebuildError) Unwrap() error { return e.Err }

// Join names a replica a rebuild adds: Node joins the chain of stripe Stripe
// of the closed segment that starts at Start.
type Join struct {
	Start  storage.Address   `json:"start"`
	Stripe int               `json:"stripe"`
	Node   projection.NodeID `json:"node"`
}

// ShortChains returns the joins that bring every chain of p's closed
// segments back to replicas replicas: a chain with fewer takes the nodes of
// the open segment's chain of the same stripe that it lacks (the units that
// took over from the replicas it lost), as many as it is short of. Segments
// with another stripe count than the open one are left alone.
func ShortChains(p *projection.Projection, replicas int) []Join {
	open := p.Segments[len(p.Segments)-1]
	var joins []Join
	for _, seg := range p.Segments[:len(p.Segments)-1] {
		if len(seg.Stripes) != len(open.Stripes) {
			continue
		}
		for i, chain := range seg.Stripes {
			short := replicas - len(chain)
			for _, n := range open.Stripes[i] {
				if short <= 0 {
					break
				}
				if !slices.Contains(chain, n) && !inSegment(seg, n) {
					joins = append(joins, Join{Start: seg.Start, Stripe: i, Node: n})
					short--
				}
			}
		}
	}
	return joins
}

// inSegment reports whether node is a replica of any chain of seg.
func inSegment(seg projection.Segment, node projection.NodeID) bool {
	for _, c := range seg.Stripes {
		if slices.Contains(c, node) {
			return true
		}
	}
	return false
}

// Rebuild adds each join's node to its chain (CORFU: replacing a failed
// unit, state transfer). For each join it first copies, while the log stays
// available, everything the chain holds at each of its addresses to the
// node, at the local addresses the segment uses: entries, junk and trims.
// A hole in the segment (an address handed out and never written, below
// the tail the segment was closed at) is filled first, through the chain,
// so that nothing is left for a late writer: no writer of a closed segment
// can still be on its way, its epoch being sealed. Once the unit is found
// to hold every address still (it may have come back with an empty disk
// meanwhile, and a unit that lost something does not join), a
// reconfiguration adds the node to the chain, as its head: reads keep going
// to the chain's tail, which held everything before. Rebuild never writes
// to a replica of the chain, so the last copy of anything stays where it
// is; a node that already holds an address keeps it only if it holds what
// the chain holds, else its join is dropped (ErrRebuildConflict).
//
// It returns the committed projection, and the joins it dropped, each as a
// *RebuildError, joined into one error (nil if none was dropped). A join
// whose segment is gone (trimmed off the front of the log) or whose node is
// in the chain already is done.
func (c *Client) Rebuild(ctx context.Context, joins []Join) (*projection.Projection, error) {
	if c.mut.RebuildJoinsEarly {
		return c.Reconfigure(ctx, AddReplicas(joins)) // mutant: a member before it caught up
	}
	var kept []Join
	var errs []error
	for _, j := range joins {
		err := c.copyChain(ctx, j)
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if err != nil {
			errs = append(errs, &RebuildError{Join: j, Err: err})
			continue
		}
		kept = append(kept, j)
	}
	cur := c.projection()
	if next, _ := AddReplicas(kept)(cur, 0); next.Equal(cur) {
		return cur, errors.Join(errs...) // nothing to add: done already
	}
	p, err := c.Reconfigure(ctx, AddReplicas(kept))
	if err != nil {
		return p, errors.Join(append(errs, err)...)
	}
	c.log.Info("rebuilt", "epoch", p.Epoch, "joins", len(kept))
	return p, errors.Join(errs...)
}

// AddReplicas returns a Change that adds each join's node to its chain, as
// its head, if its segment is still there (and closed) and the node is not
// in it yet. The node must hold the chain's data already (see Rebuild).
func AddReplicas(joins []Join) Change {
	return func(cur *projection.Projection, _ storage.Address) (*projection.Projection, error) {
		next := cur.Clone()
		for _, j := range joins {
			si := closedSegment(next, j.Start)
			if si < 0 || j.Stripe >= len(next.Segments[si].Stripes) || inSegment(next.Segments[si], j.Node) {
				continue
			}
			chain := &next.Segments[si].Stripes[j.Stripe]
			*chain = append(projection.Chain{j.Node}, *chain...)
		}
		return next, nil
	}
}

// closedSegment returns the index of p's closed segment starting at start,
// or -1.
func closedSegment(p *projection.Projection, start storage.Address) int {
	for i, seg := range p.Segments {
		if seg.Start == start && seg.End != 0 {
			return i
		}
	}
	return -1
}

// copyChain copies the chain of j to j.Node (see Rebuild). It works under
// the current projection, again under a newer one if a unit is sealed past
// it, resuming where it was.
func (c *Client) copyChain(ctx context.Context, j Join) error {
	p := c.projection()
	si := closedSegment(p, j.Start)
	if si < 0 || j.Stripe >= len(p.Segments[si].Stripes) {
		return nil // trimmed away, or no such stripe: nothing to hold
	}
	seg := p.Segments[si]
	k := storage.Address(len(seg.Stripes))
	for g := seg.Start + storage.Address(j.Stripe); g < seg.End; g += k {
		err := c.withEpoch(ctx, func(p *projection.Projection) error {
			loc, err := p.Locate(g)
			if err != nil {
				return nil // trimmed off the front meanwhile
			}
			if slices.Contains(loc.Chain, j.Node) {
				return nil // joined meanwhile (another rebuild)
			}
			return noRejoin(c.copyAt(ctx, p, g, loc, j.Node))
		})
		if err != nil {
			return fmt.Errorf("address %d: %w", g, err)
		}
	}
	// NB: the unit may have lost what was copied to it meanwhile (it came
	// back with an empty disk, and rejoined): everything must still be
	// there before it joins. (One that loses it after this answers the
	// join's seal as blank, and the reconfiguration takes it out again.)
	for g := seg.Start + storage.Address(j.Stripe); g < seg.End && !c.mut.RebuildSkipsJunk; g += k {
		err := c.withEpoch(ctx, func(p *projection.Projection) error {
			loc, err := p.Locate(g)
			if err != nil || slices.Contains(loc.Chain, j.Node) {
				return nil
			}
			_, err = c.unitRead(ctx, p, j.Node, loc.Local)
			err = noRejoin(err)
			switch {
			case errors.Is(err, storage.ErrUnwritten):
				return fmt.Errorf("%w: %s lost local address %d after the copy", errRebuildLost, j.Node, loc.Local)
			case err == nil, errors.Is(err, storage.ErrJunk), errors.Is(err, storage.ErrTrimmed):
				return nil
			}
			return err
		})
		if err != nil {
			return fmt.Errorf("address %d: %w", g, err)
		}
	}
	return nil
}

// noRejoin returns err, but an error of a unit that came back blank as a
// plain failure of the rebuild: withEpoch would take the unit out and back
// in (a reconfiguration) and try again, once per address, while a rebuild
// that fails is tried again by its caller in its own time.
func noRejoin(err error) error {
	var blank *blankError
	if errors.As(err, &blank) {
		return fmt.Errorf("%w: %v", errRebuildBlank, err)
	}
	return err
}

// errRebuildBlank reports a rebuild that met a unit back with an empty disk.
var errRebuildBlank = errors.New("corfu: rebuild: a unit came back blank")

// errRebuildLost reports a joining unit that lost some of what a rebuild
// copied to it before the rebuild could let it join.
var errRebuildLost = errors.New("corfu: rebuild: the unit lost what was copied")

// copyAt copies global address g, at loc under p, to node.
func (c *Client) copyAt(ctx context.Context, p *projection.Projection, g storage.Address, loc projection.Location, node projection.NodeID) error {
	// NB: g lies below the tail its segment was closed at: a hole there is
	// filled at once (readAt), and what the chain's tail then holds is
	// committed.
	data, err := c.readAt(ctx, p, g, true)
	var do func(u transport.UnitClient) error
	junk := errors.Is(err, storage.ErrJunk)
	switch {
	case err == nil:
		do = func(u transport.UnitClient) error { return u.Write(ctx, p.Epoch, loc.Local, data) }
	case junk && c.mut.RebuildSkipsJunk:
		return nil // mutant: the node never learns the junk
	case junk:
		do = func(u transport.UnitClient) error { return u.Fill(ctx, p.Epoch, loc.Local) }
	case errors.Is(err, storage.ErrTrimmed):
		do = func(u transport.UnitClient) error { return u.Trim(ctx, p.Epoch, loc.Local) }
	default:
		return err
	}
	err = c.unitDo(ctx, p, node, do)
	if (errors.Is(err, storage.ErrTrimmed) || errors.Is(err, storage.ErrWritten)) && c.mut.RebuildKeepsLateWrites {
		return nil // mutant: whatever landed on the unit stays, unchecked
	}
	if errors.Is(err, storage.ErrTrimmed) {
		// NB: the chain holds an entry or junk there (a trim of a trimmed
		// address succeeds): the node's trim is some other content of
		// its own, say of another stripe of the segment it served before.
		return fmt.Errorf("%w: %s has local address %d trimmed", ErrRebuildConflict, node, loc.Local)
	}
	if !errors.Is(err, storage.ErrWritten) {
		return err
	}
	// NB: the node held the address already (an earlier rebuild, or its
	// own membership before it was replaced): only the very same content
	// may stay.
	got, rerr := c.unitRead(ctx, p, node, loc.Local)
	switch {
	case junk && errors.Is(rerr, storage.ErrJunk), rerr == nil && !junk && data != nil && slices.Equal(got, data):
		return nil
	case rerr == nil || errors.Is(rerr, storage.ErrJunk) || errors.Is(rerr, storage.ErrCorrupt):
		return fmt.Errorf("%w: %s at local address %d", ErrRebuildConflict, node, loc.Local)
	}
	return rerr
}
