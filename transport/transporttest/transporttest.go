// Package transporttest provides a conformance suite for transport.Caller
// implementations. Every Caller runs the same Run (the in-process network
// and the tcp transport, plain and over TLS), so that every operation,
// every sentinel error and every guarantee about memory and contexts holds
// the same over each of them. RunNetwork adds what only a Caller with a
// network between it and the server can promise: calls that end with their
// ctx while the server still works on them, and answers out of order.
package transporttest

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// NewCaller serves h on a fresh node and returns a Caller that reaches it and
// the node's name. It should register any cleanup with t.Cleanup.
type NewCaller func(t *testing.T, h transport.Handler) (transport.Caller, transport.NodeID)

// Run runs the conformance suite as subtests of t. Each subtest calls
// newCaller one or more times, with a transport.Server over a fresh
// storage.Memory, sequencer.Sequencer and projection.Acceptor (or a subset of
// them), and compares what every operation returns through the Caller with
// what the same operation returns when called directly on a twin of that
// server. Some subtests call from several goroutines at once.
func Run(t *testing.T, newCaller NewCaller) {
	t.Helper()
	s := suite{newCaller: newCaller}
	t.Run("Unit", s.testUnit)
	t.Run("Sequencer", s.testSequencer)
	t.Run("Layout", s.testLayout)
	t.Run("WrongRole", s.testWrongRole)
	t.Run("Malformed", s.testMalformed)
	t.Run("Aliasing", s.testAliasing)
	t.Run("Context", s.testContext)
	t.Run("Concurrent", s.testConcurrent)
	t.Run("Pipelined", s.testPipelined)
}

// RunNetwork runs, as subtests of t, the checks for a Caller whose calls do
// not run the handler in the caller's goroutine: a call whose ctx ends while
// the server is still serving it returns ctx's error at once, and a slow
// request holds up no other. Each subtest calls newCaller with a handler
// that blocks some requests until the subtest lets them go.
func RunNetwork(t *testing.T, newCaller NewCaller) {
	t.Helper()
	s := suite{newCaller: newCaller}
	t.Run("OutOfOrder", s.testOutOfOrder)
	t.Run("CancelInFlight", s.testCancelInFlight)
}

type suite struct {
	newCaller NewCaller
}

// InitialProjection is the projection of epoch 0 that the suite's layout
// servers start with.
func InitialProjection() *projection.Projection {
	return &projection.Projection{
		Epoch:     0,
		Sequencer: "seq",
		Layout:    []projection.NodeID{"layout"},
		Segments:  []projection.Segment{{Start: 0, Base: 0, Stripes: []projection.Chain{{"unit"}}}},
	}
}

// nextProjection returns a valid successor of InitialProjection at epoch.
func nextProjection(epoch storage.Epoch, seq projection.NodeID) *projection.Projection {
	p := InitialProjection()
	p.Epoch = epoch
	p.Sequencer = seq
	return p
}

// sentinels are the errors whose errors.Is answer must survive the wire.
var sentinels = []error{
	storage.ErrWritten, storage.ErrUnwritten, storage.ErrTrimmed, storage.ErrJunk,
	storage.ErrSealed, storage.ErrFutureEpoch, storage.ErrTooLarge,
	storage.ErrInvalidAddress, storage.ErrNilData, storage.ErrBlank, storage.ErrNotBlank,
	sequencer.ErrNotReady, sequencer.ErrInvalid, sequencer.ErrRestarted,
	projection.ErrInvalid, projection.ErrNoSegment, projection.ErrStaleEpoch,
	projection.ErrRejected, projection.ErrConflict, projection.ErrEpochGap,
	transport.ErrWrongRole, transport.ErrUnreachable, transport.ErrMalformed, transport.ErrRemote,
	transport.ErrNotDurable,
}

// sameError checks that got, from the Caller, is the error want, from the
// direct call: same message, same answer from errors.Is for every sentinel,
// same epoch in a *storage.SealedError.
func sameError(t *testing.T, want, got error, what string) {
	t.Helper()
	if want == nil {
		require.NoError(t, got, what)
		return
	}
	require.Error(t, got, what)
	assert.Equal(t, want.Error(), got.Error(), what)
	for _, s := range sentinels {
		assert.Equal(t, errors.Is(want, s), errors.Is(got, s), "%s: errors.Is(%q, %q)", what, got, s)
	}
	var ws, gs *storage.SealedError
	if assert.Equal(t, errors.As(want, &ws), errors.As(got, &gs), "%s: errors.As(%q, *SealedError)", what, got) && ws != nil {
		assert.Equal(t, ws.Epoch, gs.Epoch, "%s: sealed epoch", what)
	}
}

