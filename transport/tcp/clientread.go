package tcp

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/corfulog/corfu/transport"
)

// Reading a connection's answers.
//
// One goroutine at a time reads a connection: the one holding its
// clientRead, which rtoken keeps while no one reads. It hands each answer
// to its call. While calls await answers and no caller reads, the
// connection's reader goroutine reads; it stops once none await one.
//
// A call made on an idle plain TCP connection (no other call in flight:
// one request at a time) is written and read by its own caller, as an
// echo client writes and reads (callDirect): its request passes through no
// writer goroutine and its answer through no reader goroutine. Each hand-
// off between goroutines wakes an idle thread, which then takes the
// runtime's network poll; the answer, arriving while that thread waits in
// the poll, must then wake it on another CPU before anything runs. Served
// directly, one thread can carry a request from the caller to a server in
// the same process and the answer back. Before it writes, the caller
// reads what the server sent while the connection was idle (a goaway, or
// the end of the connection), as the reader goroutine would have, so that
// a request is not sent where it would not be served.

// errYield ends a read loop whose reader has read what it reads for.
var errYield = errors.New("tcp: reading yielded")

// errWouldBlock ends a read of what has arrived, when nothing more has.
var errWouldBlock = errors.New("tcp: nothing to read yet")

// longAgo is a read deadline that has passed: it wakes a blocked read.
var longAgo = time.Unix(1, 0)

// clientRead is a connection's reading: its frame reader and the answers
// matched and not yet handed out.
type clientRead struct {
	fr frameReader
	nb *nonBlocking // the socket without waiting, if the connection is plain TCP on Unix
	d  dispatch
	// counting says the reader counts itself in the connection's resuming
	// while it hands out the answers of one read: callers that run
	// meanwhile do not wake the writer, whose batch then waits for every
	// caller the read answers.
	counting bool
	mine     *call           // the call whose caller reads; nil for the reader goroutine
	ctx      context.Context // mine's
	check    bool            // read only what has arrived (fr reads through nb)
}

// newRead returns the connection's reading.
func (cn *clientConn) newRead() *clientRead {
	rs := &clientRead{fr: frameReader{r: cn.nc, max: transport.MaxFrameBytes}, nb: newNonBlocking(cn.wd.raw)}
	rs.fr.beforeRead = func(partial bool) error { return rs.beforeRead(cn, partial) }
	return rs
}

// beforeRead hands out the answers of the last read and says whether to
// read on: not once the reader has what it reads for, at a frame's
// boundary.
func (rs *clientRead) beforeRead(cn *clientConn, partial bool) error {
	rs.handOut(cn)
	switch {
	case partial || rs.check:
	case rs.mine != nil:
		if len(rs.mine.done) > 0 || rs.ctx.Err() != nil {
			return errYield
		}
	case cn.awaited.Load() == 0:
		return errYield
	}
	return nil
}

// handOut hands the answers matched so far to their calls, and ends the
// reader's count in resuming.
func (rs *clientRead) handOut(cn *clientConn) {
	rs.d.flush(cn)
	if rs.counting {
		rs.counting = false
		cn.resumed()
	}
}

// serveReads reads frames and hands each to its call until the reader has
// what it reads for (nil), or the connection fails (its error, once it
// failed the connection).
func (cn *clientConn) serveReads(rs *clientRead) error {
	for {
		h, body, owned, err := rs.fr.next()
		if err == nil {
			if !rs.counting {
				rs.counting = true
				cn.resuming.Add(1)
			}
			if h.typ == frameResponse {
				err = rs.d.answer(cn, h, body, owned)
			} else {
				rs.d.flush(cn)
				err = cn.handle(h, body)
			}
			if err == nil {
				continue
			}
		}
		switch {
		case err == errYield || err == errWouldBlock:
			return nil
		case errors.Is(err, os.ErrDeadlineExceeded):
			// NB: a caller's ctx ended while it read (see callDirect), or
			// did so earlier, its wake-up landing now: read on, and let
			// beforeRead judge.
			if err = cn.nc.SetReadDeadline(time.Time{}); err == nil {
				continue
			}
		}
		rs.handOut(cn)
		if errors.Is(err, errProtocol) {
			cn.cl.cfg.Logger.Warn("tcp: dropping connection", "node", cn.node, "err", err)
		}
		cn.fail(cn.lost(err))
		return err
	}
}

