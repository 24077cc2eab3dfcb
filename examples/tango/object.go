package tango

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/storage"
)

// Spec describes an object type: its state S (the in-memory view) and its
// operations Op (the updates that go into the log). Every replica of an
// object, on every client, must be registered with the same ID, streams,
// codecs and Apply, so that they all build the same view from the log.
type Spec[S, Op any] struct {
	// ID names the object and its home stream: 1 to MaxObjectID.
	ID ObjectID
	// Streams are further streams whose updates the object applies too,
	// in log order with its own: the home streams of other objects with
	// the same operations (the object is then a view over several), say.
	// Updates through this object go to ID alone.
	Streams []corfu.StreamID
	// Init returns the state of an object with no update applied. Default:
	// S's zero value.
	Init func() S
	// Apply is the upcall: it applies op to the state. It must be
	// deterministic (no clock, no randomness, no iteration over a map that
	// decides anything) and must not retain op's or s's memory beyond the
	// state. It runs with the runtime's lock held: it must not call the
	// runtime. Required.
	Apply func(s *S, op Op)
	// Keys returns the keys op writes, for the transactions' conflict
	// checks: a transaction that read key k of the object aborts if a
	// write of k (or of the whole object) lands between its read and its
	// commit record. A nil or empty result, or a nil Keys, means op writes
	// the whole object. Keys are compared as bytes.
	Keys func(op Op) []string
	// Ops encodes the operations in the log. Default Binary[Op]().
	Ops Codec[Op]
	// State encodes the state in checkpoints. Default Binary[S]().
	State Codec[S]
	// Clone copies a state, for a transaction that reads an object it has
	// written (it reads its own writes from a copy). Default: a round trip
	// through State.
	Clone func(S) S
}

// Object is a replicated object hosted by a Runtime, typed by its Spec.
// Its methods are safe for concurrent use. A method called with a context
// that carries a transaction (see Runtime.RunTx) takes part in it.
type Object[S, Op any] struct {
	rt   *Runtime
	spec Spec[S, Op]
	h    *host
}

// NewObject hosts the object spec describes on r and returns it. An object
// registered after r has synced is built, as every other object is then,
// from its latest checkpoint and the log at the next sync.
//
// Errors: ErrInvalidSpec (no Apply, an ID out of range, an object of that
// ID hosted already).
func NewObject[S, Op any](r *Runtime, spec Spec[S, Op]) (*Object[S, Op], error) {
	if spec.Apply == nil {
		return nil, fmt.Errorf("%w: object %d has no Apply", ErrInvalidSpec, spec.ID)
	}
	if spec.ID == 0 || spec.ID > MaxObjectID {
		return nil, fmt.Errorf("%w: object ID %d outside [1, %d]", ErrInvalidSpec, spec.ID, MaxObjectID)
	}
	for _, s := range spec.Streams {
		if s&(ControlStream|checkpointBit) != 0 {
			return nil, fmt.Errorf("%w: stream %d is the runtime's", ErrInvalidSpec, s)
		}
	}
	if spec.Ops == nil {
		spec.Ops = Binary[Op]()
	}
	if spec.State == nil {
		spec.State = Binary[S]()
	}
	if spec.Init == nil {
		spec.Init = func() S { var s S; return s }
	}
	streams := append([]corfu.StreamID{spec.ID}, spec.Streams...)
	slices.Sort(streams)
	streams = slices.Compact(streams)
	o := &Object[S, Op]{rt: r, spec: spec}
	o.h = &host{id: spec.ID, streams: streams, fresh: func() objectState { return o.newState() }}
	o.h.reset(o.newState())
	if err := r.register(o.h); err != nil {
		return nil, err
	}
	return o, nil
}

// ID returns the object's ID.
func (o *Object[S, Op]) ID() ObjectID { return o.spec.ID }

// Runtime returns the runtime that hosts the object.
func (o *Object[S, Op]) Runtime() *Runtime { return o.rt }

