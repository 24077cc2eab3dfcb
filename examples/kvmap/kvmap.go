// Package kvmap is a replicated string map on one stream of a corfu log,
// after Tango's objects, built on the object runtime of package tango:
// every Put is an entry appended to the map's stream, and every replica of
// the map (one per process, say) rebuilds the same state by applying the
// stream's entries in log order. Get syncs with the log's tail first, so it
// sees every Put acknowledged before it started: reads are linearizable
// because the log is.
//
// Its entries are plain updates in a layout of its own (EncodeUpdate), so
// that tools reading the log decode them without the runtime.
package kvmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/examples/tango"
	"github.com/corfulog/corfu/storage"
)

// ErrCorrupt reports a stream entry that is not a map update. A replica
// reports each such entry once, from the Sync (or Get, or Len) that meets
// it, and steps over it.
var ErrCorrupt = tango.ErrCorrupt

// Map is one replica of the map. It is safe for concurrent use.
type Map struct {
	rt  *tango.Runtime
	obj *tango.Object[map[string]string, update]
}

// update is a Put of Value at Key.
type update struct{ Key, Value string }

// updateCodec lays updates out as EncodeUpdate does.
type updateCodec struct{}

func (updateCodec) Encode(u update) ([]byte, error) { return EncodeUpdate(u.Key, u.Value), nil }

func (updateCodec) Decode(b []byte) (update, error) {
	k, v, err := DecodeUpdate(b)
	if err != nil {
		return update{}, fmt.Errorf("kvmap: %w", err)
	}
	return update{k, v}, nil
}

// New returns a replica of the map stored on stream id, reading it from
// the start of the log; if it meets updates trimmed there, it starts again
// from the map's latest checkpoint (see Checkpoint). id must be between 1
// and tango.MaxObjectID; New panics otherwise.
func New(c *corfu.Client, id corfu.StreamID) *Map {
	rt := tango.New(c, tango.Options{FromLogStart: true})
	obj, err := tango.NewObject(rt, tango.Spec[map[string]string, update]{
		ID:    id,
		Init:  func() map[string]string { return map[string]string{} },
		Apply: func(s *map[string]string, u update) { (*s)[u.Key] = u.Value },
		Keys:  func(u update) []string { return []string{u.Key} },
		Ops:   updateCodec{},
		Clone: func(s map[string]string) map[string]string {
			c := make(map[string]string, len(s))
			for k, v := range s {
				c[k] = v
			}
			return c
		},
	})
	if err != nil {
		panic(err)
	}
	return &Map{rt: rt, obj: obj}
}

// Runtime returns the runtime the replica lives in, for transactions.
func (m *Map) Runtime() *tango.Runtime { return m.rt }

// Checkpoint writes the replica's map into the log (tango.Runtime.Checkpoint)
// and returns the position it holds the map as of.
func (m *Map) Checkpoint(ctx context.Context) (storage.Address, error) { return m.rt.Checkpoint(ctx) }

// Trim prefix-trims the log below the map's latest checkpoint
// (tango.Runtime.Trim), and returns the mark. It trims every stream of the
// log: only for a log that holds this map alone.
func (m *Map) Trim(ctx context.Context) (storage.Address, error) { return m.rt.Trim(ctx) }

// Put sets key to value by appending an update to the map's stream. It
// returns once the update is in the log; other replicas see it on their next
// Get. Its errors are Append's.
func (m *Map) Put(ctx context.Context, key, value string) error {
	return m.obj.Update(ctx, update{key, value})
}

// Get syncs the replica with the log and returns key's value. Its errors
// are Sync's.
func (m *Map) Get(ctx context.Context, key string) (value string, ok bool, err error) {
	err = m.obj.QueryKey(ctx, key, func(s map[string]string) { value, ok = s[key] })
	return value, ok, err
}

// Len syncs the replica with the log and returns the number of keys. Its
// errors are Sync's.
func (m *Map) Len(ctx context.Context) (n int, err error) {
	err = m.obj.Query(ctx, func(s map[string]string) { n = len(s) })
	return n, err
}

// Sync applies every update appended to the stream since the last Sync.
// Its errors are those of tango.Runtime.Sync: the log's, and ErrCorrupt
// (once per entry that is not a map update).
func (m *Map) Sync(ctx context.Context) error { return m.rt.Sync(ctx) }

// EncodeUpdate returns the entry payload of a Put of key and value: the
// key's length (uvarint), the key, the value. A tool that checks a log
// against its maps decodes it with DecodeUpdate.
func EncodeUpdate(key, value string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(key)))
	b = append(b, key...)
	return append(b, value...)
}

// DecodeUpdate parses an entry payload that EncodeUpdate made.
func DecodeUpdate(b []byte) (key, value string, err error) {
	n, w := binary.Uvarint(b)
	if w <= 0 || n > uint64(len(b)-w) {
		return "", "", errors.New("bad key length")
	}
	return string(b[w : w+int(n)]), string(b[w+int(n):]), nil
}
