package disk

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"slices"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// Open opens the unit stored in dir on fsys, creating the directory if need
// be, and recovers its state: the metadata, then every segment in order,
// rebuilding the index (docs/formats.md lists the rules). It takes an
// exclusive lock on the directory until Close.
//
// A new or empty directory gives a fresh unit at epoch 0, or a blank one if
// opts.HeldData says the node held data there. Open returns an error
// wrapping ErrBadMeta if the metadata fails its checksum, ErrNoMeta if
// segments exist without metadata, ErrForeign if the directory belongs to
// another node, ErrDamaged (and storage.ErrCorrupt) if a segment is damaged
// so that the unit cannot tell which addresses it held, ErrNoIdentity if a
// new directory has no identity to take, and the file system's error
// otherwise. A torn record at the end of the last segment (a write that
// never completed its fsync) is dropped and the file truncated there; a
// record that fails its checksum elsewhere leaves its address answering
// storage.ErrCorrupt, and nothing after it is dropped.
func Open(fsys vfs.FS, dir string, opts Options) (*Unit, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := makeDir(fsys, dir); err != nil {
		return nil, err
	}
	lock, err := fsys.Lock(fsys.PathJoin(dir, lockName))
	if err != nil {
		return nil, fmt.Errorf("disk: locking %s: %w", dir, err)
	}
	u := &Unit{fs: fsys, dir: dir, opts: opts, lock: lock, index: newIndex(),
		pending: map[storage.Address]pendingOp{}}
	u.prewrite = opts.Sync != SyncNone &&
		(opts.Prewrite == PrewriteOn || opts.Prewrite == PrewriteAuto && vfs.PrefersOverwrite(fsys))
	if err := u.recover(); err != nil {
		for _, s := range u.segs {
			_ = s.file.Close()
		}
		_ = lock.Close()
		return nil, err
	}
	return u, nil
}

// makeDir creates dir if it is missing and makes its entry durable, syncing
// each directory above it that gained an entry.
func makeDir(fsys vfs.FS, dir string) error {
	if _, err := fsys.Stat(dir); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("disk: %w", err)
	}
	// Find the deepest ancestor that exists: everything below it is new.
	var created []string
	for p := dir; ; p = fsys.PathDir(p) {
		if _, err := fsys.Stat(p); err == nil {
			break
		}
		created = append(created, p)
		if fsys.PathDir(p) == p {
			break
		}
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	for _, p := range created {
		if err := vfs.SyncDir(fsys, fsys.PathDir(p)); err != nil {
			return fmt.Errorf("disk: syncing the parent of %s: %w", p, err)
		}
	}
	return nil
}

// recover loads the metadata and the segments. The caller owns u alone.
func (u *Unit) recover() error {
	names, err := u.fs.List(u.dir)
	if err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	nums := segmentNumbers(names)
	if err := u.loadMeta(len(nums) > 0); err != nil {
		return err
	}
	if err := u.removeIfPresent(names, metaTmpName); err != nil {
		return err
	}
	if u.meta.blank && len(nums) > 0 {
		return fmt.Errorf("%w: a blank unit's directory holds segments", ErrBadMeta)
	}
	if err := u.loadSegments(nums); err != nil {
		return err
	}
	u.tail = max(u.tail, u.meta.trimMark)
	u.removeSegments(u.takeTrimmedSegments())
	return u.syncRecovered()
}

// syncRecovered syncs every segment file and the directory: what the unit
// serves from now on is durable even if an earlier process wrote it without
// syncing (under SyncNone, or before a crash), so that later replies that
// depend on it are sound.
func (u *Unit) syncRecovered() error {
	for _, s := range u.segs {
		if err := s.file.Sync(); err != nil {
			return fmt.Errorf("disk: syncing segment %d: %w", s.num, err)
		}
	}
	if err := vfs.SyncDir(u.fs, u.dir); err != nil {
		return fmt.Errorf("disk: syncing %s: %w", u.dir, err)
	}
	return nil
}

