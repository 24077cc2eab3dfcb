package transport_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// manualTimers is a transport.Timers whose calls run when the test fires
// them.
type manualTimers struct {
	mu    sync.Mutex
	calls []*manualCall
}

type manualCall struct {
	d       time.Duration
	f       func()
	stopped bool
}

func (m *manualTimers) AfterFunc(d time.Duration, f func()) (stop func() bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := &manualCall{d: d, f: f}
	m.calls = append(m.calls, c)
	return func() bool {
		m.mu.Lock()
		defer m.mu.Unlock()
		was := !c.stopped
		c.stopped = true
		return was
	}
}

// fire runs every call not stopped, as if its time had come.
func (m *manualTimers) fire() {
	m.mu.Lock()
	calls := m.calls
	m.calls = nil
	m.mu.Unlock()
	for _, c := range calls {
		if !c.stopped {
			c.stopped = true
			c.f()
		}
	}
}

// live counts the calls neither stopped nor fired.
func (m *manualTimers) live() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	n := 0
	for _, c := range m.calls {
		if !c.stopped {
			n++
		}
	}
	return n
}

// recorder is a Handler that records the ops it sees.
type recorder struct {
	h   transport.Handler
	ops []transport.Op
}

func (r *recorder) Handle(req *transport.Request) *transport.Response {
	r.ops = append(r.ops, req.Op)
	return r.h.Handle(req)
}

// waitRig is a ReadWaits in front of a memory unit, with manual timers,
// whose answers are recorded in the order they are given.
type waitRig struct {
	unit    *storage.Memory
	below   *recorder
	timers  *manualTimers
	w       *transport.ReadWaits
	answers []string
}

func newWaitRig() *waitRig {
	r := &waitRig{unit: storage.NewMemory(), timers: &manualTimers{}}
	r.below = &recorder{h: &transport.Server{Unit: r.unit}}
	r.w = transport.NewReadWaits(r.below, r.timers)
	return r
}

// serve serves req through Serve, recording its answer as name: err or
// data.
func (r *waitRig) serve(name string, req *transport.Request) {
	r.w.Serve(req, func(resp *transport.Response) {
		switch {
		case resp.Err != nil:
			r.answers = append(r.answers, fmt.Sprintf("%s: %v", name, resp.Err))
		case req.Op == transport.OpReadWait:
			r.answers = append(r.answers, fmt.Sprintf("%s: %q", name, resp.Data))
		default:
			r.answers = append(r.answers, name+": ok")
		}
	})
}

func readWait(addr storage.Address, ms uint32) *transport.Request {
	return &transport.Request{Op: transport.OpReadWait, Addr: addr, N: ms}
}

func write(addr storage.Address, data string) *transport.Request {
	return &transport.Request{Op: transport.OpWrite, Addr: addr, Data: []byte(data)}
}

func TestReadWaitsAnswersAtOnceWhenTaken(t *testing.T) {
	r := newWaitRig()
	r.serve("w0", write(0, "a"))
	r.serve("rw0", readWait(0, 100))
	assert.Equal(t, []string{"w0: ok", `rw0: "a"`}, r.answers)
	assert.Zero(t, r.w.Parked())
	assert.Zero(t, r.timers.live(), "nothing waits")
	assert.Equal(t, []transport.Op{transport.OpWrite, transport.OpRead}, r.below.ops,
		"the Handler below sees a plain read")
}

func TestReadWaitsParksUntilItsAddressIsWritten(t *testing.T) {
	r := newWaitRig()
	r.serve("rw3", readWait(3, 100))
	require.Empty(t, r.answers, "parked")
	require.Equal(t, 1, r.w.Parked())
	require.Equal(t, 1, r.timers.live())
	assert.Equal(t, 100*time.Millisecond, r.timers.calls[0].d)

	r.serve("w2", write(2, "b"))
	require.Equal(t, []string{"w2: ok"}, r.answers, "another address wakes nothing")
	r.serve("w3", write(3, "c"))
	assert.Equal(t, []string{"w2: ok", "w3: ok", `rw3: "c"`}, r.answers,
		"answered after the write that woke it")
	assert.Zero(t, r.w.Parked())
	assert.Zero(t, r.timers.live(), "its timer is stopped")
	for _, op := range r.below.ops {
		assert.NotEqual(t, transport.OpReadWait, op, "the Handler below sees only plain reads")
	}
}

