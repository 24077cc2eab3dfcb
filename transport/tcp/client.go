package tcp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/bits"
	"math/rand/v2"
	"net"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corfulog/corfu/transport"
)

// Defaults for the zero values of ClientConfig and ServerConfig.
const (
	DefaultDialTimeout      = 5 * time.Second
	DefaultMinBackoff       = 10 * time.Millisecond
	DefaultMaxBackoff       = 2 * time.Second
	DefaultWriteTimeout     = 30 * time.Second
	DefaultHandshakeTimeout = 10 * time.Second
	DefaultFrameTimeout     = 30 * time.Second
	DefaultDrainTimeout     = 30 * time.Second
	DefaultMaxInFlight      = 1024
	DefaultMaxInFlightBytes = 64 << 20
	DefaultMaxConns         = 4096
	DefaultClientName       = "client"
)

var (
	// ErrClosed reports a call on a closed Client, or one that was in flight
	// when the Client was closed. Errors that wrap it also wrap
	// transport.ErrUnreachable.
	ErrClosed = errors.New("tcp: client closed")
	// errNotServed reports a request that the server said it would not
	// serve (a goaway) or that never left the client: it may be sent again.
	errNotServed = errors.New("tcp: request not served")
)

// ClientConfig configures a Client. Resolve is required; every other field
// has a documented default.
type ClientConfig struct {
	// Resolve returns the network address ("host:port") of a node. It is
	// called for each new connection, so a node that moved is found at its
	// new address once its old connection fails. Required; see
	// StaticResolver.
	Resolve func(node transport.NodeID) (string, error)
	// Name is the client's name in its hellos, for the servers' logs.
	// Default DefaultClientName.
	Name string
	// TLS, if not nil, secures every connection with TLS 1.3 (a lower
	// MinVersion is raised). Each dial sets ServerName to the node's name
	// (or to ServerName's answer), so the server's certificate must name
	// the node; with Certificates set, the client presents its own for
	// mutual TLS. See docs/wire.md for the identity checks.
	TLS *tls.Config
	// ServerName, if not nil, returns the name a node's certificate must
	// carry. Default: the node's name.
	ServerName func(node transport.NodeID) string
	// ConnsPerNode is the number of connections kept to each node; calls
	// are spread over them in turn. Default 1: one connection carries many
	// calls at once.
	ConnsPerNode int
	// MaxInFlight bounds the calls in flight on one connection; the server
	// announces its own bound, and the lower one applies. A call beyond it
	// waits for a slot (or its ctx). Default: the server's.
	MaxInFlight int
	// DialTimeout bounds a connection's dial and handshake (TLS and
	// hello). A dial does not end with the ctx of the call that started
	// it: calls wait for it within their own ctx. Default
	// DefaultDialTimeout.
	DialTimeout time.Duration
	// MinBackoff and MaxBackoff bound the wait after a failed dial before
	// the node is dialed again: it doubles from MinBackoff up to
	// MaxBackoff, with jitter. Calls to the node meanwhile fail at once
	// with the last dial's error. Defaults DefaultMinBackoff and
	// DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// WriteTimeout bounds one write to a connection; a server that takes no
	// bytes for that long is given up. Default DefaultWriteTimeout.
	WriteTimeout time.Duration
	// Dial, if not nil, opens connections instead of a net.Dialer.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// Logger receives connection events. Default: discard.
	Logger *slog.Logger
}

// StaticResolver returns a ClientConfig.Resolve that looks nodes up in a
// copy of addrs. An unknown node gives an error.
func StaticResolver(addrs map[transport.NodeID]string) func(transport.NodeID) (string, error) {
	m := make(map[transport.NodeID]string, len(addrs))
	for k, v := range addrs {
		m[k] = v
	}
	return func(node transport.NodeID) (string, error) {
		a, ok := m[node]
		if !ok {
			return "", fmt.Errorf("no address for node %q", node)
		}
		return a, nil
	}
}

func (c *ClientConfig) fill() error {
	if c.Resolve == nil {
		return errors.New("tcp: ClientConfig.Resolve is required")
	}
	if c.Name == "" {
		c.Name = DefaultClientName
	}
	if len(c.Name) > MaxNameBytes {
		return fmt.Errorf("tcp: client name of %d bytes, limit %d", len(c.Name), MaxNameBytes)
	}
	setDefault(&c.ConnsPerNode, 1)
	setDefault(&c.DialTimeout, DefaultDialTimeout)
	setDefault(&c.MinBackoff, DefaultMinBackoff)
	setDefault(&c.MaxBackoff, DefaultMaxBackoff)
	setDefault(&c.WriteTimeout, DefaultWriteTimeout)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	switch {
	case c.ConnsPerNode < 0 || c.MaxInFlight < 0:
		return errors.New("tcp: negative ConnsPerNode or MaxInFlight")
	case c.DialTimeout < 0 || c.MinBackoff < 0 || c.MaxBackoff < c.MinBackoff || c.WriteTimeout < 0:
		return errors.New("tcp: negative timeout, or MaxBackoff below MinBackoff")
	}
	if c.TLS != nil {
		c.TLS = c.TLS.Clone()
		c.TLS.MinVersion = max(c.TLS.MinVersion, tls.VersionTLS13)
	}
	return nil
}

