package transport

import (
	"context"
	"errors"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/corfulog/corfu/storage"
)

// MaxReadWait is the longest an OpReadWait is parked, whatever it asks
// for: a host that shuts down waits at most this long for its parked reads.
const MaxReadWait = 5 * time.Second

// Timers runs functions later. The simulator's Scheduler is one (its
// functions run as tasks, in virtual time), SystemTimers another.
type Timers interface {
	// AfterFunc runs f after d. stop cancels the call if it has not
	// started and reports whether it did so.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// SystemTimers is Timers on the system clock (time.AfterFunc).
type SystemTimers struct{}

// AfterFunc runs f in its own goroutine after d.
func (SystemTimers) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	return time.AfterFunc(d, f).Stop
}

// ReadWaits serves OpReadWait, a read that waits for its address to be
// taken, for the unit behind the Handler it wraps; it passes every other
// request on. A follower that has read the whole log waits with it at the
// chain's tail replica for the next entry, and gets it the moment its
// write lands there, with no polling.
//
// An OpReadWait is read at once, as an OpRead (with Op set to OpRead, so
// the Handler below never sees another op). If the address is unwritten,
// the read is parked for up to the request's N milliseconds (at most
// MaxReadWait) and read again, again as an OpRead through the Handler,
// after each request that may have taken it: a write, batch or fill of its
// address, a trim, a seal, a join. Its answer is the first read that finds
// the address taken (data, junk, trimmed, or an error: a seal past its
// epoch gives a *storage.SealedError), or, when the wait is up, the read
// then: storage.ErrUnwritten if it is still free. A parked read woken by a
// request that Serve serves is answered after that request; by one that
// Handle serves, before Handle returns.
//
// Every request must pass through ReadWaits, so that it sees each change
// to the unit: a change made behind its back is only seen when the wait is
// up. Handle serves OpReadWait as ErrWrongRole, since it cannot park a
// request; hosts call Serve.
//
// ReadWaits is safe for concurrent use if its Handler is. In the
// simulator, a Scheduler for Timers keeps it deterministic: it holds its
// parked reads in the order they came, and draws nothing.
type ReadWaits struct {
	h      Handler
	timers Timers

	// NB: n counts parked reads, and a read being parked: a request that
	// may take an address loads it after it was served, and a read bumps
	// it before it reads, so one of them sees the other.
	n        atomic.Int64
	mu       sync.Mutex
	waits    []*parkedRead // in order of arrival
	released bool          // Release was called: park no more
}

var _ AsyncHandler = (*ReadWaits)(nil)

// parkedRead is one OpReadWait waiting for its address.
type parkedRead struct {
	read  Request // the OpRead it makes
	reply func(*Response)
	stop  func() bool // its timer's
}

// readNow makes pr's read through h, with a copy of its request: a
// Handler may change the one it gets.
func (pr *parkedRead) readNow(h Handler) *Response {
	req := pr.read
	return h.Handle(&req)
}

// NewReadWaits returns a ReadWaits in front of h whose waits end by
// timers.
func NewReadWaits(h Handler, timers Timers) *ReadWaits {
	return &ReadWaits{h: h, timers: timers}
}

// Handler returns the Handler that w wraps.
func (w *ReadWaits) Handler() Handler { return w.h }

// Handle serves req at once. An OpReadWait, which needs its answer sent
// late, gets ErrWrongRole.
func (w *ReadWaits) Handle(req *Request) *Response {
	if req != nil && req.Op == OpReadWait {
		return wrongRole(req.Op, "host that can answer late (transport.AsyncHandler)")
	}
	resp := w.h.Handle(req)
	w.wake(req, resp)
	return resp
}

// Serve serves req and calls reply with its answer: at once, except for an
// OpReadWait whose address is unwritten (see ReadWaits).
func (w *ReadWaits) Serve(req *Request, reply func(*Response)) {
	if req == nil || req.Op != OpReadWait {
		resp := w.h.Handle(req)
		reply(resp)
		w.wake(req, resp)
		return
	}
	pr := &parkedRead{read: *req, reply: reply}
	pr.read.Op, pr.read.N = OpRead, 0
	wait := min(time.Duration(req.N)*time.Millisecond, MaxReadWait)
	w.n.Add(1)
	w.mu.Lock()
	resp := pr.readNow(w.h)
	if wait <= 0 || w.released || !errors.Is(resp.Err, storage.ErrUnwritten) {
		w.mu.Unlock()
		w.n.Add(-1)
		reply(resp)
		return
	}
	w.waits = append(w.waits, pr)
	pr.stop = w.timers.AfterFunc(wait, func() { w.expire(pr) })
	w.mu.Unlock()
}

