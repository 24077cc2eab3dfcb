package disk

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/google/btree"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// Unit is a durable storage.Unit over a data directory of a vfs.FS. Its
// semantics are those of storage.Memory (same sentinel errors, epoch checks,
// trim marks, blank units and Join), with every acknowledged change on disk
// first: a record appended to a segment file and synced (per Options.Sync)
// for writes, fills and trims, the metadata file replaced durably for seals,
// prefix trims and joins.
//
// Unit is safe for concurrent use by multiple goroutines. It starts no
// goroutines and reads no clock: concurrent writes share an fsync by having
// the first of them that finds none in progress perform it for all (a lone
// caller syncs its own write), so a deterministic scheduler can drive it
// with synchronous calls. The vfs.FS may block (a slow disk); the caller
// that blocks in it holds no lock that readers need, but concurrent writers
// wait for its sync.
type Unit struct {
	fs   vfs.FS
	dir  string
	opts Options
	lock io.Closer

	// metaMu serialises metadata rewrites (Seal, PrefixTrim, Join). It is
	// taken before mu and held across the file operations.
	metaMu sync.Mutex

	mu sync.Mutex

	meta  meta          // as on disk
	fence storage.Epoch // requests below it are refused; >= meta.epoch
	// blankSealed and blankSeal are the newest seal a blank unit refused,
	// the only epoch it may join at (kept in memory, as storage.Memory
	// does: losing them on a restart only delays a join).
	blankSealed bool
	blankSeal   storage.Epoch

	tail    storage.Address // one past the highest address taken; >= trim mark
	stored  int             // payload bytes of the data entries indexed
	index   *btree.BTreeG[entry]
	pending map[storage.Address]pendingOp // newest uncommitted change per address
	segs    []*segment                    // by number; the last is active

	commit   commitState
	prewrite bool  // the active segment is written ahead (Options.Prewrite)
	failed   error // the write or sync error that failed the unit
	closed   bool
}

// pendingOp is a queued change not yet durable: its commit sequence and the
// state it gives its address.
type pendingOp struct {
	seq uint64
	st  state
}

var (
	_ storage.Unit      = (*Unit)(nil)
	_ storage.Inspector = (*Unit)(nil)
	_ storage.Repairer  = (*Unit)(nil)
)

// ID returns the identity stamped into the unit's directory.
func (u *Unit) ID() ID {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.meta.id
}

// Dir returns the unit's data directory.
func (u *Unit) Dir() string { return u.dir }

// checkEpoch returns the error for a request stamped with epoch, or nil if
// it may proceed. The caller holds mu.
func (u *Unit) checkEpoch(epoch storage.Epoch) error {
	switch {
	case u.closed:
		return ErrClosed
	case u.meta.blank:
		return storage.ErrBlank
	case epoch < u.fence:
		return &storage.SealedError{Epoch: u.fence}
	case epoch > u.meta.epoch:
		return storage.ErrFutureEpoch
	}
	return nil
}

// checkRequest validates the epoch, then the address. The caller holds mu.
func (u *Unit) checkRequest(epoch storage.Epoch, addr storage.Address) error {
	if err := u.checkEpoch(epoch); err != nil {
		return err
	}
	if addr >= storage.MaxAddress {
		return storage.ErrInvalidAddress
	}
	return nil
}

// checkMutation is checkRequest for Write, Fill and Trim, which a failed
// unit refuses. The caller holds mu.
func (u *Unit) checkMutation(epoch storage.Epoch, addr storage.Address) error {
	if err := u.checkRequest(epoch, addr); err != nil {
		return err
	}
	if u.failed != nil {
		return fmt.Errorf("%w: %v", ErrFailed, u.failed)
	}
	return nil
}

// committed returns what reads see at addr. The caller holds mu.
func (u *Unit) committed(addr storage.Address) (entry, state) {
	if addr < u.meta.trimMark {
		return entry{}, stateTrimmed
	}
	e, ok := u.index.Get(entry{addr: addr})
	if !ok {
		return entry{}, 0
	}
	return e, e.state()
}

