package kvmap_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/examples/kvmap"
)

// TestReplicasConverge has several writers put concurrently; afterwards two
// fresh replicas hold the same map, each value one that was put for its key,
// and the writers' own replicas agree with them.
func TestReplicasConverge(t *testing.T) {
	ctx := context.Background()
	cluster, err := corfutest.New(corfutest.Options{})
	require.NoError(t, err)
	open := func() *corfu.Client {
		c, err := corfu.Open(ctx, cluster.Config())
		require.NoError(t, err)
		return c
	}
	const stream corfu.StreamID = 3
	var wg sync.WaitGroup
	writers := make([]*kvmap.Map, 4)
	for w := range writers {
		m := kvmap.New(open(), stream)
		writers[w] = m
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				require.NoError(t, m.Put(ctx, fmt.Sprintf("k%d", i%5), fmt.Sprintf("w%d-%d", w, i)))
			}
		}()
	}
	// Noise on another stream must not leak into the map.
	noise := open()
	for range 10 {
		_, err := noise.Append(ctx, []byte("not a map update"), 99)
		require.NoError(t, err)
	}
	wg.Wait()

	a, b := kvmap.New(open(), stream), kvmap.New(open(), stream)
	for i := range 5 {
		key := fmt.Sprintf("k%d", i)
		va, ok, err := a.Get(ctx, key)
		require.NoError(t, err)
		require.True(t, ok)
		vb, _, err := b.Get(ctx, key)
		require.NoError(t, err)
		require.Equal(t, va, vb, "replicas disagree on %s", key)
		var wr, j int
		_, err = fmt.Sscanf(va, "w%d-%d", &wr, &j)
		require.NoError(t, err, "value %q was never put", va)
		require.Equal(t, i, j%5, "value %q was put for another key", va)
		for _, m := range writers {
			vw, _, err := m.Get(ctx, key)
			require.NoError(t, err)
			require.Equal(t, va, vw, "a writer's replica disagrees on %s", key)
		}
	}
	n, err := a.Len(ctx)
	require.NoError(t, err)
	require.Equal(t, 5, n)
}
