package corfu_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
)

func TestConcurrentAppendAndRead(t *testing.T) {
	const (
		writers   = 8
		appends   = 40
		readers   = 4
		readsEach = 60
	)
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.MaxRetries = 16 })
	shared := e.c // half the goroutines share one client
	var (
		mu    sync.Mutex
		acked = map[storage.Address]string{}
		seen  = map[storage.Address]string{} // what readers saw; "" for junk
		errs  []error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		errs = append(errs, err)
	}
	observe := func(a storage.Address, v string) {
		mu.Lock()
		defer mu.Unlock()
		if old, ok := seen[a]; ok && old != v {
			errs = append(errs, fmt.Errorf("address %d read as %q and as %q", a, old, v))
		}
		seen[a] = v
	}
	var wg sync.WaitGroup
	for w := range writers {
		c := shared
		if w%2 == 1 {
			c = e.open(func(c *corfu.Config) { c.MaxRetries = 16 })
		}
		wg.Go(func() {
			for i := range appends {
				v := fmt.Sprintf("w%d-%d", w, i)
				a, err := c.Append(e.ctx, []byte(v), corfu.StreamID(w%3))
				if err != nil {
					fail(fmt.Errorf("append %s: %w", v, err))
					return
				}
				mu.Lock()
				if old, dup := acked[a]; dup {
					errs = append(errs, fmt.Errorf("address %d acked twice: %s and %s", a, old, v))
				}
				acked[a] = v
				mu.Unlock()
			}
		})
	}
	for r := range readers {
		c := shared
		if r%2 == 1 {
			c = e.open(nil)
		}
		rng := rand.New(rand.NewPCG(uint64(r), 7))
		wg.Go(func() {
			for range readsEach {
				tail, err := c.Tail(e.ctx)
				if err != nil {
					fail(err)
					return
				}
				if tail == 0 {
					continue
				}
				a := storage.Address(rng.Uint64N(uint64(tail)))
				got, err := c.Read(e.ctx, a)
				switch {
				case errors.Is(err, corfu.ErrJunk):
					observe(a, "")
				case err != nil:
					fail(fmt.Errorf("read %d: %w", a, err))
					return
				default:
					observe(a, string(got.Data))
				}
			}
		})
	}
	wg.Wait()
	require.Empty(t, errs)
	require.Len(t, acked, writers*appends, "every append acked at a distinct address")

	for a, v := range acked {
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err, "address %d", a)
		assert.Equal(t, v, string(got.Data), "address %d", a)
		if s, ok := seen[a]; ok {
			assert.Equal(t, v, s, "a reader saw address %d differently", a)
		}
	}
	// Every stream holds exactly its writers' entries, in log order.
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	for id := range corfu.StreamID(3) {
		es, err := e.c.Stream(id, 0).Sync(e.ctx)
		require.NoError(t, err)
		want := 0
		for a, v := range acked {
			var w, i int
			_, err := fmt.Sscanf(v, "w%d-%d", &w, &i)
			require.NoError(t, err)
			if corfu.StreamID(w%3) == id && a < tail {
				want++
			}
		}
		assert.Len(t, es, want, "stream %d", id)
		for _, ent := range es {
			assert.Equal(t, acked[ent.Address], string(ent.Data))
		}
	}
}
