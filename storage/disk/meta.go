package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"io/fs"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// File names in a data directory (docs/formats.md).
const (
	metaName    = "META"
	metaTmpName = "META.tmp"
	lockName    = "LOCK"
	segSuffix   = ".seg"
)

// meta is the unit's metadata, rewritten whole (temp file, fsync, rename,
// directory fsync) before any reply that depends on it.
type meta struct {
	node     string
	id       ID
	blank    bool // lost its data and has not joined since
	epoch    storage.Epoch
	trimMark storage.Address
}

// Metadata file layout (docs/formats.md): little-endian.
//
//	 0  8  magic "CORFUMET"
//	 8  4  format version
//	12  4  flags: bit 0 set for a blank unit; the other bits zero
//	16 16  identity
//	32  8  sealed epoch
//	40  8  prefix trim mark
//	48  2  length n of the node name
//	50  n  node name
//	50+n 4 CRC32C over bytes [0, 50+n)
const (
	metaMagic     = "CORFUMET"
	metaFixedSize = 50
	maxNodeName   = 1024
	flagBlank     = 1
)

func (m meta) encode() []byte {
	b := make([]byte, metaFixedSize, metaFixedSize+len(m.node)+4)
	copy(b, metaMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], formatVersion)
	if m.blank {
		le.PutUint32(b[12:], flagBlank)
	}
	copy(b[16:32], m.id[:])
	le.PutUint64(b[32:], uint64(m.epoch))
	le.PutUint64(b[40:], uint64(m.trimMark))
	le.PutUint16(b[48:], uint16(len(m.node)))
	b = append(b, m.node...)
	return le.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeMeta decodes a metadata file. Every error wraps ErrBadMeta.
func decodeMeta(b []byte) (meta, error) {
	le := binary.LittleEndian
	bad := func(why string, args ...any) (meta, error) {
		return meta{}, fmt.Errorf("%w: %s", ErrBadMeta, fmt.Sprintf(why, args...))
	}
	if len(b) < metaFixedSize+4 {
		return bad("%d bytes", len(b))
	}
	n := int(le.Uint16(b[48:]))
	switch {
	case len(b) != metaFixedSize+n+4:
		return bad("%d bytes for a node name of %d", len(b), n)
	case crc32.Checksum(b[:len(b)-4], castagnoli) != le.Uint32(b[len(b)-4:]):
		return bad("checksum mismatch")
	case string(b[:8]) != metaMagic:
		return bad("bad magic")
	case le.Uint32(b[8:]) != formatVersion:
		return bad("format version %d, want %d", le.Uint32(b[8:]), formatVersion)
	case le.Uint32(b[12:])&^flagBlank != 0:
		return bad("unknown flags %#x", le.Uint32(b[12:]))
	}
	m := meta{
		blank:    le.Uint32(b[12:])&flagBlank != 0,
		epoch:    storage.Epoch(le.Uint64(b[32:])),
		trimMark: storage.Address(le.Uint64(b[40:])),
		node:     string(b[metaFixedSize : metaFixedSize+n]),
	}
	copy(m.id[:], b[16:32])
	if m.id.IsZero() {
		return bad("zero identity")
	}
	if m.trimMark > storage.MaxAddress {
		return bad("trim mark %d beyond the address space", m.trimMark)
	}
	return m, nil
}

// readMeta reads dir's metadata. ok is false if there is none.
//
// NB: a read that fails its checksum is read again (up to maxRereads
// times, see stableRead): a bit flipped on its way from the disk must not
// make the unit refuse its directory.
func readMeta(fsys vfs.FS, dir string) (m meta, ok bool, err error) {
	for range maxRereads + 1 {
		var b []byte
		b, ok, err = readMetaOnce(fsys, dir)
		if err != nil || !ok {
			return meta{}, ok, err
		}
		if m, err = decodeMeta(b); err == nil {
			return m, true, nil
		}
	}
	return meta{}, true, err
}

// readMetaOnce reads dir's metadata file, and false if there is none.
func readMetaOnce(fsys vfs.FS, dir string) ([]byte, bool, error) {
	f, err := fsys.Open(fsys.PathJoin(dir, metaName))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, metaFixedSize+maxNodeName+4+1))
	if err != nil {
		return nil, false, fmt.Errorf("disk: reading metadata: %w", err)
	}
	return b, true, nil
}

// writeMeta replaces dir's metadata durably: it writes a temporary file,
// syncs it, renames it over the old one and syncs the directory.
func writeMeta(fsys vfs.FS, dir string, m meta) error {
	if err := vfs.ReplaceFile(fsys, dir, metaName, metaTmpName, m.encode()); err != nil {
		return fmt.Errorf("disk: metadata: %w", err)
	}
	return nil
}
