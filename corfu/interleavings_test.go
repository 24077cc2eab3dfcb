package corfu_test

// Regression tests for six interleavings a review found, each of which broke
// an acknowledged append or a stream on the protocol as it was. Each runs
// its scenario twice: as the protocol is now, where the promise holds, and
// with the broken variant that reproduces the old behaviour switched on
// (internal/mutant), where the test sees the promise break. The second run
// shows that the test can fail.
//
// The sequencer's own interleavings (an amnesiac sequencer's seal, a late
// seal of the current epoch) are in package sequencer:
// TestAmnesiacSequencer and TestSealOfCurrentEpochKeepsReady.

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/internal/sysenv"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// seeds numbers the Envs openWith makes.
var seeds uint64

// sysEnv is the system environment as a corfu.Env.
type sysEnv struct{ *sysenv.Env }

func (e sysEnv) NewSignal(label string) corfu.Signal { return e.Env.NewSignal(label) }

// openWith opens a client on cl through net, with the mutants in mut
// switched on for it.
func openWith(t *testing.T, cl *corfutest.Cluster, net transport.Caller, mut mutant.Set) *corfu.Client {
	t.Helper()
	cfg := testConfig(cl.Config())
	cfg.Transport = net
	seeds++
	cfg.Env = sysEnv{sysenv.New(seeds)} // NB: each client its own, so that their Writers differ
	if mut.Any() {
		t.Cleanup(mutant.Register(cfg.Env, mut))
	}
	c, err := corfu.Open(context.Background(), cfg)
	require.NoError(t, err)
	return c
}

// variants runs f as the protocol is (where it must report no broken
// promise) and with the broken variant old (where it must report one).
func variants(t *testing.T, old mutant.Set, f func(t *testing.T, mut mutant.Set) (broken string)) {
	t.Run("now", func(t *testing.T) {
		require.Empty(t, f(t, mutant.Set{}))
	})
	t.Run("as it was", func(t *testing.T) {
		require.NotEmpty(t, f(t, old), "the old behaviour must show")
	})
}

// TestTokenCarriedAcrossEpoch (interleaving 1): writer A holds token a; the
// head refuses its write because a reconfiguration sealed the log, and that
// seal missed the sequencer, so the new sequencer starts at the heads' tail
// and hands a out again to writer B, which appends the same bytes. A must
// not take B's entry for its own: two acknowledged appends are two entries
// at two addresses.
func TestTokenCarriedAcrossEpoch(t *testing.T) {
	variants(t, mutant.Set{CarryToken: true, OursByBytes: true}, func(t *testing.T, mut mutant.Set) string {
		ctx := context.Background()
		cl, err := corfutest.New(corfutest.Options{Units: 1, Replicas: 1})
		require.NoError(t, err)
		cl.Net.Register("seq2", &transport.Server{Sequencer: sequencer.New(sequencer.Config{})})
		netA := &faultNet{next: cl.Net}
		netB := &faultNet{next: cl.Net}
		a := openWith(t, cl, netA, mut)
		b := openWith(t, cl, netB, mut)
		netB.setRule(func(to transport.NodeID, req *transport.Request) action {
			if req.Op == transport.OpSeqSeal && to == "seq" {
				return refuse // the seal misses the sequencer
			}
			return pass
		})
		var once sync.Once
		var addrB storage.Address
		netA.setRule(func(to transport.NodeID, req *transport.Request) action {
			if req.Op == transport.OpWrite {
				once.Do(func() {
					_, err := b.Reconfigure(ctx, corfu.MoveSequencer("seq2"))
					require.NoError(t, err)
					addrB, err = b.Append(ctx, []byte("same"))
					require.NoError(t, err)
				})
			}
			return pass
		})
		addrA, err := a.Append(ctx, []byte("same"))
		require.NoError(t, err)
		if addrA == addrB {
			return "both appends acknowledged at one address"
		}
		for addr, want := range map[storage.Address]corfu.WriterID{addrA: a.Writer(), addrB: b.Writer()} {
			e, err := b.Read(ctx, addr)
			require.NoError(t, err)
			require.Equal(t, want, e.Writer, "address %d", addr)
			require.Equal(t, "same", string(e.Data))
		}
		return ""
	})
}

