// Package storagetest provides a conformance suite for storage.Unit
// implementations: the in-memory unit and the transport stubs that reach a
// unit over a network run the same Run (as every later implementation
// must), so that errors.Is gives the same answer through every path.
package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
)

// Run runs the conformance suite as subtests of t. Every subtest calls newUnit
// once and expects a fresh, empty unit at epoch 0 that is its own; newUnit
// should register any cleanup with t.Cleanup. The suite uses only the
// storage.Unit interface. Some subtests call the unit from several goroutines
// at once, as the interface allows.
func Run(t *testing.T, newUnit func(t *testing.T) storage.Unit) {
	t.Helper()
	s := suite{newUnit: newUnit}
	t.Run("WriteRead", s.testWriteRead)
	t.Run("Errors", s.testErrors)
	t.Run("InvalidAddress", s.testInvalidAddress)
	t.Run("PrefixTrim", s.testPrefixTrim)
	t.Run("Seal", s.testSeal)
	t.Run("StaleEpoch", s.testStaleEpoch)
	t.Run("FutureEpoch", s.testFutureEpoch)
	t.Run("Aliasing", s.testAliasing)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("ManyAddresses", s.testManyAddresses)
	t.Run("WriteBatch", s.testWriteBatch)
}

type suite struct {
	newUnit func(t *testing.T) storage.Unit
}

// kind names one method of storage.Unit.
type kind uint8

const (
	kindWrite kind = iota
	kindRead
	kindFill
	kindTrim
	kindPrefixTrim
	kindSeal
)

func (k kind) String() string {
	return [...]string{"Write", "Read", "Fill", "Trim", "PrefixTrim", "Seal"}[k]
}

// op is one call on a unit, so that tables can list setups and requests.
type op struct {
	kind  kind
	epoch storage.Epoch
	addr  storage.Address
	data  []byte
}

func (o op) String() string {
	switch o.kind {
	case kindSeal:
		return fmt.Sprintf("Seal(epoch=%d)", o.epoch)
	case kindWrite:
		return fmt.Sprintf("Write(epoch=%d, addr=%d, %d bytes)", o.epoch, o.addr, len(o.data))
	default:
		return fmt.Sprintf("%v(epoch=%d, addr=%d)", o.kind, o.epoch, o.addr)
	}
}

func write(e storage.Epoch, a storage.Address, data []byte) op {
	return op{kind: kindWrite, epoch: e, addr: a, data: data}
}
func read(e storage.Epoch, a storage.Address) op { return op{kind: kindRead, epoch: e, addr: a} }
func fill(e storage.Epoch, a storage.Address) op { return op{kind: kindFill, epoch: e, addr: a} }
func trim(e storage.Epoch, a storage.Address) op { return op{kind: kindTrim, epoch: e, addr: a} }
func prefixTrim(e storage.Epoch, a storage.Address) op {
	return op{kind: kindPrefixTrim, epoch: e, addr: a}
}
func seal(e storage.Epoch) op { return op{kind: kindSeal, epoch: e} }

// allOps returns one request of every kind at epoch e and addr, writing data.
func allOps(e storage.Epoch, addr storage.Address, data []byte) []op {
	return []op{write(e, addr, data), read(e, addr), fill(e, addr), trim(e, addr), prefixTrim(e, addr), seal(e)}
}

// apply performs o on u. It returns the data of a read and the tail of a seal.
func apply(ctx context.Context, u storage.Unit, o op) (data []byte, tail storage.Address, err error) {
	switch o.kind {
	case kindWrite:
		err = u.Write(ctx, o.epoch, o.addr, o.data)
	case kindRead:
		data, err = u.Read(ctx, o.epoch, o.addr)
	case kindFill:
		err = u.Fill(ctx, o.epoch, o.addr)
	case kindTrim:
		err = u.Trim(ctx, o.epoch, o.addr)
	case kindPrefixTrim:
		err = u.PrefixTrim(ctx, o.epoch, o.addr)
	case kindSeal:
		tail, err = u.Seal(ctx, o.epoch)
	}
	return data, tail, err
}

// setup applies ops to u and stops the test if any fails.
func setup(t *testing.T, u storage.Unit, ops ...op) {
	t.Helper()
	for _, o := range ops {
		_, _, err := apply(t.Context(), u, o)
		require.NoError(t, err, "setup %v", o)
	}
}

// want is the expected outcome of reading addr at epoch: data, or an error.
type want struct {
	epoch storage.Epoch
	addr  storage.Address
	data  []byte
	err   error
}

// check reads every w from u and reports each mismatch.
func check(t *testing.T, u storage.Unit, ws ...want) {
	t.Helper()
	for _, w := range ws {
		got, err := u.Read(t.Context(), w.epoch, w.addr)
		if w.err != nil {
			assert.ErrorIs(t, err, w.err, "read addr %d at epoch %d", w.addr, w.epoch)
			assert.Nil(t, got, "read addr %d at epoch %d returned data with an error", w.addr, w.epoch)
			continue
		}
		if assert.NoError(t, err, "read addr %d at epoch %d", w.addr, w.epoch) {
			assert.Equal(t, w.data, got, "read addr %d at epoch %d", w.addr, w.epoch)
			assert.NotNil(t, got, "read addr %d at epoch %d returned nil data", w.addr, w.epoch)
		}
	}
}

