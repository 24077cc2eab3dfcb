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
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// TestOverTCP runs the log over loopback TCP, plain and with mutual TLS:
// concurrent appends to streams and reads, stream reads, a unit replaced
// and the sequencer moved by reconfigurations, every entry read back after
// each; then a client closes while another carries on. (The whole suite
// runs over TCP with CORFU_TEST_NET=tcp or tls; see package corfutest.)
func TestOverTCP(t *testing.T) {
	for _, tls := range []bool{false, true} {
		t.Run(map[bool]string{false: "tcp", true: "tls"}[tls], func(t *testing.T) {
			cl, err := corfutest.NewTCP(corfutest.Options{Spares: 1}, corfutest.TCPOptions{TLS: tls})
			require.NoError(t, err)
			t.Cleanup(func() { require.NoError(t, cl.Close()) })
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()

			// NB: hops far longer than the suite's 5ms: a first call to a
			// node waits for its TLS handshake, slow under the race
			// detector.
			cfg := cl.Config()
			cfg.RPCTimeout, cfg.HoleFillWait = 200*time.Millisecond, 2*time.Second
			own, err := cl.NewCaller()
			require.NoError(t, err)
			mine := cfg
			mine.Transport = own
			c, err := corfu.Open(ctx, mine)
			require.NoError(t, err)
			other, err := corfu.Open(ctx, cfg)
			require.NoError(t, err)

			want := map[storage.Address]string{}
			var mu sync.Mutex
			appendSome := func(round, writers, each int) {
				t.Helper()
				var wg sync.WaitGroup
				errs := make([]error, writers+2) // the writers', then the readers'

				for w := range writers {
					wg.Go(func() {
						for i := range each {
							data := fmt.Sprintf("round %d writer %d entry %d", round, w, i)
							a, err := c.Append(ctx, []byte(data), corfu.StreamID(1+w%2))
							if err != nil {
								errs[w] = err
								return
							}
							mu.Lock()
							want[a] = data
							mu.Unlock()
						}
					})
				}
				// Readers race the appenders; whatever they read must be
				// what was appended there.
				for r := range 2 {
					wg.Go(func() {
						for a := range storage.Address(20) {
							e, err := other.Read(ctx, a)
							if err == nil {
								mu.Lock()
								w, ok := want[a]
								mu.Unlock()
								if ok && w != string(e.Data) {
									errs[writers+r] = fmt.Errorf("read %q at %d, appended %q", e.Data, a, w)
								}
							}
						}
					})
				}
				wg.Wait()
				for _, err := range errs {
					require.NoError(t, err)
				}
			}
			readAll := func(what string) {
				t.Helper()
				for a, data := range want {
					e, err := other.Read(ctx, a)
					require.NoError(t, err, "%s: address %d", what, a)
					require.Equal(t, data, string(e.Data), "%s: address %d", what, a)
				}
				n := 0
				for id := corfu.StreamID(1); id <= 2; id++ {
					entries, err := other.Stream(id, 0).Sync(ctx)
					require.NoError(t, err, what)
					n += len(entries)
				}
				require.Equal(t, len(want), n, "%s: the streams hold every entry", what)
			}

			appendSome(0, 4, 10)
			readAll("before reconfiguring")

			_, err = c.Reconfigure(ctx, corfu.ReplaceUnit("unit0", "spare0"))
			require.NoError(t, err)
			appendSome(1, 4, 5)
			readAll("after replacing a unit")

			cl.Net.Register("seq2", &transport.Server{Sequencer: sequencer.New(sequencer.Config{Backpointers: cl.Options.Backpointers})})
			_, err = other.Reconfigure(ctx, corfu.MoveSequencer("seq2"))
			require.NoError(t, err)
			appendSome(2, 2, 5)
			readAll("after moving the sequencer")
			require.Equal(t, "seq2", string(c.Projection().Sequencer))

			require.NoError(t, c.Close())
			require.NoError(t, c.Close(), "Close is idempotent")
			_, err = c.Append(ctx, []byte("late"))
			require.ErrorIs(t, err, corfu.ErrClosed)
			_, err = own.Call(ctx, "seq2", &transport.Request{Op: transport.OpGetLayout})
			require.ErrorIs(t, err, transport.ErrUnreachable, "the client's own transport is closed")
			a, err := other.Append(ctx, []byte("after close"))
			require.NoError(t, err, "a client on the shared network carries on")
			e, err := other.Read(ctx, a)
			require.NoError(t, err)
			require.Equal(t, "after close", string(e.Data))
			require.NoError(t, other.Close(), "the shared network is not the client's to close")
			_, err = cl.Net.Call(ctx, "seq2", &transport.Request{Op: transport.OpGetLayout})
			require.ErrorIs(t, err, transport.ErrWrongRole, "the network still serves")
		})
	}
}
