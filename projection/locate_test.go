package projection_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

func TestLocate(t *testing.T) {
	oneStripe := proj(1, seg(0, 0, 0, chain("a")))
	threeStripes := proj(1, seg(0, 0, 0, chain("a1", "a2"), chain("b1", "b2"), chain("c1", "c2")))
	multi := threeSegments()
	late := proj(1, seg(100, 0, 40, chain("a"), chain("b")))
	loc := func(segment, stripe int, c []projection.NodeID, local storage.Address) projection.Location {
		return projection.Location{Segment: segment, Stripe: stripe, Chain: c, Local: local}
	}
	tests := []struct {
		name string
		p    *projection.Projection
		a    storage.Address
		want projection.Location
		err  error
	}{
		{name: "one stripe first", p: oneStripe, a: 0, want: loc(0, 0, chain("a"), 0)},
		{name: "one stripe far", p: oneStripe, a: 123456, want: loc(0, 0, chain("a"), 123456)},
		{name: "one stripe last address", p: oneStripe, a: storage.MaxAddress - 1, want: loc(0, 0, chain("a"), storage.MaxAddress-1)},
		{name: "one stripe max address", p: oneStripe, a: storage.MaxAddress, err: projection.ErrNoSegment},
		{name: "three stripes 0", p: threeStripes, a: 0, want: loc(0, 0, chain("a1", "a2"), 0)},
		{name: "three stripes 1", p: threeStripes, a: 1, want: loc(0, 1, chain("b1", "b2"), 0)},
		{name: "three stripes 2", p: threeStripes, a: 2, want: loc(0, 2, chain("c1", "c2"), 0)},
		{name: "three stripes 3", p: threeStripes, a: 3, want: loc(0, 0, chain("a1", "a2"), 1)},
		{name: "three stripes 14", p: threeStripes, a: 14, want: loc(0, 2, chain("c1", "c2"), 4)},
		{name: "segments first", p: multi, a: 0, want: loc(0, 0, chain("a"), 0)},
		{name: "segments end of first", p: multi, a: 9, want: loc(0, 1, chain("b"), 4)},
		{name: "segments start of second", p: multi, a: 10, want: loc(1, 0, chain("a"), 5)},
		{name: "segments second stripe 2", p: multi, a: 12, want: loc(1, 2, chain("c"), 5)},
		{name: "segments end of second", p: multi, a: 15, want: loc(1, 2, chain("c"), 6)},
		{name: "segments start of open", p: multi, a: 16, want: loc(2, 0, chain("d"), 7)},
		{name: "segments open", p: multi, a: 21, want: loc(2, 1, chain("a"), 9)},
		{name: "segments max address", p: multi, a: storage.MaxAddress, err: projection.ErrNoSegment},
		{name: "late start below", p: late, a: 99, err: projection.ErrNoSegment},
		{name: "late start zero", p: late, a: 0, err: projection.ErrNoSegment},
		{name: "late start first", p: late, a: 100, want: loc(0, 0, chain("a"), 40)},
		{name: "late start third", p: late, a: 103, want: loc(0, 1, chain("b"), 41)},
		{name: "no segments", p: proj(1), a: 0, err: projection.ErrNoSegment},
		{name: "segment without stripes", p: proj(1, seg(0, 0, 0)), a: 0, err: projection.ErrInvalid},
		{name: "past a closed last segment", p: proj(1, seg(0, 10, 0, chain("a"))), a: 10, err: projection.ErrNoSegment},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := tt.p.Locate(tt.a)
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
				assert.Equal(t, projection.Location{}, got)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestGlobalInvertsLocate(t *testing.T) {
	tests := []struct {
		name string
		p    *projection.Projection
		from storage.Address
		to   storage.Address
	}{
		{name: "one stripe", p: proj(1, seg(0, 0, 0, chain("a"))), from: 0, to: 50},
		{name: "three stripes", p: proj(1, seg(0, 0, 0, chain("a"), chain("b"), chain("c"))), from: 0, to: 50},
		{name: "three segments", p: threeSegments(), from: 0, to: 60},
		{name: "late start", p: proj(1, seg(100, 0, 40, chain("a"), chain("b"))), from: 100, to: 150},
		{name: "top of the address space", p: proj(1, seg(0, 0, 0, chain("a"), chain("b"))), from: storage.MaxAddress - 10, to: storage.MaxAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, tt.p.Validate())
			for a := tt.from; a < tt.to; a++ {
				loc, err := tt.p.Locate(a)
				require.NoError(t, err)
				got, err := tt.p.Global(loc.Segment, loc.Stripe, loc.Local)
				require.NoError(t, err)
				require.Equal(t, a, got)
			}
		})
	}
}

