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

var (
	data2 = []storage.State{storage.StateData, storage.StateData}
	junk2 = []storage.State{storage.StateJunk, storage.StateJunk}
)

func TestReadCompletesPartialWrite(t *testing.T) {
	raw := rawEntry(t, []byte("half done"))
	tests := []struct {
		name    string
		opts    corfutest.Options
		written int // replicas, from the head, that hold the entry
	}{
		{name: "head of two", written: 1},
		{name: "head of three", opts: corfutest.Options{Units: 3, Replicas: 3}, written: 1},
		{name: "two of three", opts: corfutest.Options{Units: 3, Replicas: 3}, written: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, tt.opts, func(c *corfu.Config) { c.HoleFillWait = time.Hour })
			a := e.token(1) // a writer took the address and crashed mid-chain
			for _, r := range e.chain(a)[:tt.written] {
				require.NoError(t, r.unit.Write(e.ctx, 0, r.local, raw))
			}
			got, err := e.c.Read(e.ctx, a)
			require.NoError(t, err, "completed at once, without waiting for the writer")
			assert.Equal(t, "half done", string(got.Data))
			for _, r := range e.chain(a) {
				s, b := r.unit.Inspect(r.local)
				assert.Equal(t, storage.StateData, s, "replica %s", r.id)
				assert.Equal(t, raw, b, "replica %s", r.id)
			}
			again, err := e.open(nil).Read(e.ctx, a)
			require.NoError(t, err)
			assert.Equal(t, got, again)
		})
	}
}

func TestReadFillsHole(t *testing.T) {
	for _, opts := range []corfutest.Options{{}, {Units: 1, Replicas: 1}, {Units: 3, Replicas: 3}} {
		t.Run("replicas "+string(rune('0'+max(opts.Replicas, 2))), func(t *testing.T) {
			e := newEnv(t, opts, nil)
			a := e.token(1) // handed out, never written
			b, err := e.c.Append(e.ctx, []byte("after the hole"))
			require.NoError(t, err)
			require.Equal(t, a+1, b)

			start := time.Now()
			_, err = e.c.Read(e.ctx, a)
			require.ErrorIs(t, err, corfu.ErrJunk)
			assert.GreaterOrEqual(t, time.Since(start), holeFillWait, "waited for the writer first")
			for _, r := range e.chain(a) {
				s, _ := r.unit.Inspect(r.local)
				assert.Equal(t, storage.StateJunk, s, "replica %s", r.id)
			}
			// Later reads, by anyone, agree and do not wait again.
			other := e.open(func(c *corfu.Config) { c.RPCTimeout, c.HoleFillWait = time.Second, time.Hour })
			for _, c := range []*corfu.Client{e.c, other} {
				_, err = c.Read(e.ctx, a)
				require.ErrorIs(t, err, corfu.ErrJunk)
			}
			got, err := other.Read(e.ctx, b)
			require.NoError(t, err)
			assert.Equal(t, "after the hole", string(got.Data))
		})
	}
}

func TestReadWaitsForSlowWriter(t *testing.T) {
	raw := rawEntry(t, []byte("slow but alive"))
	e := newEnv(t, corfutest.Options{}, nil)
	a := e.token(1)
	head := e.chain(a)[0]
	reads := 0
	e.net.setRule(func(to transport.NodeID, req *transport.Request) action {
		if to == head.id && req.Op == transport.OpRead && req.Addr == head.local {
			reads++
			if reads == 2 {
				// The writer's head write lands while the reader waits.
				require.NoError(t, head.unit.Write(context.Background(), 0, head.local, raw))
			}
		}
		return pass
	})
	got, err := e.c.Read(e.ctx, a)
	require.NoError(t, err)
	assert.Equal(t, "slow but alive", string(got.Data))
	assert.Equal(t, data2, e.state(a))
	assert.Zero(t, e.net.count(transport.OpFill))
}