func setDefault[T int | time.Duration](v *T, d T) {
	if *v == 0 {
		*v = d
	}
}

// Client is a transport.Caller that reaches nodes over TCP (or TLS). It
// keeps ConnsPerNode connections to each node it calls, dialed on first
// use and again after a failure (with backoff), and sends many calls over
// each at once: every request carries an id, and the answers may come back
// in any order.
//
// A Client is safe for concurrent use. Close releases its connections.
type Client struct {
	cfg ClientConfig

	ctx    context.Context // cancelled by Close: ends dials
	cancel context.CancelFunc

	// NB: mu is taken after a peer's mu, never before.
	mu     sync.Mutex
	peers  map[transport.NodeID]*peer
	known  sync.Map                 // peers, for calls that take no lock
	conns  map[*clientConn]struct{} // every connection not yet failed
	closed bool

	isClosed atomic.Bool // closed, for calls that take no lock

	wg sync.WaitGroup // dials and connection goroutines

	directCalls atomic.Uint64 // calls written and read by their callers, for tests
}

var _ transport.Caller = (*Client)(nil)

// NewClient returns a client configured by cfg. It dials nothing until the
// first call. It fails only for a config that cannot work (no Resolve, a
// negative limit).
func NewClient(cfg ClientConfig) (*Client, error) {
	if err := cfg.fill(); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	return &Client{cfg: cfg, ctx: ctx, cancel: cancel,
		peers: make(map[transport.NodeID]*peer), conns: make(map[*clientConn]struct{})}, nil
}

// peer is the pool of connections to one node.
type peer struct {
	node  transport.NodeID
	next  atomic.Uint32
	mu    sync.Mutex
	slots []slot
}

// slot is one connection of a pool, with its dial state.
type slot struct {
	live     atomic.Pointer[clientConn] // conn, for calls that take no lock
	conn     *clientConn                // the live connection, if any
	dial     *dialing                   // the dial in progress, if any
	failures int                        // dials failed in a row
	retryAt  time.Time                  // no dial before then
	lastErr  error                      // the last dial's error
}

// dialing is a dial that calls wait for.
type dialing struct {
	done chan struct{}
	conn *clientConn
	err  error
}

// Call sends req to node to and returns its response, as transport.Caller
// describes: ctx's error if ctx ends first, an error wrapping
// transport.ErrUnreachable if the node cannot be resolved, dialed or
// reached (a call in flight on a connection that fails may or may not have
// been served; one the server refused with a goaway, or that never left
// the client, is sent again on a fresh connection; one that never left the
// client, for want of a connection, wraps transport.ErrNotSent too), an error wrapping
// transport.ErrMalformed if req is nil or too large for a frame or the
// answer does not decode, an error wrapping ErrClosed (and
// transport.ErrUnreachable) once Close was called; otherwise the decoded
// response and its Err.
func (c *Client) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", transport.ErrMalformed)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if c.isClosed.Load() {
		return nil, c.closedError()
	}
	var err error
	for range 3 {
		var cn *clientConn
		cn, err = c.conn(ctx, to)
		if err != nil {
			// NB: no connection, so nothing was written: the caller may
			// count on the node not having the request.
			return nil, notSent(err)
		}
		var resp *transport.Response
		resp, err = cn.call(ctx, req)
		if !errors.Is(err, errNotServed) {
			return resp, err
		}
	}
	return nil, fmt.Errorf("%w: %s: %w", transport.ErrNotSent, to, err)
}

// notSent marks err, from a request that never left the client, with
// transport.ErrNotSent, unless it is a context's or says so already.
func notSent(err error) error {
	if errors.Is(err, transport.ErrUnreachable) && !errors.Is(err, transport.ErrNotSent) {
		return fmt.Errorf("%w: %w", transport.ErrNotSent, err)
	}
	return err
}

// Connect opens the connections to node now (all ConnsPerNode of them),
// rather than at the first calls, and waits for them or for ctx. It
// returns the first dial's error, wrapping transport.ErrUnreachable.
func (c *Client) Connect(ctx context.Context, node transport.NodeID) error {
	p, err := c.peer(node)
	if err != nil {
		return err
	}
	for i := range p.slots {
		if _, err := c.slotConn(ctx, p, i); err != nil {
			return err
		}
	}
	return nil
}

