package tcp

import (
	"context"
	"net"
	"os"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// holdAll holds every request until release is closed, counting them.
type holdAll struct {
	n       atomic.Int32
	release chan struct{}
}

func (h *holdAll) Handle(req *transport.Request) *transport.Response {
	h.n.Add(1)
	<-h.release
	return &transport.Response{Addr: req.Addr}
}

// limitRequest is the i-th request TestServerLimits sends; each frame
// takes limitFrameBytes.
func limitRequest(i int) *transport.Request {
	return &transport.Request{Op: transport.OpWrite, Addr: storage.Address(i), Data: make([]byte, 20)}
}

var limitFrameBytes = headerBytes + len(transport.AppendRequest(nil, limitRequest(0)))

// TestServerLimits checks that a server reads no more from a connection
// than its in-flight limits allow, whatever the peer sends, and serves the
// rest once answers go out.
func TestServerLimits(t *testing.T) {
	for _, tt := range []struct {
		name   string
		tune   func(*ServerConfig)
		served int32 // requests served before any answer
	}{
		{"requests", func(c *ServerConfig) { c.MaxInFlight = 2 }, 2},
		{"bytes", func(c *ServerConfig) { c.MaxInFlightBytes = 3 * limitFrameBytes }, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := &holdAll{release: make(chan struct{})}
			cfg := ServerConfig{Node: "node"}
			tt.tune(&cfg)
			l, err := net.Listen("tcp", "127.0.0.1:0")
			require.NoError(t, err)
			srv, err := Serve(l, h, cfg)
			require.NoError(t, err)
			released := false
			defer func() {
				if !released {
					close(h.release)
				}
				require.NoError(t, srv.Close())
			}()
			p := dialRaw(t, l.Addr().String())
			p.hello()
			const sent = 6
			for i := range sent {
				p.request(uint64(i+1), limitRequest(i))
			}
			deadline := time.Now().Add(10 * time.Second)
			for h.n.Load() < tt.served && time.Now().Before(deadline) {
				time.Sleep(time.Millisecond)
			}
			// NB: a stall check hands the reading on past each held
			// request; give it time to serve too much if the limit did not
			// hold.
			time.Sleep(20 * time.Millisecond)
			require.Equal(t, tt.served, h.n.Load())
			close(h.release)
			released = true
			p.answered(sent)
		})
	}
}

// TestGoAwayResends checks that a request the server refuses with a
// goaway (it had not read it) is sent again on a fresh connection, and
// that one it had read waits for its answer.
func TestGoAwayResends(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for conn := 0; conn < 2; conn++ {
			nc, err := l.Accept()
			if err != nil {
				return
			}
			fr := &frameReader{r: nc, max: transport.MaxFrameBytes}
			if _, _, _, err := fr.next(); err != nil {
				return
			}
			_, _ = nc.Write(welcomeFrame("node"))
			h, body, _, err := fr.next()
			if err != nil {
				return
			}
			req, _ := transport.DecodeRequest(body)
			if conn == 0 {
				// Refuse it: served nothing up to id-1.
				_, _ = nc.Write(appendFrame(nil, frameGoAway, h.id-1, appendReason(nil, "restarting")))
				time.Sleep(10 * time.Millisecond)
				_ = nc.Close()
				continue
			}
			_, _ = nc.Write(appendFrame(nil, frameResponse, h.id, transport.AppendResponse(nil, &transport.Response{Addr: req.Addr + 1})))
			_, _, _, _ = fr.next() // until the client closes
			_ = nc.Close()
		}
	}()
	c := mustClient(t, l.Addr().String(), nil)
	resp, err := c.Call(context.Background(), "node", &transport.Request{Op: transport.OpRead, Addr: 41})
	require.NoError(t, err)
	require.Equal(t, storage.Address(42), resp.Addr, "answered on the second connection")
	require.NoError(t, c.Close())
	<-done
}

// holdOne holds the requests for address 1 until release is closed, and
// answers the others at once.
type holdOne struct{ release chan struct{} }

func (h holdOne) Handle(req *transport.Request) *transport.Response {
	if req.Addr == 1 {
		<-h.release
	}
	return &transport.Response{Addr: req.Addr}
}

