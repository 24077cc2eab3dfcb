package transport_test

import (
	"context"
	"errors"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

func TestWriteBatchRoundTrip(t *testing.T) {
	items := []storage.WriteItem{{Addr: 3, Data: []byte("a")}, {Addr: 1 << 40, Data: []byte{}}, {Addr: 0, Data: make([]byte, 300)}}
	body := transport.AppendWriteBatch(nil, items)
	got, err := transport.DecodeWriteBatch(body)
	require.NoError(t, err)
	require.Equal(t, items, got)
	// The items' data are slices of the body, each capped at its own
	// length: an append to one leaves the next as it was.
	got[0].Data = append(got[0].Data, "bc"...)
	require.Equal(t, []byte{}, got[1].Data)
	require.Equal(t, make([]byte, 300), got[2].Data)
	got[2].Data[0] = 9
	require.Equal(t, byte(9), body[len(body)-300], "the last item's data is not the body's last bytes")

	// A request decoded from a frame owns its Data, so the items decoded
	// from it share nothing with the frame.
	frame := transport.AppendRequest(nil, &transport.Request{Op: transport.OpWriteBatch, N: 3, Data: transport.AppendWriteBatch(nil, items)})
	req, err := transport.DecodeRequest(frame)
	require.NoError(t, err)
	fromReq, err := transport.DecodeWriteBatch(req.Data)
	require.NoError(t, err)
	clear(frame)
	require.Equal(t, items, fromReq)

	errs := []error{nil, storage.ErrWritten, &storage.SealedError{Epoch: 7}}
	back, err := transport.DecodeBatchErrors(transport.AppendBatchErrors(nil, errs))
	require.NoError(t, err)
	require.Len(t, back, 3)
	require.NoError(t, back[0])
	require.ErrorIs(t, back[1], storage.ErrWritten)
	var sealed *storage.SealedError
	require.ErrorAs(t, back[2], &sealed)
	require.Equal(t, storage.Epoch(7), sealed.Epoch)
}

func TestDecodeWriteBatchRejects(t *testing.T) {
	good := transport.AppendWriteBatch(nil, []storage.WriteItem{{Addr: 1, Data: []byte("xy")}})
	for name, b := range map[string][]byte{
		"empty":     nil,
		"zero":      {0},
		"too many":  append([]byte{0x81, 0x40}, make([]byte, 1<<14)...), // 8193 items
		"short":     good[:len(good)-1],
		"trailing":  append(append([]byte{}, good...), 0),
		"nil data":  {1, 1, 0},
		"count big": {100, 1, 2, 'x'},
	} {
		_, err := transport.DecodeWriteBatch(b)
		require.ErrorIs(t, err, transport.ErrMalformed, name)
	}
	_, err := transport.DecodeBatchErrors([]byte{5, 0})
	require.ErrorIs(t, err, transport.ErrMalformed)
}

// A server applies each item of a batch as a Write would, item by item.
func TestServerWriteBatch(t *testing.T) {
	unit := storage.NewMemory()
	srv := &transport.Server{Unit: unit}
	u := transport.UnitClient{Caller: handlerCaller{srv}, Node: "u"}
	ctx := context.Background()
	require.NoError(t, unit.Write(ctx, 0, 2, []byte("old")))
	errs, err := u.WriteBatch(ctx, 0, []storage.WriteItem{{Addr: 1, Data: []byte("one")}, {Addr: 2, Data: []byte("two")}, {Addr: 3, Data: []byte("three")}})
	require.NoError(t, err)
	require.NoError(t, errs[0])
	require.ErrorIs(t, errs[1], storage.ErrWritten)
	require.NoError(t, errs[2])
	got, err := unit.Read(ctx, 0, 2)
	require.NoError(t, err)
	require.Equal(t, "old", string(got))

	_, err = unit.Seal(ctx, 4)
	require.NoError(t, err)
	errs, err = u.WriteBatch(ctx, 3, []storage.WriteItem{{Addr: 9, Data: []byte("x")}, {Addr: 10, Data: []byte("y")}})
	require.NoError(t, err)
	for _, e := range errs {
		require.ErrorIs(t, e, storage.ErrSealed)
	}

	_, err = u.WriteBatch(ctx, 4, make([]storage.WriteItem, transport.MaxBatchItems+1))
	require.ErrorIs(t, err, storage.ErrTooLarge)

	resp := (&transport.Server{}).Handle(&transport.Request{Op: transport.OpWriteBatch})
	require.ErrorIs(t, resp.Err, transport.ErrWrongRole)
	resp = srv.Handle(&transport.Request{Op: transport.OpWriteBatch, Epoch: 4, Data: []byte{9}})
	require.ErrorIs(t, resp.Err, transport.ErrMalformed)
}

// One encoded batch goes to every replica of a chain: each unit answers
// for every item of it.
func TestWriteEncodedToEveryReplica(t *testing.T) {
	ctx := context.Background()
	items := []storage.WriteItem{{Addr: 0, Data: []byte("a")}, {Addr: 1, Data: []byte("a")}}
	b, err := transport.EncodeWriteBatch(items)
	require.NoError(t, err)
	head, tail := storage.NewMemory(), storage.NewMemory()
	require.NoError(t, tail.Write(ctx, 0, 1, []byte("z")))
	for _, unit := range []*storage.Memory{head, tail} {
		u := transport.UnitClient{Caller: handlerCaller{&transport.Server{Unit: unit}}, Node: "u"}
		errs, err := u.WriteEncoded(ctx, 0, b)
		require.NoError(t, err)
		require.Len(t, errs, 2)
		require.NoError(t, errs[0])
		if unit == tail {
			require.ErrorIs(t, errs[1], storage.ErrWritten)
		} else {
			require.NoError(t, errs[1])
		}
	}
	for _, unit := range []*storage.Memory{head, tail} {
		got, err := unit.Read(ctx, 0, 0)
		require.NoError(t, err)
		require.Equal(t, "a", string(got))
	}
	_, err = transport.EncodeWriteBatch([]storage.WriteItem{{Addr: 0, Data: make([]byte, transport.MaxFrameBytes)}})
	require.ErrorIs(t, err, storage.ErrTooLarge)
}

// handlerCaller calls a Handler directly, through the codec.
type handlerCaller struct{ h transport.Handler }

func (c handlerCaller) Call(_ context.Context, _ transport.NodeID, req *transport.Request) (*transport.Response, error) {
	r, err := transport.DecodeRequest(transport.AppendRequest(nil, req))
	if err != nil {
		return nil, err
	}
	resp, err := transport.DecodeResponse(transport.AppendResponse(nil, c.h.Handle(r)))
	if err != nil {
		return nil, err
	}
	if resp.Err != nil {
		return nil, resp.Err
	}
	return resp, nil
}

// FuzzDecodeWriteBatch checks that DecodeWriteBatch never panics, fails
// only with ErrMalformed, and that whatever it decodes round-trips.
func FuzzDecodeWriteBatch(f *testing.F) {
	f.Add(transport.AppendWriteBatch(nil, []storage.WriteItem{{Addr: 1, Data: []byte("a")}, {Addr: 2, Data: []byte{}}}))
	f.Add([]byte{0})
	f.Add([]byte{1, 1, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		items, err := transport.DecodeWriteBatch(b)
		if err != nil {
			require.ErrorIs(t, err, transport.ErrMalformed)
			return
		}
		b2 := transport.AppendWriteBatch(nil, items)
		items2, err := transport.DecodeWriteBatch(b2)
		require.NoError(t, err)
		require.Equal(t, items, items2)
	})
}

// FuzzDecodeBatchErrors checks that DecodeBatchErrors never panics and
// fails only with ErrMalformed.
func FuzzDecodeBatchErrors(f *testing.F) {
	f.Add(transport.AppendBatchErrors(nil, []error{nil, storage.ErrWritten, &storage.SealedError{Epoch: 3}, errors.New("x")}))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		errs, err := transport.DecodeBatchErrors(b)
		if err != nil {
			require.ErrorIs(t, err, transport.ErrMalformed)
			return
		}
		again, err := transport.DecodeBatchErrors(transport.AppendBatchErrors(nil, errs))
		require.NoError(t, err)
		require.Len(t, again, len(errs))
	})
}

