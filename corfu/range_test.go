package corfu_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// appendN appends "e0", "e1", ... and returns their addresses.
func (e *env) appendN(n int, streams ...corfu.StreamID) []storage.Address {
	e.t.Helper()
	var out []storage.Address
	for i := range n {
		a, err := e.c.Append(e.ctx, fmt.Appendf(nil, "e%d", i), streams...)
		require.NoError(e.t, err)
		out = append(out, a)
	}
	return out
}

func TestTrim(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	e.appendN(5)
	require.NoError(t, e.c.Trim(e.ctx, 2))
	require.NoError(t, e.c.Trim(e.ctx, 2), "trimming again succeeds")
	for a := range storage.Address(5) {
		_, err := e.c.Read(e.ctx, a)
		if a == 2 {
			assert.ErrorIs(t, err, corfu.ErrTrimmed)
			assert.Equal(t, []storage.State{storage.StateTrimmed, storage.StateTrimmed}, e.state(a))
		} else {
			assert.NoError(t, err, "address %d", a)
		}
	}
	err := e.c.Fill(e.ctx, 2)
	assert.ErrorIs(t, err, corfu.ErrTrimmed)

	// A hole can be trimmed too; a reader then does not wait for it.
	hole := e.token(1)
	require.NoError(t, e.c.Trim(e.ctx, hole))
	fills := e.net.count(transport.OpFill)
	_, err = e.c.Read(e.ctx, hole)
	assert.ErrorIs(t, err, corfu.ErrTrimmed)
	assert.Equal(t, fills, e.net.count(transport.OpFill))
}

func TestPrefixTrim(t *testing.T) {
	tests := []struct {
		name  string
		at    storage.Address
		marks []storage.Address // per unit, for 3 chains of 2
	}{
		{name: "nothing", at: 0, marks: []storage.Address{0, 0, 0, 0, 0, 0}},
		{name: "one", at: 1, marks: []storage.Address{1, 1, 0, 0, 0, 0}},
		{name: "one stripe round", at: 3, marks: []storage.Address{1, 1, 1, 1, 1, 1}},
		{name: "uneven", at: 4, marks: []storage.Address{2, 2, 1, 1, 1, 1}},
		{name: "everything", at: 7, marks: []storage.Address{3, 3, 2, 2, 2, 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, corfutest.Options{}, nil)
			e.appendN(7)
			require.NoError(t, e.c.PrefixTrim(e.ctx, tt.at))
			for i, u := range e.cl.Units {
				assert.Equal(t, tt.marks[i], u.TrimMark(), "unit %d", i)
			}
			for a := range storage.Address(7) {
				got, err := e.c.Read(e.ctx, a)
				if a < tt.at {
					assert.ErrorIs(t, err, corfu.ErrTrimmed, "address %d", a)
				} else {
					require.NoError(t, err, "address %d", a)
					assert.Equal(t, fmt.Sprintf("e%d", a), string(got.Data))
				}
			}
			// A lower prefix trim changes nothing.
			require.NoError(t, e.c.PrefixTrim(e.ctx, tt.at/2))
			for i, u := range e.cl.Units {
				assert.Equal(t, tt.marks[i], u.TrimMark(), "unit %d", i)
			}
			// The log goes on.
			a, err := e.c.Append(e.ctx, []byte("after"))
			require.NoError(t, err)
			assert.Equal(t, storage.Address(7), a)
		})
	}
}

// collect runs seq to its end and returns the addresses and data it yielded
// and its error, if any.
func collect(seq func(func(corfu.Entry, error) bool)) (addrs []storage.Address, data []string, err error) {
	for e, err := range seq {
		if err != nil {
			return addrs, data, fmt.Errorf("at %d: %w", e.Address, err)
		}
		addrs = append(addrs, e.Address)
		data = append(data, string(e.Data))
	}
	return addrs, data, nil
}

