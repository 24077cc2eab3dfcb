package persist_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/persist"
)

// host is a node that serves a sequencer and a layout server through a
// transport.Server whose Persister is a persist.Dir, as a durable daemon
// does, and restarts them from the directory.
type host struct {
	dir *persist.Dir
	srv *transport.Server
}

// start opens the state directory on fs and restarts the roles from it.
func start(fs vfs.FS, entropy *rand.ChaCha8) (*host, error) {
	d, err := persist.Open(fs, dir, persist.Options{Node: "node0", Entropy: entropy})
	if err != nil {
		return nil, err
	}
	seq := sequencer.New(d.SequencerConfig(sequencer.Config{Reserve: 8}))
	acc := projection.NewAcceptor(initial(0))
	if st, ok := d.Layout(); ok {
		if acc, err = projection.RestoreAcceptor(st); err != nil {
			return nil, err
		}
	}
	return &host{dir: d, srv: &transport.Server{Sequencer: seq, Layout: acc, Persist: d}}, nil
}

// TestRestartedRolesKeepTheirWord drives a sequencer and a layout server
// served by a transport.Server over a persist.Dir on a MemFS, and cuts the
// power at random moments: at a random filesystem call, the test takes
// what a power loss would leave (unsynced bytes dropped or torn) and
// restarts the node from it, as many times as a trial allows. Only the
// answers that left before the cut count. After every restart:
//   - the layout server's state is the one its last answer depended on, or
//     the one the request cut short was saving: it forgot no promise and no
//     accepted value;
//   - the sequencer, restarted from its mark, seals with a tail above every
//     address handed out before, so it never hands one out again;
//   - the incarnation is one no earlier start had.
func TestRestartedRolesKeepTheirWord(t *testing.T) {
	trials := 300
	if testing.Short() {
		trials = 60
	}
	restarts := 0
	for trial := range trials {
		rng := rand.New(rand.NewPCG(uint64(trial), 0x9e57))
		entropy := rand.NewChaCha8([32]byte{byte(trial), byte(trial >> 8)})
		mem := vfs.NewMem()
		var snap *vfs.MemFS
		calls, cutAt := 0, rng.IntN(60)
		var fs *crashFS
		fs = &crashFS{FS: mem, before: func(string) {
			if calls == cutAt && snap == nil {
				snap = mem.CrashClone(vfs.CrashOptions{Rand: rng})
			}
			calls++
		}}

		// What the answers that left promised, across every start.
		var (
			handedOut    storage.Address // one past the highest address handed out
			incarnations = map[uint64]bool{}
			acked        projection.AcceptorState // the layout state the last answer depended on
			inFlight     *projection.AcceptorState
			epoch        storage.Epoch // the sequencer's epoch to seal next
		)
		acked = projection.AcceptorState{Latest: initial(0)}
		var h *host
		restart := func() {
			// The filesystem is now what the power loss left.
			if snap != nil {
				mem, snap = snap, nil
				fs.FS = mem
				calls, cutAt = 0, rng.IntN(60)
				restarts++
			}
			for {
				var err error
				h, err = start(fs, entropy)
				require.NoError(t, err, "trial %d: a restart refused its own directory", trial)
				if snap == nil {
					break
				}
				// Cut while starting: that start never happened.
				mem, snap = snap, nil
				fs.FS = mem
				calls, cutAt = 0, rng.IntN(60)
				restarts++
			}
			inc := h.dir.Incarnation()
			require.False(t, incarnations[inc], "trial %d: incarnation %d reused", trial, inc)
			incarnations[inc] = true
			got := h.srv.Layout.State()
			ok := sameState(got, acked) || inFlight != nil && sameState(got, *inFlight)
			require.True(t, ok, "trial %d: the restarted layout server forgot: it has %s, its last answer gave %s",
				trial, show(got), show(acked))
			acked, inFlight = got, nil
			// The restarted sequencer's seal vouches for a tail above
			// everything handed out.
			epoch++
			resp := h.srv.Handle(&transport.Request{Op: transport.OpSeqSeal, Epoch: epoch})
			if snap != nil {
				return // the seal's answer never left
			}
			require.NoError(t, resp.Err)
			require.GreaterOrEqual(t, resp.Addr, handedOut, "trial %d: a restarted sequencer's tail is below an address handed out", trial)
			resp = h.srv.Handle(&transport.Request{Op: transport.OpBootstrap, Epoch: epoch, Addr: resp.Addr, Rank: inc})
			if snap == nil {
				require.NoError(t, resp.Err)
			}
		}
		restart()
		for step := 0; step < 200; step++ {
			if snap != nil {
				restart()
				continue
			}
			before := h.srv.Layout.State()
			req := randomRequest(rng, epoch, before)
			resp := h.srv.Handle(req)
			if snap != nil {
				// Cut while serving: the answer never left, but what it
				// was saving may be durable.
				if req.Op >= transport.OpGetLayout {
					after := h.srv.Layout.State()
					inFlight = &after
				}
				continue
			}
			switch {
			case req.Op == transport.OpToken && resp.Err == nil:
				require.GreaterOrEqual(t, resp.Addr, handedOut, "trial %d: address %d handed out again", trial, resp.Addr)
				handedOut = resp.Addr + storage.Address(req.N)
			case req.Op >= transport.OpGetLayout:
				acked = h.srv.Layout.State()
			}
		}
		h.dir.Close()
	}
	t.Logf("%d trials, %d power losses", trials, restarts)
	require.Greater(t, restarts, trials, "the trials cut the power")
}

