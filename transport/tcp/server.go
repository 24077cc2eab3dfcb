package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corfulog/corfu/transport"
)

// ServerConfig configures a Server. Every field has a documented default.
type ServerConfig struct {
	// Node is the node's name. A hello that names another node is refused,
	// so a client that dials a stale address learns it reached the wrong
	// node. Default: empty, and the server answers to any name.
	Node transport.NodeID
	// Roles are the roles the node serves, announced in the welcome (and,
	// over TLS, checked by clients against the certificate). A request for
	// another role is answered with transport.ErrWrongRole without
	// reaching the Handler. Default: the roles of a *transport.Server
	// Handler (its non-nil fields); for any other Handler, none are
	// announced or checked.
	Roles Role
	// TLS, if not nil, secures every connection with TLS 1.3 (a lower
	// MinVersion is raised); it must hold the server's certificate. With
	// ClientCAs set and ClientAuth left at tls.NoClientCert, clients must
	// present a certificate that ClientCAs verifies (mutual TLS), and it
	// must carry the client role (see docs/wire.md).
	TLS *tls.Config
	// Logger receives a record for each connection dropped for bad input
	// or a failed handshake (Warn), and for connections opened and closed
	// (Debug). Default: discard.
	Logger *slog.Logger
	// MaxConns bounds the connections served at once; more are closed as
	// soon as accepted. Default DefaultMaxConns.
	MaxConns int
	// MaxInFlight bounds the requests of one connection being served at
	// once (announced to the client); beyond it, the server reads no
	// further request from that connection until one is answered. Each
	// request in flight may run in its own goroutine. Default
	// DefaultMaxInFlight.
	MaxInFlight int
	// MaxInFlightBytes bounds the bytes of one connection's requests in
	// flight and of their answers not yet written; beyond it, the server
	// reads no further request from that connection. Default
	// DefaultMaxInFlightBytes.
	MaxInFlightBytes int
	// MaxFrameBytes bounds a request frame's body. A longer frame drops
	// the connection before anything is allocated for it. Default and
	// maximum transport.MaxFrameBytes.
	MaxFrameBytes int
	// HandshakeTimeout bounds the TLS handshake and the hello, from the
	// connection's accept. Default DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// FrameTimeout bounds the arrival of the rest of a frame once part of
	// it has arrived: a peer that trickles bytes is dropped. Default
	// DefaultFrameTimeout.
	FrameTimeout time.Duration
	// IdleTimeout, if positive, drops a connection that carries no frame
	// for that long. Default 0: idle connections stay (TCP keepalives
	// find dead peers).
	IdleTimeout time.Duration
	// WriteTimeout bounds one write to a connection; a client that takes
	// no bytes for that long is dropped. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// DrainTimeout bounds Close's wait for the requests in flight.
	// Default DefaultDrainTimeout.
	DrainTimeout time.Duration
	// Hooks are told of connections and requests, for metrics.
	Hooks Hooks

	// quietStall is quietStallTimeout, unless a test sets it.
	quietStall time.Duration
}

// Hooks are functions a Server calls on its events, for a metrics
// exporter. Each may be nil. They are called from the connections'
// goroutines, so they must be safe for concurrent use, and quick: a
// request's hook runs before its answer is queued.
type Hooks struct {
	// ConnOpened is called once a connection's handshake succeeded.
	ConnOpened func(remote string)
	// ConnClosed is called when a connection that opened closes: with nil
	// if the peer closed it or the server shut down, with the reason if
	// the server dropped it for bad input or a failed write.
	ConnClosed func(remote string, err error)
	// HandshakeFailed is called when a connection is dropped before its
	// handshake completed (TLS, a bad or refused hello, a timeout).
	HandshakeFailed func(remote string, err error)
	// Request is called for each request served: its operation, how long
	// the Handler took, and the answer's error (nil for success). Requests
	// refused before the Handler (they do not decode, or are for a role
	// the node does not serve) are reported with took 0 (and, for one that
	// does not decode, the byte where its operation would be).
	Request func(op transport.Op, took time.Duration, err error)
}