func has(e storage.Epoch, a storage.Address, data string) want {
	return want{epoch: e, addr: a, data: []byte(data)}
}

func fails(e storage.Epoch, a storage.Address, err error) want {
	return want{epoch: e, addr: a, err: err}
}

// payload returns n bytes that differ from address to address.
func payload(addr storage.Address, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(uint64(addr)*31 + uint64(i)*7)
	}
	return b
}

func (s suite) testWriteRead(t *testing.T) {
	tests := []struct {
		name string
		addr storage.Address
		data []byte
	}{
		{name: "small", addr: 0, data: []byte("hello")},
		{name: "binary", addr: 1, data: []byte{0, 0xff, 0, 0x80, 0}},
		{name: "empty", addr: 2, data: []byte{}},
		{name: "one byte", addr: 3, data: []byte{0}},
		{name: "max entry", addr: 4, data: payload(4, storage.MaxEntryBytes)},
		{name: "high address", addr: 1 << 40, data: []byte("far")},
		{name: "last valid address", addr: storage.MaxAddress - 1, data: []byte("end")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := s.newUnit(t)
			require.NoError(t, u.Write(t.Context(), 0, tt.addr, tt.data))
			got, err := u.Read(t.Context(), 0, tt.addr)
			require.NoError(t, err)
			require.NotNil(t, got, "an entry never reads back as nil")
			require.True(t, bytes.Equal(tt.data, got), "read back %d bytes, wrote %d", len(got), len(tt.data))
			// Reading does not consume anything.
			again, err := u.Read(t.Context(), 0, tt.addr)
			require.NoError(t, err)
			require.True(t, bytes.Equal(tt.data, again))
		})
	}
}

