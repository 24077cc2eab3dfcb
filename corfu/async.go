package corfu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// ErrWindowFull reports a TryAppendAsync that found Config.Window appends
// in flight already.
var ErrWindowFull = errors.New("corfu: append window full")

// AppendFuture is the outcome of an AppendAsync: the entry's address or
// the error, once the append is done. It is safe for concurrent use.
type AppendFuture struct {
	c       *Client
	ctx     context.Context
	data    []byte
	streams []StreamID
	id      entryID
	start   time.Time
	tokens  int

	mu      sync.Mutex
	done    bool
	addr    storage.Address
	err     error
	waiters []Signal
}

// Wait blocks until the append is done and returns what Append would have
// returned, or returns ctx's error first (the append goes on).
func (f *AppendFuture) Wait(ctx context.Context) (storage.Address, error) {
	f.mu.Lock()
	if f.done {
		f.mu.Unlock()
		return f.addr, f.err
	}
	sig := f.c.env.NewSignal("append future")
	f.waiters = append(f.waiters, sig)
	f.mu.Unlock()
	if err := sig.Wait(ctx); err != nil {
		return 0, err
	}
	return f.Result()
}

// Result returns the append's address and error; both are zero until Done.
func (f *AppendFuture) Result() (storage.Address, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.addr, f.err
}

// Done reports whether the append is done.
func (f *AppendFuture) Done() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.done
}

// finish records the outcome and wakes the waiters.
func (f *AppendFuture) finish(addr storage.Address, err error) {
	f.mu.Lock()
	f.done, f.addr, f.err = true, addr, err
	waiters := f.waiters
	f.waiters = nil
	f.mu.Unlock()
	for _, w := range waiters {
		w.Fire()
	}
	c := f.c
	c.hooks.onAppend(AppendEvent{Addr: addr, Bytes: len(f.data), Streams: len(f.streams), Tokens: f.tokens, Took: c.env.Now().Sub(f.start), Err: err})
	c.async.release(c)
}

// async is the state of a client's asynchronous appends.
type async struct {
	mu       sync.Mutex
	queue    []*AppendFuture // accepted and in no batch yet, oldest first
	pending  int             // accepted and not done
	batches  int             // batch tasks running
	slots    []Signal        // AppendAsync calls waiting for room in the window
	flushers []Signal        // Flush calls waiting for pending to reach 0
}

// release frees f's place in the window.
func (a *async) release(c *Client) {
	a.mu.Lock()
	a.pending--
	var wake []Signal
	if len(a.slots) > 0 {
		wake = append(wake, a.slots[0])
		a.slots = a.slots[1:]
	}
	if a.pending == 0 {
		wake = append(wake, a.flushers...)
		a.flushers = nil
	}
	a.mu.Unlock()
	for _, s := range wake {
		s.Fire()
	}
}

// AppendAsync starts appending data as a new entry, as Append does, and
// returns its future without waiting for the append. The entry's identity
// is fixed here: the futures of two AppendAsync calls are two entries,
// whatever their bytes.
//
// At most Config.Window appends are in flight (accepted, not done); with
// the window full, AppendAsync waits for room, or for ctx (returning ctx's
// error: nothing was appended). TryAppendAsync fails instead. ctx also
// bounds the append's own retries, as Append's ctx does, except while a
// batch it joined is in flight: the batch's requests carry on, and the
// entry may still be appended after ctx ends.
//
// Appends in flight are sent in batches (see Config.MaxBatch): consecutive
// appends to the same streams share one sequencer request for their
// tokens, and the writes a batch sends to one unit share one request (and,
// on a durable unit, one group commit). A batch is cut when no append is
// waiting, at MaxBatch entries or MaxBatchBytes bytes, or at an append to
// other streams. At most Config.Batches batches are in flight; appends
// that arrive meanwhile wait for the next. Entries of one batch get
// consecutive addresses in the order AppendAsync accepted them, unless one
// has to be retried at a fresh address; entries of different batches may
// be acknowledged in any order.
//
// Every guarantee of Append holds for each entry: the future's error is
// one Append could have returned, and an acknowledged entry is at one
// address. Argument errors (ErrNilData, ErrTooLarge, ErrInvalidStreams)
// and ErrClosed are returned at once, with a nil future.
func (c *Client) AppendAsync(ctx context.Context, data []byte, streams ...StreamID) (*AppendFuture, error) {
	return c.appendAsync(ctx, data, streams, true)
}