func (c *ServerConfig) fill(h transport.Handler) error {
	if len(c.Node) > MaxNameBytes {
		return fmt.Errorf("tcp: node name of %d bytes, limit %d", len(c.Node), MaxNameBytes)
	}
	if c.Roles == 0 {
		if s, ok := h.(*transport.Server); ok {
			if s.Unit != nil {
				c.Roles |= RoleUnit
			}
			if s.Sequencer != nil {
				c.Roles |= RoleSequencer
			}
			if s.Layout != nil {
				c.Roles |= RoleLayout
			}
		}
	}
	if c.Roles&^serverRoles != 0 {
		return fmt.Errorf("tcp: server roles %s include a role that is not a server's", c.Roles)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&c.MaxConns, DefaultMaxConns)
	setDefault(&c.MaxInFlight, DefaultMaxInFlight)
	setDefault(&c.MaxInFlightBytes, DefaultMaxInFlightBytes)
	setDefault(&c.MaxFrameBytes, transport.MaxFrameBytes)
	setDefault(&c.HandshakeTimeout, DefaultHandshakeTimeout)
	setDefault(&c.FrameTimeout, DefaultFrameTimeout)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	setDefault(&c.DrainTimeout, DefaultDrainTimeout)
	setDefault(&c.quietStall, quietStallTimeout)
	switch {
	case c.MaxConns < 0 || c.MaxInFlight < 0 || c.MaxInFlightBytes < 0:
		return errors.New("tcp: negative limit")
	case c.MaxFrameBytes < 0 || c.MaxFrameBytes > transport.MaxFrameBytes:
		return fmt.Errorf("tcp: MaxFrameBytes %d outside [0, %d]", c.MaxFrameBytes, transport.MaxFrameBytes)
	case c.HandshakeTimeout < 0 || c.FrameTimeout < 0 || c.IdleTimeout < 0 || c.WriteTimeout < 0 || c.DrainTimeout < 0:
		return errors.New("tcp: negative timeout")
	}
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
		c.TLS.MinVersion = max(c.TLS.MinVersion, tls.VersionTLS13)
		if c.TLS.ClientCAs != nil && c.TLS.ClientAuth == tls.NoClientCert {
			c.TLS.ClientAuth = tls.RequireAndVerifyClientCert
		}
	}
	return nil
}

// Server serves a transport.Handler to the clients that connect to a
// listener. It serves each connection's requests concurrently (at most
// ServerConfig.MaxInFlight at once) and answers each as soon as it is
// done, so answers may leave in another order than their requests came.
//
// A connection whose peer breaks the protocol (a malformed or oversized
// frame, a frame of the wrong type or direction, a reused request id, a
// failed handshake, a stalled frame) is dropped with a log record; the
// server keeps serving the others, and nothing of the bad frame reaches the
// Handler. A request frame whose message does not decode is answered with
// an error wrapping transport.ErrMalformed, as a local call would be, and
// also never reaches the Handler.
//
// A Server's methods are safe for concurrent use. The Handler is called
// from many goroutines at once.
type Server struct {
	cfg ServerConfig
	h   transport.Handler
	l   net.Listener

	mu      sync.Mutex
	conns   map[*serverConn]struct{}
	closing bool
	closed  chan struct{} // closed once Shutdown has finished

	wg         sync.WaitGroup // the accept loop and every connection
	nconns     atomic.Int64
	shutdownMu sync.Mutex // one Shutdown at a time
	err        error      // Shutdown's result, for later calls
}

// Serve serves h on l in the background until Close or Shutdown, and
// returns at once. It takes l over: Close closes it. It fails only for a
// config that cannot work (a negative limit, a MaxFrameBytes above
// transport.MaxFrameBytes, a client role among Roles).
func Serve(l net.Listener, h transport.Handler, cfg ServerConfig) (*Server, error) {
	if err := cfg.fill(h); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, h: h, l: l, conns: make(map[*serverConn]struct{}), closed: make(chan struct{})}
	s.wg.Add(1)
	go s.acceptLoop()
	return s, nil
}

// Addr returns the listener's address.
func (s *Server) Addr() net.Addr { return s.l.Addr() }

// Close shuts the server down gracefully, as Shutdown does, waiting at
// most ServerConfig.DrainTimeout for the requests in flight. It returns
// nil, or context.DeadlineExceeded if the drain was cut short.
func (s *Server) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.DrainTimeout)
	defer cancel()
	return s.Shutdown(ctx)
}

// Shutdown stops accepting connections, tells every client that no
// request after the last one read will be served (a goaway frame), waits
// for the requests in flight to be answered and their answers written, and
// closes the connections. Requests the server had not read are not served:
// their clients may send them again elsewhere. If ctx ends first, the
// remaining connections are closed at once (their in-flight answers are
// lost) and Shutdown returns ctx's error once every handler call has
// returned. Later calls wait for the first and return its result.
func (s *Server) Shutdown(ctx context.Context) error {
	s.shutdownMu.Lock()
	defer s.shutdownMu.Unlock()
	select {
	case <-s.closed:
		return s.err
	default:
	}
	s.mu.Lock()
	s.closing = true
	conns := make([]*serverConn, 0, len(s.conns))
	for cn := range s.conns {
		conns = append(conns, cn)
	}
	s.mu.Unlock()
	_ = s.l.Close()
	for _, cn := range conns {
		cn.drain()
	}
	done := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		s.err = ctx.Err()
		s.mu.Lock()
		for cn := range s.conns {
			cn.abort()
		}
		s.mu.Unlock()
		<-done
	}
	close(s.closed)
	return s.err
}

// acceptLoop accepts connections until the listener closes.
func (s *Server) acceptLoop() {
	defer s.wg.Done()
	var delay time.Duration
	for {
		nc, err := s.l.Accept()
		if err != nil {
			s.mu.Lock()
			closing := s.closing
			s.mu.Unlock()
			if closing || errors.Is(err, net.ErrClosed) {
				return
			}
			// NB: a temporary failure (out of file descriptors): back off
			// as net/http does, rather than spin.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.cfg.Logger.Warn("tcp: accept failed", "err", err, "retry_in", delay)
			time.Sleep(delay)
			continue
		}
		delay = 0
		if n := s.nconns.Add(1); n > int64(s.cfg.MaxConns) {
			s.nconns.Add(-1)
			s.cfg.Logger.Warn("tcp: too many connections, dropping one", "remote", nc.RemoteAddr(), "limit", s.cfg.MaxConns)
			_ = nc.Close()
			continue
		}
		cn := &serverConn{s: s, nc: nc, remote: nc.RemoteAddr().String(), wake: make(chan struct{}, 1),
			aborted: make(chan struct{})}
		cn.cond.L = &cn.mu
		s.mu.Lock()
		if s.closing {
			s.mu.Unlock()
			s.nconns.Add(-1)
			_ = nc.Close()
			return
		}
		s.conns[cn] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go cn.serve()
	}
}

