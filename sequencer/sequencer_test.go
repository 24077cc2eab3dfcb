package sequencer_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// ready returns a sequencer bootstrapped at epoch with the given tail.
func ready(t testing.TB, cfg sequencer.Config, epoch storage.Epoch, tail storage.Address) *sequencer.Sequencer {
	t.Helper()
	s := sequencer.New(cfg)
	require.NoError(t, s.Bootstrap(epoch, tail, nil))
	return s
}

// addrs is shorthand for a slice of addresses.
func addrs(a ...storage.Address) []storage.Address { return a }

func TestNew(t *testing.T) {
	s := sequencer.New(sequencer.Config{})
	assert.Equal(t, storage.Epoch(0), s.Epoch())
	assert.False(t, s.Ready())
	assert.Equal(t, storage.Address(0), s.Tail())
	assert.Empty(t, s.StreamTails())
}

func TestNewPanicsOnBadConfig(t *testing.T) {
	tests := []struct {
		name string
		k    int
	}{
		{name: "negative", k: -1},
		{name: "above max", k: sequencer.MaxBackpointers + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Panics(t, func() { sequencer.New(sequencer.Config{Backpointers: tt.k}) })
		})
	}
}

func TestNextErrors(t *testing.T) {
	tooMany := make([]sequencer.StreamID, sequencer.MaxStreams+1)
	for i := range tooMany {
		tooMany[i] = sequencer.StreamID(i)
	}
	tests := []struct {
		name      string
		seqEpoch  storage.Epoch
		boot      bool // bootstrap at seqEpoch; otherwise only seal there
		tail      storage.Address
		epoch     storage.Epoch
		n         int
		streams   []sequencer.StreamID
		want      error
		wantEpoch storage.Epoch // for *storage.SealedError
	}{
		{name: "never bootstrapped", epoch: 0, n: 1, want: sequencer.ErrNotReady},
		{name: "never bootstrapped query", epoch: 0, n: 0, want: sequencer.ErrNotReady},
		{name: "sealed not bootstrapped", seqEpoch: 3, epoch: 3, n: 1, want: sequencer.ErrNotReady},
		{name: "future epoch", seqEpoch: 3, boot: true, epoch: 4, n: 1, want: sequencer.ErrNotReady},
		{name: "stale epoch", seqEpoch: 3, boot: true, epoch: 2, n: 1, want: storage.ErrSealed, wantEpoch: 3},
		{name: "stale epoch not bootstrapped", seqEpoch: 3, epoch: 1, n: 1, want: storage.ErrSealed, wantEpoch: 3},
		{name: "negative batch", boot: true, n: -1, want: sequencer.ErrInvalid},
		{name: "batch above max", boot: true, n: sequencer.MaxBatch + 1, want: sequencer.ErrInvalid},
		{name: "too many streams", boot: true, n: 1, streams: tooMany, want: sequencer.ErrInvalid},
		{name: "duplicate stream", boot: true, n: 1, streams: []sequencer.StreamID{1, 2, 1}, want: sequencer.ErrInvalid},
		{name: "duplicate stream in query", boot: true, n: 0, streams: []sequencer.StreamID{5, 5}, want: sequencer.ErrInvalid},
		{name: "batch reaches max address", boot: true, tail: storage.MaxAddress - 2, n: 3, want: sequencer.ErrInvalid},
		{name: "max batch", boot: true, n: sequencer.MaxBatch},
		{name: "max streams", boot: true, n: 1, streams: tooMany[:sequencer.MaxStreams]},
		{name: "batch up to max address", boot: true, tail: storage.MaxAddress - 2, n: 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := sequencer.New(sequencer.Config{})
			if tt.boot {
				require.NoError(t, s.Bootstrap(tt.seqEpoch, tt.tail, nil))
			} else {
				_, err := s.Seal(tt.seqEpoch)
				require.NoError(t, err)
			}
			before := s.Tail()
			tok, err := s.Next(tt.epoch, tt.n, tt.streams)
			if tt.want == nil {
				require.NoError(t, err)
				assert.Equal(t, before, tok.Start)
				assert.Equal(t, before+storage.Address(tt.n), s.Tail())
				return
			}
			require.ErrorIs(t, err, tt.want)
			assert.Equal(t, sequencer.Token{}, tok)
			assert.Equal(t, before, s.Tail(), "a failed Next must not move the tail")
			assert.Empty(t, s.StreamTails(), "a failed Next must not record streams")
			if tt.wantEpoch != 0 {
				var se *storage.SealedError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, tt.wantEpoch, se.Epoch)
			}
		})
	}
}