// unitOp is one call on a storage unit, with the sentinel it must fail
// with (nil for success).
type unitOp struct {
	name  string
	do    func(ctx context.Context, u storage.Unit) ([]byte, storage.Address, error)
	want  error
	epoch storage.Epoch // for a *SealedError, the epoch it carries
}

func write(e storage.Epoch, a storage.Address, data []byte) func(context.Context, storage.Unit) ([]byte, storage.Address, error) {
	return func(ctx context.Context, u storage.Unit) ([]byte, storage.Address, error) {
		return nil, 0, u.Write(ctx, e, a, data)
	}
}

func read(e storage.Epoch, a storage.Address) func(context.Context, storage.Unit) ([]byte, storage.Address, error) {
	return func(ctx context.Context, u storage.Unit) ([]byte, storage.Address, error) {
		data, err := u.Read(ctx, e, a)
		return data, 0, err
	}
}

func fill(e storage.Epoch, a storage.Address) func(context.Context, storage.Unit) ([]byte, storage.Address, error) {
	return func(ctx context.Context, u storage.Unit) ([]byte, storage.Address, error) {
		return nil, 0, u.Fill(ctx, e, a)
	}
}

func trim(e storage.Epoch, a storage.Address) func(context.Context, storage.Unit) ([]byte, storage.Address, error) {
	return func(ctx context.Context, u storage.Unit) ([]byte, storage.Address, error) {
		return nil, 0, u.Trim(ctx, e, a)
	}
}

func prefixTrim(e storage.Epoch, a storage.Address) func(context.Context, storage.Unit) ([]byte, storage.Address, error) {
	return func(ctx context.Context, u storage.Unit) ([]byte, storage.Address, error) {
		return nil, 0, u.PrefixTrim(ctx, e, a)
	}
}

func seal(e storage.Epoch) func(context.Context, storage.Unit) ([]byte, storage.Address, error) {
	return func(ctx context.Context, u storage.Unit) ([]byte, storage.Address, error) {
		tail, err := u.Seal(ctx, e)
		return nil, tail, err
	}
}