func TestReadWaitsWokenByEveryChange(t *testing.T) {
	ws := []storage.WriteItem{{Addr: 4, Data: []byte("x")}, {Addr: 5, Data: []byte("y")}}
	tests := []struct {
		name   string
		change *transport.Request
		want   string
	}{
		{"write", write(5, "y"), `rw5: "y"`},
		{"batch", &transport.Request{Op: transport.OpWriteBatch, N: 2, Data: transport.AppendWriteBatch(nil, ws)}, `rw5: "y"`},
		{"fill", &transport.Request{Op: transport.OpFill, Addr: 5}, "rw5: " + storage.ErrJunk.Error()},
		{"trim", &transport.Request{Op: transport.OpTrim, Addr: 5}, "rw5: " + storage.ErrTrimmed.Error()},
		{"prefix trim", &transport.Request{Op: transport.OpPrefixTrim, Addr: 9}, "rw5: " + storage.ErrTrimmed.Error()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newWaitRig()
			r.serve("rw5", readWait(5, 100))
			r.serve("change", tt.change)
			require.Len(t, r.answers, 2)
			assert.Equal(t, "change: ok", r.answers[0])
			assert.Contains(t, r.answers[1], tt.want)
			assert.Zero(t, r.w.Parked())
		})
	}
	t.Run("seal", func(t *testing.T) {
		r := newWaitRig()
		r.serve("rw5", readWait(5, 100))
		r.serve("seal", &transport.Request{Op: transport.OpSeal, Epoch: 1})
		require.Len(t, r.answers, 2)
		assert.Contains(t, r.answers[1], "sealed", "a read at a sealed epoch fails")
		assert.Zero(t, r.w.Parked())
	})
	t.Run("a batch without its address", func(t *testing.T) {
		r := newWaitRig()
		r.serve("rw7", readWait(7, 100))
		r.serve("change", &transport.Request{Op: transport.OpWriteBatch, N: 2, Data: transport.AppendWriteBatch(nil, ws)})
		assert.Equal(t, []string{"change: ok"}, r.answers)
		assert.Equal(t, 1, r.w.Parked())
	})
	t.Run("a failed write", func(t *testing.T) {
		r := newWaitRig()
		r.serve("w5", write(5, "y"))
		r.serve("rw6", readWait(6, 100))
		r.serve("again", write(5, "z")) // refused: written
		require.Equal(t, []string{"w5: ok", "again: " + storage.ErrWritten.Error()}, r.answers)
		assert.Equal(t, 1, r.w.Parked(), "still waits")
	})
}

func TestReadWaitsTimesOut(t *testing.T) {
	r := newWaitRig()
	r.serve("rw1", readWait(1, 20))
	r.timers.fire()
	assert.Equal(t, []string{"rw1: " + storage.ErrUnwritten.Error()}, r.answers)
	assert.Zero(t, r.w.Parked())
	r.serve("w1", write(1, "late"))
	assert.Equal(t, []string{"rw1: " + storage.ErrUnwritten.Error(), "w1: ok"}, r.answers,
		"answered once")
}

func TestReadWaitsBoundsTheWait(t *testing.T) {
	r := newWaitRig()
	r.serve("rw0", readWait(0, 0))
	assert.Equal(t, []string{"rw0: " + storage.ErrUnwritten.Error()}, r.answers, "no wait: answered at once")
	r.serve("rw1", readWait(1, 1<<31))
	require.Equal(t, 1, r.timers.live())
	assert.Equal(t, transport.MaxReadWait, r.timers.calls[0].d)
}

func TestReadWaitsRelease(t *testing.T) {
	r := newWaitRig()
	r.serve("rw1", readWait(1, 100))
	r.serve("rw2", readWait(2, 100))
	r.w.Release()
	want := []string{"rw1: " + storage.ErrUnwritten.Error(), "rw2: " + storage.ErrUnwritten.Error()}
	assert.Equal(t, want, r.answers, "answered in the order they came")
	assert.Zero(t, r.timers.live())
	r.serve("rw3", readWait(3, 100))
	assert.Equal(t, append(want, "rw3: "+storage.ErrUnwritten.Error()), r.answers, "no wait once released")
}

func TestReadWaitsDrop(t *testing.T) {
	r := newWaitRig()
	r.serve("rw1", readWait(1, 100))
	r.w.Drop()
	assert.Zero(t, r.w.Parked())
	assert.Zero(t, r.timers.live())
	r.serve("w1", write(1, "a"))
	r.timers.fire()
	assert.Equal(t, []string{"w1: ok"}, r.answers, "a dropped read is never answered")
}

