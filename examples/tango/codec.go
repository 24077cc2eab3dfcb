package tango

import (
	"bytes"
	"encoding"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"sync"
)

// Codec turns values of one type into bytes and back: an object's
// operations as they go into the log, and its state as a checkpoint holds
// it. Encode must be deterministic (equal values, equal bytes) and Decode
// must accept what Encode made; every replica of an object must use the
// same codec. Implementations must be safe for concurrent use.
type Codec[T any] interface {
	// Encode returns v's bytes, or an error wrapping ErrCodec.
	Encode(v T) ([]byte, error)
	// Decode returns the value b encodes, or an error wrapping ErrCodec.
	Decode(b []byte) (T, error)
}

// ErrCodec reports a value that a codec cannot encode, or bytes it cannot
// decode.
var ErrCodec = errors.New("tango: codec")

// JSON returns a codec that encodes values with encoding/json. It is
// readable and tolerant of added fields, and larger and slower than Binary.
// Maps encode with sorted keys, so equal values give equal bytes.
func JSON[T any]() Codec[T] { return jsonCodec[T]{} }

type jsonCodec[T any] struct{}

func (jsonCodec[T]) Encode(v T) ([]byte, error) {
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("%w: json: %v", ErrCodec, err)
	}
	return b, nil
}

func (jsonCodec[T]) Decode(b []byte) (T, error) {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return v, fmt.Errorf("%w: json: %v", ErrCodec, err)
	}
	return v, nil
}

// Binary returns the compact binary codec, the default of every object.
// It lays a value out by its Go type, with no field names or type tags:
// integers as varints (zig-zag for signed ones), floats as 8 or 4
// little-endian bytes, booleans as one byte, strings and byte slices as a
// uvarint length and the bytes, slices and arrays element by element after
// a uvarint count (arrays have none), maps as a count and their entries in
// the order of their encoded keys (so that equal maps give equal bytes),
// pointers as a presence byte and the value, and structs as their exported
// fields in order. An empty slice decodes as nil, an empty map as an empty
// map. A type that implements encoding.BinaryMarshaler and
// encoding.BinaryUnmarshaler (time.Time, say) is encoded by them. A value
// at the top level that is a string or a byte slice is its bytes, with no
// length. Interfaces, channels and functions cannot be encoded.
//
// Adding, removing or reordering a struct's exported fields changes the
// layout: entries written before read wrongly after. Use JSON for types
// that evolve.
func Binary[T any]() Codec[T] {
	t := reflect.TypeFor[T]()
	return binaryCodec[T]{c: compile(t), raw: t.Kind() == reflect.String || isBytes(t)}
}

type binaryCodec[T any] struct {
	c   *coder
	raw bool // a top-level string or []byte: its bytes, unframed
}

func (b binaryCodec[T]) Encode(v T) ([]byte, error) {
	rv := reflect.ValueOf(&v).Elem()
	if b.raw {
		if rv.Kind() == reflect.String {
			return []byte(rv.String()), nil
		}
		return slices.Clone(rv.Bytes()), nil
	}
	if b.c.err != nil {
		return nil, b.c.err
	}
	out, err := b.c.enc(nil, rv)
	if err != nil {
		return nil, err
	}
	return out, nil
}

func (b binaryCodec[T]) Decode(data []byte) (T, error) {
	var v T
	rv := reflect.ValueOf(&v).Elem()
	if b.raw {
		if rv.Kind() == reflect.String {
			rv.SetString(string(data))
		} else {
			rv.SetBytes(slices.Clone(data))
		}
		return v, nil
	}
	if b.c.err != nil {
		return v, b.c.err
	}
	d := &decoder{b: data}
	if err := b.c.dec(d, rv); err != nil {
		return v, err
	}
	if len(d.b) != 0 {
		return v, fmt.Errorf("%w: %d trailing bytes", ErrCodec, len(d.b))
	}
	return v, nil
}

func isBytes(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8
}