// testUnit runs one history of unit operations against a unit over the
// Caller and against a twin unit called directly, and checks that every
// step answers alike and as expected.
func (s suite) testUnit(t *testing.T) {
	caller, node := s.newCaller(t, &transport.Server{Unit: storage.NewMemory()})
	remote := transport.UnitClient{Caller: caller, Node: node}
	local := storage.NewMemory()
	ops := []unitOp{
		{name: "write", do: write(0, 0, []byte("hello"))},
		{name: "read", do: read(0, 0)},
		{name: "write again", do: write(0, 0, []byte("other")), want: storage.ErrWritten},
		{name: "write empty", do: write(0, 1, []byte{})},
		{name: "read empty", do: read(0, 1)},
		{name: "write nil", do: write(0, 2, nil), want: storage.ErrNilData},
		{name: "read unwritten", do: read(0, 2), want: storage.ErrUnwritten},
		{name: "fill", do: fill(0, 2)},
		{name: "read junk", do: read(0, 2), want: storage.ErrJunk},
		{name: "fill junk again", do: fill(0, 2)},
		{name: "fill written", do: fill(0, 0), want: storage.ErrWritten},
		{name: "write junk", do: write(0, 2, []byte("x")), want: storage.ErrWritten},
		{name: "write max entry", do: write(0, 3, make([]byte, storage.MaxEntryBytes))},
		{name: "read max entry", do: read(0, 3)},
		{name: "write too large", do: write(0, 4, make([]byte, storage.MaxEntryBytes+1)), want: storage.ErrTooLarge},
		{name: "write invalid address", do: write(0, storage.MaxAddress, []byte("x")), want: storage.ErrInvalidAddress},
		{name: "read invalid address", do: read(0, 1<<64-1), want: storage.ErrInvalidAddress},
		{name: "trim", do: trim(0, 3)},
		{name: "read trimmed", do: read(0, 3), want: storage.ErrTrimmed},
		{name: "write trimmed", do: write(0, 3, []byte("x")), want: storage.ErrTrimmed},
		{name: "write 10", do: write(0, 10, []byte("ten"))},
		{name: "prefix trim", do: prefixTrim(0, 2)},
		{name: "read below mark", do: read(0, 0), want: storage.ErrTrimmed},
		{name: "read above mark", do: read(0, 10)},
		{name: "future epoch", do: read(1, 10), want: storage.ErrFutureEpoch},
		{name: "seal", do: seal(3)},
		{name: "seal again", do: seal(3)},
		{name: "stale write", do: write(2, 20, []byte("x")), want: storage.ErrSealed, epoch: 3},
		{name: "stale read", do: read(0, 10), want: storage.ErrSealed, epoch: 3},
		{name: "stale seal", do: seal(1), want: storage.ErrSealed, epoch: 3},
		{name: "stale too large", do: write(2, 20, make([]byte, storage.MaxEntryBytes+1)), want: storage.ErrSealed, epoch: 3},
		{name: "read at new epoch", do: read(3, 10)},
	}
	ctx := context.Background()
	for _, op := range ops {
		wantData, wantTail, wantErr := op.do(ctx, local)
		gotData, gotTail, gotErr := op.do(ctx, remote)
		sameError(t, wantErr, gotErr, op.name)
		if op.want == nil {
			require.NoError(t, gotErr, op.name)
		} else {
			require.ErrorIs(t, gotErr, op.want, op.name)
		}
		if op.epoch != 0 {
			var se *storage.SealedError
			require.ErrorAs(t, gotErr, &se, op.name)
			require.Equal(t, op.epoch, se.Epoch, op.name)
		}
		require.Equal(t, wantData, gotData, op.name)
		require.Equal(t, wantTail, gotTail, op.name)
	}
}

// testSequencer does the same for the sequencer.
func (s suite) testSequencer(t *testing.T) {
	caller, node := s.newCaller(t, &transport.Server{Sequencer: sequencer.New(sequencer.Config{})})
	remote := transport.SequencerClient{Caller: caller, Node: node}
	local := sequencer.New(sequencer.Config{})
	ctx := context.Background()

	next := func(name string, epoch storage.Epoch, n int, streams []sequencer.StreamID, want error) sequencer.Token {
		t.Helper()
		wantTok, wantErr := local.Next(epoch, n, streams)
		gotTok, gotErr := remote.Next(ctx, epoch, n, streams)
		sameError(t, wantErr, gotErr, name)
		if want == nil {
			require.NoError(t, gotErr, name)
		} else {
			require.ErrorIs(t, gotErr, want, name)
		}
		require.Equal(t, wantTok, gotTok, name)
		return gotTok
	}
	seal := func(name string, epoch storage.Epoch, want error) storage.Address {
		t.Helper()
		want0, wantErr := local.Seal(epoch)
		wantTail := want0.Tail
		got, gotErr := remote.Seal(ctx, epoch)
		gotTail := got.Tail
		if wantErr == nil {
			require.Equal(t, want0, got, name)
		}
		sameError(t, wantErr, gotErr, name)
		if want == nil {
			require.NoError(t, gotErr, name)
		} else {
			require.ErrorIs(t, gotErr, want, name)
		}
		require.Equal(t, wantTail, gotTail, name)
		return gotTail
	}
	bootstrap := func(name string, epoch storage.Epoch, tail storage.Address, tails []sequencer.StreamTail, want error) {
		t.Helper()
		wantErr := local.Bootstrap(epoch, tail, tails)
		gotErr := remote.Bootstrap(ctx, 0, epoch, tail, tails)
		sameError(t, wantErr, gotErr, name)
		if want == nil {
			require.NoError(t, gotErr, name)
		} else {
			require.ErrorIs(t, gotErr, want, name)
		}
	}

	next("not bootstrapped", 0, 1, nil, sequencer.ErrNotReady)
	bootstrap("bootstrap", 1, 100, []sequencer.StreamTail{
		{Stream: 7, Addrs: []storage.Address{90, 80}},
		{Stream: 8, Addrs: []storage.Address{}},
		{Stream: 9},
	}, nil)
	tok := next("token", 1, 3, []sequencer.StreamID{7, 8, 11}, nil)
	require.Equal(t, storage.Address(100), tok.Start)
	require.Len(t, tok.Backpointers, 3)
	require.Equal(t, []storage.Address{90, 80}, tok.Backpointers[0].Addrs)
	next("token no streams", 1, 1, nil, nil)
	next("token empty streams", 1, 2, []sequencer.StreamID{}, nil)
	next("query", 1, 0, []sequencer.StreamID{7, 11}, nil)
	next("stream twice", 1, 1, []sequencer.StreamID{7, 7}, sequencer.ErrInvalid)
	next("batch above max", 1, sequencer.MaxBatch+1, nil, sequencer.ErrInvalid)
	next("future epoch", 2, 1, nil, sequencer.ErrNotReady)
	bootstrap("bootstrap invalid", 1, storage.MaxAddress, nil, sequencer.ErrInvalid)
	tail := seal("seal", 2, nil)
	require.Equal(t, storage.Address(106), tail)
	next("sealed", 2, 1, nil, sequencer.ErrNotReady)
	next("stale", 1, 1, nil, storage.ErrSealed)
	seal("stale seal", 1, storage.ErrSealed)
	bootstrap("stale bootstrap", 1, 0, nil, storage.ErrSealed)
	bootstrap("bootstrap again", 2, 0, nil, nil)
	next("after bootstrap", 2, 1, []sequencer.StreamID{7}, nil)

	var se *storage.SealedError
	_, err := remote.Next(ctx, 0, 1, nil)
	require.ErrorAs(t, err, &se)
	require.Equal(t, storage.Epoch(2), se.Epoch)
}

