package sim_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// kvHandler is a small write-once Handler: enough of a storage unit to
// test the network without depending on a real server.
type kvHandler struct {
	data     map[storage.Address][]byte
	requests int
}

func newKVHandler() *kvHandler { return &kvHandler{data: map[storage.Address][]byte{}} }

func (s *kvHandler) Handle(req *transport.Request) *transport.Response {
	s.requests++
	switch req.Op {
	case transport.OpWrite:
		if _, ok := s.data[req.Addr]; ok {
			return &transport.Response{Err: storage.ErrWritten}
		}
		s.data[req.Addr] = req.Data
		return &transport.Response{}
	case transport.OpRead:
		d, ok := s.data[req.Addr]
		if !ok {
			return &transport.Response{Err: storage.ErrUnwritten}
		}
		return &transport.Response{Data: d}
	case transport.OpSeal:
		return &transport.Response{Err: &storage.SealedError{Epoch: 7}}
	}
	return &transport.Response{Err: transport.ErrWrongRole}
}

func writeReq(addr storage.Address, data string) *transport.Request {
	return &transport.Request{Op: transport.OpWrite, Addr: addr, Data: []byte(data)}
}

func readReq(addr storage.Address) *transport.Request {
	return &transport.Request{Op: transport.OpRead, Addr: addr}
}

func TestNetworkRoundTrip(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(2*time.Millisecond))
	u := newKVHandler()
	n.AddNode("u1", u)
	c := n.Caller("client")
	bg := context.Background()
	s.Go("client", func() {
		req := writeReq(3, "hello")
		resp, err := c.Call(bg, "u1", req)
		require.NoError(t, err)
		assert.NotNil(t, resp)
		assert.Equal(t, 4*time.Millisecond, s.Elapsed(), "one delay each way")
		req.Data[0] = 'J' // the server got its own copy

		resp, err = c.Call(bg, "u1", readReq(3))
		require.NoError(t, err)
		assert.Equal(t, "hello", string(resp.Data))
		resp.Data[0] = 'Y' // and so did the caller
		assert.Equal(t, "hello", string(u.data[3]))

		resp, err = c.Call(bg, "u1", writeReq(3, "again"))
		assert.ErrorIs(t, err, storage.ErrWritten, "the server's error is the call's error")
		assert.ErrorIs(t, resp.Err, storage.ErrWritten)

		_, err = c.Call(bg, "u1", readReq(4))
		assert.ErrorIs(t, err, storage.ErrUnwritten)

		_, err = c.Call(bg, "u1", &transport.Request{Op: transport.OpSeal, Epoch: 1})
		var sealed *storage.SealedError
		require.ErrorAs(t, err, &sealed)
		assert.Equal(t, storage.Epoch(7), sealed.Epoch)
	})
	require.NoError(t, s.Run())
	assert.Equal(t, 20*time.Millisecond, s.Elapsed())
	assert.Equal(t, sim.Stats{Calls: 5, Sent: 10, Delivered: 10}, n.Stats())
}

func TestNetworkServerRoundTrip(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	n.AddNode("u1", &transport.Server{Unit: storage.NewMemory()})
	c := n.Caller("client")
	bg := context.Background()
	s.Go("client", func() {
		_, err := c.Call(bg, "u1", writeReq(0, "entry"))
		require.NoError(t, err)
		resp, err := c.Call(bg, "u1", readReq(0))
		require.NoError(t, err)
		assert.Equal(t, "entry", string(resp.Data))
		_, err = c.Call(bg, "u1", writeReq(0, "other"))
		assert.ErrorIs(t, err, storage.ErrWritten)
		_, err = c.Call(bg, "u1", readReq(1))
		assert.ErrorIs(t, err, storage.ErrUnwritten)

		resp, err = c.Call(bg, "u1", &transport.Request{Op: transport.OpSeal, Epoch: 1})
		require.NoError(t, err)
		assert.Equal(t, storage.Address(1), resp.Addr, "the unit's local tail")
		_, err = c.Call(bg, "u1", readReq(0))
		var sealed *storage.SealedError
		require.ErrorAs(t, err, &sealed)
		assert.Equal(t, storage.Epoch(1), sealed.Epoch)
		_, err = c.Call(bg, "u1", &transport.Request{Op: transport.OpToken, Epoch: 1, N: 1})
		assert.ErrorIs(t, err, transport.ErrWrongRole)
	})
	require.NoError(t, s.Run())
	assert.Equal(t, 14*time.Millisecond, s.Elapsed())
}