func TestReadBatch(t *testing.T) {
	unit := storage.NewMemory()
	srv := &transport.Server{Unit: unit}
	u := transport.UnitClient{Caller: handlerCaller{srv}, Node: "u"}
	ctx := context.Background()
	require.NoError(t, unit.Write(ctx, 0, 1, []byte("one")))
	require.NoError(t, unit.Write(ctx, 0, 2, []byte{}))
	require.NoError(t, unit.Fill(ctx, 0, 3))
	rs, err := u.ReadBatch(ctx, 0, []storage.Address{1, 2, 3, 4, storage.MaxAddress})
	require.NoError(t, err)
	require.Len(t, rs, 5)
	require.NoError(t, rs[0].Err)
	require.Equal(t, "one", string(rs[0].Data))
	require.NoError(t, rs[1].Err)
	require.NotNil(t, rs[1].Data, "an empty entry is not nil")
	require.ErrorIs(t, rs[2].Err, storage.ErrJunk)
	require.ErrorIs(t, rs[3].Err, storage.ErrUnwritten)
	require.ErrorIs(t, rs[4].Err, storage.ErrInvalidAddress)

	_, err = unit.Seal(ctx, 2)
	require.NoError(t, err)
	rs, err = u.ReadBatch(ctx, 1, []storage.Address{1})
	require.NoError(t, err)
	require.ErrorIs(t, rs[0].Err, storage.ErrSealed)
	require.Nil(t, rs[0].Data)

	for name, b := range map[string][]byte{"empty": nil, "zero": {0}, "short": {3, 1}, "trailing": {1, 1, 1}} {
		_, err := transport.DecodeReadBatch(b)
		require.ErrorIs(t, err, transport.ErrMalformed, name)
	}
}

