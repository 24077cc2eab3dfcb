package disk

import (
	"context"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// TestGatherYields checks when a commit's leader yields to gather
// writers: never for a lone writer, one write at a time (nobody is about
// to join, and the yield wakes another thread); for concurrent writers,
// yes.
func TestGatherYields(t *testing.T) {
	u, err := Open(vfs.NewMem(), "/d", Options{Node: "n", ID: ID{1}, Sync: SyncBatch})
	require.NoError(t, err)
	defer u.Close()
	ctx := context.Background()
	for a := range 200 {
		require.NoError(t, u.Write(ctx, 0, storage.Address(a), []byte("one at a time")))
	}
	u.mu.Lock()
	lone := u.commit.yields
	u.mu.Unlock()
	require.Zero(t, lone, "a lone writer yielded")

	var wg sync.WaitGroup
	for w := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				if err := u.Write(ctx, 0, storage.Address(1000+w*50+i), []byte("together")); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	u.mu.Lock()
	together := u.commit.yields
	u.mu.Unlock()
	require.Positive(t, together, "concurrent writers never gathered")
}
