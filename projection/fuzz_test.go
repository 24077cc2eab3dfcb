package projection_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

// shapeReader hands out the bytes of a fuzz input, then zeros.
type shapeReader []byte

func (r *shapeReader) next() int {
	if len(*r) == 0 {
		return 0
	}
	b := (*r)[0]
	*r = (*r)[1:]
	return int(b)
}

// buildProjection turns fuzz input into a projection: one to four segments
// from start, each of one to four stripes of one to three replicas drawn from
// eight nodes, and closed segments of one to 64 addresses. A segment's base
// is usually just above (or a little past) every local address its nodes
// used before, and then safe stays true; but now and then it is an arbitrary
// small number, which Validate may or may not accept.
func buildProjection(start uint64, shape []byte) (p *projection.Projection, safe bool) {
	r := shapeReader(shape)
	nodes := []projection.NodeID{"n0", "n1", "n2", "n3", "n4", "n5", "n6", "n7"}
	p = &projection.Projection{Epoch: 1, Sequencer: "seq", Layout: []projection.NodeID{"l"}}
	safe = true
	ends := map[projection.NodeID]storage.Address{}
	at := storage.Address(start % uint64(storage.MaxAddress))
	nseg := r.next()%4 + 1
	for i := range nseg {
		k := r.next()%4 + 1
		s := projection.Segment{Start: at}
		if i < nseg-1 {
			s.End = at + storage.Address(r.next()%64+1)
		}
		first := r.next() // rotation of the node list
		step := r.next()%3 + 1
		used := 0
		for range k {
			var c projection.Chain
			for range step {
				if used < len(nodes) {
					c = append(c, nodes[(first+used)%len(nodes)])
					used++
				}
			}
			if len(c) == 0 {
				break
			}
			s.Stripes = append(s.Stripes, c)
		}
		for _, c := range s.Stripes {
			for _, n := range c {
				s.Base = max(s.Base, ends[n])
			}
		}
		s.Base += storage.Address(r.next() % 4)
		if mode := r.next(); mode%4 == 3 {
			s.Base = storage.Address(mode % 32)
			safe = false
		}
		if s.End != 0 {
			k := storage.Address(len(s.Stripes))
			for j, c := range s.Stripes {
				if first := s.Start + storage.Address(j); first < s.End {
					for _, n := range c {
						ends[n] = max(ends[n], s.Base+(s.End-first-1)/k+1)
					}
				}
			}
		}
		p.Segments = append(p.Segments, s)
		at = s.End
	}
	return p, safe
}

type place struct {
	node  projection.NodeID
	local storage.Address
}

// FuzzLocateOneToOne checks on projections built from fuzz input that
// whenever Validate accepts one, Locate sends distinct global addresses to
// distinct (node, local address) places, Global inverts it, and LocalFloor
// agrees with it.
func FuzzLocateOneToOne(f *testing.F) {
	f.Add(uint64(0), []byte{})
	f.Add(uint64(0), []byte{3, 1, 10, 0, 1, 0, 2, 7, 3, 2, 1, 3, 0, 63, 5, 2, 1})
	f.Add(uint64(1000), []byte{2, 3, 5, 1, 0, 0, 0, 0, 0, 0})
	f.Add(uint64(storage.MaxAddress-100), []byte{1, 3, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, start uint64, shape []byte) {
		p, safe := buildProjection(start, shape)
		err := p.Validate()
		first := p.Segments[0].Start
		open := p.Segments[len(p.Segments)-1].Start
		if safe && first < 1<<62 {
			// Far from MaxAddress the builder's safe bases are valid.
			require.NoError(t, err, "%+v", p)
		}
		if err != nil {
			require.ErrorIs(t, err, projection.ErrInvalid)
			return
		}
		if first > 0 {
			_, err := p.Locate(first - 1)
			require.ErrorIs(t, err, projection.ErrNoSegment)
		}
		end := min(open+64, storage.MaxAddress)
		seen := map[place]storage.Address{}
		for a := first; a < end; a++ {
			loc, err := p.Locate(a)
			require.NoError(t, err, "address %d", a)
			s := p.Segments[loc.Segment]
			require.LessOrEqual(t, s.Start, a)
			require.True(t, s.End == 0 || a < s.End)
			require.Equal(t, s.Stripes[loc.Stripe], loc.Chain)
			for _, n := range loc.Chain {
				pl := place{n, loc.Local}
				if b, ok := seen[pl]; ok {
					t.Fatalf("addresses %d and %d both at %s local %d in %+v", b, a, n, loc.Local, p)
				}
				seen[pl] = a
			}
			g, err := p.Global(loc.Segment, loc.Stripe, loc.Local)
			require.NoError(t, err)
			require.Equal(t, a, g)
			require.Equal(t, loc.Local, s.LocalFloor(loc.Stripe, a), "address %d", a)
			require.Equal(t, loc.Local+1, s.LocalFloor(loc.Stripe, a+1), "address %d", a)
		}
		if end < storage.MaxAddress {
			return
		}
		_, err = p.Locate(storage.MaxAddress)
		require.ErrorIs(t, err, projection.ErrNoSegment, fmt.Sprint(p))
	})
}
