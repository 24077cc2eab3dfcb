package tango_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/examples/tango"
)

// world is an in-process cluster and a way to open runtimes on it.
type world struct {
	t       *testing.T
	ctx     context.Context
	cluster *corfutest.Cluster
}

func newWorld(t *testing.T) *world {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	t.Cleanup(cancel)
	cl, err := corfutest.New(corfutest.Options{})
	require.NoError(t, err)
	return &world{t: t, ctx: ctx, cluster: cl}
}

// client opens a client of the cluster.
func (w *world) client() *corfu.Client {
	w.t.Helper()
	c, err := corfu.Open(w.ctx, w.cluster.Config())
	require.NoError(w.t, err)
	w.t.Cleanup(func() { _ = c.Close() })
	return c
}

// runtime opens a runtime on a client of its own.
func (w *world) runtime() *tango.Runtime {
	return tango.New(w.client(), tango.Options{})
}

func must[T any](t *testing.T) func(v T, err error) T {
	return func(v T, err error) T {
		t.Helper()
		require.NoError(t, err)
		return v
	}
}
