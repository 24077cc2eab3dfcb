package corfu_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// logModel records what a test put in the log, to say what each stream
// holds.
type logModel struct {
	entries []modelEntry
}

type modelEntry struct {
	addr    storage.Address
	data    string
	streams []corfu.StreamID
}

// append appends data to streams through c and records it.
func (m *logModel) append(e *env, c *corfu.Client, data string, streams ...corfu.StreamID) storage.Address {
	e.t.Helper()
	a, err := c.Append(e.ctx, []byte(data), streams...)
	require.NoError(e.t, err)
	m.entries = append(m.entries, modelEntry{addr: a, data: data, streams: streams})
	return a
}

// stream returns the data of stream id's entries in [from, to), in order.
func (m *logModel) stream(id corfu.StreamID, from, to storage.Address) []string {
	var out []string
	for _, me := range m.entries {
		if me.addr >= from && me.addr < to && slices.Contains(me.streams, id) {
			out = append(out, me.data)
		}
	}
	return out
}

// syncData runs one Sync and checks that what it returns is in order and in
// the stream.
func syncData(t *testing.T, e *env, s *corfu.Stream) []string {
	t.Helper()
	es, err := s.Sync(e.ctx)
	require.NoError(t, err)
	var out []string
	for i, ent := range es {
		assert.True(t, ent.In(s.ID()), "entry %d is in stream %d", ent.Address, s.ID())
		if i > 0 {
			assert.Less(t, es[i-1].Address, ent.Address, "log order")
		}
		out = append(out, string(ent.Data))
	}
	return out
}

func TestStreamSync(t *testing.T) {
	for k := 1; k <= 4; k++ {
		t.Run(fmt.Sprintf("K=%d", k), func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Backpointers: k}, nil)
			var m logModel
			other := e.open(nil)
			streams := [][]corfu.StreamID{{1}, {2}, {1, 2}, nil, {3}, {1}, {2, 3}, {1}, {1}, {1, 2, 3}, nil, {2}, {1}}
			for i, ss := range streams {
				c := e.c
				if i%2 == 1 {
					c = other // interleaved writers
				}
				m.append(e, c, fmt.Sprintf("x%d", i), ss...)
			}
			tail, err := e.c.Tail(e.ctx)
			require.NoError(t, err)
			for _, id := range []corfu.StreamID{1, 2, 3, 4} {
				s := e.c.Stream(id, 0)
				assert.Equal(t, id, s.ID())
				assert.Equal(t, m.stream(id, 0, tail), syncData(t, e, s), "stream %d", id)
				assert.Equal(t, tail, s.Position())
			}

			// Repeated syncs return only what is new.
			s := e.c.Stream(1, 0)
			syncData(t, e, s)
			assert.Empty(t, syncData(t, e, s), "nothing new")
			before := s.Position()
			m.append(e, e.c, "new1", 1)
			m.append(e, e.c, "new2", 2)
			m.append(e, other, "new3", 1, 3)
			a, err := s.Append(e.ctx, []byte("new4"))
			require.NoError(t, err)
			m.entries = append(m.entries, modelEntry{addr: a, data: "new4", streams: []corfu.StreamID{1}})
			assert.Equal(t, []string{"new1", "new3", "new4"}, syncData(t, e, s))
			assert.Equal(t, before+4, s.Position())

			// A reader that starts part way sees only what follows.
			mid := storage.Address(5)
			tail, err = e.c.Tail(e.ctx)
			require.NoError(t, err)
			assert.Equal(t, m.stream(1, mid, tail), syncData(t, e, e.c.Stream(1, mid)))
		})
	}
}

