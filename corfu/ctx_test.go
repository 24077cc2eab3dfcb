package corfu_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

func TestCancelledContext(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	e.appendN(3, 1)
	hole := e.token(1)
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	ops := []struct {
		name string
		do   func() error
	}{
		{name: "open", do: func() error {
			cfg := testConfig(e.cl.Config())
			_, err := corfu.Open(ctx, cfg)
			return err
		}},
		{name: "append", do: func() error { _, err := e.c.Append(ctx, []byte("x")); return err }},
		{name: "read", do: func() error { _, err := e.c.Read(ctx, 0); return err }},
		{name: "read hole", do: func() error { _, err := e.c.Read(ctx, hole); return err }},
		{name: "read past tail", do: func() error { _, err := e.c.Read(ctx, 100); return err }},
		{name: "fill", do: func() error { return e.c.Fill(ctx, hole) }},
		{name: "trim", do: func() error { return e.c.Trim(ctx, 0) }},
		{name: "prefix trim", do: func() error { return e.c.PrefixTrim(ctx, 1) }},
		{name: "tail", do: func() error { _, err := e.c.Tail(ctx); return err }},
		{name: "stream sync", do: func() error { _, err := e.c.Stream(1, 0).Sync(ctx); return err }},
		{name: "stream append", do: func() error { _, err := e.c.Stream(1, 0).Append(ctx, []byte("x")); return err }},
		{name: "range", do: func() error {
			for _, err := range e.c.Range(ctx, 0, 3) {
				return err
			}
			return errors.New("range yielded nothing")
		}},
		{name: "follow", do: func() error {
			for _, err := range e.c.Follow(ctx, 0) {
				return err
			}
			return errors.New("follow yielded nothing")
		}},
	}
	for _, op := range ops {
		t.Run(op.name, func(t *testing.T) {
			err := op.do()
			require.ErrorIs(t, err, context.Canceled)
			assert.NotErrorIs(t, err, corfu.ErrUnknownOutcome)
		})
	}
	// Nothing changed.
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, hole+1, tail)
	assert.Equal(t, []storage.State{storage.StateUnwritten, storage.StateUnwritten}, e.state(hole))
	assert.Equal(t, data2, e.state(0))
}

func TestDeadlineDuringHoleWait(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.HoleFillWait = time.Hour })
	hole := e.token(1)
	ctx, cancel := context.WithTimeout(e.ctx, 30*time.Millisecond)
	defer cancel()
	_, err := e.c.Read(ctx, hole)
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Equal(t, []storage.State{storage.StateUnwritten, storage.StateUnwritten}, e.state(hole), "no fill")
	assert.NoError(t, e.ctx.Err())
}

func TestAppendUnknownOutcome(t *testing.T) {
	tests := []struct {
		name       string
		retries    int
		deadline   time.Duration
		cause      error
		notCause   error
		resolveTo  string // what a later read of the address finds
		blockWrite action
	}{
		{name: "deadline while the tail hangs", retries: 1000, deadline: 60 * time.Millisecond,
			blockWrite: hang, cause: context.DeadlineExceeded},
		{name: "retries run out on the tail", retries: 2, deadline: testTimeout,
			blockWrite: refuse, cause: corfu.ErrRetriesExhausted},
		{name: "tail times out every time", retries: 2, deadline: testTimeout,
			blockWrite: hang, cause: corfu.ErrRetriesExhausted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.MaxRetries = tt.retries })
			_, err := e.c.Append(e.ctx, []byte("first"))
			require.NoError(t, err)
			target := e.chain(1)[1] // the tail replica of the next address
			e.net.setRule(func(to transport.NodeID, req *transport.Request) action {
				if to == target.id && req.Op == transport.OpWrite {
					return tt.blockWrite
				}
				return pass
			})
			ctx, cancel := context.WithTimeout(e.ctx, tt.deadline)
			defer cancel()
			start := time.Now()
			_, err = e.c.Append(ctx, []byte("maybe"))
			require.Error(t, err)
			assert.Less(t, time.Since(start), 5*time.Second)
			require.ErrorIs(t, err, corfu.ErrUnknownOutcome)
			assert.NotErrorIs(t, err, context.DeadlineExceeded, "distinct from the caller's deadline")
			assert.NotErrorIs(t, err, context.Canceled)
			var uo *corfu.UnknownOutcomeError
			require.ErrorAs(t, err, &uo)
			assert.Equal(t, storage.Address(1), uo.Addr)
			assert.ErrorIs(t, uo.Cause, tt.cause)
			assert.Contains(t, err.Error(), "address 1")
			assert.Equal(t, []storage.State{storage.StateData, storage.StateUnwritten}, e.state(1), "head only")

			// Once the replica is back, a reader completes the chain: the
			// entry appears at the address the error named.
			e.net.setRule(nil)
			got, err := e.open(nil).Read(e.ctx, uo.Addr)
			require.NoError(t, err)
			assert.Equal(t, "maybe", string(got.Data))
			assert.Equal(t, data2, e.state(1))
		})
	}
}

func TestAppendDefiniteFailures(t *testing.T) {
	// Failures before any replica took the entry are not unknown outcomes.
	tests := []struct {
		name string
		rule func(to transport.NodeID, req *transport.Request) action
		want error
	}{
		{name: "sequencer unreachable", want: transport.ErrUnreachable, rule: func(to transport.NodeID, req *transport.Request) action {
			if req.Op == transport.OpToken {
				return refuse
			}
			return pass
		}},
		{name: "sequencer hangs", want: corfu.ErrRetriesExhausted, rule: func(to transport.NodeID, req *transport.Request) action {
			if req.Op == transport.OpToken {
				return hang
			}
			return pass
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.MaxRetries = 2 })
			e.net.setRule(tt.rule)
			_, err := e.c.Append(e.ctx, []byte("x"))
			require.ErrorIs(t, err, tt.want)
			assert.NotErrorIs(t, err, corfu.ErrUnknownOutcome)
			for _, u := range e.cl.Units {
				assert.Zero(t, u.Tail(), "nothing written")
			}
		})
	}

	t.Run("ctx ends once the token is taken", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{}, nil)
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		e.net.setAfter(func(_ transport.NodeID, req *transport.Request) {
			if req.Op == transport.OpToken {
				cancel()
			}
		})
		_, err := e.c.Append(ctx, []byte("x"))
		require.ErrorIs(t, err, context.Canceled)
		assert.NotErrorIs(t, err, corfu.ErrUnknownOutcome, "no write was sent")
		for _, u := range e.cl.Units {
			assert.Zero(t, u.Tail(), "nothing written")
		}
	})

	t.Run("ctx ends once the head has it", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{}, nil)
		ctx, cancel := context.WithCancel(e.ctx)
		defer cancel()
		head := e.chain(0)[0]
		e.net.setAfter(func(to transport.NodeID, req *transport.Request) {
			if to == head.id && req.Op == transport.OpWrite {
				cancel()
			}
		})
		_, err := e.c.Append(ctx, []byte("x"))
		require.ErrorIs(t, err, corfu.ErrUnknownOutcome)
		assert.NotErrorIs(t, err, context.Canceled)
		var uo *corfu.UnknownOutcomeError
		require.ErrorAs(t, err, &uo)
		assert.Equal(t, storage.Address(0), uo.Addr)
		assert.ErrorIs(t, uo.Cause, context.Canceled)
	})
}