// randomRequest returns a token request (most often) or a layout server's
// request for the epoch after its latest, with ranks that often clash.
func randomRequest(rng *rand.Rand, epoch storage.Epoch, st projection.AcceptorState) *transport.Request {
	next := st.Latest.Epoch + 1
	p := initial(next)
	p.Proposal = uint64(rng.IntN(3))
	rank := uint64(1 + rng.IntN(12))
	switch rng.IntN(8) {
	case 0:
		return &transport.Request{Op: transport.OpPrepare, Epoch: next, Rank: rank}
	case 1:
		return &transport.Request{Op: transport.OpPropose, Epoch: next, Rank: rank, Projection: p}
	case 2:
		if st.Accepted != nil && rng.IntN(2) == 0 {
			p = st.Accepted
		}
		return &transport.Request{Op: transport.OpCommit, Epoch: next, Projection: p}
	}
	return &transport.Request{Op: transport.OpToken, Epoch: epoch, N: uint32(1 + rng.IntN(12))}
}

func sameState(a, b projection.AcceptorState) bool {
	return a.Promised == b.Promised && a.AcceptedRank == b.AcceptedRank && a.Latest.Equal(b.Latest) &&
		(a.Accepted == nil) == (b.Accepted == nil) && (a.Accepted == nil || a.Accepted.Equal(b.Accepted))
}

func show(st projection.AcceptorState) string {
	acc := "none"
	if st.Accepted != nil {
		acc = fmt.Sprintf("epoch %d (proposal %d)", st.Accepted.Epoch, st.Accepted.Proposal)
	}
	return fmt.Sprintf("{latest %d, promised %d, accepted %s at %d}", st.Latest.Epoch, st.Promised, acc, st.AcceptedRank)
}

// TestForSequencerSavesVouchedMarks: a sequencer with no mark to vouch for
// (started without one, not bootstrapped) leaves nothing saved, so that it
// restarts with no mark again; once bootstrapped, its marks are saved.
func TestForSequencerSavesVouchedMarks(t *testing.T) {
	fs := vfs.NewMem()
	d := open(t, fs, "seq")
	srv := &transport.Server{Sequencer: sequencer.New(sequencer.Config{Incarnation: d.Incarnation()})}
	srv.Persist = d.ForSequencer(func() *sequencer.Sequencer { return srv.Sequencer })
	require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpSeqSeal, Epoch: 1}).Err)
	_, ok := markOf(d)
	require.False(t, ok, "the mark of a sequencer without one is not saved")

	require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpBootstrap, Epoch: 1, Addr: 40}).Err)
	tok := srv.Handle(&transport.Request{Op: transport.OpToken, Epoch: 1, N: 5})
	require.NoError(t, tok.Err)
	mark, ok := markOf(d)
	require.True(t, ok)
	require.Greater(t, mark, tok.Addr+4)
	d.Close()
}
