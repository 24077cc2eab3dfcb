package corfutest_test

import (
	"context"
	"io"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/transport"
)

// gated answers each request once its gate opens.
type gated struct {
	gate    chan chan struct{}
	entered chan struct{}
}

func (g gated) Handle(*transport.Request) *transport.Response {
	g.entered <- struct{}{}
	<-<-g.gate
	return &transport.Response{Addr: 7}
}

// callAsync calls c in the background.
func callAsync(c transport.Caller, ctx context.Context, req *transport.Request) <-chan error {
	done := make(chan error, 1)
	go func() {
		resp, err := c.Call(ctx, "held", req)
		if err == nil && resp.Addr != 7 {
			err = io.ErrUnexpectedEOF
		}
		done <- err
	}()
	return done
}

// TestMinCallTimeout checks that a call over TCP gets at least
// MinCallTimeout however soon its ctx's deadline, that an ended or
// cancelled ctx still ends it, and that a negative MinCallTimeout leaves
// deadlines alone.
func TestMinCallTimeout(t *testing.T) {
	req := &transport.Request{Op: transport.OpRead}
	for _, tt := range []struct {
		name string
		min  time.Duration
	}{{"minute", time.Minute}, {"none", -1}} {
		t.Run(tt.name, func(t *testing.T) {
			cl, err := corfutest.NewTCP(corfutest.Options{Layouts: 1, Units: 2}, corfutest.TCPOptions{MinCallTimeout: tt.min})
			require.NoError(t, err)
			defer func() { require.NoError(t, cl.Close()) }()
			g := gated{gate: make(chan chan struct{}, 1), entered: make(chan struct{}, 1)}
			cl.Net.Register("held", g)
			own, err := cl.NewCaller()
			require.NoError(t, err)
			defer func() { require.NoError(t, own.(io.Closer).Close()) }()
			for _, c := range []transport.Caller{cl.Net, own} {
				// The answer comes only once the ctx's deadline has passed.
				gate := make(chan struct{})
				g.gate <- gate
				ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
				done := callAsync(c, ctx, req)
				<-ctx.Done()
				close(gate)
				err := <-done
				cancel()
				<-g.entered
				if tt.min < 0 {
					require.ErrorIs(t, err, context.DeadlineExceeded)
				} else {
					require.NoError(t, err, "the call outlives its ctx's deadline")
				}

				ctx, cancel = context.WithTimeout(context.Background(), time.Nanosecond)
				<-ctx.Done()
				_, err = c.Call(ctx, "held", req)
				require.ErrorIs(t, err, context.DeadlineExceeded, "a ctx already ended")
				cancel()

				// Cancelled in flight, it ends at once.
				gate = make(chan struct{})
				g.gate <- gate
				ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
				done = callAsync(c, ctx, req)
				<-g.entered
				cancel()
				require.ErrorIs(t, <-done, context.Canceled)
				close(gate)
			}
		})
	}
}
