package corfu_test

import (
	"context"
	"errors"
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

// recorder is a hook implementing every Hook interface: it keeps each event.
type recorder struct {
	mu        sync.Mutex
	appends   []corfu.AppendEvent
	reads     []corfu.ReadEvent
	retries   []corfu.RetryEvent
	refreshes []corfu.RefreshEvent
	reconfigs []corfu.ReconfigureEvent
	detector  []corfu.DetectorEvent
}

func (r *recorder) OnAppend(ev corfu.AppendEvent) {
	r.mu.Lock()
	r.appends = append(r.appends, ev)
	r.mu.Unlock()
}
func (r *recorder) OnRead(ev corfu.ReadEvent) {
	r.mu.Lock()
	r.reads = append(r.reads, ev)
	r.mu.Unlock()
}
func (r *recorder) OnRetry(ev corfu.RetryEvent) {
	r.mu.Lock()
	r.retries = append(r.retries, ev)
	r.mu.Unlock()
}
func (r *recorder) OnRefresh(ev corfu.RefreshEvent) {
	r.mu.Lock()
	r.refreshes = append(r.refreshes, ev)
	r.mu.Unlock()
}
func (r *recorder) OnReconfigure(ev corfu.ReconfigureEvent) {
	r.mu.Lock()
	r.reconfigs = append(r.reconfigs, ev)
	r.mu.Unlock()
}
func (r *recorder) OnDetectorEvent(ev corfu.DetectorEvent) {
	r.mu.Lock()
	r.detector = append(r.detector, ev)
	r.mu.Unlock()
}

// reset forgets every event so far.
func (r *recorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.appends, r.reads, r.retries, r.refreshes, r.reconfigs, r.detector = nil, nil, nil, nil, nil, nil
}

// newHooked builds an env whose client reports to a new recorder.
func newHooked(t *testing.T, opts corfutest.Options) (*env, *recorder) {
	rec := &recorder{}
	e := newEnv(t, opts, func(cfg *corfu.Config) { cfg.Hooks = []corfu.Hook{rec} })
	return e, rec
}

// TestHooksAppendAndRead: one append event per Append call, with its
// address, size, tokens and outcome, a failing one (bad argument) included;
// one read event per Read, ErrUnwritten being an outcome too; one refresh
// at Open.
func TestHooksAppendAndRead(t *testing.T) {
	e, rec := newHooked(t, corfutest.Options{})
	require.Len(t, rec.refreshes, 1)
	require.Equal(t, []corfu.RefreshEvent{{Min: 0, Epoch: 0, Took: rec.refreshes[0].Took}}, rec.refreshes, "Open's fetch")

	a, err := e.c.Append(e.ctx, []byte("hello"), 3, 4)
	require.NoError(t, err)
	_, err = e.c.Append(e.ctx, nil)
	require.ErrorIs(t, err, corfu.ErrNilData)
	_, err = e.c.Read(e.ctx, a)
	require.NoError(t, err)
	_, err = e.c.Read(e.ctx, 9)
	require.ErrorIs(t, err, corfu.ErrUnwritten)

	require.Len(t, rec.appends, 2)
	ok, bad := rec.appends[0], rec.appends[1]
	require.Equal(t, corfu.AppendEvent{Addr: a, Bytes: 5, Streams: 2, Tokens: 1, Took: ok.Took}, ok)
	require.GreaterOrEqual(t, ok.Took, time.Duration(0))
	require.Equal(t, 0, bad.Tokens)
	require.Equal(t, "invalid", corfu.Outcome(bad.Err))

	require.Len(t, rec.reads, 2)
	require.Equal(t, corfu.ReadEvent{Addr: a, Bytes: 5, Took: rec.reads[0].Took}, rec.reads[0])
	require.Equal(t, storage.Address(9), rec.reads[1].Addr)
	require.Equal(t, "unwritten", corfu.Outcome(rec.reads[1].Err))
	require.Empty(t, rec.retries, "nothing failed to answer")
	require.Empty(t, rec.reconfigs)
}

// TestHooksFailingAppend: an append whose sequencer never answers fails
// with ErrRetriesExhausted, having been handed no address; each retry is
// reported first, with its backoff and why.
func TestHooksFailingAppend(t *testing.T) {
	e, rec := newHooked(t, corfutest.Options{})
	seq := e.c.Projection().Sequencer
	e.net.setRule(func(to transport.NodeID, _ *transport.Request) action {
		if to == seq {
			return refuse
		}
		return pass
	})
	_, err := e.c.Append(e.ctx, []byte("x"))
	require.ErrorIs(t, err, corfu.ErrRetriesExhausted)

	require.Len(t, rec.appends, 1)
	ev := rec.appends[0]
	require.Equal(t, "retries_exhausted", corfu.Outcome(ev.Err))
	require.Equal(t, err, ev.Err, "the event carries what Append returned")
	require.Zero(t, ev.Tokens)
	require.Len(t, rec.retries, 8, "one between each two of the MaxRetries+1 attempts")
	for i, r := range rec.retries {
		require.Equal(t, i+1, r.Attempt)
		require.Equal(t, "unreachable", corfu.Outcome(r.Err))
		require.Positive(t, r.Delay)
	}
}

// TestHooksRetryTimeout: a request that got no answer within RPCTimeout
// is retried as a "timeout"; the append then succeeds.
func TestHooksRetryTimeout(t *testing.T) {
	e, rec := newHooked(t, corfutest.Options{})
	seq := e.c.Projection().Sequencer
	var once sync.Once
	e.net.setRule(func(to transport.NodeID, _ *transport.Request) action {
		act := pass
		if to == seq {
			once.Do(func() { act = hang })
		}
		return act
	})
	_, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	require.Len(t, rec.retries, 1)
	require.Equal(t, "timeout", corfu.Outcome(rec.retries[0].Err))
	require.Equal(t, "ok", corfu.Outcome(rec.appends[0].Err))
}

// TestHooksLostRace: an append whose address a hole filler took before
// its write reached the head is handed a second one, and says so.
func TestHooksLostRace(t *testing.T) {
	e, rec := newHooked(t, corfutest.Options{})
	filled := false
	e.net.setRule(func(_ transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWrite && !filled {
			filled = true
			e.junk(0) // NB: a reader filled address 0 just before our write
		}
		return pass
	})
	a, err := e.c.Append(e.ctx, []byte("ours"))
	require.NoError(t, err)
	require.Equal(t, storage.Address(1), a)
	require.Len(t, rec.appends, 1)
	require.Equal(t, corfu.AppendEvent{Addr: 1, Bytes: 4, Tokens: 2, Took: rec.appends[0].Took}, rec.appends[0])
}

// TestHooksReconfigureAndRefresh: a reconfiguration reports the epochs it
// went from and to; a client that meets the new epoch refreshes to it.
func TestHooksReconfigureAndRefresh(t *testing.T) {
	e, rec := newHooked(t, corfutest.Options{})
	other := e.open(nil)
	p, err := other.Reconfigure(e.ctx, nil)
	require.NoError(t, err)
	require.Empty(t, rec.reconfigs, "another client's")
	rec.reset()

	_, err = e.c.Append(e.ctx, []byte("x")) // meets the seal of epoch 1
	require.NoError(t, err)
	require.Len(t, rec.refreshes, 1)
	require.Equal(t, corfu.RefreshEvent{Min: p.Epoch, Epoch: p.Epoch, Took: rec.refreshes[0].Took}, rec.refreshes[0])

	q, err := e.c.Reconfigure(e.ctx, nil)
	require.NoError(t, err)
	require.Len(t, rec.reconfigs, 1)
	require.Equal(t, corfu.ReconfigureEvent{From: p.Epoch, Epoch: q.Epoch, Took: rec.reconfigs[0].Took}, rec.reconfigs[0])

	// NB: a change that fails is reported with its error.
	boom := errors.New("boom")
	_, err = e.c.Reconfigure(e.ctx, func(*projection.Projection, storage.Address) (*projection.Projection, error) { return nil, boom })
	require.ErrorIs(t, err, boom)
	require.Len(t, rec.reconfigs, 2)
	require.ErrorIs(t, rec.reconfigs[1].Err, boom)
	require.Equal(t, q.Epoch, rec.reconfigs[1].From)
}

// TestHooksDetector: a detector on a hooked client reports each action as
// its OnEvent does, and the reconfiguration it ran.
func TestHooksDetector(t *testing.T) {
	e, rec := newHooked(t, corfutest.Options{Units: 4, Replicas: 2, Spares: 1})
	var onEvent []corfu.DetectorEvent
	d := corfu.NewDetector(e.c, corfu.DetectorConfig{
		Spares: []projection.NodeID{"spare0"}, Timeout: time.Second,
		OnEvent: func(ev corfu.DetectorEvent) { onEvent = append(onEvent, ev) },
	})
	e.cl.Net.Remove("unit0")
	for range 3 {
		d.Step(e.ctx)
	}
	require.Equal(t, onEvent, rec.detector)
	var kinds []string
	for _, ev := range rec.detector {
		kinds = append(kinds, ev.Kind+"/"+corfu.Outcome(ev.Err))
	}
	require.Equal(t, []string{"suspect/ok", "replace/ok"}, kinds)
	require.Len(t, rec.reconfigs, 1)
	require.Equal(t, storage.Epoch(0), rec.reconfigs[0].From)
	require.Equal(t, storage.Epoch(1), rec.reconfigs[0].Epoch)
}

// TestHookImplementingNothing: a hook that implements no Hook interface (a
// misspelt method) is an invalid Config.
func TestHookImplementingNothing(t *testing.T) {
	cl, err := corfutest.New(corfutest.Options{})
	require.NoError(t, err)
	cfg := cl.Config()
	cfg.Hooks = []corfu.Hook{struct{ OnAppended func(corfu.AppendEvent) }{}}
	_, err = corfu.Open(context.Background(), cfg)
	require.ErrorIs(t, err, corfu.ErrInvalidConfig)
}

func TestOutcome(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nil, "ok"},
		{&corfu.UnknownOutcomeError{Addr: 3, Cause: context.DeadlineExceeded}, "unknown_outcome"},
		{fmt.Errorf("corfu: append: %w", context.Canceled), "canceled"},
		{fmt.Errorf("corfu: append: %w: %w", corfu.ErrRetriesExhausted, transport.ErrUnreachable), "retries_exhausted"},
		{fmt.Errorf("corfu: append: %w", corfu.ErrTooLarge), "invalid"},
		{fmt.Errorf("corfu: read 3: %w", corfu.ErrJunk), "junk"},
		{&storage.SealedError{Epoch: 4}, "sealed"},
		{corfu.ErrNotReady, "not_ready"},
		{errors.New("something else"), "other"},
	} {
		require.Equal(t, tc.want, corfu.Outcome(tc.err), "%v", tc.err)
	}
}
