package corfu_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// reformat brings unit id back with an empty disk (fault catalog P4).
func (e *env) reformat(id projection.NodeID) *storage.Memory {
	blank := storage.NewBlank()
	e.cl.Net.Register(id, &transport.Server{Unit: blank})
	return blank
}

// TestBlankUnitRejoins replaces one replica of a chain of 2 by a blank
// unit: the client takes it out of the old segment and back into a new one,
// reads of earlier entries still succeed from the survivor, and appends
// land on both replicas again.
func TestBlankUnitRejoins(t *testing.T) {
	for _, which := range []int{0, 1} { // the head, then the tail
		t.Run(fmt.Sprintf("replica %d", which), func(t *testing.T) {
			e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
			var addrs []storage.Address
			for i := range 5 {
				a, err := e.c.Append(e.ctx, []byte(fmt.Sprintf("entry %d", i)))
				require.NoError(t, err)
				addrs = append(addrs, a)
			}
			epoch := e.c.Projection().Epoch
			id := e.c.Projection().Segments[0].Stripes[0][which]
			blank := e.reformat(id)

			if which == 0 {
				// The head is blank: an append meets it first.
				a, err := e.c.Append(e.ctx, []byte("after"))
				require.NoError(t, err)
				addrs = append(addrs, a)
			}
			for i, a := range addrs[:5] {
				got, err := e.c.Read(e.ctx, a)
				require.NoError(t, err, "address %d", a)
				assert.Equal(t, fmt.Sprintf("entry %d", i), string(got.Data))
			}
			a, err := e.c.Append(e.ctx, []byte("later"))
			require.NoError(t, err)
			addrs = append(addrs, a)

			p := e.c.Projection()
			assert.Greater(t, p.Epoch, epoch, "a reconfiguration took the blank unit out")
			assert.False(t, blank.Blank(), "the blank unit joined")
			assert.Equal(t, p.Epoch, blank.Epoch())
			for _, seg := range p.Segments[:len(p.Segments)-1] {
				for _, chain := range seg.Stripes {
					assert.NotContains(t, chain, id, "the blank unit left every closed segment")
				}
			}
			assert.Contains(t, p.Segments[len(p.Segments)-1].Stripes[0], id, "the blank unit serves the new segment")
			// What was appended after the join is on the rejoined unit.
			loc, err := p.Locate(a)
			require.NoError(t, err)
			s, data := blank.Inspect(loc.Local)
			assert.Equal(t, storage.StateData, s)
			assert.NotEmpty(t, data)
			for _, a := range addrs {
				_, err := e.c.Read(e.ctx, a)
				require.NoError(t, err, "address %d", a)
			}
			// A second client, opened now, reads everything too.
			c2 := e.open(nil)
			for _, a := range addrs {
				_, err := c2.Read(e.ctx, a)
				require.NoError(t, err, "address %d", a)
			}
		})
	}
}

// TestBlankOnlyReplica: a chain whose only replica came back blank has lost
// its data. Reads there fail with ErrBlank, and no reconfiguration pretends
// otherwise; nothing is filled.
func TestBlankOnlyReplica(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 1, Replicas: 1}, nil)
	a, err := e.c.Append(e.ctx, []byte("x"))
	require.NoError(t, err)
	epoch := e.c.Projection().Epoch
	blank := e.reformat("unit0")
	_, err = e.c.Read(e.ctx, a)
	require.ErrorIs(t, err, corfu.ErrBlank)
	_, err = e.c.Append(e.ctx, []byte("y"))
	require.ErrorIs(t, err, corfu.ErrBlank)
	assert.Equal(t, epoch, e.c.Projection().Epoch, "no reconfiguration")
	assert.True(t, blank.Blank())
	assert.Equal(t, 0, e.net.count(transport.OpJoin))
	assert.Equal(t, 0, e.net.count(transport.OpFill))
}

// TestBlankUnitAndLostSequencer: a unit comes back blank while the
// sequencer has lost its state. The recovery rebuilds the stream tails from
// the surviving replicas, fills a hole in the blank unit's chain only after
// the commit, and the blank unit joins.
func TestBlankUnitAndLostSequencer(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, nil)
	var want []storage.Address
	for i := range 4 {
		a, err := e.c.Append(e.ctx, []byte(fmt.Sprintf("s%d", i)), 7)
		require.NoError(t, err)
		want = append(want, a)
	}
	hole := e.token(1) // handed out, never written
	id := e.c.Projection().Segments[0].Stripes[0][1]
	blank := e.reformat(id)
	fresh := sequencer.New(sequencer.Config{Backpointers: e.cl.Options.Backpointers, Floor: e.cl.Sequencer.Mark()})
	e.cl.Net.Register("seq", &transport.Server{Sequencer: fresh})

	a, err := e.c.Append(e.ctx, []byte("s4"), 7)
	require.NoError(t, err)
	want = append(want, a)
	assert.False(t, blank.Blank(), "the blank unit joined")
	survivor := e.c.Projection().Segments[0].Stripes[0][0]
	s, _ := e.cl.Unit(survivor).Inspect(hole) // segment 0 has one chain: local is global
	assert.Equal(t, storage.StateJunk, s, "the recovery filled the hole")
	_, err = e.c.Read(e.ctx, hole)
	require.ErrorIs(t, err, corfu.ErrJunk, "the hole was filled")

	entries, err := e.c.Stream(7, 0).Sync(e.ctx)
	require.NoError(t, err)
	var got []storage.Address
	for _, en := range entries {
		got = append(got, en.Address)
	}
	assert.Equal(t, want, got, "the stream survived the rebuild")
}

// TestBlankPatienceSpendsNoRetries: a reader that meets a blank unit waits
// out its patience before it reconfigures, and those waits do not count
// against MaxRetries: with few retries and a long patience, the read still
// gets to the reconfiguration that lets the unit rejoin.
func TestBlankPatienceSpendsNoRetries(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2}, func(c *corfu.Config) {
		c.MaxRetries = 2
		c.HoleFillWait = 400 * time.Millisecond // patience 100 to 200ms, many backoffs of at most 4ms
	})
	a, err := e.c.Append(e.ctx, []byte("entry"))
	require.NoError(t, err)
	epoch := e.c.Projection().Epoch
	tail := e.c.Projection().Segments[0].Stripes[0][1]
	blank := e.reformat(tail)

	got, err := e.c.Read(e.ctx, a)
	require.NoError(t, err)
	require.Equal(t, "entry", string(got.Data))
	assert.Greater(t, e.c.Projection().Epoch, epoch, "the reader reconfigured")
	assert.False(t, blank.Blank(), "the blank unit joined")
}
