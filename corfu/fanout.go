package corfu

import (
	"context"
	"slices"
	"sync/atomic"
	"time"

	"github.com/corfulog/corfu/projection"
)

// each runs f(0), ..., f(n-1) concurrently, each in a task of the client's
// Env, and returns once all of them have. f must respect its own
// deadlines: each waits for every one of them. Callers gather what the
// calls found into slices indexed by i and look at them in index order, so
// that the outcome never depends on which call came back first.
func (c *Client) each(name string, n int, f func(i int)) {
	if n <= 1 {
		if n == 1 {
			f(0)
		}
		return
	}
	var left atomic.Int64
	left.Store(int64(n))
	done := c.env.NewSignal(name)
	for i := range n {
		c.env.Go(name, func() {
			f(i)
			if left.Add(-1) == 0 {
				done.Fire()
			}
		})
	}
	_ = done.Wait(context.Background())
}

// suspectsKey carries, in a reconfiguration's ctx, the nodes its caller
// (a failure detector) already found unresponsive, and how long to give
// each of them.
type suspectsKey struct{}

type suspects struct {
	nodes   []projection.NodeID
	timeout time.Duration
}

// withSuspects returns ctx telling the reconfiguration it starts that
// nodes did not answer the caller's probes: its seal sends each of them a
// seal, with timeout, and goes on without waiting for the answer.
func withSuspects(ctx context.Context, nodes []projection.NodeID, timeout time.Duration) context.Context {
	return context.WithValue(ctx, suspectsKey{}, suspects{nodes: nodes, timeout: timeout})
}

// suspectOf reports whether ctx names node a suspect, and its timeout.
func suspectOf(ctx context.Context, node projection.NodeID) (time.Duration, bool) {
	s, ok := ctx.Value(suspectsKey{}).(suspects)
	if !ok || !slices.Contains(s.nodes, node) {
		return 0, false
	}
	return s.timeout, true
}
