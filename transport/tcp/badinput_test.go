package tcp

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// logBuffer collects a logger's records, for tests that look for them.
type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// waitLog waits for a record containing want, failing t after a while.
func (l *logBuffer) waitLog(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(l.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no log record with %q in:\n%s", want, l.String())
		}
		time.Sleep(time.Millisecond)
	}
}

// fixture is a server of a storage unit and a sequencer on loopback, with
// its log.
type fixture struct {
	srv  *Server
	addr string
	unit *storage.Memory
	log  *logBuffer
}

func newFixture(t *testing.T, tune func(*ServerConfig)) *fixture {
	t.Helper()
	f := &fixture{unit: storage.NewMemory(), log: new(logBuffer)}
	seq := sequencer.New(sequencer.Config{})
	require.NoError(t, seq.Bootstrap(0, 0, nil))
	cfg := ServerConfig{
		Node:   "node",
		Logger: slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug})),
	}
	if tune != nil {
		tune(&cfg)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	f.srv, err = Serve(l, &transport.Server{Unit: f.unit, Sequencer: seq}, cfg)
	require.NoError(t, err)
	f.addr = l.Addr().String()
	t.Cleanup(func() { require.NoError(t, f.srv.Close()) })
	return f
}

// good checks that the server still serves a well-behaved client: a write
// and a read back at addr.
func (f *fixture) good(t *testing.T, tlsCfg *tls.Config, addr storage.Address) {
	t.Helper()
	c, err := NewClient(ClientConfig{Resolve: StaticResolver(map[transport.NodeID]string{"node": f.addr}), TLS: tlsCfg})
	require.NoError(t, err)
	defer func() { require.NoError(t, c.Close()) }()
	u := transport.UnitClient{Caller: c, Node: "node"}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, u.Write(ctx, 0, addr, []byte("good")), "the server serves others")
	got, err := u.Read(ctx, 0, addr)
	require.NoError(t, err)
	require.Equal(t, "good", string(got))
}

// rawPeer is a connection on which a test writes whatever bytes it likes.
type rawPeer struct {
	t  *testing.T
	nc net.Conn
	fr frameReader
}

func dialRaw(t *testing.T, addr string) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { _ = nc.Close() })
	return &rawPeer{t: t, nc: nc, fr: frameReader{r: nc, max: transport.MaxFrameBytes}}
}

func (p *rawPeer) send(b []byte) {
	p.t.Helper()
	_, err := p.nc.Write(b)
	require.NoError(p.t, err)
}

func (p *rawPeer) frame(t frameType, id uint64, body []byte) {
	p.t.Helper()
	p.send(appendFrame(nil, t, id, body))
}

func (p *rawPeer) request(id uint64, req *transport.Request) {
	p.t.Helper()
	p.frame(frameRequest, id, transport.AppendRequest(nil, req))
}

func validHello() []byte {
	return appendHello(nil, hello{minVersion: ProtocolVersion, maxVersion: ProtocolVersion, role: RoleClient, from: "raw", to: "node"})
}

// hello greets the server and reads its welcome.
func (p *rawPeer) hello() welcome {
	p.t.Helper()
	p.frame(frameHello, 0, validHello())
	h, body := p.read()
	require.Equal(p.t, frameWelcome, h.typ)
	w, err := decodeWelcome(body)
	require.NoError(p.t, err)
	return w
}

