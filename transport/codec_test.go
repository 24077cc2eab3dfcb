package transport_test

import (
	"encoding/binary"
	"errors"
	"math"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

func TestRequestRoundTrip(t *testing.T) {
	for name, req := range sampleRequests() {
		t.Run(name, func(t *testing.T) {
			b := transport.AppendRequest(nil, req)
			got, err := transport.DecodeRequest(b)
			require.NoError(t, err)
			require.Equal(t, req, got)

			// Appending to a non-empty buffer leaves its prefix alone.
			b2 := transport.AppendRequest([]byte("prefix"), req)
			require.Equal(t, "prefix", string(b2[:6]))
			require.Equal(t, b, b2[6:])
		})
	}
}

func TestResponseRoundTrip(t *testing.T) {
	for name, resp := range sampleResponses() {
		t.Run(name, func(t *testing.T) {
			b := transport.AppendResponse(nil, resp)
			got, err := transport.DecodeResponse(b)
			require.NoError(t, err)
			assertSameError(t, resp.Err, got.Err)
			want := *resp
			want.Err = got.Err
			require.Equal(t, &want, got)
		})
	}
}

// sentinels lists every error the wire table must carry by code.
var sentinels = []error{
	storage.ErrWritten, storage.ErrUnwritten, storage.ErrTrimmed, storage.ErrJunk,
	storage.ErrSealed, storage.ErrFutureEpoch, storage.ErrTooLarge,
	storage.ErrInvalidAddress, storage.ErrNilData, storage.ErrBlank, storage.ErrNotBlank,
	sequencer.ErrNotReady, sequencer.ErrInvalid, sequencer.ErrRestarted,
	projection.ErrInvalid, projection.ErrNoSegment, projection.ErrStaleEpoch,
	projection.ErrRejected, projection.ErrConflict, projection.ErrEpochGap,
	transport.ErrWrongRole, transport.ErrUnreachable, transport.ErrMalformed, transport.ErrRemote,
	transport.ErrNotDurable,
}

// assertSameError checks that got, decoded from the wire, answers errors.Is
// for every sentinel as want does, and keeps want's message and epoch.
func assertSameError(t *testing.T, want, got error) {
	t.Helper()
	if want == nil {
		require.NoError(t, got)
		return
	}
	require.Error(t, got)
	assert.Equal(t, want.Error(), got.Error())
	matched := false
	for _, s := range sentinels {
		if s == transport.ErrRemote {
			continue
		}
		w := errors.Is(want, s)
		matched = matched || w
		assert.Equal(t, w, errors.Is(got, s), "errors.Is(%q, %q)", got, s)
	}
	assert.Equal(t, !matched || errors.Is(want, transport.ErrRemote), errors.Is(got, transport.ErrRemote),
		"errors.Is(%q, ErrRemote)", got)
	var ws, gs *storage.SealedError
	if assert.Equal(t, errors.As(want, &ws), errors.As(got, &gs)) && ws != nil {
		assert.Equal(t, ws.Epoch, gs.Epoch)
	}
}

func TestErrorRoundTrip(t *testing.T) {
	for _, s := range sentinels {
		t.Run(s.Error(), func(t *testing.T) {
			got := roundTripError(t, s)
			require.ErrorIs(t, got, s)
			assert.Same(t, s, got, "a bare sentinel decodes to itself")

			wrapped := roundTripError(t, errors.Join(errors.New("context"), s))
			require.ErrorIs(t, wrapped, s)
			if s != transport.ErrRemote {
				assert.NotErrorIs(t, wrapped, transport.ErrRemote)
			}
			assert.Equal(t, "context\n"+s.Error(), wrapped.Error())
		})
	}
	t.Run("sealed error", func(t *testing.T) {
		got := roundTripError(t, &storage.SealedError{Epoch: 1<<64 - 1})
		var se *storage.SealedError
		require.ErrorAs(t, got, &se)
		assert.Equal(t, storage.Epoch(1<<64-1), se.Epoch)
		assert.ErrorIs(t, got, storage.ErrSealed)
	})
	t.Run("unknown", func(t *testing.T) {
		got := roundTripError(t, errors.New("disk on fire"))
		require.ErrorIs(t, got, transport.ErrRemote)
		assert.Equal(t, "disk on fire", got.Error())
	})
	t.Run("long message", func(t *testing.T) {
		msg := make([]byte, 3*transport.MaxErrorBytes)
		for i := range msg {
			msg[i] = "aé"[i%3] // a mix of one- and two-byte runes
		}
		got := roundTripError(t, errors.New(string(msg)))
		require.ErrorIs(t, got, transport.ErrRemote)
		assert.LessOrEqual(t, len(got.Error()), transport.MaxErrorBytes)
		assert.Equal(t, string(msg[:len(got.Error())]), got.Error())
	})
}

func roundTripError(t *testing.T, err error) error {
	t.Helper()
	resp, derr := transport.DecodeResponse(transport.AppendResponse(nil, &transport.Response{Err: err}))
	require.NoError(t, derr)
	return resp.Err
}

func TestDecodeSharesNoMemory(t *testing.T) {
	req := sampleRequests()["every field"]
	b := transport.AppendRequest(nil, req)
	got, err := transport.DecodeRequest(b)
	require.NoError(t, err)
	for i := range b {
		b[i] ^= 0xff
	}
	require.Equal(t, req, got)

	resp := sampleResponses()["every field"]
	b = transport.AppendResponse(nil, resp)
	gotResp, err := transport.DecodeResponse(b)
	require.NoError(t, err)
	for i := range b {
		b[i] ^= 0xff
	}
	require.Equal(t, resp, gotResp)
}

// frame builds a message from raw parts: bytes are appended as is, ints as
// uvarints.
func frame(parts ...any) []byte {
	var b []byte
	for _, p := range parts {
		switch p := p.(type) {
		case byte:
			b = append(b, p)
		case []byte:
			b = append(b, p...)
		case string:
			b = append(b, p...)
		case int:
			b = binary.AppendUvarint(b, uint64(p))
		case uint64:
			b = binary.AppendUvarint(b, p)
		default:
			panic("frame: bad part")
		}
	}
	return b
}

// The fields of a request after the op: epoch, addr, data, n, rank,
// streams, tails, projection. Counts are written plus one (0 is nil).
var (
	reqHeader  = []byte{transport.Version, 'Q'}
	respHeader = []byte{transport.Version, 'R'}
	overflow   = []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02}
)

