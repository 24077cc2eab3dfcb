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
			aborted: make(chan struct{}), tasks: make(chan *task, s.cfg.MaxInFlight)}
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
	inFlight  int       // requests read and not yet answered
	inBytes   int       // bytes of requests in flight and of answers not yet written
	waiting   bool      // the reader waits on cond
	draining  bool      // Shutdown: read no more
	stopWrite bool      // the writer exits once wbuf is written

	writeErr error // the write that dropped the connection, if one did

	wake      chan struct{} // tells the writer there is work
	aborted   chan struct{} // closed by abort
	abortOnce sync.Once

	tasks       chan *task     // requests for the workers
	workers     int            // goroutines serving tasks; guarded by mu
	tasksClosed bool           // tasks is closed: start no worker; guarded by mu
	watch       *time.Timer    // the stall check, while a backlog is watched; guarded by mu
	watchedAt   uint64         // completed when the stall check was armed; guarded by mu
	completed   atomic.Uint64  // tasks served
	wwg         sync.WaitGroup // the workers and the writer
}

// stallTimeout is how long a backlog of requests may wait with no request
// finishing before another worker starts. The resident worker serves fast
// requests one after another, with no hand-off between goroutines per
// request; a request that blocks (a disk write) gets helpers for the
// requests behind it within about this long (timers are coarse: about a
// millisecond).
const stallTimeout = 200 * time.Microsecond

// task is one request frame to serve.
type task struct {
	id   uint64
	body []byte
}

var taskPool = sync.Pool{New: func() any { return new(task) }}

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

// serve runs the connection: the handshake, then the reader loop (here),
// the writer and the workers, then the close.
func (cn *serverConn) serve() {
	s := cn.s
	defer func() {
		s.mu.Lock()
		delete(s.conns, cn)
		s.mu.Unlock()
		s.nconns.Add(-1)
		s.wg.Done()
	}()
	if err := cn.handshake(); err != nil {
		cn.warn("tcp: handshake failed, dropping connection", err)
		if f := s.cfg.Hooks.HandshakeFailed; f != nil {
			f(cn.remote, err)
		}
		cn.abort()
		return
	}
	s.cfg.Logger.Debug("tcp: connection open", "node", s.cfg.Node, "remote", cn.remote, "client", cn.peer)
	if f := s.cfg.Hooks.ConnOpened; f != nil {
		f(cn.remote)
	}
	var dropped error // why the connection was dropped, for Hooks.ConnClosed
	cn.wwg.Add(1)
	go cn.writeLoop()

	last, err := cn.readLoop()
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
	cn.tasksClosed = true
	close(cn.tasks)
	if cn.watch != nil {
		cn.watch.Stop()
	}
	cn.stopWrite = true
	cn.mu.Unlock()
	cn.signal()
	cn.wwg.Wait()
	cn.abort()
	if f := s.cfg.Hooks.ConnClosed; f != nil {
		if dropped == nil {
			dropped = cn.writeErr
		}
		f(cn.remote, dropped)
	}
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

// readLoop reads request frames and hands them to the workers, until the
// connection ends, breaks the protocol, or drains. It returns the id of
// the last request it handed on.
func (cn *serverConn) readLoop() (last uint64, err error) {
	s := cn.s
	var (
		partialSince time.Time // when the frame in progress was first seen partial
		deadline     time.Time // the read deadline set, zero for none
	)
	fr := frameReader{r: cn.nc, max: s.cfg.MaxFrameBytes}
	fr.deadline = func(partial bool) error {
		var want time.Time
		switch {
		case partial:
			if partialSince.IsZero() {
				partialSince = time.Now()
			}
			want = partialSince.Add(s.cfg.FrameTimeout)
		case s.cfg.IdleTimeout > 0:
			partialSince = time.Time{}
			want = time.Now().Add(s.cfg.IdleTimeout)
			// NB: an idle deadline moves only once a tenth of it has
			// passed, to spare a timer update per read.
			if !deadline.IsZero() && want.After(deadline) && want.Sub(deadline) < s.cfg.IdleTimeout/10 {
				want = deadline
			}
		default:
			partialSince = time.Time{}
		}
		// NB: under mu, so that drain's deadline is never overwritten.
		cn.mu.Lock()
		defer cn.mu.Unlock()
		if cn.draining {
			return errDraining
		}
		if want.Equal(deadline) {
			return nil
		}
		deadline = want
		return cn.nc.SetReadDeadline(want)
	}
	for {
		h, body, owned, err := fr.next()
		if err != nil {
			if errors.Is(err, errDraining) || (cn.drainingNow() && errors.Is(err, os.ErrDeadlineExceeded)) {
				return last, errDraining
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				if !partialSince.IsZero() {
					err = fmt.Errorf("a frame took over %v to arrive (slow peer): %w", s.cfg.FrameTimeout, err)
				} else {
					err = fmt.Errorf("idle for over %v: %w", s.cfg.IdleTimeout, err)
				}
			}
			return last, err
		}
		partialSince = time.Time{}
		switch {
		case h.typ != frameRequest:
			return last, protocolError("%s frame sent to a server", h.typ)
		case h.id <= last:
			return last, protocolError("request id %d not above the last one, %d (reused?)", h.id, last)
		}
		last = h.id
		size := headerBytes + h.n
		t := taskPool.Get().(*task)
		t.id = h.id
		if owned {
			t.body = body
		} else {
			t.body = append(t.body[:0], body...)
		}
		cn.mu.Lock()
		cn.inFlight++
		cn.inBytes += size
		cn.tasks <- t // NB: never blocks: at most MaxInFlight tasks are queued or running
		switch {
		case cn.workers == 0:
			cn.startWorker(true)
		case cn.watch == nil && len(cn.tasks) > 0:
			cn.watchedAt = cn.completed.Load()
			cn.watch = time.AfterFunc(stallTimeout, cn.checkStall)
		}
		for (cn.inFlight >= s.cfg.MaxInFlight || cn.inBytes >= s.cfg.MaxInFlightBytes) && !cn.draining && !cn.isAborted() {
			cn.waiting = true
			cn.cond.Wait()
			cn.waiting = false
		}
		aborted, draining := cn.isAborted(), cn.draining
		cn.mu.Unlock()
		switch {
		case aborted:
			return last, net.ErrClosed
		case draining:
			return last, errDraining
		}
	}
}

// errDraining ends a reader loop for Shutdown.
var errDraining = errors.New("tcp: server shutting down")

func (cn *serverConn) drainingNow() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.draining
}