func (s suite) testErrors(t *testing.T) {
	a, b := []byte("a"), []byte("b")
	tests := []struct {
		name  string
		setup []op
		do    op
		want  error // nil for success
		or    error // another acceptable error, when the contract does not order two checks
		then  []want
	}{
		{name: "write twice", setup: []op{write(0, 7, a)}, do: write(0, 7, b), want: storage.ErrWritten,
			then: []want{has(0, 7, "a")}},
		{name: "write same bytes twice", setup: []op{write(0, 7, a)}, do: write(0, 7, a), want: storage.ErrWritten,
			then: []want{has(0, 7, "a")}},
		{name: "write after fill", setup: []op{fill(0, 7)}, do: write(0, 7, a), want: storage.ErrWritten,
			then: []want{fails(0, 7, storage.ErrJunk)}},
		{name: "fill after write", setup: []op{write(0, 7, a)}, do: fill(0, 7), want: storage.ErrWritten,
			then: []want{has(0, 7, "a")}},
		{name: "fill twice", setup: []op{fill(0, 7)}, do: fill(0, 7),
			then: []want{fails(0, 7, storage.ErrJunk)}},
		{name: "fill unwritten", do: fill(0, 7),
			then: []want{fails(0, 7, storage.ErrJunk), fails(0, 6, storage.ErrUnwritten), fails(0, 8, storage.ErrUnwritten)}},
		{name: "read unwritten", do: read(0, 7), want: storage.ErrUnwritten},
		{name: "read beside written", setup: []op{write(0, 7, a)}, do: read(0, 8), want: storage.ErrUnwritten,
			then: []want{fails(0, 6, storage.ErrUnwritten)}},
		{name: "read junk", setup: []op{fill(0, 7)}, do: read(0, 7), want: storage.ErrJunk},
		{name: "trim then read", setup: []op{write(0, 7, a), trim(0, 7)}, do: read(0, 7), want: storage.ErrTrimmed},
		{name: "trim then write", setup: []op{write(0, 7, a), trim(0, 7)}, do: write(0, 7, b), want: storage.ErrTrimmed,
			then: []want{fails(0, 7, storage.ErrTrimmed)}},
		{name: "trim then fill", setup: []op{write(0, 7, a), trim(0, 7)}, do: fill(0, 7), want: storage.ErrTrimmed,
			then: []want{fails(0, 7, storage.ErrTrimmed)}},
		{name: "trim unwritten then write", setup: []op{trim(0, 7)}, do: write(0, 7, a), want: storage.ErrTrimmed,
			then: []want{fails(0, 7, storage.ErrTrimmed)}},
		{name: "trim unwritten then fill", setup: []op{trim(0, 7)}, do: fill(0, 7), want: storage.ErrTrimmed},
		{name: "trim junk then read", setup: []op{fill(0, 7), trim(0, 7)}, do: read(0, 7), want: storage.ErrTrimmed},
		{name: "trim twice", setup: []op{write(0, 7, a), trim(0, 7)}, do: trim(0, 7),
			then: []want{fails(0, 7, storage.ErrTrimmed)}},
		{name: "trim spares neighbours", setup: []op{write(0, 6, a), write(0, 7, a), write(0, 8, b)}, do: trim(0, 7),
			then: []want{has(0, 6, "a"), fails(0, 7, storage.ErrTrimmed), has(0, 8, "b")}},
		{name: "read below prefix trim", setup: []op{write(0, 3, a), prefixTrim(0, 5)}, do: read(0, 3), want: storage.ErrTrimmed},
		{name: "read unwritten below prefix trim", setup: []op{prefixTrim(0, 5)}, do: read(0, 4), want: storage.ErrTrimmed},
		{name: "write below prefix trim", setup: []op{prefixTrim(0, 5)}, do: write(0, 4, a), want: storage.ErrTrimmed,
			then: []want{fails(0, 4, storage.ErrTrimmed)}},
		{name: "fill below prefix trim", setup: []op{prefixTrim(0, 5)}, do: fill(0, 0), want: storage.ErrTrimmed,
			then: []want{fails(0, 0, storage.ErrTrimmed)}},
		{name: "trim below prefix trim", setup: []op{prefixTrim(0, 5)}, do: trim(0, 2),
			then: []want{fails(0, 2, storage.ErrTrimmed)}},
		{name: "write at prefix trim mark", setup: []op{prefixTrim(0, 5)}, do: write(0, 5, a),
			then: []want{has(0, 5, "a"), fails(0, 4, storage.ErrTrimmed)}},
		{name: "read at prefix trim mark", setup: []op{write(0, 4, a), write(0, 5, b), prefixTrim(0, 5)}, do: read(0, 5),
			then: []want{fails(0, 4, storage.ErrTrimmed), has(0, 5, "b")}},
		{name: "oversize entry", do: write(0, 7, make([]byte, storage.MaxEntryBytes+1)), want: storage.ErrTooLarge,
			then: []want{fails(0, 7, storage.ErrUnwritten)}},
		{name: "nil data", do: write(0, 7, nil), want: storage.ErrNilData,
			then: []want{fails(0, 7, storage.ErrUnwritten)}},
		{name: "nil data on written address", setup: []op{write(0, 7, a)}, do: write(0, 7, nil),
			want: storage.ErrNilData, or: storage.ErrWritten, then: []want{has(0, 7, "a")}},
		{name: "empty data", do: write(0, 7, []byte{}),
			then: []want{{epoch: 0, addr: 7, data: []byte{}}}},
		{name: "empty data then write", setup: []op{write(0, 7, []byte{})}, do: write(0, 7, a), want: storage.ErrWritten,
			then: []want{{epoch: 0, addr: 7, data: []byte{}}}},
		{name: "empty data then fill", setup: []op{write(0, 7, []byte{})}, do: fill(0, 7), want: storage.ErrWritten},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := s.newUnit(t)
			setup(t, u, tt.setup...)
			data, _, err := apply(t.Context(), u, tt.do)
			switch {
			case tt.want == nil:
				assert.NoError(t, err, "%v", tt.do)
			case tt.or != nil && errors.Is(err, tt.or):
			default:
				assert.ErrorIs(t, err, tt.want, "%v", tt.do)
			}
			if err != nil {
				assert.Nil(t, data, "%v returned data with an error", tt.do)
			}
			check(t, u, tt.then...)
		})
	}
}

func (s suite) testInvalidAddress(t *testing.T) {
	for _, addr := range []storage.Address{storage.MaxAddress, storage.MaxAddress + 1, math.MaxUint64} {
		for _, o := range allOps(0, addr, []byte("x")) {
			if o.kind == kindSeal {
				continue // Seal takes no address.
			}
			t.Run(o.String(), func(t *testing.T) {
				u := s.newUnit(t)
				data, _, err := apply(t.Context(), u, o)
				require.ErrorIs(t, err, storage.ErrInvalidAddress)
				require.Nil(t, data)
				tail, err := u.Seal(t.Context(), 0)
				require.NoError(t, err)
				require.Zero(t, tail, "a rejected request must not move the tail")
			})
		}
	}
	t.Run("last valid address", func(t *testing.T) {
		u := s.newUnit(t)
		last := storage.MaxAddress - 1
		setup(t, u, write(0, last, []byte("x")), fill(0, last-1), trim(0, last-2))
		check(t, u, has(0, last, "x"), fails(0, last-1, storage.ErrJunk), fails(0, last-2, storage.ErrTrimmed))
		require.NoError(t, u.PrefixTrim(t.Context(), 0, last))
		check(t, u, has(0, last, "x"), fails(0, last-1, storage.ErrTrimmed))
	})
}