// serverConn is one client's connection.
//
// Its reader serves each request it reads itself, inline, and writes the
// answers once it has served what one read brought (one write for them
// all, before it reads again): fast requests pass through no other
// goroutine. A request that keeps the reader in the Handler for
// stallTimeout (quietStallTimeout on a connection whose client sends one
// request at a time) hands the reading on to a new goroutine, and its own
// goroutine ends once it has queued its answer for the writer; requests so
// handed over are the ones in flight. The stall check also has the writer
// write the answers the reader holds while it is in the Handler.
type serverConn struct {
	s      *Server
	nc     net.Conn
	remote string
	peer   string // the client's name, from its hello

	// NB: mu guards the fields below and is cond's lock.
	mu        sync.Mutex
	cond      sync.Cond // signalled when inFlight or inBytes fall, or on abort
	out       outbox    // frames queued for the writer
	outBytes  int       // bytes of in-flight accounting that out's frames release once written
	inFlight  int       // requests handed over by a stalled reader and not yet answered
	inBytes   int       // bytes of those requests and of answers not yet written
	waiting   bool      // the reader waits on cond
	draining  bool      // Shutdown: read no more
	stopWrite bool      // the writer exits once wbuf is written

	rd        *reading    // the reading, owned by the goroutine of generation gen
	gen       uint64      // bumped when a stalled reader hands the reading over
	readEnded bool        // the read loop ended: no more hand-overs
	watch     *time.Timer // the stall check, while armed
	watchedAt uint64      // serving at the stall check's last look
	idle      int         // the stall check's looks in a row that found the reader idle
	// servingBytes is the size of the request the reader serves, and
	// servingWrite says it writes answers instead; written by the reader
	// before it bumps serving, read by the stall check.
	servingBytes int
	servingWrite bool

	// serving is odd while the reader is in the Handler or writes: it is
	// bumped before and after each request or write. watchArmed says the stall check is
	// armed. NB: the reader bumps serving, then reads watchArmed; the check
	// clears watchArmed, then reads serving: one of them sees the other.
	serving    atomic.Uint64
	watchArmed atomic.Bool
	// pipelined says the reader has lately seen requests queue behind
	// the one it serves (see reading.pipelined); watchQuick says the
	// stall check, while armed, looks every stallTimeout rather than
	// every quietStallTimeout. The reader sets pipelined; the check reads
	// it when it sets its timer.
	pipelined  atomic.Bool
	watchQuick atomic.Bool

	// writing says a goroutine is writing a batch: the writer, or the
	// reader before it reads again. It owns wd and spare.
	writing  bool
	wd       writeDeadline
	spare    []byte // a buffer already written, for the next batch
	writeErr error  // the write that dropped the connection, if one did

	wake      chan struct{} // tells the writer there is work
	aborted   chan struct{} // closed by abort
	abortOnce sync.Once

	wwg sync.WaitGroup // the readers, stalled or not, and the writer
}

// stallTimeout is how long the reader may stay in the Handler for one
// request, on a connection whose requests are pipelined, before a new
// goroutine takes over the reading: a request that blocks (a disk write)
// delays those behind it by about this long (timers are coarse: about a
// millisecond when the process is idle), and fast requests are served one
// after another with no hand-off between goroutines.
//
// On a connection that sends one request at a time, nothing waits behind
// the request in the Handler, and the check's timer, which wakes a thread
// each time it fires, would only slow the requests it watches: there the
// check looks every quietStallTimeout, a backstop for a request that
// blocks far longer than usual.
const (
	stallTimeout      = 200 * time.Microsecond
	quietStallTimeout = 5 * time.Millisecond
)

// pipelinedRequests is how many requests a connection stays pipelined
// for (its stall check quick) after the reader last saw one queue behind
// another: a frame read but not yet served, or answers held while it
// serves the next, or a hand-over.
const pipelinedRequests = 64

// reading is the state of a connection's read loop, handed from a stalled
// reader to the next.
type reading struct {
	fr           frameReader
	last         uint64    // the id of the last request read
	pipelined    int       // requests left to treat the connection as pipelined
	partialSince time.Time // when the frame in progress was first seen partial
	deadline     time.Time // the read deadline set, zero for none
}

// notePipelining counts down, or renews, how long the connection counts
// as pipelined, as the reader enters the Handler for the request it read
// last: held says it holds answers to requests it served before. It
// returns whether the connection is pipelined.
func (rd *reading) notePipelining(held bool) bool {
	switch {
	case held || rd.fr.buffered() > 0:
		rd.pipelined = pipelinedRequests
	case rd.pipelined > 0:
		rd.pipelined--
	default:
		return false
	}
	return true
}

