package storage_test

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/storagetest"
)

func TestMemoryConformance(t *testing.T) {
	storagetest.Run(t, func(*testing.T) storage.Unit { return storage.NewMemory() })
}

func TestStateString(t *testing.T) {
	tests := []struct {
		s    storage.State
		want string
	}{
		{storage.StateUnwritten, "unwritten"},
		{storage.StateData, "data"},
		{storage.StateJunk, "junk"},
		{storage.StateTrimmed, "trimmed"},
		{storage.State(200), "State(200)"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.s.String())
		})
	}
}

func TestMemoryNew(t *testing.T) {
	m := storage.NewMemory()
	assert.Equal(t, storage.Epoch(0), m.Epoch())
	assert.Equal(t, storage.Address(0), m.TrimMark())
	assert.Equal(t, storage.Address(0), m.Tail())
	assert.Zero(t, m.StoredBytes())
	m.Ascend(func(storage.Address, storage.State, []byte) bool {
		t.Error("a new unit stores nothing")
		return true
	})
}

func TestMemoryInspect(t *testing.T) {
	ctx := t.Context()
	m := storage.NewMemory()
	require.NoError(t, m.Write(ctx, 0, 1, []byte("one")))
	require.NoError(t, m.Write(ctx, 0, 2, []byte{}))
	require.NoError(t, m.Fill(ctx, 0, 3))
	require.NoError(t, m.Write(ctx, 0, 4, []byte("four")))
	require.NoError(t, m.Trim(ctx, 0, 4))
	require.NoError(t, m.Trim(ctx, 0, 9)) // never written
	require.NoError(t, m.Write(ctx, 0, 10, []byte("ten")))
	_, err := m.Seal(ctx, 3)
	require.NoError(t, err)

	tests := []struct {
		name  string
		addr  storage.Address
		state storage.State
		data  []byte
	}{
		{name: "unwritten", addr: 0, state: storage.StateUnwritten},
		{name: "data", addr: 1, state: storage.StateData, data: []byte("one")},
		{name: "empty data", addr: 2, state: storage.StateData, data: []byte{}},
		{name: "junk", addr: 3, state: storage.StateJunk},
		{name: "trimmed data", addr: 4, state: storage.StateTrimmed},
		{name: "trimmed hole", addr: 9, state: storage.StateTrimmed},
		{name: "after a sealed epoch", addr: 10, state: storage.StateData, data: []byte("ten")},
		{name: "beyond the tail", addr: 11, state: storage.StateUnwritten},
		{name: "invalid address", addr: storage.MaxAddress, state: storage.StateUnwritten},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, data := m.Inspect(tt.addr)
			assert.Equal(t, tt.state, s)
			assert.Equal(t, tt.data, data)
		})
	}

	assert.Equal(t, storage.Epoch(3), m.Epoch())
	assert.Equal(t, storage.Address(11), m.Tail())
	assert.Equal(t, len("one")+len("ten"), m.StoredBytes())

	t.Run("returns a copy", func(t *testing.T) {
		_, data := m.Inspect(1)
		copy(data, "XXX")
		_, data = m.Inspect(1)
		assert.Equal(t, []byte("one"), data)
	})

	t.Run("does not mutate", func(t *testing.T) {
		// Inspecting a hole does not fill it, and no epoch was needed.
		m.Inspect(0)
		require.NoError(t, m.Write(ctx, 3, 0, []byte("zero")))
		s, data := m.Inspect(0)
		assert.Equal(t, storage.StateData, s)
		assert.Equal(t, []byte("zero"), data)
	})
}

func TestMemoryTrimFreesBytes(t *testing.T) {
	ctx := t.Context()
	m := storage.NewMemory()
	for a := range storage.Address(10) {
		require.NoError(t, m.Write(ctx, 0, a, make([]byte, 100)))
	}
	require.Equal(t, 1000, m.StoredBytes())

	require.NoError(t, m.Trim(ctx, 0, 7))
	assert.Equal(t, 900, m.StoredBytes())
	require.NoError(t, m.Trim(ctx, 0, 7))
	assert.Equal(t, 900, m.StoredBytes(), "trimming twice frees once")

	require.NoError(t, m.PrefixTrim(ctx, 0, 5))
	assert.Equal(t, 400, m.StoredBytes())
	assert.Equal(t, storage.Address(5), m.TrimMark())

	require.NoError(t, m.PrefixTrim(ctx, 0, 2))
	assert.Equal(t, storage.Address(5), m.TrimMark(), "the mark only moves up")

	// Below the mark nothing is stored, not even tombstones.
	var addrs []storage.Address
	m.Ascend(func(a storage.Address, _ storage.State, _ []byte) bool {
		addrs = append(addrs, a)
		return true
	})
	assert.Equal(t, []storage.Address{5, 6, 7, 8, 9}, addrs)

	require.NoError(t, m.PrefixTrim(ctx, 0, 100))
	assert.Zero(t, m.StoredBytes())
	assert.Equal(t, storage.Address(100), m.Tail(), "trimming consumes what it trims: the tail rises to the mark")
	m.Ascend(func(a storage.Address, _ storage.State, _ []byte) bool {
		t.Errorf("address %d still stored after trimming everything", a)
		return true
	})
}