// slowNode delays every message to or from the node "slow" by extra.
func slowNode(base sim.Policy, extra time.Duration) sim.Policy {
	return sim.PolicyFunc(func(now time.Time, r *rand.Rand, m *sim.Message) sim.Decision {
		d := base.Route(now, r, m)
		if m.To == "slow" || m.From == "slow" {
			d.Delay += extra
		}
		return d
	})
}

func TestNetworkTimeoutDropsLateReply(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	n.SetPolicy(slowNode(n.Policy(), 50*time.Millisecond))
	u := newKVHandler()
	n.AddNode("slow", u)
	n.AddNode("fast", newKVHandler())
	c := n.Caller("client")
	s.Go("client", func() {
		ctx, cancel := s.WithTimeout(context.Background(), 10*time.Millisecond)
		_, err := c.Call(ctx, "slow", writeReq(1, "x"))
		cancel()
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		assert.Equal(t, 10*time.Millisecond, s.Elapsed())

		// The next call is not confused by the late reply to the first.
		_, err = c.Call(context.Background(), "fast", readReq(1))
		assert.ErrorIs(t, err, storage.ErrUnwritten)
	})
	require.NoError(t, s.Run())
	assert.Equal(t, 1, u.requests, "the request arrived; only its reply was late")
	st := n.Stats()
	assert.Equal(t, uint64(1), st.LateReplies)
	assert.Equal(t, 102*time.Millisecond, s.Elapsed(), "the late reply still arrived, at 2*51ms")
}

func TestNetworkUnknownNodeLosesTheMessage(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	c := n.Caller("client")
	s.Go("bounded", func() {
		ctx, cancel := s.WithTimeout(context.Background(), 30*time.Millisecond)
		defer cancel()
		_, err := c.Call(ctx, "nobody", readReq(1))
		assert.ErrorIs(t, err, context.DeadlineExceeded)
	})
	s.Go("unbounded", func() {
		_, err := c.Call(context.Background(), "nobody", readReq(2))
		assert.ErrorIs(t, err, sim.ErrStopped)
	})
	err := s.Run()
	require.ErrorIs(t, err, sim.ErrDeadlock)
	assert.Contains(t, err.Error(), "unbounded (request 2 client->nobody read")
	assert.Equal(t, 1, strings.Count(err.Error(), "request"), "only the call without a deadline is stuck")
	assert.Equal(t, uint64(2), n.Stats().Undeliverable)
	s.Close()
}

func TestNetworkPolicyDropsAndDuplicates(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	base := n.Policy()
	n.SetPolicy(sim.PolicyFunc(func(now time.Time, r *rand.Rand, m *sim.Message) sim.Decision {
		d := base.Route(now, r, m)
		switch {
		case m.To == "lossy" && !m.Reply:
			d.Drop = true
		case m.To == "echo" && !m.Reply:
			d.Duplicates = []time.Duration{5 * time.Millisecond, 7 * time.Millisecond}
		}
		return d
	}))
	lossy, echo := newKVHandler(), newKVHandler()
	n.AddNode("lossy", lossy)
	n.AddNode("echo", echo)
	c := n.Caller("client")
	s.Go("client", func() {
		ctx, cancel := s.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		_, err := c.Call(ctx, "lossy", readReq(1))
		assert.ErrorIs(t, err, context.DeadlineExceeded)

		_, err = c.Call(context.Background(), "echo", writeReq(1, "once"))
		assert.NoError(t, err, "the first copy wins")
	})
	require.NoError(t, s.Run())
	assert.Equal(t, 0, lossy.requests)
	assert.Equal(t, 3, echo.requests, "the copies of the write all reach the server")
	st := n.Stats()
	assert.Equal(t, uint64(1), st.Dropped)
	assert.Equal(t, uint64(2), st.Duplicated)
	assert.Equal(t, uint64(2), st.LateReplies, "the duplicates' replies find the call done")
}