const unknownField = `{"epoch":1,"sequencer":"s","layout":["l"],"segments":[{"start":0,"base":0,"stripes":[["u"]]}],"lease":9}`

func TestDecodeRequestRejects(t *testing.T) {
	valid := transport.AppendRequest(nil, sampleRequests()["write"])
	big := make([]byte, transport.MaxFrameBytes+1)
	copy(big, valid)
	tests := []struct {
		name string
		in   []byte
		also error // a further sentinel the error must wrap
	}{
		{name: "nil", in: nil},
		{name: "zero length", in: []byte{}},
		{name: "truncated header", in: []byte{transport.Version}},
		{name: "header only", in: reqHeader},
		{name: "unknown version", in: append([]byte{transport.Version + 1}, valid[1:]...)},
		{name: "version zero", in: append([]byte{0}, valid[1:]...)},
		{name: "response kind", in: transport.AppendResponse(nil, &transport.Response{})},
		{name: "response of a write", in: transport.AppendResponse(nil, &transport.Response{Data: []byte("x")})},
		{name: "unknown kind", in: append([]byte{transport.Version, 'X'}, valid[2:]...)},
		{name: "op zero", in: frame(reqHeader, byte(0), valid[3:])},
		{name: "op 12", in: frame(reqHeader, byte(12), valid[3:])}, // the first unit op code free
		{name: "op 255", in: frame(reqHeader, byte(255), valid[3:])},
		{name: "trailing garbage", in: append(append([]byte{}, valid...), 0)},
		{name: "trailing frame", in: append(append([]byte{}, valid...), valid...)},
		{name: "frame above max", in: big},
		{name: "epoch varint overflow", in: frame(reqHeader, byte(transport.OpRead), overflow, 0, 0, 0, 0, 0, 0, 0)},
		{name: "epoch varint truncated", in: frame(reqHeader, byte(transport.OpRead), byte(0x80))},
		{name: "data length above frame", in: frame(reqHeader, byte(transport.OpWrite), 1, 1, transport.MaxFrameBytes+2, "abc")},
		{name: "data length 2^32-1", in: frame(reqHeader, byte(transport.OpWrite), 1, 1, uint64(math.MaxUint32), "abc")},
		{name: "data length 2^64-1", in: frame(reqHeader, byte(transport.OpWrite), 1, 1, uint64(math.MaxUint64), "abc")},
		{name: "data longer than input", in: frame(reqHeader, byte(transport.OpWrite), 1, 1, 100, "abc")},
		{name: "n above 32 bits", in: frame(reqHeader, byte(transport.OpToken), 1, 0, 0, uint64(1)<<32, 0, 0, 0, 0)},
		{name: "stream count 2^31", in: frame(reqHeader, byte(transport.OpToken), 1, 0, 0, 1, 0, uint64(1)<<31+1, 1, 2, 3, 0, 0), also: sequencer.ErrInvalid},
		{name: "stream count above max", in: frame(reqHeader, byte(transport.OpToken), 1, 0, 0, 1, 0, sequencer.MaxStreams+2, make([]byte, sequencer.MaxStreams+1), 0, 0), also: sequencer.ErrInvalid},
		{name: "stream count above input", in: frame(reqHeader, byte(transport.OpToken), 1, 0, 0, 1, 0, 10, 1, 2, 3)},
		{name: "tail count 2^31", in: frame(reqHeader, byte(transport.OpBootstrap), 1, 0, 0, 0, 0, 0, uint64(1)<<31+1, 1, 1, 0), also: sequencer.ErrInvalid},
		{name: "tail count above input", in: frame(reqHeader, byte(transport.OpBootstrap), 1, 0, 0, 0, 0, 0, 5, 1, 1, 0)},
		{name: "tail address count 2^31", in: frame(reqHeader, byte(transport.OpBootstrap), 1, 0, 0, 0, 0, 0, 2, 1, uint64(1)<<31+1, 1, 0), also: sequencer.ErrInvalid},
		{name: "tail address count above input", in: frame(reqHeader, byte(transport.OpBootstrap), 1, 0, 0, 0, 0, 0, 2, 1, 4, 1, 0)},
		{name: "projection longer than input", in: frame(reqHeader, byte(transport.OpCommit), 0, 0, 0, 0, 0, 0, 0, 100, "{}")},
		{name: "projection not json", in: frame(reqHeader, byte(transport.OpCommit), 0, 0, 0, 0, 0, 0, 0, 4, "{{{"), also: projection.ErrInvalid},
		{name: "projection empty", in: frame(reqHeader, byte(transport.OpCommit), 0, 0, 0, 0, 0, 0, 0, 1), also: projection.ErrInvalid},
		{name: "projection trailing json", in: frame(reqHeader, byte(transport.OpCommit), 0, 0, 0, 0, 0, 0, 0, 5, "{}{}"), also: projection.ErrInvalid},
		{name: "projection invalid", in: frame(reqHeader, byte(transport.OpCommit), 0, 0, 0, 0, 0, 0, 0, 3, "{}"), also: projection.ErrInvalid},
		{name: "projection unknown field", in: frame(reqHeader, byte(transport.OpCommit), 0, 0, 0, 0, 0, 0, 0, len(unknownField)+1, unknownField), also: projection.ErrInvalid},
		{name: "projection above max json", in: frame(reqHeader, byte(transport.OpCommit), 0, 0, 0, 0, 0, 0, 0, projection.MaxJSONBytes+2, make([]byte, projection.MaxJSONBytes+1)), also: projection.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := transport.DecodeRequest(tt.in)
			require.ErrorIs(t, err, transport.ErrMalformed)
			require.Nil(t, got)
			if tt.also != nil {
				require.ErrorIs(t, err, tt.also)
			}
		})
	}
}