// testLayout does the same for a layout server.
func (s suite) testLayout(t *testing.T) {
	caller, node := s.newCaller(t, &transport.Server{Layout: projection.NewAcceptor(InitialProjection())})
	remote := transport.LayoutClient{Caller: caller, Node: node}
	local := projection.NewAcceptor(InitialProjection())
	ctx := context.Background()

	check := func(name string, wantErr, gotErr, want error) {
		t.Helper()
		sameError(t, wantErr, gotErr, name)
		if want == nil {
			require.NoError(t, gotErr, name)
		} else {
			require.ErrorIs(t, gotErr, want, name)
		}
	}
	get := func(name string) *projection.Projection {
		t.Helper()
		got, err := remote.Get(ctx)
		require.NoError(t, err, name)
		require.True(t, local.Latest().Equal(got), "%s: got %+v, want %+v", name, got, local.Latest())
		return got
	}
	prepare := func(name string, epoch storage.Epoch, rank uint64, want error) (uint64, *projection.Projection) {
		t.Helper()
		wantRank, wantP, wantErr := local.Prepare(epoch, rank)
		gotRank, gotP, gotErr := remote.Prepare(ctx, epoch, rank)
		check(name, wantErr, gotErr, want)
		require.Equal(t, wantRank, gotRank, name)
		require.True(t, wantP.Equal(gotP), "%s: got %+v, want %+v", name, gotP, wantP)
		return gotRank, gotP
	}
	propose := func(name string, epoch storage.Epoch, rank uint64, p *projection.Projection, want error) {
		t.Helper()
		check(name, local.Propose(epoch, rank, p), remote.Propose(ctx, epoch, rank, p), want)
	}
	commit := func(name string, p *projection.Projection, want error) {
		t.Helper()
		check(name, local.Commit(p), remote.Commit(ctx, p), want)
	}

	require.Equal(t, storage.Epoch(0), get("initial").Epoch)
	rank, acc := prepare("prepare", 1, 10, nil)
	require.Zero(t, rank)
	require.Nil(t, acc)
	prepare("prepare same rank", 1, 10, projection.ErrRejected)
	p1 := nextProjection(1, "seq-1")
	propose("propose", 1, 10, p1, nil)
	propose("propose lower rank", 1, 9, nextProjection(1, "seq-2"), projection.ErrRejected)
	propose("propose conflicting", 1, 10, nextProjection(1, "seq-2"), projection.ErrConflict)
	propose("propose wrong epoch", 1, 10, nextProjection(2, "seq-2"), projection.ErrInvalid)
	rank, acc = prepare("prepare higher", 1, 11, nil)
	require.Equal(t, uint64(10), rank)
	require.True(t, p1.Equal(acc))
	commit("commit", p1, nil)
	require.True(t, p1.Equal(get("after commit")))
	commit("commit again", p1, nil)
	commit("commit conflicting", nextProjection(1, "seq-2"), projection.ErrConflict)
	prepare("prepare stale", 1, 12, projection.ErrStaleEpoch)
	propose("propose stale", 1, 12, p1, projection.ErrStaleEpoch)

	invalid := nextProjection(2, "seq-1")
	invalid.Layout = nil
	for _, p := range []*projection.Projection{nil, invalid} {
		require.ErrorIs(t, remote.Propose(ctx, 2, 20, p), projection.ErrInvalid)
		require.ErrorIs(t, remote.Commit(ctx, p), projection.ErrInvalid)
	}
	// The server checks too, for callers that skip the stub's checks.
	for _, op := range []transport.Op{transport.OpPropose, transport.OpCommit} {
		_, err := caller.Call(ctx, node, &transport.Request{Op: op, Epoch: 2, Rank: 20})
		require.ErrorIs(t, err, projection.ErrInvalid, "%s without a projection", op)
	}
	require.True(t, p1.Equal(get("unchanged")))
}