// readResult is how a read loop ended.
type readResult struct {
	last uint64 // the id of the last request read
	err  error
}

// drain makes the reader stop at the next frame boundary (or now, if it
// is waiting for one).
func (cn *serverConn) drain() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	cn.draining = true
	cn.cond.Broadcast()
	_ = cn.nc.SetReadDeadline(time.Now())
}

// abort closes the connection now.
func (cn *serverConn) abort() {
	cn.abortOnce.Do(func() {
		close(cn.aborted)
		_ = cn.nc.Close()
		cn.mu.Lock()
		cn.cond.Broadcast()
		cn.mu.Unlock()
	})
}

func (cn *serverConn) isAborted() bool {
	select {
	case <-cn.aborted:
		return true
	default:
		return false
	}
}

// warn logs why the connection is dropped.
func (cn *serverConn) warn(msg string, err error) {
	cn.s.cfg.Logger.Warn(msg, "node", cn.s.cfg.Node, "remote", cn.remote, "client", cn.peer, "err", err)
}

// serve runs the connection: the handshake, then the read loop (here, at
// first) and the writer; the reader that ends the read loop closes the
// connection (see finish).
func (cn *serverConn) serve() {
	s := cn.s
	if err := cn.handshake(); err != nil {
		cn.warn("tcp: handshake failed, dropping connection", err)
		if f := s.cfg.Hooks.HandshakeFailed; f != nil {
			f(cn.remote, err)
		}
		cn.abort()
		cn.forget()
		return
	}
	s.cfg.Logger.Debug("tcp: connection open", "node", s.cfg.Node, "remote", cn.remote, "client", cn.peer)
	if f := s.cfg.Hooks.ConnOpened; f != nil {
		f(cn.remote)
	}
	cn.wd = newWriteDeadline(cn.nc, s.cfg.WriteTimeout)
	cn.wwg.Add(2) // NB: the writer, and this goroutine as the first reader
	go cn.writeLoop()
	cn.rd = &reading{fr: frameReader{r: cn.nc, max: s.cfg.MaxFrameBytes}}
	cn.reader(0)
}

// reader runs the read loop as the reader of generation gen (see read),
// and closes the connection if it ended the loop. The caller counted it in
// wwg.
func (cn *serverConn) reader(gen uint64) {
	r, ended := cn.read(gen)
	cn.wwg.Done()
	if ended {
		cn.finish(r.last, r.err)
	}
}

// finish closes the connection once the read loop ended with err, last
// being the id of the last request read: gracefully if the server is
// shutting down (the goaway, then the answers in flight), at once
// otherwise. It waits for the writer and for every Handler call.
func (cn *serverConn) finish(last uint64, err error) {
	s := cn.s
	var dropped error // why the connection was dropped, for Hooks.ConnClosed
	cn.mu.Lock()
	graceful := cn.draining && !errors.Is(err, errProtocol)
	cn.mu.Unlock()
	switch {
	case graceful:
		// NB: the goaway goes out before the answers still to come, and
		// names the last request read: the client knows that the later
		// ones were not served.
		cn.queue(appendFrame(nil, frameGoAway, last, appendReason(nil, "server shutting down")), 0, false)
		cn.mu.Lock()
		for cn.inFlight > 0 && !cn.isAborted() {
			cn.cond.Wait()
		}
		cn.mu.Unlock()
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed):
		s.cfg.Logger.Debug("tcp: connection closed", "node", s.cfg.Node, "remote", cn.remote, "client", cn.peer)
		cn.abort()
	default:
		cn.warn("tcp: dropping connection", err)
		dropped = err
		cn.abort()
	}
	cn.mu.Lock()
	cn.stopWrite = true
	cn.mu.Unlock()
	cn.signal()
	cn.wwg.Wait()
	cn.abort()
	if f := s.cfg.Hooks.ConnClosed; f != nil {
		if dropped == nil {
			cn.mu.Lock()
			dropped = cn.writeErr
			cn.mu.Unlock()
		}
		f(cn.remote, dropped)
	}
	cn.forget()
}

// forget removes the closed connection from the server's.
func (cn *serverConn) forget() {
	s := cn.s
	s.mu.Lock()
	delete(s.conns, cn)
	s.mu.Unlock()
	s.nconns.Add(-1)
	s.wg.Done()
}

