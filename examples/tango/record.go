package tango

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/storage"
)

// The runtime's own records. A plain update is an object's encoded
// operation alone, appended to the object's stream; every other record
// the runtime writes starts with recordVersion and a kind byte. Commit and
// decision records go to the streams of the objects a transaction writes
// and to ControlStream, and membership of ControlStream (never the bytes)
// is what tells them from plain updates. Checkpoint records go to the
// object's checkpoint stream, and their chunks to no stream at all.

const recordVersion = 1

// Record kinds.
const (
	kindCommit     = 1
	kindDecision   = 2
	kindCheckpoint = 3
	kindChunk      = 4
)

// errRecord reports a runtime record that does not decode.
var errRecord = errors.New("tango: malformed record")

// readItem is one read of a transaction: a key of an object (or the whole
// object), read when the runtime had applied every entry below Pos, a
// position taken in Epoch.
type readItem struct {
	Object ObjectID
	Whole  bool
	Key    string
	Pos    storage.Address
	Epoch  storage.Epoch
}

// writeSet is a transaction's buffered operations on one object, encoded
// with the object's codec, in the order they were made.
type writeSet struct {
	Object ObjectID
	Ops    [][]byte
}

// commitRecord is a transaction's commit record.
type commitRecord struct {
	TxID     txID
	Reads    []readItem // sorted by object, whole-object reads first, then key
	Writes   []writeSet // sorted by object
	Decision bool       // the writer appends a decision record for it
}

// txID identifies a transaction: its runtime's random nonce and the
// runtime's count of transactions. It lets a writer recognise its own commit
// record at an address whose append's outcome was unknown.
type txID struct{ Nonce, Serial uint64 }

// decisionRecord says whether the commit record at Commit committed.
type decisionRecord struct {
	Commit    storage.Address
	Committed bool
}

// checkpointRecord completes a checkpoint of an object: its state and
// versions (the blob) as of Snapshot, a position taken in Epoch. A small
// blob is inline; a larger one lies in chunk entries at Chunks, in order.
type checkpointRecord struct {
	Object   ObjectID
	Snapshot storage.Address
	Epoch    storage.Epoch
	Size     uint64
	Chunks   []storage.Address
	Inline   []byte
}

// chunkRecord is one piece of a checkpoint's blob.
type chunkRecord struct {
	Object   ObjectID
	Snapshot storage.Address
	Index    uint64
	Data     []byte
}

func appendBytes(b, x []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(x)))
	return append(b, x...)
}

func appendBool(b []byte, x bool) []byte {
	if x {
		return append(b, 1)
	}
	return append(b, 0)
}

func (r *commitRecord) encode() []byte {
	b := []byte{recordVersion, kindCommit}
	b = binary.AppendUvarint(b, r.TxID.Nonce)
	b = binary.AppendUvarint(b, r.TxID.Serial)
	b = binary.AppendUvarint(b, uint64(len(r.Reads)))
	for _, it := range r.Reads {
		b = binary.AppendUvarint(b, uint64(it.Object))
		b = appendBool(b, it.Whole)
		b = appendBytes(b, []byte(it.Key))
		b = binary.AppendUvarint(b, uint64(it.Pos))
		b = binary.AppendUvarint(b, uint64(it.Epoch))
	}
	b = binary.AppendUvarint(b, uint64(len(r.Writes)))
	for _, w := range r.Writes {
		b = binary.AppendUvarint(b, uint64(w.Object))
		b = binary.AppendUvarint(b, uint64(len(w.Ops)))
		for _, op := range w.Ops {
			b = appendBytes(b, op)
		}
	}
	return appendBool(b, r.Decision)
}

func (r *decisionRecord) encode() []byte {
	b := []byte{recordVersion, kindDecision}
	b = binary.AppendUvarint(b, uint64(r.Commit))
	return appendBool(b, r.Committed)
}

func (r *checkpointRecord) encode() []byte {
	b := []byte{recordVersion, kindCheckpoint}
	b = binary.AppendUvarint(b, uint64(r.Object))
	b = binary.AppendUvarint(b, uint64(r.Snapshot))
	b = binary.AppendUvarint(b, uint64(r.Epoch))
	b = binary.AppendUvarint(b, r.Size)
	b = binary.AppendUvarint(b, uint64(len(r.Chunks)))
	for _, a := range r.Chunks {
		b = binary.AppendUvarint(b, uint64(a))
	}
	return append(b, r.Inline...)
}