// effective returns what addr will hold once every queued change is
// durable, and the sequence of the newest such change (0 if none). Writes,
// fills and trims decide on it. The caller holds mu.
func (u *Unit) effective(addr storage.Address) (state, uint64) {
	if addr < u.meta.trimMark {
		return stateTrimmed, 0
	}
	if addr >= u.tail {
		// NB: every address queued or indexed lies below the tail, which
		// never falls: an append past it needs neither lookup.
		return 0, 0
	}
	if p, ok := u.pending[addr]; ok {
		return p.st, p.seq
	}
	_, st := u.committed(addr)
	return st, 0
}

// errFor maps a taken address's state to the error a Write or Fill gets.
func errFor(st state) error {
	if st == stateTrimmed {
		return storage.ErrTrimmed
	}
	return storage.ErrWritten
}

// Write stores data at addr and returns once the record is durable (per
// Options.Sync); only then do reads see it. The caller may reuse data
// afterwards. It returns a *storage.SealedError if epoch is older than the
// unit's, storage.ErrFutureEpoch if newer, storage.ErrBlank for a blank unit,
// storage.ErrInvalidAddress, storage.ErrNilData, storage.ErrTooLarge,
// storage.ErrTrimmed if addr was trimmed, storage.ErrWritten if addr holds
// (or is being given) data or junk, an error wrapping ErrFailed if this or
// an earlier write failed to reach the disk (the outcome of this one is then
// unknown) and ErrClosed. ctx is ignored.
func (u *Unit) Write(ctx context.Context, epoch storage.Epoch, addr storage.Address, data []byte) error {
	return u.mutate(func() (uint64, error) { return u.queueWrite(epoch, addr, data) })
}

var _ storage.BatchWriter = (*Unit)(nil)

// queueWrite decides a write of data at addr and queues its record, and
// returns the record's sequence. The caller holds mu.
func (u *Unit) queueWrite(epoch storage.Epoch, addr storage.Address, data []byte) (uint64, error) {
	if err := u.checkMutation(epoch, addr); err != nil {
		return 0, err
	}
	switch {
	case data == nil:
		return 0, storage.ErrNilData
	case len(data) > storage.MaxEntryBytes:
		return 0, storage.ErrTooLarge
	}
	if st, _ := u.effective(addr); st != 0 {
		return 0, errFor(st)
	}
	return u.enqueue(header{kind: kindData, addr: addr, epoch: epoch}, data)
}

// WriteBatch stores the items as Write would, in order, and returns once
// every record it queued is durable: the batch shares the wait (and
// usually one group commit) that a Write per item would pay each time.
// Each item's error is what Write would have returned for it; a failure
// to reach the disk gives every queued item the error wrapping ErrFailed.
// ctx is ignored.
func (u *Unit) WriteBatch(ctx context.Context, epoch storage.Epoch, items []storage.WriteItem) []error {
	errs := make([]error, len(items))
	seqs := make([]uint64, len(items))
	u.mu.Lock()
	for i, it := range items {
		seqs[i], errs[i] = u.queueWrite(epoch, it.Addr, it.Data)
	}
	// NB: each record's own wait, as Write's: two commits may be in flight
	// at once, and one landing says nothing of the other. After the first
	// wait the rest are usually durable already.
	locked := true
	for i, seq := range seqs {
		if seq == 0 {
			continue
		}
		if !locked {
			u.mu.Lock()
		}
		errs[i] = u.awaitUnlocked(seq)
		locked = false
	}
	if locked {
		u.mu.Unlock()
	}
	return errs
}

