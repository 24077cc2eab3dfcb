package transport

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// MaxFrameBytes bounds one encoded message. Decoders reject anything larger
// before allocating for it.
const MaxFrameBytes = 4 << 20

// MaxTails bounds the stream tails one message carries: the backpointers of
// a token, or the stream tails a sequencer is bootstrapped with.
const MaxTails = 1 << 16

// MaxTailAddrs bounds the addresses one stream tail carries: a sequencer
// keeps no more per stream.
const MaxTailAddrs = sequencer.MaxBackpointers

// Version is the wire format version that AppendRequest and AppendResponse
// write and that the decoders accept.
const Version = 1

// The kind byte that follows the version tells a request from a response,
// so that neither decoder accepts the other's messages.
const (
	kindRequest  = 'Q'
	kindResponse = 'R'
)

// AppendRequest appends the encoding of r to b and returns the extended slice.
// Every field is encoded, whatever the Op. It panics if r is nil.
func AppendRequest(b []byte, r *Request) []byte {
	pj := marshalProjection(r.Projection)
	b = slices.Grow(b, 3+5*binary.MaxVarintLen64+len(r.Data)+
		len(r.Streams)*binary.MaxVarintLen64+tailsSize(r.Tails)+len(pj))
	b = append(b, Version, kindRequest, byte(r.Op))
	b = appendUvarint(b, uint64(r.Epoch))
	b = appendUvarint(b, uint64(r.Addr))
	b = appendBytes(b, r.Data)
	b = appendUvarint(b, uint64(r.N))
	b = appendUvarint(b, r.Rank)
	b = appendCount(b, len(r.Streams), r.Streams == nil)
	for _, s := range r.Streams {
		b = appendUvarint(b, uint64(s))
	}
	b = appendTails(b, r.Tails)
	return appendBytes(b, pj)
}

// DecodeRequest decodes one request. The result shares no memory with b.
// Errors wrap ErrMalformed; one that breaks a limit of the sequencer package
// also wraps sequencer.ErrInvalid, and an invalid projection (see
// projection.Parse) also wraps projection.ErrInvalid.
func DecodeRequest(b []byte) (*Request, error) {
	d := decoder{b: b}
	d.header(kindRequest)
	r := new(Request)
	r.Op = Op(d.byte("op"))
	if d.err == nil && !r.Op.Valid() {
		d.fail("unknown op %d", uint8(r.Op))
	}
	r.Epoch = storage.Epoch(d.uvarint("epoch"))
	r.Addr = storage.Address(d.uvarint("addr"))
	r.Data = d.data()
	n := d.uvarint("n")
	if n > 1<<32-1 {
		d.fail("n %d overflows 32 bits", n)
	}
	r.N = uint32(n)
	r.Rank = d.uvarint("rank")
	r.Streams = d.streams()
	r.Tails = d.tails()
	r.Projection = d.projection()
	if err := d.finish(); err != nil {
		return nil, err
	}
	return r, nil
}

// AppendResponse appends the encoding of r to b and returns the extended slice.
// Every field is encoded. It panics if r is nil.
func AppendResponse(b []byte, r *Response) []byte {
	pj := marshalProjection(r.Projection)
	b = slices.Grow(b, 2+8*binary.MaxVarintLen64+len(r.Data)+tailsSize(r.Tails)+len(pj))
	b = append(b, Version, kindResponse)
	b = appendError(b, r.Err)
	b = appendUvarint(b, uint64(r.Addr))
	b = appendBytes(b, r.Data)
	b = appendUvarint(b, r.Rank)
	b = appendTails(b, r.Tails)
	return appendBytes(b, pj)
}

// DecodeResponse decodes one response. The result shares no memory with b.
// Errors wrap ErrMalformed, as DecodeRequest's do. The decoded Err is the
// sentinel itself when the remote error was exactly a sentinel, a
// *storage.SealedError when it was one, and otherwise an error that keeps the
// remote message and matches (errors.Is, errors.As) what the remote error
// matched.
func DecodeResponse(b []byte) (*Response, error) {
	d := decoder{b: b}
	d.header(kindResponse)
	r := new(Response)
	r.Err = d.error()
	r.Addr = storage.Address(d.uvarint("addr"))
	r.Data = d.data()
	r.Rank = d.uvarint("rank")
	r.Tails = d.tails()
	r.Projection = d.projection()
	if err := d.finish(); err != nil {
		return nil, err
	}
	return r, nil
}

// appendUvarint appends v as a uvarint.
func appendUvarint(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }

// appendCount appends the length of a field that may be nil: 0 for nil,
// otherwise n+1, so that nil and empty survive a round trip.
func appendCount(b []byte, n int, isNil bool) []byte {
	if isNil {
		return append(b, 0)
	}
	return appendUvarint(b, uint64(n)+1)
}

// appendBytes appends p as a count (see appendCount) and its bytes.
func appendBytes(b, p []byte) []byte {
	b = appendCount(b, len(p), p == nil)
	return append(b, p...)
}

// appendTails appends a count and, for each tail, its stream and its
// addresses.
func appendTails(b []byte, tails []sequencer.StreamTail) []byte {
	b = appendCount(b, len(tails), tails == nil)
	for _, t := range tails {
		b = appendUvarint(b, uint64(t.Stream))
		b = appendCount(b, len(t.Addrs), t.Addrs == nil)
		for _, a := range t.Addrs {
			b = appendUvarint(b, uint64(a))
		}
	}
	return b
}

