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
	tail, err := r.Seal(1)
	require.NoError(t, err)
	require.Equal(t, mark, tail, "a restarted sequencer reports its floor as its tail")
	_, err = r.Next(1, 1, nil)
	require.ErrorIs(t, err, sequencer.ErrNotReady)
	require.NoError(t, r.Bootstrap(1, 3, nil), "bootstrapping below the floor is allowed")
	require.False(t, r.Lost())
	tok, err := r.Next(1, 1, nil)
	require.NoError(t, err)
	require.Equal(t, mark, tok.Start, "the floor is never lowered")
	require.Panics(t, func() { sequencer.New(sequencer.Config{Reserve: -1}) })
}