// handshake secures the connection (with TLS, if configured), reads the
// hello and answers it.
func (cn *serverConn) handshake() error {
	s := cn.s
	if err := cn.nc.SetDeadline(time.Now().Add(s.cfg.HandshakeTimeout)); err != nil {
		return err
	}
	var tc *tls.Conn
	if s.cfg.TLS != nil {
		tc = tls.Server(cn.nc, s.cfg.TLS)
		if err := tc.Handshake(); err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		cn.nc = tc
	}
	var hdr [headerBytes]byte
	if _, err := io.ReadFull(cn.nc, hdr[:]); err != nil {
		return fmt.Errorf("reading the hello: %w", err)
	}
	h, err := parseHeader(hdr[:], maxHandshakeBytes)
	if err != nil {
		return fmt.Errorf("not a corfu hello (%q...): %w", hdr[:4], err)
	}
	if h.typ != frameHello || h.id != 0 {
		return protocolError("first frame is a %s frame with id %d, want a hello with id 0", h.typ, h.id)
	}
	body := make([]byte, h.n)
	if _, err := io.ReadFull(cn.nc, body); err != nil {
		return fmt.Errorf("reading the hello: %w", err)
	}
	hl, err := decodeHello(body)
	if err != nil {
		return err
	}
	cn.peer = hl.from
	reject := func(err error) error {
		_ = writeAll(cn.nc, appendFrame(nil, frameReject, 0, appendReason(nil, err.Error())), 0)
		return err
	}
	switch {
	case hl.minVersion > ProtocolVersion || hl.maxVersion < ProtocolVersion:
		return reject(protocolError("client speaks versions %d to %d, this server %d", hl.minVersion, hl.maxVersion, ProtocolVersion))
	case hl.role != RoleClient:
		return reject(fmt.Errorf("%w: a hello from a %s, want a client", errIdentity, hl.role))
	case s.cfg.Node != "" && hl.to != string(s.cfg.Node):
		return reject(fmt.Errorf("%w: the client means to reach %q, this is %q", errIdentity, hl.to, s.cfg.Node))
	}
	if tc != nil {
		if err := checkClientRole(tc.ConnectionState()); err != nil {
			return reject(err)
		}
	}
	node := string(s.cfg.Node)
	if node == "" {
		node = hl.to
	}
	w := welcome{version: ProtocolVersion, roles: s.cfg.Roles, node: node,
		maxInFlight: uint64(s.cfg.MaxInFlight), maxFrameBytes: uint64(s.cfg.MaxFrameBytes)}
	if err := writeAll(cn.nc, appendFrame(nil, frameWelcome, 0, appendWelcome(nil, w)), 0); err != nil {
		return err
	}
	return cn.nc.SetDeadline(time.Time{})
}

// read runs the read loop as the reader of generation gen: it reads
// request frames, serves each inline and writes their answers, until the
// connection ends, breaks the protocol or drains (it returns how, and
// ended), or until a request stalls it in the Handler, or a write stalls
// it, and a new reader takes over (it returns once it has queued that
// request's answer, or written).
func (cn *serverConn) read(gen uint64) (r readResult, ended bool) {
	rd := cn.rd
	defer func() {
		if ended {
			cn.mu.Lock()
			cn.readEnded = true
			if cn.watch != nil {
				cn.watch.Stop()
			}
			cn.mu.Unlock()
		}
	}()
	// NB: the reader writes the answers it queued itself, once it has
	// served what it read: one write carries them all, with no hand-off
	// to the writer.
	held := false // answers queued and not written
	rd.fr.beforeRead = func(partial bool) error {
		if held {
			held = false
			if err := cn.writeInline(gen); err != nil {
				return err
			}
		}
		return cn.readDeadline(rd, partial)
	}
	cn.mu.Lock()
	err := cn.admit()
	cn.mu.Unlock()
	var out []byte // the answer's frame, reused
	for {
		if err != nil {
			return readResult{rd.last, err}, true
		}
		h, body, _, rerr := rd.fr.next()
		if errors.Is(rerr, errHandedOver) {
			return readResult{}, false
		}
		if rerr != nil {
			return readResult{rd.last, cn.readError(rd, rerr)}, true
		}
		rd.partialSince = time.Time{}
		switch {
		case h.typ != frameRequest:
			return readResult{rd.last, protocolError("%s frame sent to a server", h.typ)}, true
		case h.id <= rd.last:
			return readResult{rd.last, protocolError("request id %d not above the last one, %d (reused?)", h.id, rd.last)}, true
		}
		rd.last = h.id
		size := headerBytes + h.n
		if cn.isAborted() {
			return readResult{rd.last, net.ErrClosed}, true
		}
		// NB: the request shares no memory with body, which the next read
		// may overwrite, or a new reader after a hand-over.
		req, derr := transport.DecodeRequest(body)
		op := transport.Op(0)
		if derr != nil && len(body) > 2 {
			op = transport.Op(body[2]) // NB: where a request message keeps its op
		}
		cn.servingBytes, cn.servingWrite = size, false
		quick := rd.notePipelining(held)
		if quick != cn.pipelined.Load() {
			cn.pipelined.Store(quick)
		}
		cn.serving.Add(1)
		if !cn.watchArmed.Load() || quick && !cn.watchQuick.Load() {
			cn.armWatch()
		}
		resp, parked := cn.serveRequest(req, op, derr, gen, h.id, size)
		if parked {
			// NB: its answer comes later, queued for the writer; the
			// request counts as in flight until then (serveRequest
			// counted it).
			cn.mu.Lock()
			if cn.gen != gen { // a new reader took over
				cn.mu.Unlock()
				return readResult{}, false
			}
			err = cn.admit()
			cn.mu.Unlock()
			continue
		}

		out = appendHeader(out[:0], frameResponse, h.id, 0)
		out = transport.AppendResponse(out, resp)
		setLen(out)
		keep := len(out) >= bigFrameBytes // NB: by reference: out is not reused
		cn.mu.Lock()
		if cn.gen != gen { // a new reader took over while this request stalled
			cn.queueLocked(out, size, keep)
			cn.mu.Unlock()
			return readResult{}, false
		}
		cn.serving.Add(1) // NB: under mu, so that a hand-over bumps it instead
		cn.out.add(out, keep)
		held = true
		// NB: the request and its answer count as in flight until the
		// answer is written, as a handed-over one's do.
		cn.inBytes += size + len(out)
		cn.outBytes += size + len(out)
		if len(cn.out.buf) >= bigFrameBytes || len(cn.out.segs) > 0 || cn.overLimits() {
			cn.mu.Unlock()
			held = false
			if err = cn.writeInline(gen); errors.Is(err, errHandedOver) {
				return readResult{}, false
			}
			cn.mu.Lock()
		}
		if err == nil {
			err = cn.admit()
		}
		cn.mu.Unlock()
		if keep {
			out = nil
		} else if cap(out) > maxPooledBytes {
			out = nil
		}
	}
}