func TestNextBatches(t *testing.T) {
	tests := []struct {
		name      string
		tail      storage.Address
		batches   []int
		wantStart []storage.Address
		wantTail  storage.Address
	}{
		{name: "single tokens", batches: []int{1, 1, 1}, wantStart: addrs(0, 1, 2), wantTail: 3},
		{name: "mixed batches", batches: []int{3, 1, 5, 2}, wantStart: addrs(0, 3, 4, 9), wantTail: 11},
		{name: "queries in between", batches: []int{2, 0, 0, 4, 0}, wantStart: addrs(0, 2, 2, 2, 6), wantTail: 6},
		{name: "bootstrapped tail", tail: 100, batches: []int{10, 1}, wantStart: addrs(100, 110), wantTail: 111},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ready(t, sequencer.Config{}, 0, tt.tail)
			var starts []storage.Address
			for _, n := range tt.batches {
				tok, err := s.Next(0, n, nil)
				require.NoError(t, err)
				assert.Nil(t, tok.Backpointers)
				starts = append(starts, tok.Start)
			}
			assert.Equal(t, tt.wantStart, starts)
			assert.Equal(t, tt.wantTail, s.Tail())
		})
	}
}

func TestBackpointers(t *testing.T) {
	type call struct {
		n       int
		streams []sequencer.StreamID
		want    []sequencer.StreamTail
	}
	tests := []struct {
		name  string
		k     int
		calls []call
	}{
		{
			name: "first entry has no backpointers",
			calls: []call{
				{n: 1, streams: []sequencer.StreamID{7}, want: []sequencer.StreamTail{{Stream: 7}}},
				{n: 0, streams: []sequencer.StreamID{7}, want: []sequencer.StreamTail{{Stream: 7, Addrs: addrs(0)}}},
			},
		},
		{
			name: "newest first and capped at k",
			k:    2,
			calls: []call{
				{n: 1, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1}}},
				{n: 1, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(0)}}},
				{n: 1, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(1, 0)}}},
				{n: 1, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(2, 1)}}},
			},
		},
		{
			name: "batch records every address",
			k:    4,
			calls: []call{
				{n: 2, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1}}},
				{n: 3, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(1, 0)}}},
				{n: 0, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(4, 3, 2, 1)}}},
			},
		},
		{
			name: "batch larger than k",
			k:    2,
			calls: []call{
				{n: 10, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1}}},
				{n: 1, streams: []sequencer.StreamID{1}, want: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(9, 8)}}},
			},
		},
		{
			name: "request order and multi-stream entries",
			calls: []call{
				{n: 1, streams: []sequencer.StreamID{1, 2}, want: []sequencer.StreamTail{{Stream: 1}, {Stream: 2}}},
				{n: 1, streams: []sequencer.StreamID{2}, want: []sequencer.StreamTail{{Stream: 2, Addrs: addrs(0)}}},
				{n: 1, streams: nil},
				{n: 1, streams: []sequencer.StreamID{3, 1}, want: []sequencer.StreamTail{{Stream: 3}, {Stream: 1, Addrs: addrs(0)}}},
				{n: 0, streams: []sequencer.StreamID{2, 1, 3}, want: []sequencer.StreamTail{
					{Stream: 2, Addrs: addrs(1, 0)}, {Stream: 1, Addrs: addrs(3, 0)}, {Stream: 3, Addrs: addrs(3)},
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ready(t, sequencer.Config{Backpointers: tt.k}, 0, 0)
			for i, c := range tt.calls {
				tok, err := s.Next(0, c.n, c.streams)
				require.NoError(t, err)
				assert.Equal(t, c.want, tok.Backpointers, "call %d", i)
			}
		})
	}
}

