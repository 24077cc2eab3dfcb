//go:build unix

package tcp

import (
	"io"
	"net"
	"os"
	"syscall"
	"time"
)

// rawWriter writes to a plain TCP connection through its socket, with no
// deadline until a write would block (see writeDeadline).
type rawWriter struct {
	nc      *net.TCPConn
	rc      syscall.RawConn
	timeout time.Duration
	fn      func(fd uintptr) bool // w.send, bound once

	// The write in progress, for fn.
	bufs  [][]byte
	armed bool // a deadline is set
	err   error
}

// newRawWriter returns a rawWriter for nc, or nil if nc is not a plain TCP
// connection.
func newRawWriter(nc net.Conn, timeout time.Duration) *rawWriter {
	tc, ok := nc.(*net.TCPConn) // NB: the exact type: a wrapper may mean to see every write
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &rawWriter{nc: tc, rc: rc, timeout: timeout}
	w.fn = w.send
	return w
}

// write writes every byte of bufs, in order.
func (w *rawWriter) write(bufs [][]byte) error {
	w.bufs, w.err = bufs, nil
	err := w.rc.Write(w.fn)
	w.bufs = nil
	if w.armed {
		w.armed = false
		if derr := w.nc.SetWriteDeadline(time.Time{}); err == nil && w.err == nil {
			err = derr
		}
	}
	if w.err != nil {
		return w.err
	}
	return err
}

// send writes what is left of w.bufs to fd. It returns false to wait for
// room in the socket's buffer, having set the write deadline at the first
// such wait, and true once all is written or a write failed (w.err).
func (w *rawWriter) send(fd uintptr) bool {
	for len(w.bufs) > 0 {
		b := w.bufs[0]
		if len(b) == 0 {
			w.bufs = w.bufs[1:]
			continue
		}
		n, err := syscall.Write(int(fd), b)
		if n > 0 {
			w.bufs[0] = b[n:]
		}
		switch {
		case err == nil && n > 0:
		case err == syscall.EINTR:
		case err == syscall.EAGAIN:
			if !w.armed && w.timeout > 0 {
				w.armed = true
				if err := w.nc.SetWriteDeadline(time.Now().Add(w.timeout)); err != nil {
					w.err = err
					return true
				}
			}
			return false
		case err == nil:
			w.err = w.opError(io.ErrShortWrite)
			return true
		default:
			w.err = w.opError(os.NewSyscallError("write", err))
			return true
		}
	}
	return true
}

// opError wraps err as the connection's Write would.
func (w *rawWriter) opError(err error) error {
	return &net.OpError{Op: "write", Net: "tcp", Source: w.nc.LocalAddr(), Addr: w.nc.RemoteAddr(), Err: err}
}

// nonBlocking reads a plain TCP connection's socket without waiting: a
// read that finds nothing fails with errWouldBlock.
type nonBlocking struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // r.read, bound once
	p   []byte
	n   int
	err error
}

// newNonBlocking returns a nonBlocking reader of w's socket, or nil if w
// is nil.
func newNonBlocking(w *rawWriter) *nonBlocking {
	if w == nil {
		return nil
	}
	r := &nonBlocking{rc: w.rc}
	r.fn = r.read
	return r
}

// Read reads what has arrived into p, or fails with errWouldBlock.
func (r *nonBlocking) Read(p []byte) (int, error) {
	r.p, r.n, r.err = p, 0, nil
	err := r.rc.Read(r.fn)
	r.p = nil
	if err != nil {
		return 0, err
	}
	return r.n, r.err
}

// read makes one read of fd; it never asks to wait.
func (r *nonBlocking) read(fd uintptr) bool {
	for {
		n, err := syscall.Read(int(fd), r.p)
		switch {
		case err == syscall.EINTR:
			continue
		case err == syscall.EAGAIN:
			r.err = errWouldBlock
		case err != nil:
			r.err = os.NewSyscallError("read", err)
		case n == 0:
			r.err = io.EOF
		default:
			r.n = n
		}
		return true
	}
}
