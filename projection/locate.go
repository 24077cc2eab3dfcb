package projection

import (
	"fmt"
	"sort"

	"github.com/corfulog/corfu/storage"
)

// Locate returns where global address a lives: the segment that covers a,
// the stripe (a-Start) mod k of its k stripes, that stripe's chain, and the
// local address Base + (a-Start) div k on every replica of the chain. The
// returned Chain shares memory with p and must not be modified.
//
// p must be valid (see Validate); on an invalid projection the answer is
// unspecified, though Locate does not panic. Locate returns ErrNoSegment if
// no segment covers a (below the first segment, or at or above
// storage.MaxAddress) and ErrInvalid if the covering segment has no stripes.
func (p *Projection) Locate(a storage.Address) (Location, error) {
	if a >= storage.MaxAddress {
		return Location{}, fmt.Errorf("%w: address %d at or above storage.MaxAddress", ErrNoSegment, a)
	}
	segs := p.Segments
	// The last segment that starts at or below a is the only candidate.
	i := sort.Search(len(segs), func(i int) bool { return segs[i].Start > a }) - 1
	if i < 0 {
		return Location{}, fmt.Errorf("%w: address %d below the first segment", ErrNoSegment, a)
	}
	s := &segs[i]
	if s.End != 0 && a >= s.End {
		return Location{}, fmt.Errorf("%w: address %d past segment %d ending at %d", ErrNoSegment, a, i, s.End)
	}
	k := uint64(len(s.Stripes))
	if k == 0 {
		return Location{}, fmt.Errorf("%w: segment %d has no stripes", ErrInvalid, i)
	}
	off := uint64(a - s.Start)
	stripe := int(off % k)
	return Location{
		Segment: i,
		Stripe:  stripe,
		Chain:   s.Stripes[stripe],
		Local:   s.Base + storage.Address(off/k),
	}, nil
}

// Global is the inverse of Locate: it returns the global address that lives
// at local address local on stripe stripe of segment segment.
//
// Global returns ErrInvalid if segment or stripe is out of range, and
// ErrNoSegment if local is not one of the stripe's local addresses in that
// segment (below Base, or mapping past the segment's End or to
// storage.MaxAddress or above).
func (p *Projection) Global(segment, stripe int, local storage.Address) (storage.Address, error) {
	if segment < 0 || segment >= len(p.Segments) {
		return 0, fmt.Errorf("%w: segment %d of %d", ErrInvalid, segment, len(p.Segments))
	}
	s := &p.Segments[segment]
	if stripe < 0 || stripe >= len(s.Stripes) {
		return 0, fmt.Errorf("%w: stripe %d of %d in segment %d", ErrInvalid, stripe, len(s.Stripes), segment)
	}
	if local < s.Base {
		return 0, fmt.Errorf("%w: local address %d below segment %d base %d", ErrNoSegment, local, segment, s.Base)
	}
	k := uint64(len(s.Stripes))
	d := uint64(local - s.Base)
	// a = Start + d*k + stripe must stay below MaxAddress (and End): check
	// d*k <= last - Start - stripe without overflowing.
	last := uint64(storage.MaxAddress - 1)
	if s.End != 0 {
		last = min(last, uint64(s.End)-1)
	}
	first := uint64(s.Start) + uint64(stripe)
	if s.End != 0 && s.End <= s.Start || first > last || d > (last-first)/k {
		return 0, fmt.Errorf("%w: local address %d past the end of segment %d stripe %d", ErrNoSegment, local, segment, stripe)
	}
	return storage.Address(first + d*k), nil
}

// LocalFloor returns the smallest local address on stripe stripe of s whose
// global address is at least a. It is clamped to the segment: if every
// address of the stripe in s is at or above a it returns Base, and if every
// one is below a it returns one past the stripe's last local address in s.
// So a prefix trim below LocalFloor(stripe, a) on each replica of the chain
// trims exactly the stripe's addresses in s below a.
//
// LocalFloor panics if stripe is not an index into s.Stripes.
func (s Segment) LocalFloor(stripe int, a storage.Address) storage.Address {
	if stripe < 0 || stripe >= len(s.Stripes) {
		panic(fmt.Sprintf("projection: LocalFloor of stripe %d in a segment of %d stripes", stripe, len(s.Stripes)))
	}
	k := uint64(len(s.Stripes))
	a = min(a, storage.MaxAddress)
	if s.End != 0 {
		a = min(a, s.End)
	}
	first := s.Start + storage.Address(stripe)
	if a <= first {
		return s.Base
	}
	// The stripe's addresses below a are first, first+k, ...: there are
	// ceil((a-first)/k) of them.
	return s.Base + storage.Address((uint64(a-first)-1)/k+1)
}