// TestEpochGapAtLayoutServers (interleaving 2): epoch 1 is accepted by all
// three layout servers but committed on one only, and an append is
// acknowledged in its new segment. A reconfiguration seals the units at
// epoch 2 and dies. A proposer that cannot see the one commit still holds
// epoch 0 and finds the log sealed at 2: it must learn epoch 1 before it
// proposes epoch 2, or the history forks and the acknowledged append
// becomes unreadable.
func TestEpochGapAtLayoutServers(t *testing.T) {
	variants(t, mutant.Set{AcceptorSkipsEpochs: true}, func(t *testing.T, mut mutant.Set) string {
		ctx := context.Background()
		cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2, Spares: 1})
		require.NoError(t, err)
		for _, acc := range cl.Layouts {
			if mut.Any() {
				t.Cleanup(mutant.Register(acc, mut))
			}
		}
		w := openWith(t, cl, cl.Net, mut)
		_, err = w.Append(ctx, []byte("before"))
		require.NoError(t, err)

		// Epoch 1 replaces unit0; its commit reaches layout0 only.
		netR := &faultNet{next: cl.Net}
		netR.setRule(func(to transport.NodeID, req *transport.Request) action {
			if req.Op == transport.OpCommit && to != "layout0" {
				return refuse
			}
			return pass
		})
		r := openWith(t, cl, netR, mut)
		p1, err := r.Reconfigure(ctx, corfu.ReplaceUnit("unit0", "spare0"))
		require.NoError(t, err)
		require.Equal(t, storage.Epoch(1), p1.Epoch)
		acked, err := w.Append(ctx, []byte("in epoch 1"))
		require.NoError(t, err)
		require.GreaterOrEqual(t, acked, p1.Segments[len(p1.Segments)-1].Start, "in epoch 1's new segment")

		// A reconfiguration seals everything at epoch 2 and dies.
		for _, id := range p1.Units() {
			_, err := cl.Unit(id).Seal(ctx, 2)
			require.NoError(t, err)
		}
		_, err = cl.Sequencer.Seal(2)
		require.NoError(t, err)

		// A proposer that cannot reach layout0 still holds epoch 0.
		netP := &faultNet{next: cl.Net}
		netP.setRule(func(to transport.NodeID, req *transport.Request) action {
			if to == "layout0" {
				return refuse
			}
			return pass
		})
		p := openWith(t, cl, netP, mut)
		require.Equal(t, storage.Epoch(0), p.Projection().Epoch)
		got, err := p.Reconfigure(ctx, nil)
		if err != nil {
			return "reconfiguration failed: " + err.Error()
		}
		if projection.ValidateNext(p1, got) != nil {
			return "the epoch after epoch 1 does not extend it"
		}
		reader := openWith(t, cl, cl.Net, mut)
		e, err := reader.Read(ctx, acked)
		if err != nil || string(e.Data) != "in epoch 1" {
			return "the append acknowledged in epoch 1 is gone"
		}
		return ""
	})
}

// starts numbers the sequencer starts lostSequencer makes.
var starts uint64

// lostSequencer replaces cl's sequencer by a fresh one, as a crash does:
// it keeps the reservation mark if durable is set, and nothing otherwise.
func lostSequencer(cl *corfutest.Cluster, durable bool) {
	starts++
	cfg := sequencer.Config{Incarnation: 100 + starts}
	if durable {
		cfg.Floor, cfg.Recovered = cl.Sequencer.Mark(), true
	}
	cl.Sequencer = sequencer.New(cfg)
	cl.Net.Register("seq", &transport.Server{Sequencer: cl.Sequencer})
}

// syncAll returns the addresses a new reader of stream id finds.
func syncAll(t *testing.T, c *corfu.Client, id corfu.StreamID) []storage.Address {
	t.Helper()
	entries, err := c.Stream(id, 0).Sync(context.Background())
	require.NoError(t, err)
	var out []storage.Address
	for _, e := range entries {
		out = append(out, e.Address)
	}
	return out
}