// errHandedOver ends a reader whose write stalled: a new reader took over.
var errHandedOver = errors.New("tcp: reading handed over")

// writeInline writes the answers queued, as the reader of generation gen
// (see writeOut). A write that stalls it (the peer does not read) hands the
// reading on, as a stalled request does, so that the server reads on up to
// its limits meanwhile: it then returns errHandedOver once written.
func (cn *serverConn) writeInline(gen uint64) error {
	cn.servingBytes, cn.servingWrite = 0, true
	cn.serving.Add(1)
	if !cn.watchArmed.Load() {
		cn.armWatch()
	}
	err := cn.writeOut()
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.gen != gen {
		return errHandedOver
	}
	cn.serving.Add(1)
	return err
}

// admit waits until the connection's limits let the reader read another
// request; the caller holds mu. It fails once the connection is aborted
// or drains.
func (cn *serverConn) admit() error {
	for cn.overLimits() && !cn.draining && !cn.isAborted() {
		cn.waiting = true
		cn.cond.Wait()
		cn.waiting = false
	}
	switch {
	case cn.isAborted():
		return net.ErrClosed
	case cn.draining:
		return errDraining
	}
	return nil
}

// overLimits says whether the connection's limits let the reader read no
// further request; the caller holds mu.
func (cn *serverConn) overLimits() bool {
	return cn.inFlight >= cn.s.cfg.MaxInFlight || cn.inBytes >= cn.s.cfg.MaxInFlightBytes
}

// readDeadline sets the read deadline before each read: the frame
// timeout from when a frame was first seen partial, or else the idle
// timeout. It fails once the connection drains.
func (cn *serverConn) readDeadline(rd *reading, partial bool) error {
	s := cn.s
	var want time.Time
	switch {
	case partial:
		if rd.partialSince.IsZero() {
			rd.partialSince = time.Now()
		}
		want = rd.partialSince.Add(s.cfg.FrameTimeout)
	case s.cfg.IdleTimeout > 0:
		rd.partialSince = time.Time{}
		want = time.Now().Add(s.cfg.IdleTimeout)
		// NB: an idle deadline moves only once a tenth of it has passed,
		// to spare a timer update per read.
		if !rd.deadline.IsZero() && want.After(rd.deadline) && want.Sub(rd.deadline) < s.cfg.IdleTimeout/10 {
			want = rd.deadline
		}
	default:
		rd.partialSince = time.Time{}
	}
	// NB: under mu, so that drain's deadline is never overwritten.
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.draining {
		return errDraining
	}
	if want.Equal(rd.deadline) {
		return nil
	}
	rd.deadline = want
	return cn.nc.SetReadDeadline(want)
}

// readError says why a read failed.
func (cn *serverConn) readError(rd *reading, err error) error {
	s := cn.s
	if errors.Is(err, errDraining) || (cn.drainingNow() && errors.Is(err, os.ErrDeadlineExceeded)) {
		return errDraining
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if !rd.partialSince.IsZero() {
			return fmt.Errorf("a frame took over %v to arrive (slow peer): %w", s.cfg.FrameTimeout, err)
		}
		return fmt.Errorf("idle for over %v: %w", s.cfg.IdleTimeout, err)
	}
	return err
}

// errDraining ends a reader loop for Shutdown.
var errDraining = errors.New("tcp: server shutting down")

func (cn *serverConn) drainingNow() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.draining
}

// armWatch arms the stall check, unless it is armed, or makes it quick if
// the connection has turned pipelined.
func (cn *serverConn) armWatch() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	armed := cn.watchArmed.Load()
	if armed && (cn.watchQuick.Load() || !cn.pipelined.Load()) || cn.readEnded {
		return
	}
	if !armed {
		cn.watchedAt = cn.serving.Load()
	}
	// NB: a quick look soon after a slow one hands nothing over early: it
	// needs the reader in the same request at two looks.
	cn.watchArmed.Store(true)
	if cn.watch == nil {
		cn.watch = time.AfterFunc(cn.watchPeriod(), cn.checkStall)
	} else {
		cn.watch.Reset(cn.watchPeriod())
	}
}