// tailsSize is an upper bound on the encoded size of tails.
func tailsSize(tails []sequencer.StreamTail) int {
	n := binary.MaxVarintLen64
	for _, t := range tails {
		n += (2 + len(t.Addrs)) * binary.MaxVarintLen64
	}
	return n
}

// marshalProjection returns the JSON form of p, or nil for a nil p.
func marshalProjection(p *projection.Projection) []byte {
	if p == nil {
		return nil
	}
	b, err := json.Marshal(p)
	if err != nil {
		// NB: a Projection holds only strings, integers and slices, which
		// always marshal.
		panic(fmt.Sprintf("transport: marshal projection: %v", err))
	}
	return b
}

// decoder reads one message. After the first error every read returns a
// zero value and the error sticks, so decoding code reads straight through
// and checks once at the end.
type decoder struct {
	b   []byte
	err error
}

// header checks the frame size and reads the header (version and kind).
func (d *decoder) header(kind byte) {
	if len(d.b) > MaxFrameBytes {
		d.fail("frame of %d bytes exceeds the limit of %d", len(d.b), MaxFrameBytes)
		return
	}
	if v := d.byte("version"); d.err == nil && v != Version {
		d.fail("unknown version %d", v)
	}
	if k := d.byte("kind"); d.err == nil && k != kind {
		d.fail("kind %q, want %q", k, kind)
	}
}

// fail records the first error. format may use %w for further sentinels.
func (d *decoder) fail(format string, args ...any) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: "+format, append([]any{ErrMalformed}, args...)...)
	}
}

// finish rejects bytes left over and returns the decoding error, if any.
func (d *decoder) finish() error {
	if d.err == nil && len(d.b) > 0 {
		d.fail("%d trailing bytes", len(d.b))
	}
	return d.err
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if len(d.b) == 0 {
		d.fail("truncated at %s", what)
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	switch {
	case n == 0:
		d.fail("truncated at %s", what)
		return 0
	case n < 0:
		d.fail("%s overflows 64 bits", what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// count reads a count written by appendCount. It fails if the count is
// above limit or if the rest of the message cannot hold that many elements
// of at least minBytes each, so callers may allocate for it. tooMany, if not
// nil, is wrapped into the error for a count above limit.
func (d *decoder) count(what string, limit, minBytes int, tooMany error) (n int, isNil bool) {
	v := d.uvarint(what)
	if d.err != nil {
		return 0, true
	}
	if v == 0 {
		return 0, true
	}
	v--
	switch {
	case v > uint64(limit):
		if tooMany != nil {
			d.fail("%s %d exceeds the limit of %d: %w", what, v, limit, tooMany)
		} else {
			d.fail("%s %d exceeds the limit of %d", what, v, limit)
		}
		return 0, true
	case v > uint64(len(d.b)/minBytes):
		d.fail("%s %d exceeds the %d bytes left", what, v, len(d.b))
		return 0, true
	}
	return int(v), false
}

// data reads a byte field that may be nil and copies it out.
//
// NB: data is bounded by the frame, not by storage.MaxEntryBytes: a unit
// checks a request's epoch before its size, so an oversized write must reach
// it to get the same answer as a local call (a *storage.SealedError from a
// sealed unit, storage.ErrTooLarge otherwise).
func (d *decoder) data() []byte {
	n, isNil := d.count("data length", MaxFrameBytes, 1, nil)
	if isNil {
		return nil
	}
	p := make([]byte, n)
	copy(p, d.b)
	d.b = d.b[n:]
	return p
}

// string reads a length (not a count: there is no nil string) and the bytes.
func (d *decoder) string(what string, limit int) string {
	v := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if v > uint64(limit) || v > uint64(len(d.b)) {
		d.fail("%s length %d exceeds the limit of %d or the %d bytes left", what, v, limit, len(d.b))
		return ""
	}
	s := string(d.b[:v])
	d.b = d.b[v:]
	return s
}

func (d *decoder) streams() []sequencer.StreamID {
	n, isNil := d.count("stream count", sequencer.MaxStreams, 1, sequencer.ErrInvalid)
	if isNil {
		return nil
	}
	s := make([]sequencer.StreamID, n)
	for i := range s {
		s[i] = sequencer.StreamID(d.uvarint("stream"))
	}
	return s
}

func (d *decoder) tails() []sequencer.StreamTail {
	// Each tail takes at least two bytes: its stream and its address count.
	n, isNil := d.count("tail count", MaxTails, 2, sequencer.ErrInvalid)
	if isNil {
		return nil
	}
	tails := make([]sequencer.StreamTail, n)
	for i := range tails {
		tails[i].Stream = sequencer.StreamID(d.uvarint("tail stream"))
		m, isNil := d.count("tail address count", MaxTailAddrs, 1, sequencer.ErrInvalid)
		if isNil {
			continue
		}
		addrs := make([]storage.Address, m)
		for j := range addrs {
			addrs[j] = storage.Address(d.uvarint("tail address"))
		}
		tails[i].Addrs = addrs
	}
	if d.err != nil {
		return nil
	}
	return tails
}

// projection reads a projection carried as JSON, or nil.
func (d *decoder) projection() *projection.Projection {
	n, isNil := d.count("projection length", projection.MaxJSONBytes, 1, projection.ErrInvalid)
	if isNil {
		return nil
	}
	// projection.Parse validates, and shares no memory with its input:
	// encoding/json copies strings.
	p, err := projection.Parse(d.b[:n])
	d.b = d.b[n:]
	if err != nil {
		d.fail("projection: %w", err)
		return nil
	}
	return p
}
