package projection

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/corfulog/corfu/storage"
)

// Validate checks that p is a well-formed projection. It returns nil or an
// error wrapping ErrInvalid that names the first problem found:
//   - no sequencer, no layout servers, a layout server named twice, more
//     than MaxLayoutServers, or an empty or overlong (MaxNodeIDBytes) NodeID;
//   - no segments or more than MaxSegments;
//   - consecutive segments that leave a gap or overlap (each End must equal
//     the next Start);
//   - an open segment (End 0) that is not the last, or a closed last
//     segment: the last segment is always open, so every address from its
//     Start on is mapped;
//   - a closed segment with End <= Start; a Start or Base at or above
//     storage.MaxAddress, an End above it, or a closed segment whose local
//     addresses would pass it;
//   - a segment without stripes or with more than MaxStripes; an empty
//     chain or one longer than MaxReplicas; a node twice in one chain or in
//     two chains of one segment (the stripes of a segment share their local
//     addresses, so that would put two global addresses at one place);
//   - local addresses that go back: on each node, the local addresses a
//     segment uses must start at or above the end of every local range the
//     node holds in earlier segments. A closed segment uses
//     [Base, Base+n) on stripe i, where n is the number of its addresses on
//     stripe i; the open segment uses [Base, ...). This keeps each node's
//     local addresses in global order, so that different global addresses
//     never share a place and a prefix trim of a node's local space trims a
//     prefix of the log.
func (p *Projection) Validate() error {
	if p == nil {
		return fmt.Errorf("%w: nil projection", ErrInvalid)
	}
	if p.Sequencer == "" {
		return fmt.Errorf("%w: no sequencer", ErrInvalid)
	}
	if err := checkNode(p.Sequencer); err != nil {
		return fmt.Errorf("%w: sequencer: %w", ErrInvalid, err)
	}
	if len(p.Layout) == 0 {
		return fmt.Errorf("%w: no layout servers", ErrInvalid)
	}
	if p.Backpointers < 0 || p.Backpointers > MaxBackpointers {
		return fmt.Errorf("%w: backpointers %d outside [0, %d]", ErrInvalid, p.Backpointers, MaxBackpointers)
	}
	if len(p.Resets) > MaxResets {
		return fmt.Errorf("%w: %d resets, limit %d", ErrInvalid, len(p.Resets), MaxResets)
	}
	for i, r := range p.Resets {
		if r.Epoch > p.Epoch || i > 0 && r.Epoch <= p.Resets[i-1].Epoch || r.Tail >= storage.MaxAddress {
			return fmt.Errorf("%w: reset %d (epoch %d, tail %d) out of order or range", ErrInvalid, i, r.Epoch, r.Tail)
		}
	}
	if len(p.Layout) > MaxLayoutServers {
		return fmt.Errorf("%w: %d layout servers, limit %d", ErrInvalid, len(p.Layout), MaxLayoutServers)
	}
	for i, n := range p.Layout {
		if err := checkNode(n); err != nil {
			return fmt.Errorf("%w: layout server %d: %w", ErrInvalid, i, err)
		}
		for _, m := range p.Layout[:i] {
			if m == n {
				return fmt.Errorf("%w: layout server %q named twice", ErrInvalid, n)
			}
		}
	}
	if len(p.Segments) == 0 {
		return fmt.Errorf("%w: no segments", ErrInvalid)
	}
	if len(p.Segments) > MaxSegments {
		return fmt.Errorf("%w: %d segments, limit %d", ErrInvalid, len(p.Segments), MaxSegments)
	}
	// ends[n] is one past the highest local address node n uses in the
	// segments checked so far.
	ends := make(map[NodeID]storage.Address)
	for i, s := range p.Segments {
		last := i == len(p.Segments)-1
		if err := s.check(last, ends); err != nil {
			return fmt.Errorf("%w: segment %d: %w", ErrInvalid, i, err)
		}
		if !last && s.End != p.Segments[i+1].Start {
			what := "a gap"
			if s.End > p.Segments[i+1].Start {
				what = "an overlap"
			}
			return fmt.Errorf("%w: %s between segment %d ending at %d and segment %d starting at %d",
				ErrInvalid, what, i, s.End, i+1, p.Segments[i+1].Start)
		}
	}
	return nil
}