// startWorker starts a worker; the caller holds mu. A resident worker
// waits for tasks until the connection ends; a helper ends once it finds
// none.
func (cn *serverConn) startWorker(resident bool) {
	if cn.tasksClosed || cn.workers >= cn.s.cfg.MaxInFlight {
		return
	}
	cn.workers++
	cn.wwg.Add(1)
	go cn.worker(resident)
}

// checkStall runs stallTimeout after a backlog formed: if no task finished
// meanwhile, the workers are stuck (or slow), and one more starts. It keeps
// watching while the backlog lasts.
func (cn *serverConn) checkStall() {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	if cn.tasksClosed || len(cn.tasks) == 0 {
		cn.watch = nil
		return
	}
	if done := cn.completed.Load(); done == cn.watchedAt {
		cn.startWorker(false)
	} else {
		cn.watchedAt = done
	}
	cn.watch.Reset(stallTimeout)
}

// worker serves tasks; see startWorker.
func (cn *serverConn) worker(resident bool) {
	defer cn.wwg.Done()
	defer func() {
		cn.mu.Lock()
		cn.workers--
		cn.mu.Unlock()
	}()
	var out []byte
	for {
		var (
			t  *task
			ok bool
		)
		if resident {
			t, ok = <-cn.tasks
		} else {
			select {
			case t, ok = <-cn.tasks:
			default:
			}
		}
		if !ok {
			return
		}
		out = cn.serveTask(t, out[:0])
		cn.completed.Add(1)
		if cap(out) > maxPooledBytes {
			out = nil
		}
	}
}

