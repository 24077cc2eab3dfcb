package sim

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/corfulog/corfu/transport"
)

// LatencyModel gives the one-way delay of a message from one node to
// another. It draws any randomness it needs from r, the network's own
// stream.
type LatencyModel interface {
	Delay(r *rand.Rand, from, to transport.NodeID) time.Duration
}

// Constant is a LatencyModel with the same delay for every message.
type Constant time.Duration

// Delay returns c.
func (c Constant) Delay(*rand.Rand, transport.NodeID, transport.NodeID) time.Duration {
	return time.Duration(c)
}

// Message is one message in flight, as a Policy sees it.
type Message struct {
	ID    uint64 // the call's ID, shared by its request and its response
	From  transport.NodeID
	To    transport.NodeID
	Reply bool         // a response on its way back to the caller
	Op    transport.Op // the request's operation, also on its response
	Data  []byte       // the encoded request or response
	Sent  time.Time    // the virtual time it was sent; set by the network
	// Held, on a response, is how long the server held its request before
	// it answered: zero but for a parked read (transport.ReadWaits).
	Held time.Duration
}

// Decision is what a Policy does with a message. The zero Decision delivers
// it at once.
type Decision struct {
	Drop       bool            // lose the message; Delay and Duplicates are ignored
	Delay      time.Duration   // deliver after this long
	Duplicates []time.Duration // deliver one extra copy after each of these
	// Swap forces a reorder (fault catalog N6): the message trades arrival
	// times with a message sent earlier on the same directed link (same
	// sender, receiver and direction) that is still in flight and due
	// before it, so the later message arrives first. The earlier message is
	// drawn from the link's eligible ones with the network's stream. Nothing
	// happens if there is none. Only the first copy (not Duplicates) takes
	// part.
	Swap bool
}

// Gate is an optional interface of a Policy for faults that act when a
// message arrives rather than when it is sent: a node that is paused holds
// what reaches it, a node that crashed loses what was in flight to it. If
// the network's Policy implements Gate, Admit is asked about every copy of
// every message as it arrives, before the node or the caller sees it.
//
// Admit runs in the scheduler and must not block; now is the virtual time
// of arrival and m.Sent the time of sending.
type Gate interface {
	Admit(now time.Time, m *Message) Admission
}

// Admission is what a Gate does with an arriving message. The zero
// Admission delivers it.
type Admission struct {
	Drop bool          // lose the message
	Hold time.Duration // if positive, hold it and ask again after this long
}

// Policy decides the fate of every message the network carries, requests
// and responses alike. It is where faults live: loss, duplication, delay,
// reordering (by unequal delays), partitions and asymmetric links are all
// decisions about messages at the boundary, never code inside a protocol.
//
// Route runs in the scheduler; it must not block. r is the network's
// random stream, now the virtual time of sending. A Policy may change
// m.Data (to corrupt it, say) but must not keep it.
type Policy interface {
	Route(now time.Time, r *rand.Rand, m *Message) Decision
}

// PolicyFunc adapts a function to the Policy interface.
type PolicyFunc func(now time.Time, r *rand.Rand, m *Message) Decision

// Route calls f.
func (f PolicyFunc) Route(now time.Time, r *rand.Rand, m *Message) Decision { return f(now, r, m) }

// LatencyPolicy is the default Policy: it delivers every message once,
// after the delay its Model gives. Fault policies usually wrap it.
type LatencyPolicy struct{ Model LatencyModel }

// Route returns the model's delay.
func (p LatencyPolicy) Route(_ time.Time, r *rand.Rand, m *Message) Decision {
	return Decision{Delay: p.Model.Delay(r, m.From, m.To)}
}

// Stats counts what the network did with its messages.
type Stats struct {
	Calls         uint64 // calls made
	Sent          uint64 // messages handed to the policy, requests and responses
	Delivered     uint64 // copies that reached a node or a caller
	Dropped       uint64 // messages the policy dropped
	Duplicated    uint64 // extra copies the policy added
	Undeliverable uint64 // requests to a node that does not exist
	LateReplies   uint64 // responses that found their call finished (timed out, or a duplicate)
	DecodeErrors  uint64 // messages that did not decode
	Swapped       uint64 // pairs of messages whose arrival times a Decision swapped
	Held          uint64 // arrivals a Gate held back
	Lost          uint64 // arrivals a Gate dropped
}

// node is one server on the network. Node-level faults (a node that is
// down, paused or crashed) hook in here, at delivery.
type node struct {
	id transport.NodeID
	h  transport.Handler
}

// flight is one copy of a message on its way; its delivery event can be
// stopped and rescheduled when a swap moves it.
type flight struct {
	m  *Message
	at time.Duration // arrival, as the scheduler's Elapsed
	tm *timer
}

// link identifies a directed link and direction, for swaps.
type link struct {
	from, to transport.NodeID
	reply    bool
}

// call is a call waiting for its response.
type call struct {
	w *Waiter
}

// result is what a response delivers to its call.
type result struct {
	resp *transport.Response
	err  error
}