// Redial ends the wait after failed dials to node (see
// ClientConfig.MinBackoff): the next call to it dials at once. A caller
// that learns the node is back (it restarted, or moved and Resolve knows
// where) need not wait out the backoff. Connections open or being dialed
// are left alone.
func (c *Client) Redial(node transport.NodeID) {
	v, ok := c.known.Load(node)
	if !ok {
		return
	}
	p := v.(*peer)
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := range p.slots {
		s := &p.slots[i]
		s.failures, s.retryAt = 0, time.Time{}
	}
}

// Close closes every connection and waits for the client's goroutines to
// end. Calls in flight fail with an error wrapping ErrClosed and
// transport.ErrUnreachable (the server may or may not have served them),
// and so do later calls. Close is idempotent and returns nil.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		c.wg.Wait()
		return nil
	}
	c.closed = true
	c.isClosed.Store(true)
	c.cancel()
	conns := make([]*clientConn, 0, len(c.conns))
	for cn := range c.conns {
		conns = append(conns, cn)
	}
	c.mu.Unlock()
	for _, cn := range conns {
		cn.fail(fmt.Errorf("%w: %w", transport.ErrUnreachable, ErrClosed))
	}
	c.wg.Wait()
	return nil
}

func (c *Client) closedError() error {
	return fmt.Errorf("%w: %w", transport.ErrUnreachable, ErrClosed)
}

// peer returns the pool for node, creating it.
func (c *Client) peer(node transport.NodeID) (*peer, error) {
	if p, ok := c.known.Load(node); ok {
		return p.(*peer), nil // NB: a closed client fails in conn
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return nil, c.closedError()
	}
	p := c.peers[node]
	if p == nil {
		p = &peer{node: node, slots: make([]slot, c.cfg.ConnsPerNode)}
		c.peers[node] = p
		c.known.Store(node, p)
	}
	return p, nil
}

// conn returns a live connection to node, dialing one if needed.
func (c *Client) conn(ctx context.Context, node transport.NodeID) (*clientConn, error) {
	p, err := c.peer(node)
	if err != nil {
		return nil, err
	}
	i := 0
	if len(p.slots) > 1 {
		i = int(p.next.Add(1) % uint32(len(p.slots)))
	}
	return c.slotConn(ctx, p, i)
}

// slotConn returns the live connection of p's slot i, dialing one if
// needed.
func (c *Client) slotConn(ctx context.Context, p *peer, i int) (*clientConn, error) {
	s := &p.slots[i]
	if cn := s.live.Load(); cn != nil && cn.usable() {
		return cn, nil
	}
	p.mu.Lock()
	if cn := s.conn; cn != nil {
		if cn.usable() {
			p.mu.Unlock()
			return cn, nil
		}
		s.conn = nil
		s.live.Store(nil)
	}
	d := s.dial
	if d == nil {
		if now := time.Now(); now.Before(s.retryAt) {
			err, failures, wait := s.lastErr, s.failures, s.retryAt.Sub(now)
			p.mu.Unlock()
			return nil, fmt.Errorf("%w: %s: %d dials failed, next in %v: %w", transport.ErrUnreachable,
				p.node, failures, wait.Round(time.Millisecond), err)
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			p.mu.Unlock()
			return nil, c.closedError()
		}
		c.wg.Add(1)
		c.mu.Unlock()
		d = &dialing{done: make(chan struct{})}
		s.dial = d
		go c.dialSlot(p, i, d)
	}
	p.mu.Unlock()
	select {
	case <-d.done:
		return d.conn, d.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, c.closedError()
	}
}

// dialSlot dials slot i of p and reports to the calls waiting on d.
func (c *Client) dialSlot(p *peer, i int, d *dialing) {
	defer c.wg.Done()
	cn, err := c.dial(p.node)
	p.mu.Lock()
	s := &p.slots[i]
	s.dial = nil
	if err != nil {
		s.failures++
		backoff := c.cfg.MinBackoff << min(s.failures-1, 30)
		if backoff > c.cfg.MaxBackoff || backoff <= 0 {
			backoff = c.cfg.MaxBackoff
		}
		if half := backoff / 2; half > 0 {
			backoff = half + rand.N(half+1)
		}
		s.retryAt = time.Now().Add(backoff)
		s.lastErr = err
		c.cfg.Logger.Warn("tcp: dial failed", "node", p.node, "failures", s.failures, "retry_in", backoff, "err", err)
	} else {
		s.failures, s.lastErr = 0, nil
		c.mu.Lock()
		if c.closed {
			err = c.closedError()
		} else {
			s.conn = cn
			s.live.Store(cn)
			c.conns[cn] = struct{}{}
			cn.start()
		}
		c.mu.Unlock()
		if err != nil {
			_ = cn.nc.Close()
			cn = nil
		}
	}
	p.mu.Unlock()
	d.conn, d.err = cn, err
	close(d.done)
}

