package corfu

// The entry codec is unexported, so its fuzz target lives inside the
// package; entry_test.go checks corrupt entries from the outside, through
// Read.

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// testID is the identity of the sample entries.
var testID = entryID{writer: 0xc0ffee, seq: 7}

// sampleEntries are valid stored entries: the fuzzer's seeds.
func sampleEntries() map[string][]byte {
	tails := func(s sequencer.StreamID, addrs ...storage.Address) sequencer.StreamTail {
		return sequencer.StreamTail{Stream: s, Addrs: addrs}
	}
	full := make([]storage.Address, MaxBackpointers)
	for i := range full {
		full[i] = storage.MaxAddress - 1 - storage.Address(i)
	}
	return map[string][]byte{
		"empty":         encodeEntry(testID, nil, nil, 4, []byte{}),
		"plain":         encodeEntry(testID, nil, nil, 4, []byte("hello")),
		"one stream":    encodeEntry(testID, []StreamID{7}, []sequencer.StreamTail{tails(7, 5, 3, 1)}, 4, []byte("x")),
		"new stream":    encodeEntry(testID, []StreamID{7}, []sequencer.StreamTail{tails(7)}, 4, []byte("first")),
		"two streams":   encodeEntry(testID, []StreamID{1, 2}, []sequencer.StreamTail{tails(1, 9), tails(2, 8, 6)}, 2, []byte{0, 1, 2}),
		"truncated bps": encodeEntry(testID, []StreamID{3}, []sequencer.StreamTail{tails(3, 10, 9, 8, 7, 6)}, 2, []byte("k=2")),
		"big identity":  encodeEntry(entryID{^WriterID(0), ^uint64(0)}, nil, nil, 4, []byte("id")),
		"big values":    encodeEntry(testID, []StreamID{^StreamID(0)}, []sequencer.StreamTail{tails(^StreamID(0), full...)}, MaxBackpointers, []byte("top")),
	}
}

// FuzzDecodeEntry checks that decodeEntry never panics, fails only with
// ErrCorruptEntry, keeps within its bounds, does not alias its input, and
// that whatever it decodes round-trips through encodeEntry.
func FuzzDecodeEntry(f *testing.F) {
	for _, b := range sampleEntries() {
		f.Add(b)
	}
	f.Add([]byte{})
	f.Add([]byte{entryVersion})
	f.Add([]byte{entryVersion, 1, 7, 0xff})
	f.Add([]byte{entryVersion, 0x80})
	f.Add([]byte{entryVersion, 1, 2, 1, 7, 0xff})
	f.Add([]byte{1, 1, 7, 0, 'v', '1'}) // the old, identity-less version
	f.Fuzz(func(t *testing.T, b []byte) {
		in := bytes.Clone(b)
		e, err := decodeEntry(42, b)
		require.Equal(t, in, b, "the input is not modified")
		if err != nil {
			require.ErrorIs(t, err, ErrCorruptEntry)
			require.Zero(t, e.Address)
			return
		}
		require.Equal(t, storage.Address(42), e.Address)
		require.NotNil(t, e.Data)
		require.LessOrEqual(t, len(e.Streams), sequencer.MaxStreams)
		require.Len(t, e.Backpointers, len(e.Streams))
		tails := make([]sequencer.StreamTail, len(e.Streams))
		for i, s := range e.Streams {
			require.LessOrEqual(t, len(e.Backpointers[i]), MaxBackpointers)
			for _, a := range e.Backpointers[i] {
				require.Less(t, a, storage.MaxAddress)
			}
			tails[i] = sequencer.StreamTail{Stream: s, Addrs: e.Backpointers[i]}
		}
		if len(b) > 0 {
			b[len(b)-1] ^= 0xff // the entry does not alias b
			require.Equal(t, in[len(in)-len(e.Data):], e.Data)
		}

		b2 := encodeEntry(entryID{e.Writer, e.Seq}, e.Streams, tails, MaxBackpointers, e.Data)
		e2, err := decodeEntry(42, b2)
		require.NoError(t, err)
		require.Equal(t, e, e2)
		require.Equal(t, b2, encodeEntry(entryID{e2.Writer, e2.Seq}, e2.Streams, tails, MaxBackpointers, e2.Data), "encoding is deterministic")
	})
}

func TestEncodeEntryRoundTrip(t *testing.T) {
	for name, b := range sampleEntries() {
		t.Run(name, func(t *testing.T) {
			e, err := decodeEntry(1, b)
			require.NoError(t, err)
			require.LessOrEqual(t, len(b)-len(e.Data), maxEntryHeaderBytes)
		})
	}
	e, err := decodeEntry(1, sampleEntries()["truncated bps"])
	require.NoError(t, err)
	require.Equal(t, [][]storage.Address{{10, 9}}, e.Backpointers, "the newest k are kept")
}