// checkNode checks one NodeID.
func checkNode(n NodeID) error {
	if n == "" {
		return errors.New("empty node id")
	}
	if len(n) > MaxNodeIDBytes {
		return fmt.Errorf("node id of %d bytes, limit %d", len(n), MaxNodeIDBytes)
	}
	return nil
}

// check checks one segment, last telling whether it is the last. It checks
// and then extends ends, the local high-water marks of the segments before.
// Its errors do not wrap ErrInvalid; Validate adds it.
func (s Segment) check(last bool, ends map[NodeID]storage.Address) error {
	open := s.End == 0
	switch {
	case s.Start >= storage.MaxAddress:
		return fmt.Errorf("start %d at or above storage.MaxAddress", s.Start)
	case open && !last:
		return errors.New("open (end 0) but not the last segment")
	case !open && last:
		return fmt.Errorf("the last segment must be open, but it ends at %d", s.End)
	case !open && s.End <= s.Start:
		return fmt.Errorf("end %d not above start %d", s.End, s.Start)
	case s.End > storage.MaxAddress:
		return fmt.Errorf("end %d above storage.MaxAddress", s.End)
	case s.Base >= storage.MaxAddress:
		return fmt.Errorf("base %d at or above storage.MaxAddress", s.Base)
	case len(s.Stripes) == 0:
		return errors.New("no stripes")
	case len(s.Stripes) > MaxStripes:
		return fmt.Errorf("%d stripes, limit %d", len(s.Stripes), MaxStripes)
	}
	stripeOf := make(map[NodeID]int)
	for i, c := range s.Stripes {
		if len(c) == 0 {
			return fmt.Errorf("stripe %d: empty chain", i)
		}
		if len(c) > MaxReplicas {
			return fmt.Errorf("stripe %d: %d replicas, limit %d", i, len(c), MaxReplicas)
		}
		for j, n := range c {
			if err := checkNode(n); err != nil {
				return fmt.Errorf("stripe %d replica %d: %w", i, j, err)
			}
			if prev, ok := stripeOf[n]; ok {
				if prev == i {
					return fmt.Errorf("stripe %d: node %q twice in the chain", i, n)
				}
				return fmt.Errorf("node %q in stripes %d and %d", n, prev, i)
			}
			stripeOf[n] = i
		}
	}
	// Local ranges: check every node against the segments before, then
	// record this segment's ranges.
	k := storage.Address(len(s.Stripes))
	for i, c := range s.Stripes {
		end := storage.MaxAddress // the open segment's range has no end
		if !open {
			n := storage.Address(0) // the stripe's addresses in [Start, End)
			if first := s.Start + storage.Address(i); first < s.End {
				n = (s.End-first-1)/k + 1
			}
			if n == 0 {
				continue
			}
			if n > storage.MaxAddress-s.Base {
				return fmt.Errorf("stripe %d: local addresses from base %d pass storage.MaxAddress", i, s.Base)
			}
			end = s.Base + n
		}
		for _, n := range c {
			if prev := ends[n]; s.Base < prev {
				return fmt.Errorf("stripe %d: node %q local addresses start at base %d, below %d used by an earlier segment",
					i, n, s.Base, prev)
			}
			// NB: updating ends at once is safe: a node is in one stripe of
			// the segment only (checked above).
			ends[n] = end
		}
	}
	return nil
}