// TryAppendAsync is AppendAsync that does not wait for room in the window:
// with Config.Window appends in flight it returns ErrWindowFull.
func (c *Client) TryAppendAsync(ctx context.Context, data []byte, streams ...StreamID) (*AppendFuture, error) {
	return c.appendAsync(ctx, data, streams, false)
}

// Pending returns the number of appends started by AppendAsync that are
// not done yet.
func (c *Client) Pending() int {
	c.async.mu.Lock()
	defer c.async.mu.Unlock()
	return c.async.pending
}

// Flush waits until no append started by AppendAsync is pending, or for
// ctx, and returns ctx's error in the second case. Appends started while
// it waits delay it too.
func (c *Client) Flush(ctx context.Context) error {
	a := &c.async
	a.mu.Lock()
	if a.pending == 0 {
		a.mu.Unlock()
		return nil
	}
	sig := c.env.NewSignal("flush")
	a.flushers = append(a.flushers, sig)
	a.mu.Unlock()
	return sig.Wait(ctx)
}

func (c *Client) appendAsync(ctx context.Context, data []byte, streams []StreamID, wait bool) (*AppendFuture, error) {
	if err := c.checkAppend(data, streams); err != nil {
		return nil, err
	}
	if c.closed.Load() {
		return nil, fmt.Errorf("corfu: append: %w", ErrClosed)
	}
	if err := c.takeSlot(ctx, wait); err != nil {
		return nil, err
	}
	f := &AppendFuture{c: c, ctx: ctx, data: data, streams: slices.Clone(streams), start: c.env.Now()}
	f.id = entryID{writer: c.cfg.Writer, seq: c.seq.Add(1)}
	a := &c.async
	a.mu.Lock()
	a.queue = append(a.queue, f)
	start := a.batches < c.cfg.Batches
	if start {
		a.batches++
	}
	a.mu.Unlock()
	if start {
		c.env.Go("append batch", c.runBatches)
	}
	return f, nil
}

// takeSlot takes a place in the window, waiting for one if wait is set.
func (c *Client) takeSlot(ctx context.Context, wait bool) error {
	a := &c.async
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		a.mu.Lock()
		if a.pending < c.cfg.Window {
			a.pending++
			a.mu.Unlock()
			return nil
		}
		if !wait {
			a.mu.Unlock()
			return fmt.Errorf("corfu: append: %w: %d in flight", ErrWindowFull, c.cfg.Window)
		}
		sig := c.env.NewSignal("append window")
		a.slots = append(a.slots, sig)
		a.mu.Unlock()
		if err := sig.Wait(ctx); err != nil {
			a.mu.Lock()
			if i := slices.Index(a.slots, sig); i >= 0 {
				a.slots = slices.Delete(a.slots, i, i+1)
				a.mu.Unlock()
			} else {
				// NB: woken and cancelled at once: pass the wake-up on.
				a.mu.Unlock()
				a.passSlot()
			}
			return err
		}
	}
}

// passSlot wakes the next AppendAsync waiting for room, if any.
func (a *async) passSlot() {
	a.mu.Lock()
	var s Signal
	if len(a.slots) > 0 {
		s = a.slots[0]
		a.slots = a.slots[1:]
	}
	a.mu.Unlock()
	if s != nil {
		s.Fire()
	}
}