// Update appends op to the object's stream (the update helper). It returns
// once op is in the log; every replica, this one included, applies it when
// it next syncs. Inside a transaction it buffers op instead, for the
// transaction's commit record.
//
// Errors: an encoding error (ErrCodec); corfu.Client.Append's, among them
// corfu.ErrUnknownOutcome (op may or may not be in the log); inside a
// transaction, ErrReadOnly and ErrTxDone.
func (o *Object[S, Op]) Update(ctx context.Context, op Op) error {
	b, err := o.spec.Ops.Encode(op)
	if err != nil {
		return err
	}
	if tx := txFrom(ctx); tx != nil {
		return tx.write(o.h, b)
	}
	if _, err := o.rt.c.Append(ctx, b, o.spec.ID); err != nil {
		return fmt.Errorf("tango: update of object %d: %w", o.spec.ID, err)
	}
	return nil
}

// Exec appends op like Update and waits until the runtime applies it,
// calling before with the state just before op applies: what op found (the
// element a dequeue takes, say). Inside a transaction it is Update followed
// by a read of the whole object's buffered state (before sees the
// transaction's own writes so far, op excluded).
//
// Errors: those of Update and Sync. An append whose outcome is unknown is
// not waited for: before is not called, and the error matches
// corfu.ErrUnknownOutcome.
func (o *Object[S, Op]) Exec(ctx context.Context, op Op, before func(s S)) error {
	if tx := txFrom(ctx); tx != nil {
		if err := o.Query(ctx, before); err != nil {
			return err
		}
		return o.Update(ctx, op)
	}
	b, err := o.spec.Ops.Encode(op)
	if err != nil {
		return err
	}
	r := o.rt
	// NB: the readers are held while the update is appended, so that no
	// sync applies it before its callback is registered.
	if _, err := r.lockSync(ctx); err != nil {
		return err
	}
	a, err := r.c.Append(ctx, b, o.spec.ID)
	if err == nil {
		r.mu.Lock()
		r.execs[a] = func(st objectState) { before(st.(*state[S, Op]).s) }
		r.mu.Unlock()
	}
	r.unlockSync()
	if err != nil {
		return fmt.Errorf("tango: update of object %d: %w", o.spec.ID, err)
	}
	for {
		if err := r.sync(ctx); err != nil {
			return err
		}
		r.mu.Lock()
		_, pending := r.execs[a]
		done := r.pos > a
		if done && pending {
			delete(r.execs, a) // NB: rebuilt from a checkpoint past a
		}
		r.mu.Unlock()
		if done {
			if pending {
				return fmt.Errorf("tango: update of object %d at address %d: %w: applied within a checkpoint", o.spec.ID, a, errNotSeen)
			}
			return nil
		}
	}
}

// errNotSeen reports an update whose application the runtime did not see.
var errNotSeen = errors.New("tango: not seen")

// Query syncs the object with the log's tail (with every object the runtime
// hosts) and calls f with its state: a linearizable read of the whole
// object. f must not keep or change the state; it runs with the runtime's
// lock held and must not call the runtime. Inside a transaction Query does
// not sync: it reads the transaction's view and records the read.
//
// Errors: those of Sync; inside a transaction, a *ConflictError if what the
// transaction read has changed since.
func (o *Object[S, Op]) Query(ctx context.Context, f func(s S)) error {
	return o.rt.read(ctx, o.h, readItem{Object: o.spec.ID, Whole: true}, o.call(f))
}

// QueryKey is Query for a read of one key: inside a transaction, only a
// write of that key (or of the whole object) conflicts with it.
func (o *Object[S, Op]) QueryKey(ctx context.Context, key string, f func(s S)) error {
	return o.rt.read(ctx, o.h, readItem{Object: o.spec.ID, Key: key}, o.call(f))
}

// Stale calls f with the object's state as it is, without syncing: a
// cheap read that may miss updates acknowledged before it began. It never
// takes part in a transaction.
func (o *Object[S, Op]) Stale(f func(s S)) {
	o.rt.mu.Lock()
	defer o.rt.mu.Unlock()
	o.call(f)(o.h.state)
}