// A batched read whose answer would overflow a frame answers the rest
// with ErrReadBatchFull.
func TestReadBatchFull(t *testing.T) {
	unit := storage.NewMemory()
	srv := &transport.Server{Unit: unit}
	ctx := context.Background()
	big := make([]byte, storage.MaxEntryBytes)
	var addrs []storage.Address
	for a := range storage.Address(4) {
		require.NoError(t, unit.Write(ctx, 0, a, big))
		addrs = append(addrs, a)
	}
	rs, err := transport.UnitClient{Caller: handlerCaller{srv}, Node: "u"}.ReadBatch(ctx, 0, addrs)
	require.NoError(t, err)
	require.NoError(t, rs[0].Err)
	require.NoError(t, rs[1].Err)
	require.NoError(t, rs[2].Err)
	require.ErrorIs(t, rs[3].Err, transport.ErrReadBatchFull)
}

// FuzzDecodeReadResults checks that DecodeReadResults never panics, fails
// only with ErrMalformed, and round-trips what it decodes.
func FuzzDecodeReadResults(f *testing.F) {
	f.Add(transport.AppendReadResults(nil, []transport.ReadResult{{Data: []byte("x")}, {Err: storage.ErrJunk}}))
	f.Add(transport.AppendReadBatch(nil, []storage.Address{1, 2, 3}))
	f.Fuzz(func(t *testing.T, b []byte) {
		rs, err := transport.DecodeReadResults(b)
		if err != nil {
			require.ErrorIs(t, err, transport.ErrMalformed)
		} else {
			again, err := transport.DecodeReadResults(transport.AppendReadResults(nil, rs))
			require.NoError(t, err)
			require.Len(t, again, len(rs))
		}
		addrs, err := transport.DecodeReadBatch(b)
		if err != nil {
			require.ErrorIs(t, err, transport.ErrMalformed)
			return
		}
		again, err := transport.DecodeReadBatch(transport.AppendReadBatch(nil, addrs))
		require.NoError(t, err)
		require.Equal(t, addrs, again)
	})
}

// BenchmarkWriteBatchCodec encodes and decodes the body of a write batch of
// 64 entries of 128 bytes, as AppendAsync sends one to each unit of a
// chain.
func BenchmarkWriteBatchCodec(b *testing.B) {
	items := make([]storage.WriteItem, 64)
	for i := range items {
		items[i] = storage.WriteItem{Addr: storage.Address(1000 + i), Data: make([]byte, 128)}
	}
	b.ReportAllocs()
	for b.Loop() {
		body := transport.AppendWriteBatch(nil, items)
		if _, err := transport.DecodeWriteBatch(body); err != nil {
			b.Fatal(err)
		}
	}
}