// dial opens, secures and greets a connection to node.
func (c *Client) dial(node transport.NodeID) (*clientConn, error) {
	if len(node) > MaxNameBytes {
		return nil, fmt.Errorf("%w: node name of %d bytes, limit %d", transport.ErrUnreachable, len(node), MaxNameBytes)
	}
	addr, err := c.cfg.Resolve(node)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", transport.ErrUnreachable, node, err)
	}
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	var nc net.Conn
	if c.cfg.Dial != nil {
		nc, err = c.cfg.Dial(ctx, "tcp", addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %s at %s: %w", transport.ErrUnreachable, node, addr, err)
	}
	cn, err := c.handshake(ctx, nc, node)
	if err != nil {
		_ = nc.Close()
		return nil, fmt.Errorf("%w: %s at %s: %w", transport.ErrUnreachable, node, addr, err)
	}
	c.cfg.Logger.Debug("tcp: connected", "node", node, "addr", addr, "roles", cn.roles)
	return cn, nil
}

// handshake secures nc (with TLS, if configured), sends the hello and reads
// the welcome.
func (c *Client) handshake(ctx context.Context, nc net.Conn, node transport.NodeID) (*clientConn, error) {
	deadline, _ := ctx.Deadline()
	if err := nc.SetDeadline(deadline); err != nil {
		return nil, err
	}
	var tc *tls.Conn
	if c.cfg.TLS != nil {
		cfg := c.cfg.TLS.Clone()
		cfg.ServerName = string(node)
		if c.cfg.ServerName != nil {
			cfg.ServerName = c.cfg.ServerName(node)
		}
		tc = tls.Client(nc, cfg)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, fmt.Errorf("tls: %w", err)
		}
		nc = tc
	}
	b := appendHello(nil, hello{minVersion: ProtocolVersion, maxVersion: ProtocolVersion,
		role: RoleClient, from: c.cfg.Name, to: string(node)})
	if _, err := nc.Write(appendFrame(nil, frameHello, 0, b)); err != nil {
		return nil, err
	}
	var hdr [headerBytes]byte
	if _, err := io.ReadFull(nc, hdr[:]); err != nil {
		return nil, fmt.Errorf("reading the welcome: %w", err)
	}
	h, err := parseHeader(hdr[:], maxHandshakeBytes)
	if err != nil {
		return nil, err
	}
	body := make([]byte, h.n)
	if _, err := io.ReadFull(nc, body); err != nil {
		return nil, fmt.Errorf("reading the welcome: %w", err)
	}
	switch h.typ {
	case frameWelcome:
	case frameReject:
		reason, err := decodeReason(body)
		if err != nil {
			return nil, err
		}
		return nil, fmt.Errorf("refused by the server: %s", reason)
	default:
		return nil, protocolError("%s frame in answer to the hello", h.typ)
	}
	w, err := decodeWelcome(body)
	if err != nil {
		return nil, err
	}
	switch {
	case w.version != ProtocolVersion:
		return nil, protocolError("server chose version %d, this client speaks %d", w.version, ProtocolVersion)
	case w.node != string(node):
		return nil, fmt.Errorf("dialed %s but reached %q", node, w.node)
	}
	if tc != nil {
		if err := checkServerRoles(tc.ConnectionState(), w.roles); err != nil {
			return nil, err
		}
	}
	if err := nc.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	inFlight := int(min(w.maxInFlight, maxSlots))
	if c.cfg.MaxInFlight > 0 {
		inFlight = min(inFlight, c.cfg.MaxInFlight)
	}
	cn := &clientConn{
		cl:       c,
		node:     node,
		nc:       nc,
		roles:    w.roles,
		maxFrame: int(min(w.maxFrameBytes, transport.MaxFrameBytes)),
		slotBits: uint(bits.Len(uint(inFlight - 1))),
		free:     make([]uint32, inFlight),
		pending:  make([]*call, inFlight),
		wake:     make(chan struct{}, 1),
		closing:  make(chan struct{}),
		rtoken:   make(chan *clientRead, 1),
		rwake:    make(chan struct{}, 1),
	}
	cn.wd = newWriteDeadline(nc, c.cfg.WriteTimeout)
	cn.rtoken <- cn.newRead()
	for i := range cn.free {
		cn.free[i] = uint32(inFlight - 1 - i) // NB: slot 0 first
	}
	return cn, nil
}

