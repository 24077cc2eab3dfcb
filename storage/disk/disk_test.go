package disk_test

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
)

const dir = "/data"

var ctx = context.Background()

// entryData is the payload the tests write at addr.
func entryData(addr storage.Address) []byte {
	return fmt.Appendf(nil, "entry %d %s", addr, make([]byte, int(addr%7)*9))
}

// crash returns the durable state of m's unit after a power loss, and the
// unit reopened on it.
func crash(t *testing.T, m *vfs.MemFS, opts disk.Options) (*vfs.MemFS, *disk.Unit) {
	t.Helper()
	c := m.CrashClone(vfs.CrashOptions{})
	return c, openUnit(t, c, dir, opts)
}

func TestReopenKeepsEverything(t *testing.T) {
	m := vfs.NewMem()
	opts := testOptions()
	u := openUnit(t, m, dir, opts)
	for a := range storage.Address(200) {
		switch a % 10 {
		case 3:
			require.NoError(t, u.Fill(ctx, 0, a))
		case 7:
			require.NoError(t, u.Trim(ctx, 0, a))
		default:
			require.NoError(t, u.Write(ctx, 0, a, entryData(a)))
		}
	}
	_, err := u.Seal(ctx, 4)
	require.NoError(t, err)
	require.NoError(t, u.PrefixTrim(ctx, 4, 50))
	wantStored := u.StoredBytes()

	_, r := crash(t, m, opts)
	assert.Equal(t, storage.Epoch(4), r.Epoch())
	assert.Equal(t, storage.Address(50), r.TrimMark())
	assert.Equal(t, storage.Address(200), r.Tail())
	assert.Equal(t, wantStored, r.StoredBytes())
	assert.Equal(t, u.ID(), r.ID())
	for a := range storage.Address(210) {
		got, err := r.Read(ctx, 4, a)
		switch {
		case a < 50 || a%10 == 7 && a < 200:
			assert.ErrorIs(t, err, storage.ErrTrimmed, "addr %d", a)
		case a >= 200:
			assert.ErrorIs(t, err, storage.ErrUnwritten, "addr %d", a)
		case a%10 == 3:
			assert.ErrorIs(t, err, storage.ErrJunk, "addr %d", a)
		default:
			require.NoError(t, err, "addr %d", a)
			assert.Equal(t, entryData(a), got, "addr %d", a)
		}
	}
	_, err = r.Read(ctx, 3, 60)
	var sealed *storage.SealedError
	require.ErrorAs(t, err, &sealed, "the sealed epoch survives")
	assert.Equal(t, storage.Epoch(4), sealed.Epoch)
}

func TestUnsyncedWritesAreNotAcknowledged(t *testing.T) {
	// SyncNone acknowledges before the fsync: a power loss loses the
	// writes (this is what the mode documents), while the epoch, synced
	// through the metadata, survives.
	m := vfs.NewMem()
	opts := testOptions()
	opts.Sync = disk.SyncNone
	u := openUnit(t, m, dir, opts)
	_, err := u.Seal(ctx, 2)
	require.NoError(t, err)
	require.NoError(t, u.Write(ctx, 2, 0, []byte("x")))
	_, r := crash(t, m, opts)
	_, err = r.Read(ctx, 2, 0)
	assert.ErrorIs(t, err, storage.ErrUnwritten)
	assert.Equal(t, storage.Epoch(2), r.Epoch())
}

func TestBlankAndJoin(t *testing.T) {
	m := vfs.NewMem()
	opts := testOptions()
	opts.HeldData = true
	u := openUnit(t, m, dir, opts)
	require.True(t, u.Blank(), "an empty directory of a node that held data comes back blank")
	assert.ErrorIs(t, u.Write(ctx, 0, 0, []byte("x")), storage.ErrBlank)
	_, err := u.Read(ctx, 0, 0)
	assert.ErrorIs(t, err, storage.ErrBlank)
	assert.ErrorIs(t, u.Join(ctx, 3), storage.ErrFutureEpoch, "no seal asked for epoch 3")
	_, err = u.Seal(ctx, 3)
	assert.ErrorIs(t, err, storage.ErrBlank)

	// A restart before the join stays blank, whatever HeldData says now.
	_, r := crash(t, m, testOptions())
	require.True(t, r.Blank())
	require.NoError(t, r.Close())

	_, err = u.Seal(ctx, 5)
	assert.ErrorIs(t, err, storage.ErrBlank)
	var sealed *storage.SealedError
	require.ErrorAs(t, u.Join(ctx, 3), &sealed, "a join older than the newest seal")
	require.NoError(t, u.Join(ctx, 5))
	require.NoError(t, u.Join(ctx, 5), "a retried join")
	require.NoError(t, u.Write(ctx, 5, 0, []byte("x")))
	assert.ErrorIs(t, u.Join(ctx, 6), storage.ErrNotBlank)

	_, r = crash(t, m, opts)
	assert.False(t, r.Blank(), "the join is durable")
	assert.Equal(t, storage.Epoch(5), r.Epoch())
	got, err := r.Read(ctx, 5, 0)
	require.NoError(t, err)
	assert.Equal(t, "x", string(got))
}