// read reads one frame.
func (p *rawPeer) read() (header, []byte) {
	p.t.Helper()
	require.NoError(p.t, p.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	h, body, _, err := p.fr.next()
	require.NoError(p.t, err)
	return h, append([]byte(nil), body...)
}

// response reads one response frame and decodes it.
func (p *rawPeer) response() (uint64, *transport.Response) {
	p.t.Helper()
	h, body := p.read()
	require.Equal(p.t, frameResponse, h.typ)
	resp, err := transport.DecodeResponse(body)
	require.NoError(p.t, err)
	return h.id, resp
}

// closed checks that the server closes the connection, and returns the
// frames it sent before.
func (p *rawPeer) closed() []header {
	p.t.Helper()
	require.NoError(p.t, p.nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	var got []header
	for {
		h, _, _, err := p.fr.next()
		if err != nil {
			require.False(p.t, errors.Is(err, errTimeout()), "the server did not close the connection")
			return got
		}
		got = append(got, h)
	}
}

func errTimeout() error { return context.DeadlineExceeded } // os.ErrDeadlineExceeded matches it

// header13 returns a frame header with an arbitrary length field.
func header13(length uint32, t frameType, id uint64) []byte {
	b := binary.BigEndian.AppendUint32(nil, length)
	b = append(b, byte(t))
	return binary.BigEndian.AppendUint64(b, id)
}

// TestBadFrames sends each kind of bad input on a connection of its own:
// the server drops that connection with a log record, never lets the bad
// frame change the unit, and goes on serving other clients.
func TestBadFrames(t *testing.T) {
	write := func(addr storage.Address, data string) []byte {
		return transport.AppendRequest(nil, &transport.Request{Op: transport.OpWrite, Addr: addr, Data: []byte(data)})
	}
	tests := []struct {
		name    string
		noHello bool                                // send before any hello
		send    func(p *rawPeer, a storage.Address) // the bad input; it may write a and a+1
		log     string                              // in the server's log record
		reject  bool                                // the server answers with a reject frame first
		first   bool                                // a good frame before the bad one wrote a
	}{
		{name: "truncated frame", send: func(p *rawPeer, a storage.Address) {
			p.send(appendFrame(nil, frameRequest, 1, write(a, "x"))[:20])
			_ = p.nc.(*net.TCPConn).CloseWrite()
		}, log: "inside a frame"},
		{name: "truncated header", send: func(p *rawPeer, a storage.Address) {
			p.send(header13(100, frameRequest, 1)[:7])
			_ = p.nc.(*net.TCPConn).CloseWrite()
		}, log: "inside a frame"},
		{name: "oversize frame", send: func(p *rawPeer, a storage.Address) {
			p.send(header13(minFrameLen+transport.MaxFrameBytes+1, frameRequest, 1))
		}, log: "exceeds the limit"},
		{name: "4 GiB frame", send: func(p *rawPeer, a storage.Address) {
			p.send(header13(0xffffffff, frameRequest, 1))
		}, log: "exceeds the limit"},
		{name: "length below the header", send: func(p *rawPeer, a storage.Address) {
			p.send(header13(3, frameRequest, 1))
		}, log: "below the header"},
		{name: "unknown frame type", send: func(p *rawPeer, a storage.Address) {
			p.frame(99, 1, write(a, "x"))
		}, log: "frame type 99 frame sent to a server"},
		{name: "response sent to a server", send: func(p *rawPeer, a storage.Address) {
			p.frame(frameResponse, 1, transport.AppendResponse(nil, &transport.Response{}))
		}, log: "response frame sent to a server"},
		{name: "second hello", send: func(p *rawPeer, a storage.Address) {
			p.frame(frameHello, 0, validHello())
		}, log: "hello frame sent to a server"},
		{name: "goaway sent to a server", send: func(p *rawPeer, a storage.Address) {
			p.frame(frameGoAway, 0, appendReason(nil, "bye"))
		}, log: "goaway frame sent to a server"},
		{name: "reused request id", send: func(p *rawPeer, a storage.Address) {
			p.frame(frameRequest, 8, write(a, "first"))
			p.frame(frameRequest, 8, write(a+1, "reused"))
		}, log: "request id 8 not above the last one, 8", first: true},
		{name: "request id going back", send: func(p *rawPeer, a storage.Address) {
			p.frame(frameRequest, 8, write(a, "first"))
			p.frame(frameRequest, 7, write(a+1, "older"))
		}, log: "request id 7 not above the last one, 8", first: true},
		{name: "request id 0", send: func(p *rawPeer, a storage.Address) {
			p.frame(frameRequest, 0, write(a+1, "zero"))
		}, log: "request id 0 not above the last one, 0"},
		{name: "request before hello", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.frame(frameRequest, 1, write(a+1, "early"))
		}, log: "first frame is a request frame"},
		{name: "oversize hello", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.frame(frameHello, 0, make([]byte, maxHandshakeBytes+1))
		}, log: "exceeds the limit"},
		{name: "http request", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.send([]byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"))
		}, log: "not a corfu hello"},
		{name: "tls client hello on a plain port", noHello: true, send: func(p *rawPeer, a storage.Address) {
			tc := tls.Client(p.nc, &tls.Config{InsecureSkipVerify: true}) //nolint:gosec // only its first record is sent
			_ = p.nc.SetDeadline(time.Now().Add(100 * time.Millisecond))
			_ = tc.Handshake() // fails: the server drops the connection
			_ = p.nc.SetDeadline(time.Time{})
		}, log: "not a corfu hello"},
		{name: "bad magic", noHello: true, send: func(p *rawPeer, a storage.Address) {
			b := validHello()
			copy(b, "XXXX")
			p.frame(frameHello, 0, b)
		}, log: "not a corfu peer"},
		{name: "unknown version", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.frame(frameHello, 0, appendHello(nil, hello{minVersion: 2, maxVersion: 9, role: RoleClient, to: "node"}))
		}, log: "client speaks versions 2 to 9", reject: true},
		{name: "hello from a server role", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.frame(frameHello, 0, appendHello(nil, hello{minVersion: 1, maxVersion: 1, role: RoleUnit, to: "node"}))
		}, log: "a hello from a unit, want a client", reject: true},
		{name: "hello to another node", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.frame(frameHello, 0, appendHello(nil, hello{minVersion: 1, maxVersion: 1, role: RoleClient, to: "other"}))
		}, log: `means to reach \"other\"`, reject: true},
		{name: "hello with trailing bytes", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.frame(frameHello, 0, append(validHello(), 0))
		}, log: "1 trailing bytes"},
		{name: "hello with an id", noHello: true, send: func(p *rawPeer, a storage.Address) {
			p.frame(frameHello, 3, validHello())
		}, log: "want a hello with id 0"},
	}
	f := newFixture(t, nil)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := dialRaw(t, f.addr)
			if !tt.noHello {
				w := p.hello()
				assert.Equal(t, "node", w.node)
				assert.Equal(t, RoleUnit|RoleSequencer, w.roles)
			}
			a := storage.Address(10 * i)
			tt.send(p, a)
			frames := p.closed()
			if tt.reject {
				require.Len(t, frames, 1)
				assert.Equal(t, frameReject, frames[0].typ)
			}
			f.log.waitLog(t, tt.log)
			st, data := f.unit.Inspect(a)
			if tt.first {
				// NB: the good frame came in the same read as the bad one:
				// served or not, as a request on a connection that fails.
				if st != storage.StateUnwritten {
					assert.Equal(t, storage.StateData, st)
					assert.Equal(t, "first", string(data))
				}
			} else {
				assert.Equal(t, storage.StateUnwritten, st, "the bad frame changed nothing")
			}
			st, _ = f.unit.Inspect(a + 1)
			assert.Equal(t, storage.StateUnwritten, st, "the bad frame changed nothing")
			f.good(t, nil, a+5)
		})
	}
}

