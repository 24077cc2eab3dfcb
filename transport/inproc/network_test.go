package inproc_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/storagetest"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/inproc"
	"github.com/corfulog/corfu/transport/transporttest"
)

func TestConformance(t *testing.T) {
	transporttest.Run(t, func(t *testing.T, h transport.Handler) (transport.Caller, transport.NodeID) {
		n := inproc.New()
		n.Register("node", h)
		return n, "node"
	})
}

func TestUnitClient(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Unit {
		n := inproc.New()
		n.Register("unit", &transport.Server{Unit: storage.NewMemory()})
		return transport.UnitClient{Caller: n, Node: "unit"}
	})
}

func TestUnreachable(t *testing.T) {
	var n inproc.Network // the zero Network is ready to use
	ctx := context.Background()
	_, err := n.Call(ctx, "nobody", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrUnreachable)

	n.Register("a", &transport.Server{Unit: storage.NewMemory()})
	_, err = n.Call(ctx, "a", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, storage.ErrUnwritten)

	n.Remove("a")
	n.Remove("a")
	_, err = n.Call(ctx, "a", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrUnreachable)
}

func TestRegisterReplaces(t *testing.T) {
	n := inproc.New()
	ctx := context.Background()
	first := storage.NewMemory()
	n.Register("a", &transport.Server{Unit: first})
	_, err := n.Call(ctx, "a", &transport.Request{Op: transport.OpWrite, Data: []byte("x")})
	require.NoError(t, err)
	n.Register("a", &transport.Server{Unit: storage.NewMemory()})
	_, err = n.Call(ctx, "a", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, storage.ErrUnwritten, "the new handler serves")
}

func TestNilRequest(t *testing.T) {
	n := inproc.New()
	n.Register("a", &transport.Server{})
	_, err := n.Call(context.Background(), "a", nil)
	require.ErrorIs(t, err, transport.ErrMalformed)
}

// nilHandler breaks the Handler contract by answering nil.
type nilHandler struct{}

func (nilHandler) Handle(*transport.Request) *transport.Response { return nil }

func TestNilResponse(t *testing.T) {
	n := inproc.New()
	n.Register("a", nilHandler{})
	_, err := n.Call(context.Background(), "a", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrMalformed)
	u := transport.UnitClient{Caller: n, Node: "a"}
	_, err = u.Read(context.Background(), 0, 0)
	require.ErrorIs(t, err, transport.ErrMalformed)
}