// TestLateStreamWriterAfterLostSequencer (interleaving 3): the sequencer
// crashes while writer A holds a token of stream 5 that its head has not
// stored. The recovery rebuilds the stream tails from the log and
// bootstraps a new sequencer; A's write must not land, in the new epoch, at
// an address the rebuilt stream tails do not know, or stream readers skip
// an acknowledged entry.
func TestLateStreamWriterAfterLostSequencer(t *testing.T) {
	variants(t, mutant.Set{CarryToken: true, BootstrapBeforeFill: true}, func(t *testing.T, mut mutant.Set) string {
		ctx := context.Background()
		cl, err := corfutest.New(corfutest.Options{Units: 1, Replicas: 1})
		require.NoError(t, err)
		netA := &faultNet{next: cl.Net}
		a := openWith(t, cl, netA, mut)
		first, err := a.Append(ctx, []byte("first"), 5)
		require.NoError(t, err)

		netR := &faultNet{next: cl.Net}
		r := openWith(t, cl, netR, mut)
		writing, release, done := make(chan struct{}), make(chan struct{}), make(chan struct{})
		var once sync.Once
		netA.setRule(func(to transport.NodeID, req *transport.Request) action {
			if req.Op == transport.OpWrite {
				once.Do(func() { close(writing); <-release })
			}
			return pass
		})
		// A's write goes out once the new sequencer is bootstrapped, and
		// before anything else the recovery does after that.
		netR.setAfter(func(to transport.NodeID, req *transport.Request) {
			if req.Op == transport.OpBootstrap {
				select {
				case <-release:
				default:
					close(release)
					<-done
				}
			}
		})
		var second storage.Address
		go func() {
			defer close(done)
			second, err = a.Append(ctx, []byte("second"), 5)
		}()
		<-writing
		lostSequencer(cl, true)
		_, rerr := r.Reconfigure(ctx, nil)
		require.NoError(t, rerr)
		<-done
		require.NoError(t, err)
		got := syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5)
		t.Logf("stream 5: %v; appended at %d and %d", got, first, second)
		if len(got) != 2 || got[0] != first || got[1] != second {
			return "stream 5 does not hold both acknowledged entries"
		}
		return ""
	})
}

// TestAmnesiacSequencerKeepsStreams (interleaving 4): a sequencer restarted
// with no durable mark reports tail 0 and no streams. The recovery must not
// trust that: stream history stays readable and no address is reissued.
func TestAmnesiacSequencerKeepsStreams(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
	require.NoError(t, err)
	c := openWith(t, cl, cl.Net, mutant.Set{})
	var want []storage.Address
	for _, s := range []string{"a", "b", "c"} {
		addr, err := c.Append(ctx, []byte(s), 5)
		require.NoError(t, err)
		want = append(want, addr)
	}
	lostSequencer(cl, false)
	_, err = c.Reconfigure(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, want, syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5))
	next, err := c.Append(ctx, []byte("d"), 5)
	require.NoError(t, err)
	require.Greater(t, next, want[len(want)-1], "no address is handed out twice")
}

// TestStreamRebuildStepsOverSparseTrim (interleaving 5): a sparse trim
// must not stop the rebuild of a lost sequencer's stream tails, or every
// stream entry below the trimmed address drops out of Sync.
func TestStreamRebuildStepsOverSparseTrim(t *testing.T) {
	variants(t, mutant.Set{ScanStopsAtTrim: true}, func(t *testing.T, mut mutant.Set) string {
		ctx := context.Background()
		cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
		require.NoError(t, err)
		c := openWith(t, cl, cl.Net, mut)
		var want []storage.Address
		for _, s := range []string{"a", "b"} {
			addr, err := c.Append(ctx, []byte(s), 5)
			require.NoError(t, err)
			want = append(want, addr)
		}
		other, err := c.Append(ctx, []byte("not in the stream"))
		require.NoError(t, err)
		require.NoError(t, c.Trim(ctx, other))
		lostSequencer(cl, true)
		_, err = c.Reconfigure(ctx, nil)
		require.NoError(t, err)
		got := syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5)
		if len(got) != len(want) {
			return "stream entries below the trim dropped out"
		}
		require.Equal(t, want, got)
		return ""
	})
}