// Network is a simulated network of servers on a Scheduler. Every message
// is encoded and decoded with the transport codec, as over TCP, and
// delivered by a scheduler event after the delay its Policy decides.
// Servers are plain Handlers, called synchronously on delivery; an
// AsyncHandler is served with Serve, and its answer leaves when it gives
// it (a parked read's, from the event or timer task that wakes it).
//
// Like its Scheduler, a Network is used by one task or event at a time.
type Network struct {
	s      *Scheduler
	rng    *rand.Rand
	policy Policy
	nodes  map[transport.NodeID]*node // looked up, never iterated
	calls  map[uint64]*call           // looked up, never iterated
	nextID uint64
	stats  Stats
	// inflight lists, per directed link, the first copies still in flight,
	// in order of sending, for swaps. Looked up, never iterated.
	inflight map[link][]*flight
}

// NewNetwork returns a network on s whose messages take the delays of
// latency. Its randomness is the stream s.Fork("net").
func NewNetwork(s *Scheduler, latency LatencyModel) *Network {
	return &Network{
		s:        s,
		rng:      s.Fork("net"),
		policy:   LatencyPolicy{Model: latency},
		nodes:    make(map[transport.NodeID]*node),
		calls:    make(map[uint64]*call),
		inflight: make(map[link][]*flight),
	}
}

// Scheduler returns the scheduler the network runs on.
func (n *Network) Scheduler() *Scheduler { return n.s }

// AddNode puts a server on the network, replacing any with the same ID.
func (n *Network) AddNode(id transport.NodeID, h transport.Handler) {
	n.nodes[id] = &node{id: id, h: h}
}

// SetPolicy replaces the policy that routes messages. Messages already in
// flight keep the fate they were given.
func (n *Network) SetPolicy(p Policy) { n.policy = p }

// Policy returns the policy in use, for a new one to wrap.
func (n *Network) Policy() Policy { return n.policy }

// Stats returns the network's counters.
func (n *Network) Stats() Stats { return n.stats }

// Caller returns a transport.Caller whose calls come from the node from.
// from need not be a server; clients are usually not.
//
// Call must be made from a task of the network's scheduler. It encodes the
// request, parks the task until the response arrives or ctx is done, and
// returns ctx.Err() if ctx is done first, ErrStopped if the scheduler is
// closed, an error wrapping transport.ErrMalformed if the request does not
// encode to a valid message (it is not sent) or the response does not
// decode, and otherwise the response with resp.Err as the error. A request
// to a node the network does not know is lost, as are messages the policy
// drops: the caller waits for its ctx, so a Call whose ctx has no deadline
// waits for ever and the scheduler's Run reports a deadlock. A response
// that arrives after its call gave up is dropped and counted in
// Stats.LateReplies.
func (n *Network) Caller(from transport.NodeID) transport.Caller {
	return &caller{n: n, from: from}
}

type caller struct {
	n    *Network
	from transport.NodeID
}

// Call sends req to the node to and waits for the response; see
// Network.Caller.
func (c *caller) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	n := c.n
	s := n.s
	t := s.blockingCall("Call")
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if req == nil {
		return nil, fmt.Errorf("%w: nil request", transport.ErrMalformed)
	}
	data := transport.AppendRequest(nil, req)
	// As the in-process transport does, refuse to send what the codec will
	// not take back (too many streams, say): the sender's fault, reported
	// to it at once rather than as a timeout.
	if _, err := transport.DecodeRequest(data); err != nil {
		return nil, fmt.Errorf("sim: %s to %s: %w", req.Op, to, err)
	}
	n.nextID++
	id := n.nextID
	n.stats.Calls++
	m := &Message{ID: id, From: c.from, To: to, Op: req.Op, Data: data}
	w := &Waiter{s: s, about: m}
	n.calls[id] = &call{w: w}
	n.send(m)
	v, err := s.wait(t, ctx, w)
	delete(n.calls, id)
	if err != nil {
		return nil, err
	}
	r := v.(result)
	if r.err != nil {
		return nil, r.err
	}
	return r.resp, r.resp.Err
}

// send routes m through the policy and schedules its deliveries.
func (n *Network) send(m *Message) {
	s := n.s
	n.stats.Sent++
	m.Sent = s.Now()
	d := n.policy.Route(s.Now(), n.rng, m)
	if d.Drop {
		n.stats.Dropped++
		n.note(KindDrop, m)
		return
	}
	f := n.deliverAfter(d.Delay, m)
	n.track(f, d.Swap)
	for _, dd := range d.Duplicates {
		n.stats.Duplicated++
		n.deliverAfter(dd, m)
	}
}

// deliverAfter schedules the arrival of one copy of m after d.
func (n *Network) deliverAfter(d time.Duration, m *Message) *flight {
	f := &flight{m: m, at: n.s.Elapsed() + max(d, 0), tm: &timer{}}
	n.schedule(f)
	return f
}

