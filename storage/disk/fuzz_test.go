package disk

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"testing"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// FuzzDecodeRecord feeds arbitrary bytes to the record decoder: it must not
// panic, and whatever it accepts must be exactly what the encoder makes of
// the decoded header and payload (so no accepted record carries bytes its
// checksums do not cover).
func FuzzDecodeRecord(f *testing.F) {
	for _, p := range [][]byte{nil, {}, []byte("payload"), bytes.Repeat([]byte{0xa5}, 300)} {
		f.Add(appendRecord(nil, 1, 32, header{kind: kindData, addr: 7, epoch: 3, synced: 32}, p), uint64(1), int64(32))
	}
	f.Add(appendRecord(nil, 9, 4096, header{kind: kindJunk, addr: 1 << 40, synced: 100}, nil), uint64(9), int64(4096))
	f.Add(appendRecord(nil, 2, 64, header{kind: kindTrim, addr: 5, synced: 64}, nil), uint64(2), int64(64))
	f.Add(make([]byte, headerSize), uint64(1), int64(0))
	f.Fuzz(func(t *testing.T, b []byte, seg uint64, off int64) {
		h, payload, err := decodeRecord(seg, off, b)
		if err != nil {
			if payload != nil {
				t.Fatalf("a rejected record returned %d payload bytes", len(payload))
			}
			return
		}
		again := appendRecord(nil, seg, off, h, payload)
		if !bytes.Equal(again, b[:h.size()]) {
			t.Fatalf("accepted record does not re-encode to itself:\n got %x\nwant %x", again, b[:h.size()])
		}
		if h.offset != off || h.length != len(payload) || !h.kind.valid() {
			t.Fatalf("accepted a header inconsistent with its record: %+v", h)
		}
	})
}

// fuzzBase is the directory FuzzRecovery damages: what each address holds.
type fuzzBase struct {
	fs     *vfs.MemFS
	data   map[storage.Address][]byte // written entries
	other  map[storage.Address]bool   // filled or trimmed
	epoch  storage.Epoch
	extent storage.Address // every address used is below it
}

// buildFuzzBase writes a small unit over several segments: entries, junk,
// trims, a seal and a prefix trim.
func buildFuzzBase(tb testing.TB) fuzzBase {
	ctx := context.Background()
	b := fuzzBase{fs: vfs.NewMem(), data: map[storage.Address][]byte{}, other: map[storage.Address]bool{}, extent: 64}
	opts := Options{Node: "fuzz", ID: ID{1}, SegmentBytes: 1 << 10}
	u, err := Open(b.fs, "/d", opts)
	if err != nil {
		tb.Fatal(err)
	}
	must := func(err error) {
		if err != nil {
			tb.Fatal(err)
		}
	}
	for a := range storage.Address(40) {
		switch a % 9 {
		case 4:
			must(u.Fill(ctx, 0, a))
			b.other[a] = true
		case 7:
			must(u.Trim(ctx, 0, a))
			b.other[a] = true
		default:
			p := fmt.Appendf(nil, "entry-%d-%s", a, bytes.Repeat([]byte{byte(a)}, int(a%5)*11))
			must(u.Write(ctx, 0, a, p))
			b.data[a] = p
		}
	}
	_, err = u.Seal(ctx, 2)
	must(err)
	b.epoch = 2
	must(u.PrefixTrim(ctx, 2, 3))
	for a := range storage.Address(3) {
		delete(b.data, a)
		b.other[a] = true
	}
	must(u.Close())
	return b
}

// FuzzRecovery damages the files of a unit's directory (overwriting bytes
// of one file at one place, then cutting it short) and opens it: Open must
// refuse with an error or serve a unit that never returns a byte that was
// not written at the address read, and never panics.
func FuzzRecovery(f *testing.F) {
	base := buildFuzzBase(f)
	f.Add(uint8(0), uint32(0), []byte{}, uint32(0))
	f.Add(uint8(1), uint32(100), []byte{0xff}, uint32(0))
	f.Add(uint8(1), uint32(40), []byte("xxxx"), uint32(0))
	f.Add(uint8(2), uint32(500), []byte{1, 2, 3, 4, 5, 6, 7, 8}, uint32(30))
	f.Add(uint8(3), uint32(33), []byte{0}, uint32(0))
	f.Add(uint8(0), uint32(0), []byte{}, uint32(200))
	f.Fuzz(func(t *testing.T, which uint8, pos uint32, patch []byte, cut uint32) {
		fsys := base.fs.CrashClone(vfs.CrashOptions{})
		damage(t, fsys, "/d", which, pos, patch, cut)
		u, err := Open(fsys, "/d", Options{Node: "fuzz", ID: ID{1}, SegmentBytes: 1 << 10})
		if err != nil {
			return // refusing is allowed
		}
		defer u.Close()
		checkServesOnlyWritten(t, u, base)
	})
}

