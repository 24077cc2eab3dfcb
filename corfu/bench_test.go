package corfu_test

import (
	"context"
	"slices"
	"testing"
	"time"

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

// BenchmarkFollowLatency measures how long after an append's ack a
// follower that has caught up sees the entry (p50-ack-µs, p99-ack-µs; zero
// when it saw it before the ack came), and how long after the append began
// (p50-append-µs), on an in-process and a loopback-TCP cluster (one chain
// of 3 in-memory units): with units that park the follower's read until
// the entry is written (wait), and with units that cannot, so that Follow
// polls the tail every DefaultFollowPoll (poll). One append at a time.
func BenchmarkFollowLatency(b *testing.B) {
	for _, network := range []string{"inproc", "tcp"} {
		for _, mode := range []string{"wait", "poll"} {
			b.Run(network+"/"+mode, func(b *testing.B) { benchFollow(b, network == "tcp", mode == "poll") })
		}
	}
}

func benchFollow(b *testing.B, overTCP, poll bool) {
	opts := corfutest.Options{Units: 3, Replicas: 3}
	var cl *corfutest.Cluster
	var err error
	if overTCP {
		cl, err = corfutest.NewTCP(opts, corfutest.TCPOptions{})
	} else {
		cl, err = corfutest.New(opts)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	if poll {
		ids, hs := cl.Handlers()
		for i, id := range ids {
			cl.Net.Register(id, hs[i]) // NB: bare Servers cannot park reads
		}
	}
	ctx := context.Background()
	writer, err := corfu.Open(ctx, cl.Config())
	if err != nil {
		b.Fatal(err)
	}
	defer writer.Close()
	follower, err := corfu.Open(ctx, cl.Config())
	if err != nil {
		b.Fatal(err)
	}
	defer follower.Close()
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	seen := make(chan time.Time, 1)
	go func() {
		for _, err := range follower.Follow(fctx, 0) {
			if err != nil {
				return
			}
			seen <- time.Now()
		}
	}()
	data := make([]byte, 128)
	acks := make([]time.Duration, 0, b.N)
	appends := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for range b.N {
		start := time.Now()
		if _, err := writer.Append(ctx, data); err != nil {
			b.Fatal(err)
		}
		ack := time.Now()
		at := <-seen
		acks = append(acks, max(0, at.Sub(ack)))
		appends = append(appends, at.Sub(start))
	}
	b.StopTimer()
	cancel()
	us := func(ds []time.Duration, q float64) float64 {
		slices.Sort(ds)
		return float64(ds[int(q*float64(len(ds)-1))]) / float64(time.Microsecond)
	}
	b.ReportMetric(us(acks, 0.5), "p50-ack-µs")
	b.ReportMetric(us(acks, 0.99), "p99-ack-µs")
	b.ReportMetric(us(appends, 0.5), "p50-append-µs")
}