// TestBadRequests sends well-framed requests that the server must refuse:
// each gets an error answer, changes nothing, and the connection goes on.
func TestBadRequests(t *testing.T) {
	f := newFixture(t, func(c *ServerConfig) { c.Roles = RoleUnit }) // NB: the sequencer is there, but not announced
	p := dialRaw(t, f.addr)
	require.Equal(t, RoleUnit, p.hello().roles)
	tests := []struct {
		name string
		body []byte
		want error
	}{
		{"garbage", []byte("garbage"), transport.ErrMalformed},
		{"empty", []byte{}, transport.ErrMalformed},
		{"unknown message version", append([]byte{9}, transport.AppendRequest(nil, &transport.Request{Op: transport.OpRead})[1:]...), transport.ErrMalformed},
		{"unknown op", transport.AppendRequest(nil, &transport.Request{Op: 99, Addr: 1}), transport.ErrMalformed},
		{"a response message", transport.AppendResponse(nil, &transport.Response{Addr: 1}), transport.ErrMalformed},
		{"truncated message", transport.AppendRequest(nil, &transport.Request{Op: transport.OpWrite, Addr: 1, Data: []byte("xyz")})[:6], transport.ErrMalformed},
		{"too many streams", transport.AppendRequest(nil, &transport.Request{Op: transport.OpToken, N: 1,
			Streams: make([]sequencer.StreamID, sequencer.MaxStreams+1)}), sequencer.ErrInvalid},
		{"epoch from the future", transport.AppendRequest(nil, &transport.Request{Op: transport.OpWrite, Epoch: 7, Addr: 1, Data: []byte("x")}), storage.ErrFutureEpoch},
		{"address out of range", transport.AppendRequest(nil, &transport.Request{Op: transport.OpWrite, Addr: storage.MaxAddress, Data: []byte("x")}), storage.ErrInvalidAddress},
		{"largest address", transport.AppendRequest(nil, &transport.Request{Op: transport.OpFill, Addr: 1<<64 - 1}), storage.ErrInvalidAddress},
		{"wrong role", transport.AppendRequest(nil, &transport.Request{Op: transport.OpToken, N: 1}), transport.ErrWrongRole},
		{"layout op to a unit", transport.AppendRequest(nil, &transport.Request{Op: transport.OpGetLayout}), transport.ErrWrongRole},
	}
	id := uint64(0)
	for _, tt := range tests {
		id++
		p.frame(frameRequest, id, tt.body)
		got, resp := p.response()
		require.Equal(t, id, got, tt.name)
		require.ErrorIs(t, resp.Err, tt.want, tt.name)
	}
	for a := storage.Address(0); a <= 2; a++ {
		st, _ := f.unit.Inspect(a)
		assert.Equal(t, storage.StateUnwritten, st, "address %d", a)
	}
	tok, err := transport.SequencerClient{Caller: mustClient(t, f.addr, nil), Node: "node"}.Next(context.Background(), 0, 1, nil)
	require.ErrorIs(t, err, transport.ErrWrongRole, "the sequencer the server does not announce is not reached")
	require.Zero(t, tok.Start)

	// The connection still serves.
	id++
	p.request(id, &transport.Request{Op: transport.OpWrite, Addr: 1, Data: []byte("ok")})
	_, resp := p.response()
	require.NoError(t, resp.Err)
}