// releaseRead puts the reading back, and wakes the reader goroutine if
// calls await answers. rs may be nil.
func (cn *clientConn) releaseRead(rs *clientRead) {
	if rs == nil {
		return
	}
	rs.mine, rs.ctx = nil, nil
	cn.rtoken <- rs // NB: never blocks: one reading, held by its caller
	// NB: after the put: a caller that registered a call after this load
	// finds the reading free (see call).
	if cn.awaited.Load() > 0 {
		cn.wakeReader()
	}
}

// wakeReader tells the reader goroutine that calls await answers.
func (cn *clientConn) wakeReader() {
	select {
	case cn.rwake <- struct{}{}:
	default:
	}
}

// readLoop is the reader goroutine: it reads while calls await answers and
// no caller reads.
func (cn *clientConn) readLoop() {
	defer cn.cl.wg.Done()
	for {
		select {
		case <-cn.rwake:
		case <-cn.closing:
			return
		}
		select {
		case rs := <-cn.rtoken:
			if cn.serveReads(rs) != nil {
				return
			}
			cn.releaseRead(rs)
		default: // NB: someone reads; it wakes us when it stops
		}
	}
}

// idleRead returns the reading of an idle plain TCP connection (its nb
// is set) for a call
// to be written and read by its caller, having read what the server sent
// while the connection was idle, or nil (the connection is busy, or not
// plain TCP). It fails if the connection failed meanwhile.
func (cn *clientConn) idleRead() (*clientRead, error) {
	if cn.wd.raw == nil || cn.awaited.Load() != 0 {
		return nil, nil
	}
	var rs *clientRead
	select {
	case rs = <-cn.rtoken:
	default:
		return nil, nil
	}
	rs.check, rs.fr.r = true, rs.nb
	err := cn.serveReads(rs)
	rs.check, rs.fr.r = false, cn.nc
	if err != nil {
		return nil, err
	}
	return rs, nil
}

// callDirect writes cl's request and reads until its answer arrives (or
// its ctx ends), holding the reading rs, which it then puts back.
func (cn *clientConn) callDirect(ctx context.Context, cl *call, rs *clientRead) {
	if err := cn.writeOut(outbox{buf: cl.frame}); err != nil {
		return // NB: the connection failed: cl has its error
	}
	cn.cl.directCalls.Add(1)
	rs.mine, rs.ctx = cl, ctx
	stop := func() bool { return true }
	if ctx.Done() != nil {
		stop = context.AfterFunc(ctx, func() { _ = cn.nc.SetReadDeadline(longAgo) })
	}
	err := cn.serveReads(rs)
	stop()
	if err == nil {
		cn.releaseRead(rs)
	}
}

// writeOut writes o, the goroutine that set wbusy having taken it: the
// writer, or a caller writing its own request. It fails the connection if
// the write fails.
func (cn *clientConn) writeOut(o outbox) error {
	err := cn.wd.write(o)
	cn.mu.Lock()
	cn.wbusy = false
	more := !cn.out.empty()
	cn.mu.Unlock()
	if more {
		cn.wakeWriter()
	}
	if err != nil {
		cn.fail(cn.lost(err))
	}
	return err
}

// lost is the error of calls in flight on a connection that failed with
// err.
func (cn *clientConn) lost(err error) error {
	return fmt.Errorf("%w: %s: connection lost (a request in flight may or may not have been served): %w",
		transport.ErrUnreachable, cn.node, err)
}