// TestAppendMeetsItsOwnDuplicate: a write's reply is lost and its retry
// (or a duplicate of the request) finds the address written: by this very
// append. If the read that would tell whose entry it is fails, the append
// must report an unknown outcome at that address, never a definite
// failure: its entry is there. (The fault sweep found this: seed 6059 of
// the full catalog.)
func TestAppendMeetsItsOwnDuplicate(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 1, Replicas: 1})
	require.NoError(t, err)
	net := &faultNet{next: cl.Net}
	c := openWith(t, cl, net, mutant.Set{})
	var writes int
	net.setRule(func(to transport.NodeID, req *transport.Request) action {
		switch req.Op {
		case transport.OpWrite:
			writes++
			if writes == 1 {
				return duplicate // the first copy's reply is lost, the second finds it written
			}
		case transport.OpRead:
			return refuse
		}
		return pass
	})
	_, err = c.Append(ctx, []byte("x"))
	var unknown *corfu.UnknownOutcomeError
	require.ErrorAs(t, err, &unknown)
	net.setRule(nil)
	e, err := c.Read(ctx, unknown.Addr)
	require.NoError(t, err)
	require.Equal(t, c.Writer(), e.Writer)
}

// TestStaleSequencerTail: a reconfiguration moves the sequencer while the
// old one is cut off, so its seal misses it; the old one keeps answering in
// the old epoch. A client still holding the old projection must not take
// its tail (below an append acknowledged since) or its stream tails (which
// miss that append) for current.
func TestStaleSequencerTail(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
	require.NoError(t, err)
	cl.Net.Register("seq2", &transport.Server{Sequencer: sequencer.New(sequencer.Config{})})
	stale := openWith(t, cl, cl.Net, mutant.Set{})
	_, err = stale.Append(ctx, []byte("before"), 5)
	require.NoError(t, err)

	netR := &faultNet{next: cl.Net}
	netR.setRule(func(to transport.NodeID, req *transport.Request) action {
		if to == "seq" {
			return refuse // the old sequencer is cut off from the reconfiguration
		}
		return pass
	})
	r := openWith(t, cl, netR, mutant.Set{})
	_, err = r.Reconfigure(ctx, corfu.MoveSequencer("seq2"))
	require.NoError(t, err)
	acked, err := r.Append(ctx, []byte("after"), 5)
	require.NoError(t, err)

	require.Equal(t, storage.Epoch(0), stale.Projection().Epoch)
	tail, err := stale.Tail(ctx)
	require.NoError(t, err)
	require.Greater(t, tail, acked, "the tail is past every acknowledged append")
	require.Len(t, syncAll(t, stale, 5), 2, "a stream read sees the append made in the new epoch")
}

// TestHeadBackBlankMidAppend: writer A's entry reaches the head, which then
// comes back blank (its disk lost) before the rest of the chain has it; a
// reconfiguration that cannot reach the sequencer takes the blank unit out
// and starts a new sequencer at the units' tail, below A's address. A must
// look at the head again in the new epoch, find its entry gone, and take a
// fresh token: carrying on at the old address would put its entry where the
// new sequencer's stream tails do not know it.
func TestHeadBackBlankMidAppend(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
	require.NoError(t, err)
	cl.Net.Register("seq2", &transport.Server{Sequencer: sequencer.New(sequencer.Config{})})
	netA := &faultNet{next: cl.Net}
	a := openWith(t, cl, netA, mutant.Set{})
	first, err := a.Append(ctx, []byte("first"), 5)
	require.NoError(t, err)

	netR := &faultNet{next: cl.Net}
	netR.setRule(func(to transport.NodeID, req *transport.Request) action {
		if to == "seq" {
			return refuse
		}
		return pass
	})
	r := openWith(t, cl, netR, mutant.Set{})
	var once sync.Once
	netA.setRule(func(to transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWrite && to == "unit1" {
			once.Do(func() {
				cl.Net.Register("unit0", &transport.Server{Unit: storage.NewBlank()})
				_, err := r.Reconfigure(ctx, corfu.MoveSequencer("seq2"))
				require.NoError(t, err)
			})
		}
		return pass
	})
	second, err := a.Append(ctx, []byte("second"), 5)
	require.NoError(t, err)
	netA.setRule(nil)
	_, err = r.Append(ctx, []byte("in no stream"))
	require.NoError(t, err)
	third, err := r.Append(ctx, []byte("third"), 5)
	require.NoError(t, err)
	require.Equal(t, []storage.Address{first, second, third}, syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5))
}

