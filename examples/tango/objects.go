package tango

import (
	"bytes"
	"context"
	"slices"

	"github.com/corfulog/corfu/corfu"
)

// Option configures a ready object (Map, Counter, Register, Queue).
type Option func(*objectOptions)

type objectOptions struct {
	json    bool
	streams []corfu.StreamID
}

// WithJSON makes the object encode its operations and checkpoints as JSON
// instead of the compact binary default. Every replica of the object must
// agree on it.
func WithJSON() Option { return func(o *objectOptions) { o.json = true } }

// WithStreams makes the object apply the updates of further streams too
// (see Spec.Streams).
func WithStreams(streams ...corfu.StreamID) Option {
	return func(o *objectOptions) { o.streams = append(o.streams, streams...) }
}

func options(opts []Option) objectOptions {
	var o objectOptions
	for _, f := range opts {
		f(&o)
	}
	return o
}

// codecFor returns the codec the options choose for T.
func codecFor[T any](o objectOptions) Codec[T] {
	if o.json {
		return JSON[T]()
	}
	return Binary[T]()
}

// MapOp is an operation of a Map: a put of Key (Value), a delete of Key,
// or a clear of the whole map.
type MapOp[K comparable, V any] struct {
	Kind  MapOpKind
	Key   K
	Value V
}

// MapOpKind is the kind of a MapOp.
type MapOpKind uint8

// The kinds of MapOp.
const (
	MapPut MapOpKind = iota + 1
	MapDelete
	MapClear
)

// Map is a replicated map from K to V. Its transactions conflict per key:
// a transaction that read key k (Get) aborts only if k, or the whole map
// (Clear), was written since; one that read the whole map (Len, Keys)
// aborts on any write. Keys are compared by their encoding.
//
// A Map is safe for concurrent use; see Object.
type Map[K comparable, V any] struct {
	obj  *Object[map[K]V, MapOp[K, V]]
	keys Codec[K]
}

// NewMap hosts the map id on r. Its errors are NewObject's.
func NewMap[K comparable, V any](r *Runtime, id ObjectID, opts ...Option) (*Map[K, V], error) {
	o := options(opts)
	m := &Map[K, V]{keys: codecFor[K](o)}
	var err error
	m.obj, err = NewObject(r, Spec[map[K]V, MapOp[K, V]]{
		ID:      id,
		Streams: o.streams,
		Init:    func() map[K]V { return map[K]V{} },
		Apply: func(s *map[K]V, op MapOp[K, V]) {
			switch op.Kind {
			case MapPut:
				(*s)[op.Key] = op.Value
			case MapDelete:
				delete(*s, op.Key)
			case MapClear:
				clear(*s)
			}
		},
		Keys: func(op MapOp[K, V]) []string {
			if op.Kind == MapClear {
				return nil
			}
			return []string{m.key(op.Key)}
		},
		Ops:   codecFor[MapOp[K, V]](o),
		State: codecFor[map[K]V](o),
		Clone: func(s map[K]V) map[K]V {
			c := make(map[K]V, len(s))
			for k, v := range s {
				c[k] = v
			}
			return c
		},
	})
	if err != nil {
		return nil, err
	}
	return m, nil
}

// key returns the conflict key of k: its encoding. A key that does not
// encode cannot be put, so any string does for it.
func (m *Map[K, V]) key(k K) string {
	b, err := m.keys.Encode(k)
	if err != nil {
		return ""
	}
	return string(b)
}

// Object returns the map's underlying object.
func (m *Map[K, V]) Object() *Object[map[K]V, MapOp[K, V]] { return m.obj }

// Put sets k to v. Its errors are Object.Update's.
func (m *Map[K, V]) Put(ctx context.Context, k K, v V) error {
	return m.obj.Update(ctx, MapOp[K, V]{Kind: MapPut, Key: k, Value: v})
}

// Delete removes k. Its errors are Object.Update's.
func (m *Map[K, V]) Delete(ctx context.Context, k K) error {
	return m.obj.Update(ctx, MapOp[K, V]{Kind: MapDelete, Key: k})
}

// Clear removes every key. Its errors are Object.Update's.
func (m *Map[K, V]) Clear(ctx context.Context) error {
	return m.obj.Update(ctx, MapOp[K, V]{Kind: MapClear})
}

// Get returns k's value and whether k is present, after syncing with the
// log (a linearizable read). Its errors are Object.QueryKey's.
func (m *Map[K, V]) Get(ctx context.Context, k K) (v V, ok bool, err error) {
	err = m.obj.QueryKey(ctx, m.key(k), func(s map[K]V) { v, ok = s[k] })
	return v, ok, err
}

// Len returns the number of keys, after syncing. Its errors are
// Object.Query's.
func (m *Map[K, V]) Len(ctx context.Context) (n int, err error) {
	err = m.obj.Query(ctx, func(s map[K]V) { n = len(s) })
	return n, err
}

// Keys returns every key, in the order of their encodings, after syncing.
// Its errors are Object.Query's.
func (m *Map[K, V]) Keys(ctx context.Context) (keys []K, err error) {
	err = m.obj.Query(ctx, func(s map[K]V) { keys = m.sorted(s) })
	return keys, err
}

func (m *Map[K, V]) sorted(s map[K]V) []K {
	type kb struct {
		k K
		b string
	}
	all := make([]kb, 0, len(s))
	for k := range s {
		all = append(all, kb{k, m.key(k)})
	}
	slices.SortFunc(all, func(a, b kb) int { return bytes.Compare([]byte(a.b), []byte(b.b)) })
	out := make([]K, len(all))
	for i, e := range all {
		out[i] = e.k
	}
	return out
}

