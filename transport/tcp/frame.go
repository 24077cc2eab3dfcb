package tcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/corfulog/corfu/transport"
)

// ProtocolVersion is the version of the connection protocol (framing and
// handshake) that this package speaks. The messages inside request and
// response frames carry their own version (transport.Version).
const ProtocolVersion = 1

// magic opens the body of every handshake frame, so that a peer that is not
// a corfu node is told apart from one that speaks another version.
const magic = "CRFU"

// The frame header: a 4-byte big-endian length of what follows it, a type
// byte and an 8-byte big-endian request id.
const (
	lenBytes    = 4
	headerBytes = lenBytes + 1 + 8
	// minFrameLen is the length field of a frame with an empty body.
	minFrameLen = headerBytes - lenBytes
)

// maxHandshakeBytes bounds the body of a hello, welcome or reject frame,
// and of a goaway frame.
const maxHandshakeBytes = 1 << 10

// MaxNameBytes bounds a node or client name carried in a handshake.
const MaxNameBytes = 255

// maxReasonBytes bounds the reason text of a reject or goaway frame.
const maxReasonBytes = 512

// frameType is a frame's type byte. Each type travels in one direction only.
type frameType uint8

const (
	frameHello    frameType = 1 // client to server: the first frame of a connection
	frameWelcome  frameType = 2 // server to client: the hello is accepted
	frameReject   frameType = 3 // server to client: the hello is refused; the server closes
	frameRequest  frameType = 4 // client to server: a transport.Request
	frameResponse frameType = 5 // server to client: the transport.Response to the request of the same id
	frameGoAway   frameType = 6 // server to client: no request after the frame's id will be served
)

func (t frameType) String() string {
	switch t {
	case frameHello:
		return "hello"
	case frameWelcome:
		return "welcome"
	case frameReject:
		return "reject"
	case frameRequest:
		return "request"
	case frameResponse:
		return "response"
	case frameGoAway:
		return "goaway"
	}
	return fmt.Sprintf("frame type %d", uint8(t))
}

// errProtocol marks a violation of the connection protocol: the peer's
// stream can no longer be trusted, and the connection is dropped.
var errProtocol = errors.New("tcp: protocol violation")

// protocolError returns an error wrapping errProtocol and
// transport.ErrMalformed.
func protocolError(format string, args ...any) error {
	return fmt.Errorf("%w: %w: "+format, append([]any{errProtocol, transport.ErrMalformed}, args...)...)
}

// header is a decoded frame header.
type header struct {
	typ frameType
	id  uint64
	n   int // body length
}

// parseHeader decodes the header at the start of b, which must hold at
// least headerBytes bytes. It checks the length against max, the largest
// body this side accepts, before anyone allocates for the body.
func parseHeader(b []byte, max int) (header, error) {
	l := binary.BigEndian.Uint32(b)
	h := header{typ: frameType(b[lenBytes]), id: binary.BigEndian.Uint64(b[lenBytes+1:])}
	if l < minFrameLen {
		return h, protocolError("frame length %d below the header's %d", l, minFrameLen)
	}
	if uint64(l-minFrameLen) > uint64(max) {
		return h, protocolError("%s frame of %d bytes exceeds the limit of %d", h.typ, l-minFrameLen, max)
	}
	h.n = int(l - minFrameLen)
	return h, nil
}

// appendHeader appends a frame header for a body of n bytes.
func appendHeader(b []byte, t frameType, id uint64, n int) []byte {
	b = binary.BigEndian.AppendUint32(b, uint32(minFrameLen+n))
	b = append(b, byte(t))
	return binary.BigEndian.AppendUint64(b, id)
}

// setID writes id into the header at the start of frame.
func setID(frame []byte, id uint64) {
	binary.BigEndian.PutUint64(frame[lenBytes+1:], id)
}

// setLen writes the length field of the frame that starts frame and runs to
// its end.
func setLen(frame []byte) {
	binary.BigEndian.PutUint32(frame, uint32(len(frame)-lenBytes))
}

// Role is a set of the parts a peer plays: the three server roles, and the
// client that calls them.
type Role uint8

// The roles. A node may serve any mix of the server roles.
const (
	RoleUnit      Role = 1 << 0 // a storage unit
	RoleSequencer Role = 1 << 1 // the sequencer
	RoleLayout    Role = 1 << 2 // a layout server
	RoleClient    Role = 1 << 3 // a client of the others

	serverRoles = RoleUnit | RoleSequencer | RoleLayout
	allRoles    = serverRoles | RoleClient
)

// roleNames lists each role's name, as certificates carry it (see
// docs/wire.md).
var roleNames = []struct {
	r    Role
	name string
}{
	{RoleUnit, "unit"}, {RoleSequencer, "sequencer"}, {RoleLayout, "layout"}, {RoleClient, "client"},
}

// String returns the role names joined by '+', or "none".
func (r Role) String() string {
	s := ""
	for _, n := range roleNames {
		if r&n.r != 0 {
			if s != "" {
				s += "+"
			}
			s += n.name
		}
	}
	if rest := r &^ allRoles; rest != 0 {
		if s != "" {
			s += "+"
		}
		s += fmt.Sprintf("role(%#x)", uint8(rest))
	}
	if s == "" {
		return "none"
	}
	return s
}