// watchPeriod returns when the stall check looks next, as it sets its
// timer; the caller holds mu.
func (cn *serverConn) watchPeriod() time.Duration {
	quick := cn.pipelined.Load()
	cn.watchQuick.Store(quick)
	if quick {
		return stallTimeout
	}
	return cn.s.cfg.quietStall
}

// checkStall runs while armed, every stallTimeout on a pipelined
// connection and every quietStallTimeout otherwise. If the reader has been
// in the Handler for the same request since the last look, it hands the
// reading over to a new goroutine, counting that request as in flight (or,
// stuck in a write, just hands it over); if the reader holds answers, it
// has the writer write them. It disarms once it has found the reader out
// of the Handler, and serving nothing since, idleLooks looks in a row.
//
// NB: the check stays armed while the reader keeps serving, rather than
// disarm at the first look that finds it between requests: the reader
// would arm it again within microseconds, and arming a timer from a
// running goroutine costs a wake-up of the runtime's network poller (or
// of an idle processor), where a timer that re-arms itself when it fires
// does not.
func (cn *serverConn) checkStall() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.readEnded || !cn.watchArmed.Load() {
		return
	}
	at := cn.serving.Load()
	if at%2 == 0 {
		if at == cn.watchedAt {
			cn.idle++
		} else {
			cn.idle = 0
		}
		if cn.idle >= idleLooks {
			cn.idle = 0
			cn.watchArmed.Store(false)
			if at = cn.serving.Load(); at%2 == 0 {
				return
			}
			cn.watchArmed.Store(true) // NB: it entered one meanwhile
		} else {
			cn.watchedAt = at
			cn.watch.Reset(cn.watchPeriod())
			return
		}
	} else if at == cn.watchedAt && (cn.servingWrite || cn.inFlight < cn.s.cfg.MaxInFlight) {
		// NB: the new reader reads what queued behind the stalled request:
		// the connection counts as pipelined.
		cn.rd.pipelined = pipelinedRequests
		cn.pipelined.Store(true)
		cn.gen++
		if !cn.servingWrite {
			cn.inFlight++
			cn.inBytes += cn.servingBytes
		}
		gen := cn.gen
		cn.serving.Add(1) // NB: even again, for the new reader
		cn.wwg.Add(1)
		go cn.reader(gen)
	}
	cn.idle = 0
	if !cn.out.empty() && !cn.writing {
		// NB: the answers the reader queued before the request it is in
		// go out now, rather than once it has served what it read.
		cn.signal()
	}
	cn.watchedAt = at
	cn.watch.Reset(cn.watchPeriod())
}

// idleLooks is how many looks in a row the stall check must find the
// reader idle (out of the Handler, and having served nothing since the
// look before) before it disarms.
const idleLooks = 5

// serveRequest serves one decoded request as handle does, but an
// OpReadWait through the Handler's Serve if it is a
// transport.AsyncHandler: an answer that Serve does not give before it
// returns (parked is then true) is queued for the writer when it comes, as
// the answer to request id (of size bytes). A parked request counts as in
// flight from the moment Serve returns, unless a hand-over (past the
// reader's generation gen) counted it already.
func (cn *serverConn) serveRequest(req *transport.Request, op transport.Op, derr error, gen, id uint64, size int) (resp *transport.Response, parked bool) {
	ah, ok := cn.s.h.(transport.AsyncHandler)
	if !ok || derr != nil || req.Op != transport.OpReadWait {
		return cn.handle(req, op, derr), false
	}
	if resp := cn.refuse(req, op, derr); resp != nil {
		return resp, false
	}
	hook := cn.s.cfg.Hooks.Request
	start := time.Now()
	// NB: mu orders the answer against the reader's return from Serve:
	// an answer given before it is the reader's to send, one after it is
	// queued here.
	returned := false
	var early *transport.Response
	reply := func(r *transport.Response) {
		if r == nil {
			r = &transport.Response{Err: fmt.Errorf("%w: handler gave no response to %s", transport.ErrMalformed, req.Op)}
		}
		if hook != nil {
			hook(req.Op, time.Since(start), r.Err)
		}
		cn.mu.Lock()
		if !returned {
			early = r
			cn.mu.Unlock()
			return
		}
		cn.mu.Unlock()
		frame := appendHeader(nil, frameResponse, id, 0)
		frame = transport.AppendResponse(frame, r)
		setLen(frame)
		cn.queue(frame, size, true)
	}
	if failed := cn.guard(req.Op, func() *transport.Response { ah.Serve(req, reply); return nil }); failed != nil {
		early = failed
	}
	cn.mu.Lock()
	returned = true
	if early == nil && cn.gen == gen {
		// NB: under the same lock as returned, so that the answer's
		// queueLocked, which releases it, comes after.
		cn.inFlight++
		cn.inBytes += size
		cn.serving.Add(1) // NB: under mu, as for an answer given at once
	}
	cn.mu.Unlock()
	return early, early == nil
}