// StaleGet returns k's value as the local view holds it, without syncing.
func (m *Map[K, V]) StaleGet(k K) (v V, ok bool) {
	m.obj.Stale(func(s map[K]V) { v, ok = s[k] })
	return v, ok
}

// CounterOp is an operation of a Counter: add Delta.
type CounterOp struct{ Delta int64 }

// Counter is a replicated 64-bit counter. Every Add writes the whole
// counter, so a transaction that read it (Get) aborts on any Add since. It
// is safe for concurrent use.
type Counter struct {
	obj *Object[int64, CounterOp]
}

// NewCounter hosts the counter id on r. Its errors are NewObject's.
func NewCounter(r *Runtime, id ObjectID, opts ...Option) (*Counter, error) {
	o := options(opts)
	obj, err := NewObject(r, Spec[int64, CounterOp]{
		ID:      id,
		Streams: o.streams,
		Apply:   func(s *int64, op CounterOp) { *s += op.Delta },
		Ops:     codecFor[CounterOp](o),
		State:   codecFor[int64](o),
		Clone:   func(s int64) int64 { return s },
	})
	if err != nil {
		return nil, err
	}
	return &Counter{obj}, nil
}

// Object returns the counter's underlying object.
func (c *Counter) Object() *Object[int64, CounterOp] { return c.obj }

// Add adds delta. Its errors are Object.Update's.
func (c *Counter) Add(ctx context.Context, delta int64) error {
	return c.obj.Update(ctx, CounterOp{delta})
}

// Get returns the value, after syncing. Its errors are Object.Query's.
func (c *Counter) Get(ctx context.Context) (n int64, err error) {
	err = c.obj.Query(ctx, func(s int64) { n = s })
	return n, err
}

// Stale returns the value as the local view holds it, without syncing.
func (c *Counter) Stale() (n int64) {
	c.obj.Stale(func(s int64) { n = s })
	return n
}

// Register is a replicated register holding one T; it starts at T's zero
// value. Set writes the whole register. It is safe for concurrent use.
type Register[T any] struct {
	obj *Object[T, T]
}

// NewRegister hosts the register id on r. Its errors are NewObject's.
func NewRegister[T any](r *Runtime, id ObjectID, opts ...Option) (*Register[T], error) {
	o := options(opts)
	obj, err := NewObject(r, Spec[T, T]{
		ID:      id,
		Streams: o.streams,
		Apply:   func(s *T, v T) { *s = v },
		Ops:     codecFor[T](o),
		State:   codecFor[T](o),
	})
	if err != nil {
		return nil, err
	}
	return &Register[T]{obj}, nil
}

// Object returns the register's underlying object.
func (g *Register[T]) Object() *Object[T, T] { return g.obj }

// Set sets the register to v. Its errors are Object.Update's.
func (g *Register[T]) Set(ctx context.Context, v T) error { return g.obj.Update(ctx, v) }

// Get returns the register's value, after syncing. Its errors are
// Object.Query's.
func (g *Register[T]) Get(ctx context.Context) (v T, err error) {
	err = g.obj.Query(ctx, func(s T) { v = s })
	return v, err
}

// Stale returns the value as the local view holds it, without syncing.
func (g *Register[T]) Stale() (v T) {
	g.obj.Stale(func(s T) { v = s })
	return v
}

// QueueOp is an operation of a Queue: push Value, or pop the head.
type QueueOp[T any] struct {
	Pop   bool
	Value T
}

// Queue is a replicated FIFO queue. Every operation writes the whole
// queue. It is safe for concurrent use.
type Queue[T any] struct {
	obj *Object[[]T, QueueOp[T]]
}

// NewQueue hosts the queue id on r. Its errors are NewObject's.
func NewQueue[T any](r *Runtime, id ObjectID, opts ...Option) (*Queue[T], error) {
	o := options(opts)
	obj, err := NewObject(r, Spec[[]T, QueueOp[T]]{
		ID:      id,
		Streams: o.streams,
		Apply: func(s *[]T, op QueueOp[T]) {
			switch {
			case !op.Pop:
				*s = append(*s, op.Value)
			case len(*s) > 0:
				var zero T
				(*s)[0] = zero
				*s = (*s)[1:]
			}
		},
		Ops:   codecFor[QueueOp[T]](o),
		State: codecFor[[]T](o),
		Clone: slices.Clone[[]T],
	})
	if err != nil {
		return nil, err
	}
	return &Queue[T]{obj}, nil
}

// Object returns the queue's underlying object.
func (q *Queue[T]) Object() *Object[[]T, QueueOp[T]] { return q.obj }

// Push appends v at the tail. Its errors are Object.Update's.
func (q *Queue[T]) Push(ctx context.Context, v T) error {
	return q.obj.Update(ctx, QueueOp[T]{Value: v})
}

// Pop removes the head and returns it, or reports false if the queue was
// empty when the pop applied: it appends the pop and waits for the runtime
// to apply it (Object.Exec), so that of several clients popping at once
// each gets a different element. Its errors are Object.Exec's.
func (q *Queue[T]) Pop(ctx context.Context) (v T, ok bool, err error) {
	err = q.obj.Exec(ctx, QueueOp[T]{Pop: true}, func(s []T) {
		if len(s) > 0 {
			v, ok = s[0], true
		}
	})
	return v, ok, err
}

// Len returns the number of elements, after syncing. Its errors are
// Object.Query's.
func (q *Queue[T]) Len(ctx context.Context) (n int, err error) {
	err = q.obj.Query(ctx, func(s []T) { n = len(s) })
	return n, err
}

// Items returns a copy of the elements, head first, after syncing. Its
// errors are Object.Query's.
func (q *Queue[T]) Items(ctx context.Context) (items []T, err error) {
	err = q.obj.Query(ctx, func(s []T) { items = slices.Clone(s) })
	return items, err
}
