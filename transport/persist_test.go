package transport_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// diskPersister is a Persister that keeps what it saved, can hold a save
// until released, and can fail.
type diskPersister struct {
	mu      sync.Mutex
	seqs    []sequencer.State
	layouts []projection.AcceptorState
	hold    chan struct{} // if not nil, each save waits for it to close
	saving  chan struct{} // if not nil, closed when the first save starts
	fail    error
}

func (d *diskPersister) save(f func()) error {
	if d.saving != nil {
		close(d.saving)
		d.saving = nil
	}
	if d.hold != nil {
		<-d.hold
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.fail != nil {
		return d.fail
	}
	f()
	return nil
}

func (d *diskPersister) SaveSequencer(st sequencer.State) error {
	return d.save(func() { d.seqs = append(d.seqs, st) })
}

func (d *diskPersister) SaveLayout(st projection.AcceptorState) error {
	return d.save(func() { d.layouts = append(d.layouts, st) })
}

// heldTimers keeps the functions it is given until run calls them.
type heldTimers struct{ fs []func() }

func (h *heldTimers) AfterFunc(_ time.Duration, f func()) (stop func() bool) {
	h.fs = append(h.fs, f)
	return func() bool { return false }
}

// run calls, and forgets, the i-th function kept.
func (h *heldTimers) run(i int) {
	f := h.fs[i]
	h.fs = append(h.fs[:i], h.fs[i+1:]...)
	f()
}

// TestPersistThenReply: a sequencer's token and a layout server's promise
// leave the server only after the state they depend on was saved; a
// sequencer and an acceptor restarted from what was saved never contradict
// an answer given before.
func TestPersistThenReply(t *testing.T) {
	t.Run("sequencer mark", func(t *testing.T) {
		disk := &diskPersister{}
		srv := &transport.Server{Sequencer: sequencer.New(sequencer.Config{Reserve: 8}), Persist: disk}
		require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpBootstrap}).Err)

		disk.hold, disk.saving = make(chan struct{}), make(chan struct{})
		saving := disk.saving
		answered := make(chan *transport.Response)
		go func() { answered <- srv.Handle(&transport.Request{Op: transport.OpToken, N: 1}) }()
		<-saving
		select {
		case <-answered:
			t.Fatal("the token left before its mark was saved")
		case <-time.After(20 * time.Millisecond):
		}
		close(disk.hold)
		resp := <-answered
		require.NoError(t, resp.Err)
		disk.hold = nil

		var last storage.Address
		for range 20 {
			resp := srv.Handle(&transport.Request{Op: transport.OpToken, N: 1})
			require.NoError(t, resp.Err)
			last = resp.Addr
		}
		saved := disk.seqs[len(disk.seqs)-1]
		require.Greater(t, saved.Mark, last, "the saved mark covers every token handed out")
		require.Less(t, len(disk.seqs), 10, "the mark is saved when it moves, not for every token")

		restarted := sequencer.New(sequencer.Config{Floor: saved.Mark, Booted: saved.Booted, Recovered: true})
		res, err := restarted.Seal(1)
		require.NoError(t, err)
		require.Greater(t, res.Tail, last, "a restarted sequencer never hands out an address again")
	})

	t.Run("sequencer mark saved ahead", func(t *testing.T) {
		disk := &diskPersister{}
		ahead := &heldTimers{}
		srv := &transport.Server{Sequencer: sequencer.New(sequencer.Config{Reserve: 8}), Persist: disk, Ahead: ahead}
		require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpBootstrap}).Err)
		saved := func() storage.Address {
			disk.mu.Lock()
			defer disk.mu.Unlock()
			return disk.seqs[len(disk.seqs)-1].Mark
		}
		// NB: after every answer, a power loss would restart the
		// sequencer from the last mark saved: it must cover the answer.
		var waitedFor, aheadOf int
		for range 40 {
			saves, queued := len(disk.seqs), len(ahead.fs)
			resp := srv.Handle(&transport.Request{Op: transport.OpToken, N: 1})
			require.NoError(t, resp.Err)
			require.GreaterOrEqual(t, saved(), resp.Addr+1, "token %d left above the saved mark", resp.Addr)
			switch {
			case len(disk.seqs) > saves:
				waitedFor++ // its token reached the saved mark
			case len(ahead.fs) > queued:
				aheadOf++ // the mark moved below it: saved behind the answer
				ahead.run(0)
				require.Greater(t, saved(), resp.Addr+4, "the background save moved the mark on")
			}
		}
		require.Equal(t, 1, waitedFor, "only the first token, the mark's first move, waited for a save")
		require.Equal(t, 5, aheadOf, "the mark moved by the reserve, 8, every 8 tokens, each time saved ahead")

		// A token that catches up with a save still queued saves itself.
		for len(ahead.fs) == 0 {
			require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpToken, N: 1}).Err)
		}
		resp := srv.Handle(&transport.Request{Op: transport.OpToken, N: 8})
		require.NoError(t, resp.Err)
		require.GreaterOrEqual(t, saved(), resp.Addr+8)
		n := len(disk.seqs)
		ahead.run(len(ahead.fs) - 1)
		require.Len(t, disk.seqs, n, "the queued save found nothing left to save")
		srv.WaitSaves()
	})

	t.Run("sequencer bootstrap epoch", func(t *testing.T) {
		disk := &diskPersister{}
		srv := &transport.Server{Sequencer: sequencer.New(sequencer.Config{}), Persist: disk}
		require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpBootstrap, Addr: 10}).Err)
		n := len(disk.seqs)
		require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpSeqSeal, Epoch: 4}).Err)
		require.Len(t, disk.seqs, n, "a seal changes nothing a restart needs")

		disk.hold, disk.saving = make(chan struct{}), make(chan struct{})
		saving := disk.saving
		answered := make(chan *transport.Response)
		go func() {
			answered <- srv.Handle(&transport.Request{Op: transport.OpBootstrap, Epoch: 4, Addr: 10})
		}()
		<-saving
		select {
		case <-answered:
			t.Fatal("the bootstrap was answered before its epoch was saved")
		case <-time.After(20 * time.Millisecond):
		}
		close(disk.hold)
		require.NoError(t, (<-answered).Err)
		require.Equal(t, sequencer.State{Mark: 10, Booted: 4}, disk.seqs[len(disk.seqs)-1])
	})

	t.Run("layout promise", func(t *testing.T) {
		disk := &diskPersister{}
		srv := &transport.Server{Layout: projection.NewAcceptor(sampleProjection(0)), Persist: disk}
		disk.hold, disk.saving = make(chan struct{}), make(chan struct{})
		saving := disk.saving
		answered := make(chan *transport.Response)
		go func() { answered <- srv.Handle(&transport.Request{Op: transport.OpPrepare, Epoch: 1, Rank: 9}) }()
		<-saving
		select {
		case <-answered:
			t.Fatal("the promise left before it was saved")
		case <-time.After(20 * time.Millisecond):
		}
		close(disk.hold)
		require.NoError(t, (<-answered).Err)
		disk.hold = nil
		require.Len(t, disk.layouts, 1)
		require.Equal(t, uint64(9), disk.layouts[0].Promised)

		// A read changes nothing and saves nothing.
		require.NoError(t, srv.Handle(&transport.Request{Op: transport.OpGetLayout}).Err)
		require.Len(t, disk.layouts, 1)

		restarted, err := projection.RestoreAcceptor(disk.layouts[0])
		require.NoError(t, err)
		_, _, err = restarted.Prepare(1, 5)
		require.ErrorIs(t, err, projection.ErrRejected, "a restarted layout server keeps its promise")
	})

	t.Run("a failed save withholds the answer", func(t *testing.T) {
		disk := &diskPersister{fail: errors.New("disk full")}
		srv := &transport.Server{
			Sequencer: sequencer.New(sequencer.Config{}),
			Layout:    projection.NewAcceptor(sampleProjection(0)),
			Persist:   disk,
		}
		resp := srv.Handle(&transport.Request{Op: transport.OpPrepare, Epoch: 1, Rank: 3})
		require.ErrorIs(t, resp.Err, transport.ErrNotDurable)
		require.Nil(t, resp.Projection)
		resp = srv.Handle(&transport.Request{Op: transport.OpBootstrap, Addr: 5})
		require.ErrorIs(t, resp.Err, transport.ErrNotDurable)
	})
}
