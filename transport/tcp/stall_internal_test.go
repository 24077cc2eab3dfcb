package tcp

import (
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// slowHandler takes 4 ms for every request: longer than stallTimeout
// (and than the coarse timers' millisecond).
type slowHandler struct{}

func (slowHandler) Handle(req *transport.Request) *transport.Response {
	time.Sleep(4 * time.Millisecond)
	return &transport.Response{Addr: req.Addr}
}

// serveRaw serves h on a loopback port until the test ends and returns the
// server with a raw peer that has said hello to it.
func serveRaw(t *testing.T, h transport.Handler) (*Server, *rawPeer) {
	return serveRawWith(t, h, ServerConfig{Node: "node"})
}

// serveRawWith is serveRaw with cfg.
func serveRawWith(t *testing.T, h transport.Handler, cfg ServerConfig) (*Server, *rawPeer) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := Serve(l, h, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	p := dialRaw(t, l.Addr().String())
	p.hello()
	return srv, p
}

// answered reads n answers, each a success, and checks that they answer n
// different requests.
func (p *rawPeer) answered(n int) {
	p.t.Helper()
	seen := map[uint64]bool{}
	for range n {
		id, resp := p.response()
		require.NoError(p.t, resp.Err)
		seen[id] = true
	}
	require.Len(p.t, seen, n)
}

// handOvers returns how often srv's only connection handed its reading
// on.
func handOvers(t *testing.T, srv *Server) uint64 {
	t.Helper()
	srv.mu.Lock()
	defer srv.mu.Unlock()
	require.Len(t, srv.conns, 1)
	for cn := range srv.conns {
		cn.mu.Lock()
		defer cn.mu.Unlock()
		return cn.gen
	}
	return 0
}

// TestStallCheckPace checks that the stall check looks quickly only where
// requests queue behind the one served: a client that sends one request
// at a time gets its slow requests served with the check at its quiet
// pace (here an hour, so that no slowness of the machine can make it
// look), without hand-overs, while the same requests sent pipelined turn
// it quick, are handed over and all answered.
func TestStallCheckPace(t *testing.T) {
	srv, p := serveRawWith(t, slowHandler{}, ServerConfig{Node: "node", quietStall: time.Hour})

	const n = 20
	for i := range n {
		p.request(uint64(i+1), &transport.Request{Op: transport.OpRead, Addr: storage.Address(i)})
		id, resp := p.response()
		require.Equal(t, uint64(i+1), id)
		require.NoError(t, resp.Err)
	}
	require.Zero(t, handOvers(t, srv), "one request at a time: the check looks at its quiet pace")

	var burst []byte
	for i := range n {
		burst = appendFrame(burst, frameRequest, uint64(n+i+1), transport.AppendRequest(nil, &transport.Request{Op: transport.OpRead, Addr: storage.Address(i)}))
	}
	p.send(burst)
	p.answered(n)
	require.Positive(t, handOvers(t, srv), "pipelined: the check looks every %v and hands over", stallTimeout)
}