func TestMemoryAscend(t *testing.T) {
	ctx := t.Context()
	m := storage.NewMemory()
	// Insert out of order.
	require.NoError(t, m.Write(ctx, 0, 40, []byte("forty")))
	require.NoError(t, m.Fill(ctx, 0, 30))
	require.NoError(t, m.Write(ctx, 0, 10, []byte("ten")))
	require.NoError(t, m.Trim(ctx, 0, 20))
	require.NoError(t, m.Write(ctx, 0, 5, []byte("five")))
	require.NoError(t, m.PrefixTrim(ctx, 0, 6))

	type item struct {
		addr  storage.Address
		state storage.State
		data  string
	}
	var got []item
	m.Ascend(func(a storage.Address, s storage.State, data []byte) bool {
		if s != storage.StateData {
			assert.Nil(t, data, "address %d", a)
		}
		got = append(got, item{a, s, string(data)})
		copy(data, "XX") // the callback gets a copy
		return true
	})
	assert.Equal(t, []item{
		{10, storage.StateData, "ten"},
		{20, storage.StateTrimmed, ""},
		{30, storage.StateJunk, ""},
		{40, storage.StateData, "forty"},
	}, got)
	_, data := m.Inspect(10)
	assert.Equal(t, []byte("ten"), data)

	t.Run("stops early", func(t *testing.T) {
		var n int
		m.Ascend(func(storage.Address, storage.State, []byte) bool {
			n++
			return n < 2
		})
		assert.Equal(t, 2, n)
	})
}

func TestMemorySealMovesEpoch(t *testing.T) {
	ctx := t.Context()
	m := storage.NewMemory()
	for _, e := range []storage.Epoch{0, 1, 1, 5} {
		_, err := m.Seal(ctx, e)
		require.NoError(t, err)
		assert.Equal(t, e, m.Epoch())
	}
	_, err := m.Seal(ctx, 4)
	var se *storage.SealedError
	require.ErrorAs(t, err, &se)
	assert.Equal(t, storage.Epoch(5), se.Epoch)
	assert.Equal(t, storage.Epoch(5), m.Epoch())
}

func BenchmarkMemoryWrite(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ctx := b.Context()
			m := storage.NewMemory()
			data := make([]byte, size)
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var a storage.Address
			for b.Loop() {
				if err := m.Write(ctx, 0, a, data); err != nil {
					b.Fatal(err)
				}
				a++
			}
		})
	}
}

func BenchmarkMemoryRead(b *testing.B) {
	const n = 1 << 16
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("%dB", size), func(b *testing.B) {
			ctx := b.Context()
			m := storage.NewMemory()
			data := make([]byte, size)
			for a := range storage.Address(n) {
				if err := m.Write(ctx, 0, a, data); err != nil {
					b.Fatal(err)
				}
			}
			b.SetBytes(int64(size))
			b.ReportAllocs()
			var a storage.Address
			for b.Loop() {
				if _, err := m.Read(ctx, 0, a%n); err != nil {
					b.Fatal(err)
				}
				a++
			}
		})
	}
}

// TestTrimRaisesSealTail: a trimmed address is consumed, written or not:
// the tail a seal reports covers it, so a sequencer rebuilt from the units'
// tails (its own state lost) never hands out an address no write can take.
func TestTrimRaisesSealTail(t *testing.T) {
	ctx := t.Context()
	m := storage.NewMemory()
	require.NoError(t, m.Write(ctx, 0, 0, []byte("x")))
	require.NoError(t, m.Trim(ctx, 0, 6))
	tail, err := m.Seal(ctx, 1)
	require.NoError(t, err)
	require.Equal(t, storage.Address(7), tail, "a sparse trim above the written tail")
	require.NoError(t, m.PrefixTrim(ctx, 1, 20))
	tail, err = m.Seal(ctx, 2)
	require.NoError(t, err)
	require.Equal(t, storage.Address(20), tail, "a prefix trim above the written tail")
}
