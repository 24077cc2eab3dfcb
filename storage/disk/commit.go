package disk

import (
	"fmt"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// Group commit. A Write, Fill or Trim encodes its record into the unit's
// buffer under mu (enqueue), then waits until a commit covers it
// (awaitDurable). The first waiter that finds no commit in progress becomes
// the leader: it takes everything queued so far, writes it and fsyncs it
// without holding mu, then publishes it to the index and wakes the others.
// Writers that queue meanwhile are covered by the next leader, so n
// concurrent writers share one fsync. A lone caller leads its own commit at
// once; nothing runs in the background.

// commitState is the group commit's state; the unit's mu guards it.
type commitState struct {
	buf      []byte   // encoded records queued since the last commit began
	spare    []byte   // the buffer of the previous commit, for reuse
	queue    []queued // the records in buf, in order
	appended uint64   // sequence of the last record queued
	durable  uint64   // sequence of the last record committed
	running  bool     // a leader is committing
}

// queued is one record in the commit buffer.
type queued struct {
	seq        uint64
	seg        *segment
	off        int64 // in the segment
	start, end int   // in the commit buffer
	h          header
}

// maxRetainedBuf bounds the commit buffer kept for reuse between commits.
const maxRetainedBuf = 4 << 20

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
	c := &u.commit
	c.appended++
	start := len(c.buf)
	c.buf = appendRecord(c.buf, seg.num, seg.size, h, payload)
	c.queue = append(c.queue, queued{seq: c.appended, seg: seg, off: seg.size, start: start, end: len(c.buf), h: h})
	seg.size += size
	seg.maxAddr = max(seg.maxAddr, h.addr+1)
	seg.lastSeq = c.appended

	st := stateData
	switch h.kind {
	case kindJunk:
		st = stateJunk
	case kindTrim:
		st = stateTrimmed
	}
	u.pending[h.addr] = pendingOp{seq: c.appended, st: st}
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
	s := &segment{num: num, file: f, size: segHeaderSize, unsyncedEntry: true}
	c := &u.commit
	start := len(c.buf)
	c.buf = append(c.buf, encodeSegHeader(num)...)
	// The header rides with the records after it: it carries their
	// sequence (lastSeq of the previous one), so no one waits on it alone.
	c.queue = append(c.queue, queued{seq: c.appended, seg: s, off: 0, start: start, end: len(c.buf)})
	u.segs = append(u.segs, s)
	return s, nil
}

// awaitDurable returns once the record with sequence seq is committed, or
// an error wrapping ErrFailed if a commit failed first (ErrClosed if the
// unit was closed). It leads a commit when none is running. The caller
// holds mu; it is released while the commit's I/O runs and while waiting.
func (u *Unit) awaitDurable(seq uint64) error {
	c := &u.commit
	for c.durable < seq {
		switch {
		case u.failed != nil:
			return fmt.Errorf("%w: %v", ErrFailed, u.failed)
		case u.closed:
			return ErrClosed
		case c.running:
			u.cond.Wait()
		default:
			u.lead()
		}
	}
	return nil
}

// lead runs one commit of everything queued. The caller holds mu.
func (u *Unit) lead() {
	c := &u.commit
	batch, buf := c.queue, c.buf
	c.queue, c.buf = nil, c.spare[:0]
	c.running = true
	u.mu.Unlock()

	err := u.writeBatch(batch, buf)

	u.mu.Lock()
	c.running = false
	if cap(buf) <= maxRetainedBuf {
		c.spare = buf
	}
	if err != nil {
		u.failed = err
	} else {
		u.publish(batch)
	}
	u.cond.Broadcast()
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
	if _, err := seg.file.WriteAt(buf[first.start:last.end], first.off); err != nil {
		return fmt.Errorf("disk: writing segment %d: %w", seg.num, err)
	}
	if u.opts.Sync == SyncNone {
		return nil
	}
	if err := seg.file.Sync(); err != nil {
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
// and advances the durable sequence. The caller holds mu.
func (u *Unit) publish(batch []queued) {
	for _, q := range batch {
		if q.h.kind == 0 {
			continue // a segment header
		}
		if p, ok := u.pending[q.h.addr]; ok && p.seq == q.seq {
			delete(u.pending, q.h.addr)
		}
		u.apply(q.h, q.seg.num, q.off)
	}
	if n := len(batch); n > 0 {
		u.commit.durable = max(u.commit.durable, batch[n-1].seq)
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
	old, had := u.index.Get(entry{addr: h.addr})
	oldSt := old.state()
	if !had {
		oldSt = 0
	}
	var e entry
	switch {
	case h.kind == kindTrim || oldSt == stateTrimmed:
		e = newEntry(h.addr, stateTrimmed, 0, 0, 0)
	case h.kind == kindData && oldSt == 0:
		e = newEntry(h.addr, stateData, uint32(seg), uint32(off), h.length)
	case h.kind == kindJunk && (oldSt == 0 || oldSt == stateJunk):
		e = newEntry(h.addr, stateJunk, 0, 0, 0)
	default:
		e = newEntry(h.addr, stateCorrupt, 0, 0, 0)
	}
	u.setEntry(old, had, e)
}

// setEntry replaces old (if had) with e, keeping the stored byte count. The
// caller holds mu.
func (u *Unit) setEntry(old entry, had bool, e entry) {
	if had && old.state() == stateData {
		u.stored -= old.n()
	}
	if e.state() == stateData {
		u.stored += e.n()
	}
	u.index.ReplaceOrInsert(e)
	u.tail = max(u.tail, e.addr+1)
}

// markCorrupt records that the record of addr failed its checksum at
// recovery. The caller holds mu.
func (u *Unit) markCorrupt(addr storage.Address) {
	if addr < u.meta.trimMark {
		return
	}
	old, had := u.index.Get(entry{addr: addr})
	if had && old.state() == stateTrimmed {
		return // trimmed anyway
	}
	u.setEntry(old, had, newEntry(addr, stateCorrupt, 0, 0, 0))
}
