package persist

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// Version is the format version of the files this package writes. It
// reads every version from MinVersion up to Version.
const Version = 2

// MinVersion is the oldest format version this package reads. Version 1
// sequencer files hold no epoch of the sequencer's last bootstrap; one read
// from such a file is zero (see sequencer.Config.Booted).
const MinVersion = 1

// MaxFileBytes bounds one state file: a layout file holds two projections of
// at most projection.MaxJSONBytes each. Larger files are refused before they
// are read whole.
const MaxFileBytes = 2*projection.MaxJSONBytes + 64

// MaxNodeBytes bounds the node identity an identity file holds.
const MaxNodeBytes = 1024

// magic opens every file of a persist directory.
var magic = [6]byte{'c', 'o', 'r', 'f', 'u', 'p'}

// The kinds of file, the byte after the version.
const (
	kindIdentity  = 'I'
	kindSequencer = 'S'
	kindLayout    = 'L'
)

// headerBytes is the size of the fixed header: magic, version, kind and the
// body's length; trailerBytes the CRC32C after the body.
const (
	headerBytes  = len(magic) + 1 + 1 + 4
	trailerBytes = 4
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// encodeFile frames body as a file of the given kind: the header, the body
// and a CRC32C over both.
func encodeFile(kind byte, body []byte) []byte {
	b := make([]byte, 0, headerBytes+len(body)+trailerBytes)
	b = append(b, magic[:]...)
	b = append(b, Version, kind)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(body)))
	b = append(b, body...)
	return binary.LittleEndian.AppendUint32(b, crc32.Checksum(b, castagnoli))
}

// decodeFile checks the framing of a file of the given kind and returns its
// body (a sub-slice of b) and its format version. A file that is not a
// persist file at all gets ErrForeign; one of a version outside
// [MinVersion, Version] ErrVersion; a short, long or damaged one
// ErrCorrupt.
func decodeFile(b []byte, kind byte) ([]byte, byte, error) {
	if len(b) < len(magic) {
		if bytes.HasPrefix(magic[:], b) {
			return nil, 0, fmt.Errorf("%w: %d bytes, torn in the header", ErrCorrupt, len(b))
		}
		return nil, 0, fmt.Errorf("%w: no persist header", ErrForeign)
	}
	if [6]byte(b[:len(magic)]) != magic {
		return nil, 0, fmt.Errorf("%w: no persist header", ErrForeign)
	}
	if len(b) < headerBytes+trailerBytes {
		return nil, 0, fmt.Errorf("%w: %d bytes, shorter than a header", ErrCorrupt, len(b))
	}
	if len(b) > MaxFileBytes {
		return nil, 0, fmt.Errorf("%w: %d bytes, limit %d", ErrCorrupt, len(b), MaxFileBytes)
	}
	end := len(b) - trailerBytes
	if got, want := crc32.Checksum(b[:end], castagnoli), binary.LittleEndian.Uint32(b[end:]); got != want {
		return nil, 0, fmt.Errorf("%w: checksum %08x, stored %08x", ErrCorrupt, got, want)
	}
	v := b[len(magic)]
	if v < MinVersion || v > Version {
		return nil, 0, fmt.Errorf("%w: version %d, this build reads %d to %d", ErrVersion, v, MinVersion, Version)
	}
	if k := b[len(magic)+1]; k != kind {
		return nil, 0, fmt.Errorf("%w: a file of kind %q where %q belongs", ErrForeign, k, kind)
	}
	if n := binary.LittleEndian.Uint32(b[len(magic)+2:]); int64(n) != int64(end-headerBytes) {
		return nil, 0, fmt.Errorf("%w: body of %d bytes, header says %d", ErrCorrupt, end-headerBytes, n)
	}
	return b[headerBytes:end], v, nil
}

// identity is what the identity file holds: the node the directory belongs
// to.
type identity struct {
	node string
}

func (id identity) encode() []byte {
	body := binary.AppendUvarint(nil, uint64(len(id.node)))
	return encodeFile(kindIdentity, append(body, id.node...))
}

func decodeIdentity(b []byte) (identity, error) {
	body, _, err := decodeFile(b, kindIdentity)
	if err != nil {
		return identity{}, err
	}
	d := reader{b: body}
	n := d.uvarint("node length")
	if d.err == nil && n > MaxNodeBytes {
		d.fail("node of %d bytes, limit %d", n, MaxNodeBytes)
	}
	node := string(d.bytes("node", int(n)))
	if d.err == nil && node == "" {
		d.fail("empty node")
	}
	if err := d.finish(); err != nil {
		return identity{}, err
	}
	return identity{node: node}, nil
}

// seqState is what the sequencer file holds: the incarnation of the
// latest start, and the sequencer's state (its reservation mark and the
// epoch of its last bootstrap) if one was saved.
type seqState struct {
	incarnation uint64
	hasMark     bool
	st          sequencer.State
}