// damage overwrites patch at pos (modulo the size) of the which-th file of
// dir (modulo their number, LOCK excluded) and cuts cut bytes off its end.
func damage(t *testing.T, fsys *vfs.MemFS, dir string, which uint8, pos uint32, patch []byte, cut uint32) {
	names, err := fsys.List(dir)
	if err != nil {
		t.Fatal(err)
	}
	var files []string
	for _, n := range names {
		if n != lockName {
			files = append(files, n)
		}
	}
	name := fsys.PathJoin(dir, files[int(which)%len(files)])
	f, err := fsys.OpenReadWrite(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	size := fi.Size()
	if size > 0 && len(patch) > 0 {
		if _, err := f.WriteAt(patch, int64(pos)%size); err != nil {
			t.Fatal(err)
		}
	}
	if fi, err = f.Stat(); err == nil && cut > 0 {
		if err := f.Truncate(max(0, fi.Size()-int64(cut))); err != nil {
			t.Fatal(err)
		}
	}
}

// checkServesOnlyWritten reads every address the base used, and some past
// them, at the unit's epoch.
func checkServesOnlyWritten(t *testing.T, u *Unit, base fuzzBase) {
	ctx := context.Background()
	epoch := u.Epoch()
	for a := range base.extent {
		got, err := u.Read(ctx, epoch, a)
		if err != nil {
			if got != nil {
				t.Fatalf("addr %d: %d bytes returned with %v", a, len(got), err)
			}
			continue
		}
		want, ok := base.data[a]
		if !ok {
			t.Fatalf("addr %d: served %q where nothing was written", a, got)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("addr %d: served %q, written %q", a, got, want)
		}
		if _, data := u.Inspect(a); !bytes.Equal(data, want) {
			t.Fatalf("addr %d: Inspect gave %q, written %q", a, data, want)
		}
	}
	u.Ascend(func(a storage.Address, s storage.State, data []byte) bool {
		if data != nil && !bytes.Equal(data, base.data[a]) {
			t.Fatalf("addr %d: Ascend gave %q, written %q", a, data, base.data[a])
		}
		return true
	})
	// The unit still works on what is left, or refuses cleanly.
	err := u.Write(ctx, epoch, base.extent, []byte("new"))
	if err != nil && !errors.Is(err, ErrFailed) && !errors.Is(err, storage.ErrWritten) && !errors.Is(err, storage.ErrTrimmed) {
		t.Fatalf("write after recovery: %v", err)
	}
}

// FuzzDecodeMeta feeds arbitrary bytes to the metadata decoder: it must not
// panic, must reject with ErrBadMeta, and whatever it accepts must be what
// the encoder makes of the result.
func FuzzDecodeMeta(f *testing.F) {
	f.Add(meta{node: "n1", id: ID{1, 2, 3}, epoch: 7, trimMark: 100}.encode())
	f.Add(meta{id: ID{9}, blank: true}.encode())
	f.Add([]byte("CORFUMET"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			if !errors.Is(err, ErrBadMeta) {
				t.Fatalf("rejected without ErrBadMeta: %v", err)
			}
			return
		}
		if again := m.encode(); !bytes.Equal(again, b) {
			t.Fatalf("accepted metadata does not re-encode to itself:\n got %x\nwant %x", again, b)
		}
	})
}

// TestSeedCRCIsCRC32C checks seedCRC, worked byte by byte, against
// crc32.Update over the segment number's little-endian bytes: the seed of
// every record on disk, which recovery recomputes.
func TestSeedCRCIsCRC32C(t *testing.T) {
	for _, seg := range []uint64{0, 1, 2, 255, 256, 1<<32 - 1, 1 << 32, 0x0123456789abcdef, 1<<64 - 1} {
		var b [8]byte
		binary.LittleEndian.PutUint64(b[:], seg)
		if got, want := seedCRC(seg), crc32.Update(0, castagnoli, b[:]); got != want {
			t.Errorf("seedCRC(%#x) = %#x, crc32 says %#x", seg, got, want)
		}
	}
	if n := testing.AllocsPerRun(100, func() { _ = seedCRC(7) }); n != 0 {
		t.Errorf("seedCRC allocates %v times", n)
	}
}
