package tcp

import (
	"context"
	"errors"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// answer writes the response to the request h asked for, echoing its
// address.
func answer(t *testing.T, nc net.Conn, h header, body []byte) {
	t.Helper()
	req, err := transport.DecodeRequest(body)
	require.NoError(t, err)
	_, err = nc.Write(appendFrame(nil, frameResponse, h.id, transport.AppendResponse(nil, &transport.Response{Addr: req.Addr})))
	require.NoError(t, err)
}

// holdOneClient serves holdOne (release) on loopback and returns a client
// of it with one connection; the test's cleanup closes both.
func holdOneClient(t *testing.T, release chan struct{}) *Client {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	srv, err := Serve(l, holdOne{release: release}, ServerConfig{Node: "node"})
	require.NoError(t, err)
	c := mustClient(t, l.Addr().String(), func(cfg *ClientConfig) { cfg.ConnsPerNode = 1 })
	t.Cleanup(func() {
		_ = c.Close()
		_ = srv.Close()
	})
	return c
}

// TestDirectCalls checks which calls their callers write and read
// themselves: one at a time on an idle connection, every one; a call made
// while another is in flight, not (the reader goroutine reads its answer).
func TestDirectCalls(t *testing.T) {
	release := make(chan struct{})
	c := holdOneClient(t, release)
	ctx := context.Background()
	for i := range 20 {
		resp, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: storage.Address(10 + i)})
		require.NoError(t, err)
		require.Equal(t, storage.Address(10+i), resp.Addr)
	}
	require.Equal(t, uint64(20), c.directCalls.Load(), "one at a time: all direct")

	held := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: 1})
		held <- err
	}()
	require.Eventually(t, func() bool { return c.directCalls.Load() == 21 }, 10*time.Second, time.Millisecond)
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: storage.Address(100 + i)})
			if err == nil && resp.Addr != storage.Address(100+i) {
				err = errors.New("answer of another call")
			}
			assert.NoError(t, err)
		}()
	}
	wg.Wait()
	require.Equal(t, uint64(21), c.directCalls.Load(), "beside a call in flight: none direct")
	close(release)
	require.NoError(t, <-held)
}

// TestDirectCallCtx checks that a caller reading its own answer still
// returns when its ctx ends, and that the answer that comes later is read
// and dropped, not handed to the next call.
func TestDirectCallCtx(t *testing.T) {
	release := make(chan struct{})
	c := holdOneClient(t, release)

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: 1})
		done <- err
	}()
	select {
	case err := <-done:
		require.ErrorIs(t, err, context.DeadlineExceeded)
	case <-time.After(20 * time.Second):
		close(release) // NB: lets the server's Close end
		t.Fatal("a direct call outlived its ctx")
	}
	require.Equal(t, uint64(1), c.directCalls.Load())
	close(release) // NB: the abandoned call's answer comes now
	for i := range 5 {
		resp, err := c.Call(context.Background(), "node", &transport.Request{Op: transport.OpRead, Addr: storage.Address(7 + i)})
		require.NoError(t, err)
		require.Equal(t, storage.Address(7+i), resp.Addr)
	}
}

// TestDirectCallIdleEnd checks that a call on a connection the server
// ended while it was idle (closed, or went away) is not sent on it: it
// fails as never sent once no new connection can be made, as it did when
// a reader goroutine watched the idle connection.
func TestDirectCallIdleEnd(t *testing.T) {
	for _, goAway := range []bool{false, true} {
		t.Run(map[bool]string{false: "closed", true: "goaway"}[goAway], func(t *testing.T) {
			idle := make(chan struct{})
			more := make(chan bool, 1)
			addr := fakeServer(t, func(nc net.Conn, fr *frameReader) {
				_, _ = nc.Write(welcomeFrame("node"))
				h, body, _, err := fr.next()
				if err != nil {
					return
				}
				answer(t, nc, h, body)
				if goAway {
					_, _ = nc.Write(appendFrame(nil, frameGoAway, h.id, appendReason(nil, "restarting")))
				} else {
					_ = nc.Close()
				}
				close(idle)
				if goAway {
					_ = nc.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
					_, _, _, err := fr.next()
					more <- err == nil || !errors.Is(err, os.ErrDeadlineExceeded)
				}
			})
			c := mustClient(t, addr, func(cfg *ClientConfig) { cfg.ConnsPerNode = 1 })
			defer c.Close()
			ctx := context.Background()
			_, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: 3})
			require.NoError(t, err)
			<-idle
			time.Sleep(20 * time.Millisecond) // NB: the end reaches the client's socket
			_, err = c.Call(ctx, "node", &transport.Request{Op: transport.OpRead, Addr: 4})
			require.ErrorIs(t, err, transport.ErrNotSent)
			if goAway {
				require.False(t, <-more, "a request was sent after the goaway")
			}
		})
	}
}