// testWrongRole sends each role's requests to nodes that lack the role.
func (s suite) testWrongRole(t *testing.T) {
	servers := map[string]*transport.Server{
		"unit":      {Unit: storage.NewMemory()},
		"sequencer": {Sequencer: sequencer.New(sequencer.Config{})},
		"layout":    {Layout: projection.NewAcceptor(InitialProjection())},
		"none":      {},
	}
	roles := map[string][]transport.Op{
		"unit":      {transport.OpWrite, transport.OpRead, transport.OpFill, transport.OpTrim, transport.OpPrefixTrim, transport.OpSeal},
		"sequencer": {transport.OpToken, transport.OpBootstrap, transport.OpSeqSeal},
		"layout":    {transport.OpGetLayout, transport.OpPrepare, transport.OpPropose, transport.OpCommit},
	}
	for name, srv := range servers {
		t.Run(name, func(t *testing.T) {
			caller, node := s.newCaller(t, srv)
			for role, ops := range roles {
				if role == name {
					continue
				}
				for _, op := range ops {
					req := &transport.Request{Op: op, Data: []byte("x"), N: 1, Projection: InitialProjection()}
					_, err := caller.Call(context.Background(), node, req)
					require.ErrorIs(t, err, transport.ErrWrongRole, "%s to a %s node", op, name)
				}
			}
		})
	}
}

// testMalformed sends requests that do not make valid messages.
func (s suite) testMalformed(t *testing.T) {
	caller, node := s.newCaller(t, &transport.Server{
		Unit:      storage.NewMemory(),
		Sequencer: sequencer.New(sequencer.Config{}),
		Layout:    projection.NewAcceptor(InitialProjection()),
	})
	ctx := context.Background()
	for _, op := range []transport.Op{0, 9, 15, 19, 31, 36, 255} {
		_, err := caller.Call(ctx, node, &transport.Request{Op: op})
		require.ErrorIs(t, err, transport.ErrMalformed, "op %d", op)
	}
	_, err := caller.Call(ctx, node, &transport.Request{Op: transport.OpToken, N: 1,
		Streams: make([]sequencer.StreamID, sequencer.MaxStreams+1)})
	require.ErrorIs(t, err, transport.ErrMalformed, "too many streams")
	require.ErrorIs(t, err, sequencer.ErrInvalid, "too many streams")

	// The node still serves well-formed requests.
	_, err = caller.Call(ctx, node, &transport.Request{Op: transport.OpWrite, Data: []byte("x")})
	require.NoError(t, err)
}