// coder encodes and decodes values of one type. err is set if the type
// cannot be encoded.
type coder struct {
	enc func(b []byte, v reflect.Value) ([]byte, error)
	dec func(d *decoder, v reflect.Value) error
	err error
}

// decoder holds the bytes not decoded yet.
type decoder struct{ b []byte }

func (d *decoder) uvarint() (uint64, error) {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", ErrCodec)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) varint() (int64, error) {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		return 0, fmt.Errorf("%w: bad varint", ErrCodec)
	}
	d.b = d.b[n:]
	return v, nil
}

func (d *decoder) take(n uint64) ([]byte, error) {
	if n > uint64(len(d.b)) {
		return nil, fmt.Errorf("%w: %d bytes wanted, %d left", ErrCodec, n, len(d.b))
	}
	out := d.b[:n]
	d.b = d.b[n:]
	return out, nil
}

// count reads a length that must be backed by at least min bytes per
// element, so that a corrupt length cannot make Decode allocate much.
func (d *decoder) count(min int) (int, error) {
	n, err := d.uvarint()
	if err != nil {
		return 0, err
	}
	if n > uint64(len(d.b)) || min > 0 && n*uint64(min) > uint64(len(d.b)) {
		return 0, fmt.Errorf("%w: count %d exceeds the %d bytes left", ErrCodec, n, len(d.b))
	}
	return int(n), nil
}

// coders caches the coder of every type compiled so far. compile holds mu
// while it builds, so that a coder is used only once it is complete, and a
// recursive type finds its own coder, in the making, in the cache.
var coders = struct {
	mu sync.Mutex
	m  map[reflect.Type]*coder
}{m: map[reflect.Type]*coder{}}

var (
	marshalerType   = reflect.TypeFor[encoding.BinaryMarshaler]()
	unmarshalerType = reflect.TypeFor[encoding.BinaryUnmarshaler]()
)

// compile returns the coder of t, building it once.
func compile(t reflect.Type) *coder {
	coders.mu.Lock()
	defer coders.mu.Unlock()
	return compileLocked(t)
}

func compileLocked(t reflect.Type) *coder {
	if c, ok := coders.m[t]; ok {
		return c
	}
	c := &coder{}
	coders.m[t] = c // NB: before its parts, for recursive types
	build(c, t)
	return c
}

func unsupported(c *coder, t reflect.Type, why string) {
	c.err = fmt.Errorf("%w: cannot encode %v: %s", ErrCodec, t, why)
	c.enc = func([]byte, reflect.Value) ([]byte, error) { return nil, c.err }
	c.dec = func(*decoder, reflect.Value) error { return c.err }
}

// build fills in c, the coder of t: a type that marshals itself is coded
// by its methods, and any other by the layout of its kind.
func build(c *coder, t reflect.Type) {
	if t.Implements(marshalerType) && reflect.PointerTo(t).Implements(unmarshalerType) && t.Kind() != reflect.Pointer {
		buildMarshaler(c, t)
		return
	}
	switch t.Kind() {
	case reflect.Bool:
		buildBool(c)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		buildInt(c, t)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Uintptr:
		buildUint(c, t)
	case reflect.Float32:
		buildFloat32(c)
	case reflect.Float64:
		buildFloat64(c)
	case reflect.String:
		buildString(c)
	case reflect.Slice:
		if isBytes(t) {
			buildBytes(c)
		} else {
			buildSlice(c, t)
		}
	case reflect.Array:
		buildArray(c, t)
	case reflect.Map:
		buildMap(c, t)
	case reflect.Pointer:
		buildPointer(c, t)
	case reflect.Struct:
		buildStruct(c, t)
	default:
		unsupported(c, t, "its kind "+t.Kind().String()+" has no layout")
	}
}