func (s suite) testPrefixTrim(t *testing.T) {
	// dense returns writes of n entries from 0 at epoch 0.
	dense := func(n int) []op {
		ops := make([]op, n)
		for i := range ops {
			ops[i] = write(0, storage.Address(i), payload(storage.Address(i), 8))
		}
		return ops
	}
	entry := func(a storage.Address) want { return want{addr: a, data: payload(a, 8)} }
	trimmed := func(a storage.Address) want { return fails(0, a, storage.ErrTrimmed) }

	tests := []struct {
		name  string
		setup []op
		trims []storage.Address // prefix trims, in order
		then  []want
	}{
		{name: "below and above", setup: dense(20), trims: []storage.Address{10},
			then: []want{trimmed(0), trimmed(9), entry(10), entry(19), fails(0, 20, storage.ErrUnwritten)}},
		{name: "mark only moves up", setup: dense(20), trims: []storage.Address{10, 5},
			then: []want{trimmed(5), trimmed(9), entry(10)}},
		{name: "same mark twice", setup: dense(20), trims: []storage.Address{10, 10},
			then: []want{trimmed(9), entry(10)}},
		{name: "mark moves further up", setup: dense(20), trims: []storage.Address{10, 15},
			then: []want{trimmed(10), trimmed(14), entry(15), entry(19)}},
		{name: "zero changes nothing", setup: dense(3), trims: []storage.Address{0},
			then: []want{entry(0), entry(2)}},
		{name: "beyond what was written", setup: dense(3), trims: []storage.Address{100},
			then: []want{trimmed(0), trimmed(50), trimmed(99), fails(0, 100, storage.ErrUnwritten)}},
		{name: "junk below mark", setup: []op{fill(0, 3), fill(0, 8)}, trims: []storage.Address{5},
			then: []want{trimmed(3), fails(0, 8, storage.ErrJunk)}},
		{name: "single trim above mark stays trimmed", setup: append(dense(20), trim(0, 15)), trims: []storage.Address{10},
			then: []want{trimmed(9), entry(10), entry(14), trimmed(15), entry(16)}},
		{name: "single trim above a lower mark stays trimmed", setup: append(dense(20), prefixTrim(0, 10), trim(0, 15)),
			trims: []storage.Address{5},
			then:  []want{trimmed(9), entry(10), trimmed(15), entry(16)}},
		{name: "single trim below mark", setup: append(dense(20), trim(0, 5)), trims: []storage.Address{10},
			then: []want{trimmed(5), entry(10)}},
		{name: "single trim of unwritten above mark", setup: []op{trim(0, 30)}, trims: []storage.Address{20},
			then: []want{trimmed(19), fails(0, 20, storage.ErrUnwritten), trimmed(30), fails(0, 31, storage.ErrUnwritten)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := s.newUnit(t)
			setup(t, u, tt.setup...)
			for _, a := range tt.trims {
				require.NoError(t, u.PrefixTrim(t.Context(), 0, a), "PrefixTrim(%d)", a)
			}
			check(t, u, tt.then...)
		})
	}

	t.Run("writes and fills below mark", func(t *testing.T) {
		u := s.newUnit(t)
		setup(t, u, prefixTrim(0, 10), prefixTrim(0, 4))
		for a := storage.Address(0); a < 10; a++ {
			assert.ErrorIs(t, u.Write(t.Context(), 0, a, []byte("x")), storage.ErrTrimmed, "write %d", a)
			assert.ErrorIs(t, u.Fill(t.Context(), 0, a), storage.ErrTrimmed, "fill %d", a)
			assert.NoError(t, u.Trim(t.Context(), 0, a), "trim %d", a)
		}
		assert.NoError(t, u.Write(t.Context(), 0, 10, []byte("x")))
		assert.NoError(t, u.Fill(t.Context(), 0, 11))
	})

	t.Run("survives seal", func(t *testing.T) {
		u := s.newUnit(t)
		setup(t, u, append(dense(20), trim(0, 15), prefixTrim(0, 10), seal(1))...)
		check(t, u, fails(1, 9, storage.ErrTrimmed), want{epoch: 1, addr: 10, data: payload(10, 8)},
			fails(1, 15, storage.ErrTrimmed))
		require.NoError(t, u.PrefixTrim(t.Context(), 1, 5))
		check(t, u, fails(1, 9, storage.ErrTrimmed))
	})
}