func TestFreshDirectoryIsNotBlank(t *testing.T) {
	u := openUnit(t, vfs.NewMem(), dir, testOptions())
	assert.False(t, u.Blank())
	assert.Equal(t, storage.Epoch(0), u.Epoch())
}

func TestRefusesForeignDirectory(t *testing.T) {
	m := vfs.NewMem()
	opts := testOptions()
	u := openUnit(t, m, dir, opts)
	id := u.ID()
	require.NoError(t, u.Close())

	other := opts
	other.Node = "n2"
	_, err := disk.Open(m, dir, other)
	assert.ErrorIs(t, err, disk.ErrForeign, "another node's name")

	other = opts
	other.ID = disk.ID{1}
	_, err = disk.Open(m, dir, other)
	assert.ErrorIs(t, err, disk.ErrForeign, "another identity")

	same := opts
	same.ID = id
	r, err := disk.Open(m, dir, same)
	require.NoError(t, err, "its own identity")
	require.NoError(t, r.Close())
}

func TestRefusesWithoutIdentity(t *testing.T) {
	_, err := disk.Open(vfs.NewMem(), dir, disk.Options{})
	assert.ErrorIs(t, err, disk.ErrNoIdentity)
}

func TestLockKeepsOutASecondOpen(t *testing.T) {
	m := vfs.NewMem()
	u := openUnit(t, m, dir, testOptions())
	_, err := disk.Open(m, dir, testOptions())
	assert.Error(t, err)
	require.NoError(t, u.Close())
	r, err := disk.Open(m, dir, testOptions())
	require.NoError(t, err, "closing releases the lock")
	require.NoError(t, r.Close())
}

// corruptFile flips a bit of name at off on m (through a plain write).
func corruptFile(t *testing.T, m vfs.FS, name string, off int64) {
	t.Helper()
	f, err := m.OpenReadWrite(name)
	require.NoError(t, err)
	b := make([]byte, 1)
	_, err = f.ReadAt(b, off)
	require.NoError(t, err)
	b[0] ^= 0x10
	_, err = f.WriteAt(b, off)
	require.NoError(t, err)
	require.NoError(t, f.Sync())
	require.NoError(t, f.Close())
}

func TestRefusesCorruptMetadata(t *testing.T) {
	m := vfs.NewMem()
	u := openUnit(t, m, dir, testOptions())
	_, err := u.Seal(ctx, 9)
	require.NoError(t, err)
	require.NoError(t, u.Close())
	corruptFile(t, m, dir+"/META", 33)
	_, err = disk.Open(m, dir, testOptions())
	assert.ErrorIs(t, err, disk.ErrBadMeta)
}

func TestRefusesSegmentsWithoutMetadata(t *testing.T) {
	m := vfs.NewMem()
	u := openUnit(t, m, dir, testOptions())
	require.NoError(t, u.Write(ctx, 0, 0, []byte("x")))
	require.NoError(t, u.Close())
	require.NoError(t, m.Remove(dir+"/META"))
	_, err := disk.Open(m, dir, testOptions())
	assert.ErrorIs(t, err, disk.ErrNoMeta, "an epoch never defaults back to zero")
}

// syncCounter counts the fsyncs of segment files.
type syncCounter struct{ n atomic.Int64 }

func (c *syncCounter) Inject(op errorfs.Op) errorfs.Fault {
	if op.Kind == errorfs.OpSync && len(op.Path) > 4 && op.Path[len(op.Path)-4:] == ".seg" {
		c.n.Add(1)
	}
	return errorfs.Fault{}
}