// mustClient returns a client of the fixture's node, closed at cleanup.
func mustClient(t *testing.T, addr string, tune func(*ClientConfig)) *Client {
	t.Helper()
	cfg := ClientConfig{Resolve: StaticResolver(map[transport.NodeID]string{"node": addr}), MinBackoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond}
	if tune != nil {
		tune(&cfg)
	}
	c, err := NewClient(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, c.Close()) })
	return c
}

// TestSlowPeers checks the read deadlines: a peer that trickles its hello
// or a frame, one byte at a time, is dropped once the handshake or frame
// timeout passes, and one that sends nothing is dropped after the idle
// timeout when one is set.
func TestSlowPeers(t *testing.T) {
	const step = 20 * time.Millisecond
	f := newFixture(t, func(c *ServerConfig) {
		c.HandshakeTimeout = 100 * time.Millisecond
		c.FrameTimeout = 100 * time.Millisecond
		c.IdleTimeout = 300 * time.Millisecond
	})
	trickle := func(p *rawPeer, b []byte) {
		for _, c := range b {
			if _, err := p.nc.Write([]byte{c}); err != nil {
				return // dropped
			}
			time.Sleep(step)
		}
	}
	t.Run("hello", func(t *testing.T) {
		p := dialRaw(t, f.addr)
		start := time.Now()
		go trickle(p, appendFrame(nil, frameHello, 0, validHello()))
		p.closed()
		f.log.waitLog(t, "handshake failed")
		assert.Less(t, time.Since(start), 5*time.Second)
	})
	t.Run("frame", func(t *testing.T) {
		p := dialRaw(t, f.addr)
		p.hello()
		go trickle(p, appendFrame(nil, frameRequest, 1, transport.AppendRequest(nil,
			&transport.Request{Op: transport.OpWrite, Addr: 3, Data: []byte("slow")})))
		p.closed()
		f.log.waitLog(t, "slow peer")
		st, _ := f.unit.Inspect(3)
		assert.Equal(t, storage.StateUnwritten, st)
	})
	t.Run("idle", func(t *testing.T) {
		p := dialRaw(t, f.addr)
		p.hello()
		p.closed()
		f.log.waitLog(t, "idle for over")
	})
	t.Run("busy but not slow", func(t *testing.T) {
		// Frames that each arrive quickly keep a connection, however long
		// it lasts.
		p := dialRaw(t, f.addr)
		p.hello()
		for i := range 20 {
			p.request(uint64(i+1), &transport.Request{Op: transport.OpRead, Addr: 4})
			_, resp := p.response()
			require.ErrorIs(t, resp.Err, storage.ErrUnwritten)
			time.Sleep(step)
		}
	})
	f.good(t, nil, 9)
}

// fakeServer accepts one connection, reads the hello and then plays
// script, so that a test can send a client whatever it likes.
func fakeServer(t *testing.T, script func(nc net.Conn, fr *frameReader)) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	done := make(chan struct{})
	t.Cleanup(func() {
		_ = l.Close()
		<-done
	})
	go func() {
		defer close(done)
		nc, err := l.Accept()
		if err != nil {
			return
		}
		_ = l.Close() // NB: one connection: a redial is refused at once
		defer nc.Close()
		fr := &frameReader{r: nc, max: transport.MaxFrameBytes}
		if _, _, _, err := fr.next(); err != nil {
			return
		}
		script(nc, fr)
	}()
	return l.Addr().String()
}