func TestNetworkCallCancelledByAnotherTask(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Second))
	n.AddNode("u1", newKVHandler())
	ctx, cancel := context.WithCancel(context.Background())
	var err error
	s.Go("caller", func() { _, err = n.Caller("c").Call(ctx, "u1", readReq(1)) })
	s.AfterFunc(300*time.Millisecond, cancel)
	require.NoError(t, s.Run())
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, uint64(1), n.Stats().LateReplies)
}

func TestNetworkCallOutsideATaskPanics(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	assert.PanicsWithValue(t, "sim: Call called outside a task", func() {
		_, _ = n.Caller("c").Call(context.Background(), "u1", readReq(1))
	})
}

func TestNetworkTrace(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	n.AddNode("u1", newKVHandler())
	var got []string
	s.Trace = func(e sim.Event) {
		if e.Kind == sim.KindDeliver || e.Kind == sim.KindReply {
			got = append(got, fmt.Sprintf("%s %s: %s", e.Kind, e.Label, e.Detail))
		}
	}
	s.Go("c", func() {
		_, err := n.Caller("c").Call(context.Background(), "u1", readReq(1))
		assert.ErrorIs(t, err, storage.ErrUnwritten)
	})
	require.NoError(t, s.Run())
	require.Len(t, got, 2)
	assert.True(t, strings.HasPrefix(got[0], "deliver u1: request 1 c->u1 read"), got[0])
	assert.True(t, strings.HasPrefix(got[1], "reply u1: response 1 u1->c read"), got[1])
}

// jitterLatency is a LatencyModel with random delays, to exercise reordering.
type jitterLatency struct{}

func (jitterLatency) Delay(r *rand.Rand, _, _ transport.NodeID) time.Duration {
	return time.Duration(100+r.IntN(5000)) * time.Microsecond
}

// netWorkload runs 1000 calls from 10 tasks to 5 nodes over a jittery,
// lossy network with per-call timeouts, and returns the trace hash, the
// stats and a log of outcomes.
func netWorkload(t *testing.T, seed uint64) (uint64, sim.Stats, string) {
	s := sim.NewScheduler(seed)
	defer s.Close()
	n := sim.NewNetwork(s, jitterLatency{})
	base := n.Policy()
	n.SetPolicy(sim.PolicyFunc(func(now time.Time, r *rand.Rand, m *sim.Message) sim.Decision {
		d := base.Route(now, r, m)
		switch r.IntN(50) {
		case 0:
			d.Drop = true
		case 1:
			d.Duplicates = []time.Duration{time.Duration(r.IntN(3000)) * time.Microsecond}
		}
		return d
	}))
	for i := range 5 {
		n.AddNode(transport.NodeID(fmt.Sprint("u", i)), newKVHandler())
	}
	var log strings.Builder
	for i := range 10 {
		name := fmt.Sprint("client", i)
		c := n.Caller(transport.NodeID(name))
		r := s.Fork(name)
		s.Go(name, func() {
			for j := range 100 {
				to := transport.NodeID(fmt.Sprint("u", r.IntN(5)))
				addr := storage.Address(r.IntN(50))
				req := readReq(addr)
				if r.IntN(2) == 0 {
					req = writeReq(addr, fmt.Sprintf("%s-%d", name, j))
				}
				ctx, cancel := s.WithTimeout(context.Background(), 8*time.Millisecond)
				resp, err := c.Call(ctx, to, req)
				cancel()
				data := ""
				if resp != nil {
					data = string(resp.Data)
				}
				fmt.Fprintf(&log, "%s %d %v %q %v\n", name, j, s.Elapsed(), data, err)
			}
		})
	}
	require.NoError(t, s.Run())
	return s.TraceHash(), n.Stats(), log.String()
}

