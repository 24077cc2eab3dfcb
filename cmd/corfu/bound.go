package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"slices"
	"time"

	"github.com/corfulog/corfu/storage/vfs"
)

// boundSamples is how many fsyncs and round trips protocolBound times.
const boundSamples = 400

// bound is the protocol's bound on one durable append, measured on this
// machine: a client takes a token (one round trip), then writes each
// replica of the chain in turn, each answering once its fsync returned (a
// round trip and an fsync per replica). Nothing in the protocol makes one
// append at a time cheaper than
//
//	replicas × fsync + (replicas + 1) × loopback round trip
type bound struct {
	fsync, rtt time.Duration // medians
	replicas   int
}

// total is the bound.
func (b bound) total() time.Duration {
	return time.Duration(b.replicas)*b.fsync + time.Duration(b.replicas+1)*b.rtt
}

// measureBound times boundSamples durable writes of a small record to a
// file in dir, made the cheapest way a disk unit makes them (see
// timeFsync), and as many round trips of a small frame over a loopback TCP
// connection, and returns their medians.
func measureBound(ctx context.Context, dir string, replicas int) (bound, error) {
	fsync, err := timeFsync(ctx, dir, boundSamples)
	if err != nil {
		return bound{}, fmt.Errorf("timing fsync: %w", err)
	}
	rtt, err := timeRoundTrip(ctx, boundSamples)
	if err != nil {
		return bound{}, fmt.Errorf("timing loopback round trips: %w", err)
	}
	return bound{fsync: fsync, rtt: rtt, replicas: replicas}, nil
}

// timeFsync returns the median time, over n tries, of making a 160-byte
// record durable in a file in dir as a disk unit's group commit does where
// it writes ahead (storage/disk Options.Prewrite): a write over zeros that
// are already written and synced, then a data-only sync, which has no new
// size or block allocation to flush. It is the cheaper of the ways to make
// a small record durable on a file system that prefers overwrites, so the
// bound it gives is the lower one.
func timeFsync(ctx context.Context, dir string, n int) (time.Duration, error) {
	fsys := vfs.Default
	name := fsys.PathJoin(dir, "fsync-bound")
	f, err := fsys.Create(name)
	if err != nil {
		return 0, err
	}
	defer fsys.Remove(name)
	defer f.Close()
	rec := make([]byte, 160)
	if _, err := f.WriteAt(make([]byte, n*len(rec)), 0); err != nil {
		return 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	ts := make([]time.Duration, 0, n)
	for i := range n {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		start := time.Now()
		if _, err := f.WriteAt(rec, int64(i*len(rec))); err != nil {
			return 0, err
		}
		if err := vfs.SyncData(f); err != nil {
			return 0, err
		}
		ts = append(ts, time.Since(start))
	}
	return median(ts), nil
}

// timeRoundTrip returns the median time of sending 64 bytes over a
// loopback TCP connection and reading them back, over n tries.
func timeRoundTrip(ctx context.Context, n int) (time.Duration, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	echoed := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			echoed <- err
			return
		}
		defer c.Close()
		_, err = io.Copy(c, c)
		echoed <- err
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	if err != nil {
		return 0, err
	}
	msg := make([]byte, 64)
	ts := make([]time.Duration, 0, n)
	for range n {
		if err := ctx.Err(); err != nil {
			c.Close()
			return 0, err
		}
		start := time.Now()
		if _, err := c.Write(msg); err != nil {
			c.Close()
			return 0, err
		}
		if _, err := io.ReadFull(c, msg); err != nil {
			c.Close()
			return 0, err
		}
		ts = append(ts, time.Since(start))
	}
	c.Close()
	if err := <-echoed; err != nil && !errors.Is(err, net.ErrClosed) {
		return 0, err
	}
	return median(ts), nil
}

func median(ts []time.Duration) time.Duration {
	slices.Sort(ts)
	return ts[len(ts)/2]
}

// diskBytes is how much measureDiskBandwidth writes.
const diskBytes = 256 << 20

// measureDiskBandwidth returns this disk's sequential write bandwidth in
// 10^6 bytes/s, as dd with conv=fdatasync measures it: diskBytes written
// in 1 MiB writes to a new file in dir, then one fsync, over the time of
// it all. The file is removed.
func measureDiskBandwidth(ctx context.Context, dir string) (float64, error) {
	f, err := os.CreateTemp(dir, "bandwidth-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>8) // NB: not zeros, which a filesystem may not store
	}
	start := time.Now()
	for range diskBytes / len(chunk) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		if _, err := f.Write(chunk); err != nil {
			return 0, err
		}
	}
	if err := f.Sync(); err != nil {
		return 0, err
	}
	return float64(diskBytes) / time.Since(start).Seconds() / 1e6, nil
}
