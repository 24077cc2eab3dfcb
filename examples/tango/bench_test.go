package tango_test

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/examples/tango"
)

// benchRuntime opens a runtime on an in-process cluster (in-memory units,
// 3 chains of 2; over loopback TCP with CORFU_TEST_NET=tcp).
func benchRuntime(b *testing.B) (*tango.Runtime, func() *tango.Runtime) {
	b.Helper()
	cl, err := corfutest.New(corfutest.Options{})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = cl.Close() })
	open := func() *tango.Runtime {
		caller, err := cl.NewCaller()
		if err != nil {
			b.Fatal(err)
		}
		cfg := cl.Config()
		cfg.Transport = caller
		c, err := corfu.Open(context.Background(), cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { _ = c.Close() })
		return tango.New(c, tango.Options{})
	}
	return open(), open
}

// BenchmarkTx runs transactions that read and add to each of N counters,
// one after another on one runtime: a commit record, its decision record
// (N > 1), and the syncs of the N streams before and after.
func BenchmarkTx(b *testing.B) {
	for _, n := range []int{2, 8, 32} {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			r, _ := benchRuntime(b)
			ctx := context.Background()
			counters := make([]*tango.Counter, n)
			for i := range counters {
				var err error
				if counters[i], err = tango.NewCounter(r, tango.ObjectID(i+1)); err != nil {
					b.Fatal(err)
				}
			}
			tx := func(ctx context.Context) error {
				for _, c := range counters {
					v, err := c.Get(ctx)
					if err != nil {
						return err
					}
					if err := c.Add(ctx, v%7+1); err != nil {
						return err
					}
				}
				return nil
			}
			if err := r.RunTx(ctx, tx); err != nil { // warm up: the first sync
				b.Fatal(err)
			}
			b.ResetTimer()
			for range b.N {
				if err := r.RunTx(ctx, tx); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "tx/s")
		})
	}
}

// BenchmarkMapPut puts keys of one map: one at a time (sync), and with 64
// puts in flight on one client (window=64), as the peers' benchmarks
// measure appends.
func BenchmarkMapPut(b *testing.B) {
	for _, window := range []int{1, 64} {
		name := "sync"
		if window > 1 {
			name = fmt.Sprintf("window=%d", window)
		}
		b.Run(name, func(b *testing.B) {
			r, _ := benchRuntime(b)
			m, err := tango.NewMap[string, []byte](r, 1)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			value := make([]byte, 128)
			b.ResetTimer()
			var wg sync.WaitGroup
			next := make(chan int, window)
			for range window {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for i := range next {
						if err := m.Put(ctx, fmt.Sprintf("k%d", i%1024), value); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			for i := range b.N {
				next <- i
			}
			close(next)
			wg.Wait()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "puts/s")
		})
	}
}
