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
	got, err := transport.DecodeWriteBatch(transport.AppendWriteBatch(nil, items))
	require.NoError(t, err)
	require.Equal(t, items, got)

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