func TestStreamJunkTokens(t *testing.T) {
	// The stream's newest tokens are junk: they carry no backpointers, so
	// the reader falls back to scanning the log below them.
	tests := []struct {
		name   string
		k      int
		before int // stream entries before the junk
		junk   int // junk tokens of the stream
		after  int // stream entries after the junk
	}{
		{name: "K junk after many", k: 2, before: 5, junk: 2},
		{name: "K junk after few", k: 3, before: 2, junk: 3},
		{name: "K junk after one", k: 2, before: 1, junk: 2},
		{name: "more than K junk", k: 2, before: 4, junk: 5},
		{name: "K junk in the middle", k: 2, before: 3, junk: 2, after: 1},
		{name: "K junk in the middle, more after", k: 4, before: 6, junk: 4, after: 3},
		{name: "K=1 junk", k: 1, before: 3, junk: 1},
		{name: "only junk", k: 2, junk: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Backpointers: tt.k}, nil)
			var m logModel
			m.append(e, e.c, "noise0")
			m.append(e, e.c, "noise1", 2)
			for i := range tt.before {
				m.append(e, e.c, fmt.Sprintf("b%d", i), 1)
				m.append(e, e.c, fmt.Sprintf("n%d", i), 2)
			}
			for range tt.junk {
				e.junk(e.token(1, 1)) // a stream token whose writer lost it to a filler
				m.append(e, e.c, "between", 2)
			}
			for i := range tt.after {
				m.append(e, e.c, fmt.Sprintf("a%d", i), 1)
			}
			tail, err := e.c.Tail(e.ctx)
			require.NoError(t, err)
			s := e.c.Stream(1, 0)
			assert.Equal(t, m.stream(1, 0, tail), syncData(t, e, s))
			assert.Equal(t, m.stream(2, 0, tail), syncData(t, e, e.c.Stream(2, 0)))

			// And incrementally, from a position in the middle.
			m.append(e, e.c, "last", 1)
			assert.Equal(t, []string{"last"}, syncData(t, e, s))
		})
	}
}

func TestStreamHoleToken(t *testing.T) {
	// A stream token whose writer crashed: the reader fills it and skips it.
	e := newEnv(t, corfutest.Options{Backpointers: 2}, nil)
	var m logModel
	m.append(e, e.c, "s0", 1)
	e.token(1, 1)
	m.append(e, e.c, "s1", 1)
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, m.stream(1, 0, tail), syncData(t, e, e.c.Stream(1, 0)))
	assert.Equal(t, junk2, e.state(1))
}

func TestStreamReadsFewEntries(t *testing.T) {
	// Backpointers let a reader skip the rest of the log.
	e := newEnv(t, corfutest.Options{Backpointers: 2}, nil)
	for i := range 40 {
		_, err := e.c.Append(e.ctx, fmt.Appendf(nil, "busy%d", i), 2)
		require.NoError(t, err)
		if i%10 == 0 {
			_, err := e.c.Append(e.ctx, fmt.Appendf(nil, "rare%d", i), 1)
			require.NoError(t, err)
		}
	}
	reads := e.net.count(transport.OpRead)
	es, err := e.c.Stream(1, 0).Sync(e.ctx)
	require.NoError(t, err)
	require.Len(t, es, 4)
	assert.LessOrEqual(t, e.net.count(transport.OpRead)-reads, 4, "one read per entry of the stream")
}

func TestStreamRandomized(t *testing.T) {
	// Random logs of appends, junk stream tokens and holes, synced at random
	// moments; every sync must return exactly the stream's new entries.
	for seed := uint64(1); seed <= 24; seed++ {
		t.Run(fmt.Sprintf("seed=%d", seed), func(t *testing.T) {
			r := rand.New(rand.NewPCG(seed, 42))
			k := 1 + r.IntN(4)
			e := newEnv(t, corfutest.Options{Backpointers: k}, nil)
			var m logModel
			const nStreams = 3
			readers := make([]*corfu.Stream, nStreams)
			synced := make([]storage.Address, nStreams)
			for i := range readers {
				readers[i] = e.c.Stream(corfu.StreamID(i+1), 0)
			}
			holes := 0
			for i := range 60 {
				var ss []corfu.StreamID
				for id := range nStreams {
					if r.IntN(3) == 0 {
						ss = append(ss, corfu.StreamID(id+1))
					}
				}
				switch x := r.IntN(10); {
				case x < 6:
					m.append(e, e.c, fmt.Sprintf("v%d", i), ss...)
				case x < 9:
					e.junk(e.token(1, ss...))
				case holes < 2:
					holes++
					e.token(1, ss...) // filled by a reader after a wait
				}
				if r.IntN(6) == 0 {
					id := r.IntN(nStreams)
					tail, err := e.c.Tail(e.ctx)
					require.NoError(t, err)
					assert.Equal(t, m.stream(corfu.StreamID(id+1), synced[id], tail), syncData(t, e, readers[id]), "K=%d stream %d from %d", k, id+1, synced[id])
					synced[id] = tail
				}
			}
			tail, err := e.c.Tail(e.ctx)
			require.NoError(t, err)
			for id := range nStreams {
				assert.Equal(t, m.stream(corfu.StreamID(id+1), synced[id], tail), syncData(t, e, readers[id]), "K=%d stream %d from %d", k, id+1, synced[id])
				assert.Equal(t, m.stream(corfu.StreamID(id+1), 0, tail), syncData(t, e, e.c.Stream(corfu.StreamID(id+1), 0)), "K=%d stream %d from 0", k, id+1)
			}
		})
	}
}