// Read returns a copy of the data at addr, read from its segment and
// checked against its checksums. An empty entry reads back as an empty,
// non-nil slice. It returns a *storage.SealedError if epoch is older than
// the unit's, storage.ErrFutureEpoch if newer, storage.ErrBlank for a blank
// unit, storage.ErrInvalidAddress, storage.ErrTrimmed if addr was trimmed,
// storage.ErrJunk if it was filled, storage.ErrUnwritten if nothing durable
// is there yet, an error wrapping storage.ErrCorrupt if its record fails its
// checksum (never the bad bytes), the file system's error if the read
// failed, and ErrClosed. ctx is ignored.
func (u *Unit) Read(ctx context.Context, epoch storage.Epoch, addr storage.Address) ([]byte, error) {
	u.mu.Lock()
	if err := u.checkRequest(epoch, addr); err != nil {
		u.mu.Unlock()
		return nil, err
	}
	e, st := u.committed(addr)
	var seg *segment
	if st == stateData {
		seg = findSegment(u.segs, uint64(e.seg))
	}
	u.mu.Unlock()

	switch st {
	case stateJunk:
		return nil, storage.ErrJunk
	case stateTrimmed:
		return nil, storage.ErrTrimmed
	case stateCorrupt:
		return nil, fmt.Errorf("%w: address %d failed its checksum at recovery", storage.ErrCorrupt, addr)
	case 0:
		return nil, storage.ErrUnwritten
	}
	data, err := u.readEntry(seg, e)
	if err != nil && !errors.Is(err, storage.ErrCorrupt) {
		return nil, u.explainReadError(addr, err)
	}
	return data, err
}

// explainReadError maps a failed read of addr to ErrTrimmed if a prefix
// trim removed its segment meanwhile, and returns err otherwise.
func (u *Unit) explainReadError(addr storage.Address, err error) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	if addr < u.meta.trimMark {
		return storage.ErrTrimmed
	}
	return err
}

// readEntry reads and checks the data record e locates in seg (nil if the
// segment is gone).
func (u *Unit) readEntry(seg *segment, e entry) ([]byte, error) {
	if seg == nil {
		return nil, fmt.Errorf("disk: segment %d of address %d is gone", e.seg, e.addr)
	}
	buf := make([]byte, headerSize+e.n())
	if _, err := seg.file.ReadAt(buf, int64(e.off)); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, corruptf(e, seg, "record cut short: %v", err)
		}
		return nil, fmt.Errorf("disk: reading address %d: %w", e.addr, err)
	}
	h, payload, err := decodeRecord(seg.num, int64(e.off), buf)
	switch {
	case err != nil:
		return nil, corruptf(e, seg, "%v", err)
	case !h.kind.hasPayload() || h.addr != e.addr || h.length != e.n():
		return nil, corruptf(e, seg, "record holds %v of address %d, %d bytes", h.kind, h.addr, h.length)
	}
	return payload, nil // buf is the caller's
}

func corruptf(e entry, seg *segment, format string, args ...any) error {
	return fmt.Errorf("%w: address %d (segment %d offset %d): %s",
		storage.ErrCorrupt, e.addr, seg.num, e.off, fmt.Sprintf(format, args...))
}

// Fill marks an unwritten addr as junk, durably. Filling junk again
// succeeds. It returns a *storage.SealedError if epoch is older than the
// unit's, storage.ErrFutureEpoch if newer, storage.ErrBlank for a blank
// unit, storage.ErrInvalidAddress, storage.ErrTrimmed if addr was trimmed,
// storage.ErrWritten if addr holds (or is being given) data, an error
// wrapping ErrFailed if the fill failed to reach the disk and ErrClosed.
// ctx is ignored.
func (u *Unit) Fill(ctx context.Context, epoch storage.Epoch, addr storage.Address) error {
	return u.mutate(func() (uint64, error) {
		if err := u.checkMutation(epoch, addr); err != nil {
			return 0, err
		}
		switch st, seq := u.effective(addr); st {
		case stateJunk:
			return seq, nil // junk already, or a queued fill: done when it is
		case 0:
			return u.enqueue(header{kind: kindJunk, addr: addr, epoch: epoch}, nil)
		default:
			return 0, errFor(st)
		}
	})
}