// loadMeta reads the metadata, or formats a new directory. hasSegments says
// the directory holds segment files.
func (u *Unit) loadMeta(hasSegments bool) error {
	m, ok, err := readMeta(u.fs, u.dir)
	switch {
	case err != nil:
		return fmt.Errorf("disk: %s: %w", u.dir, err)
	case ok:
		return u.adoptMeta(m)
	case hasSegments:
		return fmt.Errorf("%w: %s", ErrNoMeta, u.dir)
	}
	return u.format()
}

// adoptMeta checks that m belongs to this node and takes it.
func (u *Unit) adoptMeta(m meta) error {
	switch {
	case u.opts.Node != "" && m.node != u.opts.Node:
		return fmt.Errorf("%w: %s is node %q's, not %q's", ErrForeign, u.dir, m.node, u.opts.Node)
	case !u.opts.ID.IsZero() && m.id != u.opts.ID:
		return fmt.Errorf("%w: %s carries identity %v, not %v", ErrForeign, u.dir, m.id, u.opts.ID)
	}
	u.meta, u.fence = m, m.epoch
	return nil
}

// format stamps a new directory: fresh at epoch 0, or blank if the node held
// data before (its disk was lost).
func (u *Unit) format() error {
	id := u.opts.ID
	if id.IsZero() {
		if u.opts.Rand == nil {
			return fmt.Errorf("%w: %s", ErrNoIdentity, u.dir)
		}
		var err error
		if id, err = NewID(u.opts.Rand); err != nil {
			return err
		}
	}
	m := meta{node: u.opts.Node, id: id, blank: u.opts.HeldData}
	if err := writeMeta(u.fs, u.dir, m); err != nil {
		return err
	}
	u.meta = m
	return nil
}

func (u *Unit) removeIfPresent(names []string, name string) error {
	for _, n := range names {
		if n == name {
			if err := u.fs.Remove(u.fs.PathJoin(u.dir, name)); err != nil {
				return fmt.Errorf("disk: %w", err)
			}
		}
	}
	return nil
}

// loadSegments scans the segments in order into the index. Trailing
// segments that hold nothing valid (created, but their first commit never
// synced) are deleted first, so that "last" names the segment a power loss
// may have torn.
func (u *Unit) loadSegments(nums []uint64) error {
	var buf []byte
	for len(nums) > 0 {
		last := nums[len(nums)-1]
		data, err := u.readSegment(last, buf)
		if err != nil {
			return err
		}
		if emptySegment(last, data) {
			// NB: before the file is deleted as one that holds nothing.
			if data, err = u.reread(last, data); err != nil {
				return err
			}
		}
		buf = data
		if !emptySegment(last, data) {
			break
		}
		if err := u.dropSegmentFile(last); err != nil {
			return err
		}
		nums = nums[:len(nums)-1]
	}
	for i, num := range nums {
		data, err := u.readSegment(num, buf)
		if err != nil {
			return err
		}
		buf = data
		if err := u.loadSegment(num, data, i == len(nums)-1); err != nil {
			return err
		}
	}
	return nil
}

// reread returns what segment num holds, given data, a read of it that
// showed damage (see stableRead).
func (u *Unit) reread(num uint64, data []byte) ([]byte, error) {
	return stableRead(data, func() ([]byte, error) { return u.readSegment(num, nil) }, func(b []byte) bool {
		return segmentSound(num, b)
	})
}

// maxRereads bounds the extra reads stableRead makes.
const maxRereads = 3

// stableRead returns what a file holds, given first, a read of it that
// sound finds damaged, and again, which reads it anew. A read can be
// damaged on its way from the disk (a flipped bit that the disk does not
// hold), and recovery must not take such a read for damage on the disk: it
// would drop a synced record as a torn tail, or refuse a sound segment.
// So it reads again, up to maxRereads times: the first sound read wins; two
// reads that agree show the damage is on the disk, and are the answer;
// with neither, the answer is the bytewise majority of three reads (a
// damaged read rarely damages the same byte twice).
func stableRead(first []byte, again func() ([]byte, error), sound func([]byte) bool) ([]byte, error) {
	reads := [][]byte{first}
	for range maxRereads {
		b, err := again()
		if err != nil {
			return nil, err
		}
		if sound(b) {
			return b, nil
		}
		for _, prev := range reads {
			if bytes.Equal(prev, b) {
				return b, nil
			}
		}
		reads = append(reads, b)
		if len(reads) == 3 {
			if m, ok := majority(reads); ok {
				return m, nil
			}
		}
	}
	return first, nil
}

