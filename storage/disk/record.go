package disk

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"

	"github.com/corfulog/corfu/storage"
)

// castagnoli is the CRC32C table every checksum of the format uses.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// kind is what a record says about its address.
type kind uint8

const (
	kindData kind = 1 // an entry written by Write
	kindJunk kind = 2 // a hole filled by Fill
	kindTrim kind = 3 // a single-address Trim
	// kindRepairData and kindRepairJunk replace what a corrupt record
	// held (Unit.Repair) with an entry or with junk.
	kindRepairData kind = 4
	kindRepairJunk kind = 5
)

func (k kind) valid() bool { return k >= kindData && k <= kindRepairJunk }

// hasPayload reports whether a record of kind k carries an entry.
func (k kind) hasPayload() bool { return k == kindData || k == kindRepairData }

// repair reports whether a record of kind k is a repair.
func (k kind) repair() bool { return k == kindRepairData || k == kindRepairJunk }

func (k kind) String() string {
	switch k {
	case kindData:
		return "data"
	case kindJunk:
		return "junk"
	case kindTrim:
		return "trim"
	case kindRepairData:
		return "repair-data"
	case kindRepairJunk:
		return "repair-junk"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Record layout (docs/formats.md): all integers little-endian.
//
//	 0  4  record CRC32C over bytes [4, headerSize+length), seeded with the segment number
//	 4  4  header CRC32C over bytes [8, headerSize), seeded with the segment number
//	 8  4  payload length
//	12  1  kind
//	13  3  reserved, zero
//	16  8  offset of the record in its segment file
//	24  8  local address
//	32  8  global address (0: unknown)
//	40  8  epoch of the request
//	48  8  writer (0: unknown)
//	56  8  synced: every byte of the segment below this offset was durable
//	       when the record was queued (a lower bound; at most offset)
//	64     payload
const (
	headerSize = 64

	offRecordCRC = 0
	offHeaderCRC = 4
	offLength    = 8
	offKind      = 12
	offOffset    = 16
	offAddr      = 24
	offGlobal    = 32
	offEpoch     = 40
	offWriter    = 48
	offSynced    = 56
)

// header is a record's decoded header.
type header struct {
	length int
	kind   kind
	offset int64
	addr   storage.Address
	global storage.Address
	epoch  storage.Epoch
	writer uint64
	synced int64
}

// size returns the record's length on disk.
func (h header) size() int { return headerSize + h.length }

// Errors of the record decoder. They never leave the package unwrapped:
// recovery and reads turn them into storage.ErrCorrupt or a torn tail.
var (
	errShort     = errors.New("record: truncated")
	errHeaderCRC = errors.New("record: header checksum mismatch")
	errRecordCRC = errors.New("record: checksum mismatch")
	errMisplaced = errors.New("record: stored at another offset than it was written for")
	errMalformed = errors.New("record: malformed header")
)

// seedCRC returns the CRC32C of the segment number, the seed of both of a
// record's checksums: a record copied into another segment fails them.
// It is crc32.Update(0, castagnoli, seg's 8 little-endian bytes), worked
// byte by byte from the table: handing crc32.Update a slice of a local
// array moves the array to the heap, one allocation per record.
func seedCRC(seg uint64) uint32 {
	crc := ^uint32(0)
	for range 8 {
		crc = castagnoli[byte(crc)^byte(seg)] ^ crc>>8
		seg >>= 8
	}
	return ^crc
}

// appendRecord appends the encoding of a record for segment seg at offset
// off to dst.
func appendRecord(dst []byte, seg uint64, off int64, h header, payload []byte) []byte {
	start := len(dst)
	dst = append(dst, make([]byte, headerSize)...)
	b := dst[start:]
	le := binary.LittleEndian
	le.PutUint32(b[offLength:], uint32(len(payload)))
	b[offKind] = byte(h.kind)
	le.PutUint64(b[offOffset:], uint64(off))
	le.PutUint64(b[offAddr:], uint64(h.addr))
	le.PutUint64(b[offGlobal:], uint64(h.global))
	le.PutUint64(b[offEpoch:], uint64(h.epoch))
	le.PutUint64(b[offWriter:], h.writer)
	le.PutUint64(b[offSynced:], uint64(h.synced))
	seed := seedCRC(seg)
	le.PutUint32(b[offHeaderCRC:], crc32.Update(seed, castagnoli, b[offLength:headerSize]))
	dst = append(dst, payload...)
	b = dst[start:]
	le.PutUint32(b[offRecordCRC:], crc32.Update(seed, castagnoli, b[offHeaderCRC:]))
	return dst
}

// decodeHeader decodes and checks the header at the start of b, which is
// expected at offset off of segment seg. A nil error means the header's own
// checksum holds and its fields are well formed: its address and length can
// be trusted, though the payload may not be complete or intact.
func decodeHeader(seg uint64, off int64, b []byte) (header, error) {
	if len(b) < headerSize {
		return header{}, errShort
	}
	le := binary.LittleEndian
	if crc32.Update(seedCRC(seg), castagnoli, b[offLength:headerSize]) != le.Uint32(b[offHeaderCRC:]) {
		return header{}, errHeaderCRC
	}
	h := header{
		length: int(le.Uint32(b[offLength:])),
		kind:   kind(b[offKind]),
		offset: int64(le.Uint64(b[offOffset:])),
		addr:   storage.Address(le.Uint64(b[offAddr:])),
		global: storage.Address(le.Uint64(b[offGlobal:])),
		epoch:  storage.Epoch(le.Uint64(b[offEpoch:])),
		writer: le.Uint64(b[offWriter:]),
		synced: int64(le.Uint64(b[offSynced:])),
	}
	switch {
	case h.offset != off:
		return header{}, errMisplaced
	case !h.kind.valid(), b[13]|b[14]|b[15] != 0, h.addr >= storage.MaxAddress,
		h.synced < segHeaderSize, h.synced > h.offset,
		h.length > storage.MaxEntryBytes, !h.kind.hasPayload() && h.length != 0:
		return header{}, errMalformed
	}
	return h, nil
}

// decodeRecord decodes the record at the start of b, expected at offset off
// of segment seg, and checks both checksums. It returns the header and the
// payload (a sub-slice of b).
func decodeRecord(seg uint64, off int64, b []byte) (header, []byte, error) {
	h, err := decodeHeader(seg, off, b)
	if err != nil {
		return header{}, nil, err
	}
	if len(b) < h.size() {
		return h, nil, errShort
	}
	want := binary.LittleEndian.Uint32(b[offRecordCRC:])
	if crc32.Update(seedCRC(seg), castagnoli, b[offHeaderCRC:h.size()]) != want {
		return h, nil, errRecordCRC
	}
	return h, b[headerSize:h.size()], nil
}

// Segment file header (docs/formats.md):
//
//	 0  8  magic "CORFUSEG"
//	 8  4  format version
//	12  4  reserved, zero
//	16  8  segment number
//	24  4  reserved, zero
//	28  4  CRC32C over bytes [0, 28)
const (
	segHeaderSize = 32
	segMagic      = "CORFUSEG"
	formatVersion = 1
)

var errSegHeader = errors.New("segment: bad file header")

func encodeSegHeader(seg uint64) []byte {
	b := make([]byte, segHeaderSize)
	copy(b, segMagic)
	le := binary.LittleEndian
	le.PutUint32(b[8:], formatVersion)
	le.PutUint64(b[16:], seg)
	le.PutUint32(b[28:], crc32.Checksum(b[:28], castagnoli))
	return b
}

// checkSegHeader checks that b starts with the file header of segment seg.
func checkSegHeader(seg uint64, b []byte) error {
	le := binary.LittleEndian
	switch {
	case len(b) < segHeaderSize:
		return fmt.Errorf("%w: %d bytes", errSegHeader, len(b))
	case crc32.Checksum(b[:28], castagnoli) != le.Uint32(b[28:]):
		return fmt.Errorf("%w: checksum mismatch", errSegHeader)
	case string(b[:8]) != segMagic:
		return fmt.Errorf("%w: bad magic", errSegHeader)
	case le.Uint32(b[8:]) != formatVersion:
		return fmt.Errorf("%w: format version %d, want %d", errSegHeader, le.Uint32(b[8:]), formatVersion)
	case le.Uint64(b[16:]) != seg:
		return fmt.Errorf("%w: segment %d in the file of segment %d", errSegHeader, le.Uint64(b[16:]), seg)
	}
	return nil
}

func leUint64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