// Repair replaces the record at addr with data (or, if junk is set, with
// junk; data is then ignored) only if the record stored there is corrupt:
// it failed its checksum at recovery, or fails it when Repair reads it
// back. It implements storage.Repairer. The repair is a record of its own,
// appended and synced (per Options.Sync) as a write is, before Repair
// returns; from then on reads, and a recovery after a crash, see the
// repaired entry. It returns storage.ErrWritten if the record at addr is
// good (a repair never overwrites one) or a change to addr is queued,
// storage.ErrUnwritten if addr holds nothing, storage.ErrTrimmed if it was
// trimmed, the errors of Write for the epoch, the address and the data,
// the file system's error if the record could not be read back, an error
// wrapping ErrFailed and ErrClosed. ctx is ignored.
func (u *Unit) Repair(ctx context.Context, epoch storage.Epoch, addr storage.Address, data []byte, junk bool) error {
	return u.mutate(func() (uint64, error) {
		if err := u.checkMutation(epoch, addr); err != nil {
			return 0, err
		}
		switch {
		case junk:
			data = nil
		case data == nil:
			return 0, storage.ErrNilData
		case len(data) > storage.MaxEntryBytes:
			return 0, storage.ErrTooLarge
		}
		if p, ok := u.pending[addr]; ok && addr >= u.meta.trimMark {
			return 0, errFor(p.st) // a change is on its way to the disk
		}
		e, st := u.committed(addr)
		switch st {
		case 0:
			return 0, storage.ErrUnwritten
		case stateTrimmed:
			return 0, storage.ErrTrimmed
		case stateJunk:
			return 0, storage.ErrWritten // junk has no payload to damage
		case stateData:
			// NB: read back under mu, so that what is judged is what is
			// replaced.
			_, err := u.readEntry(findSegment(u.segs, uint64(e.seg)), e)
			if err == nil {
				return 0, storage.ErrWritten
			}
			if !errors.Is(err, storage.ErrCorrupt) {
				return 0, err
			}
		}
		if junk {
			return u.enqueue(header{kind: kindRepairJunk, addr: addr, epoch: epoch}, nil)
		}
		return u.enqueue(header{kind: kindRepairData, addr: addr, epoch: epoch}, data)
	})
}

// Trim drops whatever addr holds, durably: later reads, writes and fills of
// addr return storage.ErrTrimmed, and the tail is above addr. The record's
// bytes are reclaimed when a prefix trim passes their segment. Trimming a
// trimmed or unwritten address succeeds. It returns a *storage.SealedError if
// epoch is older than the unit's, storage.ErrFutureEpoch if newer,
// storage.ErrBlank for a blank unit, storage.ErrInvalidAddress, an error
// wrapping ErrFailed if the trim failed to reach the disk and ErrClosed.
// ctx is ignored.
func (u *Unit) Trim(ctx context.Context, epoch storage.Epoch, addr storage.Address) error {
	return u.mutate(func() (uint64, error) {
		if err := u.checkMutation(epoch, addr); err != nil {
			return 0, err
		}
		if st, seq := u.effective(addr); st == stateTrimmed {
			return seq, nil // trimmed already, or a queued trim
		}
		return u.enqueue(header{kind: kindTrim, addr: addr, epoch: epoch}, nil)
	})
}

// PrefixTrim trims every address below addr: it records the new mark in the
// metadata durably, drops the index entries below it and deletes the segment
// files that hold only addresses below it. The mark only moves up: a
// PrefixTrim at or below it succeeds and changes nothing. The tail is at
// least addr afterwards. It returns a *storage.SealedError if epoch is older
// than the unit's, storage.ErrFutureEpoch if newer, storage.ErrBlank for a
// blank unit, storage.ErrInvalidAddress, the file system's error if the
// metadata could not be written (the trim may then have happened or not),
// and ErrClosed. A segment file that cannot be deleted is left for the next
// Open to delete. ctx is ignored.
func (u *Unit) PrefixTrim(ctx context.Context, epoch storage.Epoch, addr storage.Address) error {
	u.metaMu.Lock()
	defer u.metaMu.Unlock()
	u.mu.Lock()
	if err := u.checkRequest(epoch, addr); err != nil || addr <= u.meta.trimMark {
		u.mu.Unlock()
		return err
	}
	m := u.meta
	m.trimMark = addr
	u.mu.Unlock()

	if err := writeMeta(u.fs, u.dir, m); err != nil {
		return err
	}

	u.mu.Lock()
	u.meta = m
	u.dropBelowMark()
	victims := u.takeTrimmedSegments()
	u.mu.Unlock()
	u.removeSegments(victims)
	return nil
}