func (s suite) testSeal(t *testing.T) {
	x := []byte("x")
	tails := []struct {
		name  string
		setup []op
		want  storage.Address
	}{
		{name: "empty", want: 0},
		{name: "write at 0", setup: []op{write(0, 0, x)}, want: 1},
		{name: "write at 9", setup: []op{write(0, 9, x)}, want: 10},
		{name: "fill counts", setup: []op{write(0, 3, x), fill(0, 12)}, want: 13},
		{name: "sparse", setup: []op{write(0, 3, x), write(0, 100, x), write(0, 7, x)}, want: 101},
		{name: "reads do not count", setup: []op{write(0, 3, x)}, want: 4},
		{name: "trim does not lower it", setup: []op{write(0, 3, x), write(0, 7, x), trim(0, 7)}, want: 8},
		{name: "prefix trim does not lower it", setup: []op{write(0, 3, x), write(0, 7, x), prefixTrim(0, 8)}, want: 8},
		{name: "trimmed junk counts", setup: []op{fill(0, 7), trim(0, 7)}, want: 8},
		{name: "last valid address", setup: []op{write(0, storage.MaxAddress-1, x)}, want: storage.MaxAddress},
	}
	for _, tt := range tails {
		t.Run("tail "+tt.name, func(t *testing.T) {
			u := s.newUnit(t)
			setup(t, u, tt.setup...)
			_, _ = u.Read(t.Context(), 0, 50) // a read must not move the tail
			got, err := u.Seal(t.Context(), 1)
			require.NoError(t, err)
			require.Equal(t, tt.want, got)
		})
	}

	t.Run("rejected requests do not move the tail", func(t *testing.T) {
		u := s.newUnit(t)
		setup(t, u, write(0, 3, x), prefixTrim(0, 2))
		assert.Error(t, u.Write(t.Context(), 0, 50, nil))
		assert.Error(t, u.Write(t.Context(), 0, 51, make([]byte, storage.MaxEntryBytes+1)))
		assert.Error(t, u.Write(t.Context(), 0, 1, x))
		assert.Error(t, u.Write(t.Context(), 1, 52, x))
		assert.Error(t, u.Fill(t.Context(), 1, 53))
		tail, err := u.Seal(t.Context(), 0)
		require.NoError(t, err)
		require.Equal(t, storage.Address(4), tail)
	})

	t.Run("idempotent", func(t *testing.T) {
		u := s.newUnit(t)
		setup(t, u, write(0, 4, x))
		for range 3 {
			tail, err := u.Seal(t.Context(), 1)
			require.NoError(t, err)
			require.Equal(t, storage.Address(5), tail)
		}
		// A seal at the current epoch reports writes made in it.
		setup(t, u, write(1, 9, x))
		tail, err := u.Seal(t.Context(), 1)
		require.NoError(t, err)
		require.Equal(t, storage.Address(10), tail)
	})

	t.Run("at epoch 0 on a new unit", func(t *testing.T) {
		u := s.newUnit(t)
		tail, err := u.Seal(t.Context(), 0)
		require.NoError(t, err)
		require.Zero(t, tail)
		setup(t, u, write(0, 0, x))
	})

	t.Run("jumps epochs", func(t *testing.T) {
		u := s.newUnit(t)
		setup(t, u, seal(7), write(7, 0, x))
		check(t, u, has(7, 0, "x"))
		var se *storage.SealedError
		require.ErrorAs(t, u.Write(t.Context(), 6, 1, x), &se)
		require.Equal(t, storage.Epoch(7), se.Epoch)
	})

	t.Run("older epoch", func(t *testing.T) {
		u := s.newUnit(t)
		setup(t, u, write(0, 2, x), seal(3))
		for _, e := range []storage.Epoch{0, 2} {
			tail, err := u.Seal(t.Context(), e)
			require.ErrorIs(t, err, storage.ErrSealed, "Seal(%d)", e)
			var se *storage.SealedError
			require.ErrorAs(t, err, &se)
			require.Equal(t, storage.Epoch(3), se.Epoch)
			require.Zero(t, tail)
		}
		// The unit is still at epoch 3.
		setup(t, u, write(3, 4, x))
		tail, err := u.Seal(t.Context(), 3)
		require.NoError(t, err)
		require.Equal(t, storage.Address(5), tail)
	})

	t.Run("keeps the address space", func(t *testing.T) {
		u := s.newUnit(t)
		setup(t, u, write(0, 0, []byte("a")), fill(0, 1), write(0, 2, []byte("c")), trim(0, 2), prefixTrim(0, 0), seal(1), seal(2))
		check(t, u, has(2, 0, "a"), fails(2, 1, storage.ErrJunk), fails(2, 2, storage.ErrTrimmed), fails(2, 3, storage.ErrUnwritten))
		assert.ErrorIs(t, u.Write(t.Context(), 2, 0, []byte("z")), storage.ErrWritten)
		assert.ErrorIs(t, u.Write(t.Context(), 2, 1, []byte("z")), storage.ErrWritten)
		assert.ErrorIs(t, u.Write(t.Context(), 2, 2, []byte("z")), storage.ErrTrimmed)
	})
}