// TestRetriedBootstrapAfterRestart: a reconfiguration's bootstrap takes
// effect but its reply is lost; appends go on under the bootstrapped
// sequencer; the sequencer then restarts with no mark. The retried
// bootstrap must not hand the reconfiguration's old state (its tail and
// stream tails, from before those appends) to the new start of the
// sequencer: it names the incarnation it sealed and is refused, and a later
// recovery rebuilds the state from the log.
func TestRetriedBootstrapAfterRestart(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 1, Replicas: 1})
	require.NoError(t, err)
	w := openWith(t, cl, cl.Net, mutant.Set{})
	first, err := w.Append(ctx, []byte("first"), 5)
	require.NoError(t, err)

	netR := &faultNet{next: cl.Net}
	var once sync.Once
	var during storage.Address
	netR.setRule(func(to transport.NodeID, req *transport.Request) action {
		act := pass
		if req.Op == transport.OpBootstrap {
			once.Do(func() {
				_, err := cl.Net.Call(ctx, to, req) // it takes effect...
				require.NoError(t, err)
				during, err = w.Append(ctx, []byte("during"), 5)
				require.NoError(t, err)
				lostSequencer(cl, false) // ...then the sequencer restarts, with no mark
				act = refuse             // ...and the reply is lost
			})
		}
		return act
	})
	r := openWith(t, cl, netR, mutant.Set{})
	_, err = r.Reconfigure(ctx, nil)
	require.ErrorIs(t, err, sequencer.ErrRestarted)

	after, err := w.Append(ctx, []byte("after"), 5)
	require.NoError(t, err)
	require.Equal(t, []storage.Address{first, during, after}, syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5))
}

// TestPrefixTrimRacesAppend: a prefix trim takes an address whose append has
// reached the head but not the rest of the chain. A reader may have
// completed and read the entry before the trim, so the append neither takes
// a fresh token (the entry would appear twice) nor reports a failure: it
// returns the address, whose entry counts as written and trimmed since.
func TestPrefixTrimRacesAppend(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
	require.NoError(t, err)
	net := &faultNet{next: cl.Net}
	a := openWith(t, cl, net, mutant.Set{})
	trimmer := openWith(t, cl, cl.Net, mutant.Set{})
	var once sync.Once
	net.setRule(func(to transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWrite && to == "unit1" {
			once.Do(func() {
				tail, err := trimmer.Tail(ctx)
				require.NoError(t, err)
				require.NoError(t, trimmer.PrefixTrim(ctx, tail))
			})
		}
		return pass
	})
	addr, err := a.Append(ctx, []byte("x"))
	require.NoError(t, err)
	require.Equal(t, storage.Address(0), addr, "the address it reached the head at")
	_, err = trimmer.Read(ctx, 0)
	require.ErrorIs(t, err, corfu.ErrTrimmed)
	next, err := a.Append(ctx, []byte("y"))
	require.NoError(t, err)
	require.Equal(t, storage.Address(1), next, "the entry took no second address")
}