func TestDecodeResponseRejects(t *testing.T) {
	valid := transport.AppendResponse(nil, sampleResponses()["read"])
	tests := []struct {
		name string
		in   []byte
	}{
		{name: "zero length", in: []byte{}},
		{name: "truncated header", in: []byte{transport.Version}},
		{name: "header only", in: respHeader},
		{name: "unknown version", in: append([]byte{transport.Version + 1}, valid[1:]...)},
		{name: "request kind", in: transport.AppendRequest(nil, &transport.Request{Op: transport.OpRead})},
		{name: "trailing garbage", in: append(append([]byte{}, valid...), 1, 2, 3)},
		{name: "error count above max", in: frame(respHeader, 33, 1)},
		{name: "error count 2^31", in: frame(respHeader, uint64(1)<<31, 1)},
		{name: "error codes repeat", in: frame(respHeader, 2, 1, 1, 0, 0, 0, 0, 0, 0, 0)},
		{name: "error codes descend", in: frame(respHeader, 2, 2, 1, 0, 0, 0, 0, 0, 0, 0)},
		{name: "error code overflow", in: frame(respHeader, 1, overflow, 0, 0, 0, 0, 0, 0, 0)},
		{name: "sealed flag 2", in: frame(respHeader, 1, 5, 2, 0, 0, 0, 0, 0, 0, 0)},
		{name: "sealed flag missing", in: frame(respHeader, 1, 5)},
		{name: "sealed epoch truncated", in: frame(respHeader, 1, 5, 1, byte(0x80))},
		{name: "message above max", in: frame(respHeader, 1, 1, transport.MaxErrorBytes+1, make([]byte, transport.MaxErrorBytes+1), 0, 0, 0, 0, 0, 0)},
		{name: "message longer than input", in: frame(respHeader, 1, 1, 10, "abc")},
		{name: "tail count 2^31", in: frame(respHeader, 0, 0, 0, 0, uint64(1)<<31+1, 1, 1, 0)},
		{name: "data 2^32-1", in: frame(respHeader, 0, 0, uint64(math.MaxUint32), "abc")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := transport.DecodeResponse(tt.in)
			require.ErrorIs(t, err, transport.ErrMalformed)
			require.Nil(t, got)
		})
	}
}

