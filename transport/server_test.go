package transport_test

import (
	"context"
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

func fullServer() *transport.Server {
	return &transport.Server{
		Unit:      storage.NewMemory(),
		Sequencer: sequencer.New(sequencer.Config{}),
		Layout:    projection.NewAcceptor(sampleProjection(0)),
	}
}

func TestServerHandleBadRequests(t *testing.T) {
	tests := []struct {
		name string
		srv  *transport.Server
		req  *transport.Request
		want error
	}{
		{name: "nil request", srv: fullServer(), req: nil, want: transport.ErrMalformed},
		{name: "op zero", srv: fullServer(), req: &transport.Request{}, want: transport.ErrMalformed},
		{name: "op 200", srv: fullServer(), req: &transport.Request{Op: 200}, want: transport.ErrMalformed},
		{name: "write to an empty node", srv: &transport.Server{}, req: &transport.Request{Op: transport.OpWrite}, want: transport.ErrWrongRole},
		{name: "token to a unit", srv: &transport.Server{Unit: storage.NewMemory()}, req: &transport.Request{Op: transport.OpToken, N: 1}, want: transport.ErrWrongRole},
		{name: "commit to a sequencer", srv: &transport.Server{Sequencer: sequencer.New(sequencer.Config{})}, req: &transport.Request{Op: transport.OpCommit}, want: transport.ErrWrongRole},
		{name: "propose without projection", srv: fullServer(), req: &transport.Request{Op: transport.OpPropose, Epoch: 1, Rank: 1}, want: projection.ErrInvalid},
		{name: "commit without projection", srv: fullServer(), req: &transport.Request{Op: transport.OpCommit}, want: projection.ErrInvalid},
		{name: "write nil data", srv: fullServer(), req: &transport.Request{Op: transport.OpWrite}, want: storage.ErrNilData},
		{name: "join to an empty node", srv: &transport.Server{}, req: &transport.Request{Op: transport.OpJoin}, want: transport.ErrWrongRole},
		{name: "join to a unit that cannot rejoin", srv: &transport.Server{Unit: plainUnit{storage.NewMemory()}}, req: &transport.Request{Op: transport.OpJoin}, want: transport.ErrWrongRole},
		{name: "join to a unit not blank", srv: fullServer(), req: &transport.Request{Op: transport.OpJoin}, want: storage.ErrNotBlank},
		{name: "token huge batch", srv: fullServer(), req: &transport.Request{Op: transport.OpToken, N: math.MaxUint32}, want: sequencer.ErrNotReady},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			resp := tt.srv.Handle(tt.req)
			require.NotNil(t, resp)
			require.ErrorIs(t, resp.Err, tt.want)
		})
	}
}

// plainUnit hides every method of its unit but the storage.Unit ones.
type plainUnit struct{ storage.Unit }

// serverCaller delivers each request to a Server through the codec, as a
// network would.
type serverCaller struct{ srv *transport.Server }

func (c serverCaller) Call(_ context.Context, _ transport.NodeID, req *transport.Request) (*transport.Response, error) {
	dec, err := transport.DecodeRequest(transport.AppendRequest(nil, req))
	if err != nil {
		return nil, err
	}
	resp, err := transport.DecodeResponse(transport.AppendResponse(nil, c.srv.Handle(dec)))
	if err != nil {
		return nil, err
	}
	return resp, resp.Err
}

// TestUnitClientJoin drives a blank unit over the wire: it refuses a seal
// and every request with ErrBlank, joins at the sealed epoch, then serves.
func TestUnitClientJoin(t *testing.T) {
	ctx := context.Background()
	u := transport.UnitClient{Caller: serverCaller{&transport.Server{Unit: storage.NewBlank()}}, Node: "unit0"}
	_, err := u.Seal(ctx, 3)
	require.ErrorIs(t, err, storage.ErrBlank)
	_, err = u.Read(ctx, 3, 0)
	require.ErrorIs(t, err, storage.ErrBlank)
	require.ErrorIs(t, u.Join(ctx, 2), storage.ErrSealed)
	require.NoError(t, u.Join(ctx, 3))
	require.NoError(t, u.Join(ctx, 3), "a retried join succeeds")
	_, err = u.Read(ctx, 3, 0)
	require.ErrorIs(t, err, storage.ErrUnwritten)
	require.NoError(t, u.Write(ctx, 3, 0, []byte("x")))
	require.ErrorIs(t, u.Join(ctx, 4), storage.ErrNotBlank)
}