// TestReadersGoBackAfterReset: a stream reader moves past addresses that
// were handed out and never written; the sequencer then comes back with no
// mark, so the recovery starts the next one at the units' tail, below them,
// and they are handed out again. The reader goes back for them (the
// projection records the reset) and sees the new entry; a follower, which
// reads every address, sees it too.
func TestReadersGoBackAfterReset(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 1, Replicas: 1})
	require.NoError(t, err)
	w := openWith(t, cl, cl.Net, mutant.Set{})
	first, err := w.Append(ctx, []byte("first"), 5)
	require.NoError(t, err)
	_, err = cl.Sequencer.Next(0, 3, nil) // handed out, never written
	require.NoError(t, err)

	r := openWith(t, cl, cl.Net, mutant.Set{})
	s := r.Stream(5, 0)
	got, err := s.Sync(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	require.Equal(t, storage.Address(4), s.Position())

	lostSequencer(cl, false)
	second, err := w.Append(ctx, []byte("second"), 5)
	require.NoError(t, err)
	require.Less(t, second, storage.Address(4), "the reset hands the unwritten addresses out again")
	p := w.Projection()
	require.NotEmpty(t, p.Resets, "the projection records the reset")

	got, err = s.Sync(ctx)
	require.NoError(t, err)
	require.Len(t, got, 1, "the stream reader goes back for the reissued address")
	require.Equal(t, second, got[0].Address)

	fctx, cancel := context.WithCancel(ctx)
	var seen []storage.Address
	for e, err := range r.Follow(fctx, first) {
		if err != nil {
			break
		}
		seen = append(seen, e.Address)
		if len(seen) == 2 {
			cancel()
		}
	}
	cancel()
	require.Equal(t, []storage.Address{first, second}, seen)
}

// TestOvertakenBootstrap: reconfiguration R commits epoch 1 but its seal
// missed the sequencer, and it is slow to bootstrap; meanwhile epoch 2 is
// committed and bootstrapped, an entry is appended in it, and the sequencer
// comes back with no mark. R must not hand its epoch-1 state to the fresh
// sequencer (which knows no epoch and would take it): the units, sealed at
// epoch 2, tell R it was overtaken.
func TestOvertakenBootstrap(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 1, Replicas: 1})
	require.NoError(t, err)
	w := openWith(t, cl, cl.Net, mutant.Set{})
	first, err := w.Append(ctx, []byte("first"), 5)
	require.NoError(t, err)

	netR := &faultNet{next: cl.Net}
	var committed atomic.Bool // NB: commits go to the layout servers at once
	var once sync.Once
	var second storage.Address
	netR.setRule(func(to transport.NodeID, req *transport.Request) action {
		switch {
		case req.Op == transport.OpCommit && req.Projection != nil && req.Projection.Epoch >= 1:
			committed.Store(true) // NB: epoch 1's commit, not the seal's of epoch 0 beside it
		case req.Op == transport.OpSeqSeal && !committed.Load():
			return refuse // R's seal misses the sequencer
		case req.Op == transport.OpSeqSeal:
			// R seals it again to learn its incarnation; before that,
			// epoch 2 happens and the sequencer loses everything.
			once.Do(func() {
				_, err := w.Reconfigure(ctx, nil)
				require.NoError(t, err)
				second, err = w.Append(ctx, []byte("second"), 5)
				require.NoError(t, err)
				lostSequencer(cl, false)
			})
		}
		return pass
	})
	r := openWith(t, cl, netR, mutant.Set{})
	_, err = r.Reconfigure(ctx, nil)
	require.NoError(t, err)

	third, err := w.Append(ctx, []byte("third"), 5)
	require.NoError(t, err)
	require.Equal(t, []storage.Address{first, second, third}, syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5))
}

// TestPartialPrefixTrimMidChain: a prefix trim reached the middle replica of
// an append's chain but not the tail (it failed there, or is on its way).
// The append must still write the tail, which serves the entry until the
// trim reaches it: acknowledging with the tail empty would leave the entry
// on the head alone.
func TestPartialPrefixTrimMidChain(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 3, Replicas: 3})
	require.NoError(t, err)
	net := &faultNet{next: cl.Net}
	a := openWith(t, cl, net, mutant.Set{})
	var once sync.Once
	net.setRule(func(to transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWrite && to == "unit1" {
			once.Do(func() { require.NoError(t, cl.Unit("unit1").PrefixTrim(ctx, 0, 1)) })
		}
		return pass
	})
	addr, err := a.Append(ctx, []byte("x"))
	require.NoError(t, err)
	require.Equal(t, storage.Address(0), addr)
	state, raw := cl.Unit("unit2").Inspect(0)
	require.Equal(t, storage.StateData, state, "the chain's tail has the entry")
	e, err := a.Read(ctx, addr)
	require.NoError(t, err)
	require.Equal(t, "x", string(e.Data))
	require.NotEmpty(t, raw)
}