// runBatches is a batch task: it takes batches off the queue and appends
// them until the queue is empty.
func (c *Client) runBatches() {
	for {
		b := c.cutBatch()
		if b == nil {
			return
		}
		c.appendBatch(b)
	}
}

// cutBatch takes the next batch off the queue, or ends the task (returning
// nil) if the queue is empty.
func (c *Client) cutBatch() []*AppendFuture {
	a := &c.async
	a.mu.Lock()
	defer a.mu.Unlock()
	if len(a.queue) == 0 {
		a.batches--
		return nil
	}
	first := a.queue[0]
	n, bytes := 1, len(first.data)
	for n < len(a.queue) && n < c.cfg.MaxBatch {
		f := a.queue[n]
		if bytes+len(f.data) > c.cfg.MaxBatchBytes || !slices.Equal(f.streams, first.streams) {
			break
		}
		bytes += len(f.data)
		n++
	}
	b := slices.Clone(a.queue[:n])
	clear(a.queue[:n])
	a.queue = a.queue[n:]
	return b
}

// appendBatch appends the entries of b, which share their streams: one
// token request for all, then the writes of each chain position, one
// request per unit (writeBatch). An entry whose batched write did not
// simply succeed goes on alone, where it is (writeChain), and, if it lost
// its address, at fresh ones (appendEntry), with its own ctx.
func (c *Client) appendBatch(b []*AppendFuture) {
	live := b[:0:0]
	for _, f := range b {
		if err := f.ctx.Err(); err != nil {
			f.finish(0, err) // NB: nothing sent for it
			continue
		}
		live = append(live, f)
	}
	if len(live) == 0 {
		return
	}
	// NB: the batch's shared requests run on their own: each entry's ctx
	// bounds only its own requests, after the batch.
	ctx := context.Background()
	streams := live[0].streams
	tok, epoch, err := c.token(ctx, len(live), streams)
	if err != nil {
		for _, f := range live {
			f.finish(0, fmt.Errorf("corfu: append: token: %w", err))
		}
		return
	}
	k := c.backpointers()
	writes := make([]batchWrite, len(live))
	for i, f := range live {
		f.tokens++
		addr := tok.Start + storage.Address(i)
		writes[i] = batchWrite{addr: addr, payload: encodeEntry(f.id, streams, batchTails(tok.Backpointers, tok.Start, i, k), k, f.data)}
	}
	c.writeBatch(ctx, epoch, writes)
	var slow []int // the entries that go on alone
	for i, f := range live {
		if writes[i].done {
			f.finish(writes[i].addr, nil)
		} else {
			slow = append(slow, i)
		}
	}
	c.each("append batch entry", len(slow), func(j int) {
		i := slow[j]
		f, w := live[i], writes[i]
		err := c.writeChain(f.ctx, epoch, w.addr, f.id, w.payload, w.stored)
		switch {
		case err == nil:
			f.finish(w.addr, nil)
		case errors.Is(err, ErrUnknownOutcome):
			f.finish(0, err)
		case errors.Is(err, errLostRace):
			c.log.Debug("append lost its address, taking a new token", "addr", w.addr)
			addr, err := c.appendEntry(f.ctx, f.id, f.data, f.streams, c.cfg.MaxRetries, err, &f.tokens)
			f.finish(addr, err)
		default:
			f.finish(0, fmt.Errorf("corfu: append: %w", err))
		}
	})
}

// batchTails returns the backpointers of the i-th entry of a batch whose
// token starts at start: for each stream, the batch's earlier entries,
// newest first, then the stream's tail before the batch; at most k.
func batchTails(tails []sequencer.StreamTail, start storage.Address, i, k int) []sequencer.StreamTail {
	if i == 0 {
		return tails
	}
	out := make([]sequencer.StreamTail, len(tails))
	for j, t := range tails {
		addrs := make([]storage.Address, 0, k)
		for a := start + storage.Address(i); a > start && len(addrs) < k; a-- {
			addrs = append(addrs, a-1)
		}
		for _, a := range t.Addrs {
			if len(addrs) == k {
				break
			}
			addrs = append(addrs, a)
		}
		out[j] = sequencer.StreamTail{Stream: t.Stream, Addrs: addrs}
	}
	return out
}