// testStaleEpoch follows CorfuDB's checkOperationWithOldEpochFailedAfterSeal:
// once sealed, a unit refuses every request of an older epoch with the new
// epoch, never answers with data, and changes nothing.
func (s suite) testStaleEpoch(t *testing.T) {
	const sealed storage.Epoch = 2
	// Address 0 holds "a", 1 is junk, 2 was trimmed, 3 is unwritten.
	initial := []op{write(0, 0, []byte("a")), fill(0, 1), write(0, 2, []byte("c")), trim(0, 2), seal(sealed)}
	unchanged := []want{has(sealed, 0, "a"), fails(sealed, 1, storage.ErrJunk), fails(sealed, 2, storage.ErrTrimmed),
		fails(sealed, 3, storage.ErrUnwritten)}

	var ops []op
	for _, e := range []storage.Epoch{0, 1} {
		for _, addr := range []storage.Address{0, 1, 2, 3} {
			for _, o := range allOps(e, addr, []byte("z")) {
				if o.kind != kindSeal || addr == 0 {
					ops = append(ops, o)
				}
			}
		}
		// The epoch is checked before anything else.
		ops = append(ops, write(e, 3, nil), write(e, 3, make([]byte, storage.MaxEntryBytes+1)),
			write(e, storage.MaxAddress, []byte("z")), read(e, math.MaxUint64), fill(e, storage.MaxAddress),
			trim(e, storage.MaxAddress), prefixTrim(e, storage.MaxAddress))
	}
	for _, o := range ops {
		t.Run(o.String(), func(t *testing.T) {
			u := s.newUnit(t)
			setup(t, u, initial...)
			data, tail, err := apply(t.Context(), u, o)
			require.ErrorIs(t, err, storage.ErrSealed)
			var se *storage.SealedError
			require.ErrorAs(t, err, &se)
			require.Equal(t, sealed, se.Epoch, "the error carries the unit's epoch")
			require.Nil(t, data, "a stale request never gets data")
			require.Zero(t, tail)
			check(t, u, unchanged...)
			got, err := u.Seal(t.Context(), sealed)
			require.NoError(t, err)
			require.Equal(t, storage.Address(3), got)
		})
	}
}

// testFutureEpoch checks that a unit never adopts a newer epoch from anything
// but Seal.
func (s suite) testFutureEpoch(t *testing.T) {
	for _, base := range []storage.Epoch{0, 5} {
		var ops []op
		for _, e := range []storage.Epoch{base + 1, base + 1<<40} {
			for _, addr := range []storage.Address{0, 1, 3} {
				for _, o := range allOps(e, addr, []byte("z")) {
					if o.kind != kindSeal {
						ops = append(ops, o)
					}
				}
			}
			ops = append(ops, write(e, 3, nil), write(e, storage.MaxAddress, []byte("z")), read(e, math.MaxUint64))
		}
		for _, o := range ops {
			t.Run(fmt.Sprintf("at %d %v", base, o), func(t *testing.T) {
				u := s.newUnit(t)
				setup(t, u, seal(base), write(base, 0, []byte("a")), fill(base, 1))
				data, _, err := apply(t.Context(), u, o)
				require.ErrorIs(t, err, storage.ErrFutureEpoch)
				require.Nil(t, data)
				check(t, u, has(base, 0, "a"), fails(base, 1, storage.ErrJunk), fails(base, 3, storage.ErrUnwritten))
				tail, err := u.Seal(t.Context(), base) // still at base
				require.NoError(t, err)
				require.Equal(t, storage.Address(2), tail)
			})
		}
	}
}

func (s suite) testAliasing(t *testing.T) {
	t.Run("write copies its input", func(t *testing.T) {
		u := s.newUnit(t)
		in := []byte("original")
		require.NoError(t, u.Write(t.Context(), 0, 1, in))
		copy(in, "MUTATED!")
		check(t, u, has(0, 1, "original"))
	})
	t.Run("read returns a copy", func(t *testing.T) {
		u := s.newUnit(t)
		require.NoError(t, u.Write(t.Context(), 0, 1, []byte("original")))
		r1, err := u.Read(t.Context(), 0, 1)
		require.NoError(t, err)
		r2, err := u.Read(t.Context(), 0, 1)
		require.NoError(t, err)
		copy(r1, "MUTATED!")
		assert.Equal(t, []byte("original"), r2)
		check(t, u, has(0, 1, "original"))
	})
	t.Run("appending to a read", func(t *testing.T) {
		u := s.newUnit(t)
		require.NoError(t, u.Write(t.Context(), 0, 1, []byte("ab")))
		r1, err := u.Read(t.Context(), 0, 1)
		require.NoError(t, err)
		r2, err := u.Read(t.Context(), 0, 1)
		require.NoError(t, err)
		r1 = append(r1, 'c')
		r2 = append(r2, 'd')
		assert.Equal(t, []byte("abc"), r1)
		assert.Equal(t, []byte("abd"), r2)
		check(t, u, has(0, 1, "ab"))
	})
	t.Run("empty entry", func(t *testing.T) {
		u := s.newUnit(t)
		in := make([]byte, 0, 8)
		require.NoError(t, u.Write(t.Context(), 0, 1, in))
		_ = append(in, "grown"...)
		r, err := u.Read(t.Context(), 0, 1)
		require.NoError(t, err)
		_ = append(r, "grown"...)
		check(t, u, want{addr: 1, data: []byte{}})
	})
}