// ValidateNext checks that next may follow prev: next must be valid, its
// epoch must be above prev's (ErrStaleEpoch otherwise), and it must keep the
// committed prefix (ErrInvalid otherwise).
//
// The committed-prefix rule: let F be the Start of next's first segment.
// Addresses below F are dropped (a trimmed prefix); F must not be below the
// Start of prev's first segment, since a dropped prefix never comes back. Every address at or
// above F that prev places in a closed segment must lie in a closed segment
// of next that has the same number of stripes and maps it to the same stripe
// index and the same local address. Segments may be split along the way, and
// their chains may change (a reconfiguration replaces failed replicas or adds
// rebuilt ones); it is the reconfigurer's task to populate new replicas. The
// rule composes: if q may follow p and r may follow q, then r keeps p's
// committed prefix too.
//
// Prev's open segment is not checked: which of its addresses were written is
// known only by sealing the units, so the reconfigurer must close it at or
// above the sealed tail, keeping its Start, Base and stripes.
//
// prev is trusted to be valid (it is committed); a nil prev gives ErrInvalid.
func ValidateNext(prev, next *Projection) error {
	if prev == nil {
		return fmt.Errorf("%w: no previous projection", ErrInvalid)
	}
	if err := next.Validate(); err != nil {
		return err
	}
	if next.Epoch <= prev.Epoch {
		return fmt.Errorf("%w: epoch %d after epoch %d", ErrStaleEpoch, next.Epoch, prev.Epoch)
	}
	if next.Backpointers != prev.Backpointers {
		return fmt.Errorf("%w: backpointers %d after %d: K never changes", ErrInvalid, next.Backpointers, prev.Backpointers)
	}
	if len(prev.Segments) == 0 {
		return nil
	}
	from := next.Segments[0].Start
	if from < prev.Segments[0].Start {
		return fmt.Errorf("%w: next starts at %d, below prev's first address %d: a dropped prefix never comes back",
			ErrInvalid, from, prev.Segments[0].Start)
	}
	j := 0 // index into next.Segments; both lists are in address order
	for i, s := range prev.Segments {
		if s.End == 0 || s.End <= from {
			continue
		}
		lo := max(s.Start, from)
		for lo < s.End {
			for next.Segments[j].End != 0 && next.Segments[j].End <= lo {
				j++
			}
			t := next.Segments[j]
			if err := sameMapping(s, t); err != nil {
				return fmt.Errorf("%w: prev segment %d [%d, %d) at address %d: next segment %d %w",
					ErrInvalid, i, s.Start, s.End, lo, j, err)
			}
			lo = t.End
		}
	}
	return nil
}

// sameMapping reports why t does not map the addresses it shares with s the
// way s does; s is closed.
func sameMapping(s, t Segment) error {
	if t.End == 0 {
		return errors.New("is open where prev is closed")
	}
	k := uint64(len(s.Stripes))
	if uint64(len(t.Stripes)) != k {
		return fmt.Errorf("has %d stripes, prev %d", len(t.Stripes), k)
	}
	// Same stripe index and local address for every shared address a:
	// t.Start - s.Start must be a multiple of k, d say, and the bases must
	// differ by d/k.
	var shift, baseShift int64 = int64(t.Start) - int64(s.Start), int64(t.Base) - int64(s.Base)
	if shift%int64(k) != 0 || shift/int64(k) != baseShift {
		return fmt.Errorf("maps them elsewhere (start %d base %d, prev start %d base %d)", t.Start, t.Base, s.Start, s.Base)
	}
	return nil
}

// Parse decodes a projection from its JSON form (as encoding/json writes it)
// and validates it. Unknown fields and trailing data are errors.
//
// Parse returns an error wrapping ErrInvalid if b is larger than MaxJSONBytes,
// does not decode, or decodes to a projection that Validate rejects.
func Parse(b []byte) (*Projection, error) {
	if len(b) > MaxJSONBytes {
		return nil, fmt.Errorf("%w: %d bytes of JSON, limit %d", ErrInvalid, len(b), MaxJSONBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var p Projection
	if err := dec.Decode(&p); err != nil {
		return nil, fmt.Errorf("%w: decode: %w", ErrInvalid, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: trailing data after the projection", ErrInvalid)
	}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return &p, nil
}
