// Package kvmap is a replicated string map on one stream of a corfu log,
// after Tango's objects: every Put is an entry appended to the map's stream,
// and every replica of the map (one per process, say) rebuilds the same state
// by applying the stream's entries in log order. Get syncs with the log's
// tail first, so it sees every Put acknowledged before it started: reads are
// linearizable because the log is.
package kvmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/corfulog/corfu/corfu"
)

// ErrCorrupt reports a stream entry that is not a map update.
var ErrCorrupt = errors.New("kvmap: corrupt update")

// Map is one replica of the map. It is not safe for concurrent use; give
// each goroutine its own Map on the same stream, or guard it.
type Map struct {
	client *corfu.Client
	stream *corfu.Stream
	state  map[string]string
}

// New returns a replica of the map stored on stream id, reading it from
// the start of the log.
func New(c *corfu.Client, id corfu.StreamID) *Map {
	return &Map{client: c, stream: c.Stream(id, 0), state: map[string]string{}}
}

// Put sets key to value by appending an update to the map's stream. It
// returns once the update is in the log; other replicas see it on their next
// Get. Its errors are Append's.
func (m *Map) Put(ctx context.Context, key, value string) error {
	_, err := m.stream.Append(ctx, EncodeUpdate(key, value))
	return err
}

// Get syncs the replica with the log and returns key's value.
func (m *Map) Get(ctx context.Context, key string) (string, bool, error) {
	if err := m.Sync(ctx); err != nil {
		return "", false, err
	}
	v, ok := m.state[key]
	return v, ok, nil
}

// Len syncs the replica with the log and returns the number of keys.
func (m *Map) Len(ctx context.Context) (int, error) {
	if err := m.Sync(ctx); err != nil {
		return 0, err
	}
	return len(m.state), nil
}

// Sync applies every update appended to the stream since the last Sync.
func (m *Map) Sync(ctx context.Context) error {
	entries, err := m.stream.Sync(ctx)
	if err != nil {
		return err
	}
	for _, e := range entries {
		k, v, err := DecodeUpdate(e.Data)
		if err != nil {
			return fmt.Errorf("%w at address %d: %v", ErrCorrupt, e.Address, err)
		}
		m.state[k] = v
	}
	return nil
}

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