// TestBackpointersInterleaved appends to many interleaved streams and checks
// every token against a model that keeps each stream's full history.
func TestBackpointersInterleaved(t *testing.T) {
	for _, k := range []int{1, 3, sequencer.DefaultBackpointers, 16} {
		t.Run(fmt.Sprintf("k=%d", k), func(t *testing.T) {
			s := ready(t, sequencer.Config{Backpointers: k}, 0, 0)
			history := map[sequencer.StreamID][]storage.Address{} // oldest first
			lastK := func(id sequencer.StreamID) []storage.Address {
				h := history[id]
				var out []storage.Address
				for i := len(h) - 1; i >= 0 && len(out) < k; i-- {
					out = append(out, h[i])
				}
				return out
			}
			for i := range 2000 {
				// A deterministic pattern: between zero and three streams of
				// eight, batches of one to four.
				var streams []sequencer.StreamID
				for j := range i % 4 {
					streams = append(streams, sequencer.StreamID((i*7+j*3)%8))
				}
				streams = slices.Compact(streams)
				if len(streams) > 1 && slices.Contains(streams[1:], streams[0]) {
					streams = streams[1:]
				}
				n := i%4 + 1
				tok, err := s.Next(0, n, streams)
				require.NoError(t, err)
				for j, id := range streams {
					require.Equal(t, id, tok.Backpointers[j].Stream)
					require.Equal(t, lastK(id), tok.Backpointers[j].Addrs, "call %d stream %d", i, id)
				}
				for _, id := range streams {
					for a := tok.Start; a < tok.Start+storage.Address(n); a++ {
						history[id] = append(history[id], a)
					}
				}
			}
			var want []sequencer.StreamTail
			for id := range sequencer.StreamID(8) {
				if len(history[id]) > 0 {
					want = append(want, sequencer.StreamTail{Stream: id, Addrs: lastK(id)})
				}
			}
			assert.Equal(t, want, s.StreamTails())
		})
	}
}

func TestBackpointersAreCopies(t *testing.T) {
	s := ready(t, sequencer.Config{}, 0, 0)
	_, err := s.Next(0, 2, []sequencer.StreamID{1})
	require.NoError(t, err)
	tok, err := s.Next(0, 0, []sequencer.StreamID{1})
	require.NoError(t, err)
	tok.Backpointers[0].Addrs[0] = 99
	tails := s.StreamTails()
	tails[0].Addrs[1] = 98
	tok, err = s.Next(0, 0, []sequencer.StreamID{1})
	require.NoError(t, err)
	assert.Equal(t, addrs(1, 0), tok.Backpointers[0].Addrs)
}

func TestSeal(t *testing.T) {
	tests := []struct {
		name      string
		epoch     storage.Epoch
		want      error
		wantReady bool
		wantEpoch storage.Epoch
	}{
		{name: "newer epoch", epoch: 5, wantEpoch: 5},
		{name: "same epoch again: stays ready", epoch: 3, wantReady: true, wantEpoch: 3},
		{name: "older epoch", epoch: 2, want: storage.ErrSealed, wantReady: true, wantEpoch: 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := ready(t, sequencer.Config{}, 3, 40)
			_, err := s.Next(3, 2, nil)
			require.NoError(t, err)
			res, err := s.Seal(tt.epoch)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				var se *storage.SealedError
				require.ErrorAs(t, err, &se)
				assert.Equal(t, storage.Epoch(3), se.Epoch)
			} else {
				require.NoError(t, err)
				assert.Equal(t, storage.Address(42), res.Tail)
			}
			assert.Equal(t, tt.wantReady, s.Ready())
			assert.Equal(t, tt.wantEpoch, s.Epoch())
			assert.Equal(t, storage.Address(42), s.Tail())
		})
	}
}

func TestSealIsIdempotent(t *testing.T) {
	s := ready(t, sequencer.Config{}, 1, 10)
	for range 3 {
		res, err := s.Seal(2)
		require.NoError(t, err)
		assert.Equal(t, storage.Address(10), res.Tail)
		assert.Equal(t, storage.Epoch(2), s.Epoch())
		assert.False(t, s.Ready())
	}
}

func TestNotReadyUntilBootstrapped(t *testing.T) {
	s := sequencer.New(sequencer.Config{})
	_, err := s.Next(0, 1, nil)
	require.ErrorIs(t, err, sequencer.ErrNotReady)

	require.NoError(t, s.Bootstrap(0, 0, nil))
	tok, err := s.Next(0, 1, nil)
	require.NoError(t, err)
	assert.Equal(t, storage.Address(0), tok.Start)

	// A seal stops it; only a bootstrap in the new epoch starts it again.
	_, err = s.Seal(1)
	require.NoError(t, err)
	_, err = s.Next(1, 1, nil)
	require.ErrorIs(t, err, sequencer.ErrNotReady)
	_, err = s.Next(0, 1, nil)
	require.ErrorIs(t, err, storage.ErrSealed)

	require.NoError(t, s.Bootstrap(1, 0, nil))
	tok, err = s.Next(1, 1, nil)
	require.NoError(t, err)
	assert.Equal(t, storage.Address(1), tok.Start, "the tail survives the seal")
}