// TestRecoveryWritesNothingUnagreed: after the sequencer lost its state, a
// recovery rebuilds the stream tails from the log before it agrees the next
// epoch. It may lose that epoch to a racing recovery whose seal found a
// lower tail (it reached the unit first, or the unit that held the entry
// came back blank since), which then hands the address out again: so until
// its own projection is chosen, the recovery must write nothing, not even
// the completion of an entry only the head holds. Once it wins, it
// completes that entry under the committed projection, and the entry is
// in its stream.
func TestRecoveryWritesNothingUnagreed(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
	require.NoError(t, err)
	netA := &faultNet{next: cl.Net}
	a := openWith(t, cl, netA, mutant.Set{})
	netA.setRule(func(to transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpWrite && to == "unit1" {
			return refuse
		}
		return pass
	})
	actx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	_, err = a.Append(actx, []byte("head only"), 5)
	require.Error(t, err)
	loc, err := cl.Projection.Locate(0)
	require.NoError(t, err)
	require.Equal(t, []projection.NodeID{"unit0", "unit1"}, []projection.NodeID(loc.Chain))
	inspect := func(node projection.NodeID) storage.State {
		s, _ := cl.Unit(node).Inspect(loc.Local)
		return s
	}
	require.Equal(t, storage.StateData, inspect("unit0"))
	require.Equal(t, storage.StateUnwritten, inspect("unit1"))

	lostSequencer(cl, false)
	netR := &faultNet{next: cl.Net}
	netR.setRule(func(to transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpPrepare || req.Op == transport.OpPropose {
			return refuse
		}
		return pass
	})
	r := openWith(t, cl, netR, mutant.Set{})
	_, err = r.Reconfigure(ctx, nil)
	require.ErrorIs(t, err, corfu.ErrNoQuorum)
	require.Equal(t, storage.StateUnwritten, inspect("unit1"), "a recovery wrote before its epoch was agreed")

	netR.setRule(nil)
	_, err = r.Reconfigure(ctx, nil)
	require.NoError(t, err)
	require.Equal(t, storage.StateData, inspect("unit1"), "the winner completes the entry")
	require.Equal(t, []storage.Address{0}, syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5))
}

// TestPrefixTrimAcrossTailReset: a prefix trim has trimmed one unit when a
// recovery of a sequencer back with no mark seals the log and restarts it at
// the units' tail, which the unit not yet trimmed puts below the trim's
// address. Retried in the new epoch, the trim must finish, not report
// ErrBeyondTail, which says that nothing was trimmed (an acknowledged entry
// on the first unit is trimmed already).
func TestPrefixTrimAcrossTailReset(t *testing.T) {
	ctx := context.Background()
	cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 1})
	require.NoError(t, err)
	w := openWith(t, cl, cl.Net, mutant.Set{})
	_, err = w.Append(ctx, []byte("x"))
	require.NoError(t, err)
	_, err = cl.Sequencer.Next(0, 3, nil) // handed out, never written: the tail is 4
	require.NoError(t, err)
	net := &faultNet{next: cl.Net}
	var once sync.Once
	net.setRule(func(to transport.NodeID, req *transport.Request) action {
		if req.Op == transport.OpPrefixTrim && to == "unit1" {
			once.Do(func() {
				lostSequencer(cl, false)
				_, err := w.Reconfigure(ctx, nil)
				require.NoError(t, err)
			})
		}
		return pass
	})
	trimmer := openWith(t, cl, net, mutant.Set{})
	require.NoError(t, trimmer.PrefixTrim(ctx, 4))
	require.NotEmpty(t, w.Projection().Resets, "the recovery reset the tail")
	require.Equal(t, storage.Address(2), cl.Unit("unit1").TrimMark(), "the trim reached every unit")
	_, err = w.Read(ctx, 0)
	require.ErrorIs(t, err, corfu.ErrTrimmed)
}