// buildMarshaler codes t, which implements encoding.BinaryMarshaler (and
// its pointer encoding.BinaryUnmarshaler), as a uvarint length and the
// bytes MarshalBinary gives.
func buildMarshaler(c *coder, t reflect.Type) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		m, err := v.Interface().(encoding.BinaryMarshaler).MarshalBinary()
		if err != nil {
			return nil, fmt.Errorf("%w: %v: %v", ErrCodec, t, err)
		}
		b = binary.AppendUvarint(b, uint64(len(m)))
		return append(b, m...), nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		m, err := d.take(n)
		if err != nil {
			return err
		}
		if err := v.Addr().Interface().(encoding.BinaryUnmarshaler).UnmarshalBinary(m); err != nil {
			return fmt.Errorf("%w: %v: %v", ErrCodec, t, err)
		}
		return nil
	}
}

// buildBool codes a boolean as one byte, 0 or 1; any other byte is
// rejected.
func buildBool(c *coder) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		if v.Bool() {
			return append(b, 1), nil
		}
		return append(b, 0), nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		x, err := d.take(1)
		if err != nil {
			return err
		}
		if x[0] > 1 {
			return fmt.Errorf("%w: bad bool %d", ErrCodec, x[0])
		}
		v.SetBool(x[0] == 1)
		return nil
	}
}

// buildInt codes a signed integer of type t as a zig-zag varint; a value
// too large for t is rejected when decoded.
func buildInt(c *coder, t reflect.Type) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) { return binary.AppendVarint(b, v.Int()), nil }
	c.dec = func(d *decoder, v reflect.Value) error {
		x, err := d.varint()
		if err != nil {
			return err
		}
		if v.OverflowInt(x) {
			return fmt.Errorf("%w: %d overflows %v", ErrCodec, x, t)
		}
		v.SetInt(x)
		return nil
	}
}

// buildUint codes an unsigned integer of type t as a uvarint; a value too
// large for t is rejected when decoded.
func buildUint(c *coder, t reflect.Type) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) { return binary.AppendUvarint(b, v.Uint()), nil }
	c.dec = func(d *decoder, v reflect.Value) error {
		x, err := d.uvarint()
		if err != nil {
			return err
		}
		if v.OverflowUint(x) {
			return fmt.Errorf("%w: %d overflows %v", ErrCodec, x, t)
		}
		v.SetUint(x)
		return nil
	}
}

// buildFloat32 codes a float32 as its 4 IEEE 754 bytes, little-endian.
func buildFloat32(c *coder) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		return binary.LittleEndian.AppendUint32(b, math.Float32bits(float32(v.Float()))), nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		x, err := d.take(4)
		if err != nil {
			return err
		}
		v.SetFloat(float64(math.Float32frombits(binary.LittleEndian.Uint32(x))))
		return nil
	}
}

// buildFloat64 codes a float64 as its 8 IEEE 754 bytes, little-endian.
func buildFloat64(c *coder) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		return binary.LittleEndian.AppendUint64(b, math.Float64bits(v.Float())), nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		x, err := d.take(8)
		if err != nil {
			return err
		}
		v.SetFloat(math.Float64frombits(binary.LittleEndian.Uint64(x)))
		return nil
	}
}

// buildString codes a string as a uvarint length and its bytes.
func buildString(c *coder) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		b = binary.AppendUvarint(b, uint64(v.Len()))
		return append(b, v.String()...), nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		x, err := d.take(n)
		if err != nil {
			return err
		}
		v.SetString(string(x))
		return nil
	}
}

// buildBytes codes a byte slice as a uvarint length and the bytes. The
// decoded slice is a copy, and an empty one decodes as nil.
func buildBytes(c *coder) {
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		b = binary.AppendUvarint(b, uint64(v.Len()))
		return append(b, v.Bytes()...), nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		n, err := d.uvarint()
		if err != nil {
			return err
		}
		x, err := d.take(n)
		if err != nil || n == 0 {
			return err
		}
		v.SetBytes(slices.Clone(x))
		return nil
	}
}