// wake reads again, and answers if their addresses were taken, the parked
// reads that req (answered with resp) may have woken.
func (w *ReadWaits) wake(req *Request, resp *Response) {
	if req == nil || w.n.Load() == 0 || !mayTake(req, resp) {
		return
	}
	var items []storage.WriteItem
	if req.Op == OpWriteBatch {
		var err error
		if items, err = DecodeWriteBatch(req.Data); err != nil {
			return
		}
	}
	var done []*parkedRead
	var answers []*Response
	w.mu.Lock()
	w.waits = slices.DeleteFunc(w.waits, func(pr *parkedRead) bool {
		if !wakes(req, items, pr.read.Addr) {
			return false
		}
		r := pr.readNow(w.h)
		if errors.Is(r.Err, storage.ErrUnwritten) {
			return false
		}
		pr.stop()
		done, answers = append(done, pr), append(answers, r)
		return true
	})
	w.mu.Unlock()
	w.n.Add(-int64(len(done)))
	for i, pr := range done {
		pr.reply(answers[i])
	}
}

// expire answers pr, if it is still parked, with a read made now.
func (w *ReadWaits) expire(pr *parkedRead) {
	w.mu.Lock()
	i := slices.Index(w.waits, pr)
	if i < 0 {
		w.mu.Unlock()
		return
	}
	w.waits = slices.Delete(w.waits, i, i+1)
	resp := pr.readNow(w.h)
	w.mu.Unlock()
	w.n.Add(-1)
	pr.reply(resp)
}

// Release answers every parked read now, with a read made now, as if its
// wait were up, and makes later ones answer at once: a host that shuts
// down calls it before it drains.
func (w *ReadWaits) Release() {
	w.mu.Lock()
	w.released = true
	waits := w.waits
	w.waits = nil
	answers := make([]*Response, len(waits))
	for i, pr := range waits {
		pr.stop()
		answers[i] = pr.readNow(w.h)
	}
	w.mu.Unlock()
	w.n.Add(-int64(len(waits)))
	for i, pr := range waits {
		pr.reply(answers[i])
	}
}

// Drop forgets every parked read without answering it: a crashed host
// loses them (the simulator calls it when it crashes a node).
func (w *ReadWaits) Drop() {
	w.mu.Lock()
	waits := w.waits
	w.waits = nil
	for _, pr := range waits {
		pr.stop()
	}
	w.mu.Unlock()
	w.n.Add(-int64(len(waits)))
}

// Parked returns how many reads are parked.
func (w *ReadWaits) Parked() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.waits)
}

// mayTake reports whether req, answered with resp, may have taken an
// address a parked read waits for.
func mayTake(req *Request, resp *Response) bool {
	switch req.Op {
	case OpWrite, OpFill, OpTrim, OpRepair:
		return resp.Err == nil
	case OpWriteBatch, OpPrefixTrim, OpSeal, OpJoin:
		return true // NB: a batch's items fail one by one; a refused seal changes nothing, but is rare
	}
	return false
}

// wakes reports whether req (a batch's items, for a batch) may have taken
// addr.
func wakes(req *Request, items []storage.WriteItem, addr storage.Address) bool {
	switch req.Op {
	case OpWrite, OpFill, OpTrim, OpRepair:
		return req.Addr == addr
	case OpWriteBatch:
		return slices.ContainsFunc(items, func(it storage.WriteItem) bool { return it.Addr == addr })
	}
	return true
}

// ReadWait reads addr on the unit, as Read does, but if nothing is there
// yet it waits up to wait (rounded up to a millisecond, at least one and at
// most MaxReadWait) for the address to be taken (see ReadWaits). It returns
// storage.ErrUnwritten if the wait ended with the address still free, and
// an error wrapping ErrWrongRole from a host that cannot park reads: the
// caller then polls with Read. ctx must allow for the wait.
func (u UnitClient) ReadWait(ctx context.Context, epoch storage.Epoch, addr storage.Address, wait time.Duration) ([]byte, error) {
	ms := max((min(wait, MaxReadWait)+time.Millisecond-1)/time.Millisecond, 1)
	resp, err := call(ctx, u.Caller, u.Node, &Request{Op: OpReadWait, Epoch: epoch, Addr: addr, N: uint32(ms)})
	if err != nil {
		return nil, err
	}
	return resp.Data, nil
}
