package corfu_test

import (
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// walk collects what a Range or Follow yields: entries' addresses, and
// each trimmed run as its [From, To).
func walk(seq func(func(corfu.Entry, error) bool), stopAt storage.Address) (addrs []storage.Address, runs [][2]storage.Address, err error) {
	for e, err := range seq {
		var tr *corfu.TrimmedError
		switch {
		case errors.As(err, &tr):
			runs = append(runs, [2]storage.Address{tr.From, tr.To})
			if e.Address != tr.From {
				return addrs, runs, errors.New("the run's entry is not at its start")
			}
		case err != nil:
			return addrs, runs, err
		default:
			addrs = append(addrs, e.Address)
		}
		if e.Address+1 >= stopAt {
			break
		}
	}
	return addrs, runs, nil
}

func TestRangeStepsOverTrims(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	e.appendN(8)
	require.NoError(t, e.c.Trim(e.ctx, 3))
	require.NoError(t, e.c.Trim(e.ctx, 4))
	addrs, runs, err := walk(e.c.Range(e.ctx, 0, 8), 8)
	require.NoError(t, err)
	assert.Equal(t, []storage.Address{0, 1, 2, 5, 6, 7}, addrs)
	assert.Equal(t, [][2]storage.Address{{3, 5}}, runs, "one run for two adjacent trims")

	// A fresh client knows no mark: it reads address 0, finds it trimmed,
	// asks for the mark once and jumps to it.
	require.NoError(t, e.c.PrefixTrim(e.ctx, 6))
	require.NoError(t, e.c.RecordTrim(e.ctx, 6))
	fresh := e.open(nil)
	reads := e.net.count(transport.OpRead)
	addrs, runs, err = walk(fresh.Range(e.ctx, 0, 8), 8)
	require.NoError(t, err)
	assert.Equal(t, []storage.Address{6, 7}, addrs)
	assert.Equal(t, [][2]storage.Address{{0, 6}}, runs)
	assert.Less(t, e.net.count(transport.OpRead)-reads, 8, "the trimmed prefix is not read address by address")

	// Follow steps over the same way.
	addrs, runs, err = walk(fresh.Follow(e.ctx, 0), 8)
	require.NoError(t, err)
	assert.Equal(t, []storage.Address{6, 7}, addrs)
	assert.Equal(t, [][2]storage.Address{{0, 6}}, runs)
}

func TestTrimMark(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	other := e.open(nil)
	mark := func(c *corfu.Client) storage.Address {
		t.Helper()
		m, err := c.TrimMark(e.ctx)
		require.NoError(t, err)
		return m
	}
	assert.Zero(t, mark(e.c))
	e.appendN(10)
	require.NoError(t, e.c.PrefixTrim(e.ctx, 4))
	assert.Equal(t, storage.Address(4), mark(e.c), "the trimming client knows its trim")
	assert.Zero(t, mark(other), "an unrecorded trim is its client's only")
	require.NoError(t, e.c.RecordTrim(e.ctx, 4))
	assert.Equal(t, storage.Address(4), mark(other))
	assert.Equal(t, storage.Address(4), mark(e.open(nil)), "a new client reads it from the log")

	// A later trim takes the record itself: a client that never saw the
	// record reads nothing, and the mark does not overstate the trim.
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	require.NoError(t, e.c.PrefixTrim(e.ctx, tail))
	third := e.open(nil)
	assert.Zero(t, mark(third))
	require.NoError(t, e.c.RecordTrim(e.ctx, tail))
	assert.Equal(t, tail, mark(third))
	assert.Equal(t, tail, mark(other))
}

// TestStreamStepsOverTrims: a stream reader steps over trimmed entries and
// says up to where; its position moves on, so the next Sync does not meet
// them again.
func TestStreamStepsOverTrims(t *testing.T) {
	e := newEnv(t, corfutest.Options{Backpointers: 2}, func(c *corfu.Config) { c.Backpointers = 2 })
	const s corfu.StreamID = 5
	addrs := e.appendN(6, s)
	e.appendN(2) // not on the stream
	require.NoError(t, e.c.Trim(e.ctx, addrs[2]))
	st := e.c.Stream(s, 0)
	got, err := st.Sync(e.ctx)
	require.NoError(t, err)
	var at []storage.Address
	for _, g := range got {
		at = append(at, g.Address)
	}
	assert.Equal(t, []storage.Address{addrs[0], addrs[1], addrs[3], addrs[4], addrs[5]}, at)
	assert.Equal(t, addrs[2]+1, st.TrimmedBelow())
	more := e.appendN(1, s)
	got, err = st.Sync(e.ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, more[0], got[0].Address)
	assert.Zero(t, st.TrimmedBelow())

	// A reader from the start of a prefix-trimmed log, on a client that
	// knows the mark, returns the suffix and reads nothing below the mark.
	require.NoError(t, e.c.PrefixTrim(e.ctx, addrs[4]))
	reads := e.net.count(transport.OpRead)
	got, err = e.c.Stream(s, 0).Sync(e.ctx)
	require.NoError(t, err)
	require.Len(t, got, 3) // addrs[4], addrs[5], more[0]
	assert.Equal(t, addrs[4], got[0].Address)
	assert.LessOrEqual(t, e.net.count(transport.OpRead)-reads, 4)
	st = e.c.Stream(s, 0)
	_, err = st.Sync(e.ctx)
	require.NoError(t, err)
	assert.Equal(t, addrs[4], st.TrimmedBelow(), "the entries below the mark may have been the stream's")

	// On a client that does not know the mark, the walk meets a trimmed
	// entry, asks for the mark, and stops there.
	require.NoError(t, e.c.RecordTrim(e.ctx, addrs[4]))
	fresh := e.open(nil)
	st = fresh.Stream(s, 0)
	got, err = st.Sync(e.ctx)
	require.NoError(t, err)
	require.Len(t, got, 3)
	assert.Equal(t, addrs[4], st.TrimmedBelow())
}

// TestStreamBehindRecordedTrim: a reader whose position lies below a trim
// says so even when nothing left in the log points at what the trim took:
// the sequencer lost its state, the recovery rebuilt the stream tails from
// the untrimmed log, and the entries appended since have no backpointers
// into the trimmed part. The reader learns the recorded mark with the tail.
func TestStreamBehindRecordedTrim(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	const s corfu.StreamID = 4
	e.appendN(2, s)
	reader := e.open(nil)
	st := reader.Stream(s, 0)
	_, err := st.Sync(e.ctx)
	require.NoError(t, err)
	gone := e.appendN(3, s)
	tail, err := e.c.Tail(e.ctx)
	require.NoError(t, err)
	require.NoError(t, e.c.PrefixTrim(e.ctx, tail))
	require.NoError(t, e.c.RecordTrim(e.ctx, tail))
	lostSequencer(e.cl, false)
	_, err = e.c.Reconfigure(e.ctx, nil)
	require.NoError(t, err)
	kept := e.appendN(1, s)

	got, err := st.Sync(e.ctx)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.Equal(t, kept[0], got[0].Address)
	assert.Equal(t, tail, st.TrimmedBelow(), "the entries at %v are gone, and the reader says so", gone)
}

// TestSyncStreams: readers of several streams sync up to one tail with one
// tail query, an entry of several of their streams is read once, and a
// stream named twice is refused.
func TestSyncStreams(t *testing.T) {
	e := newEnv(t, corfutest.Options{}, nil)
	both := e.appendN(2, 1, 2)
	one := e.appendN(1, 1)
	two := e.appendN(1, 2)
	e.appendN(1, 3)
	r1, r2 := e.c.Stream(1, 0), e.c.Stream(2, 0)
	tokens, reads := e.net.count(transport.OpToken), e.net.count(transport.OpRead)
	got, err := e.c.SyncStreams(e.ctx, []*corfu.Stream{r1, r2})
	require.NoError(t, err)
	addrs := func(es []corfu.Entry) (out []storage.Address) {
		for _, x := range es {
			out = append(out, x.Address)
		}
		return out
	}
	assert.Equal(t, append(both[:2:2], one...), addrs(got[0]))
	assert.Equal(t, append(both[:2:2], two...), addrs(got[1]))
	assert.Equal(t, 1, e.net.count(transport.OpToken)-tokens, "one tail query")
	assert.Equal(t, 4, e.net.count(transport.OpRead)-reads, "each entry read once")
	assert.Equal(t, r1.Position(), r2.Position(), "one tail")
	_, err = e.c.SyncStreams(e.ctx, []*corfu.Stream{r1, e.c.Stream(1, 0)})
	assert.ErrorIs(t, err, corfu.ErrInvalidStreams)
}