// Version returns the address of the last update applied to the object (a
// plain update or a committed transaction's commit record), and false if
// none was.
func (o *Object[S, Op]) Version() (storage.Address, bool) {
	o.rt.mu.Lock()
	defer o.rt.mu.Unlock()
	if o.h.lastAny == 0 {
		return 0, false
	}
	return o.h.lastAny - 1, true
}

func (o *Object[S, Op]) call(f func(S)) func(objectState) {
	return func(st objectState) { f(st.(*state[S, Op]).s) }
}

func (o *Object[S, Op]) newState() *state[S, Op] {
	return &state[S, Op]{spec: &o.spec, s: o.spec.Init()}
}

// objectState is an object's state behind its type.
type objectState interface {
	// apply decodes op, applies it and returns the keys it wrote (whole:
	// the whole object).
	apply(op []byte) (keys []string, whole bool, err error)
	// encode and decode the state.
	encode() ([]byte, error)
	decode(b []byte) error
	clone() (objectState, error)
}

// state is the objectState of an Object[S, Op].
type state[S, Op any] struct {
	spec *Spec[S, Op]
	s    S
}

func (st *state[S, Op]) apply(b []byte) ([]string, bool, error) {
	op, err := st.spec.Ops.Decode(b)
	if err != nil {
		return nil, false, err
	}
	var keys []string
	if st.spec.Keys != nil {
		keys = st.spec.Keys(op)
	}
	st.spec.Apply(&st.s, op)
	return keys, len(keys) == 0, nil
}

func (st *state[S, Op]) encode() ([]byte, error) { return st.spec.State.Encode(st.s) }

func (st *state[S, Op]) decode(b []byte) error {
	s, err := st.spec.State.Decode(b)
	if err != nil {
		return err
	}
	st.s = s
	return nil
}

func (st *state[S, Op]) clone() (objectState, error) {
	if st.spec.Clone != nil {
		return &state[S, Op]{spec: st.spec, s: st.spec.Clone(st.s)}, nil
	}
	b, err := st.encode()
	if err != nil {
		return nil, err
	}
	c := &state[S, Op]{spec: st.spec}
	return c, c.decode(b)
}

// host is a hosted object as the runtime sees it: its streams, its state,
// and the versions the transactions' conflict checks compare.
type host struct {
	id      ObjectID
	streams []corfu.StreamID // sorted: the home stream and Spec.Streams
	fresh   func() objectState
	state   objectState
	// next and epoch: every entry of its streams below next, as the log
	// stood in epoch, is reflected in the state (applied, or in the
	// checkpoint it was loaded from), and the host applies only entries at
	// or above next. A tail reset after epoch whose tail lies below next
	// lowers next to it (see projection.Reset): what lands there is new.
	next  storage.Address
	epoch storage.Epoch
	// The versions, each an address plus one (0: never): of the last write
	// of anything, of the last write of the whole object, and of the last
	// write of each key.
	lastAny, lastWhole storage.Address
	lastKey            map[string]storage.Address
}

// reset gives h the state st, with no version, applied from the start.
func (h *host) reset(st objectState) {
	h.state, h.next = st, 0
	h.lastAny, h.lastWhole, h.lastKey = 0, 0, map[string]storage.Address{}
}

// reads reports whether h applies updates of any of the streams.
func (h *host) reads(streams ...corfu.StreamID) bool {
	for _, s := range streams {
		if _, ok := slices.BinarySearch(h.streams, s); ok {
			return true
		}
	}
	return false
}

// note records a write at a of the given keys (or of the whole object).
func (h *host) note(a storage.Address, keys []string, whole bool) {
	v := a + 1
	h.lastAny = v
	if whole {
		h.lastWhole = v
		return
	}
	for _, k := range keys {
		h.lastKey[k] = v
	}
}

// lastFor returns the version (address plus one) of the last write that
// conflicts with the read it.
func (h *host) lastFor(it readItem) storage.Address {
	if it.Whole {
		return h.lastAny
	}
	return max(h.lastKey[it.Key], h.lastWhole)
}