func TestBootstrap(t *testing.T) {
	tests := []struct {
		name        string
		epoch       storage.Epoch
		tail        storage.Address
		tails       []sequencer.StreamTail
		want        error
		wantEpoch   storage.Epoch
		wantTail    storage.Address
		wantStreams []sequencer.StreamTail
	}{
		{
			name: "raises the tail; a new epoch's tails replace what it knew", epoch: 4, tail: 100,
			wantEpoch: 4, wantTail: 100,
			wantStreams: []sequencer.StreamTail{},
		},
		{
			name: "never lowers the tail", epoch: 4, tail: 5,
			wantEpoch: 4, wantTail: 10,
			wantStreams: []sequencer.StreamTail{},
		},
		{
			name: "same epoch never lowers", epoch: 3, tail: 0,
			wantEpoch: 3, wantTail: 10,
			wantStreams: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(9, 8, 7, 6)}, {Stream: 2, Addrs: addrs(3)}},
		},
		{
			name: "a new epoch takes the tails given", epoch: 4, tail: 50,
			tails: []sequencer.StreamTail{
				{Stream: 3, Addrs: addrs(20, 40)},
				{Stream: 1, Addrs: addrs(8, 30, 6, 1)},
				{Stream: 2, Addrs: nil},
			},
			wantEpoch: 4, wantTail: 50,
			wantStreams: []sequencer.StreamTail{
				{Stream: 1, Addrs: addrs(30, 8, 6, 1)},
				{Stream: 3, Addrs: addrs(40, 20)},
			},
		},
		{
			name: "the running epoch again merges", epoch: 3, tail: 50,
			tails: []sequencer.StreamTail{
				{Stream: 3, Addrs: addrs(20, 40)},
				{Stream: 1, Addrs: addrs(8, 30, 6, 1)},
			},
			wantEpoch: 3, wantTail: 50,
			wantStreams: []sequencer.StreamTail{
				{Stream: 1, Addrs: addrs(30, 9, 8, 7)},
				{Stream: 2, Addrs: addrs(3)},
				{Stream: 3, Addrs: addrs(40, 20)},
			},
		},
		{
			name: "keeps the newest k of long tails", epoch: 4, tail: 50,
			tails:     []sequencer.StreamTail{{Stream: 5, Addrs: addrs(1, 2, 3, 4, 5, 6, 7, 7)}},
			wantEpoch: 4, wantTail: 50,
			wantStreams: []sequencer.StreamTail{
				{Stream: 5, Addrs: addrs(7, 6, 5, 4)},
			},
		},
		{
			name: "stale epoch", epoch: 2, tail: 100, want: storage.ErrSealed,
			wantEpoch: 3, wantTail: 10,
			wantStreams: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(9, 8, 7, 6)}, {Stream: 2, Addrs: addrs(3)}},
		},
		{
			name: "tail at max address", epoch: 4, tail: storage.MaxAddress, want: sequencer.ErrInvalid,
			wantEpoch: 3, wantTail: 10,
			wantStreams: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(9, 8, 7, 6)}, {Stream: 2, Addrs: addrs(3)}},
		},
		{
			name: "stream named twice", epoch: 4, tail: 100, want: sequencer.ErrInvalid,
			tails:     []sequencer.StreamTail{{Stream: 3, Addrs: addrs(1)}, {Stream: 3, Addrs: addrs(2)}},
			wantEpoch: 3, wantTail: 10,
			wantStreams: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(9, 8, 7, 6)}, {Stream: 2, Addrs: addrs(3)}},
		},
		{
			name: "stream address at the tail", epoch: 4, tail: 100, want: sequencer.ErrInvalid,
			tails:     []sequencer.StreamTail{{Stream: 3, Addrs: addrs(1)}, {Stream: 4, Addrs: addrs(100)}},
			wantEpoch: 3, wantTail: 10,
			wantStreams: []sequencer.StreamTail{{Stream: 1, Addrs: addrs(9, 8, 7, 6)}, {Stream: 2, Addrs: addrs(3)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Epoch 3, tail 10: stream 1 holds 0..9 except 3, stream 2 holds 3.
			s := ready(t, sequencer.Config{}, 3, 0)
			for a := range 10 {
				id := sequencer.StreamID(1)
				if a == 3 {
					id = 2
				}
				_, err := s.Next(3, 1, []sequencer.StreamID{id})
				require.NoError(t, err)
			}
			_, err := s.Seal(3)
			require.NoError(t, err)
			require.True(t, s.Ready(), "sealing the current epoch again leaves it ready")

			err = s.Bootstrap(tt.epoch, tt.tail, tt.tails)
			if tt.want != nil {
				require.ErrorIs(t, err, tt.want)
				assert.True(t, s.Ready(), "a failed bootstrap changes nothing")
			} else {
				require.NoError(t, err)
				assert.True(t, s.Ready())
			}
			assert.Equal(t, tt.wantEpoch, s.Epoch())
			assert.Equal(t, tt.wantTail, s.Tail())
			assert.Equal(t, tt.wantStreams, s.StreamTails())
		})
	}
}