func TestGroupCommitSharesFsyncs(t *testing.T) {
	for _, tc := range []struct {
		mode   disk.SyncMode
		shared bool
	}{{disk.SyncBatch, true}, {disk.SyncEach, false}} {
		t.Run(tc.mode.String(), func(t *testing.T) {
			var syncs syncCounter
			// A slow sync gives the writers time to queue behind it.
			delay := func(errorfs.Op) {
				for range 200 {
					runtime.Gosched()
				}
			}
			inj := errorfs.Any(&syncs, errorfs.InjectorFunc(func(op errorfs.Op) errorfs.Fault {
				if op.Kind == errorfs.OpSync {
					return errorfs.Fault{Kind: errorfs.Delay}
				}
				return errorfs.Fault{}
			}))
			fsys := errorfs.Wrap(vfs.NewMem(), inj, errorfs.Options{Delay: delay})
			opts := testOptions()
			opts.Sync = tc.mode
			opts.SegmentBytes = 1 << 20
			u := openUnit(t, fsys, dir, opts)
			const writers, each = 16, 20
			var wg sync.WaitGroup
			for w := range writers {
				wg.Go(func() {
					for i := range each {
						a := storage.Address(w*each + i)
						assert.NoError(t, u.Write(ctx, 0, a, entryData(a)))
					}
				})
			}
			wg.Wait()
			n := syncs.n.Load()
			if tc.shared {
				assert.Less(t, n, int64(writers*each/2), "concurrent writes share fsyncs")
			} else {
				assert.GreaterOrEqual(t, n, int64(writers*each), "every write has its own fsync")
			}
		})
	}
}

func TestFailedSyncFailsTheUnit(t *testing.T) {
	m := vfs.NewMem()
	inj := errorfs.OnIndex(errorfs.PathContains(".seg", errorfs.OpSync), 1, errorfs.Fault{Kind: errorfs.Error})
	fsys := errorfs.Wrap(m, inj, errorfs.Options{})
	opts := testOptions()
	u := openUnit(t, fsys, dir, opts)
	require.NoError(t, u.Write(ctx, 0, 0, []byte("a")))
	err := u.Write(ctx, 0, 1, []byte("b"))
	require.ErrorIs(t, err, disk.ErrFailed)
	require.ErrorIs(t, u.Write(ctx, 0, 2, []byte("c")), disk.ErrFailed, "a failed unit takes no more writes")
	require.ErrorIs(t, u.Fill(ctx, 0, 3), disk.ErrFailed)
	got, err := u.Read(ctx, 0, 0)
	require.NoError(t, err, "reads go on")
	assert.Equal(t, "a", string(got))
	_, err = u.Read(ctx, 0, 1)
	assert.ErrorIs(t, err, storage.ErrUnwritten, "a write that failed is never readable")
	assert.ErrorIs(t, u.Close(), disk.ErrFailed)

	r := openUnit(t, m, dir, opts)
	got, err = r.Read(ctx, 0, 0)
	require.NoError(t, err, "reopening recovers")
	assert.Equal(t, "a", string(got))
	require.NoError(t, r.Write(ctx, 0, 2, []byte("c")))
}

func TestCorruptReadIsNeverServed(t *testing.T) {
	m := vfs.NewMem()
	fsys := errorfs.Wrap(m, nil, errorfs.Options{})
	u := openUnit(t, fsys, dir, testOptions())
	require.NoError(t, u.Write(ctx, 0, 0, []byte("payload")))
	for bit := range (recHeader + 7) * 8 {
		fsys.SetInjector(errorfs.OnIndex(errorfs.Ops(errorfs.OpRead), 0, errorfs.Fault{Kind: errorfs.Corrupt, Bit: bit}))
		got, err := u.Read(ctx, 0, 0)
		require.ErrorIs(t, err, storage.ErrCorrupt, "bit %d", bit)
		require.Nil(t, got)
	}
	fsys.SetInjector(nil)
	got, err := u.Read(ctx, 0, 0)
	require.NoError(t, err, "the disk itself was fine")
	assert.Equal(t, "payload", string(got))
}

