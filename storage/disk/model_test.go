package disk_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// outcome names the result of a call the way the comparison needs it.
func outcome(data []byte, tail storage.Address, err error) string {
	var sealed *storage.SealedError
	switch {
	case errors.As(err, &sealed):
		return fmt.Sprintf("sealed(%d)", sealed.Epoch)
	case err != nil:
		for _, s := range []error{storage.ErrWritten, storage.ErrUnwritten, storage.ErrTrimmed,
			storage.ErrJunk, storage.ErrFutureEpoch, storage.ErrTooLarge, storage.ErrInvalidAddress,
			storage.ErrNilData, storage.ErrBlank, storage.ErrNotBlank} {
			if errors.Is(err, s) {
				return s.Error()
			}
		}
		return "unexpected: " + err.Error()
	case data != nil:
		return fmt.Sprintf("data %q", data)
	}
	return fmt.Sprintf("ok tail %d", tail)
}

// TestMatchesMemory runs the same random calls on a storage.Memory and a
// disk.Unit (reopened after a power loss now and then, which under
// SyncBatch keeps everything acknowledged) and requires the same outcome
// from both, and the same inspection at the end.
func TestMatchesMemory(t *testing.T) {
	seeds := 20
	if testing.Short() {
		seeds = 4
	}
	for seed := range uint64(seeds) {
		rng := randFor(seed)
		mem := storage.NewMemory()
		fsys := vfs.NewMem()
		opts := testOptions()
		opts.SegmentBytes = 2 << 10
		u := openUnit(t, fsys, dir, opts)
		var epoch storage.Epoch
		for step := range 600 {
			a := storage.Address(rng.IntN(120))
			e := epoch
			if rng.IntN(10) == 0 {
				e = storage.Epoch(rng.IntN(int(epoch) + 2)) // stale, current or future
			}
			var got, want string
			switch op := rng.IntN(20); {
			case op < 8:
				p := fmt.Appendf(nil, "%d-%d", a, step)
				got = outcome(nil, 0, u.Write(ctx, e, a, p))
				want = outcome(nil, 0, mem.Write(ctx, e, a, p))
			case op < 13:
				d, err := u.Read(ctx, e, a)
				got = outcome(d, 0, err)
				d, err = mem.Read(ctx, e, a)
				want = outcome(d, 0, err)
			case op < 15:
				got = outcome(nil, 0, u.Fill(ctx, e, a))
				want = outcome(nil, 0, mem.Fill(ctx, e, a))
			case op < 17:
				got = outcome(nil, 0, u.Trim(ctx, e, a))
				want = outcome(nil, 0, mem.Trim(ctx, e, a))
			case op < 18:
				a = storage.Address(rng.IntN(40))
				got = outcome(nil, 0, u.PrefixTrim(ctx, e, a))
				want = outcome(nil, 0, mem.PrefixTrim(ctx, e, a))
			case op < 19:
				e = epoch + storage.Epoch(rng.IntN(2))
				tail, err := u.Seal(ctx, e)
				got = outcome(nil, tail, err)
				tail, err = mem.Seal(ctx, e)
				want = outcome(nil, tail, err)
				if err == nil {
					epoch = e
				}
			default:
				require.NoError(t, u.Close())
				fsys = fsys.CrashClone(vfs.CrashOptions{Rand: rng})
				u = openUnit(t, fsys, dir, opts)
				got, want = "reopened", "reopened"
			}
			require.Equal(t, want, got, "seed %d step %d", seed, step)
		}
		require.Equal(t, mem.Epoch(), u.Epoch(), "seed %d", seed)
		require.Equal(t, mem.TrimMark(), u.TrimMark(), "seed %d", seed)
		require.Equal(t, mem.Tail(), u.Tail(), "seed %d", seed)
		require.Equal(t, mem.StoredBytes(), u.StoredBytes(), "seed %d", seed)
		type slot struct {
			a storage.Address
			s storage.State
			d string
		}
		var ms, us []slot
		mem.Ascend(func(a storage.Address, s storage.State, d []byte) bool {
			ms = append(ms, slot{a, s, string(d)})
			return true
		})
		u.Ascend(func(a storage.Address, s storage.State, d []byte) bool {
			us = append(us, slot{a, s, string(d)})
			return true
		})
		require.Equal(t, ms, us, "seed %d", seed)
	}
}
