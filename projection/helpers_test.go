package projection_test

import (
	"errors"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

// proj returns a projection of epoch with a fixed sequencer and layout.
func proj(epoch storage.Epoch, segs ...projection.Segment) *projection.Projection {
	return &projection.Projection{
		Epoch:     epoch,
		Sequencer: "seq",
		Layout:    []projection.NodeID{"l1", "l2", "l3"},
		Segments:  segs,
	}
}

// seg returns a segment; each stripe is given as its replicas.
func seg(start, end, base storage.Address, stripes ...[]projection.NodeID) projection.Segment {
	s := projection.Segment{Start: start, End: end, Base: base}
	for _, c := range stripes {
		s.Stripes = append(s.Stripes, projection.Chain(c))
	}
	return s
}

// chain is shorthand for a list of replicas.
func chain(nodes ...projection.NodeID) []projection.NodeID { return nodes }

// threeSegments is a valid projection of three segments with bases:
//
//	[0, 10)  stripes a | b       base 0  (a, b use locals [0, 5))
//	[10, 16) stripes a | b | c   base 5  (a uses [5, 7), b and c [5, 7))
//	[16, ∞)  stripes d | a       base 7
func threeSegments() *projection.Projection {
	return proj(5,
		seg(0, 10, 0, chain("a"), chain("b")),
		seg(10, 16, 5, chain("a"), chain("b"), chain("c")),
		seg(16, 0, 7, chain("d"), chain("a")),
	)
}

// errorsIs is errors.Is, named so that switch cases read well.
func errorsIs(err, target error) bool { return errors.Is(err, target) }
