package corfu

import (
	"context"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// ScrubResult is what a Scrub found.
type ScrubResult struct {
	Checked  int // addresses whose every replica was read
	Corrupt  int // replicas that answered storage.ErrCorrupt
	Repaired int // of those, repaired from another replica
	// Restored counts the replicas that answered storage.ErrUnwritten where
	// a replica after them in the chain holds the entry or junk: writes
	// reach a chain in its order, so such a replica lost a record it had
	// acknowledged (a disk that dropped or misdirected a write). They are
	// written again from that replica.
	Restored int
	// Unrepaired lists the addresses with a corrupt replica no other
	// replica could repair: none holds the entry, junk or a trim (the
	// write there never got past the damaged replica, or every copy is
	// damaged).
	Unrepaired []storage.Address
}

// scrubWindow is how many addresses Scrub reads at once.
const scrubWindow = 64

// Scrub reads every replica of every address in [from, to) under the
// current projection and repairs each record that fails its checksum
// (storage.ErrCorrupt: a disk that corrupted or misdirected a write) from
// another replica of its chain that holds the entry or junk, through
// storage.Repairer (a repair replaces only a record its unit finds
// corrupt, so a scrub never overwrites good data). A read repairs what it
// meets at the chain's last replica; a scrub also reaches the replicas
// before it, which reads never ask. Addresses below the trim mark are
// skipped, and so are replicas that do not answer or came back blank
// (they hold nothing to check until they rejoin). A replica that lost a
// record (see ScrubResult.Restored) gets it again.
//
// It stops at the first error that is not about one replica (ctx's, a
// projection refresh's) and returns what it found so far. The Detector
// scrubs in the rounds it has nothing else to do (DetectorConfig.Scrub).
func (c *Client) Scrub(ctx context.Context, from, to storage.Address) (ScrubResult, error) {
	var res ScrubResult
	from = max(from, storage.Address(c.trimKnown.Load()))
	for lo := from; lo < to; {
		n := int(min(storage.Address(scrubWindow), to-lo))
		outs := make([]scrubOutcome, n)
		errs := make([]error, n)
		c.each("scrub", n, func(i int) {
			errs[i] = c.withEpoch(ctx, func(p *projection.Projection) error {
				outs[i] = scrubOutcome{}
				return c.scrubAt(ctx, p, lo+storage.Address(i), &outs[i])
			})
		})
		for i := range n {
			if errs[i] != nil {
				return res, fmt.Errorf("corfu: scrubbing %d: %w", lo+storage.Address(i), errs[i])
			}
			o := outs[i]
			res.Checked++
			res.Corrupt += o.corrupt
			res.Repaired += o.repaired
			res.Restored += o.restored
			if o.corrupt > o.repaired {
				res.Unrepaired = append(res.Unrepaired, lo+storage.Address(i))
			}
		}
		lo += storage.Address(n)
	}
	return res, nil
}

// scrubOutcome is what scrubAt found at one address.
type scrubOutcome struct{ corrupt, repaired, restored int }

// scrubAt reads addr from every replica of its chain under p, and repairs
// the corrupt ones from one that holds the entry or junk, and writes it
// again to those before that one that answered it unwritten. A unit sealed
// past p ends it with a *storage.SealedError (withEpoch goes on in the
// newer epoch); a unit that does not answer, or answers that it came back
// blank, is skipped.
func (c *Client) scrubAt(ctx context.Context, p *projection.Projection, addr storage.Address, out *scrubOutcome) error {
	loc, err := p.Locate(addr)
	if err != nil {
		return err
	}
	var bad, unwritten, lost []projection.NodeID
	var good []byte
	found, junk := false, false
	for _, node := range loc.Chain {
		data, err := c.unitRead(ctx, p, node, loc.Local)
		switch {
		case err == nil, errors.Is(err, storage.ErrJunk):
			if !found {
				good, junk, found = data, err != nil, true
			}
			// NB: a replica after them holds it: they lost it.
			lost, unwritten = append(lost, unwritten...), nil
		case errors.Is(err, storage.ErrUnwritten):
			unwritten = append(unwritten, node)
		case errors.Is(err, storage.ErrCorrupt):
			bad = append(bad, node)
		case errors.Is(err, storage.ErrTrimmed):
			return nil // NB: nothing there to keep
		case errors.As(err, new(*storage.SealedError)), ctx.Err() != nil:
			return err
		}
		// NB: a unit that came back blank (blankError) holds nothing to
		// check, and is skipped like one that does not answer: a scrub
		// does not wait for it to rejoin (the detector that scrubs lets it
		// rejoin in its next rounds).
	}
	out.corrupt = len(bad)
	if !found {
		return nil
	}
	for _, node := range bad {
		if c.repair(ctx, p, node, loc.Local, good, junk) == nil {
			out.repaired++
		}
	}
	for _, node := range lost {
		err := c.unitDo(ctx, p, node, func(u transport.UnitClient) error {
			if junk {
				return u.Fill(ctx, p.Epoch, loc.Local)
			}
			return u.Write(ctx, p.Epoch, loc.Local, good)
		})
		if err == nil {
			out.restored++
		} else {
			c.log.Info("restoring a replica's lost record failed", "node", node, "local", loc.Local, "epoch", p.Epoch, "err", err)
		}
	}
	return nil
}
