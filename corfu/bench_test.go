package corfu_test

import (
	"context"
	"testing"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
)

// BenchmarkAppend measures appends on an in-process cluster (3 layout
// servers, a sequencer, 3 in-memory units in one chain of 3): Append one
// at a time, and AppendAsync with the default window, batches and all.
// allocs/op is the allocations per append on the in-process path.
func BenchmarkAppend(b *testing.B) {
	for _, mode := range []string{"sync", "async"} {
		b.Run(mode, func(b *testing.B) {
			cl, err := corfutest.New(corfutest.Options{Units: 3, Replicas: 3})
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			c, err := corfu.Open(ctx, cl.Config())
			if err != nil {
				b.Fatal(err)
			}
			data := make([]byte, 128)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if mode == "sync" {
					if _, err := c.Append(ctx, data); err != nil {
						b.Fatal(err)
					}
					continue
				}
				if _, err := c.AppendAsync(ctx, data); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	}
}
