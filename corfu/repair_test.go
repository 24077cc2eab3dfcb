package corfu_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/storage/vfs"
	"github.com/corfulog/corfu/storage/vfs/errorfs"
	"github.com/corfulog/corfu/transport"
)

// TestReadRepairsMisdirectedReplica runs the chain's last replica on a
// durable unit whose disk misdirects a write: the two records it damages
// answer storage.ErrCorrupt, a read serves them from the head, and repairs
// the replica with them.
func TestReadRepairsMisdirectedReplica(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Layouts: 1}, nil)
	du, a0, a1 := misdirectOnto(t, e, 1)
	epoch := e.c.Epoch()
	for _, a := range []storage.Address{a0, a1} {
		_, err := du.Read(e.ctx, epoch, e.chain(a)[1].local)
		require.ErrorIs(t, err, storage.ErrCorrupt, "addr %d: the misdirected write damaged it", a)
	}

	for a, want := range map[storage.Address]string{a0: "first entry", a1: "second entry"} {
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err, "addr %d", a)
		assert.Equal(t, want, string(got.Data))
		head := e.chain(a)[0]
		_, raw := head.unit.Inspect(head.local)
		repaired, err := du.Read(e.ctx, epoch, e.chain(a)[1].local)
		require.NoError(t, err, "addr %d: the read repaired the replica", a)
		assert.Equal(t, raw, repaired, "addr %d: with the head's record", a)
	}
}

// misdirectOnto puts replica i of the env's chain on a durable unit, and
// appends "first entry" and then "second entry", whose write that unit's
// disk misdirects 20 bytes back: both records it damages answer
// storage.ErrCorrupt there. It returns the unit and the two addresses.
func misdirectOnto(t *testing.T, e *env, i int) (du *disk.Unit, a0, a1 storage.Address) {
	t.Helper()
	fsys := errorfs.Wrap(vfs.NewMem(), nil, errorfs.Options{})
	du, err := disk.Open(fsys, "/data", disk.Options{ID: disk.ID{7}, SegmentBytes: 1 << 20})
	require.NoError(t, err)
	t.Cleanup(func() { _ = du.Close() })
	e.cl.Net.Register(e.chain(0)[i].id, &transport.Server{Unit: du})

	a0, err = e.c.Append(e.ctx, []byte("first entry"))
	require.NoError(t, err)
	fsys.SetInjector(errorfs.OnIndex(errorfs.Ops(errorfs.OpWrite), 0, errorfs.Fault{Kind: errorfs.Misdirect, Shift: -20}))
	a1, err = e.c.Append(e.ctx, []byte("second entry"))
	require.NoError(t, err, "the disk lies")
	fsys.SetInjector(nil)
	return du, a0, a1
}

// corruptUnit is a unit whose records at the addresses in bad fail their
// checksum (reads answer storage.ErrCorrupt, writes and fills
// storage.ErrWritten) until a Repair replaces them. It records the repairs
// it is asked for; with refuse set, it refuses them all.
type corruptUnit struct {
	*storage.Memory
	mu      sync.Mutex
	bad     map[storage.Address]bool
	refuse  bool
	repairs []repairCall
}

type repairCall struct {
	local storage.Address
	data  []byte
	junk  bool
}

var errRefused = errors.New("repair refused")

func (u *corruptUnit) isBad(a storage.Address) bool {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.bad[a]
}

func (u *corruptUnit) Read(ctx context.Context, epoch storage.Epoch, a storage.Address) ([]byte, error) {
	if u.isBad(a) {
		return nil, fmt.Errorf("%w: local address %d", storage.ErrCorrupt, a)
	}
	return u.Memory.Read(ctx, epoch, a)
}

func (u *corruptUnit) Write(ctx context.Context, epoch storage.Epoch, a storage.Address, data []byte) error {
	if u.isBad(a) {
		return storage.ErrWritten
	}
	return u.Memory.Write(ctx, epoch, a, data)
}

