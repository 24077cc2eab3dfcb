package sim

import (
	"math/rand/v2"
	"time"

	"github.com/corfulog/corfu/transport"
)

// Gbps is a rate of one gigabit per second, in bytes per second: the unit
// of Bandwidth's rates.
const Gbps = 1e9 / 8

// Bandwidth is a Policy and a Gate that model what a message costs on its
// way, for throughput experiments: every node has a network interface of
// Link bytes per second in each direction (full duplex), every message
// crosses a wire and a switch in Propagation, and a server may take time
// of its own for a message (Service). Each of these is a first-in,
// first-out queue with a busy-until time:
//
//   - the sender's interface sends the message's len(Data) bytes once it
//     has sent what was queued before it (Route, at sending);
//   - the receiver's interface takes the bytes in as they arrive, or, if it
//     is still taking in earlier messages, after them, at Link: the
//     switch port in front of it queues them (Admit, at arrival);
//   - a request then waits for its server's Service time, after the
//     server's earlier work, before the server sees it; a response waits
//     for its server's Service time before its sender's interface sends it.
//
// A message's delay is the sum of its waits, its transmission times and
// Propagation. Nothing is lost or duplicated, and the messages of one
// directed link arrive in the order they were sent.
//
// Bandwidth keeps its queues' state, so one value serves one network. Its
// maps are only looked up, never iterated.
type Bandwidth struct {
	// Link is each node's interface rate in bytes per second, per
	// direction (1 Gb/s is Gbps). Zero or less means infinitely fast.
	Link float64
	// Propagation is the one-way time of the wire and the switch.
	Propagation time.Duration
	// Service, if set, gives a server's time for a message: for a request
	// (m.Reply false) that reaches m.To, the time before m.To's handler
	// sees it; for a response (m.Reply true) that m.From sends, the time
	// before it leaves. A node does one such piece of work at a time, in
	// order of arrival (requests) and sending (responses). Zero means
	// none.
	Service func(m *Message) time.Duration

	tx      map[transport.NodeID]time.Time // sending interface busy until
	rx      map[transport.NodeID]time.Time // receiving interface busy until
	busy    map[transport.NodeID]time.Time // server busy until
	pending map[*Message]time.Time         // held arrivals, and when they are done
}

var (
	_ Policy = (*Bandwidth)(nil)
	_ Gate   = (*Bandwidth)(nil)
)

// transmit returns the time n bytes take at rate bytes per second.
func transmit(n int, rate float64) time.Duration {
	if rate <= 0 || n <= 0 {
		return 0
	}
	return toDuration(float64(n) / rate * float64(time.Second))
}

// later returns the later of a and b.
func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func (b *Bandwidth) init() {
	if b.tx == nil {
		b.tx = make(map[transport.NodeID]time.Time)
		b.rx = make(map[transport.NodeID]time.Time)
		b.busy = make(map[transport.NodeID]time.Time)
		b.pending = make(map[*Message]time.Time)
	}
}

// serve queues d of work on node's server from at on, and returns when
// it is done.
func (b *Bandwidth) serve(node transport.NodeID, at time.Time, d time.Duration) time.Time {
	if d <= 0 {
		return at
	}
	done := later(at, b.busy[node]).Add(d)
	b.busy[node] = done
	return done
}

// Route queues m on its sender's interface (after the server's Service
// time, for a response) and returns the time until its last byte reaches
// the receiver: the wait, the transmission and Propagation.
func (b *Bandwidth) Route(now time.Time, _ *rand.Rand, m *Message) Decision {
	b.init()
	ready := now
	if m.Reply && b.Service != nil {
		ready = b.serve(m.From, now, b.Service(m))
	}
	sent := later(ready, b.tx[m.From]).Add(transmit(len(m.Data), b.Link))
	b.tx[m.From] = sent
	return Decision{Delay: sent.Sub(now) + b.Propagation}
}

// Admit takes m in on its receiver's interface, after what that interface
// is still taking in, and, for a request, queues it for its server's
// Service time. It holds m until both are done.
func (b *Bandwidth) Admit(now time.Time, m *Message) Admission {
	b.init()
	if done, ok := b.pending[m]; ok {
		if now.Before(done) {
			return Admission{Hold: done.Sub(now)}
		}
		delete(b.pending, m)
		return Admission{}
	}
	// NB: when the interface is idle, the bytes came in as they were sent:
	// the message is in when its last byte is. Otherwise the switch held
	// it, and it comes in at Link after the ones before it.
	done := later(now, b.rx[m.To].Add(transmit(len(m.Data), b.Link)))
	b.rx[m.To] = done
	if !m.Reply && b.Service != nil {
		done = b.serve(m.To, done, b.Service(m))
	}
	if !done.After(now) {
		return Admission{}
	}
	b.pending[m] = done
	return Admission{Hold: done.Sub(now)}
}