// majority returns the bytewise majority of three reads of one length, and
// false if their lengths differ.
func majority(reads [][]byte) ([]byte, bool) {
	a, b, c := reads[0], reads[1], reads[2]
	if len(a) != len(b) || len(a) != len(c) {
		return nil, false
	}
	m := bytes.Clone(a)
	for i := range m {
		if a[i] != b[i] && b[i] == c[i] {
			m[i] = b[i]
		}
	}
	return m, true
}

// segmentSound reports whether data, a read of segment num, shows no damage:
// its file header holds, and every record passes its checksums up to the
// end or up to zeros alone (written ahead, see Options.Prewrite).
func segmentSound(num uint64, data []byte) bool {
	if checkSegHeader(num, data) != nil {
		return false
	}
	for p := segHeaderSize; p < len(data); {
		h, err := decodeHeader(num, int64(p), data[p:])
		if err != nil || p+h.size() > len(data) || h.kind.hasPayload() && !recordIntact(num, p, data) {
			return !slices.ContainsFunc(data[p:], func(b byte) bool { return b != 0 })
		}
		p += h.size()
	}
	return true
}

// readSegment reads a whole segment file into buf (grown as need be) and
// returns the bytes.
func (u *Unit) readSegment(num uint64, buf []byte) ([]byte, error) {
	f, err := u.fs.Open(u.fs.PathJoin(u.dir, segName(num)))
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("disk: %w", err)
	}
	if int64(cap(buf)) < fi.Size() {
		buf = make([]byte, fi.Size())
	}
	buf = buf[:fi.Size()]
	n, err := f.ReadAt(buf, 0)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("disk: reading segment %d: %w", num, err)
	}
	return buf[:n], nil
}

// dropSegmentFile deletes a segment file that holds nothing, durably.
func (u *Unit) dropSegmentFile(num uint64) error {
	if err := u.fs.Remove(u.fs.PathJoin(u.dir, segName(num))); err != nil {
		return fmt.Errorf("disk: %w", err)
	}
	return vfs.SyncDir(u.fs, u.dir)
}

// emptySegment reports whether a segment holds no valid record anywhere
// (its header may be torn or missing).
func emptySegment(num uint64, data []byte) bool {
	return nextHeader(num, data, segHeaderSize) < 0
}

// nextHeader returns the offset of the first valid record header at or
// after from, or -1. Only a header whose offset field names its own place
// and whose checksum holds counts.
func nextHeader(num uint64, data []byte, from int) int {
	for q := max(from, segHeaderSize); q+headerSize <= len(data); q++ {
		if int64(leUint64(data[q+offOffset:])) != int64(q) {
			continue
		}
		if _, err := decodeHeader(num, int64(q), data[q:]); err == nil {
			return q
		}
	}
	return -1
}

// loadSegment scans one segment's records into the index and opens the file
// (for appending, if it is the last).
//
// NB: a read can be damaged on its way from the disk, and recovery must
// not take that for damage on the disk: at the first sign of damage the
// segment is read again (reread), and the scan goes on over that read
// from where it stopped. The records before it passed their checksums, so
// they are the same in both reads.
func (u *Unit) loadSegment(num uint64, data []byte, last bool) error {
	var err error
	if checkSegHeader(num, data) != nil {
		if data, err = u.reread(num, data); err != nil {
			return err
		}
	}
	if err := checkSegHeader(num, data); err != nil {
		return fmt.Errorf("%w: %w: segment %d: %v", ErrDamaged, storage.ErrCorrupt, num, err)
	}
	s := &segment{num: num}
	end, at, err := u.scan(s, data, last, segHeaderSize, true)
	if err == nil && at >= 0 {
		if data, err = u.reread(num, data); err != nil {
			return err
		}
		end, _, err = u.scan(s, data, last, at, false)
	}
	if err != nil {
		return err
	}
	return u.openSegment(s, end, int64(len(data)), last)
}