func (s suite) testConcurrent(t *testing.T) {
	const n = 16

	t.Run("writers to one address", func(t *testing.T) {
		u := s.newUnit(t)
		ctx := t.Context()
		errs := make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				errs[i] = u.Write(ctx, 0, 5, fmt.Appendf(nil, "writer %d", i))
			})
		}
		close(start)
		wg.Wait()

		winner := -1
		for i, err := range errs {
			if err == nil {
				require.Equal(t, -1, winner, "writers %d and %d both won", winner, i)
				winner = i
				continue
			}
			assert.ErrorIs(t, err, storage.ErrWritten, "writer %d", i)
		}
		require.NotEqual(t, -1, winner, "no writer won")
		check(t, u, has(0, 5, fmt.Sprintf("writer %d", winner)))
	})

	t.Run("writers and fillers", func(t *testing.T) {
		u := s.newUnit(t)
		ctx := t.Context()
		writeErrs, fillErrs := make([]error, n), make([]error, n)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				<-start
				writeErrs[i] = u.Write(ctx, 0, 9, fmt.Appendf(nil, "writer %d", i))
			})
			wg.Go(func() {
				<-start
				fillErrs[i] = u.Fill(ctx, 0, 9)
			})
		}
		close(start)
		wg.Wait()

		// Either one writer won and every fill found its data, or a fill won,
		// every writer found junk and every later fill succeeded.
		winner := -1
		for i, err := range writeErrs {
			if err == nil {
				require.Equal(t, -1, winner, "writers %d and %d both won", winner, i)
				winner = i
				continue
			}
			assert.ErrorIs(t, err, storage.ErrWritten, "writer %d", i)
		}
		for i, err := range fillErrs {
			if winner >= 0 {
				assert.ErrorIs(t, err, storage.ErrWritten, "fill %d after writer %d won", i, winner)
			} else {
				assert.NoError(t, err, "fill %d", i)
			}
		}
		if winner >= 0 {
			check(t, u, has(0, 9, fmt.Sprintf("writer %d", winner)))
		} else {
			check(t, u, fails(0, 9, storage.ErrJunk))
		}
	})

	t.Run("disjoint writers and readers", func(t *testing.T) {
		u := s.newUnit(t)
		ctx := t.Context()
		const per = 32
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() {
				for j := range per {
					a := storage.Address(j*n + i)
					if err := u.Write(ctx, 0, a, payload(a, 16)); err != nil {
						errs[i] = fmt.Errorf("write %d: %w", a, err)
						return
					}
					got, err := u.Read(ctx, 0, a)
					if err != nil || !bytes.Equal(got, payload(a, 16)) {
						errs[i] = fmt.Errorf("read %d: %q, %v", a, got, err)
						return
					}
				}
			})
		}
		wg.Wait()
		for i, err := range errs {
			assert.NoError(t, err, "goroutine %d", i)
		}
		tail, err := u.Seal(ctx, 0)
		require.NoError(t, err)
		require.Equal(t, storage.Address(n*per), tail)
	})

	// Invariant 5 (fencing): a write that succeeded happened before the seal,
	// so the seal's tail covers it; every other write is refused.
	t.Run("seal fences writers", func(t *testing.T) {
		u := s.newUnit(t)
		ctx := t.Context()
		const per = 32
		errs := make([][]error, n)
		var tail storage.Address
		var sealErr error
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range n {
			errs[i] = make([]error, per)
			wg.Go(func() {
				<-start
				for j := range per {
					a := storage.Address(j*n + i)
					errs[i][j] = u.Write(ctx, 0, a, payload(a, 4))
				}
			})
		}
		wg.Go(func() {
			<-start
			tail, sealErr = u.Seal(ctx, 1)
		})
		close(start)
		wg.Wait()
		require.NoError(t, sealErr)

		for i := range n {
			for j, err := range errs[i] {
				a := storage.Address(j*n + i)
				got, rerr := u.Read(ctx, 1, a)
				if err == nil {
					assert.Less(t, a, tail, "write %d succeeded but the seal's tail is %d", a, tail)
					assert.NoError(t, rerr, "read %d", a)
					assert.Equal(t, payload(a, 4), got, "read %d", a)
					continue
				}
				var se *storage.SealedError
				if assert.ErrorAs(t, err, &se, "write %d", a) {
					assert.Equal(t, storage.Epoch(1), se.Epoch)
				}
				assert.ErrorIs(t, rerr, storage.ErrUnwritten, "refused write %d left something", a)
			}
		}
	})
}

