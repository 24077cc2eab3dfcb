package transport

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/storage"
)

// MaxBatchItems bounds the writes one OpWriteBatch request carries.
const MaxBatchItems = 1 << 12

// AppendWriteBatch appends the body of an OpWriteBatch request (its Data
// field) for items to b: a count, then each item's address and data. It
// panics on a nil item data, which a unit would refuse: callers check
// first.
func AppendWriteBatch(b []byte, items []storage.WriteItem) []byte {
	// NB: grown once for the whole body, not item by item.
	n := binary.MaxVarintLen64
	for _, it := range items {
		n += 2*binary.MaxVarintLen64 + len(it.Data)
	}
	b = slices.Grow(b, n)
	b = appendUvarint(b, uint64(len(items)))
	for _, it := range items {
		if it.Data == nil {
			panic("transport: write batch item with nil data")
		}
		b = appendUvarint(b, uint64(it.Addr))
		b = appendBytes(b, it.Data)
	}
	return b
}

// DecodeWriteBatch decodes the body of an OpWriteBatch request. The items'
// data are not copied: they are slices of b, each capped at its own length
// (an append to one does not reach the next), valid while b does not
// change. A request's Data, as DecodeRequest returns it, is the request's
// own. Errors wrap ErrMalformed: a count above
// MaxBatchItems or beyond what b can hold, an item with nil data, trailing
// bytes.
func DecodeWriteBatch(b []byte) ([]storage.WriteItem, error) {
	d := decoder{b: b}
	n := d.uvarint("batch count")
	switch {
	case d.err != nil:
	case n == 0:
		d.fail("empty write batch")
	case n > MaxBatchItems:
		d.fail("write batch of %d items exceeds the limit of %d", n, MaxBatchItems)
	case n > uint64(len(d.rest())/2):
		d.fail("write batch of %d items exceeds the %d bytes left", n, len(d.rest()))
	}
	if d.err != nil {
		return nil, d.err
	}
	items := make([]storage.WriteItem, n)
	for i := range items {
		items[i].Addr = storage.Address(d.uvarint("item addr"))
		items[i].Data = d.view()
		if d.err == nil && items[i].Data == nil {
			d.fail("write batch item %d has nil data", i)
		}
		if d.err != nil {
			return nil, d.err
		}
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return items, nil
}

// AppendBatchErrors appends the body of an OpWriteBatch response (its Data
// field): a count, then each item's error as the codec carries errors.
func AppendBatchErrors(b []byte, errs []error) []byte {
	b = appendUvarint(b, uint64(len(errs)))
	for _, err := range errs {
		b = appendError(b, err)
	}
	return b
}

// DecodeBatchErrors decodes the body of an OpWriteBatch response. Errors
// wrap ErrMalformed.
func DecodeBatchErrors(b []byte) ([]error, error) {
	d := decoder{b: b}
	n := d.uvarint("batch count")
	if d.err == nil && (n > MaxBatchItems || n > uint64(len(d.rest()))) {
		d.fail("write batch answer of %d items exceeds the limit of %d or the %d bytes left", n, MaxBatchItems, len(d.rest()))
	}
	if d.err != nil {
		return nil, d.err
	}
	errs := make([]error, n)
	for i := range errs {
		errs[i] = d.error()
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return errs, nil
}

// WriteBatch stores items on the unit with one request; see
// storage.BatchWriter. It returns one error per item, or, with a nil
// slice, the one error that kept the whole request from being answered
// (the transport's, ErrMalformed for an answer of the wrong length), after
// which each item's outcome is unknown. A batch too large for a frame, or
// with more than MaxBatchItems items, fails with an error wrapping
// storage.ErrTooLarge without being sent.
func (u UnitClient) WriteBatch(ctx context.Context, epoch storage.Epoch, items []storage.WriteItem) ([]error, error) {
	b, err := EncodeWriteBatch(items)
	if err != nil {
		return nil, err
	}
	return u.WriteEncoded(ctx, epoch, b)
}

// EncodedBatch is a write batch encoded once for a request body, to be
// sent unchanged to several units (the replicas of a chain) with
// UnitClient.WriteEncoded. It is read-only: the requests that carry it
// share its bytes.
type EncodedBatch struct {
	n    int
	body []byte
}

// EncodeWriteBatch encodes items for WriteEncoded (AppendWriteBatch). A
// batch too large for a frame, or with more than MaxBatchItems items,
// fails with an error wrapping storage.ErrTooLarge.
func EncodeWriteBatch(items []storage.WriteItem) (EncodedBatch, error) {
	size := 0
	for _, it := range items {
		size += len(it.Data) + 2*10
	}
	if len(items) > MaxBatchItems || size > maxWriteBytes {
		return EncodedBatch{}, fmt.Errorf("transport: write batch of %d items, %d bytes: %w", len(items), size, storage.ErrTooLarge)
	}
	return EncodedBatch{n: len(items), body: AppendWriteBatch(nil, items)}, nil
}

// WriteEncoded is WriteBatch for a batch already encoded: the answers are
// the items', in the order EncodeWriteBatch got them.
func (u UnitClient) WriteEncoded(ctx context.Context, epoch storage.Epoch, b EncodedBatch) ([]error, error) {
	resp, err := call(ctx, u.Caller, u.Node, &Request{Op: OpWriteBatch, Epoch: epoch, N: uint32(b.n), Data: b.body})
	if err != nil {
		return nil, err
	}
	errs, err := DecodeBatchErrors(resp.Data)
	if err != nil {
		return nil, err
	}
	if len(errs) != b.n {
		return nil, fmt.Errorf("%w: %d answers to a write batch of %d", ErrMalformed, len(errs), b.n)
	}
	return errs, nil
}

// writeBatch serves OpWriteBatch: storage.WriteBatch on the unit, which
// shares one wait for durability if the unit is a storage.BatchWriter.
func (s *Server) writeBatch(req *Request) *Response {
	items, err := DecodeWriteBatch(req.Data)
	if err != nil {
		return &Response{Err: err}
	}
	errs := storage.WriteBatch(context.Background(), s.Unit, req.Epoch, items)
	return &Response{Data: AppendBatchErrors(nil, errs)}
}

// AppendReadBatch appends the body of an OpReadBatch request (its Data
// field) for addrs to b: a count, then each address.
func AppendReadBatch(b []byte, addrs []storage.Address) []byte {
	b = appendUvarint(b, uint64(len(addrs)))
	for _, a := range addrs {
		b = appendUvarint(b, uint64(a))
	}
	return b
}

// DecodeReadBatch decodes the body of an OpReadBatch request. Errors wrap
// ErrMalformed: an empty batch, a count above MaxBatchItems or beyond
// what b can hold, trailing bytes.
func DecodeReadBatch(b []byte) ([]storage.Address, error) {
	d := decoder{b: b}
	n := d.uvarint("batch count")
	switch {
	case d.err != nil:
	case n == 0:
		d.fail("empty read batch")
	case n > MaxBatchItems:
		d.fail("read batch of %d items exceeds the limit of %d", n, MaxBatchItems)
	case n > uint64(len(d.rest())):
		d.fail("read batch of %d items exceeds the %d bytes left", n, len(d.rest()))
	}
	if d.err != nil {
		return nil, d.err
	}
	addrs := make([]storage.Address, n)
	for i := range addrs {
		addrs[i] = storage.Address(d.uvarint("item addr"))
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return addrs, nil
}

// ReadResult is one answer of a batched read: the data, or the error a
// Read of that address returned.
type ReadResult struct {
	Data []byte
	Err  error
}

// AppendReadResults appends the body of an OpReadBatch response: a
// count, then each item's error and data.
func AppendReadResults(b []byte, rs []ReadResult) []byte {
	b = appendUvarint(b, uint64(len(rs)))
	for _, r := range rs {
		b = appendError(b, r.Err)
		b = appendBytes(b, r.Data)
	}
	return b
}

// DecodeReadResults decodes the body of an OpReadBatch response. The data
// share no memory with b. Errors wrap ErrMalformed.
func DecodeReadResults(b []byte) ([]ReadResult, error) {
	d := decoder{b: b}
	n := d.uvarint("batch count")
	if d.err == nil && (n > MaxBatchItems || n > uint64(len(d.rest())/2)) {
		d.fail("read batch answer of %d items exceeds the limit of %d or the %d bytes left", n, MaxBatchItems, len(d.rest()))
	}
	if d.err != nil {
		return nil, d.err
	}
	rs := make([]ReadResult, n)
	for i := range rs {
		rs[i].Err = d.error()
		rs[i].Data = d.data()
	}
	if err := d.finish(); err != nil {
		return nil, err
	}
	return rs, nil
}

// maxReadBatchBytes bounds the data one OpReadBatch answer carries: the
// server stops reading there, and answers the remaining items with
// ErrReadBatchFull, so that the answer fits in a frame.
const maxReadBatchBytes = MaxFrameBytes / 2

// ErrReadBatchFull answers the items of a batched read that did not fit in
// the answer; the caller reads them again.
var ErrReadBatchFull = errors.New("transport: read batch answer full")

// ReadBatch reads addrs on the unit with one request, and returns one
// result per address, in order: what Read would have returned for it (or
// ErrReadBatchFull for one that did not fit in the answer). A nil slice
// comes with the one error that kept the whole request from being
// answered.
func (u UnitClient) ReadBatch(ctx context.Context, epoch storage.Epoch, addrs []storage.Address) ([]ReadResult, error) {
	if len(addrs) > MaxBatchItems {
		return nil, fmt.Errorf("transport: read batch of %d items: %w", len(addrs), storage.ErrTooLarge)
	}
	resp, err := call(ctx, u.Caller, u.Node, &Request{Op: OpReadBatch, Epoch: epoch, N: uint32(len(addrs)), Data: AppendReadBatch(nil, addrs)})
	if err != nil {
		return nil, err
	}
	rs, err := DecodeReadResults(resp.Data)
	if err != nil {
		return nil, err
	}
	if len(rs) != len(addrs) {
		return nil, fmt.Errorf("%w: %d answers to a read batch of %d", ErrMalformed, len(rs), len(addrs))
	}
	return rs, nil
}

// readBatch serves OpReadBatch: a Read per address, in order, until the
// answer holds maxReadBatchBytes.
func (s *Server) readBatch(req *Request) *Response {
	addrs, err := DecodeReadBatch(req.Data)
	if err != nil {
		return &Response{Err: err}
	}
	rs := make([]ReadResult, len(addrs))
	size := 0
	for i, a := range addrs {
		if size > maxReadBatchBytes {
			rs[i].Err = ErrReadBatchFull
			continue
		}
		rs[i].Data, rs[i].Err = s.Unit.Read(context.Background(), req.Epoch, a)
		size += len(rs[i].Data)
	}
	return &Response{Data: AppendReadResults(nil, rs)}
}