func TestRange(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	_, err := e.c.Append(e.ctx, []byte("a")) // 0
	require.NoError(t, err)
	e.junk(e.token(1))                      // 1: junk
	_, err = e.c.Append(e.ctx, []byte("b")) // 2
	require.NoError(t, err)
	e.token(1)                              // 3: a hole, filled by the range's read
	_, err = e.c.Append(e.ctx, []byte("c")) // 4
	require.NoError(t, err)

	tests := []struct {
		name     string
		from, to storage.Address
		addrs    []storage.Address
		data     []string
		err      error
	}{
		{name: "all", from: 0, to: 5, addrs: []storage.Address{0, 2, 4}, data: []string{"a", "b", "c"}},
		{name: "middle", from: 1, to: 3, addrs: []storage.Address{2}, data: []string{"b"}},
		{name: "only junk", from: 1, to: 2},
		{name: "empty", from: 3, to: 3},
		{name: "backwards", from: 4, to: 1},
		{name: "past the tail", from: 4, to: 9, addrs: []storage.Address{4}, data: []string{"c"}, err: corfu.ErrUnwritten},
		{name: "invalid", from: storage.MaxAddress, to: storage.MaxAddress + 1, err: corfu.ErrInvalidAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addrs, data, err := collect(e.c.Range(e.ctx, tt.from, tt.to))
			if tt.err != nil {
				require.ErrorIs(t, err, tt.err)
			} else {
				require.NoError(t, err)
			}
			assert.Equal(t, tt.addrs, addrs)
			assert.Equal(t, tt.data, data)
		})
	}

	t.Run("early break", func(t *testing.T) {
		reads := func() int { return e.net.count(transport.OpRead) + e.net.count(transport.OpReadBatch) }
		n, before := 0, 0
		for got, err := range e.c.Range(e.ctx, 0, 5) {
			require.NoError(t, err)
			assert.Equal(t, "a", string(got.Data))
			n++
			before = reads()
			break
		}
		assert.Equal(t, 1, n)
		assert.Equal(t, before, reads(), "no read after the break")
	})

	t.Run("after prefix trim", func(t *testing.T) {
		require.NoError(t, e.c.PrefixTrim(e.ctx, 2))
		addrs, _, err := collect(e.c.Range(e.ctx, 0, 5))
		require.ErrorIs(t, err, corfu.ErrTrimmed)
		assert.Empty(t, addrs)
		assert.Contains(t, err.Error(), "at 0:")
		addrs, _, err = collect(e.c.Range(e.ctx, 2, 5))
		require.NoError(t, err)
		assert.Equal(t, []storage.Address{2, 4}, addrs)
	})

	t.Run("cancelled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(e.ctx)
		cancel()
		_, _, err := collect(e.c.Range(ctx, 0, 5))
		require.ErrorIs(t, err, context.Canceled)
	})
}

func TestFollow(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	e.appendN(2)
	e.junk(e.token(1)) // 2: junk, skipped
	writer := e.open(nil)

	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	var got []string
	var addrs []storage.Address
	var last error
	for ent, err := range e.c.Follow(ctx, 1) {
		if err != nil {
			last = err
			continue // the iterator ends after an error
		}
		got = append(got, string(ent.Data))
		addrs = append(addrs, ent.Address)
		switch len(got) {
		case 1, 2, 3:
			// Appended after Follow started, and after it caught up.
			_, err := writer.Append(e.ctx, fmt.Appendf(nil, "late%d", len(got)))
			require.NoError(t, err)
		case 4:
			cancel()
		default:
			t.Fatalf("entry after cancel: %v", ent)
		}
	}
	require.ErrorIs(t, last, context.Canceled)
	assert.Equal(t, []string{"e1", "late1", "late2", "late3"}, got)
	assert.Equal(t, []storage.Address{1, 3, 4, 5}, addrs)

	t.Run("early break", func(t *testing.T) {
		n := 0
		for _, err := range e.c.Follow(e.ctx, 0) {
			require.NoError(t, err)
			n++
			if n == 2 {
				break
			}
		}
		assert.Equal(t, 2, n)
	})

	t.Run("deadline while waiting", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(e.ctx, 20*rpcTimeout)
		defer cancel()
		var n int
		var last error
		for _, err := range e.c.Follow(ctx, 0) {
			if err != nil {
				last = err
				continue
			}
			n++
		}
		assert.Equal(t, 5, n)
		require.ErrorIs(t, last, context.DeadlineExceeded)
	})
}