// serveTask serves one request and queues its answer, using out as
// scratch space.
func (cn *serverConn) serveTask(t *task, out []byte) []byte {
	reqBytes := headerBytes + len(t.body)
	var resp *transport.Response
	if !cn.isAborted() {
		resp = cn.handle(t.body)
	}
	id := t.id
	if cap(t.body) > maxPooledBytes {
		t.body = nil
	}
	taskPool.Put(t)
	if resp == nil { // aborted: no one to answer
		cn.release(reqBytes)
		return out
	}
	out = appendHeader(out, frameResponse, id, 0)
	out = transport.AppendResponse(out, resp)
	setLen(out)
	if len(out) >= bigFrameBytes {
		cn.queue(out, reqBytes, true) // NB: by reference: out is not reused
		return nil
	}
	cn.queue(out, reqBytes, false)
	return out
}

// handle decodes and serves one request body.
func (cn *serverConn) handle(body []byte) (resp *transport.Response) {
	hook := cn.s.cfg.Hooks.Request
	req, err := transport.DecodeRequest(body)
	if err != nil {
		cn.s.cfg.Logger.Debug("tcp: malformed request", "node", cn.s.cfg.Node, "remote", cn.remote, "err", err)
		if hook != nil {
			op := transport.Op(0)
			if len(body) > 2 {
				op = transport.Op(body[2]) // NB: where a request message keeps its op
			}
			hook(op, 0, err)
		}
		return &transport.Response{Err: err}
	}
	if r := cn.s.cfg.Roles; r != 0 && opRole(req.Op)&r == 0 {
		err := fmt.Errorf("%w: %s needs a %s, %s serves %s", transport.ErrWrongRole, req.Op, opRole(req.Op), cn.s.cfg.Node, r)
		if hook != nil {
			hook(req.Op, 0, err)
		}
		return &transport.Response{Err: err}
	}
	if hook != nil {
		start := time.Now()
		defer func() { hook(req.Op, time.Since(start), resp.Err) }()
	}
	defer func() {
		if p := recover(); p != nil {
			cn.s.cfg.Logger.Error("tcp: handler panicked", "node", cn.s.cfg.Node, "op", req.Op, "panic", p, "stack", string(debug.Stack()))
			resp = &transport.Response{Err: fmt.Errorf("%w: %s handler failed", transport.ErrRemote, req.Op)}
		}
	}()
	resp = cn.s.h.Handle(req)
	if resp == nil {
		resp = &transport.Response{Err: fmt.Errorf("%w: handler gave no response to %s", transport.ErrMalformed, req.Op)}
	}
	return resp
}

// queue hands a frame to the writer (by reference if keep: see
// outbox.add); once written, it releases reqBytes of in-flight accounting
// (and the frame's own bytes). A frame that answers a request (reqBytes >
// 0) ends that request's flight.
func (cn *serverConn) queue(frame []byte, reqBytes int, keep bool) {
	cn.mu.Lock()
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
	cn.mu.Unlock()
	if wasEmpty {
		cn.signal()
	}
}

// release ends the flight of a request that got no answer.
func (cn *serverConn) release(reqBytes int) {
	cn.mu.Lock()
	cn.inFlight--
	cn.inBytes -= reqBytes
	cn.cond.Broadcast()
	cn.mu.Unlock()
}

func (cn *serverConn) signal() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// writeLoop writes queued frames, one write per batch, until told to stop
// (once it has written everything) or the connection is aborted.
func (cn *serverConn) writeLoop() {
	defer cn.wwg.Done()
	var spare []byte
	wd := writeDeadline{nc: cn.nc, timeout: cn.s.cfg.WriteTimeout}
	for {
		select {
		case <-cn.wake:
		case <-cn.aborted:
			return
		}
		for {
			coalesce(&cn.mu, &cn.out)
			cn.mu.Lock()
			o, released, stop := cn.out.take(spare), cn.outBytes, cn.stopWrite
			cn.outBytes = 0
			cn.mu.Unlock()
			if o.empty() {
				spare = o.buf
				if stop {
					return
				}
				break
			}
			if err := wd.write(o); err != nil {
				if !cn.isAborted() {
					cn.warn("tcp: write failed, dropping connection", err)
					cn.writeErr = err // NB: read by serve after wwg.Wait
				}
				cn.abort()
				return
			}
			cn.mu.Lock()
			cn.inBytes -= released
			if cn.waiting {
				cn.cond.Broadcast()
			}
			cn.mu.Unlock()
			spare = o.recycle()
		}
	}
}