func (r *chunkRecord) encode() []byte {
	b := []byte{recordVersion, kindChunk}
	b = binary.AppendUvarint(b, uint64(r.Object))
	b = binary.AppendUvarint(b, uint64(r.Snapshot))
	b = binary.AppendUvarint(b, r.Index)
	return append(b, r.Data...)
}

// recordReader decodes a record's fields in turn; the first failure sticks.
type recordReader struct {
	d   decoder
	err error
}

func (r *recordReader) uint() uint64 {
	if r.err != nil {
		return 0
	}
	v, err := r.d.uvarint()
	r.err = err
	return v
}

func (r *recordReader) bool() bool {
	if r.err != nil {
		return false
	}
	x, err := r.d.take(1)
	if err == nil && x[0] > 1 {
		err = fmt.Errorf("%w: bad flag", errRecord)
	}
	r.err = err
	return err == nil && x[0] == 1
}

func (r *recordReader) bytes() []byte {
	n := r.uint()
	if r.err != nil {
		return nil
	}
	x, err := r.d.take(n)
	r.err = err
	return slices.Clone(x)
}

func (r *recordReader) count() int {
	if r.err != nil {
		return 0
	}
	n, err := r.d.count(1)
	r.err = err
	return n
}

func (r *recordReader) addr() storage.Address {
	v := r.uint()
	if r.err == nil && v >= uint64(storage.MaxAddress) {
		r.err = fmt.Errorf("%w: address %d out of range", errRecord, v)
	}
	return storage.Address(v)
}

func (r *recordReader) done() error {
	if r.err == nil && len(r.d.b) != 0 {
		r.err = fmt.Errorf("%w: %d trailing bytes", errRecord, len(r.d.b))
	}
	if r.err != nil && !errors.Is(r.err, errRecord) {
		return fmt.Errorf("%w: %v", errRecord, r.err)
	}
	return r.err
}

// recordKind returns the kind of a runtime record, and false if b does not
// start like one.
func recordKind(b []byte) (byte, bool) {
	if len(b) < 2 || b[0] != recordVersion {
		return 0, false
	}
	return b[1], true
}

func newReader(b []byte) *recordReader { return &recordReader{d: decoder{b: b[2:]}} }

func decodeCommit(b []byte) (*commitRecord, error) {
	r := newReader(b)
	c := &commitRecord{}
	c.TxID.Nonce, c.TxID.Serial = r.uint(), r.uint()
	n := r.count()
	for range n {
		it := readItem{Object: ObjectID(r.uint()), Whole: r.bool(), Key: string(r.bytes()), Pos: r.addr(), Epoch: storage.Epoch(r.uint())}
		c.Reads = append(c.Reads, it)
	}
	n = r.count()
	for range n {
		w := writeSet{Object: ObjectID(r.uint())}
		ops := r.count()
		for range ops {
			w.Ops = append(w.Ops, r.bytes())
		}
		c.Writes = append(c.Writes, w)
	}
	c.Decision = r.bool()
	return c, r.done()
}

func decodeDecision(b []byte) (*decisionRecord, error) {
	r := newReader(b)
	d := &decisionRecord{Commit: r.addr(), Committed: r.bool()}
	return d, r.done()
}

func decodeCheckpoint(b []byte) (*checkpointRecord, error) {
	r := newReader(b)
	c := &checkpointRecord{Object: ObjectID(r.uint()), Snapshot: r.addr(), Epoch: storage.Epoch(r.uint()), Size: r.uint()}
	n := r.count()
	for range n {
		c.Chunks = append(c.Chunks, r.addr())
	}
	if r.err == nil && n == 0 {
		c.Inline = slices.Clone(r.d.b)
		r.d.b = nil
	}
	if err := r.done(); err != nil {
		return nil, err
	}
	if n == 0 && uint64(len(c.Inline)) != c.Size {
		return nil, fmt.Errorf("%w: inline checkpoint of %d bytes, %d announced", errRecord, len(c.Inline), c.Size)
	}
	return c, nil
}

func decodeChunk(b []byte) (*chunkRecord, error) {
	r := newReader(b)
	c := &chunkRecord{Object: ObjectID(r.uint()), Snapshot: r.addr(), Index: r.uint()}
	if r.err == nil {
		c.Data = slices.Clone(r.d.b)
		r.d.b = nil
	}
	return c, r.done()
}