// scan applies the records of segment s, held in data, to the index and
// returns where the valid records end. A bad record (an incomplete one, or
// one that fails a checksum) at the end of the last segment that no later
// record proves durable is a torn tail: the scan ends there, and the records
// after it, none of which was acknowledged, are dropped. Elsewhere a bad
// record whose header holds leaves its address corrupt and the scan goes on
// after it; one whose header is destroyed is damage the unit cannot place
// (ErrDamaged). The scan starts at from. With stop set, it stops at the
// first bad record that is not zeros to the end, before acting on it, and
// returns its offset as at (else at is -1): the caller reads the segment
// again before it trusts the damage (see loadSegment).
func (u *Unit) scan(s *segment, data []byte, last bool, from int, stop bool) (end int64, at int, err error) {
	p := from
	for p < len(data) {
		h, herr := decodeHeader(s.num, int64(p), data[p:])
		complete := herr == nil && p+h.size() <= len(data)
		if complete && (!h.kind.hasPayload() || recordIntact(s.num, p, data)) {
			// A junk or trim record has no payload: its header's own
			// checksum vouches for everything it says.
			u.apply(h, s.num, int64(p))
			s.maxAddr = max(s.maxAddr, h.addr+1)
			p += h.size()
			continue
		}
		if stop && slices.ContainsFunc(data[p:], func(b byte) bool { return b != 0 }) {
			return 0, p, nil
		}
		if last && !provenDurable(s.num, data, p) {
			return int64(p), -1, nil // a torn tail
		}
		if herr != nil {
			return 0, -1, fmt.Errorf("%w: %w: segment %d offset %d: %v, and later records show it was durable",
				ErrDamaged, storage.ErrCorrupt, s.num, p, herr)
		}
		u.markCorrupt(h.addr)
		s.maxAddr = max(s.maxAddr, h.addr+1)
		if !complete {
			return int64(len(data)), -1, nil
		}
		p += h.size()
	}
	return int64(p), -1, nil
}

// recordIntact reports whether the record at p passes both checksums.
func recordIntact(num uint64, p int, data []byte) bool {
	_, _, err := decodeRecord(num, int64(p), data[p:])
	return err == nil
}

// provenDurable reports whether a record after offset p of the segment in
// data says that the byte at p was durable when it was queued (its synced
// field is above p): then whatever is wrong at p happened to synced data,
// and is not a write torn by a power loss.
func provenDurable(num uint64, data []byte, p int) bool {
	for q := p + 1; ; {
		q = nextHeader(num, data, q)
		if q < 0 {
			return false
		}
		h, _ := decodeHeader(num, int64(q), data[q:])
		if h.synced > int64(p) {
			return true
		}
		q += h.size()
	}
}

// openSegment opens a scanned segment's file and adds it to u.segs. The
// last segment is opened for appending at end, truncated there (and synced)
// if a torn tail lay beyond it.
func (u *Unit) openSegment(s *segment, end, size int64, last bool) error {
	name := u.fs.PathJoin(u.dir, segName(s.num))
	var err error
	if !last {
		s.file, err = u.fs.Open(name)
		s.size = size
	} else if s.file, err = u.fs.OpenReadWrite(name); err == nil && end < size {
		err = truncateTorn(s.file, end)
	}
	if err != nil {
		if s.file != nil {
			_ = s.file.Close()
		}
		return fmt.Errorf("disk: opening segment %d: %w", s.num, err)
	}
	if last {
		s.size = end
	}
	s.durableOff = s.size // syncRecovered syncs it before anything is served
	s.zeroEnd = s.size
	u.segs = append(u.segs, s)
	return nil
}

func truncateTorn(f vfs.File, end int64) error {
	if err := f.Truncate(end); err != nil {
		return err
	}
	return f.Sync()
}