// buildSlice codes a slice of type t, other than a byte slice, as a
// uvarint count and its elements in order.
func buildSlice(c *coder, t reflect.Type) {
	elem := compileLocked(t.Elem())
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		b = binary.AppendUvarint(b, uint64(v.Len()))
		var err error
		for i := range v.Len() {
			if b, err = elem.enc(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		n, err := d.count(1)
		if err != nil || n == 0 {
			return err // NB: an empty slice decodes as nil
		}
		s := reflect.MakeSlice(t, n, n)
		for i := range n {
			if err := elem.dec(d, s.Index(i)); err != nil {
				return err
			}
		}
		v.Set(s)
		return nil
	}
}

// buildArray codes an array of type t as its elements in order, with no
// count: the type fixes it.
func buildArray(c *coder, t reflect.Type) {
	elem := compileLocked(t.Elem())
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		var err error
		for i := range v.Len() {
			if b, err = elem.enc(b, v.Index(i)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		for i := range v.Len() {
			if err := elem.dec(d, v.Index(i)); err != nil {
				return err
			}
		}
		return nil
	}
}

// buildMap codes a map of type t as a uvarint count and its entries, each
// an encoded key and value, in the order of their encoded keys.
func buildMap(c *coder, t reflect.Type) {
	key, val := compileLocked(t.Key()), compileLocked(t.Elem())
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		type kv struct{ k, v []byte }
		entries := make([]kv, 0, v.Len())
		it := v.MapRange()
		for it.Next() {
			kb, err := key.enc(nil, it.Key())
			if err != nil {
				return nil, err
			}
			vb, err := val.enc(nil, it.Value())
			if err != nil {
				return nil, err
			}
			entries = append(entries, kv{kb, vb})
		}
		// NB: sorted by encoded key, so that equal maps give equal bytes.
		slices.SortFunc(entries, func(a, b kv) int { return bytes.Compare(a.k, b.k) })
		b = binary.AppendUvarint(b, uint64(len(entries)))
		for _, e := range entries {
			b = append(append(b, e.k...), e.v...)
		}
		return b, nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		n, err := d.count(1)
		if err != nil {
			return err
		}
		m := reflect.MakeMapWithSize(t, n)
		for range n {
			k := reflect.New(t.Key()).Elem()
			if err := key.dec(d, k); err != nil {
				return err
			}
			e := reflect.New(t.Elem()).Elem()
			if err := val.dec(d, e); err != nil {
				return err
			}
			m.SetMapIndex(k, e)
		}
		v.Set(m)
		return nil
	}
}

// buildPointer codes a pointer of type t as a presence byte, 0 for nil and
// 1 for a pointer followed by the value it points to.
func buildPointer(c *coder, t reflect.Type) {
	elem := compileLocked(t.Elem())
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		if v.IsNil() {
			return append(b, 0), nil
		}
		return elem.enc(append(b, 1), v.Elem())
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		x, err := d.take(1)
		if err != nil {
			return err
		}
		switch x[0] {
		case 0:
			v.SetZero()
			return nil
		case 1:
			p := reflect.New(t.Elem())
			if err := elem.dec(d, p.Elem()); err != nil {
				return err
			}
			v.Set(p)
			return nil
		}
		return fmt.Errorf("%w: bad pointer flag %d", ErrCodec, x[0])
	}
}

// buildStruct codes a struct of type t as its exported fields in order;
// unexported fields are skipped.
func buildStruct(c *coder, t reflect.Type) {
	type field struct {
		index int
		c     *coder
	}
	var fields []field
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		fields = append(fields, field{i, compileLocked(f.Type)})
	}
	c.enc = func(b []byte, v reflect.Value) ([]byte, error) {
		var err error
		for _, f := range fields {
			if b, err = f.c.enc(b, v.Field(f.index)); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	c.dec = func(d *decoder, v reflect.Value) error {
		for _, f := range fields {
			if err := f.c.dec(d, v.Field(f.index)); err != nil {
				return err
			}
		}
		return nil
	}
}