func TestReadWaitsHandleRefusesToPark(t *testing.T) {
	r := newWaitRig()
	resp := r.w.Handle(readWait(1, 100))
	require.ErrorIs(t, resp.Err, transport.ErrWrongRole)
	resp = (&transport.Server{Unit: storage.NewMemory()}).Handle(readWait(1, 100))
	require.ErrorIs(t, resp.Err, transport.ErrWrongRole, "a bare Server cannot park")

	// Handle still wakes what Serve parked.
	r.serve("rw1", readWait(1, 100))
	require.NoError(t, r.w.Handle(write(1, "a")).Err)
	assert.Equal(t, []string{`rw1: "a"`}, r.answers)
}

// TestReadWaitsMissesChangesBehindItsBack shows why every request must pass
// through ReadWaits: a write made to the unit directly wakes nothing, and
// the parked read only sees it when its wait is up.
func TestReadWaitsMissesChangesBehindItsBack(t *testing.T) {
	r := newWaitRig()
	r.serve("rw1", readWait(1, 100))
	require.NoError(t, r.unit.Write(context.Background(), 0, 1, []byte("a")))
	assert.Empty(t, r.answers)
	r.timers.fire()
	assert.Equal(t, []string{`rw1: "a"`}, r.answers)
}

func TestUnitClientReadWait(t *testing.T) {
	w := transport.NewReadWaits(&transport.Server{Unit: storage.NewMemory()}, transport.SystemTimers{})
	ctx := context.Background()
	call := asyncCaller{w}
	u := transport.UnitClient{Caller: call, Node: "u"}
	got := make(chan error, 1)
	var data []byte
	go func() {
		var err error
		data, err = u.ReadWait(ctx, 0, 2, time.Second)
		got <- err
	}()
	require.Eventually(t, func() bool { return w.Parked() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, u.Write(ctx, 0, 2, []byte("hello")))
	require.NoError(t, <-got)
	assert.Equal(t, "hello", string(data))

	_, err := u.ReadWait(ctx, 0, 3, time.Millisecond)
	require.ErrorIs(t, err, storage.ErrUnwritten, "the wait ends with the address free")

	bare := transport.UnitClient{Caller: serverCaller{&transport.Server{Unit: storage.NewMemory()}}, Node: "u"}
	_, err = bare.ReadWait(ctx, 0, 3, time.Second)
	require.ErrorIs(t, err, transport.ErrWrongRole)
}

// asyncCaller calls an AsyncHandler through the codec and waits for its
// answer.
type asyncCaller struct{ h transport.AsyncHandler }

func (c asyncCaller) Call(ctx context.Context, _ transport.NodeID, req *transport.Request) (*transport.Response, error) {
	in, err := transport.DecodeRequest(transport.AppendRequest(nil, req))
	if err != nil {
		return nil, err
	}
	answer := make(chan *transport.Response, 1)
	c.h.Serve(in, func(r *transport.Response) { answer <- r })
	select {
	case r := <-answer:
		out, err := transport.DecodeResponse(transport.AppendResponse(nil, r))
		if err != nil {
			return nil, err
		}
		return out, out.Err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// TestReadWaitsConcurrent parks many reads while many writers write their
// addresses: each read gets exactly one answer, the entry at its address.
func TestReadWaitsConcurrent(t *testing.T) {
	w := transport.NewReadWaits(&transport.Server{Unit: storage.NewMemory()}, transport.SystemTimers{})
	const n = 200
	var wg sync.WaitGroup
	answers := make([][]*transport.Response, n)
	var mu sync.Mutex
	for i := range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			w.Serve(readWait(storage.Address(i), uint32(transport.MaxReadWait/time.Millisecond)), func(r *transport.Response) {
				mu.Lock()
				answers[i] = append(answers[i], r)
				mu.Unlock()
			})
		}()
		go func() {
			defer wg.Done()
			w.Serve(write(storage.Address(i), fmt.Sprint(i)), func(r *transport.Response) { assert.NoError(t, r.Err) })
		}()
	}
	wg.Wait()
	require.Eventually(t, func() bool {
		mu.Lock()
		defer mu.Unlock()
		for _, a := range answers {
			if len(a) == 0 {
				return false
			}
		}
		return true
	}, 4*time.Second, time.Millisecond, "every read is answered before its wait is up")
	mu.Lock()
	defer mu.Unlock()
	for i, a := range answers {
		require.Len(t, a, 1, "read %d answered once", i)
		require.NoError(t, a[0].Err)
		require.Equal(t, fmt.Sprint(i), string(a[0].Data))
	}
	assert.Zero(t, w.Parked())
}
