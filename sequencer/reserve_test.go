package sequencer_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
)

// TestReserveMark checks the reservation mark stays ahead of every token,
// and that a sequencer restarted from it never hands out an address the lost
// one may have handed out.
func TestReserveMark(t *testing.T) {
	s := sequencer.New(sequencer.Config{Reserve: 10})
	require.NoError(t, s.Bootstrap(0, 0, nil))
	require.Equal(t, storage.Address(0), s.Mark())
	var last storage.Address
	for range 25 {
		tok, err := s.Next(0, 1, nil)
		require.NoError(t, err)
		require.Less(t, tok.Start, s.Mark(), "a token at or above the mark")
		last = tok.Start
	}
	require.Equal(t, storage.Address(24), last)
	mark := s.Mark()
	require.LessOrEqual(t, mark, storage.Address(25+10))

	r := sequencer.New(sequencer.Config{Reserve: 10, Floor: mark})
	require.True(t, r.Lost())
	res, err := r.Seal(1)
	require.NoError(t, err)
	require.Equal(t, mark, res.Tail, "a restarted sequencer reports its floor as its tail")
	require.True(t, res.Lost)
	require.False(t, res.NoMark, "its floor vouches for every address handed out")
	_, err = r.Next(1, 1, nil)
	require.ErrorIs(t, err, sequencer.ErrNotReady)
	require.NoError(t, r.Bootstrap(1, 3, nil), "bootstrapping below the floor is allowed")
	require.False(t, r.Lost())
	tok, err := r.Next(1, 1, nil)
	require.NoError(t, err)
	require.Equal(t, mark, tok.Start, "the floor is never lowered")
	require.Panics(t, func() { sequencer.New(sequencer.Config{Reserve: -1}) })
}

// TestAmnesiacSequencer: a sequencer that starts with no durable mark holds
// nothing it can vouch for: its seal says so (Lost and NoMark), so that a
// reconfiguration neither trusts its empty stream tails nor its tail of 0.
// Before a bootstrap, a sequencer restarted with a Floor is Lost but has a
// mark; after one, neither.
func TestAmnesiacSequencer(t *testing.T) {
	s := sequencer.New(sequencer.Config{})
	res, err := s.Seal(4)
	require.NoError(t, err)
	require.Equal(t, sequencer.SealResult{Lost: true, NoMark: true, Tails: []sequencer.StreamTail{}}, res)

	require.NoError(t, s.Bootstrap(4, 7, []sequencer.StreamTail{{Stream: 1, Addrs: []storage.Address{6}}}))
	res, err = s.Seal(5)
	require.NoError(t, err)
	require.False(t, res.Lost)
	require.False(t, res.NoMark)
	require.Equal(t, storage.Address(7), res.Tail)
	require.Equal(t, []sequencer.StreamTail{{Stream: 1, Addrs: []storage.Address{6}}}, res.Tails)

	// A durable mark of zero is a mark: nothing was handed out.
	r := sequencer.New(sequencer.Config{Recovered: true})
	res, err = r.Seal(1)
	require.NoError(t, err)
	require.True(t, res.Lost)
	require.False(t, res.NoMark)
}

// TestSealOfCurrentEpochKeepsReady: a duplicate or late seal of the epoch a
// sequencer was bootstrapped in leaves it handing out tokens, so that
// duplicated messages cannot set off recoveries.
func TestSealOfCurrentEpochKeepsReady(t *testing.T) {
	s := sequencer.New(sequencer.Config{})
	_, err := s.Seal(2)
	require.NoError(t, err)
	require.NoError(t, s.Bootstrap(2, 10, nil))
	for range 3 {
		res, err := s.Seal(2)
		require.NoError(t, err)
		require.Equal(t, storage.Address(10), res.Tail)
		require.True(t, s.Ready())
	}
	tok, err := s.Next(2, 1, nil)
	require.NoError(t, err)
	require.Equal(t, storage.Address(10), tok.Start)
}

// TestStaleSequencer: a sequencer that did not run the epoch before the one
// it is sealed at (the log moved to another sequencer and back, or that
// epoch was never bootstrapped) vouches for nothing: its tail and streams
// predate what was handed out since. So is one restarted from its mark
// (Config.Booted).
func TestStaleSequencer(t *testing.T) {
	s := sequencer.New(sequencer.Config{Recovered: true})
	require.NoError(t, s.Bootstrap(1, 0, nil))
	_, err := s.Next(1, 3, []sequencer.StreamID{4})
	require.NoError(t, err)
	res, err := s.Seal(2)
	require.NoError(t, err)
	require.False(t, res.Lost, "it ran epoch 1")
	require.False(t, res.NoMark)

	res, err = s.Seal(4) // epochs 2 and 3 ran elsewhere, or not at all
	require.NoError(t, err)
	require.True(t, res.Lost)
	require.True(t, res.NoMark)
	require.NoError(t, s.Bootstrap(4, 9, nil))
	res, err = s.Seal(5)
	require.NoError(t, err)
	require.False(t, res.NoMark, "bootstrapped in epoch 4")

	// Restarted from what its host saved, it vouches for its mark only at
	// a seal of the epoch after the one it last ran in.
	st := s.State()
	require.Equal(t, sequencer.State{Mark: s.Mark(), Booted: 4}, st)
	restart := func() *sequencer.Sequencer {
		return sequencer.New(sequencer.Config{Floor: st.Mark, Recovered: true, Booted: st.Booted})
	}
	res, err = restart().Seal(5)
	require.NoError(t, err)
	require.True(t, res.Lost)
	require.False(t, res.NoMark, "it ran epoch 4")
	require.Equal(t, st.Mark, res.Tail)
	res, err = restart().Seal(6) // epoch 5 ran elsewhere, or not at all
	require.NoError(t, err)
	require.True(t, res.Lost)
	require.True(t, res.NoMark, "another sequencer may have run epoch 5")
	r := restart()
	require.Equal(t, storage.Epoch(4), r.Booted())
	require.NoError(t, r.Bootstrap(6, 0, nil))
	require.Equal(t, sequencer.State{Mark: st.Mark, Booted: 6}, r.State())
}