// dropBelowMark drops the index entries below the trim mark. The caller
// holds mu.
func (u *Unit) dropBelowMark() {
	for {
		e, ok := u.index.Min()
		if !ok || e.addr >= u.meta.trimMark {
			break
		}
		u.index.DeleteMin()
		if e.state() == stateData {
			u.stored -= e.n()
		}
	}
	u.tail = max(u.tail, u.meta.trimMark)
}

// takeTrimmedSegments removes from u.segs and returns the segments, other
// than the active one, whose every record lies below the trim mark and is
// durable. The caller holds mu.
func (u *Unit) takeTrimmedSegments() []*segment {
	var victims, keep []*segment
	for i, s := range u.segs {
		if i < len(u.segs)-1 && s.maxAddr <= u.meta.trimMark && s.lastSeq <= u.commit.durable {
			victims = append(victims, s)
		} else {
			keep = append(keep, s)
		}
	}
	u.segs = keep
	return victims
}

// removeSegments closes and deletes segment files, then syncs the
// directory. Failures leave files behind for the next Open, which deletes
// what lies below the mark.
func (u *Unit) removeSegments(segs []*segment) {
	if len(segs) == 0 {
		return
	}
	for _, s := range segs {
		_ = s.file.Close()
		_ = u.fs.Remove(u.fs.PathJoin(u.dir, segName(s.num)))
	}
	_ = vfs.SyncDir(u.fs, u.dir)
}

// Seal moves the unit to epoch and returns its local tail: one past the
// highest address written, filled or trimmed (queued writes included), 0
// if none. From the moment it is called, requests with a smaller epoch are
// refused; it waits for the writes accepted before that to become durable,
// records epoch in the metadata durably, and only then replies. Sealing at
// the current epoch again returns the tail. It returns a
// *storage.SealedError carrying the unit's epoch if epoch is older,
// storage.ErrBlank for a blank unit (which remembers epoch as the one it may
// join at), the file system's error if the metadata could not be written
// (requests below epoch stay refused; retry the seal) and ErrClosed. ctx is
// ignored.
func (u *Unit) Seal(ctx context.Context, epoch storage.Epoch) (storage.Address, error) {
	u.metaMu.Lock()
	defer u.metaMu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.closed:
		return 0, ErrClosed
	case u.meta.blank:
		if !u.blankSealed || epoch > u.blankSeal {
			u.blankSealed, u.blankSeal = true, epoch
		}
		return 0, storage.ErrBlank
	case epoch < u.fence:
		return 0, &storage.SealedError{Epoch: u.fence}
	case epoch == u.meta.epoch:
		return u.tail, nil
	}
	u.fence = epoch
	// NB: drain before the new epoch is durable and visible, so that no
	// write accepted under the old epoch is acknowledged after the seal's
	// reply. A failed drain leaves the unit failed; sealing goes on.
	_ = u.awaitDurable(u.commit.appended)
	m := u.meta
	m.epoch = epoch
	u.mu.Unlock()
	err := writeMeta(u.fs, u.dir, m)
	u.mu.Lock()
	if err != nil {
		return 0, err
	}
	u.meta = m
	return u.tail, nil
}