// clientConn is one connection to a node: a writer goroutine that sends
// the queued request frames, many at a time, and a reader goroutine that
// hands each response to its call.
type clientConn struct {
	cl       *Client
	node     transport.NodeID
	nc       net.Conn
	roles    Role
	maxFrame int // the largest request body the server takes
	// NB: a request's id is a sequence number shifted left by slotBits,
	// or'ed with the index of its slot in pending: ids strictly increase,
	// as the server demands, and an answer finds its call by index.
	slotBits uint

	mu       sync.Mutex
	free     []uint32      // the free slots, the next one last
	slotWait []chan uint32 // calls waiting for a slot, oldest first: each gets one by its channel
	out      outbox        // frames queued for the writer
	nextID   uint64        // the id of the last request queued
	seq      uint64        // the sequence number of the last request queued
	pending  []*call       // calls sent and not answered, by slot; nil once failed
	err      error         // set once the connection failed: no new calls
	goAway   bool          // the server serves no request above lastID
	lastID   uint64        // with goAway: the last id the server serves

	wake      chan struct{} // tells the writer there is work
	closing   chan struct{} // closed by fail
	closeOnce sync.Once
	state     atomic.Int32 // connOpen, connDraining or connFailed

	// resuming counts the calls the reader answered whose callers have
	// not yet run again, plus one while the reader hands out the answers
	// of one read. While it is above 0, a queued frame does not wake the
	// writer: the callers about to run are likely to queue requests of
	// their own, and one write then carries them all. The one that brings
	// it to 0 wakes the writer if frames wait (see resumed).
	resuming atomic.Int32

	// awaited counts the calls sent (or being sent) and not answered;
	// it changes under mu.
	awaited atomic.Int32
	// rtoken holds the connection's reading while no goroutine reads it
	// (see clientRead); rwake tells the reader goroutine that calls
	// await answers.
	rtoken chan *clientRead
	rwake  chan struct{}
	// wbusy says a goroutine is writing: the writer, or a caller writing
	// its own request (see callDirect). It guards wd; mu guards it.
	wbusy bool
	wd    writeDeadline
}

const (
	connOpen int32 = iota
	connDraining
	connFailed
)

// maxSlots bounds a connection's calls in flight, whatever the server
// allows.
const maxSlots = 1 << 16