func TestDecodeResponseErrorForms(t *testing.T) {
	tests := []struct {
		name  string
		in    []byte
		is    []error
		msg   string
		epoch storage.Epoch // a *SealedError with this epoch, if not zero
	}{
		{name: "bare code", in: frame(respHeader, 1, 3, 0, 0, 0, 0, 0, 0), is: []error{storage.ErrTrimmed}, msg: storage.ErrTrimmed.Error()},
		{name: "code with message", in: frame(respHeader, 1, 3, 5, "trim!", 0, 0, 0, 0, 0), is: []error{storage.ErrTrimmed}, msg: "trim!"},
		{name: "unknown code", in: frame(respHeader, 1, 1000, 3, "new", 0, 0, 0, 0, 0), is: []error{transport.ErrRemote}, msg: "new"},
		{name: "unknown and known", in: frame(respHeader, 2, 2, 1000, 3, "new", 0, 0, 0, 0, 0), is: []error{storage.ErrUnwritten}, msg: "new"},
		{name: "two codes, no message", in: frame(respHeader, 2, 2, 3, 0, 0, 0, 0, 0, 0), is: []error{storage.ErrUnwritten, storage.ErrTrimmed},
			msg: storage.ErrUnwritten.Error() + "; " + storage.ErrTrimmed.Error()},
		{name: "sealed with epoch", in: frame(respHeader, 1, 5, 1, 12, 0, 0, 0, 0, 0, 0), is: []error{storage.ErrSealed}, msg: "storage: sealed at epoch 12", epoch: 12},
		{name: "bare sealed", in: frame(respHeader, 1, 5, 0, 0, 0, 0, 0, 0, 0), is: []error{storage.ErrSealed}, msg: storage.ErrSealed.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp, err := transport.DecodeResponse(tt.in)
			require.NoError(t, err)
			for _, s := range tt.is {
				assert.ErrorIs(t, resp.Err, s)
			}
			assert.Equal(t, tt.msg, resp.Err.Error())
			var se *storage.SealedError
			if tt.epoch != 0 {
				require.ErrorAs(t, resp.Err, &se)
				assert.Equal(t, tt.epoch, se.Epoch)
			} else {
				assert.False(t, errors.As(resp.Err, &se))
			}
		})
	}
}

