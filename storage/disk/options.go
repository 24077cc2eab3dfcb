package disk

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
)

// SyncMode says when the unit makes a write durable.
type SyncMode uint8

const (
	// SyncBatch (the default) is group commit: concurrent writes share one
	// fsync, and each is acknowledged only once an fsync covering it has
	// returned. An acknowledged entry survives a power loss.
	SyncBatch SyncMode = iota
	// SyncEach gives every record its own write and fsync before it is
	// acknowledged. It is as durable as SyncBatch and slower.
	SyncEach
	// SyncNone never fsyncs records: a write is acknowledged once it is in
	// the operating system's cache. A process crash loses nothing, but a
	// power loss loses acknowledged writes (and may tear the last one). It
	// is for tests and benchmarks only. Metadata (the sealed epoch, the
	// trim mark, the identity) is synced in every mode.
	SyncNone
)

// String returns the lower-case name of m.
func (m SyncMode) String() string {
	switch m {
	case SyncBatch:
		return "batch"
	case SyncEach:
		return "each"
	case SyncNone:
		return "none"
	}
	return fmt.Sprintf("SyncMode(%d)", uint8(m))
}

// PrewriteMode says whether the active segment file is written ahead of
// its records.
type PrewriteMode uint8

const (
	// PrewriteAuto (the default) writes ahead when records are synced and
	// the FS prefers overwrites (vfs.PrefersOverwrite: the operating
	// system's file system).
	PrewriteAuto PrewriteMode = iota
	// PrewriteOn writes ahead whenever records are synced.
	PrewriteOn
	// PrewriteOff never writes ahead: records are appended.
	PrewriteOff
)

// String returns the lower-case name of m.
func (m PrewriteMode) String() string {
	switch m {
	case PrewriteAuto:
		return "auto"
	case PrewriteOn:
		return "on"
	case PrewriteOff:
		return "off"
	}
	return fmt.Sprintf("PrewriteMode(%d)", uint8(m))
}

// DefaultSegmentBytes is the size at which a segment file is closed and a
// new one started.
const DefaultSegmentBytes = 64 << 20

// maxSegmentBytes bounds Options.SegmentBytes so that every offset fits the
// index's 32 bits even after a maximal record goes past the limit.
const maxSegmentBytes = 1<<32 - 1 - headerSize - (1 << 20) - segHeaderSize

// Options configure Open.
type Options struct {
	// Node, if not empty, names the node the unit serves. A new directory
	// records it; a directory that records another name is refused with
	// ErrForeign (a disk moved from another node).
	Node string
	// ID, if not zero, is the identity the directory must carry: a new
	// directory is stamped with it, and one stamped otherwise is refused
	// with ErrForeign. If zero, a new directory is stamped with an ID read
	// from Rand, and an existing one is accepted with whatever ID it has.
	ID ID
	// Rand is read for a new directory's ID when ID is zero. The unit
	// draws no other randomness. If both are unset a new directory is
	// refused with ErrNoIdentity; the daemon passes crypto/rand.Reader (see
	// RandomID).
	Rand io.Reader
	// HeldData says the node served data from this directory before (its
	// configuration lists it as an existing member). A directory found
	// empty then means the disk was lost or reformatted: the unit comes
	// back blank (see storage.NewBlank), not as a fresh unit at epoch 0.
	HeldData bool
	// Sync says when writes become durable; the zero value is SyncBatch.
	Sync SyncMode
	// SegmentBytes is the size at which a segment file is closed and the
	// next one started (a record is never split, so a segment may exceed
	// it by one record). Zero means DefaultSegmentBytes.
	SegmentBytes int64
	// Prewrite says whether the active segment file is written with zeros,
	// and synced, a few MiB ahead of its records, so that the fsync of a
	// group commit flushes an overwrite (data only) rather than an append
	// (data, the file's size and its block allocation). It applies only
	// when records are synced (not under SyncNone). The zero value is
	// PrewriteAuto.
	Prewrite PrewriteMode
}

func (o Options) withDefaults() (Options, error) {
	if o.SegmentBytes == 0 {
		o.SegmentBytes = DefaultSegmentBytes
	}
	switch {
	case o.SegmentBytes < segHeaderSize+headerSize || o.SegmentBytes > maxSegmentBytes:
		return o, fmt.Errorf("disk: SegmentBytes %d out of range [%d, %d]",
			o.SegmentBytes, segHeaderSize+headerSize, maxSegmentBytes)
	case o.Sync > SyncNone:
		return o, fmt.Errorf("disk: unknown sync mode %v", o.Sync)
	case o.Prewrite > PrewriteOff:
		return o, fmt.Errorf("disk: unknown prewrite mode %v", o.Prewrite)
	case len(o.Node) > maxNodeName:
		return o, fmt.Errorf("disk: node name of %d bytes exceeds %d", len(o.Node), maxNodeName)
	}
	return o, nil
}

// ID is the random identity stamped into a data directory when it is first
// formatted; it tells one incarnation of a node's disk from another.
type ID [16]byte

// IsZero reports whether id is the zero ID, which no directory carries.
func (id ID) IsZero() bool { return id == ID{} }

// String returns id in hexadecimal.
func (id ID) String() string { return hex.EncodeToString(id[:]) }

// NewID reads a non-zero ID from r. It returns r's error, or an error if r
// yields sixteen zero bytes.
func NewID(r io.Reader) (ID, error) {
	var id ID
	if _, err := io.ReadFull(r, id[:]); err != nil {
		return ID{}, fmt.Errorf("disk: reading an identity: %w", err)
	}
	if id.IsZero() {
		return ID{}, errors.New("disk: the identity source gave the zero ID")
	}
	return id, nil
}

// RandomID returns an ID from crypto/rand, for the daemon's first format of
// a directory. The unit itself never calls it.
func RandomID() (ID, error) { return NewID(rand.Reader) }
