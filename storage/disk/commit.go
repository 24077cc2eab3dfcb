package disk

import (
	"fmt"
	"runtime"
	"sync"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// Group commit. A Write, Fill or Trim encodes its record into the unit's
// buffer under mu (enqueue), then waits until a commit covers it
// (awaitDurable). A waiter whose record is still queued, finding a commit
// slot free, becomes a leader: it takes everything queued, writes it and
// fsyncs it without holding mu, and wakes the waiters of its commit. Writers
// that queue meanwhile are covered by the next leader, so n concurrent
// writers share an fsync. Two commits may be in flight at once, so that
// the writers woken by one queue their next records while the other's fsync
// runs; commits complete in order, and a commit counts as durable only once
// every commit before it is. A lone caller leads its own commit at once;
// nothing runs in the background.

// commitState is the group commit's state; the unit's mu guards it.
type commitState struct {
	buf      []byte   // encoded records queued since the last commit began
	spare    []spare  // buffers of finished commits, for reuse
	queue    []queued // the records in buf, in order
	newSeg   bool     // queue holds a new segment's first records
	appended uint64   // sequence of the last record queued
	taken    uint64   // sequence of the last record a commit took
	durable  uint64   // sequence of the last record committed
	flights  []*flight
	leading  bool          // a leader is gathering its batch
	changed  chan struct{} // closed (and replaced) when a slot frees
	ahead    *aheadWrite   // the write-ahead in progress, if any
	waiters  int           // writers in awaitUnlocked, but for those waiting on a flight
	yields   uint64        // the gathers' yields, for tests
}

// aheadWrite is a run of zeros being written (and synced) ahead of the
// active segment's records, by a writer whose own commit has landed.
// Commits that would write at or past start wait for it to end, and so
// does the commit that starts the next segment.
type aheadWrite struct {
	seg        *segment
	start, end int64
}

// flight is one commit in progress.
type flight struct {
	batch  []queued
	buf    []byte
	last   uint64 // sequence of its last record
	newSeg bool   // it starts a segment
	ended  bool
	landed bool // published: its records are durable
	err    error
	done   chan struct{} // closed when it and every commit before it ended
}

// spare is a finished commit's buffer and queue, kept for a later commit
// so that a commit in steady state allocates neither.
type spare struct {
	buf   []byte
	queue []queued
}

// queued is one record (or a segment's file header) in the commit buffer.
type queued struct {
	seq        uint64
	seg        *segment
	off        int64 // in the segment
	start, end int   // in the commit buffer
	h          header
}

const (
	// maxRetainedBuf and maxRetainedQueue bound a commit buffer and queue
	// kept for reuse.
	maxRetainedBuf   = 4 << 20
	maxRetainedQueue = 4096
	// maxGatherYields bounds how often a leader yields to let writers join
	// its commit before it starts.
	maxGatherYields = 8

	// Writing ahead (Options.Prewrite): once fewer than aheadLow zeroed
	// bytes lie past the active segment's records, a writer whose commit
	// landed writes and syncs the next aheadChunk bytes of zeros. In a
	// segment that has none yet, the zeros start aheadGap past the records,
	// so that commits need not wait for them. Small segments (tests) scale
	// them down: see aheadPlan.
	aheadLow   = 8 << 20
	aheadChunk = 4 << 20
	aheadGap   = 2 << 20
)

// aheadPlan returns the write-ahead's low-water mark, chunk, gap and
// alignment for segments of segBytes.
func aheadPlan(segBytes int64) (low, chunk, gap, align int64) {
	if segBytes >= 64*aheadLow {
		return aheadLow, aheadChunk, aheadGap, 4096
	}
	return segBytes / 8, segBytes / 16, segBytes / 32, 64
}

// maxFlights returns how many commits may be in flight at once.
func (u *Unit) maxFlights() int {
	if u.opts.Sync == SyncEach {
		return 1
	}
	return 2
}

// enqueue appends a record for h and payload to the commit buffer, in the
// active segment (rolling to a new one if it is full), and returns its
// sequence. The caller holds mu; the record is not durable until
// awaitDurable(seq) returns nil.
func (u *Unit) enqueue(h header, payload []byte) (uint64, error) {
	size := int64(headerSize + len(payload))
	seg, err := u.activeSegment(size)
	if err != nil {
		return 0, err
	}
	h.length = len(payload)
	h.offset = seg.size
	h.synced = seg.durableOff
	c := &u.commit
	c.appended++
	start := len(c.buf)
	c.buf = appendRecord(c.buf, seg.num, seg.size, h, payload)
	c.queue = append(c.queue, queued{seq: c.appended, seg: seg, off: seg.size, start: start, end: len(c.buf), h: h})
	seg.size += size
	seg.maxAddr = max(seg.maxAddr, h.addr+1)
	seg.lastSeq = c.appended

	u.pending[h.addr] = pendingOp{seq: c.appended, st: stateOf(h.kind)}
	u.tail = max(u.tail, h.addr+1)
	return c.appended, nil
}

// activeSegment returns the segment a record of size bytes goes to,
// starting a new one when there is none or the active one is full. The
// caller holds mu.
func (u *Unit) activeSegment(size int64) (*segment, error) {
	if n := len(u.segs); n > 0 {
		s := u.segs[n-1]
		if s.size == segHeaderSize || s.size+size <= u.opts.SegmentBytes {
			return s, nil
		}
	}
	return u.newSegment()
}

// newSegment creates the next segment file and queues its file header, so
// that the commit that writes its first records writes the header first and
// syncs the directory. The caller holds mu.
func (u *Unit) newSegment() (*segment, error) {
	num := uint64(1)
	if n := len(u.segs); n > 0 {
		num = u.segs[n-1].num + 1
	}
	if num > 1<<32-1 {
		return nil, fmt.Errorf("disk: segment numbers exhausted")
	}
	f, err := u.fs.Create(u.fs.PathJoin(u.dir, segName(num)))
	if err != nil {
		return nil, fmt.Errorf("disk: creating segment %d: %w", num, err)
	}
	s := &segment{num: num, file: f, size: segHeaderSize, durableOff: segHeaderSize, unsyncedEntry: true}
	if n := len(u.segs); n > 0 && u.prewrite {
		// Even if it has no zeros past its records yet: a write-ahead may
		// be in progress. Its commit cuts them once the write-ahead ends.
		s.prev = u.segs[n-1]
	}
	c := &u.commit
	c.newSeg = true
	start := len(c.buf)
	c.buf = append(c.buf, encodeSegHeader(num)...)
	// The header rides with the records after it; it carries the sequence
	// of the record before it, so no one waits on it alone.
	c.queue = append(c.queue, queued{seq: c.appended, seg: s, off: 0, start: start, end: len(c.buf)})
	u.segs = append(u.segs, s)
	return s, nil
}

// awaitDurable returns once the record with sequence seq is committed, or
// an error wrapping ErrFailed if a commit failed first (ErrClosed if the
// unit was closed). It leads a commit when its record is still queued and
// a slot is free. The caller holds mu, and holds it again on return; it is
// released while the commit's I/O runs and while waiting.
func (u *Unit) awaitDurable(seq uint64) error {
	err := u.awaitUnlocked(seq)
	u.mu.Lock()
	return err
}

// awaitUnlocked is awaitDurable, but returns with mu released: the waiters
// of a commit that landed return without taking mu again, so that the
// writers one fsync acknowledges do not queue on the lock to learn it.
func (u *Unit) awaitUnlocked(seq uint64) error {
	c := &u.commit
	c.waiters++
	for c.durable < seq {
		switch {
		case u.failed != nil:
			c.waiters--
			err := fmt.Errorf("%w: %v", ErrFailed, u.failed)
			u.mu.Unlock()
			return err
		case u.closed:
			c.waiters--
			u.mu.Unlock()
			return ErrClosed
		case seq <= c.taken:
			f := u.flightOf(seq)
			c.waiters-- // NB: counted among the flights meanwhile
			u.mu.Unlock()
			<-f.done
			if f.landed { // written before done was closed
				return nil
			}
			u.mu.Lock()
			c.waiters++
		case u.mayLead():
			u.lead()
		default:
			u.wait(u.changed())
		}
	}
	c.waiters--
	u.mu.Unlock()
	return nil
}

// mutate runs decide under mu and, if it returns the sequence of a record
// it queued (or found queued), waits for that record to be durable. It is
// the frame of Write, Fill and Trim.
func (u *Unit) mutate(decide func() (uint64, error)) error {
	u.mu.Lock()
	seq, err := decide()
	if err != nil || seq == 0 {
		u.mu.Unlock()
		return err
	}
	return u.awaitUnlocked(seq)
}

// mayLead reports whether a new commit may start now. A commit that starts
// a segment waits for the others to end, so that a segment is durable
// before the next one holds anything. The caller holds mu.
func (u *Unit) mayLead() bool {
	c := &u.commit
	n := len(c.flights)
	if c.leading || n >= u.maxFlights() || u.blockedByAhead() {
		return false
	}
	return n == 0 || !c.newSeg && !c.flights[n-1].newSeg
}

// blockedByAhead reports whether the queued records may not be written yet
// because a write-ahead of zeros in progress covers where they go, or
// because they start the next segment (whose commit cuts the zeros off the
// active one). The caller holds mu.
func (u *Unit) blockedByAhead() bool {
	c := &u.commit
	a := c.ahead
	if a == nil || len(c.queue) == 0 {
		return false
	}
	if c.newSeg {
		return true
	}
	last := c.queue[len(c.queue)-1]
	return last.seg == a.seg && last.off+int64(last.end-last.start) > a.start
}

// changed returns the channel closed when a commit slot frees or a leader
// has taken its batch. The caller holds mu.
func (u *Unit) changed() chan struct{} {
	if u.commit.changed == nil {
		u.commit.changed = make(chan struct{})
	}
	return u.commit.changed
}

// signal closes the changed channel. The caller holds mu.
func (u *Unit) signal() {
	if u.commit.changed != nil {
		close(u.commit.changed)
		u.commit.changed = nil
	}
}

// wait releases mu until ch is closed. The caller holds mu.
func (u *Unit) wait(ch chan struct{}) {
	u.mu.Unlock()
	<-ch
	u.mu.Lock()
}

// flightOf returns the commit in flight that holds seq. The caller holds
// mu, and seq is taken but not durable.
func (u *Unit) flightOf(seq uint64) *flight {
	for _, f := range u.commit.flights {
		if seq <= f.last {
			return f
		}
	}
	panic("disk: a taken record in no commit")
}

// lead runs one commit of everything queued. The caller holds mu.
func (u *Unit) lead() {
	c := &u.commit
	c.leading = true
	u.gather()
	// NB: gather let more records queue. Those may lie where a write-ahead
	// in progress writes zeros, or start a segment while another commit
	// is in flight: then wait (no write-ahead starts while c.leading).
	for u.blockedByAhead() || c.newSeg && len(c.flights) > 0 {
		u.wait(u.changed())
	}
	f := &flight{batch: c.queue, buf: c.buf, last: c.appended, newSeg: c.newSeg, done: make(chan struct{})}
	c.buf, c.queue = u.spareBuf()
	c.newSeg = false
	c.taken = f.last
	c.flights = append(c.flights, f)
	c.leading = false
	u.signal()
	u.mu.Unlock()

	err := u.writeBatch(f.batch, f.buf)

	u.mu.Lock()
	f.ended, f.err = true, err
	u.land()
	u.writeAhead()
}

// writeAhead writes and syncs the next run of zeros past the active
// segment's records if it is due (Options.Prewrite), releasing mu while
// the I/O runs. Its caller is a leader whose commit has landed, so the
// only write it delays is its own. A failure fails the unit as a commit's
// would: an fsync error on the file may stand for records' pages lost too.
// The caller holds mu, and holds it again on return.
func (u *Unit) writeAhead() {
	c := &u.commit
	n := len(u.segs)
	if !u.prewrite || c.ahead != nil || c.leading || u.failed != nil || u.closed || n == 0 {
		return
	}
	seg := u.segs[n-1]
	limit := u.opts.SegmentBytes
	low, chunk, gap, align := aheadPlan(limit)
	if seg.zeroEnd >= limit || seg.zeroEnd-seg.size >= low {
		return
	}
	start := seg.zeroEnd
	if start < seg.size {
		start = alignUp(seg.size+gap, align)
	}
	end := min(start+chunk, limit)
	if end <= start {
		return
	}
	a := &aheadWrite{seg: seg, start: start, end: end}
	c.ahead = a
	u.mu.Unlock()

	err := writeZeros(seg.file, start, end)
	if err == nil {
		err = vfs.SyncData(seg.file)
	}

	u.mu.Lock()
	c.ahead = nil
	switch {
	case err != nil && u.failed == nil:
		u.failed = fmt.Errorf("disk: writing segment %d ahead: %w", seg.num, err)
	case err == nil:
		seg.zeroEnd = max(seg.zeroEnd, end)
	}
	u.signal()
}

// zeros is the source of writeZeros.
var zeros = sync.OnceValue(func() []byte { return make([]byte, 1<<20) })

// writeZeros writes zeros over [start, end) of f.
func writeZeros(f vfs.File, start, end int64) error {
	z := zeros()
	for off := start; off < end; {
		n := min(int64(len(z)), end-off)
		if _, err := f.WriteAt(z[:n], off); err != nil {
			return err
		}
		off += n
	}
	return nil
}

func alignUp(n, to int64) int64 { return (n + to - 1) / to * to }

// cutAhead cuts the zeros written ahead off seg's end and syncs it, so that
// it ends in its last record. The caller owns seg's file: seg is no longer
// active, or the unit is closing.
func cutAhead(seg *segment) error {
	if seg.zeroEnd <= seg.size {
		return nil
	}
	if err := seg.file.Truncate(seg.size); err != nil {
		return fmt.Errorf("disk: cutting segment %d: %w", seg.num, err)
	}
	if err := seg.file.Sync(); err != nil {
		return fmt.Errorf("disk: syncing segment %d: %w", seg.num, err)
	}
	return nil
}

// spareBuf returns an empty buffer and queue for the next commit. The
// caller holds mu.
func (u *Unit) spareBuf() ([]byte, []queued) {
	c := &u.commit
	if n := len(c.spare); n > 0 {
		sp := c.spare[n-1]
		c.spare = c.spare[:n-1]
		return sp.buf[:0], sp.queue[:0]
	}
	return nil, nil
}

// land completes, in order, the commits at the front that have ended: a
// failed one fails the unit, and then nothing after it counts; the others
// are published and their waiters woken. The caller holds mu.
func (u *Unit) land() {
	// NB: in order. A commit whose fsync failed may have lost its pages
	// while a later commit's fsync, to which the error is not reported
	// again, succeeds: so a commit counts only once every commit before it
	// has, and nothing counts after a failure.
	c := &u.commit
	for len(c.flights) > 0 && c.flights[0].ended {
		f := c.flights[0]
		c.flights = c.flights[1:]
		switch {
		case u.failed != nil:
		case f.err != nil:
			u.failed = f.err
		default:
			u.publish(f.batch)
			c.durable = f.last
			f.landed = true
		}
		if cap(f.buf) <= maxRetainedBuf && cap(f.batch) <= maxRetainedQueue {
			// NB: the queue's records keep their segments alive: clear it.
			clear(f.batch)
			c.spare = append(c.spare, spare{buf: f.buf, queue: f.batch[:0]})
		}
		f.batch, f.buf = nil, nil
		close(f.done)
	}
	u.signal()
}

// gather lets writers that are about to queue join the commit: the leader
// yields its processor while each yield brought new records, a few times at
// most. Writers woken by the previous commit are then queued rather than
// left for a commit of their own. It reads no clock; when no one else is
// runnable (a lone caller, a deterministic scheduler) it returns after one
// yield. Without fsyncs (SyncNone) there is nothing to share but a write
// to the page cache, cheaper than the yield (which wakes another thread to
// run what it yields to), so a leader takes what is queued at once; the
// writers that queue during its write join the next commit. Nor does a
// leader yield when it is the unit's only writer and no commit is in
// flight (one write at a time): no one is about to join it, and the yield
// would wake another thread that then takes the network poll, so that the
// answer to the write wakes a thread too (see docs/performance.md). The
// caller holds mu, and holds it again on return.
func (u *Unit) gather() {
	c := &u.commit
	if u.opts.Sync != SyncBatch || c.waiters <= 1 && len(c.flights) == 0 {
		return
	}
	for range maxGatherYields {
		n := len(c.queue)
		c.yields++
		u.mu.Unlock()
		runtime.Gosched()
		u.mu.Lock()
		if len(c.queue) == n {
			return
		}
	}
}

// writeBatch writes a commit's records to their segments and syncs them
// per Options.Sync. It runs without mu: only the leader touches the
// records' bytes and the files' unsynced tails.
func (u *Unit) writeBatch(batch []queued, buf []byte) error {
	for i := 0; i < len(batch); {
		j := i + 1
		for j < len(batch) && batch[j].seg == batch[i].seg && u.opts.Sync != SyncEach {
			j++
		}
		// NB: a segment is synced before the next one is written, so a
		// power loss can tear only the last segment's tail.
		if err := u.writeRun(batch[i:j], buf); err != nil {
			return err
		}
		i = j
	}
	return nil
}

// writeRun writes records that lie back to back in one segment, then syncs
// the segment (and, for a new segment, the directory) unless Options.Sync is
// SyncNone.
func (u *Unit) writeRun(run []queued, buf []byte) error {
	first, last := run[0], run[len(run)-1]
	seg := first.seg
	if first.off == 0 && seg.prev != nil {
		// NB: before the new segment holds anything, so that after a
		// power loss any zeros are at the end of the last segment, where
		// recovery takes them for a torn tail.
		if err := cutAhead(seg.prev); err != nil {
			return err
		}
		seg.prev = nil
	}
	if _, err := seg.file.WriteAt(buf[first.start:last.end], first.off); err != nil {
		return fmt.Errorf("disk: writing segment %d: %w", seg.num, err)
	}
	if u.opts.Sync == SyncNone {
		return nil
	}
	if err := vfs.SyncData(seg.file); err != nil {
		return fmt.Errorf("disk: syncing segment %d: %w", seg.num, err)
	}
	if seg.unsyncedEntry {
		if err := vfs.SyncDir(u.fs, u.dir); err != nil {
			return fmt.Errorf("disk: syncing the directory for segment %d: %w", seg.num, err)
		}
		seg.unsyncedEntry = false
	}
	return nil
}

// publish applies a committed batch to the index, so that reads see it,
// and advances the segments' durable offsets. The caller holds mu.
func (u *Unit) publish(batch []queued) {
	synced := u.opts.Sync != SyncNone
	for _, q := range batch {
		if synced {
			q.seg.durableOff = max(q.seg.durableOff, q.off+int64(q.end-q.start))
		}
		if q.h.kind == 0 {
			continue // a segment header
		}
		if p, ok := u.pending[q.h.addr]; ok && p.seq == q.seq {
			delete(u.pending, q.h.addr)
		}
		u.apply(q.h, q.seg.num, q.off)
	}
}

// apply records in the index what a durable record says, at commit and at
// recovery alike, in log order. Records that contradict what the index holds
// (write-once broken on disk, which no Unit call produces) leave the
// address corrupt. The caller holds mu.
func (u *Unit) apply(h header, seg uint64, off int64) {
	if h.addr < u.meta.trimMark {
		return
	}
	// One B-tree operation in the common case, where the address is new.
	e := newEntry(h.addr, stateOf(h.kind), uint32(seg), uint32(off), h.length)
	if h.kind.repair() {
		// A repair replaces what the address held (a record that failed
		// its checksum when the repair was made), unless a trim came
		// between.
		if old, had := u.index.Get(e); had && old.state() == stateTrimmed {
			return
		}
		u.setEntry(e)
		return
	}
	old, had := u.index.ReplaceOrInsert(e)
	if had {
		if merged := merge(old, e); merged != e {
			u.index.ReplaceOrInsert(merged)
			e = merged
		}
	}
	u.account(old, had, e)
}

// stateOf returns the state a record of kind k gives a new address.
func stateOf(k kind) state {
	switch k {
	case kindJunk, kindRepairJunk:
		return stateJunk
	case kindTrim:
		return stateTrimmed
	}
	return stateData
}

// merge returns what an address holding old holds after a record that on its
// own would give it e: a trim wins, junk over junk stays junk, anything else
// breaks write-once and leaves it corrupt.
func merge(old, e entry) entry {
	switch {
	case e.state() == stateTrimmed || old.state() == stateTrimmed:
		return newEntry(e.addr, stateTrimmed, 0, 0, 0)
	case e.state() == stateJunk && old.state() == stateJunk:
		return old
	}
	return newEntry(e.addr, stateCorrupt, 0, 0, 0)
}

// setEntry replaces whatever the index holds at e's address with e. The
// caller holds mu.
func (u *Unit) setEntry(e entry) {
	old, had := u.index.ReplaceOrInsert(e)
	u.account(old, had, e)
}

// account keeps the stored byte count and the tail once old (if had) was
// replaced by e. The caller holds mu.
func (u *Unit) account(old entry, had bool, e entry) {
	if had && old.state() == stateData {
		u.stored -= old.n()
	}
	if e.state() == stateData {
		u.stored += e.n()
	}
	u.tail = max(u.tail, e.addr+1)
}

// markCorrupt records that the record of addr failed its checksum at
// recovery. The caller holds mu.
func (u *Unit) markCorrupt(addr storage.Address) {
	if addr < u.meta.trimMark {
		return
	}
	if old, had := u.index.Get(entry{addr: addr}); had && old.state() == stateTrimmed {
		return // trimmed anyway
	}
	u.setEntry(newEntry(addr, stateCorrupt, 0, 0, 0))
}
