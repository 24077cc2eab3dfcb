package corfu_test

import (
	"encoding/binary"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
)

func TestReadCorruptEntry(t *testing.T) {
	uv := func(b []byte, v uint64) []byte { return binary.AppendUvarint(b, v) }
	// h prefixes b with the version and an identity (writer 9, seq 1).
	h := func(b ...byte) []byte { return append([]byte{2, 9, 1}, b...) }
	manyStreams := uv(h(), 65)
	for i := range 65 {
		manyStreams = uv(uv(manyStreams, uint64(i)), 0)
	}
	manyBackpointers := uv(uv(uv(h(), 1), 9), corfu.MaxBackpointers+1)
	for i := range corfu.MaxBackpointers + 1 {
		manyBackpointers = uv(manyBackpointers, uint64(i))
	}
	tests := []struct {
		name string
		raw  []byte
	}{
		{name: "empty", raw: []byte{}},
		{name: "unknown version", raw: []byte{3, 9, 1, 0, 'x'}},
		{name: "old version without identity", raw: []byte{1, 0, 'x'}},
		{name: "no writer", raw: []byte{2}},
		{name: "no sequence number", raw: []byte{2, 9}},
		{name: "truncated writer", raw: []byte{2, 0x80}},
		{name: "version zero", raw: []byte{0, 0}},
		{name: "no stream count", raw: h()},
		{name: "overlong stream count", raw: h(0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01)},
		{name: "too many streams", raw: manyStreams},
		{name: "truncated stream id", raw: h(1, 0x80)},
		{name: "no backpointer count", raw: h(1, 7)},
		{name: "too many backpointers", raw: manyBackpointers},
		{name: "backpointers past the end", raw: h(1, 7, 3, 1)},
		{name: "truncated backpointer", raw: h(1, 7, 1, 0x80)},
		{name: "backpointer at max address", raw: uv(h(1, 7, 1), uint64(storage.MaxAddress))},
		{name: "second stream missing", raw: h(2, 7, 0)},
	}
	e := newEnv(t, corfutest.Options{}, nil)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.token(1)
			for _, r := range e.chain(a) {
				require.NoError(t, r.unit.Write(e.ctx, 0, r.local, tt.raw))
			}
			var err error
			require.NotPanics(t, func() { _, err = e.c.Read(e.ctx, a) })
			require.ErrorIs(t, err, corfu.ErrCorruptEntry)
			assert.Contains(t, err.Error(), "address")
		})
	}

	t.Run("stream reader", func(t *testing.T) {
		a := e.token(1, 5)
		for _, r := range e.chain(a) {
			require.NoError(t, r.unit.Write(e.ctx, 0, r.local, []byte{9, 9}))
		}
		_, err := e.c.Stream(5, 0).Sync(e.ctx)
		require.ErrorIs(t, err, corfu.ErrCorruptEntry)
	})

	t.Run("valid entries decode", func(t *testing.T) {
		for name, raw := range map[string][]byte{
			"no streams":        {2, 9, 1, 0, 'o', 'k'},
			"no streams, empty": {2, 9, 2, 0},
			"stream, no bps":    {2, 9, 3, 1, 7, 0, 'x'},
			"stream with bps":   {2, 9, 4, 1, 7, 2, 5, 3, 'y'},
		} {
			a := e.token(1)
			for _, r := range e.chain(a) {
				require.NoError(t, r.unit.Write(e.ctx, 0, r.local, raw))
			}
			_, err := e.c.Read(e.ctx, a)
			assert.NoError(t, err, name)
		}
	})
}