// refuse answers a request the Handler must not see: derr, the error that
// decoding it gave (op is its op, if known), or an op for a role the
// server does not play. It returns nil for a request to serve.
func (cn *serverConn) refuse(req *transport.Request, op transport.Op, derr error) *transport.Response {
	hook := cn.s.cfg.Hooks.Request
	if derr != nil {
		cn.s.cfg.Logger.Debug("tcp: malformed request", "node", cn.s.cfg.Node, "remote", cn.remote, "err", derr)
		if hook != nil {
			hook(op, 0, derr)
		}
		return &transport.Response{Err: derr}
	}
	if r := cn.s.cfg.Roles; r != 0 && opRole(req.Op)&r == 0 {
		err := fmt.Errorf("%w: %s needs a %s, %s serves %s", transport.ErrWrongRole, req.Op, opRole(req.Op), cn.s.cfg.Node, r)
		if hook != nil {
			hook(req.Op, 0, err)
		}
		return &transport.Response{Err: err}
	}
	return nil
}

// handle serves one decoded request (or answers derr, the error that
// decoding it gave: op is its op, if known).
func (cn *serverConn) handle(req *transport.Request, op transport.Op, derr error) (resp *transport.Response) {
	if resp := cn.refuse(req, op, derr); resp != nil {
		return resp
	}
	if hook := cn.s.cfg.Hooks.Request; hook != nil {
		start := time.Now()
		defer func() { hook(req.Op, time.Since(start), resp.Err) }()
	}
	resp = cn.guard(req.Op, func() *transport.Response { return cn.s.h.Handle(req) })
	if resp == nil {
		resp = &transport.Response{Err: fmt.Errorf("%w: handler gave no response to %s", transport.ErrMalformed, req.Op)}
	}
	return resp
}

// guard runs serve, the Handler's work on a request of op, and returns
// what it returns; a panic in it is logged, and answered as a failed
// handler (transport.ErrRemote) rather than taking the server down.
func (cn *serverConn) guard(op transport.Op, serve func() *transport.Response) (resp *transport.Response) {
	defer func() {
		if p := recover(); p != nil {
			cn.s.cfg.Logger.Error("tcp: handler panicked", "node", cn.s.cfg.Node, "op", op, "panic", p, "stack", string(debug.Stack()))
			resp = &transport.Response{Err: fmt.Errorf("%w: %s handler failed", transport.ErrRemote, op)}
		}
	}()
	return serve()
}

// queue hands a frame to the writer (by reference if keep: see
// outbox.add); once written, it releases reqBytes of in-flight accounting
// (and the frame's own bytes). A frame that answers a request in flight
// (reqBytes > 0) ends that request's flight.
func (cn *serverConn) queue(frame []byte, reqBytes int, keep bool) {
	cn.mu.Lock()
	cn.queueLocked(frame, reqBytes, keep)
	cn.mu.Unlock()
}

// queueLocked is queue with mu held.
func (cn *serverConn) queueLocked(frame []byte, reqBytes int, keep bool) {
	wasEmpty := cn.out.empty()
	cn.out.add(frame, keep)
	if reqBytes > 0 {
		cn.inFlight--
		cn.inBytes += len(frame)
		cn.outBytes += reqBytes + len(frame)
		if cn.waiting || cn.inFlight == 0 {
			cn.cond.Broadcast()
		}
	}
	if wasEmpty {
		cn.signal()
	}
}

func (cn *serverConn) signal() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued frames, one write per batch, until told to stop
// (once it has written everything) or the connection is aborted. The
// reader writes the answers it serves itself; the writer writes the rest
// (handed-over requests' answers, the goaway, and what the reader leaves
// when it stalls).
func (cn *serverConn) writeLoop() {
	defer cn.wwg.Done()
	for {
		select {
		case <-cn.wake:
		case <-cn.aborted:
			return
		}
		for {
			coalesce(&cn.mu, &cn.out)
			cn.mu.Lock()
			idle := cn.writing || cn.out.empty()
			stop := cn.stopWrite && !cn.writing && cn.out.empty()
			cn.mu.Unlock()
			if stop {
				return
			}
			if idle { // NB: a writing reader signals if it leaves frames
				break
			}
			if cn.writeOut() != nil {
				return
			}
		}
	}
}

// writeOut writes what is queued as one batch, unless another goroutine is
// writing (it tells the writer if it leaves frames). A failed write aborts
// the connection, is kept in writeErr, and returns net.ErrClosed.
func (cn *serverConn) writeOut() error {
	cn.mu.Lock()
	if cn.writing || cn.out.empty() {
		cn.mu.Unlock()
		return nil
	}
	cn.writing = true
	o, released := cn.out.take(cn.spare), cn.outBytes
	cn.outBytes = 0
	cn.mu.Unlock()
	err := cn.wd.write(o)
	cn.mu.Lock()
	cn.writing = false
	if err != nil {
		if !cn.isAborted() && cn.writeErr == nil {
			cn.warn("tcp: write failed, dropping connection", err)
			cn.writeErr = err
		}
		cn.mu.Unlock()
		cn.abort()
		return net.ErrClosed // NB: the cause is in writeErr
	}
	cn.inBytes -= released
	if cn.waiting {
		cn.cond.Broadcast()
	}
	cn.spare = o.recycle()
	more := !cn.out.empty() || cn.stopWrite
	cn.mu.Unlock()
	if more {
		cn.signal()
	}
	return nil
}