func TestMisdirectedWriteIsNeverServed(t *testing.T) {
	m := vfs.NewMem()
	fsys := errorfs.Wrap(m, nil, errorfs.Options{})
	opts := testOptions()
	opts.SegmentBytes = 1 << 20
	u := openUnit(t, fsys, dir, opts)
	require.NoError(t, u.Write(ctx, 0, 0, []byte("first entry")))
	fsys.SetInjector(errorfs.OnIndex(errorfs.Ops(errorfs.OpWrite), 0, errorfs.Fault{Kind: errorfs.Misdirect, Shift: -20}))
	require.NoError(t, u.Write(ctx, 0, 1, []byte("second entry")), "the disk lies")
	fsys.SetInjector(nil)
	for a := range storage.Address(2) {
		got, err := u.Read(ctx, 0, a)
		require.ErrorIs(t, err, storage.ErrCorrupt, "addr %d", a)
		require.Nil(t, got)
	}
}

func TestRecoveryDropsTornTail(t *testing.T) {
	m := vfs.NewMem()
	opts := testOptions()
	opts.Sync = disk.SyncNone // acknowledged but never synced: tearable
	u := openUnit(t, m, dir, opts)
	require.NoError(t, u.Write(ctx, 0, 0, []byte("synced")))
	// Reopening syncs what it recovered; a SyncBatch write is synced.
	require.NoError(t, u.Close())
	opts.Sync = disk.SyncBatch
	u = openUnit(t, m, dir, opts)
	require.NoError(t, u.Write(ctx, 0, 1, []byte("also synced")))
	require.NoError(t, u.Close())
	opts.Sync = disk.SyncNone
	u = openUnit(t, m, dir, opts)
	for a := storage.Address(2); a < 6; a++ {
		require.NoError(t, u.Write(ctx, 0, a, entryData(a)))
	}

	seen := map[int]bool{}
	for seed := range uint64(40) {
		c := m.CrashClone(vfs.CrashOptions{Rand: randFor(seed)})
		r, err := disk.Open(c, dir, opts)
		require.NoError(t, err, "seed %d", seed)
		got, err := r.Read(ctx, 0, 1)
		require.NoError(t, err, "seed %d: the synced entry survives", seed)
		require.Equal(t, "also synced", string(got))
		kept := 0
		for a := storage.Address(2); a < 6; a++ {
			got, err := r.Read(ctx, 0, a)
			if err == nil {
				require.Equal(t, entryData(a), got, "seed %d addr %d", seed, a)
				require.Equal(t, int(a-2), kept, "seed %d: what survives is a prefix", seed)
				kept++
				continue
			}
			require.ErrorIs(t, err, storage.ErrUnwritten, "seed %d addr %d", seed, a)
		}
		seen[kept] = true
		require.NoError(t, r.Write(ctx, 0, 6, []byte("after")), "seed %d: the unit appends after the cut", seed)
		require.NoError(t, r.Close())
		r, err = disk.Open(c, dir, opts)
		require.NoError(t, err, "seed %d: reopened after the cut", seed)
		got, err = r.Read(ctx, 0, 6)
		require.NoError(t, err)
		require.Equal(t, "after", string(got))
		require.NoError(t, r.Close())
	}
	assert.Greater(t, len(seen), 2, "the tears varied")
}

func TestCorruptRecordInTheMiddle(t *testing.T) {
	m := vfs.NewMem()
	opts := testOptions()
	opts.SegmentBytes = 1 << 20
	u := openUnit(t, m, dir, opts)
	for a := range storage.Address(10) {
		require.NoError(t, u.Write(ctx, 0, a, []byte("0123456789")))
	}
	require.NoError(t, u.Close())
	// Record 4's payload: segment header, four records, its header.
	corruptFile(t, m, dir+"/0000000000000001.seg", 32+4*(recHeader+10)+recHeader+3)

	r := openUnit(t, m, dir, opts)
	for a := range storage.Address(10) {
		got, err := r.Read(ctx, 0, a)
		if a == 4 {
			require.ErrorIs(t, err, storage.ErrCorrupt)
			require.Nil(t, got)
			assert.ErrorIs(t, r.Write(ctx, 0, a, []byte("x")), storage.ErrWritten, "a corrupt address stays taken")
			assert.ErrorIs(t, r.Fill(ctx, 0, a), storage.ErrWritten)
			continue
		}
		require.NoError(t, err, "addr %d: nothing after the bad record is lost", a)
		assert.Equal(t, "0123456789", string(got))
	}
	assert.Equal(t, storage.Address(10), r.Tail())
	require.NoError(t, r.Trim(ctx, 0, 4), "a corrupt address can be trimmed")
	_, err := r.Read(ctx, 0, 4)
	assert.ErrorIs(t, err, storage.ErrTrimmed)
}