func TestNetworkDeterministic(t *testing.T) {
	h1, st1, log1 := netWorkload(t, 42)
	h2, st2, log2 := netWorkload(t, 42)
	require.Equal(t, log1, log2)
	assert.Equal(t, st1, st2)
	assert.Equal(t, h1, h2)
	assert.Equal(t, uint64(1000), st1.Calls)
	assert.NotZero(t, st1.Dropped)
	assert.NotZero(t, st1.Duplicated)
	assert.NotZero(t, st1.LateReplies)
	h3, _, _ := netWorkload(t, 43)
	assert.NotEqual(t, h1, h3)
}

// BenchmarkNetworkCall measures a full call: encode, two deliveries, the
// handler, decode, and the caller's park and resume.
func BenchmarkNetworkCall(b *testing.B) {
	s := sim.NewScheduler(1)
	s.MaxSteps = 1 << 62
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	n.AddNode("u1", newKVHandler())
	c := n.Caller("c")
	left := b.N
	for i := range 10 {
		s.Go(fmt.Sprint("c", i), func() {
			for left > 0 {
				left--
				_, _ = c.Call(context.Background(), "u1", readReq(storage.Address(i)))
			}
		})
	}
	b.ReportAllocs()
	b.ResetTimer()
	require.NoError(b, s.Run())
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "calls/s")
}

func TestNetworkCorruptMessages(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	base := n.Policy()
	n.SetPolicy(sim.PolicyFunc(func(now time.Time, r *rand.Rand, m *sim.Message) sim.Decision {
		if (m.To == "badreq" && !m.Reply) || (m.From == "badresp" && m.Reply) {
			m.Data = m.Data[:len(m.Data)/2] // truncated in flight
		}
		return base.Route(now, r, m)
	}))
	n.AddNode("badreq", newKVHandler())
	n.AddNode("badresp", newKVHandler())
	c := n.Caller("c")
	s.Go("c", func() {
		ctx, cancel := s.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_, err := c.Call(ctx, "badreq", writeReq(1, "hello"))
		assert.ErrorIs(t, err, context.DeadlineExceeded, "a server ignores what it cannot parse")
		_, err = c.Call(context.Background(), "badresp", writeReq(1, "hello"))
		assert.ErrorIs(t, err, transport.ErrMalformed)
	})
	require.NoError(t, s.Run())
	assert.Equal(t, uint64(2), n.Stats().DecodeErrors)
}

type panicky struct{}

func (panicky) Handle(*transport.Request) *transport.Response { panic("handler bug") }

func TestNetworkHandlerPanicIsTheRunsError(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	n.AddNode("bad", panicky{})
	s.Go("c", func() { _, _ = n.Caller("c").Call(context.Background(), "bad", readReq(1)) })
	var pe *sim.PanicError
	require.ErrorAs(t, s.Run(), &pe)
	assert.Equal(t, "handler bug", pe.Value)
	assert.Contains(t, pe.Task, "deliver bad")
	s.Close()
}

func TestNetworkRefusesInvalidRequests(t *testing.T) {
	s := sim.NewScheduler(1)
	n := sim.NewNetwork(s, sim.Constant(time.Millisecond))
	n.AddNode("seq", newKVHandler())
	c := n.Caller("c")
	s.Go("c", func() {
		_, err := c.Call(context.Background(), "seq", nil)
		assert.ErrorIs(t, err, transport.ErrMalformed)
		req := &transport.Request{Op: transport.OpToken, N: 1, Streams: make([]sequencer.StreamID, sequencer.MaxStreams+1)}
		_, err = c.Call(context.Background(), "seq", req)
		assert.ErrorIs(t, err, transport.ErrMalformed)
	})
	require.NoError(t, s.Run())
	assert.Zero(t, s.Elapsed(), "nothing was sent")
	assert.Zero(t, n.Stats().Sent)
}