func TestGlobalErrors(t *testing.T) {
	p := threeSegments()
	tests := []struct {
		name    string
		segment int
		stripe  int
		local   storage.Address
		want    error
	}{
		{name: "negative segment", segment: -1, want: projection.ErrInvalid},
		{name: "segment out of range", segment: 3, want: projection.ErrInvalid},
		{name: "negative stripe", segment: 0, stripe: -1, want: projection.ErrInvalid},
		{name: "stripe out of range", segment: 0, stripe: 2, want: projection.ErrInvalid},
		{name: "local below base", segment: 1, stripe: 0, local: 4, want: projection.ErrNoSegment},
		{name: "local past closed end", segment: 1, stripe: 2, local: 7, want: projection.ErrNoSegment},
		{name: "local past end of first", segment: 0, stripe: 1, local: 5, want: projection.ErrNoSegment},
		{name: "local maps to max address", segment: 2, stripe: 0, local: storage.MaxAddress, want: projection.ErrNoSegment},
		{name: "last local of closed", segment: 1, stripe: 2, local: 6},
		{name: "last local of first", segment: 0, stripe: 1, local: 4},
		{name: "far into the open segment", segment: 2, stripe: 1, local: 1 << 40},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := p.Global(tt.segment, tt.stripe, tt.local)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				return
			}
			require.NoError(t, err)
			loc, err := p.Locate(a)
			require.NoError(t, err)
			assert.Equal(t, tt.segment, loc.Segment)
			assert.Equal(t, tt.stripe, loc.Stripe)
			assert.Equal(t, tt.local, loc.Local)
		})
	}
}

func TestLocalFloor(t *testing.T) {
	// [10, 20) over three stripes from base 100:
	// stripe 0 holds 10 13 16 19 at 100..103, stripe 1 11 14 17 at 100..102,
	// stripe 2 12 15 18 at 100..102.
	closed := seg(10, 20, 100, chain("a"), chain("b"), chain("c"))
	open := seg(10, 0, 0, chain("a"), chain("b"))
	tests := []struct {
		name   string
		s      projection.Segment
		stripe int
		a      storage.Address
		want   storage.Address
	}{
		{name: "below the segment", s: closed, stripe: 0, a: 0, want: 100},
		{name: "at the start", s: closed, stripe: 0, a: 10, want: 100},
		{name: "just past an address", s: closed, stripe: 0, a: 11, want: 101},
		{name: "at an address", s: closed, stripe: 0, a: 13, want: 101},
		{name: "between addresses", s: closed, stripe: 0, a: 14, want: 102},
		{name: "at the last address", s: closed, stripe: 0, a: 19, want: 103},
		{name: "at the end", s: closed, stripe: 0, a: 20, want: 104},
		{name: "past the end", s: closed, stripe: 0, a: 1000, want: 104},
		{name: "stripe 1 at its first", s: closed, stripe: 1, a: 11, want: 100},
		{name: "stripe 1 before its first", s: closed, stripe: 1, a: 10, want: 100},
		{name: "stripe 1 after its first", s: closed, stripe: 1, a: 12, want: 101},
		{name: "stripe 1 past the end", s: closed, stripe: 1, a: 25, want: 103},
		{name: "stripe 2 at its last", s: closed, stripe: 2, a: 18, want: 102},
		{name: "stripe 2 after its last", s: closed, stripe: 2, a: 19, want: 103},
		{name: "open segment", s: open, stripe: 1, a: 12, want: 1},
		{name: "open segment far", s: open, stripe: 0, a: 1010, want: 500},
		{name: "open segment beyond max address", s: open, stripe: 0, a: ^storage.Address(0), want: (storage.MaxAddress - 10 + 1) / 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.s.LocalFloor(tt.stripe, tt.a))
		})
	}
}