func TestDamagedHeaderInTheMiddleRefuses(t *testing.T) {
	m := vfs.NewMem()
	opts := testOptions()
	opts.SegmentBytes = 1 << 20
	u := openUnit(t, m, dir, opts)
	for a := range storage.Address(10) {
		require.NoError(t, u.Write(ctx, 0, a, []byte("0123456789")))
	}
	require.NoError(t, u.Close())
	corruptFile(t, m, dir+"/0000000000000001.seg", 32+4*(recHeader+10)+24) // record 4's address
	_, err := disk.Open(m, dir, opts)
	require.ErrorIs(t, err, disk.ErrDamaged)
	assert.ErrorIs(t, err, storage.ErrCorrupt)
}

func TestPrefixTrimFreesSpace(t *testing.T) {
	m := vfs.NewMem()
	opts := testOptions()
	opts.SegmentBytes = 2 << 10
	u := openUnit(t, m, dir, opts)
	payload := make([]byte, 200)
	for a := range storage.Address(100) {
		require.NoError(t, u.Write(ctx, 0, a, payload))
	}
	before, err := vfs.Usage(m, dir)
	require.NoError(t, err)
	require.NoError(t, u.PrefixTrim(ctx, 0, 90))
	after, err := vfs.Usage(m, dir)
	require.NoError(t, err)
	t.Logf("disk usage %d bytes before the prefix trim, %d after", before, after)
	assert.Less(t, after, before/4, "the segments below the mark are gone")
	assert.Equal(t, 10*200, u.StoredBytes())

	_, r := crash(t, m, opts)
	for a := range storage.Address(100) {
		_, err := r.Read(ctx, 0, a)
		if a < 90 {
			assert.ErrorIs(t, err, storage.ErrTrimmed, "addr %d", a)
		} else {
			assert.NoError(t, err, "addr %d", a)
		}
	}
}

func TestSealWaitsForQueuedWrites(t *testing.T) {
	// A write queued behind a slow sync is durable before a seal that
	// starts after it replies, and the seal's tail counts it.
	release := make(chan struct{})
	var once sync.Once
	started := make(chan struct{})
	inj := errorfs.InjectorFunc(func(op errorfs.Op) errorfs.Fault {
		if op.Kind == errorfs.OpSync {
			return errorfs.Fault{Kind: errorfs.Delay}
		}
		return errorfs.Fault{}
	})
	delay := func(op errorfs.Op) {
		if len(op.Path) > 4 && op.Path[len(op.Path)-4:] == ".seg" {
			once.Do(func() { close(started); <-release })
		}
	}
	fsys := errorfs.Wrap(vfs.NewMem(), inj, errorfs.Options{Delay: delay})
	u := openUnit(t, fsys, dir, testOptions())
	done := make(chan error)
	go func() { done <- u.Write(ctx, 0, 7, []byte("x")) }()
	<-started
	sealed := make(chan storage.Address)
	go func() {
		tail, err := u.Seal(ctx, 1)
		assert.NoError(t, err)
		sealed <- tail
	}()
	select {
	case <-sealed:
		t.Fatal("the seal replied before the queued write was durable")
	case err := <-done:
		t.Fatalf("the write returned before its sync: %v", err)
	default:
	}
	close(release)
	require.NoError(t, <-done)
	assert.Equal(t, storage.Address(8), <-sealed)
	assert.True(t, errors.Is(u.Write(ctx, 0, 8, []byte("y")), storage.ErrSealed))
}