func TestFill(t *testing.T) {
	raw := rawEntry(t, []byte("mine"))
	tests := []struct {
		name  string
		plant func(e *env, a storage.Address)
		want  error
		state []storage.State
	}{
		{name: "hole", plant: func(*env, storage.Address) {}, state: junk2},
		{name: "junk at head", state: junk2, plant: func(e *env, a storage.Address) {
			r := e.chain(a)[0]
			require.NoError(t, r.unit.Fill(e.ctx, 0, r.local))
		}},
		{name: "junk everywhere", state: junk2, plant: func(e *env, a storage.Address) { e.junk(a) }},
		{name: "head-only write is completed, not clobbered", want: corfu.ErrWritten, state: data2, plant: func(e *env, a storage.Address) {
			r := e.chain(a)[0]
			require.NoError(t, r.unit.Write(e.ctx, 0, r.local, raw))
		}},
		{name: "complete write", want: corfu.ErrWritten, state: data2, plant: func(e *env, a storage.Address) {
			for _, r := range e.chain(a) {
				require.NoError(t, r.unit.Write(e.ctx, 0, r.local, raw))
			}
		}},
		{name: "trimmed", want: corfu.ErrTrimmed, state: []storage.State{storage.StateTrimmed, storage.StateTrimmed}, plant: func(e *env, a storage.Address) {
			for _, r := range e.chain(a) {
				require.NoError(t, r.unit.Trim(e.ctx, 0, r.local))
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, nil)
			a := e.token(1)
			tt.plant(e, a)
			err := e.c.Fill(e.ctx, a)
			if tt.want == nil {
				require.NoError(t, err)
			} else {
				require.ErrorIs(t, err, tt.want)
			}
			assert.Equal(t, tt.state, e.state(a))
			_, rerr := e.c.Read(e.ctx, a)
			switch {
			case tt.want == nil:
				assert.ErrorIs(t, rerr, corfu.ErrJunk)
			case tt.want == corfu.ErrWritten:
				assert.NoError(t, rerr)
			default:
				assert.ErrorIs(t, rerr, tt.want)
			}
		})
	}
}

func TestAppendLosesAddress(t *testing.T) {
	other := rawEntry(t, []byte("someone else's"))
	tests := []struct {
		name  string
		plant func(e *env, r replica)
		then  error // what a read of the lost address gives
	}{
		{name: "junk at head", then: corfu.ErrJunk, plant: func(e *env, r replica) {
			require.NoError(t, r.unit.Fill(e.ctx, 0, r.local))
		}},
		{name: "other entry at head", plant: func(e *env, r replica) {
			require.NoError(t, r.unit.Write(e.ctx, 0, r.local, other))
		}},
		{name: "trimmed at head", then: corfu.ErrTrimmed, plant: func(e *env, r replica) {
			require.NoError(t, r.unit.Trim(e.ctx, 0, r.local))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, nil)
			first, err := e.c.Append(e.ctx, []byte("first"))
			require.NoError(t, err)
			next := first + 1 // the address the sequencer hands out next
			tt.plant(e, e.chain(next)[0])

			a, err := e.c.Append(e.ctx, []byte("mine"))
			require.NoError(t, err)
			assert.Equal(t, next+1, a, "took a fresh token")
			got, err := e.c.Read(e.ctx, a)
			require.NoError(t, err)
			assert.Equal(t, "mine", string(got.Data))

			lost, err := e.c.Read(e.ctx, next)
			if tt.then != nil {
				require.ErrorIs(t, err, tt.then)
			} else {
				require.NoError(t, err)
				assert.Equal(t, "someone else's", string(lost.Data), "the other writer's entry is completed, not replaced")
			}
		})
	}

	t.Run("every token lost", func(t *testing.T) {
		e := newEnv(t, corfutest.Options{Units: 1, Replicas: 1}, func(c *corfu.Config) { c.MaxRetries = 3 })
		for a := range storage.Address(10) {
			e.junk(a)
		}
		_, err := e.c.Append(e.ctx, []byte("unlucky"))
		require.ErrorIs(t, err, corfu.ErrRetriesExhausted)
		assert.NotErrorIs(t, err, corfu.ErrUnknownOutcome, "the entry is nowhere")
		tail, err := e.c.Tail(e.ctx)
		require.NoError(t, err)
		assert.Equal(t, storage.Address(4), tail, "MaxRetries+1 tokens")
	})
}