func (u *corruptUnit) Fill(ctx context.Context, epoch storage.Epoch, a storage.Address) error {
	if u.isBad(a) {
		return storage.ErrWritten
	}
	return u.Memory.Fill(ctx, epoch, a)
}

func (u *corruptUnit) Repair(ctx context.Context, epoch storage.Epoch, a storage.Address, data []byte, junk bool) error {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.repairs = append(u.repairs, repairCall{local: a, data: data, junk: junk})
	switch {
	case u.refuse:
		return errRefused
	case !u.bad[a]:
		return storage.ErrWritten
	}
	delete(u.bad, a)
	// NB: the Memory beneath may not hold the record yet (a replica that
	// a writer never reached, in these tests).
	var err error
	if junk {
		err = u.Memory.Fill(ctx, epoch, a)
	} else {
		err = u.Memory.Write(ctx, epoch, a, data)
	}
	if errors.Is(err, storage.ErrWritten) {
		err = nil
	}
	return err
}

func (u *corruptUnit) calls() []repairCall {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]repairCall(nil), u.repairs...)
}

// corrupt serves replica r through a corruptUnit over its Memory, with its
// record of r.local bad.
func (e *env) corrupt(r replica) *corruptUnit {
	u := &corruptUnit{Memory: r.unit, bad: map[storage.Address]bool{r.local: true}}
	e.cl.Net.Register(r.id, &transport.Server{Unit: u})
	return u
}

func TestReadRepairsEveryCorruptReplicaWithJunk(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 3, Replicas: 3, Layouts: 1}, nil)
	a := e.token(1)
	require.NoError(t, e.c.Fill(e.ctx, a))
	chain := e.chain(a)
	middle, last := e.corrupt(chain[1]), e.corrupt(chain[2])

	_, err := e.c.Read(e.ctx, a)
	require.ErrorIs(t, err, corfu.ErrJunk, "the head's junk decides")
	for i, u := range []*corruptUnit{middle, last} {
		require.Equal(t, []repairCall{{local: chain[1+i].local, junk: true}}, u.calls(), "replica %d", 1+i)
		assert.False(t, u.isBad(chain[1+i].local))
	}
	_, err = e.c.Read(e.ctx, a)
	require.ErrorIs(t, err, corfu.ErrJunk)
	assert.Len(t, last.calls(), 1, "a read of a good replica repairs nothing")
}

func TestReadReturnsWhenRepairFails(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Layouts: 1}, nil)
	a, err := e.c.Append(e.ctx, []byte("entry"))
	require.NoError(t, err)
	chain := e.chain(a)
	last := e.corrupt(chain[1])
	last.refuse = true

	got, err := e.c.Read(e.ctx, a)
	require.NoError(t, err, "a failed repair does not fail the read")
	assert.Equal(t, "entry", string(got.Data))
	_, raw := chain[0].unit.Inspect(chain[0].local)
	require.Equal(t, []repairCall{{local: chain[1].local, data: raw}}, last.calls())
	assert.True(t, last.isBad(chain[1].local), "still corrupt")
}

// TestCompleteChainRepairsCorruptReplica completes a chain whose head alone
// holds the entry, past a replica whose record there is corrupt: the head's
// data repairs it.
func TestCompleteChainRepairsCorruptReplica(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 3, Replicas: 3, Layouts: 1}, nil)
	a := e.token(1)
	raw := rawEntry(t, []byte("only at the head"))
	chain := e.chain(a)
	require.NoError(t, chain[0].unit.Write(e.ctx, 0, chain[0].local, raw))
	middle := e.corrupt(chain[1])

	got, err := e.c.Read(e.ctx, a)
	require.NoError(t, err)
	assert.Equal(t, "only at the head", string(got.Data))
	require.Equal(t, []repairCall{{local: chain[1].local, data: raw}}, middle.calls())
	for i, r := range chain {
		st, data := r.unit.Inspect(r.local)
		assert.Equal(t, storage.StateData, st, "replica %d", i)
		assert.Equal(t, raw, data, "replica %d", i)
	}
}

var _ storage.Repairer = (*corruptUnit)(nil)

