package corfu_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// Test timing: a hop gives up after rpcTimeout, a reader fills a hole after
// holeFillWait. Nothing in the tests sleeps; these only bound how long the
// client itself waits.
const (
	rpcTimeout   = 5 * time.Millisecond
	holeFillWait = 40 * time.Millisecond
	testTimeout  = 10 * time.Second // a test's overall ctx: it never expires in a passing run
)

// testConfig returns cfg with the test timings filled in.
func testConfig(cfg corfu.Config) corfu.Config {
	cfg.RPCTimeout = rpcTimeout
	cfg.HoleFillWait = holeFillWait
	cfg.Backoff = time.Millisecond
	cfg.MaxBackoff = 4 * time.Millisecond
	cfg.FollowPoll = time.Millisecond
	cfg.MaxRetries = 8
	return cfg
}

// env is one test's cluster, the network wrapper its clients use, and a
// client.
type env struct {
	t   *testing.T
	cl  *corfutest.Cluster
	net *faultNet
	c   *corfu.Client
	ctx context.Context
}

// newEnv builds a cluster with opts and opens a client on it through a
// faultNet. tune, if not nil, adjusts the client's Config before Open.
func newEnv(t *testing.T, opts corfutest.Options, tune func(*corfu.Config)) *env {
	t.Helper()
	cl, err := corfutest.New(opts)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), testTimeout)
	t.Cleanup(cancel)
	e := &env{t: t, cl: cl, net: &faultNet{next: cl.Net}, ctx: ctx}
	e.c = e.open(tune)
	return e
}

// open opens another client on the env's cluster and network.
func (e *env) open(tune func(*corfu.Config)) *corfu.Client {
	e.t.Helper()
	cfg := testConfig(e.cl.Config())
	cfg.Transport = e.net
	if tune != nil {
		tune(&cfg)
	}
	c, err := corfu.Open(e.ctx, cfg)
	require.NoError(e.t, err)
	return c
}

// replica is one replica of the chain that holds a global address.
type replica struct {
	id    projection.NodeID
	unit  *storage.Memory
	local storage.Address
}

// chain returns the replicas of addr's chain in the cluster's initial
// projection, head first.
func (e *env) chain(addr storage.Address) []replica {
	e.t.Helper()
	loc, err := e.cl.Projection.Locate(addr)
	require.NoError(e.t, err)
	var out []replica
	for _, id := range loc.Chain {
		u := e.cl.Unit(id)
		require.NotNil(e.t, u, "unit %s", id)
		out = append(out, replica{id: id, unit: u, local: loc.Local})
	}
	return out
}

// token takes n addresses from the sequencer directly, as a writer that
// then crashes would; it returns the first.
func (e *env) token(n int, streams ...corfu.StreamID) storage.Address {
	e.t.Helper()
	tok, err := e.cl.Sequencer.Next(0, n, streams)
	require.NoError(e.t, err)
	return tok.Start
}

// junk fills addr with junk on every replica of its chain, at epoch 0.
func (e *env) junk(addr storage.Address) {
	e.t.Helper()
	for _, r := range e.chain(addr) {
		require.NoError(e.t, r.unit.Fill(e.ctx, 0, r.local))
	}
}

// state reports what each replica of addr's chain holds.
func (e *env) state(addr storage.Address) []storage.State {
	var out []storage.State
	for _, r := range e.chain(addr) {
		s, _ := r.unit.Inspect(r.local)
		out = append(out, s)
	}
	return out
}

// rawEntry returns the stored form of an entry holding data in no stream,
// as the client writes it: appended on a throwaway cluster and read off its
// unit, so the tests do not depend on the entry format.
func rawEntry(t *testing.T, data []byte) []byte {
	t.Helper()
	e := newEnv(t, corfutest.Options{Units: 1, Replicas: 1, Layouts: 1}, nil)
	a, err := e.c.Append(e.ctx, data)
	require.NoError(t, err)
	s, raw := e.chain(a)[0].unit.Inspect(e.chain(a)[0].local)
	require.Equal(t, storage.StateData, s)
	return raw
}

// action is what a faultNet does with one request.
type action int

const (
	pass      action = iota // deliver it and return the answer
	loseReply               // deliver it, then report the node unreachable
	refuse                  // deliver nothing; report the node unreachable
	hang                    // deliver nothing; wait for the caller's ctx
	late                    // deliver it; answer only once the caller's ctx is done
	duplicate               // deliver it twice, as a duplicating network does; answer the second
)

// faultNet wraps a Caller and lets a test decide, per request, whether it is
// delivered and whether its answer comes back. It counts the requests of
// each op that reached it.
type faultNet struct {
	next transport.Caller

	mu     sync.Mutex
	rule   func(to transport.NodeID, req *transport.Request) action
	after  func(to transport.NodeID, req *transport.Request) // runs once a passed request is answered
	counts map[transport.Op]int
}

// setAfter installs f to run after each passed request is answered.
func (n *faultNet) setAfter(f func(to transport.NodeID, req *transport.Request)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.after = f
}

// setRule installs rule; nil passes everything.
func (n *faultNet) setRule(rule func(to transport.NodeID, req *transport.Request) action) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.rule = rule
}

// count returns how many requests of op the network saw.
func (n *faultNet) count(op transport.Op) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.counts[op]
}

// Call implements transport.Caller.
func (n *faultNet) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	n.mu.Lock()
	if n.counts == nil {
		n.counts = map[transport.Op]int{}
	}
	n.counts[req.Op]++
	rule, after := n.rule, n.after
	n.mu.Unlock()
	act := pass
	if rule != nil {
		act = rule(to, req) // NB: unlocked, so that a rule may call the network
	}
	switch act {
	case loseReply:
		if _, err := n.next.Call(ctx, to, req); err != nil && ctx.Err() != nil {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %s: reply lost", transport.ErrUnreachable, to)
	case refuse:
		return nil, fmt.Errorf("%w: %s: refused", transport.ErrUnreachable, to)
	case hang:
		<-ctx.Done()
		return nil, ctx.Err()
	case late:
		resp, err := n.next.Call(ctx, to, req)
		<-ctx.Done()
		return resp, err
	case duplicate:
		if _, err := n.next.Call(ctx, to, req); err != nil {
			return nil, err
		}
	}
	resp, err := n.next.Call(ctx, to, req)
	if after != nil {
		after(to, req)
	}
	return resp, err
}
