package sim_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sim"
	"github.com/corfulog/corfu/transport"
)

// at is a virtual instant for the Bandwidth tests.
var at = time.Date(2026, time.January, 1, 0, 0, 0, 0, time.UTC)

// TestBandwidthSenderQueues: messages sent at once from one node leave its
// interface one after another, each taking its size over the rate.
func TestBandwidthSenderQueues(t *testing.T) {
	b := &sim.Bandwidth{Link: 1e6, Propagation: 10 * time.Microsecond} // a byte a microsecond
	m := func(from transport.NodeID) *sim.Message {
		return &sim.Message{From: from, To: "b", Data: make([]byte, 100)}
	}
	assert.Equal(t, 110*time.Microsecond, b.Route(at, nil, m("a")).Delay)
	assert.Equal(t, 210*time.Microsecond, b.Route(at, nil, m("a")).Delay)
	// Another sender's interface is its own.
	assert.Equal(t, 110*time.Microsecond, b.Route(at, nil, m("c")).Delay)
	// Once a's interface is idle again, a message waits for nothing.
	later := at.Add(time.Millisecond)
	assert.Equal(t, 110*time.Microsecond, b.Route(later, nil, m("a")).Delay)
}

// TestBandwidthReceiverQueues: messages from two senders that reach one
// node together come in one after another; the first is in at once (its
// bytes came in as they were sent), the second one transmission later.
func TestBandwidthReceiverQueues(t *testing.T) {
	b := &sim.Bandwidth{Link: 1e6}
	m1 := &sim.Message{From: "a", To: "b", Reply: true, Data: make([]byte, 100)}
	m2 := &sim.Message{From: "c", To: "b", Reply: true, Data: make([]byte, 100)}
	assert.Zero(t, b.Admit(at, m1))
	assert.Equal(t, sim.Admission{Hold: 100 * time.Microsecond}, b.Admit(at, m2))
	// Asked again once the hold is over, it is admitted.
	assert.Equal(t, sim.Admission{Hold: 40 * time.Microsecond}, b.Admit(at.Add(60*time.Microsecond), m2))
	assert.Zero(t, b.Admit(at.Add(100*time.Microsecond), m2))
	// One that arrives halfway through the second's reception waits for
	// the rest of it and its own.
	m3 := &sim.Message{From: "d", To: "b", Reply: true, Data: make([]byte, 100)}
	assert.Equal(t, sim.Admission{Hold: 150 * time.Microsecond}, b.Admit(at.Add(50*time.Microsecond), m3))
}

// TestBandwidthService: a server takes its requests one at a time, after
// their reception; a response waits for the server's time before it
// leaves.
func TestBandwidthService(t *testing.T) {
	b := &sim.Bandwidth{Link: 1e6, Service: func(m *sim.Message) time.Duration {
		if m.Reply {
			return 20 * time.Microsecond
		}
		return 5 * time.Microsecond
	}}
	req := func(from transport.NodeID) *sim.Message {
		return &sim.Message{From: from, To: "seq", Data: make([]byte, 1)}
	}
	assert.Equal(t, sim.Admission{Hold: 5 * time.Microsecond}, b.Admit(at, req("a")))
	// The second is in a byte later, and served after the first.
	assert.Equal(t, sim.Admission{Hold: 10 * time.Microsecond}, b.Admit(at, req("c")))
	// A response from seq sent now waits for both, then its own 20µs,
	// then goes out in 10µs.
	resp := &sim.Message{From: "seq", To: "a", Reply: true, Data: make([]byte, 10)}
	assert.Equal(t, 40*time.Microsecond, b.Route(at, nil, resp).Delay)
}

// echo answers every request with its own bytes.
type echo struct{}

func (echo) Handle(req *transport.Request) *transport.Response {
	return &transport.Response{Data: req.Data}
}

// TestBandwidthOnNetwork: over a Network, a call's round trip is the sum
// the model gives, encoded sizes and all, and two calls from one client
// pipeline on its interface.
func TestBandwidthOnNetwork(t *testing.T) {
	s := sim.NewScheduler(1)
	defer s.Close()
	n := sim.NewNetwork(s, sim.Constant(0))
	n.AddNode("unit", echo{})
	const rate = 1e6
	prop := 30 * time.Microsecond
	n.SetPolicy(&sim.Bandwidth{Link: rate, Propagation: prop})
	req := &transport.Request{Op: transport.OpWrite, Addr: 1, Data: make([]byte, 1000)}
	reqBytes := len(transport.AppendRequest(nil, req))
	respBytes := len(transport.AppendResponse(nil, &transport.Response{Data: req.Data}))
	tx := func(n int) time.Duration { return time.Duration(n) * time.Microsecond } // at rate
	var took [2]time.Duration
	for i := range took {
		s.Go("client", func() {
			start := s.Now()
			_, err := n.Caller("client").Call(context.Background(), "unit", req)
			assert.NoError(t, err)
			took[i] = s.Now().Sub(start)
		})
	}
	require.NoError(t, s.Run())
	// The first: out, across, back across, in (the unit's interface
	// sends its answer as it came).
	assert.Equal(t, tx(reqBytes)+prop+tx(respBytes)+prop, took[0])
	// The second leaves after the first's request, and its answer after
	// the first's answer.
	assert.Equal(t, tx(reqBytes)+max(tx(reqBytes), tx(respBytes))+prop+tx(respBytes)+prop, took[1])
	assert.Zero(t, n.Stats().Held, "messages pipelined on one link never wait at its receiver")

	// Two clients' requests that reach the unit together: the second is
	// held while the unit's interface takes in the first.
	var c1, c2 time.Duration
	s.Go("c1", func() {
		start := s.Now()
		_, err := n.Caller("c1").Call(context.Background(), "unit", req)
		assert.NoError(t, err)
		c1 = s.Now().Sub(start)
	})
	s.Go("c2", func() {
		start := s.Now()
		_, err := n.Caller("c2").Call(context.Background(), "unit", req)
		assert.NoError(t, err)
		c2 = s.Now().Sub(start)
	})
	require.NoError(t, s.Run())
	assert.Equal(t, uint64(1), n.Stats().Held)
	assert.Equal(t, took[0], c1)
	assert.Equal(t, tx(reqBytes)+max(tx(reqBytes), tx(respBytes))+prop+tx(respBytes)+prop, c2)
}