// TestAnswerBeforeStall checks that an answer the reader queued before a
// request that blocks in the Handler goes out while that request is held,
// though both came in one read.
func TestAnswerBeforeStall(t *testing.T) {
	h := holdOne{release: make(chan struct{})}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := Serve(l, h, ServerConfig{Node: "node"})
	require.NoError(t, err)
	released := false
	defer func() {
		if !released {
			close(h.release)
		}
		require.NoError(t, srv.Close())
	}()
	p := dialRaw(t, l.Addr().String())
	p.hello()
	both := appendFrame(nil, frameRequest, 1, transport.AppendRequest(nil, &transport.Request{Op: transport.OpRead, Addr: 0}))
	both = appendFrame(both, frameRequest, 2, transport.AppendRequest(nil, &transport.Request{Op: transport.OpRead, Addr: 1}))
	p.send(both)
	id, resp := p.response()
	require.Equal(t, uint64(1), id, "the first request's answer, while the second is held")
	require.Equal(t, storage.Address(0), resp.Addr)
	close(h.release)
	released = true
	id, resp = p.response()
	require.Equal(t, uint64(2), id)
	require.Equal(t, storage.Address(1), resp.Addr)
}

// bigAnswers answers every request with 64 KiB of data.
type bigAnswers struct{}

func (bigAnswers) Handle(req *transport.Request) *transport.Response {
	return &transport.Response{Addr: req.Addr, Data: make([]byte, 64<<10)}
}

// TestReadsWhileAnswersWait checks that a server keeps reading requests up
// to its in-flight limits while its answers wait for a peer that does not
// read them yet: a peer may send all its requests before reading any
// answer, as long as they stay within the limits.
func TestReadsWhileAnswersWait(t *testing.T) {
	_, p := serveRaw(t, bigAnswers{})
	// NB: 16 MiB each way, more than loopback sockets buffer, within the
	// 64 MiB limit.
	const n = 256
	var reqs []byte
	for i := range n {
		reqs = appendFrame(reqs, frameRequest, uint64(i+1), transport.AppendRequest(nil,
			&transport.Request{Op: transport.OpWrite, Addr: storage.Address(i), Data: make([]byte, 64<<10)}))
	}
	require.NoError(t, p.nc.SetWriteDeadline(time.Now().Add(20*time.Second)))
	p.send(reqs)
	for range n {
		_, resp := p.response()
		require.NoError(t, resp.Err)
		require.Len(t, resp.Data, 64<<10)
	}
}

// TestServerWriteTimeout checks that a server drops a connection whose
// peer stops reading once a write has waited WriteTimeout for room, and
// reports the deadline as the reason.
func TestServerWriteTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	closed := make(chan error, 1)
	srv, err := Serve(l, bigAnswers{}, ServerConfig{Node: "node", WriteTimeout: 100 * time.Millisecond,
		Hooks: Hooks{ConnClosed: func(_ string, err error) { closed <- err }}})
	require.NoError(t, err)
	defer func() { require.NoError(t, srv.Close()) }()
	p := dialRaw(t, l.Addr().String())
	p.hello()
	// NB: 16 MiB of answers, more than loopback sockets buffer; the peer
	// reads none of them.
	var reqs []byte
	for i := range 256 {
		reqs = appendFrame(reqs, frameRequest, uint64(i+1), transport.AppendRequest(nil,
			&transport.Request{Op: transport.OpRead, Addr: storage.Address(i)}))
	}
	p.send(reqs)
	select {
	case err := <-closed:
		require.ErrorIs(t, err, os.ErrDeadlineExceeded)
	case <-time.After(10 * time.Second):
		t.Fatal("the server did not drop the connection")
	}
}

// TestClientWriteTimeout checks that a client gives up a connection to a
// server that stops reading once a write has waited WriteTimeout for room:
// the calls on it fail as unreachable, with the deadline as the reason.
func TestClientWriteTimeout(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer l.Close()
	stop, stopped := make(chan struct{}), make(chan struct{})
	defer func() { close(stop); <-stopped }()
	go func() {
		defer close(stopped)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		fr := frameReader{r: nc, max: maxHandshakeBytes}
		if _, _, _, err := fr.next(); err != nil {
			return
		}
		w := welcome{version: ProtocolVersion, node: "node", maxInFlight: 64, maxFrameBytes: transport.MaxFrameBytes}
		if _, err := nc.Write(appendFrame(nil, frameWelcome, 0, appendWelcome(nil, w))); err != nil {
			return
		}
		<-stop // NB: reads nothing more
	}()
	c, err := NewClient(ClientConfig{Resolve: StaticResolver(map[transport.NodeID]string{"node": l.Addr().String()}),
		WriteTimeout: 100 * time.Millisecond})
	require.NoError(t, err)
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	// NB: 16 MiB of requests, more than loopback sockets buffer.
	errs := make(chan error, 16)
	for i := range 16 {
		go func() {
			_, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpWrite, Addr: storage.Address(i), Data: make([]byte, 1<<20)})
			errs <- err
		}()
	}
	for range 16 {
		err := <-errs
		require.ErrorIs(t, err, transport.ErrUnreachable)
		require.NotErrorIs(t, err, context.DeadlineExceeded, "the call outlived the write timeout")
	}
}