// followLate follows e's log from 0 and, each time the follower has sent
// its n-th read that waits (or, where the units cannot park reads, its
// n-th read), appends "late<n>" with writer, a client whose calls e does
// not count; it returns what Follow yielded, four entries.
func followLate(t *testing.T, e *env, writer *corfu.Client, asked func() int) []string {
	t.Helper()
	var got []string
	for ent, err := range e.c.Follow(e.ctx, 0) {
		require.NoError(t, err)
		got = append(got, string(ent.Data))
		if len(got) == 4 {
			break
		}
		n := len(got)
		go func() {
			// NB: the append may still land before the read arrives:
			// then it reads the entry at once.
			assert.Eventually(t, func() bool { return asked() >= n }, testTimeout, 100*time.Microsecond)
			_, err := writer.Append(e.ctx, fmt.Appendf(nil, "late%d", n))
			assert.NoError(t, err)
		}()
	}
	return got
}

// TestFollowWaitsAtTheUnit: once caught up, Follow waits at the unit for
// the next entry, and the entry's write answers it: each entry after the
// catch-up takes one read that waits and no new tail, though FollowPoll is
// an hour and FollowWait the longest there is.
func TestFollowWaitsAtTheUnit(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) {
		c.FollowPoll, c.FollowWait = time.Hour, transport.MaxReadWait
	})
	e.appendN(1)
	writer := e.open(func(c *corfu.Config) { c.Transport = e.cl.Net }) // NB: not counted
	tokens := e.net.count(transport.OpToken)
	got := followLate(t, e, writer, func() int { return e.net.count(transport.OpReadWait) })
	assert.Equal(t, []string{"e0", "late1", "late2", "late3"}, got)
	assert.Equal(t, 3, e.net.count(transport.OpReadWait), "one read that waits per entry")
	assert.Equal(t, tokens+1, e.net.count(transport.OpToken), "one tail, to catch up")
}

// TestFollowPollsWhereUnitsCannotPark: against units that cannot park a
// read (bare transport.Servers), Follow learns so from its first read that
// waits and asks for the tail every FollowPoll from then on.
func TestFollowPollsWhereUnitsCannotPark(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, func(c *corfu.Config) { c.FollowPoll = time.Millisecond })
	ids, hs := e.cl.Handlers()
	for i, id := range ids {
		e.cl.Net.Register(id, hs[i]) // NB: no transport.ReadWaits in front
	}
	e.appendN(1)
	writer := e.open(func(c *corfu.Config) { c.Transport = e.cl.Net })
	tokens := e.net.count(transport.OpToken)
	got := followLate(t, e, writer, func() int { return e.net.count(transport.OpToken) - tokens })
	assert.Equal(t, []string{"e0", "late1", "late2", "late3"}, got)
	assert.Equal(t, 1, e.net.count(transport.OpReadWait), "asked once")
	assert.Greater(t, e.net.count(transport.OpToken), tokens+3, "then polled the tail")
}

// Range reads ahead with one request per chain tail per RangeBatch
// addresses, and reads a junk address on its own.
func TestRangeReadsAhead(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 4, Replicas: 2}, nil)
	const n = 130
	for i := range n {
		if i == 70 {
			e.junk(e.token(1))
			continue
		}
		_, err := e.c.Append(e.ctx, []byte{byte(i)})
		require.NoError(t, err)
	}
	reads, batches := e.net.count(transport.OpRead), e.net.count(transport.OpReadBatch)
	var got []byte
	for en, err := range e.c.Range(e.ctx, 0, n) {
		require.NoError(t, err)
		got = append(got, en.Data...)
	}
	require.Len(t, got, n-1)
	for i, b := range got {
		want := i
		if i >= 70 {
			want++
		}
		require.Equal(t, byte(want), b)
	}
	// 3 windows (64, 64, 2 addresses), 2 chain tails each.
	assert.Equal(t, batches+6, e.net.count(transport.OpReadBatch))
	assert.Equal(t, reads+1, e.net.count(transport.OpRead), "the junk address, read on its own")
}
