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