func welcomeFrame(node string) []byte {
	return appendFrame(nil, frameWelcome, 0, appendWelcome(nil, welcome{version: ProtocolVersion, node: node,
		maxInFlight: 16, maxFrameBytes: transport.MaxFrameBytes}))
}

// TestBadServer checks the client's side: a server that breaks the
// protocol loses its connection, and the calls on it fail with
// transport.ErrUnreachable, never with a wrong answer.
func TestBadServer(t *testing.T) {
	readRequest := func(fr *frameReader) uint64 {
		h, _, _, err := fr.next()
		if err != nil {
			return 0
		}
		return h.id
	}
	tests := []struct {
		name   string
		script func(nc net.Conn, fr *frameReader)
		want   string
	}{
		{"no welcome", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
		}, "exceeds the limit"},
		{"reject", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(appendFrame(nil, frameReject, 0, appendReason(nil, "go away")))
		}, "refused by the server: go away"},
		{"another node", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(welcomeFrame("impostor"))
		}, `reached "impostor"`},
		{"another version", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(appendFrame(nil, frameWelcome, 0, appendWelcome(nil, welcome{version: 7, node: "node", maxInFlight: 1, maxFrameBytes: 1})))
		}, "server chose version 7"},
		{"a zero in-flight limit", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(appendFrame(nil, frameWelcome, 0, appendWelcome(nil, welcome{version: 1, node: "node", maxFrameBytes: 1})))
		}, "in-flight limit 0"},
		{"response to a request never sent", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(welcomeFrame("node"))
			id := readRequest(fr)
			_, _ = nc.Write(appendFrame(nil, frameResponse, id+1<<20, transport.AppendResponse(nil, &transport.Response{})))
		}, "never sent"},
		{"two responses to one request", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(welcomeFrame("node"))
			id := readRequest(fr)
			// NB: the first answer is taken; the second is a violation that
			// drops the connection, after the call returned. The call made
			// next sees that.
			r := appendFrame(nil, frameResponse, id, transport.AppendResponse(nil, &transport.Response{Addr: 1}))
			_, _ = nc.Write(append(r, r...))
			time.Sleep(10 * time.Millisecond)
		}, "answered twice"},
		{"request sent to a client", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(welcomeFrame("node"))
			readRequest(fr)
			_, _ = nc.Write(appendFrame(nil, frameRequest, 1, transport.AppendRequest(nil, &transport.Request{Op: transport.OpRead})))
		}, "request frame sent to a client"},
		{"oversize response", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(welcomeFrame("node"))
			id := readRequest(fr)
			_, _ = nc.Write(header13(0xffffffff, frameResponse, id))
		}, "exceeds the limit"},
		{"malformed response", func(nc net.Conn, fr *frameReader) {
			// NB: a well-framed answer that does not decode is the codec's
			// error, as over any Caller; the connection stays.
			_, _ = nc.Write(welcomeFrame("node"))
			id := readRequest(fr)
			_, _ = nc.Write(appendFrame(nil, frameResponse, id, []byte("nonsense")))
		}, "unknown version 110"},
		{"closed mid-call", func(nc net.Conn, fr *frameReader) {
			_, _ = nc.Write(welcomeFrame("node"))
			readRequest(fr)
		}, "may or may not have been served"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := fakeServer(t, tt.script)
			log := new(logBuffer)
			c := mustClient(t, addr, func(c *ClientConfig) {
				c.Logger = slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug}))
				c.MinBackoff, c.MaxBackoff = time.Hour, time.Hour
			})
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			resp, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead})
			if err == nil {
				// Only the doubled answer gets through: the first copy.
				require.Equal(t, "two responses to one request", tt.name)
				require.Equal(t, storage.Address(1), resp.Addr)
				_, err = c.Call(ctx, "node", &transport.Request{Op: transport.OpRead})
			}
			if tt.name == "malformed response" {
				require.ErrorIs(t, err, transport.ErrMalformed)
			} else {
				require.ErrorIs(t, err, transport.ErrUnreachable)
			}
			if !strings.Contains(err.Error(), tt.want) {
				log.waitLog(t, tt.want)
			}
		})
	}
}