func TestAppendRecognizesOwnBytes(t *testing.T) {
	tests := []struct {
		name    string
		replica int // whose reply is lost
	}{
		{name: "lost reply from head", replica: 0},
		{name: "lost reply from tail", replica: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, nil)
			target := e.chain(0)[tt.replica]
			lost := false
			e.net.setRule(func(to transport.NodeID, req *transport.Request) action {
				if to == target.id && req.Op == transport.OpWrite && !lost {
					lost = true
					return loseReply // the write lands; its reply does not
				}
				return pass
			})
			a, err := e.c.Append(e.ctx, []byte("twice sent"))
			require.NoError(t, err)
			require.True(t, lost)
			assert.Equal(t, storage.Address(0), a, "the retry found its own bytes and kept the token")
			assert.Equal(t, data2, e.state(0))
			tail, err := e.c.Tail(e.ctx)
			require.NoError(t, err)
			assert.Equal(t, storage.Address(1), tail, "no second token")
		})
	}
}

func TestAppendCompletedByReader(t *testing.T) {
	// A reader completes the chain before the writer's retry reaches the
	// tail: the writer finds its own bytes there.
	e := newEnv(t, corfutest.Options{}, nil)
	reader := e.open(nil)
	tail := e.chain(0)[1]
	once := false
	var got corfu.Entry
	var rerr error
	e.net.setRule(func(to transport.NodeID, req *transport.Request) action {
		if to == tail.id && req.Op == transport.OpWrite && !once {
			once = true
			// The writer's first tail write fails; meanwhile a reader
			// completes the chain.
			e.net.setRule(nil)
			got, rerr = reader.Read(context.Background(), 0)
			return refuse
		}
		return pass
	})
	a, err := e.c.Append(e.ctx, []byte("finished by another"))
	require.NoError(t, err)
	assert.Equal(t, storage.Address(0), a)
	require.NoError(t, rerr)
	assert.Equal(t, "finished by another", string(got.Data))
	assert.Equal(t, data2, e.state(0))
}

func TestHopTimeoutKeepsServerAnswer(t *testing.T) {
	// Every answer arrives just as the hop's deadline passes; the server's
	// answer must win over the timeout.
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.MaxRetries = 2 })
	_, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	e.net.setRule(func(transport.NodeID, *transport.Request) action { return late })
	_, err = e.c.Read(e.ctx, 5)
	require.ErrorIs(t, err, corfu.ErrUnwritten)
	got, err := e.c.Read(e.ctx, 0)
	require.NoError(t, err)
	assert.Equal(t, "x", string(got.Data))
	err = e.c.Fill(e.ctx, 0)
	require.ErrorIs(t, err, corfu.ErrWritten)
}

func TestDivergedReplicasReported(t *testing.T) {
	// States no correct client leaves behind: the client reports them
	// rather than papering over them.
	raw := rawEntry(t, []byte("head's"))
	other := rawEntry(t, []byte("tail's"))
	tests := []struct {
		name  string
		plant []func(e *env, r replica) // per replica, head first; nil leaves it unwritten
		do    func(e *env, a storage.Address) error
	}{
		{name: "read completes into junk", do: readOf,
			plant: []func(*env, replica){write(raw), fill, nil}},
		{name: "read completes into other data", do: readOf,
			plant: []func(*env, replica){write(raw), write(other), nil}},
		{name: "fill meets data below junk", do: fillOf,
			plant: []func(*env, replica){fill, nil, write(raw)}},
		{name: "append meets other data below its head", do: appendAt,
			plant: []func(*env, replica){nil, write(other), nil}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Units: 3, Replicas: 3}, nil)
			a, err := e.c.Tail(e.ctx)
			require.NoError(t, err)
			for i, r := range e.chain(a) {
				if tt.plant[i] != nil {
					tt.plant[i](e, r)
				}
			}
			err = tt.do(e, a)
			var uo *corfu.UnknownOutcomeError
			if errors.As(err, &uo) {
				// The append's head took the entry: its outcome is
				// unknown, and the divergence is why.
				err = uo.Cause
			}
			require.ErrorIs(t, err, corfu.ErrDiverged)
		})
	}
}

func write(b []byte) func(e *env, r replica) {
	return func(e *env, r replica) { require.NoError(e.t, r.unit.Write(e.ctx, 0, r.local, b)) }
}

func fill(e *env, r replica) { require.NoError(e.t, r.unit.Fill(e.ctx, 0, r.local)) }

func readOf(e *env, a storage.Address) error {
	e.token(1)
	_, err := e.c.Read(e.ctx, a)
	return err
}

func fillOf(e *env, a storage.Address) error {
	e.token(1)
	return e.c.Fill(e.ctx, a)
}

func appendAt(e *env, _ storage.Address) error {
	_, err := e.c.Append(e.ctx, []byte("mine"))
	return err
}