// BenchmarkStreamSync measures a Sync over a long stream: the backpointer
// walk must stay linear in the entries it finds.
func BenchmarkStreamSync(b *testing.B) {
	for _, n := range []int{1000, 10000} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			cl, err := corfutest.New(corfutest.Options{})
			require.NoError(b, err)
			ctx := b.Context()
			c, err := corfu.Open(ctx, testConfig(cl.Config()))
			require.NoError(b, err)
			for range n {
				_, err := c.Append(ctx, []byte("x"), 1)
				require.NoError(b, err)
			}
			for b.Loop() {
				es, err := c.Stream(1, 0).Sync(ctx)
				require.NoError(b, err)
				require.Len(b, es, n)
			}
		})
	}
}

// TestStreamWaitsAtTheUnit: a caught-up stream reader's Wait waits at the
// unit, and the next append anywhere in the log ends it: one read that
// waits per Wait, though FollowPoll is an hour, and each Wait ends well
// before FollowWait (the longest there is) would end it, under a ctx that
// expires first. An append to another stream ends the Wait too; Sync then
// returns nothing, and the next Wait is at the next address.
func TestStreamWaitsAtTheUnit(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) {
		c.FollowPoll, c.FollowWait = time.Hour, transport.MaxReadWait
	})
	writer := e.open(func(c *corfu.Config) { c.Transport = e.cl.Net }) // NB: not counted
	_, err := writer.Append(e.ctx, []byte("s0"), 7)
	require.NoError(t, err)
	s := e.c.Stream(7, 0)
	require.Equal(t, []string{"s0"}, syncData(t, e, s))

	appends := []struct {
		data   string
		stream corfu.StreamID
	}{{"s1", 7}, {"other", 8}, {"s2", 7}}
	var got []string
	for i, a := range appends {
		waits := e.net.count(transport.OpReadWait)
		go func() {
			// NB: the append may still land before the read arrives:
			// then the read finds the entry at once.
			assert.Eventually(t, func() bool { return e.net.count(transport.OpReadWait) > waits }, testTimeout, 100*time.Microsecond)
			_, err := writer.Append(e.ctx, []byte(a.data), a.stream)
			assert.NoError(t, err)
		}()
		ctx, cancel := context.WithTimeout(e.ctx, transport.MaxReadWait/2)
		require.NoError(t, s.Wait(ctx), "append %d ends the wait", i)
		cancel()
		assert.Equal(t, waits+1, e.net.count(transport.OpReadWait), "one read that waits")
		got = append(got, syncData(t, e, s)...)
	}
	assert.Equal(t, []string{"s1", "s2"}, got)
	assert.Equal(t, storage.Address(4), s.Position())
}

// TestStreamWaitPollsWhereUnitsCannotPark: against units that cannot park
// a read, Wait learns so from its first read that waits and from then on
// returns after FollowPoll, asking the units nothing.
func TestStreamWaitPollsWhereUnitsCannotPark(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.FollowPoll = time.Millisecond })
	ids, hs := e.cl.Handlers()
	for i, id := range ids {
		e.cl.Net.Register(id, hs[i]) // NB: no transport.ReadWaits in front
	}
	s := e.c.Stream(7, 0)
	for range 3 {
		require.NoError(t, s.Wait(e.ctx))
	}
	assert.Equal(t, 1, e.net.count(transport.OpReadWait), "asked once")

	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	require.ErrorIs(t, s.Wait(ctx), context.Canceled)
}
