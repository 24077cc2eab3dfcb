package tcp_test

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// echo is a trivial Handler: it answers every request with its address.
type echo struct{}

func (echo) Handle(req *transport.Request) *transport.Response {
	return &transport.Response{Addr: req.Addr}
}

// BenchmarkLoopback measures, in one run, what one loopback connection
// carries: Raw is 128-byte frames sent one way as fast as possible (the
// ceiling), Pipelined is small request/response round trips through the
// Client and Server, from 64 concurrent callers over one connection
// (with, on Linux, the requests per read and per write system call, both
// ends counted).
func BenchmarkLoopback(b *testing.B) {
	b.Run("Raw", benchRaw)
	b.Run("Pipelined", benchPipelined)
}

// benchRaw writes b.N 128-byte length-prefixed frames on one loopback
// connection, 512 to a write, and reads them on the other end.
func benchRaw(b *testing.B) {
	const frame, batch = 128, 512
	l := listen(b)
	defer l.Close()
	var (
		wg   sync.WaitGroup
		rerr error
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		c, err := l.Accept()
		if err != nil {
			rerr = err
			return
		}
		defer c.Close()
		buf := make([]byte, 64<<10)
		n, have := 0, 0
		for n < b.N {
			m, err := c.Read(buf[have:])
			if err != nil {
				rerr = err
				return
			}
			have += m
			off := 0
			for have-off >= frame {
				if binary.BigEndian.Uint32(buf[off:]) != frame-4 {
					rerr = io.ErrUnexpectedEOF
					return
				}
				off += frame
				n++
			}
			have = copy(buf, buf[off:have])
		}
	}()
	c, err := net.Dial("tcp", l.Addr().String())
	require.NoError(b, err)
	defer c.Close()
	out := make([]byte, frame*batch)
	for i := 0; i < batch; i++ {
		binary.BigEndian.PutUint32(out[i*frame:], frame-4)
	}
	b.SetBytes(frame)
	cpu0 := cpuTime()
	b.ResetTimer()
	for sent := 0; sent < b.N; sent += batch {
		k := min(batch, b.N-sent)
		if _, err := c.Write(out[:k*frame]); err != nil {
			b.Fatal(err)
		}
	}
	wg.Wait()
	b.StopTimer()
	require.NoError(b, rerr)
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "frames/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/frame")
}

// benchPipelined runs b.N calls of a trivial handler from 64 goroutines
// over one connection.
func benchPipelined(b *testing.B) {
	_, addr := serve(b, "node", echo{}, plain(), nil)
	c := client(b, map[transport.NodeID]string{"node": addr}, plain(), nil)
	ctx := context.Background()
	_, err := c.Call(ctx, "node", &transport.Request{Op: transport.OpRead})
	require.NoError(b, err)
	b.SetParallelism(32) // 64 callers on 2 cores
	cpu0 := cpuTime()
	r0, w0 := sysRW()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req := &transport.Request{Op: transport.OpRead, Addr: 7}
		for pb.Next() {
			resp, err := c.Call(ctx, "node", req)
			if err != nil || resp.Addr != 7 {
				b.Errorf("call: %v %v", resp, err)
				return
			}
		}
	})
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "req/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N), "cpu-ns/req")
	if r1, w1 := sysRW(); w1 > w0 && r1 > r0 {
		// NB: both ends' system calls: a round trip costs a write and at
		// least a read on each side.
		b.ReportMetric(float64(b.N)/float64(w1-w0), "req/write")
		b.ReportMetric(float64(b.N)/float64(r1-r0), "req/read")
	}
}

// sysRW returns the read and write system calls the process has made
// (from /proc/self/io; zeros where there is none).
func sysRW() (r, w int64) {
	b, _ := os.ReadFile("/proc/self/io")
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "syscr: "); ok {
			r, _ = strconv.ParseInt(v, 10, 64)
		} else if v, ok := strings.CutPrefix(l, "syscw: "); ok {
			w, _ = strconv.ParseInt(v, 10, 64)
		}
	}
	return r, w
}

// cpuTime returns the CPU time the process has used (user and system), so
// that a benchmark can report its cost per operation apart from the share
// of the machine it got.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkBigWrite writes entries of storage.MaxEntryBytes to a unit over
// one connection, one at a time: the copies a large frame costs.
func BenchmarkBigWrite(b *testing.B) {
	_, addr := serve(b, "unit", &transport.Server{Unit: storage.NewMemory()}, plain(), nil)
	c := client(b, map[transport.NodeID]string{"unit": addr}, plain(), nil)
	u := transport.UnitClient{Caller: c, Node: "unit"}
	data := make([]byte, storage.MaxEntryBytes)
	ctx := context.Background()
	b.SetBytes(int64(len(data)))
	for i := 0; i < b.N; i++ {
		if err := u.Write(ctx, 0, storage.Address(i), data); err != nil {
			b.Fatal(err)
		}
	}
}