// Join lets a blank unit serve again, empty, at epoch, recording that in
// the metadata durably before it returns. Its rules are those of
// storage.Memory.Join: the unit must have refused a seal at epoch since it
// came back; a join at an older epoch gets a *storage.SealedError, one at an
// epoch no seal asked for storage.ErrFutureEpoch; joining again at the epoch
// it joined at succeeds; a unit that is not blank otherwise gets
// storage.ErrNotBlank. It returns the file system's error if the metadata
// could not be written, and ErrClosed. ctx is ignored.
func (u *Unit) Join(ctx context.Context, epoch storage.Epoch) error {
	u.metaMu.Lock()
	defer u.metaMu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	switch {
	case u.closed:
		return ErrClosed
	case !u.meta.blank && u.blankSealed && epoch == u.blankSeal && epoch <= u.meta.epoch:
		return nil // a retried join
	case !u.meta.blank:
		return storage.ErrNotBlank
	case !u.blankSealed || epoch > u.blankSeal:
		return storage.ErrFutureEpoch
	case epoch < u.blankSeal:
		return &storage.SealedError{Epoch: u.blankSeal}
	}
	m := u.meta
	m.blank, m.epoch = false, epoch
	u.mu.Unlock()
	err := writeMeta(u.fs, u.dir, m)
	u.mu.Lock()
	if err != nil {
		return err
	}
	u.meta, u.fence = m, epoch
	return nil
}

// Close waits for queued writes and the commits in flight, then closes the unit's files and releases
// its directory lock. Later calls return ErrClosed. It returns the first
// error met (a failed unit's failure included).
func (u *Unit) Close() error {
	u.metaMu.Lock()
	defer u.metaMu.Unlock()
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.closed {
		return ErrClosed
	}
	err := u.awaitDurable(u.commit.appended)
	// A failed unit may still have a commit in flight: let it end before
	// its files close.
	for n := len(u.commit.flights); n > 0; n = len(u.commit.flights) {
		u.wait(u.commit.flights[n-1].done)
	}
	for u.commit.ahead != nil {
		u.wait(u.changed())
	}
	u.closed = true
	u.signal()
	if n := len(u.segs); n > 0 && u.failed == nil {
		if cerr := cutAhead(u.segs[n-1]); err == nil {
			err = cerr
		}
	}
	for _, s := range u.segs {
		if cerr := s.file.Close(); err == nil {
			err = cerr
		}
	}
	if cerr := u.lock.Close(); err == nil {
		err = cerr
	}
	return err
}

// The methods below implement storage.Inspector, for tests, checkers and
// tools. They bypass the epoch, see only durable state, never change the
// unit, and are safe to call concurrently with the Unit methods.

// Epoch returns the epoch the unit was last sealed (or joined) at, as
// recorded on disk.
func (u *Unit) Epoch() storage.Epoch {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.meta.epoch
}

// Blank reports whether the unit came back with an empty directory and has
// not joined yet.
func (u *Unit) Blank() bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.meta.blank
}

// TrimMark returns the prefix trim mark: every address below it is trimmed.
func (u *Unit) TrimMark() storage.Address {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.meta.trimMark
}

// Tail returns what Seal would return, without sealing.
func (u *Unit) Tail() storage.Address {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.tail
}

// StoredBytes returns the total payload length of the durable entries the
// unit holds above its trim mark.
func (u *Unit) StoredBytes() int {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.stored
}

// Inspect reports the durable state of addr and, for storage.StateData, a
// copy of its data read from disk. An address whose record fails its
// checksum (or cannot be read) reports storage.StateData with nil data.
// Addresses below the trim mark report storage.StateTrimmed.
func (u *Unit) Inspect(addr storage.Address) (storage.State, []byte) {
	u.mu.Lock()
	e, st := u.committed(addr)
	seg := findSegment(u.segs, uint64(e.seg))
	u.mu.Unlock()
	if st != stateData {
		return st.storageState(), nil
	}
	data, err := u.readEntry(seg, e)
	if err != nil {
		return storage.StateData, nil
	}
	return storage.StateData, data
}

// Ascend calls fn for every durable stored address at or above the trim
// mark, in increasing order, until fn returns false: data, junk, single
// trims and corrupt addresses (reported as storage.StateData with nil
// data). data is read from disk for storage.StateData. Ascend holds the
// unit's lock while it runs: fn must not call methods of u.
func (u *Unit) Ascend(fn func(addr storage.Address, s storage.State, data []byte) bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.index.Ascend(func(e entry) bool {
		var data []byte
		if e.state() == stateData {
			data, _ = u.readEntry(findSegment(u.segs, uint64(e.seg)), e)
		}
		return fn(e.addr, e.state().storageState(), data)
	})
}