// TestScrubRepairsHead runs the chain's head on a durable unit whose disk
// misdirects a write: the records it damaged stay damaged through reads
// (which ask the chain's last replica, intact), and a scrub finds and
// repairs them from the last replica. A second scrub finds nothing.
func TestScrubRepairsHead(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Layouts: 1}, nil)
	du, a0, a1 := misdirectOnto(t, e, 0)
	epoch := e.c.Epoch()
	want := map[storage.Address]string{a0: "first entry", a1: "second entry"}
	for a, s := range want {
		got, err := e.c.Read(e.ctx, a)
		require.NoError(t, err)
		assert.Equal(t, s, string(got.Data))
		_, err = du.Read(e.ctx, epoch, e.chain(a)[0].local)
		require.ErrorIs(t, err, storage.ErrCorrupt, "addr %d: reads do not reach the head", a)
	}

	res, err := e.c.Scrub(e.ctx, 0, a1+1)
	require.NoError(t, err)
	assert.Equal(t, corfu.ScrubResult{Checked: 2, Corrupt: 2, Repaired: 2}, res)
	for a, s := range want {
		got, err := du.Read(e.ctx, epoch, e.chain(a)[0].local)
		require.NoError(t, err, "addr %d: repaired", a)
		assert.Equal(t, s, string(got[len(got)-len(s):]), "addr %d: with the entry's bytes", a)
	}
	res, err = e.c.Scrub(e.ctx, 0, a1+1)
	require.NoError(t, err)
	assert.Equal(t, corfu.ScrubResult{Checked: 2}, res, "nothing left to repair")
}

// TestOrphanCorruptHeadClosesSegment: a writer's record reached the head of
// a chain of the open segment, which stored it damaged, and got no further
// (the writer died). No replica after the head says what it was, and the
// writer might still be on its way down the chain, so a read waits as for a
// hole, then closes the segment with a reconfiguration (which seals any
// such writer out) and fills the address like any other write that never
// got past the head of a closed segment: the head's record is repaired to
// junk first, then the rest of the chain gets junk. (Before, the read
// answered storage.ErrCorrupt for as long as the segment stayed open.)
func TestOrphanCorruptHeadClosesSegment(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Layouts: 1}, nil)
	a := e.token(1)
	chain := e.chain(a)
	head := e.corrupt(chain[0])
	epoch := e.c.Epoch()

	_, err := e.c.Read(e.ctx, a)
	require.ErrorIs(t, err, corfu.ErrJunk)
	p := e.c.Projection()
	require.Greater(t, p.Epoch, epoch, "a reconfiguration sealed the writer out")
	require.Len(t, p.Segments, 2)
	require.Greater(t, p.Segments[0].End, a, "the address lies in a closed segment")
	require.Equal(t, []repairCall{{local: chain[0].local, junk: true}}, head.calls(), "the head first")
	st, _ := chain[1].unit.Inspect(chain[1].local)
	assert.Equal(t, storage.StateJunk, st, "then the rest of the chain")

	b, err := e.c.Append(e.ctx, []byte("after"))
	require.NoError(t, err)
	require.GreaterOrEqual(t, b, p.Segments[1].Start)
	got, err := e.c.Read(e.ctx, b)
	require.NoError(t, err)
	assert.Equal(t, "after", string(got.Data))
}

// TestScrubRestoresLostRecord: the chain's head lost a record it had
// acknowledged (its disk dropped the write: it answers unwritten there),
// while the replica after it holds the entry, which writes reach only after
// the head. Reads never ask the head; a scrub writes the entry to it again,
// and a second scrub finds nothing to do.
func TestScrubRestoresLostRecord(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Layouts: 1}, nil)
	a, err := e.c.Append(e.ctx, []byte("entry"))
	require.NoError(t, err)
	chain := e.chain(a)
	_, raw := chain[1].unit.Inspect(chain[1].local)
	head := storage.NewMemory()
	e.cl.Net.Register(chain[0].id, &transport.Server{Unit: head})

	res, err := e.c.Scrub(e.ctx, 0, a+1)
	require.NoError(t, err)
	assert.Equal(t, corfu.ScrubResult{Checked: 1, Restored: 1}, res)
	st, data := head.Inspect(chain[0].local)
	require.Equal(t, storage.StateData, st)
	assert.Equal(t, raw, data, "the entry's bytes, from the replica after it")

	res, err = e.c.Scrub(e.ctx, 0, a+1)
	require.NoError(t, err)
	assert.Equal(t, corfu.ScrubResult{Checked: 1}, res, "nothing left to restore")
}

