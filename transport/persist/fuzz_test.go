package persist

import (
	"bytes"
	"testing"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

// fuzzProjection is a small valid projection.
func fuzzProjection(epoch uint64) *projection.Projection {
	return &projection.Projection{Epoch: storage.Epoch(epoch), Sequencer: "seq", Layout: []projection.NodeID{"l0", "l1", "l2"},
		Segments: []projection.Segment{{Stripes: []projection.Chain{{"u0", "u1"}, {"u2", "u3"}}}}}
}

// FuzzDecode feeds arbitrary bytes to the three file decoders: none may
// panic, and whatever one accepts encodes back to the same bytes (so no
// two files mean one state, and no state is read other than it was
// written). The seed corpus (testdata/fuzz/FuzzDecode) holds a valid file
// of each kind and damaged ones.
func FuzzDecode(f *testing.F) {
	layout, err := layoutState{has: true, st: projection.AcceptorState{Latest: fuzzProjection(4), Promised: 9,
		AcceptedRank: 9, Accepted: fuzzProjection(5)}}.encode()
	if err != nil {
		f.Fatal(err)
	}
	empty, err := layoutState{}.encode()
	if err != nil {
		f.Fatal(err)
	}
	for _, b := range [][]byte{
		identity{node: "unit3"}.encode(),
		seqState{incarnation: 1 << 40, hasMark: true, mark: 4096}.encode(),
		seqState{incarnation: 7}.encode(),
		layout, empty,
		layout[:len(layout)/2],
		nil,
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if id, err := decodeIdentity(b); err == nil && !bytes.Equal(id.encode(), b) {
			t.Fatalf("identity %q re-encodes differently", id.node)
		}
		if s, err := decodeSeqState(b); err == nil && !bytes.Equal(s.encode(), b) {
			t.Fatalf("sequencer state %+v re-encodes differently", s)
		}
		if l, err := decodeLayoutState(b); err == nil {
			again, err := l.encode()
			if err != nil {
				t.Fatalf("a decoded layout state does not encode: %v", err)
			}
			if _, err := decodeLayoutState(again); err != nil {
				t.Fatalf("a decoded layout state re-encodes to a file that does not decode: %v", err)
			}
			if !bytes.Equal(again, b) {
				// NB: JSON has many spellings of one projection; what
				// must hold is that the state read is the state written.
				l2, _ := decodeLayoutState(again)
				if !sameLayout(l, l2) {
					t.Fatalf("layout state changes on re-encoding")
				}
			}
		}
	})
}

func sameLayout(a, b layoutState) bool {
	return a.has == b.has && a.st.Promised == b.st.Promised && a.st.AcceptedRank == b.st.AcceptedRank &&
		a.st.Latest.Equal(b.st.Latest) && a.st.Accepted.Equal(b.st.Accepted)
}