// TestLocalFloorCountsAddresses checks LocalFloor against a count of the
// stripe's addresses below a, for many small segments.
func TestLocalFloorCountsAddresses(t *testing.T) {
	for k := 1; k <= 4; k++ {
		for start := storage.Address(0); start < 5; start++ {
			for length := storage.Address(1); length < 12; length++ {
				s := projection.Segment{Start: start, End: start + length, Base: 7}
				for range k {
					s.Stripes = append(s.Stripes, projection.Chain{"n"})
				}
				for stripe := range k {
					for a := storage.Address(0); a < start+length+3; a++ {
						n := storage.Address(0)
						for g := start + storage.Address(stripe); g < start+length && g < a; g += storage.Address(k) {
							n++
						}
						require.Equal(t, 7+n, s.LocalFloor(stripe, a), "k=%d start=%d len=%d stripe=%d a=%d", k, start, length, stripe, a)
					}
				}
			}
		}
	}
}

func TestLocalFloorPanicsOnBadStripe(t *testing.T) {
	s := seg(0, 0, 0, chain("a"), chain("b"))
	for _, stripe := range []int{-1, 2} {
		t.Run(fmt.Sprint(stripe), func(t *testing.T) {
			assert.Panics(t, func() { s.LocalFloor(stripe, 5) })
		})
	}
}

func TestUnits(t *testing.T) {
	tests := []struct {
		name string
		p    *projection.Projection
		want []projection.NodeID
	}{
		{name: "three segments", p: threeSegments(), want: chain("a", "b", "c", "d")},
		{name: "replicas", p: proj(1, seg(0, 0, 0, chain("z", "y"), chain("x", "w"))), want: chain("w", "x", "y", "z")},
		{name: "none", p: proj(1), want: nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.p.Units())
		})
	}
}

func TestCloneIsDeep(t *testing.T) {
	p := threeSegments()
	q := p.Clone()
	require.True(t, p.Equal(q))
	require.Equal(t, p, q)
	q.Layout[0] = "changed"
	q.Segments[0].Stripes[0][0] = "changed"
	q.Segments[1].Base = 99
	assert.Equal(t, threeSegments(), p)
	assert.False(t, p.Equal(q))
	assert.Nil(t, (*projection.Projection)(nil).Clone())
}

func TestEqual(t *testing.T) {
	tests := []struct {
		name   string
		change func(p *projection.Projection)
		want   bool
	}{
		{name: "same", change: func(*projection.Projection) {}, want: true},
		{name: "empty layout", change: func(p *projection.Projection) { p.Layout = p.Layout[:0] }, want: false},
		{name: "epoch", change: func(p *projection.Projection) { p.Epoch++ }},
		{name: "sequencer", change: func(p *projection.Projection) { p.Sequencer = "other" }},
		{name: "layout order", change: func(p *projection.Projection) { p.Layout[0], p.Layout[1] = p.Layout[1], p.Layout[0] }},
		{name: "segment end", change: func(p *projection.Projection) { p.Segments[0].End++ }},
		{name: "segment base", change: func(p *projection.Projection) { p.Segments[2].Base++ }},
		{name: "replica", change: func(p *projection.Projection) { p.Segments[1].Stripes[2][0] = "e" }},
		{name: "extra replica", change: func(p *projection.Projection) { p.Segments[1].Stripes[2] = append(p.Segments[1].Stripes[2], "e") }},
		{name: "fewer segments", change: func(p *projection.Projection) { p.Segments = p.Segments[1:] }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := threeSegments()
			tt.change(p)
			assert.Equal(t, tt.want, threeSegments().Equal(p))
			assert.Equal(t, tt.want, p.Equal(threeSegments()))
		})
	}
	var nilp *projection.Projection
	assert.True(t, nilp.Equal(nil))
	assert.False(t, nilp.Equal(threeSegments()))
	assert.False(t, threeSegments().Equal(nil))
	empty := &projection.Projection{Layout: []projection.NodeID{}, Segments: []projection.Segment{}}
	assert.True(t, empty.Equal(&projection.Projection{}), "nil and empty lists are equal")
}