func (s suite) testManyAddresses(t *testing.T) {
	t.Run("dense", func(t *testing.T) {
		n := 1024
		if testing.Short() {
			n = 128
		}
		u := s.newUnit(t)
		ctx := t.Context()
		for i := range n {
			a := storage.Address(i)
			if i%5 == 4 {
				require.NoError(t, u.Fill(ctx, 0, a))
				continue
			}
			require.NoError(t, u.Write(ctx, 0, a, payload(a, i%64)))
		}
		for i := range n {
			a := storage.Address(i)
			got, err := u.Read(ctx, 0, a)
			if i%5 == 4 {
				require.ErrorIs(t, err, storage.ErrJunk, "read %d", a)
				continue
			}
			require.NoError(t, err, "read %d", a)
			require.Equal(t, payload(a, i%64), got, "read %d", a)
		}
		check(t, u, fails(0, storage.Address(n), storage.ErrUnwritten))

		// Trim half of it away and check both sides of the mark.
		half := storage.Address(n / 2)
		require.NoError(t, u.PrefixTrim(ctx, 0, half))
		check(t, u, fails(0, 0, storage.ErrTrimmed), fails(0, half-1, storage.ErrTrimmed),
			want{addr: half + 1, data: payload(half+1, int(half+1)%64)})

		tail, err := u.Seal(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, storage.Address(n), tail)
	})

	t.Run("sparse", func(t *testing.T) {
		addrs := []storage.Address{0, 3, 1000, 1 << 20, 1<<32 - 1, 1 << 32, 1 << 50, storage.MaxAddress - 1}
		holes := []storage.Address{1, 2, 4, 999, 1001, 1<<20 - 1, 1<<20 + 1, 1<<32 + 1, 1<<50 - 1, storage.MaxAddress - 2}
		u := s.newUnit(t)
		ctx := t.Context()
		// Write out of order.
		for i := len(addrs) - 1; i >= 0; i -= 2 {
			require.NoError(t, u.Write(ctx, 0, addrs[i], payload(addrs[i], 24)))
		}
		for i := len(addrs) - 2; i >= 0; i -= 2 {
			require.NoError(t, u.Write(ctx, 0, addrs[i], payload(addrs[i], 24)))
		}
		for _, a := range addrs {
			got, err := u.Read(ctx, 0, a)
			require.NoError(t, err, "read %d", a)
			require.Equal(t, payload(a, 24), got, "read %d", a)
		}
		for _, a := range holes {
			_, err := u.Read(ctx, 0, a)
			require.ErrorIs(t, err, storage.ErrUnwritten, "read hole %d", a)
		}

		require.NoError(t, u.PrefixTrim(ctx, 0, 1<<32))
		check(t, u, fails(0, 1000, storage.ErrTrimmed), fails(0, 1<<32-1, storage.ErrTrimmed),
			want{addr: 1 << 32, data: payload(1<<32, 24)}, fails(0, 1<<32+1, storage.ErrUnwritten))

		tail, err := u.Seal(ctx, 1)
		require.NoError(t, err)
		require.Equal(t, storage.MaxAddress, tail)
	})
}

// testWriteBatch checks storage.WriteBatch on the unit (its own WriteBatch
// if it is a storage.BatchWriter): each item gets what Write would give it,
// in order, and one refused item does not stop the others.
func (s suite) testWriteBatch(t *testing.T) {
	u := s.newUnit(t)
	ctx := t.Context()
	setup(t, u, seal(2), write(2, 5, []byte("old")), trim(2, 6))
	errs := storage.WriteBatch(ctx, u, 2, []storage.WriteItem{
		{Addr: 4, Data: []byte("four")},
		{Addr: 5, Data: []byte("five")}, // written
		{Addr: 6, Data: []byte("six")},  // trimmed
		{Addr: 7, Data: []byte{}},
		{Addr: 4, Data: []byte("again")}, // written by this batch
		{Addr: 8, Data: nil},
		{Addr: storage.MaxAddress, Data: []byte("x")},
	})
	require.Len(t, errs, 7)
	assert.NoError(t, errs[0])
	assert.ErrorIs(t, errs[1], storage.ErrWritten)
	assert.ErrorIs(t, errs[2], storage.ErrTrimmed)
	assert.NoError(t, errs[3])
	assert.ErrorIs(t, errs[4], storage.ErrWritten)
	assert.ErrorIs(t, errs[5], storage.ErrNilData)
	assert.ErrorIs(t, errs[6], storage.ErrInvalidAddress)
	check(t, u, has(2, 4, "four"), has(2, 5, "old"), fails(2, 6, storage.ErrTrimmed), has(2, 7, ""), fails(2, 8, storage.ErrUnwritten))

	for i, err := range storage.WriteBatch(ctx, u, 1, []storage.WriteItem{{Addr: 9, Data: []byte("a")}, {Addr: 10, Data: []byte("b")}}) {
		assert.ErrorIs(t, err, storage.ErrSealed, "item %d at an old epoch", i)
	}
	for i, err := range storage.WriteBatch(ctx, u, 3, []storage.WriteItem{{Addr: 9, Data: []byte("a")}}) {
		assert.ErrorIs(t, err, storage.ErrFutureEpoch, "item %d at a future epoch", i)
	}
	check(t, u, fails(2, 9, storage.ErrUnwritten), fails(2, 10, storage.ErrUnwritten))
}