// schedule queues f's arrival at f.at.
func (n *Network) schedule(f *flight) {
	m := f.m
	e := event{kind: KindDeliver, label: string(m.To), tm: f.tm}
	if m.Reply {
		e.kind = KindReply
		e.label = string(m.From)
	}
	if n.s.Trace != nil {
		e.detail = m.String()
	}
	e.fn = func() {
		n.untrack(f)
		n.arrive(m)
	}
	n.s.schedule(f.at-n.s.Elapsed(), e)
}

// track records f as in flight on its link and, if swap is set, swaps it
// with an earlier message on the link that is due before it.
func (n *Network) track(f *flight, swap bool) {
	k := link{from: f.m.From, to: f.m.To, reply: f.m.Reply}
	list := n.inflight[k]
	if swap {
		var due []*flight
		for _, o := range list {
			if o.at < f.at {
				due = append(due, o)
			}
		}
		if len(due) > 0 {
			o := due[n.rng.IntN(len(due))]
			o.tm.stop()
			f.tm.stop()
			o.at, f.at = f.at, o.at
			o.tm, f.tm = &timer{}, &timer{}
			// NB: the earlier arrival goes first into the queue, so that
			// the swapped pair keeps its new order even at equal times.
			n.schedule(f)
			n.schedule(o)
			n.stats.Swapped++
		}
	}
	n.inflight[k] = append(list, f)
}

// untrack forgets f once it has arrived.
func (n *Network) untrack(f *flight) {
	k := link{from: f.m.From, to: f.m.To, reply: f.m.Reply}
	list := n.inflight[k]
	for i, o := range list {
		if o == f {
			list = append(list[:i], list[i+1:]...)
			break
		}
	}
	if len(list) == 0 {
		delete(n.inflight, k)
	} else {
		n.inflight[k] = list
	}
}

// note records an event that is not queued, such as a drop.
func (n *Network) note(k Kind, m *Message) {
	detail := ""
	if n.s.Trace != nil {
		detail = m.String()
	}
	n.s.record(0, k, string(m.To), detail)
	n.s.hashBytes(m.Data)
}

// String describes a message for traces.
func (m *Message) String() string {
	dir := "request"
	if m.Reply {
		dir = "response"
	}
	if m.Held > 0 {
		return fmt.Sprintf("%s %d %s->%s %v, %d bytes, answered after %v", dir, m.ID, m.From, m.To, m.Op, len(m.Data), m.Held)
	}
	return fmt.Sprintf("%s %d %s->%s %v, %d bytes", dir, m.ID, m.From, m.To, m.Op, len(m.Data))
}

// arrive is the arrival of one copy of m: the policy's Gate, if it has one,
// may hold or drop it before it is delivered.
func (n *Network) arrive(m *Message) {
	if g, ok := n.policy.(Gate); ok {
		a := g.Admit(n.s.Now(), m)
		switch {
		case a.Drop:
			n.stats.Lost++
			n.note(KindDrop, m)
			return
		case a.Hold > 0:
			n.stats.Held++
			n.s.hashBytes(m.Data)
			f := &flight{m: m, at: n.s.Elapsed() + a.Hold, tm: &timer{}}
			e := event{kind: KindDeliver, label: string(m.To), tm: f.tm}
			if m.Reply {
				e.kind = KindReply
				e.label = string(m.From)
			}
			if n.s.Trace != nil {
				e.detail = "held " + m.String()
			}
			e.fn = func() { n.arrive(m) }
			n.s.schedule(a.Hold, e)
			return
		}
	}
	n.deliver(m)
}

// deliver is a message's arrival: a request is served by its node and the
// response sent back; a response wakes its call if the call still waits.
func (n *Network) deliver(m *Message) {
	n.s.hashBytes(m.Data)
	if m.Reply {
		n.deliverReply(m)
		return
	}
	nd := n.nodes[m.To]
	if nd == nil {
		n.stats.Undeliverable++
		return
	}
	n.stats.Delivered++
	req, err := transport.DecodeRequest(m.Data)
	if err != nil {
		// A server cannot answer what it cannot parse; as over TCP, the
		// caller sees nothing and times out.
		n.stats.DecodeErrors++
		return
	}
	arrived := n.s.Now()
	reply := func(resp *transport.Response) {
		if resp == nil {
			panic(fmt.Sprintf("sim: node %s returned a nil response to op %d", m.To, req.Op))
		}
		n.send(&Message{ID: m.ID, From: m.To, To: m.From, Reply: true, Op: m.Op, Data: transport.AppendResponse(nil, resp),
			Held: n.s.Now().Sub(arrived)})
	}
	if ah, ok := nd.h.(transport.AsyncHandler); ok {
		ah.Serve(req, reply) // NB: a late answer is sent from the event or task that gives it
		return
	}
	reply(nd.h.Handle(req))
}

func (n *Network) deliverReply(m *Message) {
	c := n.calls[m.ID]
	if c == nil || c.w.Woken() {
		n.stats.LateReplies++
		return
	}
	n.stats.Delivered++
	resp, err := transport.DecodeResponse(m.Data)
	if err != nil {
		n.stats.DecodeErrors++
		err = fmt.Errorf("sim: response to call %d from %s: %w", m.ID, m.From, err)
	}
	c.w.Wake(result{resp: resp, err: err})
}
