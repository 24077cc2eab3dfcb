package persist

import (
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"testing"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
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
// written), or, for a file of an older version, to a file of this version
// that decodes to the same state. The seed corpus
// (testdata/fuzz/FuzzDecode) holds a valid file of each kind, version 1
// files and damaged ones.
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
		seqState{incarnation: 1 << 40, hasMark: true, st: sequencer.State{Mark: 4096, Booted: 7}}.encode(),
		seqState{incarnation: 7}.encode(),
		layout, empty,
		layout[:len(layout)/2],
		version1(seqState{incarnation: 9, hasMark: true, st: sequencer.State{Mark: 300}}.encode()),
		version1(identity{node: "unit3"}.encode()),
		nil,
	} {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		older := len(b) > len(magic) && b[len(magic)] < Version
		if id, err := decodeIdentity(b); err == nil && !bytes.Equal(id.encode(), b) {
			if again, err := decodeIdentity(id.encode()); !older || err != nil || again != id {
				t.Fatalf("identity %q re-encodes differently", id.node)
			}
		}
		if s, err := decodeSeqState(b); err == nil && !bytes.Equal(s.encode(), b) {
			if again, err := decodeSeqState(s.encode()); !older || err != nil || again != s {
				t.Fatalf("sequencer state %+v re-encodes differently", s)
			}
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

// version1 returns a version 1 file of the same kind and body as b,
// whose body holds what version 1 holds (for a sequencer file, no
// bootstrap epoch: the last varint is dropped).
func version1(b []byte) []byte {
	body := bytes.Clone(b[headerBytes : len(b)-trailerBytes])
	if b[len(magic)+1] == kindSequencer && len(body) > 2 {
		body = body[:len(body)-1] // a Booted of zero takes one byte
	}
	out := encodeFile(b[len(magic)+1], body)
	out[len(magic)] = 1
	end := len(out) - trailerBytes
	binary.LittleEndian.PutUint32(out[end:], crc32.Checksum(out[:end], castagnoli))
	return out
}

func sameLayout(a, b layoutState) bool {
	return a.has == b.has && a.st.Promised == b.st.Promised && a.st.AcceptedRank == b.st.AcceptedRank &&
		a.st.Latest.Equal(b.st.Latest) && a.st.Accepted.Equal(b.st.Accepted)
}