// testAliasing checks that caller and server never share memory.
func (s suite) testAliasing(t *testing.T) {
	caller, node := s.newCaller(t, &transport.Server{
		Unit:   storage.NewMemory(),
		Layout: projection.NewAcceptor(InitialProjection()),
	})
	ctx := context.Background()
	u := transport.UnitClient{Caller: caller, Node: node}

	buf := []byte("original")
	req := &transport.Request{Op: transport.OpWrite, Addr: 1, Data: buf}
	_, err := caller.Call(ctx, node, req)
	require.NoError(t, err)
	require.Equal(t, []byte("original"), req.Data, "Call leaves the request alone")
	copy(buf, "mutated!")

	got, err := u.Read(ctx, 0, 1)
	require.NoError(t, err)
	require.Equal(t, []byte("original"), got, "a write's buffer is not kept")
	copy(got, "mutated!")
	again, err := u.Read(ctx, 0, 1)
	require.NoError(t, err)
	require.Equal(t, []byte("original"), again, "a read's result is the caller's")

	lc := transport.LayoutClient{Caller: caller, Node: node}
	p, err := lc.Get(ctx)
	require.NoError(t, err)
	p.Layout[0] = "mutated"
	p.Segments[0].Stripes[0][0] = "mutated"
	p2, err := lc.Get(ctx)
	require.NoError(t, err)
	require.True(t, InitialProjection().Equal(p2), "a projection's result is the caller's")
}

// doneContext is a context that is already done with err, without a clock.
type doneContext struct {
	context.Context
	err error
}

func (c doneContext) Done() <-chan struct{} {
	ch := make(chan struct{})
	close(ch)
	return ch
}

func (c doneContext) Err() error { return c.err }

func (c doneContext) Deadline() (time.Time, bool) {
	if c.err == context.DeadlineExceeded {
		return time.Unix(0, 0), true
	}
	return time.Time{}, false
}

// testContext checks that a done context ends a call with its error.
func (s suite) testContext(t *testing.T) {
	unit := storage.NewMemory()
	caller, node := s.newCaller(t, &transport.Server{Unit: unit})
	cancelled, cancel := context.WithCancel(context.Background())
	cancel()
	contexts := map[string]context.Context{
		"cancelled": cancelled,
		"deadline":  doneContext{Context: context.Background(), err: context.DeadlineExceeded},
	}
	for name, ctx := range contexts {
		t.Run(name, func(t *testing.T) {
			_, err := caller.Call(ctx, node, &transport.Request{Op: transport.OpRead})
			require.ErrorIs(t, err, ctx.Err())
			u := transport.UnitClient{Caller: caller, Node: node}
			_, err = u.Read(ctx, 0, 0)
			require.ErrorIs(t, err, ctx.Err())
			require.NotErrorIs(t, err, storage.ErrUnwritten, "the unit's answer does not replace ctx's error")
		})
	}
	// The node is unharmed.
	_, err := caller.Call(context.Background(), node, &transport.Request{Op: transport.OpWrite, Data: []byte("x")})
	require.NoError(t, err)
}

// testConcurrent calls one node from several goroutines.
func (s suite) testConcurrent(t *testing.T) {
	seq := sequencer.New(sequencer.Config{})
	require.NoError(t, seq.Bootstrap(0, 0, nil))
	caller, node := s.newCaller(t, &transport.Server{Unit: storage.NewMemory(), Sequencer: seq})
	ctx := context.Background()
	const workers, each = 8, 25

	var wg sync.WaitGroup
	starts := make([][]storage.Address, workers)
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			u := transport.UnitClient{Caller: caller, Node: node}
			sc := transport.SequencerClient{Caller: caller, Node: node}
			for range each {
				tok, err := sc.Next(ctx, 0, 1, []sequencer.StreamID{sequencer.StreamID(w)})
				if err != nil {
					errs[w] = err
					return
				}
				starts[w] = append(starts[w], tok.Start)
				if err := u.Write(ctx, 0, tok.Start, []byte(fmt.Sprint(tok.Start))); err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	seen := make(map[storage.Address]bool)
	u := transport.UnitClient{Caller: caller, Node: node}
	for w := range workers {
		require.NoError(t, errs[w], "worker %d", w)
		for _, a := range starts[w] {
			require.False(t, seen[a], "token %d handed out twice", a)
			seen[a] = true
			got, err := u.Read(ctx, 0, a)
			require.NoError(t, err)
			require.Equal(t, fmt.Sprint(a), string(got))
		}
	}
	require.Len(t, seen, workers*each)
}

// testPipelined reads many addresses from many goroutines at once through
// one Caller: every answer must be the one to its own request.
func (s suite) testPipelined(t *testing.T) {
	caller, node := s.newCaller(t, &transport.Server{Unit: storage.NewMemory()})
	ctx := context.Background()
	u := transport.UnitClient{Caller: caller, Node: node}
	const addrs, workers, each = 64, 32, 40
	for a := range storage.Address(addrs) {
		require.NoError(t, u.Write(ctx, 0, a, []byte(fmt.Sprint("entry ", a))))
	}
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				a := storage.Address((w*7 + i*13) % addrs)
				got, err := u.Read(ctx, 0, a)
				if err == nil && string(got) != fmt.Sprint("entry ", a) {
					err = fmt.Errorf("read of %d returned %q", a, got)
				}
				if err != nil {
					errs[w] = err
					return
				}
			}
		})
	}
	wg.Wait()
	for w, err := range errs {
		require.NoError(t, err, "worker %d", w)
	}
}