// MaxIncarnation bounds the incarnations a directory hands out, as
// sequencer.Config.Incarnation does.
const MaxIncarnation = 1<<62 - 1

func (s seqState) encode() []byte {
	body := binary.AppendUvarint(nil, s.incarnation)
	if s.hasMark {
		body = append(body, 1)
		body = binary.AppendUvarint(body, uint64(s.st.Mark))
		body = binary.AppendUvarint(body, uint64(s.st.Booted))
	} else {
		body = append(body, 0)
	}
	return encodeFile(kindSequencer, body)
}

func decodeSeqState(b []byte) (seqState, error) {
	body, version, err := decodeFile(b, kindSequencer)
	if err != nil {
		return seqState{}, err
	}
	d := reader{b: body}
	var s seqState
	s.incarnation = d.uvarint("incarnation")
	if d.err == nil && s.incarnation > MaxIncarnation {
		d.fail("incarnation %d above %d", s.incarnation, uint64(MaxIncarnation))
	}
	s.hasMark = d.flag("mark flag")
	if s.hasMark {
		s.st.Mark = storage.Address(d.uvarint("mark"))
		if d.err == nil && s.st.Mark >= storage.MaxAddress {
			d.fail("mark %d at or above storage.MaxAddress", s.st.Mark)
		}
		if version >= 2 {
			s.st.Booted = storage.Epoch(d.uvarint("booted epoch"))
		}
	}
	if err := d.finish(); err != nil {
		return seqState{}, err
	}
	return s, nil
}

// layoutState is what the layout file holds: the acceptor's state if one
// was saved.
type layoutState struct {
	has bool
	st  projection.AcceptorState
}

func (l layoutState) encode() ([]byte, error) {
	if !l.has {
		return encodeFile(kindLayout, []byte{0}), nil
	}
	if l.st.Latest == nil {
		return nil, fmt.Errorf("%w: acceptor state without a committed projection", projection.ErrInvalid)
	}
	body := []byte{1}
	body = binary.AppendUvarint(body, l.st.Promised)
	body = binary.AppendUvarint(body, l.st.AcceptedRank)
	for _, p := range []*projection.Projection{l.st.Latest, l.st.Accepted} {
		if p == nil {
			body = binary.AppendUvarint(body, 0)
			continue
		}
		j, err := json.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("persist: encode a projection: %w", err)
		}
		body = binary.AppendUvarint(body, uint64(len(j)))
		body = append(body, j...)
	}
	return encodeFile(kindLayout, body), nil
}

func decodeLayoutState(b []byte) (layoutState, error) {
	body, _, err := decodeFile(b, kindLayout)
	if err != nil {
		return layoutState{}, err
	}
	d := reader{b: body}
	var l layoutState
	l.has = d.flag("state flag")
	if l.has {
		l.st.Promised = d.uvarint("promised rank")
		l.st.AcceptedRank = d.uvarint("accepted rank")
		l.st.Latest = d.projection("latest projection")
		if d.err == nil && l.st.Latest == nil {
			d.fail("no latest projection")
		}
		l.st.Accepted = d.projection("accepted projection")
	}
	if err := d.finish(); err != nil {
		return layoutState{}, err
	}
	if l.has {
		// NB: the state must be one an acceptor can restart from; a state
		// that parses but breaks the acceptor's rules is corrupt too.
		if _, err := projection.RestoreAcceptor(l.st); err != nil {
			return layoutState{}, fmt.Errorf("%w: %w", ErrCorrupt, err)
		}
	}
	return l, nil
}

// reader decodes a body. After the first error every read returns a zero
// value and the error sticks, so decoding code reads straight through and
// checks once at the end.
type reader struct {
	b   []byte
	err error
}

func (d *reader) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
	}
}

func (d *reader) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d bytes after the body", len(d.b))
	}
	return d.err
}

func (d *reader) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail("bad %s", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *reader) flag(what string) bool {
	if d.err != nil {
		return false
	}
	if len(d.b) == 0 {
		d.fail("no %s", what)
		return false
	}
	v := d.b[0]
	d.b = d.b[1:]
	if v > 1 {
		d.fail("%s %d", what, v)
	}
	return v == 1
}

func (d *reader) bytes(what string, n int) []byte {
	if d.err != nil {
		return nil
	}
	if n < 0 || n > len(d.b) {
		d.fail("%s of %d bytes, %d left", what, n, len(d.b))
		return nil
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out
}

// projection reads a length-prefixed projection in its JSON form; a zero
// length is none.
func (d *reader) projection(what string) *projection.Projection {
	n := d.uvarint(what + " length")
	if d.err != nil || n == 0 {
		return nil
	}
	if n > projection.MaxJSONBytes {
		d.fail("%s of %d bytes, limit %d", what, n, projection.MaxJSONBytes)
		return nil
	}
	j := d.bytes(what, int(n))
	if d.err != nil {
		return nil
	}
	p, err := projection.Parse(j)
	if err != nil {
		d.fail("%s: %v", what, err)
		return nil
	}
	return p
}
