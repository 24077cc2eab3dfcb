package transport

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

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
	op := Op(d.byte("op"))
	if d.err == nil && !op.Valid() {
		d.fail("unknown op %d", uint8(op))
	}
	epoch := d.uvarint("epoch")
	addr := d.uvarint("addr")
	data := d.data()
	n := d.uvarint("n")
	if n > 1<<32-1 {
		d.fail("n %d overflows 32 bits", n)
	}
	rank := d.uvarint("rank")
	streams := d.streams()
	tails := d.tails()
	pj := d.projection()
	if err := d.finish(); err != nil {
		return nil, err
	}
	// NB: the fields are decoded first, and only those that hold
	// pointers and are not nil stored one by one: storing a pointer into
	// the new request costs a write barrier while the collector runs, and
	// the collector runs much of the time when small messages come fast.
	r := &Request{Op: op, Epoch: storage.Epoch(epoch), Addr: storage.Address(addr), N: uint32(n), Rank: rank}
	if data != nil {
		r.Data = data
	}
	if streams != nil {
		r.Streams = streams
	}
	if tails != nil {
		r.Tails = tails
	}
	if pj != nil {
		r.Projection = pj
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
	rerr := d.error()
	addr := d.uvarint("addr")
	data := d.data()
	rank := d.uvarint("rank")
	tails := d.tails()
	pj := d.projection()
	if err := d.finish(); err != nil {
		return nil, err
	}
	// NB: pointers stored only when not nil, as in DecodeRequest.
	r := &Response{Addr: storage.Address(addr), Rank: rank}
	if rerr != nil {
		r.Err = rerr
	}
	if data != nil {
		r.Data = data
	}
	if tails != nil {
		r.Tails = tails
	}
	if pj != nil {
		r.Projection = pj
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
//
// NB: it moves an offset through b rather than reslicing b: storing a
// slice into a decoder that the compiler cannot place on the stack costs a
// write barrier while the collector runs, at every field.
type decoder struct {
	b   []byte
	off int // the bytes before it are read
	err error
}

// rest returns the bytes not yet read.
func (d *decoder) rest() []byte { return d.b[d.off:] }

// header checks the frame size and reads the header (version and kind).
func (d *decoder) header(kind byte) {
	if len(d.rest()) > MaxFrameBytes {
		d.fail("frame of %d bytes exceeds the limit of %d", len(d.rest()), MaxFrameBytes)
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
	if d.err == nil && d.off < len(d.b) {
		d.fail("%d trailing bytes", len(d.rest()))
	}
	return d.err
}

func (d *decoder) byte(what string) byte {
	if d.err != nil {
		return 0
	}
	if d.off >= len(d.b) {
		d.fail("truncated at %s", what)
		return 0
	}
	c := d.b[d.off]
	d.off++
	return c
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	if d.off < len(d.b) && d.b[d.off] < 0x80 { // NB: one byte, the usual case
		v := d.b[d.off]
		d.off++
		return uint64(v)
	}
	v, n := binary.Uvarint(d.rest())
	switch {
	case n == 0:
		d.fail("truncated at %s", what)
		return 0
	case n < 0:
		d.fail("%s overflows 64 bits", what)
		return 0
	}
	d.off += n
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
	case v > uint64(len(d.rest())/minBytes):
		d.fail("%s %d exceeds the %d bytes left", what, v, len(d.rest()))
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
	return bytes.Clone(d.view())
}

// view reads a byte field that may be nil and returns it in place: a
// slice of the decoder's input, capped at the field's own length so that
// an append to it cannot reach what follows. An empty field is an empty,
// non-nil slice.
func (d *decoder) view() []byte {
	n, isNil := d.count("data length", MaxFrameBytes, 1, nil)
	if isNil {
		return nil
	}
	v := d.rest()[:n:n]
	d.off += n
	return v
}

// string reads a length (not a count: there is no nil string) and the bytes.
func (d *decoder) string(what string, limit int) string {
	v := d.uvarint(what + " length")
	if d.err != nil {
		return ""
	}
	if v > uint64(limit) || v > uint64(len(d.rest())) {
		d.fail("%s length %d exceeds the limit of %d or the %d bytes left", what, v, limit, len(d.rest()))
		return ""
	}
	s := string(d.rest()[:v])
	d.off += int(v)
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
	p, err := parsed.parse(d.rest()[:n])
	d.off += n
	if err != nil {
		d.fail("projection: %w", err)
		return nil
	}
	return p
}

// parsed remembers the projections decoded lately. A cluster sends a few
// layouts over and over (every layout probe and every stale-epoch answer
// carries the current one), and parsing and validating JSON costs far more
// than a copy.
var parsed projectionCache

// projectionCache maps the JSON of valid projections to their parsed form.
// It is safe for concurrent use.
type projectionCache struct {
	mu    sync.Mutex
	m     map[string]*projection.Projection
	bytes int // the length of the keys in m
}

const (
	// cachedProjectionBytes is the longest JSON the cache keeps.
	cachedProjectionBytes = 16 << 10
	// projectionCacheBytes bounds the JSON of all projections in the cache;
	// when a new one would pass it, the cache starts over.
	projectionCacheBytes = 256 << 10
)

// parse returns what projection.Parse(b) returns: a valid projection that
// shares no memory with b or with any other caller's, or an error. Errors
// are not cached, so a bad frame costs a full parse every time.
func (c *projectionCache) parse(b []byte) (*projection.Projection, error) {
	c.mu.Lock()
	p, ok := c.m[string(b)]
	c.mu.Unlock()
	if ok {
		return p.Clone(), nil
	}
	// projection.Parse validates, and shares no memory with its input:
	// encoding/json copies strings.
	p, err := projection.Parse(b)
	if err != nil || len(b) > cachedProjectionBytes {
		return p, err
	}
	c.mu.Lock()
	if c.m == nil || c.bytes+len(b) > projectionCacheBytes {
		c.m = make(map[string]*projection.Projection)
		c.bytes = 0
	}
	if _, ok := c.m[string(b)]; !ok {
		c.m[string(b)] = p.Clone()
		c.bytes += len(b)
	}
	c.mu.Unlock()
	return p, nil
}