func TestBootstrapNeverLowersAcrossEpochs(t *testing.T) {
	s := sequencer.New(sequencer.Config{})
	var last storage.Address
	for epoch, tail := range []storage.Address{50, 10, 0, 70, 60} {
		require.NoError(t, s.Bootstrap(storage.Epoch(epoch), tail, nil))
		tok, err := s.Next(storage.Epoch(epoch), 1, nil)
		require.NoError(t, err)
		assert.GreaterOrEqual(t, tok.Start, max(last, tail))
		last = tok.Start + 1
		_, err = s.Seal(storage.Epoch(epoch + 1))
		require.NoError(t, err)
	}
}

func TestTokensUnique(t *testing.T) {
	s := ready(t, sequencer.Config{}, 0, 0)
	seen := make(map[storage.Address]bool)
	epoch := storage.Epoch(0)
	for i := range 10000 {
		if i%1000 == 999 {
			// Reconfigure now and then with a stale tail: no address may
			// come back.
			epoch++
			_, err := s.Seal(epoch)
			require.NoError(t, err)
			require.NoError(t, s.Bootstrap(epoch, storage.Address(i/2), nil))
		}
		n := i%3 + 1
		tok, err := s.Next(epoch, n, nil)
		require.NoError(t, err)
		for a := tok.Start; a < tok.Start+storage.Address(n); a++ {
			require.False(t, seen[a], "address %d handed out twice", a)
			seen[a] = true
		}
	}
	assert.Len(t, seen, int(s.Tail()))
}

func TestConcurrentNext(t *testing.T) {
	const (
		workers = 8
		calls   = 500
	)
	s := ready(t, sequencer.Config{}, 0, 0)
	type span struct{ start, end storage.Address }
	spans := make([][]span, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				n := (w+i)%5 + 1
				tok, err := s.Next(0, n, []sequencer.StreamID{sequencer.StreamID(w % 3)})
				if err != nil {
					t.Error(err)
					return
				}
				spans[w] = append(spans[w], span{tok.Start, tok.Start + storage.Address(n)})
				_ = s.StreamTails()
			}
		})
	}
	wg.Wait()
	var all []span
	for _, sp := range spans {
		all = append(all, sp...)
	}
	slices.SortFunc(all, func(a, b span) int { return int(a.start) - int(b.start) })
	var next storage.Address
	for _, sp := range all {
		require.Equal(t, next, sp.start, "ranges must be disjoint and leave no gap")
		next = sp.end
	}
	assert.Equal(t, next, s.Tail())
}

func TestErrorsWrapSentinels(t *testing.T) {
	s := ready(t, sequencer.Config{}, 0, 0)
	_, err := s.Next(0, 1, []sequencer.StreamID{4, 4})
	require.Error(t, err)
	assert.True(t, errors.Is(err, sequencer.ErrInvalid))
	assert.Contains(t, err.Error(), "stream 4")
	assert.Regexp(t, `^sequencer: `, err.Error())
}

func BenchmarkNext(b *testing.B) {
	benchmarks := []struct {
		name    string
		n       int
		streams []sequencer.StreamID
	}{
		{name: "one token", n: 1},
		{name: "one stream", n: 1, streams: []sequencer.StreamID{1}},
		{name: "four streams", n: 1, streams: []sequencer.StreamID{1, 2, 3, 4}},
		{name: "batch of 64", n: 64, streams: []sequencer.StreamID{1}},
	}
	for _, bm := range benchmarks {
		b.Run(bm.name, func(b *testing.B) {
			s := ready(b, sequencer.Config{}, 0, 0)
			b.ReportAllocs()
			for b.Loop() {
				if _, err := s.Next(0, bm.n, bm.streams); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