// TestServerHandleDecoded feeds the server every request the samples and
// the codec's table tests make, to check that nothing a decoder returns can
// make it panic.
func TestServerHandleDecoded(t *testing.T) {
	srv := fullServer()
	require.NoError(t, srv.Sequencer.Bootstrap(0, 0, nil))
	for name, req := range sampleRequests() {
		dec, err := transport.DecodeRequest(transport.AppendRequest(nil, req))
		require.NoError(t, err)
		resp := srv.Handle(dec)
		require.NotNil(t, resp, name)
	}
}

// fakeCaller answers every call with resp and err and counts the calls.
type fakeCaller struct {
	resp  *transport.Response
	err   error
	calls int
}

func (f *fakeCaller) Call(context.Context, transport.NodeID, *transport.Request) (*transport.Response, error) {
	f.calls++
	return f.resp, f.err
}

func TestStubsCheckBeforeSending(t *testing.T) {
	ctx := context.Background()
	f := &fakeCaller{resp: &transport.Response{}}
	u := transport.UnitClient{Caller: f, Node: "u"}
	sc := transport.SequencerClient{Caller: f, Node: "s"}
	lc := transport.LayoutClient{Caller: f, Node: "l"}
	tooManyAddrs := []sequencer.StreamTail{{Stream: 1, Addrs: make([]storage.Address, transport.MaxTailAddrs+1)}}
	invalid := sampleProjection(1)
	invalid.Segments = nil
	tests := []struct {
		name string
		err  error
		want error
	}{
		{name: "write above frame", err: u.Write(ctx, 0, 0, make([]byte, transport.MaxFrameBytes)), want: storage.ErrTooLarge},
		{name: "negative batch", err: second(sc.Next(ctx, 0, -1, nil)), want: sequencer.ErrInvalid},
		{name: "batch above 32 bits", err: second(sc.Next(ctx, 0, math.MaxUint32+1, nil)), want: sequencer.ErrInvalid},
		{name: "too many streams", err: second(sc.Next(ctx, 0, 1, make([]sequencer.StreamID, sequencer.MaxStreams+1))), want: sequencer.ErrInvalid},
		{name: "too many tails", err: sc.Bootstrap(ctx, 0, 0, 0, make([]sequencer.StreamTail, transport.MaxTails+1)), want: sequencer.ErrInvalid},
		{name: "too many tail addresses", err: sc.Bootstrap(ctx, 0, 0, 0, tooManyAddrs), want: sequencer.ErrInvalid},
		{name: "propose nil", err: lc.Propose(ctx, 1, 1, nil), want: projection.ErrInvalid},
		{name: "propose invalid", err: lc.Propose(ctx, 1, 1, invalid), want: projection.ErrInvalid},
		{name: "commit nil", err: lc.Commit(ctx, nil), want: projection.ErrInvalid},
		{name: "commit invalid", err: lc.Commit(ctx, invalid), want: projection.ErrInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			require.ErrorIs(t, tt.err, tt.want)
			assert.NotErrorIs(t, tt.err, transport.ErrMalformed)
		})
	}
	require.Zero(t, f.calls, "nothing was sent")
}

func second[T any](_ T, err error) error { return err }

func TestStubsBadAnswers(t *testing.T) {
	ctx := context.Background()
	t.Run("no response", func(t *testing.T) {
		f := &fakeCaller{}
		_, err := transport.UnitClient{Caller: f, Node: "u"}.Read(ctx, 0, 0)
		require.ErrorIs(t, err, transport.ErrMalformed)
	})
	t.Run("error only in the response", func(t *testing.T) {
		f := &fakeCaller{resp: &transport.Response{Err: storage.ErrTrimmed, Data: []byte("x")}}
		data, err := transport.UnitClient{Caller: f, Node: "u"}.Read(ctx, 0, 0)
		require.ErrorIs(t, err, storage.ErrTrimmed)
		require.Nil(t, data)
	})
	t.Run("transport error", func(t *testing.T) {
		f := &fakeCaller{err: transport.ErrUnreachable}
		res, err := transport.SequencerClient{Caller: f, Node: "s"}.Seal(ctx, 1)
		tail := res.Tail
		require.ErrorIs(t, err, transport.ErrUnreachable)
		require.Zero(t, tail)
	})
	t.Run("layout without projection", func(t *testing.T) {
		f := &fakeCaller{resp: &transport.Response{}}
		p, err := transport.LayoutClient{Caller: f, Node: "l"}.Get(ctx)
		require.ErrorIs(t, err, transport.ErrMalformed)
		require.Nil(t, p)
	})
	t.Run("remote error keeps its text", func(t *testing.T) {
		f := &fakeCaller{resp: &transport.Response{Err: errors.New("x")}}
		err := transport.UnitClient{Caller: f, Node: "u"}.Fill(ctx, 0, 0)
		require.EqualError(t, err, "x")
	})
}