// TestDecodeTruncated feeds every proper prefix of every valid frame to the
// decoders.
func TestDecodeTruncated(t *testing.T) {
	for name, req := range sampleRequests() {
		if name == "write max" || name == "write too big" {
			continue // too slow to try every prefix
		}
		b := transport.AppendRequest(nil, req)
		for i := range b {
			_, err := transport.DecodeRequest(b[:i])
			require.ErrorIs(t, err, transport.ErrMalformed, "%s: prefix of %d bytes", name, i)
		}
	}
	for name, resp := range sampleResponses() {
		b := transport.AppendResponse(nil, resp)
		for i := range b {
			_, err := transport.DecodeResponse(b[:i])
			require.ErrorIs(t, err, transport.ErrMalformed, "%s: prefix of %d bytes", name, i)
		}
	}
}

func TestOpString(t *testing.T) {
	assert.Equal(t, "write", transport.OpWrite.String())
	assert.Equal(t, "commit", transport.OpCommit.String())
	assert.Equal(t, "op(99)", transport.Op(99).String())
	assert.False(t, transport.Op(99).Valid())
	assert.True(t, transport.OpSeqSeal.Valid())
}

func BenchmarkCodecWrite(b *testing.B) {
	req := &transport.Request{Op: transport.OpWrite, Epoch: 7, Addr: 123456, Data: make([]byte, 4<<10)}
	buf := transport.AppendRequest(nil, req)
	b.SetBytes(int64(len(req.Data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = transport.AppendRequest(buf[:0], req)
		if _, err := transport.DecodeRequest(buf); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCodecReadResponse(b *testing.B) {
	resp := &transport.Response{Data: make([]byte, 4<<10)}
	buf := transport.AppendResponse(nil, resp)
	b.SetBytes(int64(len(resp.Data)))
	b.ReportAllocs()
	for b.Loop() {
		buf = transport.AppendResponse(buf[:0], resp)
		if _, err := transport.DecodeResponse(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCodecSmall encodes and decodes a small request and its answer,
// as a read of a short entry carries them.
func BenchmarkCodecSmall(b *testing.B) {
	req := &transport.Request{Op: transport.OpRead, Epoch: 3, Addr: 7}
	resp := &transport.Response{Addr: 7}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = transport.AppendRequest(buf[:0], req)
		if _, err := transport.DecodeRequest(buf); err != nil {
			b.Fatal(err)
		}
		buf = transport.AppendResponse(buf[:0], resp)
		if _, err := transport.DecodeResponse(buf); err != nil {
			b.Fatal(err)
		}
	}
}

// TestProjectionDecodedTwice decodes one layout answer twice: the second
// (served by the codec's cache of parsed projections) equals the first, and
// neither shares memory with the other, so a caller that edits its copy
// cannot change what the next decoder returns.
func TestProjectionDecodedTwice(t *testing.T) {
	for _, p := range []*projection.Projection{
		sampleProjection(9),
		{Epoch: 4, Sequencer: "s", Layout: []transport.NodeID{"l"}, Segments: []projection.Segment{{Stripes: []projection.Chain{{"u"}}}}, Resets: []projection.Reset{{Epoch: 2, Tail: 8}}},
	} {
		buf := transport.AppendResponse(nil, &transport.Response{Projection: p})
		first, err := transport.DecodeResponse(buf)
		require.NoError(t, err)
		require.Equal(t, p, first.Projection)
		if len(first.Projection.Resets) > 0 {
			first.Projection.Resets[0].Tail++
		}

		first.Projection.Epoch++
		first.Projection.Layout[0] = "edited"
		first.Projection.Segments[0].Stripes[0][0] = "edited"
		second, err := transport.DecodeResponse(buf)
		require.NoError(t, err)
		require.Equal(t, p, second.Projection, "an edit to the first copy reached the second")
		require.NotSame(t, first.Projection, second.Projection)
	}

	// A frame whose projection fails to parse fails every time.
	bad := transport.AppendResponse(nil, &transport.Response{Projection: &projection.Projection{Epoch: 1}})
	for range 2 {
		_, err := transport.DecodeResponse(bad)
		require.ErrorIs(t, err, projection.ErrInvalid)
	}
}

// BenchmarkCodecLayoutResponse encodes and decodes the answer to a layout
// probe: a projection of two segments, carried as JSON.
func BenchmarkCodecLayoutResponse(b *testing.B) {
	resp := &transport.Response{Projection: sampleProjection(7)}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		buf = transport.AppendResponse(buf[:0], resp)
		if _, err := transport.DecodeResponse(buf); err != nil {
			b.Fatal(err)
		}
	}
}