// encodedGroup is the request body for one unit's share of a batch at
// one chain position, with the entries it holds.
type encodedGroup struct {
	idx   []int // indexes into the batch's writes
	batch transport.EncodedBatch
	err   error // the body could not be encoded (too large): nothing sent
}

// encodeGroup returns the body for the entries idx: the one encoded for
// the same entries at the previous position (prev), or a new one.
func encodeGroup(prev []encodedGroup, idx []int, ws []batchWrite, locs []projection.Location) encodedGroup {
	for _, e := range prev {
		if slices.Equal(e.idx, idx) {
			return encodedGroup{idx: idx, batch: e.batch, err: e.err}
		}
	}
	items := make([]storage.WriteItem, len(idx))
	for j, i := range idx {
		items[j] = storage.WriteItem{Addr: locs[i].Local, Data: ws[i].payload}
	}
	b, err := transport.EncodeWriteBatch(items)
	return encodedGroup{idx: idx, batch: b, err: err}
}

// batchWrite is one entry of a batch on its way down its chain.
type batchWrite struct {
	addr    storage.Address
	payload []byte
	done    bool // every replica acknowledged it
	stored  bool // it may be on a replica
	failed  bool // a write of it did not simply succeed: writeChain takes over
}

// writeBatch writes the batch's entries down their chains under the
// projection of epoch, the token's: position by position, each unit
// getting one request with every entry it holds at that position. It sets
// done for every entry all of whose replicas acknowledged it, and stored
// for the others that may be on a replica; it sends nothing if the
// projection has moved on from epoch, and never retries: whatever did not
// simply succeed is left to writeChain, which knows every other answer.
func (c *Client) writeBatch(ctx context.Context, epoch storage.Epoch, ws []batchWrite) {
	p := c.projection()
	if p.Epoch != epoch {
		return
	}
	locs := make([]projection.Location, len(ws))
	depth := 0
	for i := range ws {
		loc, err := p.Locate(ws[i].addr)
		if err != nil {
			ws[i].failed = true
			continue
		}
		locs[i] = loc
		depth = max(depth, len(loc.Chain))
	}
	// Every replica of a chain gets the same items: each group's body is
	// encoded once, at the first position that has it.
	var prev []encodedGroup
	for pos := range depth {
		// The units at this position, and the entries each holds there.
		var at byNode
		for i := range ws {
			if !ws[i].failed && pos < len(locs[i].Chain) {
				at.add(locs[i].Chain[pos], i)
			}
		}
		nodes, groups := at.nodes, at.groups
		if len(nodes) == 0 {
			break
		}
		if pos == 1 && c.mut.AckBeforeLast {
			break // mutant: acknowledged before the chain is complete
		}
		bodies := make([]encodedGroup, len(groups))
		for g, idx := range groups {
			bodies[g] = encodeGroup(prev, idx, ws, locs)
		}
		prev = bodies
		c.each("append batch write", len(nodes), func(g int) {
			b := bodies[g]
			var errs []error
			err := b.err
			if err == nil {
				u := transport.UnitClient{Caller: hopCaller{c: c}, Node: nodes[g]}
				errs, err = u.WriteEncoded(ctx, p.Epoch, b.batch)
			}
			for j, i := range groups[g] {
				e := err
				if errs != nil {
					e = errs[j]
				}
				if mayHaveStored(e) {
					ws[i].stored = true
				}
				if e != nil {
					ws[i].failed = true
				}
			}
		})
	}
	for i := range ws {
		ws[i].done = !ws[i].failed
	}
}
