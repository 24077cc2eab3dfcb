package storage_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/storagetest"
)

// A blank unit that joined at epoch 0 is an ordinary empty unit.
func TestBlankJoinedConformance(t *testing.T) {
	storagetest.Run(t, func(t *testing.T) storage.Unit {
		m := storage.NewBlank()
		_, err := m.Seal(context.Background(), 0)
		require.ErrorIs(t, err, storage.ErrBlank)
		require.NoError(t, m.Join(context.Background(), 0))
		return m
	})
}

func TestBlankRefusesEverything(t *testing.T) {
	ctx := context.Background()
	m := storage.NewBlank()
	assert.True(t, m.Blank())
	ops := map[string]func() error{
		"write":       func() error { return m.Write(ctx, 0, 0, []byte("x")) },
		"read":        func() error { _, err := m.Read(ctx, 0, 0); return err },
		"fill":        func() error { return m.Fill(ctx, 0, 0) },
		"trim":        func() error { return m.Trim(ctx, 0, 0) },
		"prefix trim": func() error { return m.PrefixTrim(ctx, 0, 1) },
		"seal":        func() error { _, err := m.Seal(ctx, 3); return err },
		"read later":  func() error { _, err := m.Read(ctx, 3, 0); return err },
	}
	for name, op := range ops {
		t.Run(name, func(t *testing.T) {
			require.ErrorIs(t, op(), storage.ErrBlank)
		})
	}
	assert.True(t, m.Blank())
	assert.Equal(t, storage.Address(0), m.Tail())
	assert.Equal(t, 0, m.StoredBytes())
	s, _ := m.Inspect(0)
	assert.Equal(t, storage.StateUnwritten, s, "nothing was stored")
}

func TestBlankJoin(t *testing.T) {
	ctx := context.Background()
	sealed := func(t *testing.T, epochs ...storage.Epoch) *storage.Memory {
		m := storage.NewBlank()
		for _, e := range epochs {
			_, err := m.Seal(ctx, e)
			require.ErrorIs(t, err, storage.ErrBlank)
		}
		return m
	}
	tests := []struct {
		name   string
		seals  []storage.Epoch
		join   storage.Epoch
		want   error // nil: joins
		sealed storage.Epoch
	}{
		{name: "at the sealed epoch", seals: []storage.Epoch{4}, join: 4},
		{name: "at the newest seal", seals: []storage.Epoch{4, 6, 5}, join: 6},
		{name: "never sealed", join: 4, want: storage.ErrFutureEpoch},
		{name: "above the seal", seals: []storage.Epoch{4}, join: 5, want: storage.ErrFutureEpoch},
		{name: "below the seal", seals: []storage.Epoch{4, 6}, join: 4, want: storage.ErrSealed, sealed: 6},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := sealed(t, tt.seals...)
			err := m.Join(ctx, tt.join)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				var se *storage.SealedError
				if tt.sealed != 0 {
					require.ErrorAs(t, err, &se)
					assert.Equal(t, tt.sealed, se.Epoch)
				}
				assert.True(t, m.Blank())
				return
			}
			require.NoError(t, err)
			assert.False(t, m.Blank())
			assert.Equal(t, tt.join, m.Epoch())
			_, err = m.Read(ctx, tt.join, 0)
			require.ErrorIs(t, err, storage.ErrUnwritten, "serves, empty")
			require.NoError(t, m.Write(ctx, tt.join, 0, []byte("x")))
			require.NoError(t, m.Join(ctx, tt.join), "a retried join succeeds")
			got, err := m.Read(ctx, tt.join, 0)
			require.NoError(t, err)
			assert.Equal(t, []byte("x"), got, "a retried join keeps the data")
			require.ErrorIs(t, m.Join(ctx, tt.join+1), storage.ErrNotBlank)
		})
	}
}

func TestJoinNotBlank(t *testing.T) {
	m := storage.NewMemory()
	require.ErrorIs(t, m.Join(context.Background(), 0), storage.ErrNotBlank)
	assert.False(t, m.Blank())
}