// opRole returns the role that serves op, or 0 for an unknown op.
func opRole(op transport.Op) Role {
	switch op {
	case transport.OpWrite, transport.OpRead, transport.OpFill, transport.OpTrim,
		transport.OpPrefixTrim, transport.OpSeal, transport.OpJoin, transport.OpRepair, transport.OpWriteBatch, transport.OpReadBatch,
		transport.OpReadWait:
		return RoleUnit
	case transport.OpToken, transport.OpBootstrap, transport.OpSeqSeal:
		return RoleSequencer
	case transport.OpGetLayout, transport.OpPrepare, transport.OpPropose, transport.OpCommit, transport.OpReport:
		return RoleLayout
	}
	return 0
}

// hello is the body of the first frame a client sends.
type hello struct {
	minVersion, maxVersion uint64
	role                   Role   // the client's own role: RoleClient
	from                   string // the client's name, for the server's logs
	to                     string // the node the client means to reach
}

// welcome is the body of the server's answer to an accepted hello.
type welcome struct {
	version       uint64 // the version both speak from now on
	roles         Role   // the roles the node serves (0: not announced)
	node          string // the node's name
	maxInFlight   uint64 // requests the client may have in flight on the connection
	maxFrameBytes uint64 // the largest request body the server accepts
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

func appendHello(b []byte, h hello) []byte {
	b = append(b, magic...)
	b = binary.AppendUvarint(b, h.minVersion)
	b = binary.AppendUvarint(b, h.maxVersion)
	b = append(b, byte(h.role))
	b = appendString(b, h.from)
	return appendString(b, h.to)
}

func appendWelcome(b []byte, w welcome) []byte {
	b = append(b, magic...)
	b = binary.AppendUvarint(b, w.version)
	b = append(b, byte(w.roles))
	b = appendString(b, w.node)
	b = binary.AppendUvarint(b, w.maxInFlight)
	return binary.AppendUvarint(b, w.maxFrameBytes)
}

func appendReason(b []byte, reason string) []byte {
	if len(reason) > maxReasonBytes {
		n := maxReasonBytes
		for n > 0 && !utf8.RuneStart(reason[n]) {
			n--
		}
		reason = reason[:n]
	}
	b = append(b, magic...)
	return appendString(b, reason)
}

// reader decodes a handshake body; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = protocolError(format, args...)
	}
}

func (r *reader) magic() {
	if len(r.b) < len(magic) || string(r.b[:len(magic)]) != magic {
		r.fail("no %q magic: not a corfu peer", magic)
		return
	}
	r.b = r.b[len(magic):]
}

func (r *reader) uvarint(what string) uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.fail("bad %s", what)
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) byte(what string) byte {
	if r.err != nil {
		return 0
	}
	if len(r.b) == 0 {
		r.fail("truncated at %s", what)
		return 0
	}
	c := r.b[0]
	r.b = r.b[1:]
	return c
}

func (r *reader) string(what string, limit int) string {
	n := r.uvarint(what + " length")
	if r.err != nil {
		return ""
	}
	if n > uint64(limit) || n > uint64(len(r.b)) {
		r.fail("%s of %d bytes exceeds the limit of %d or the %d bytes left", what, n, limit, len(r.b))
		return ""
	}
	s := string(r.b[:n])
	r.b = r.b[n:]
	if !utf8.ValidString(s) {
		r.fail("%s is not UTF-8", what)
		return ""
	}
	return s
}

func (r *reader) role(what string, allowed Role) Role {
	v := Role(r.byte(what))
	if r.err == nil && v&^allowed != 0 {
		r.fail("%s %s outside %s", what, v, allowed)
	}
	return v
}

func (r *reader) finish() error {
	if r.err == nil && len(r.b) > 0 {
		r.fail("%d trailing bytes", len(r.b))
	}
	return r.err
}

// decodeHello decodes a hello body. Errors wrap errProtocol and
// transport.ErrMalformed.
func decodeHello(b []byte) (hello, error) {
	r := reader{b: b}
	var h hello
	r.magic()
	h.minVersion = r.uvarint("minimum version")
	h.maxVersion = r.uvarint("maximum version")
	h.role = r.role("role", allRoles)
	h.from = r.string("client name", MaxNameBytes)
	h.to = r.string("node name", MaxNameBytes)
	if err := r.finish(); err != nil {
		return hello{}, err
	}
	if h.minVersion > h.maxVersion {
		return hello{}, protocolError("version range [%d, %d] is empty", h.minVersion, h.maxVersion)
	}
	return h, nil
}

// decodeWelcome decodes a welcome body. Errors wrap errProtocol and
// transport.ErrMalformed.
func decodeWelcome(b []byte) (welcome, error) {
	r := reader{b: b}
	var w welcome
	r.magic()
	w.version = r.uvarint("version")
	w.roles = r.role("roles", serverRoles)
	w.node = r.string("node name", MaxNameBytes)
	w.maxInFlight = r.uvarint("in-flight limit")
	w.maxFrameBytes = r.uvarint("frame limit")
	if err := r.finish(); err != nil {
		return welcome{}, err
	}
	if w.maxInFlight == 0 {
		return welcome{}, protocolError("in-flight limit 0")
	}
	if w.maxFrameBytes == 0 {
		return welcome{}, protocolError("frame limit 0")
	}
	return w, nil
}

// decodeReason decodes the body of a reject or goaway frame.
func decodeReason(b []byte) (string, error) {
	r := reader{b: b}
	r.magic()
	s := r.string("reason", maxReasonBytes)
	if err := r.finish(); err != nil {
		return "", err
	}
	return s, nil
}

// appendFrame appends a whole frame of type t carrying body.
func appendFrame(b []byte, t frameType, id uint64, body []byte) []byte {
	b = appendHeader(b, t, id, len(body))
	return append(b, body...)
}