// gate is a Handler that serves a unit but holds every read of address
// slow until release is closed, telling entered when each such read
// arrives.
type gate struct {
	inner   transport.Handler
	slow    storage.Address
	entered chan struct{}
	release chan struct{}
}

func newGate(slow storage.Address) *gate {
	return &gate{inner: &transport.Server{Unit: storage.NewMemory()}, slow: slow,
		entered: make(chan struct{}, 16), release: make(chan struct{})}
}

func (g *gate) Handle(req *transport.Request) *transport.Response {
	if req.Op == transport.OpRead && req.Addr == g.slow {
		g.entered <- struct{}{}
		<-g.release
	}
	return g.inner.Handle(req)
}

// waitFor waits for ch, failing t after a minute: the suite's calls are
// all local, so only a hung call takes that long.
func waitFor[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(time.Minute):
		require.FailNow(t, "timed out waiting for "+what)
		panic("unreachable")
	}
}

// testOutOfOrder checks that a request held up by the server does not hold
// up a later one on the same Caller.
func (s suite) testOutOfOrder(t *testing.T) {
	g := newGate(1)
	caller, node := s.newCaller(t, g)
	ctx := context.Background()
	u := transport.UnitClient{Caller: caller, Node: node}
	require.NoError(t, u.Write(ctx, 0, 1, []byte("slow")))
	require.NoError(t, u.Write(ctx, 0, 2, []byte("fast")))

	type result struct {
		data []byte
		err  error
	}
	slow := make(chan result, 1)
	go func() {
		data, err := u.Read(ctx, 0, 1)
		slow <- result{data, err}
	}()
	waitFor(t, g.entered, "the slow read to reach the server")
	got, err := u.Read(ctx, 0, 2)
	require.NoError(t, err)
	require.Equal(t, "fast", string(got), "the later request is answered while the first is held")
	select {
	case r := <-slow:
		t.Fatalf("the held read returned before it was let go: %q, %v", r.data, r.err)
	default:
	}
	close(g.release)
	r := waitFor(t, slow, "the slow read")
	require.NoError(t, r.err)
	require.Equal(t, "slow", string(r.data))
}

// testCancelInFlight checks that a call whose ctx ends while the server is
// serving it returns ctx's error without waiting for the server, and that
// the late answer goes to no other call.
func (s suite) testCancelInFlight(t *testing.T) {
	g := newGate(1)
	caller, node := s.newCaller(t, g)
	ctx := context.Background()
	u := transport.UnitClient{Caller: caller, Node: node}
	require.NoError(t, u.Write(ctx, 0, 1, []byte("held")))
	require.NoError(t, u.Write(ctx, 0, 2, []byte("other")))

	cctx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() {
		_, err := u.Read(cctx, 0, 1)
		done <- err
	}()
	waitFor(t, g.entered, "the held read to reach the server")
	cancel()
	err := waitFor(t, done, "the cancelled call to return")
	require.ErrorIs(t, err, context.Canceled)

	got, err := u.Read(ctx, 0, 2)
	require.NoError(t, err)
	require.Equal(t, "other", string(got))
	close(g.release) // the held read's answer now comes back, to nobody
	for range 5 {
		got, err = u.Read(ctx, 0, 2)
		require.NoError(t, err)
		require.Equal(t, "other", string(got), "a late answer went to another call")
	}
	got, err = u.Read(ctx, 0, 1)
	require.NoError(t, err)
	require.Equal(t, "held", string(got))
}