func TestHoleInTheUnsyncedTailIsTorn(t *testing.T) {
	// Records 5-9 were never synced (SyncNone). A hole at record 6 (a power
	// loss that kept later sectors but not that one) is a torn tail: no
	// later record says it was durable, so the unit drops 6-9. The same
	// damage to record 2, which records 5-9 show was durable, is refused.
	build := func(t *testing.T) *vfs.MemFS {
		m := vfs.NewMem()
		opts := testOptions()
		opts.SegmentBytes = 1 << 20
		u := openUnit(t, m, dir, opts)
		for a := range storage.Address(5) {
			require.NoError(t, u.Write(ctx, 0, a, []byte("0123456789")))
		}
		require.NoError(t, u.Close())
		opts.Sync = disk.SyncNone
		u = openUnit(t, m, dir, opts)
		for a := storage.Address(5); a < 10; a++ {
			require.NoError(t, u.Write(ctx, 0, a, []byte("0123456789")))
		}
		require.NoError(t, u.Close())
		return m
	}
	recordAt := func(i int) int64 { return int64(32 + i*(recHeader+10)) }
	opts := testOptions()
	opts.SegmentBytes = 1 << 20

	m := build(t)
	corruptFile(t, m, dir+"/0000000000000001.seg", recordAt(6)+24)
	u := openUnit(t, m, dir, opts)
	for a := range storage.Address(10) {
		_, err := u.Read(ctx, 0, a)
		if a < 6 {
			assert.NoError(t, err, "addr %d", a)
		} else {
			assert.ErrorIs(t, err, storage.ErrUnwritten, "addr %d", a)
		}
	}
	assert.Equal(t, storage.Address(6), u.Tail())

	m = build(t)
	corruptFile(t, m, dir+"/0000000000000001.seg", recordAt(2)+24)
	_, err := disk.Open(m, dir, opts)
	assert.ErrorIs(t, err, disk.ErrDamaged)
}

// TestRecoveryReadsThroughDamagedReads: a read that the disk damages on its
// way (the bytes on the disk are intact) must not make recovery take sound
// records for damage: drop a synced record as a torn tail, mark one
// corrupt, refuse the segment, or delete it as one that holds nothing. A
// read that shows damage is read again, up to three times: the first sound
// read wins, two that agree are the disk's bytes, and three that all differ
// give their bytewise majority. Damage that is on the disk stays damage.
func TestRecoveryReadsThroughDamagedReads(t *testing.T) {
	rec := func(i int) int { return 32 + i*(recHeader+10) }
	payload4, header4, header9 := (rec(4)+recHeader+3)*8, (rec(4)+24)*8, (rec(9)+24)*8
	const clean = -1
	for _, tc := range []struct {
		name    string
		records int   // written before the restart; 10 if zero
		bits    []int // the bit each read of a segment flips, read after read (clean: none)
		onDisk  bool  // record 4's payload is damaged on the disk too
	}{
		// NB: recovery reads the last segment twice: to see whether it
		// holds a record at all, then to load it.
		{name: "a payload", bits: []int{clean, payload4}},
		{name: "a record header", bits: []int{clean, header4}},
		{name: "the last record's header", bits: []int{clean, header9}},
		{name: "the segment header", bits: []int{clean, 3 * 8}},
		{name: "the only record's header", records: 1, bits: []int{(rec(0) + 24) * 8}},
		{name: "twice, in two places", bits: []int{clean, header4, header9}},
		{name: "three reads in a row, in three places", bits: []int{clean, payload4, header4, header9}},
		{name: "on the disk, and once in a read", bits: []int{clean, header9}, onDisk: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := cmp.Or(tc.records, 10)
			m := vfs.NewMem()
			opts := testOptions()
			opts.SegmentBytes = 1 << 20
			u := openUnit(t, m, dir, opts)
			for a := range storage.Address(n) {
				require.NoError(t, u.Write(ctx, 0, a, []byte("0123456789")))
			}
			require.NoError(t, u.Close())
			if tc.onDisk {
				corruptFile(t, m, dir+"/0000000000000001.seg", int64(payload4/8))
			}
			reads := 0
			match := errorfs.PathContains(".seg", errorfs.OpRead)
			fsys := errorfs.Wrap(m, errorfs.InjectorFunc(func(op errorfs.Op) errorfs.Fault {
				if !match(op) {
					return errorfs.Fault{}
				}
				reads++
				if reads > len(tc.bits) || tc.bits[reads-1] == clean {
					return errorfs.Fault{}
				}
				return errorfs.Fault{Kind: errorfs.Corrupt, Bit: tc.bits[reads-1]}
			}), errorfs.Options{})

			r := openUnit(t, fsys, dir, opts)
			fsys.SetInjector(nil)
			require.GreaterOrEqual(t, reads, len(tc.bits), "every damaged read was read again")
			assert.Equal(t, storage.Address(n), r.Tail(), "no record was dropped")
			for a := range storage.Address(n) {
				got, err := r.Read(ctx, 0, a)
				if a == 4 && tc.onDisk {
					require.ErrorIs(t, err, storage.ErrCorrupt, "damage on the disk is damage")
					continue
				}
				require.NoError(t, err, "addr %d", a)
				assert.Equal(t, "0123456789", string(got))
			}
		})
	}
}