// TestScrubSkipsBlankReplica: a scrub that meets a replica that came back
// blank skips it, as it skips one that does not answer: it checks the rest
// and reconfigures nothing (letting the unit rejoin is the detector's
// round, not a scrub's, which would otherwise wait out a reader's patience
// on every address).
func TestScrubSkipsBlankReplica(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 2, Replicas: 2, Layouts: 1}, nil)
	var last storage.Address
	for i := range 3 {
		a, err := e.c.Append(e.ctx, []byte(fmt.Sprint("entry ", i)))
		require.NoError(t, err)
		last = a
	}
	blank := e.reformat(e.chain(last)[0].id)

	res, err := e.c.Scrub(e.ctx, 0, last+1)
	require.NoError(t, err)
	assert.Equal(t, corfu.ScrubResult{Checked: int(last + 1)}, res)
	assert.Equal(t, storage.Epoch(0), e.latestCommitted().Epoch, "the scrub reconfigured nothing")
	_, err = blank.Read(e.ctx, 0, 0)
	assert.ErrorIs(t, err, storage.ErrBlank, "the unit is still blank: rejoining is not the scrub's to do")
}

// TestFillKeepsCorruptOnlyReplica: a fill that meets a record failing its
// checksum on a chain's only replica, in a closed segment, leaves it: that
// replica is the chain's last, so what it stored was committed (here an
// acknowledged entry, whose read may fail once and then succeed).
func TestFillKeepsCorruptOnlyReplica(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 1, Replicas: 1, Layouts: 1}, nil)
	a, err := e.c.Append(e.ctx, []byte("acked"))
	require.NoError(t, err)
	_, err = e.c.Reconfigure(e.ctx, nil) // closes the segment that holds a
	require.NoError(t, err)
	only := e.corrupt(e.chain(a)[0])

	err = e.c.Fill(e.ctx, a)
	require.ErrorIs(t, err, storage.ErrCorrupt)
	require.Empty(t, only.calls(), "no repair with junk")
	only.mu.Lock()
	only.bad = nil // the flip was on the way, not on the disk
	only.mu.Unlock()
	got, err := e.c.Read(e.ctx, a)
	require.NoError(t, err)
	require.Equal(t, "acked", string(got.Data))
}

// TestFillRestoresHeadsLostRecord: an entry reached the head and the
// middle replica of a chain of three, not the tail (its writer crashed),
// and the head's disk then lost its record: it answers unwritten, as for a
// hole. A fill must not put junk at the head ahead of the entry, which the
// middle replica holds: it writes the entry back at the head and completes
// the chain. Without restoreHead the head takes junk and the fill fails
// with ErrDiverged.
func TestFillRestoresHeadsLostRecord(t *testing.T) {
	e := newEnv(t, corfutest.Options{Units: 3, Replicas: 3, Layouts: 1}, nil)
	a := e.token(1)
	chain := e.chain(a)
	raw := rawEntry(t, []byte("entry"))
	require.NoError(t, chain[1].unit.Write(e.ctx, 0, chain[1].local, raw))

	require.ErrorIs(t, e.c.Fill(e.ctx, a), storage.ErrWritten)
	for _, r := range chain {
		st, data := r.unit.Inspect(r.local)
		require.Equal(t, storage.StateData, st, "replica %s", r.id)
		assert.Equal(t, raw, data, "replica %s holds the entry", r.id)
	}
	got, err := e.c.Read(e.ctx, a)
	require.NoError(t, err)
	assert.Equal(t, "entry", string(got.Data))
}