// call is one request in flight; calls are pooled.
type call struct {
	id        uint64        // the request id, once sent
	frame     []byte        // the request frame
	body      []byte        // the response body, copied out of the read buffer
	err       error         // the connection's error, if it failed first
	done      chan struct{} // gets one value when body or err is set
	abandoned bool          // the caller gave up (ctx); guarded by clientConn.mu
	counted   bool          // the reader counted the answer in clientConn.resuming
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// maxPooledBytes bounds the buffers a pooled call or an idle connection
// keeps; larger ones are dropped after use.
const maxPooledBytes = 64 << 10

func putCall(cl *call) {
	if cap(cl.frame) > maxPooledBytes {
		cl.frame = nil
	}
	if cap(cl.body) > maxPooledBytes {
		cl.body = nil
	}
	cl.id, cl.err, cl.abandoned, cl.counted = 0, nil, false, false
	callPool.Put(cl)
}

func (cn *clientConn) usable() bool { return cn.state.Load() == connOpen }

// start runs the connection's goroutines.
func (cn *clientConn) start() {
	cn.cl.wg.Add(2)
	go cn.writeLoop()
	go cn.readLoop()
}

// call sends req on the connection and waits for its answer. An error
// wrapping errNotServed means the request was not served and may be sent
// again elsewhere.
func (cn *clientConn) call(ctx context.Context, req *transport.Request) (*transport.Response, error) {
	cl := callPool.Get().(*call)
	cl.frame = appendHeader(cl.frame[:0], frameRequest, 0, 0)
	cl.frame = transport.AppendRequest(cl.frame, req)
	if n := len(cl.frame) - headerBytes; n > cn.maxFrame {
		putCall(cl)
		return nil, fmt.Errorf("%w: %s request of %d bytes exceeds the frame limit of %d", transport.ErrMalformed, req.Op, n, cn.maxFrame)
	}
	setLen(cl.frame)

	rs, err := cn.idleRead()
	if err != nil {
		putCall(cl)
		return nil, errNotServed
	}
	cn.mu.Lock()
	if cn.err != nil || cn.goAway {
		cn.mu.Unlock()
		cn.releaseRead(rs)
		putCall(cl)
		return nil, errNotServed
	}
	var slot uint32
	if n := len(cn.free); n > 0 {
		slot = cn.free[n-1]
		cn.free = cn.free[:n-1]
	} else {
		cn.releaseRead(rs) // NB: calls in flight after all: theirs
		rs = nil
		var err error
		if slot, err = cn.waitSlot(ctx); err != nil {
			putCall(cl)
			return nil, err
		}
	}
	cn.seq++
	id := cn.seq<<cn.slotBits | uint64(slot)
	cn.nextID = id
	cl.id = id
	setID(cl.frame, id)
	cn.pending[slot] = cl
	alone := cn.awaited.Add(1) == 1
	// NB: the writer is woken by the first frame queued, unless callers
	// the reader answered are still to run: the last of them wakes it.
	// resuming is read under mu, which resumed takes once it falls to 0,
	// so that one of the two sees the other's change.
	wake := cn.out.empty() && cn.resuming.Load() == 0
	direct := rs != nil && alone && wake && !cn.wbusy
	if direct {
		cn.wbusy = true
	} else {
		// NB: a large frame goes by reference: it stays as it is until
		// written, since putCall drops large buffers rather than reuse them.
		cn.out.add(cl.frame, true)
	}
	cn.mu.Unlock()
	switch {
	case direct:
		cn.callDirect(ctx, cl, rs)
	default:
		if wake {
			cn.wakeWriter()
		}
		if rs != nil {
			cn.releaseRead(rs) // NB: wakes the reader goroutine for this call
		} else {
			cn.wakeReader()
		}
	}

	if done := ctx.Done(); done == nil {
		<-cl.done // NB: a ctx that never ends: no select
	} else {
		select {
		case <-cl.done:
		case <-done:
			cn.mu.Lock()
			if cn.pending != nil && cn.pending[slot] == cl {
				// NB: the call stays pending, so that its answer (which may
				// still come) finds it and frees its slot; the reader then
				// pools it.
				cl.abandoned = true
				cn.mu.Unlock()
				return nil, ctx.Err()
			}
			cn.mu.Unlock()
			<-cl.done // answered meanwhile
		}
	}
	if cl.counted {
		// NB: as late as can be, so that a caller that calls again at once
		// queues its request before the writer it may wake runs.
		defer cn.resumed()
	}
	defer putCall(cl)
	if cl.err != nil {
		return nil, cl.err
	}
	resp, err := transport.DecodeResponse(cl.body)
	if err != nil {
		return nil, fmt.Errorf("tcp: response of %s to %s: %w", cn.node, req.Op, err)
	}
	return resp, resp.Err
}

// resumed ends one count in resuming; the last one wakes the writer if
// frames wait.
func (cn *clientConn) resumed() {
	if cn.resuming.Add(-1) != 0 {
		return
	}
	cn.mu.Lock()
	wake := !cn.out.empty()
	cn.mu.Unlock()
	if wake {
		cn.wakeWriter()
	}
}

// wakeWriter tells the writer there are frames to write.
func (cn *clientConn) wakeWriter() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// waitSlot waits for a free slot, for ctx or for the connection to fail
// or go away. It is called with mu held, and returns with it held, unless
// it fails.
func (cn *clientConn) waitSlot(ctx context.Context) (uint32, error) {
	w := make(chan uint32, 1)
	cn.slotWait = append(cn.slotWait, w)
	cn.mu.Unlock()
	var err error
	select {
	case slot := <-w:
		cn.mu.Lock()
		if cn.err == nil && !cn.goAway {
			return slot, nil
		}
		cn.freeSlot(slot)
		cn.mu.Unlock()
		return 0, errNotServed
	case <-ctx.Done():
		err = ctx.Err()
	case <-cn.closing:
		err = errNotServed
	}
	cn.mu.Lock()
	if i := slices.Index(cn.slotWait, w); i >= 0 {
		cn.slotWait = slices.Delete(cn.slotWait, i, i+1)
	} else {
		cn.freeSlot(<-w) // NB: handed one meanwhile: pass it on
	}
	cn.mu.Unlock()
	return 0, err
}

// freeSlot hands slot to the call that has waited longest for one, or
// puts it back; the caller holds mu.
func (cn *clientConn) freeSlot(slot uint32) {
	if len(cn.slotWait) > 0 {
		cn.slotWait[0] <- slot // NB: never blocks: each waiter gets one slot
		cn.slotWait = slices.Delete(cn.slotWait, 0, 1)
		return
	}
	cn.free = append(cn.free, slot)
}

// fail ends the connection with err: every pending call gets err, and the
// connection closes. Only the first call does anything.
func (cn *clientConn) fail(err error) {
	cn.closeOnce.Do(func() {
		cn.state.Store(connFailed)
		cn.mu.Lock()
		cn.err = err
		pending := cn.pending
		cn.pending = nil
		cn.mu.Unlock()
		close(cn.closing)
		_ = cn.nc.Close()
		cn.cl.mu.Lock()
		delete(cn.cl.conns, cn)
		cn.cl.mu.Unlock()
		for _, cl := range pending {
			if cl == nil {
				continue
			}
			if cl.abandoned {
				putCall(cl)
				continue
			}
			cl.err = err
			cl.done <- struct{}{}
		}
		if !errors.Is(err, ErrClosed) {
			cn.cl.cfg.Logger.Debug("tcp: connection closed", "node", cn.node, "err", err)
		}
	})
}

// writeLoop sends what calls queue, as one write per batch: it is woken
// once the callers that the reader answered have run again (see
// resuming), so that a batch carries the requests they made meanwhile.
func (cn *clientConn) writeLoop() {
	defer cn.cl.wg.Done()
	var spare []byte
	for {
		select {
		case <-cn.wake:
		case <-cn.closing:
			return
		}
		cn.mu.Lock()
		if cn.wbusy {
			cn.mu.Unlock()
			continue
		}
		o := cn.out.take(spare)
		if !o.empty() {
			cn.wbusy = true
		}
		cn.mu.Unlock()
		if o.empty() {
			spare = o.buf
			continue
		}
		if cn.writeOut(o) != nil {
			return
		}
		spare = o.recycle()
	}
}

// coalesce lets the goroutines that are ready to queue frames do so before
// the writer takes the outbox o (guarded by mu): it yields while the queue
// keeps growing, a few times at most. One write then carries many frames,
// where writing at once would carry one each.
func coalesce(mu *sync.Mutex, o *outbox) {
	mu.Lock()
	n := len(o.buf) + len(o.segs)
	mu.Unlock()
	for range 4 {
		runtime.Gosched()
		mu.Lock()
		m := len(o.buf) + len(o.segs)
		mu.Unlock()
		if m == n {
			return
		}
		n = m
	}
}

// writeAll writes b under a deadline of timeout (none if 0).
func writeAll(nc net.Conn, b []byte, timeout time.Duration) error {
	if timeout > 0 {
		if err := nc.SetWriteDeadline(time.Now().Add(timeout)); err != nil {
			return err
		}
	}
	_, err := nc.Write(b)
	return err
}

// dispatch is the answers of one read that the reader has matched to
// their calls, under one hold of the connection's lock, and not yet handed
// to them.
//
// NB: the reader takes mu once for all the answers one read brought, not
// once per answer, and wakes their callers only once it has let go of it:
// callers it woke earlier would contend with it for mu as they queue
// their next requests.
type dispatch struct {
	locked bool    // the reader holds clientConn.mu
	calls  []*call // answered, to wake once mu is released
	drop   []*call // answered after their callers gave up, to pool
}

// maxDispatch bounds the answers the reader matches before it hands them
// out, so that a read of many answers does not keep mu for long.
const maxDispatch = 256

// answer matches the response frame h (of body, owned as frameReader.next
// says) to its call, taking mu if the reader does not hold it yet.
func (d *dispatch) answer(cn *clientConn, h header, body []byte, owned bool) error {
	if !d.locked {
		cn.mu.Lock()
		d.locked = true
	}
	slot := h.id & (1<<cn.slotBits - 1)
	var cl *call
	if slot < uint64(len(cn.pending)) {
		cl = cn.pending[slot]
	}
	if cl == nil || cl.id != h.id {
		sent := cn.nextID
		if h.id > sent {
			return protocolError("response to request %d, never sent (last %d)", h.id, sent)
		}
		return protocolError("response to request %d, not in flight (answered twice?)", h.id)
	}
	cn.pending[slot] = nil
	cn.awaited.Add(-1)
	cn.freeSlot(uint32(slot))
	if cl.abandoned {
		d.drop = append(d.drop, cl)
	} else {
		if owned {
			cl.body = body
		} else {
			cl.body = append(cl.body[:0], body...)
		}
		cl.counted = true
		d.calls = append(d.calls, cl)
	}
	if len(d.calls)+len(d.drop) >= maxDispatch {
		d.flush(cn)
	}
	return nil
}

// flush releases mu, if the reader holds it, and hands the answers
// matched so far to their calls.
func (d *dispatch) flush(cn *clientConn) {
	if d.locked {
		d.locked = false
		cn.mu.Unlock()
	}
	if n := len(d.calls); n > 0 {
		// NB: counted before any of them can run and end its count.
		cn.resuming.Add(int32(n))
		for i, cl := range d.calls {
			d.calls[i] = nil
			cl.done <- struct{}{}
		}
		d.calls = d.calls[:0]
	}
	for i, cl := range d.drop {
		d.drop[i] = nil
		putCall(cl)
	}
	d.drop = d.drop[:0]
}

// handle processes one frame from the server other than a response.
func (cn *clientConn) handle(h header, body []byte) error {
	switch h.typ {
	case frameGoAway:
		reason, err := decodeReason(body)
		if err != nil {
			return err
		}
		cn.state.Store(connDraining)
		cn.mu.Lock()
		if h.id > cn.nextID {
			cn.mu.Unlock()
			return protocolError("goaway after request %d, never sent (last %d)", h.id, cn.nextID)
		}
		cn.goAway, cn.lastID = true, h.id
		var refused []*call
		for slot, cl := range cn.pending {
			if cl != nil && cl.id > h.id {
				cn.pending[slot] = nil
				cn.awaited.Add(-1)
				cn.freeSlot(uint32(slot))
				refused = append(refused, cl)
			}
		}
		cn.mu.Unlock()
		cn.cl.cfg.Logger.Debug("tcp: server going away", "node", cn.node, "last", h.id, "reason", reason)
		for _, cl := range refused {
			if cl.abandoned {
				putCall(cl)
				continue
			}
			cl.err = fmt.Errorf("%w: %s is going away (%s)", errNotServed, cn.node, reason)
			cl.done <- struct{}{}
		}
		return nil
	}
	return protocolError("%s frame sent to a client", h.typ)
}

// frameReader reads frames from a connection through a buffer it reuses:
// many frames per read. A body that next returns is valid until the
// following call, unless next says it is owned: a large frame is read into
// a buffer of its own, which next hands over.
type frameReader struct {
	r   io.Reader
	max int // the largest body accepted
	buf []byte
	off int // start of unread bytes in buf
	// beforeRead, if not nil, is called before each read with whether a
	// frame is partly read; an error it returns ends next with it.
	beforeRead func(partial bool) error
}

// buffered returns how many bytes past the last frame returned are read.
func (fr *frameReader) buffered() int { return len(fr.buf) - fr.off }

// minReadBytes is the read buffer's usual size.
const minReadBytes = 64 << 10

// next returns the next frame. It checks the header's length against max
// before it makes room for the body.
func (fr *frameReader) next() (h header, body []byte, owned bool, err error) {
	for {
		avail := fr.buf[fr.off:]
		if len(avail) >= headerBytes {
			h, err := parseHeader(avail, fr.max)
			if err != nil {
				return h, nil, false, err
			}
			if need := headerBytes + h.n; len(avail) >= need {
				fr.off += need
				body := avail[headerBytes:need]
				if need >= bigFrameBytes && fr.off == len(fr.buf) && cap(fr.buf) == need {
					// NB: the buffer holds this frame alone: hand it over.
					fr.buf, fr.off = nil, 0
					return h, body, true, nil
				}
				return h, body, false, nil
			}
		}
		if err := fr.fill(); err != nil {
			return header{}, nil, false, err
		}
	}
}

// fill reads more bytes, making room for the frame in progress: a large
// one gets a buffer of exactly its size.
func (fr *frameReader) fill() error {
	avail := len(fr.buf) - fr.off
	need := headerBytes
	if avail >= headerBytes {
		h, _ := parseHeader(fr.buf[fr.off:], fr.max) // checked by next
		need = headerBytes + h.n
	}
	switch {
	case need >= bigFrameBytes && cap(fr.buf) != need:
		nb := make([]byte, avail, need)
		copy(nb, fr.buf[fr.off:])
		fr.buf, fr.off = nb, 0
	case need < bigFrameBytes && cap(fr.buf) != minReadBytes:
		nb := make([]byte, avail, minReadBytes)
		copy(nb, fr.buf[fr.off:])
		fr.buf, fr.off = nb, 0
	case avail == 0 || cap(fr.buf)-fr.off < need:
		n := copy(fr.buf[:cap(fr.buf)], fr.buf[fr.off:])
		fr.buf, fr.off = fr.buf[:n], 0
	}
	if fr.beforeRead != nil {
		if err := fr.beforeRead(len(fr.buf) > fr.off); err != nil {
			return err
		}
	}
	n, err := fr.r.Read(fr.buf[len(fr.buf):cap(fr.buf)])
	fr.buf = fr.buf[:len(fr.buf)+n]
	if n > 0 {
		return nil
	}
	if err == nil {
		err = io.ErrNoProgress
	}
	if err == io.EOF && len(fr.buf) > fr.off {
		err = protocolError("connection closed inside a frame (%d bytes of it read): %w", len(fr.buf)-fr.off, io.ErrUnexpectedEOF)
	}
	return err
}