// TestRestartedSequencerMovedAway: the sequencer moves to seq2 and the log
// grows past the old one's reservation mark; a move back commits, but its
// bootstrap never reaches the old sequencer, which then restarts from its
// mark. Meanwhile writer A's entry reached only the chain's head. A
// reconfiguration that cannot reach the head must not take the restarted
// sequencer's tail (its mark, from two epochs back and below the log's tail)
// for the log's: the entry above it would be left out of the streams'
// tails, and a stream reader would skip it once A's append is
// acknowledged. The restarted sequencer knows the epoch it last ran in
// (sequencer.Config.Booted) and vouches for nothing later; "as it was"
// restarts it as if it had run the epoch before the seal.
func TestRestartedSequencerMovedAway(t *testing.T) {
	run := func(t *testing.T, vouches bool) string {
		ctx := context.Background()
		cl, err := corfutest.New(corfutest.Options{Units: 2, Replicas: 2})
		require.NoError(t, err)
		cl.Net.Register("seq2", &transport.Server{Sequencer: sequencer.New(sequencer.Config{})})
		w := openWith(t, cl, cl.Net, mutant.Set{})
		want := []storage.Address{}
		first, err := w.Append(ctx, []byte("first"), 5)
		require.NoError(t, err)
		want = append(want, first)
		r := openWith(t, cl, cl.Net, mutant.Set{})
		_, err = r.Reconfigure(ctx, corfu.MoveSequencer("seq2"))
		require.NoError(t, err)
		mark := cl.Sequencer.Mark()
		for a := storage.Address(0); a <= mark; a++ {
			got, err := w.Append(ctx, []byte("under seq2"), 5)
			require.NoError(t, err)
			want = append(want, got)
		}

		netA := &faultNet{next: cl.Net}
		a := openWith(t, cl, netA, mutant.Set{})
		var once sync.Once
		netA.setRule(func(to transport.NodeID, req *transport.Request) action {
			if req.Op != transport.OpWrite || to != "unit1" {
				return pass
			}
			once.Do(func() {
				// A's entry is at the head only. The move back commits;
				// its bootstrap is lost.
				netB := &faultNet{next: cl.Net}
				netB.setRule(func(to transport.NodeID, req *transport.Request) action {
					if req.Op == transport.OpBootstrap && to == "seq" {
						return refuse
					}
					return pass
				})
				_, err := openWith(t, cl, netB, mutant.Set{}).Reconfigure(ctx, corfu.MoveSequencer("seq"))
				require.Error(t, err)
				// The old sequencer restarts from its mark.
				booted := cl.Sequencer.Booted()
				if vouches {
					booted = cl.Sequencer.Epoch() // as if it had run the epoch the move committed
				}
				starts++
				cl.Sequencer = sequencer.New(sequencer.Config{Incarnation: 100 + starts,
					Floor: cl.Sequencer.Mark(), Recovered: true, Booted: booted})
				cl.Net.Register("seq", &transport.Server{Sequencer: cl.Sequencer})
				// A reconfiguration whose seal cannot reach the head (it
				// comes back before the epoch is confirmed).
				netC := &faultNet{next: cl.Net}
				var agreed atomic.Bool
				netC.setRule(func(to transport.NodeID, req *transport.Request) action {
					if req.Op == transport.OpPropose {
						agreed.Store(true)
					}
					if to == "unit0" && !agreed.Load() {
						return refuse
					}
					return pass
				})
				_, err = openWith(t, cl, netC, mutant.Set{}).Reconfigure(ctx, nil)
				if !vouches {
					// Neither a sequencer that vouches nor the head bounds
					// what was written: better no reconfiguration.
					require.ErrorIs(t, err, corfu.ErrSealIncomplete)
				}
			})
			return pass
		})
		lost, err := a.Append(ctx, []byte("at the head"), 5)
		require.NoError(t, err)
		want = append(want, lost)
		_, err = w.Append(ctx, []byte("in no stream"))
		require.NoError(t, err)
		later, err := w.Append(ctx, []byte("later"), 5)
		require.NoError(t, err)
		want = append(want, later)
		got := syncAll(t, openWith(t, cl, cl.Net, mutant.Set{}), 5)
		if !slices.Equal(got, want) {
			return fmt.Sprintf("stream 5 reads %v, want %v", got, want)
		}
		return ""
	}
	t.Run("now", func(t *testing.T) { require.Empty(t, run(t, false)) })
	t.Run("as it was", func(t *testing.T) { require.NotEmpty(t, run(t, true), "the old behaviour must show") })
}
