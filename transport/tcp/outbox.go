package tcp

import (
	"net"
	"time"
)

// bigFrameBytes is the size from which a frame is queued and read by
// reference rather than copied: a large write or read then costs no copy
// in the transport.
const bigFrameBytes = 32 << 10

// outbox is the frames queued on one connection, in order: small frames
// copied into buf, and large ones kept by reference in segs (with the
// small buffers queued before them). The connection's lock guards it.
type outbox struct {
	segs [][]byte
	buf  []byte
}

// add queues frame. If keep, frame will not change until it is written,
// and a large one is queued by reference.
func (o *outbox) add(frame []byte, keep bool) {
	if keep && len(frame) >= bigFrameBytes {
		if len(o.buf) > 0 {
			o.segs = append(o.segs, o.buf)
			o.buf = nil
		}
		o.segs = append(o.segs, frame)
		return
	}
	o.buf = append(o.buf, frame...)
}

func (o *outbox) empty() bool { return len(o.segs) == 0 && len(o.buf) == 0 }

// take returns what is queued and leaves o empty, with spare (a buffer
// already written) as its small buffer.
func (o *outbox) take(spare []byte) outbox {
	out := *o
	*o = outbox{buf: spare[:0]}
	return out
}

// recycle returns a small buffer to reuse after o was written, or nil.
func (o *outbox) recycle() []byte {
	if cap(o.buf) > maxPooledBytes {
		return nil
	}
	return o.buf
}

// writeDeadline writes batches to a connection under its write timeout.
//
// On a plain TCP connection (on Unix), it writes through the raw socket
// and sets a deadline only once a write finds the socket's buffer full:
// timeout from then bounds the rest of that write, and the deadline is
// cleared once it is done. Elsewhere it keeps the connection's write
// deadline between 0.9 and 1 times timeout ahead of each write: it moves
// the deadline once a tenth of timeout has passed rather than before every
// write, since a timer update per write costs as much as the write's other
// work.
//
// NB: a deadline is a runtime timer, and while a processor holds any
// timer the scheduler reads the clock each time it looks for work: on the
// small requests' path, a deadline that is always set costs more than the
// writes' own time checks.
type writeDeadline struct {
	nc      net.Conn
	timeout time.Duration
	set     time.Time // the deadline in force; zero for none
	bufs    net.Buffers
	raw     *rawWriter // nil but on a plain TCP connection
}

func newWriteDeadline(nc net.Conn, timeout time.Duration) writeDeadline {
	return writeDeadline{nc: nc, timeout: timeout, raw: newRawWriter(nc, timeout)}
}

// write writes what o holds, in one system call where it can.
func (w *writeDeadline) write(o outbox) error {
	if w.raw != nil {
		w.bufs = append(append(w.bufs[:0], o.segs...), o.buf)
		err := w.raw.write(w.bufs)
		clear(w.bufs[:cap(w.bufs)])
		return err
	}
	if w.timeout > 0 {
		if now := time.Now(); w.set.Sub(now) < w.timeout-w.timeout/10 {
			w.set = now.Add(w.timeout)
			if err := w.nc.SetWriteDeadline(w.set); err != nil {
				return err
			}
		}
	}
	if len(o.segs) == 0 {
		_, err := w.nc.Write(o.buf)
		return err
	}
	w.bufs = append(append(w.bufs[:0], o.segs...), o.buf)
	_, err := w.bufs.WriteTo(w.nc) // writev on a plain connection
	clear(w.bufs[:cap(w.bufs)])
	return err
}
