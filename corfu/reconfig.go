package corfu

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

var (
	// ErrSealIncomplete reports a reconfiguration that could not reach a
	// replica of every chain of the open segment, so the log's tail is
	// unknown and no new projection can be installed safely.
	ErrSealIncomplete = errors.New("corfu: seal reached no replica of some chain")
	// ErrReconfigLost reports a reconfiguration that another client's
	// reconfiguration beat to the same epoch. The client has installed the
	// winner's projection; the caller may reconfigure again on top of it.
	ErrReconfigLost = errors.New("corfu: another reconfiguration won the epoch")
	// ErrNoQuorum reports that a majority of layout servers did not answer.
	ErrNoQuorum = errors.New("corfu: no majority of layout servers")
)

// Change computes the next projection from the current one and the log's
// tail as the seal found it: every address below tail may hold data, none at
// or above it does. It must not modify cur; the epoch is set by Reconfigure.
type Change func(cur *projection.Projection, tail storage.Address) (*projection.Projection, error)

// Reconfigure moves the log to the next epoch (CORFU paper, reconfiguration):
// it seals every unit and the sequencer at the new epoch, so that no request
// of the old epoch succeeds any more and the log's tail is known; it asks
// change for the next projection (nil keeps the current layout, which is how
// a restarted sequencer is recovered); it agrees that projection with the
// layout servers (one write-once slot per epoch, Paxos-style, so two racing
// reconfigurations cannot install two projections for one epoch); and it
// bootstraps the next projection's sequencer above every address the old
// epoch wrote or handed out.
//
// A unit that answers the seal with storage.ErrBlank came back with an
// empty disk (fault catalog P4). Unless it is the only replica of some
// chain, Reconfigure applies ReplaceUnit(unit, unit) on top of change: the
// unit leaves every closed segment and appears only in a new open segment,
// above the tail, whose local addresses lie above everything it held. Once
// the next epoch is committed and its sequencer bootstrapped, Reconfigure
// tells every such unit that the committed projection places only in its
// open segment, above the tail, to join at the new epoch, if the sequencer
// answered the seal (else the tail may lie below writes the blank unit held
// and lost, and it stays blank until a later reconfiguration).
//
// Errors: ErrSealIncomplete, ErrNoQuorum, ErrReconfigLost, a change's error,
// projection.ErrInvalid or ErrStaleEpoch for a bad next projection, ctx's
// error.
func (c *Client) Reconfigure(ctx context.Context, change Change) (p *projection.Projection, err error) {
	if len(c.hooks.reconfig) > 0 {
		start, from := c.env.Now(), c.projection().Epoch
		defer func() {
			ev := ReconfigureEvent{From: from, Took: c.env.Now().Sub(start), Err: err}
			if p != nil {
				ev.Epoch = p.Epoch
			}
			c.hooks.onReconfigure(ev)
		}()
	}
	var overtaken storage.Epoch // the epoch a newer reconfiguration took from this one
	for attempt := 0; ; attempt++ {
		cur, err := c.projection(), error(nil)
		if _, fresh := ctx.Value(suspectsKey{}).(suspects); !fresh || attempt > 0 {
			// NB: a failure detector fetched the projection in the round
			// that called this; anyone else starts from the newest one.
			// A stale one only costs a retry: its seal meets the newer
			// epoch.
			cur, err = c.latest(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("corfu: reconfigure: %w", err)
		}
		if overtaken > 0 && change == nil && cur.Epoch >= overtaken {
			// NB: another client's reconfiguration committed an epoch at
			// least as new as ours: with the layout unchanged, that is all
			// this one was for.
			return cur, fmt.Errorf("corfu: reconfigure to epoch %d: %w", overtaken, ErrReconfigLost)
		}
		epoch := cur.Epoch + 1
		seal, err := c.seal(ctx, cur, epoch)
		var sealed *storage.SealedError
		if errors.As(err, &sealed) && sealed.Epoch > epoch && c.mut.AcceptorSkipsEpochs {
			// mutant: take the sealed epoch over, skipping the ones below
			epoch = sealed.Epoch
			seal, err = c.seal(ctx, cur, epoch)
		}
		if errors.As(err, &sealed) && sealed.Epoch > epoch {
			// NB: an earlier reconfiguration sealed a later epoch and died
			// before committing it (or committed it where this client
			// cannot see). Epochs are contiguous: learn what was chosen
			// for every epoch below it first, then seal on top of that.
			if attempt >= c.cfg.MaxRetries {
				return nil, fmt.Errorf("corfu: reconfigure to epoch %d: %w: %w", epoch, ErrRetriesExhausted, err)
			}
			if err := c.learnUpTo(ctx, cur, sealed.Epoch-1); err != nil {
				return nil, fmt.Errorf("corfu: reconfigure: learning epochs %d to %d: %w", epoch, sealed.Epoch-1, err)
			}
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("corfu: reconfigure to epoch %d: %w", epoch, err)
		}
		p, err := c.reconfigureSealed(ctx, cur, seal, epoch, change)
		if errors.As(err, &sealed) && sealed.Epoch > epoch && p == nil && attempt < c.cfg.MaxRetries {
			// NB: a newer reconfiguration sealed the log past this one
			// before it was agreed: start again on top of it.
			overtaken = epoch
			continue
		}
		return p, err
	}
}

// learnUpTo makes sure every epoch after cur up to last has a committed
// projection, so that the next one may be proposed (epochs are contiguous).
// For each, it runs Paxos with cur unchanged as its own value: a value
// that a majority accepted (someone's reconfiguration that got that far) is
// adopted, else the epoch commits the layout as it was, which nothing ever
// used (its units were sealed past it).
func (c *Client) learnUpTo(ctx context.Context, cur *projection.Projection, last storage.Epoch) error {
	for cur.Epoch < last {
		noop := cur.Clone()
		noop.Epoch = cur.Epoch + 1
		chosen, err := c.agree(ctx, cur, noop)
		if err != nil {
			return err
		}
		cur = c.install(chosen)
	}
	return nil
}

// reconfigureSealed is Reconfigure once the log is sealed at epoch, which
// follows cur: it computes the next projection, rebuilds what the sequencer
// lost, agrees the projection, bootstraps the sequencer and lets blank
// units join.
func (c *Client) reconfigureSealed(ctx context.Context, cur *projection.Projection, seal sealed, epoch storage.Epoch, change Change) (*projection.Projection, error) {
	fail := func(err error) error { return fmt.Errorf("corfu: reconfigure to epoch %d: %w", epoch, err) }
	next, blanks, err := c.nextProjection(cur, seal, epoch, change)
	if err != nil {
		return nil, fail(err)
	}
	tail, tails := seal.tail, seal.tails
	headless := headlessGap(cur, seal)
	// failUnless is fail(err), or no error if a newer epoch took over.
	failUnless := func(overtaken bool, err error) error {
		if overtaken {
			c.log.Info("reconfigured; a newer epoch took over", "epoch", epoch)
			return nil
		}
		return fail(err)
	}
	var scan *streamScan
	if !seal.seqOK {
		// NB: the old sequencer's stream tails are lost with it: rebuild
		// them from the log itself, under the sealed projection (which the
		// next one preserves below the tail). Only what the units hold can
		// be in a stream. This comes before agreeing, so that once the
		// next epoch is committed its sequencer follows soon. It reads
		// no higher than what the units hold: below that, every
		// reconfiguration of this epoch maps addresses as cur does. It
		// writes nothing: what it must write waits for the commit.
		under := cur.Clone()
		under.Epoch = epoch // the units are sealed at epoch now
		if scan, err = c.scanStreamTails(ctx, under, seal.written, seal.blank); err != nil {
			return nil, fail(fmt.Errorf("rebuilding stream tails: %w", err))
		}
		tails = scan.tails()
	}
	chosen, err := c.agree(ctx, cur, next)
	if err != nil {
		return nil, fail(err)
	}
	c.install(chosen)
	if !chosen.Equal(next) {
		// NB: the winner completes its own reconfiguration, sequencer
		// included; this one's view of the tail may be another.
		return chosen, fail(ErrReconfigLost)
	}
	if scan != nil {
		// NB: what the scan could not settle before the commit is settled
		// now, under the committed projection and before the sequencer
		// hands out anything, and joins the stream tails:
		//  - the holes it left, and the entries only a chain's first
		//    replica holds (in a chain with a blank unit, its first
		//    surviving one: a blank head may have held, and lost, a write
		//    there, and the committed projection takes it out);
		//  - if the sequencer restarted from its reservation mark,
		//    [written, tail) in the stripes whose head the seal missed:
		//    a writer may have got an entry to such a head, which will be
		//    completed (and must be in the stream tails). A head that
		//    answered bounds its stripe below written.
		// The units are sealed past every writer of the old epoch, so a
		// fill finds an entry some replica holds, or nothing.
		gap := scan.deferred
		if seal.lost && !c.mut.BootstrapBeforeFill {
			gap = append(gap, headless...)
		}
		// NB: a newer reconfiguration that sealed the log past the
		// committed epoch before this one finished with it extends this
		// epoch's projection, sees this sequencer unbootstrapped, and
		// settles what is left.
		if overtaken, err := c.fillAll(ctx, chosen, gap, scan.add); overtaken || err != nil {
			return chosen, failUnless(overtaken, err)
		}
		tails = scan.tails()
	}
	seq := transport.SequencerClient{Caller: hopCaller{c: c}, Node: chosen.Sequencer}
	// NB: the next sequencer's seal and the epoch's confirmation go out
	// at once; both must be done before the bootstrap.
	var inc uint64
	var incErr, confirmErr error
	c.each("confirm", 2, func(i int) {
		if i == 0 {
			inc, incErr = c.incarnation(ctx, cur, chosen, seal, epoch)
			return
		}
		// NB: a reconfiguration that took long may be long overtaken; a
		// sequencer that restarted since knows no epoch and would take
		// this one's old state. The units know: bootstrap only if they
		// are still in this epoch (if a newer one seals them after this
		// check, it seals the sequencer after them, and then sees this
		// bootstrap or refuses it).
		confirmErr = c.confirmEpoch(ctx, chosen)
	})
	if incErr != nil {
		return chosen, failUnless(errors.As(incErr, new(*storage.SealedError)), fmt.Errorf("sealing the next sequencer: %w", incErr))
	}
	if confirmErr != nil {
		return chosen, failUnless(errors.As(confirmErr, new(*storage.SealedError)), fmt.Errorf("confirming the epoch: %w", confirmErr))
	}
	// NB: a retried bootstrap names the incarnation sealed before the
	// first attempt: if that attempt took effect, tokens were handed out,
	// and the sequencer restarted, the retry must not reach the new start
	// with this stale state (sequencer.ErrRestarted).
	err = c.retry(ctx, func() error { return seq.Bootstrap(ctx, inc, epoch, tail, tails) })
	if err != nil && !errors.Is(err, storage.ErrSealed) {
		return chosen, fail(fmt.Errorf("bootstrapping the sequencer: %w", err))
	}
	if seal.lost {
		// NB: the rest of [written, tail) holds nothing (its heads bound
		// it); fill it with the log running again, so that readers do not
		// wait on it hole by hole. (Mutant BootstrapBeforeFill: all of it,
		// and what the fill finds never reaches the stream tails.)
		var rest []storage.Address
		for a := seal.written; a < tail; a++ {
			if !slices.Contains(headless, a) || c.mut.BootstrapBeforeFill {
				rest = append(rest, a)
			}
		}
		if _, err := c.fillAll(ctx, chosen, rest, nil); err != nil {
			return chosen, fail(err)
		}
	}
	c.joinBlanks(ctx, chosen, seal, blanks, epoch)
	c.log.Info("reconfigured", "epoch", epoch, "tail", tail)
	return chosen, nil
}

// fillAll fills (or completes) each of addrs under p with fillSealed, and
// hands what it finds at an address to found, if not nil. It stops early,
// reporting overtaken, when a unit answers that a newer epoch sealed it.
func (c *Client) fillAll(ctx context.Context, p *projection.Projection, addrs []storage.Address, found func(storage.Address, []byte)) (overtaken bool, err error) {
	for _, a := range addrs {
		data, err := c.fillSealed(ctx, p, a)
		if errors.As(err, new(*storage.SealedError)) {
			return true, nil
		}
		if err != nil {
			return false, fmt.Errorf("filling %d: %w", a, err)
		}
		if data != nil && found != nil {
			found(a, data)
		}
	}
	return false, nil
}

// headlessGap returns the addresses of [written, tail) in the open segment
// of cur that lie in a stripe whose head the seal did not reach.
func headlessGap(cur *projection.Projection, seal sealed) []storage.Address {
	if len(seal.headless) == 0 {
		return nil
	}
	open := cur.Segments[len(cur.Segments)-1]
	k := storage.Address(len(open.Stripes))
	var gap []storage.Address
	for a := max(seal.written, open.Start); a < seal.tail; a++ {
		if slices.Contains(seal.headless, int((a-open.Start)%k)) {
			gap = append(gap, a)
		}
	}
	return gap
}

// incarnation returns the incarnation of chosen's sequencer to bootstrap:
// the one the seal reached, if it is that node; else (a new sequencer, or
// one the seal missed) it seals that node at epoch now and takes its
// answer. Its tail and streams need no merging: Bootstrap never lowers the
// tail and keeps the streams it knows.
func (c *Client) incarnation(ctx context.Context, cur, chosen *projection.Projection, seal sealed, epoch storage.Epoch) (uint64, error) {
	if chosen.Sequencer == cur.Sequencer && seal.seqAnswered {
		return seal.seqInc, nil
	}
	seq := transport.SequencerClient{Caller: hopCaller{c: c}, Node: chosen.Sequencer}
	var res transport.SealResult
	err := c.retry(ctx, func() (err error) {
		res, err = seq.Seal(ctx, epoch)
		return err
	})
	return res.Incarnation, err
}

// nextProjection computes the projection of epoch from cur and what the
// seal found: change's (nil keeps the layout), with every blank unit that
// may rejoin taken out of the chains whose data it held. It returns those
// units too.
func (c *Client) nextProjection(cur *projection.Projection, seal sealed, epoch storage.Epoch, change Change) (*projection.Projection, []projection.NodeID, error) {
	next := cur.Clone()
	if change != nil {
		var err error
		if next, err = change(cur.Clone(), seal.tail); err != nil {
			return nil, nil, err
		}
	}
	var blanks []projection.NodeID // blank units that may rejoin
	for _, node := range seal.blank {
		if !rejoinable(cur, node) {
			c.log.Warn("seal: unit lost its data and is the only replica of a chain", "node", node)
			continue
		}
		blanks = append(blanks, node)
		var err error
		if next, err = ReplaceUnit(node, node)(next, seal.tail); err != nil {
			return nil, nil, err
		}
	}
	next.Epoch = epoch
	next.Proposal = c.env.Rand().Uint64() | 1 // NB: see Projection.Proposal
	if !seal.seqAnswered {
		// NB: the tail comes from the units alone: it may lie below tails
		// the old sequencer reported. Readers past it must know.
		next.Resets = append(slices.Clone(cur.Resets), projection.Reset{Epoch: epoch, Tail: seal.tail})
		if len(next.Resets) > projection.MaxResets {
			next.Resets = next.Resets[len(next.Resets)-projection.MaxResets:]
		}
	}
	if err := projection.ValidateNext(cur, next); err != nil {
		return nil, nil, err
	}
	return next, blanks, nil
}

// joinBlanks tells every blank unit that chosen places only in its open
// segment, above the tail, to join at epoch.
func (c *Client) joinBlanks(ctx context.Context, chosen *projection.Projection, seal sealed, blanks []projection.NodeID, epoch storage.Epoch) {
	for _, node := range blanks {
		// NB: a blank unit may have held writes no reached replica shows
		// (a head's uncommitted ones), at any address handed out. Only a
		// tail that covers every token, which needs the sequencer's
		// answer, puts all of them below the new open segment.
		if !seal.seqAnswered || !joinable(chosen, node, seal.tail) {
			continue
		}
		u := transport.UnitClient{Caller: hopCaller{c: c}, Node: node}
		// NB: a join that fails leaves the unit blank; the next client
		// that meets it reconfigures again.
		if err := c.retryN(ctx, 2, func() error { return u.Join(ctx, epoch) }); err != nil {
			c.log.Debug("blank unit did not join", "node", node, "epoch", epoch, "err", err)
		} else {
			c.log.Info("blank unit joined", "node", node, "epoch", epoch)
		}
	}
}

// latest fetches the newest committed projection from the layout servers
// and installs it.
func (c *Client) latest(ctx context.Context) (*projection.Projection, error) {
	best, _ := c.newestLayout(ctx, func(ctx context.Context, node projection.NodeID) (*projection.Projection, error) {
		return transport.LayoutClient{Caller: hopCaller{c: c}, Node: node}.Get(ctx)
	})
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if best == nil {
		return nil, ErrNoQuorum
	}
	return c.install(best), nil
}

// newestLayout asks every layout server of the client's projection at
// once, with get, and returns the newest projection any answered with and
// how many answered.
func (c *Client) newestLayout(ctx context.Context, get func(context.Context, projection.NodeID) (*projection.Projection, error)) (*projection.Projection, int) {
	p := c.projection()
	got := make([]*projection.Projection, len(p.Layout))
	c.each("get layout", len(p.Layout), func(i int) { got[i], _ = get(ctx, p.Layout[i]) })
	var best *projection.Projection
	reached := 0
	for _, g := range got {
		if g == nil {
			continue
		}
		reached++
		if best == nil || g.Epoch > best.Epoch {
			best = g
		}
	}
	return best, reached
}

// errNoMark reports a sealed sequencer that holds no state it can vouch for.
var errNoMark = errors.New("corfu: sequencer restarted without a reservation mark")

// sealed is what sealing an epoch found.
type sealed struct {
	tail    storage.Address        // above every address written and every token handed out
	written storage.Address        // above every address a reached replica holds
	tails   []sequencer.StreamTail // the streams' recent addresses, if seqOK
	seqOK   bool                   // the sequencer answered with its state intact
	lost    bool                   // the sequencer answered, having restarted from its reservation mark
	blank   []projection.NodeID    // units that answered storage.ErrBlank: they lost their data
	// seqAnswered says the sequencer answered, so that tail is above every
	// address it ever handed out.
	seqAnswered bool
	seqInc      uint64 // the incarnation of the sequencer that answered
	// headless lists the open segment's stripes whose head (its first
	// replica not blank) did not answer: only there may an entry lie at or
	// above written.
	headless []int
}

// seal seals every unit of cur and its sequencer at epoch, and reports the
// log's tail.
func (c *Client) seal(ctx context.Context, cur *projection.Projection, epoch storage.Epoch) (sealed, error) {
	localTails := map[projection.NodeID]storage.Address{}
	var blank []projection.NodeID
	var newer *storage.SealedError
	units := cur.Units()
	ts := make([]storage.Address, len(units))
	errs := make([]error, len(units))
	seq := transport.SequencerClient{Caller: hopCaller{c: c}, Node: cur.Sequencer}
	var res transport.SealResult
	var seqErr error
	// NB: every unit at once, and the sequencer beside them: one that does
	// not answer costs its timeout once, not once per node after it. The
	// order does not matter: the tail is taken once all of them are
	// sealed, and each seal only fences.
	c.each("seal", len(units)+1, func(i int) {
		if i == len(units) {
			res, seqErr = sealOne(ctx, c, cur.Sequencer, func(ctx context.Context) (transport.SealResult, error) {
				return seq.Seal(ctx, epoch)
			})
			return
		}
		u := transport.UnitClient{Caller: hopCaller{c: c}, Node: units[i]}
		ts[i], errs[i] = sealOne(ctx, c, units[i], func(ctx context.Context) (storage.Address, error) {
			return u.Seal(ctx, epoch)
		})
	})
	for i, node := range units {
		t, err := ts[i], errs[i]
		var se *storage.SealedError
		if errors.As(err, &se) && (newer == nil || se.Epoch > newer.Epoch) {
			newer = se
		}
		if errors.Is(err, storage.ErrBlank) {
			blank = append(blank, node)
		}
		if err != nil {
			if ctx.Err() != nil {
				return sealed{}, ctx.Err()
			}
			c.log.Debug("seal: unit did not answer", "node", node, "err", err)
			continue
		}
		localTails[node] = t
	}
	if newer != nil {
		return sealed{}, newer
	}
	var tail storage.Address
	open := len(cur.Segments) - 1
	headReached := true // every chain head of the open segment answered (the first replica not blank)
	var headless []int  // the open segment's stripes whose head did not answer
	for si, seg := range cur.Segments {
		for ci, chain := range seg.Stripes {
			reached := false
			if si == open {
				// NB: the head holds every write any replica holds. A
				// blank head holds nothing (whatever only it took is
				// gone), so the first replica after the blank ones is
				// the bound instead.
				first := slices.IndexFunc(chain, func(n projection.NodeID) bool { return !slices.Contains(blank, n) })
				if first >= 0 {
					_, ok := localTails[chain[first]]
					headReached = headReached && ok
					if !ok {
						headless = append(headless, ci)
					}
				}
			}
			for _, node := range chain {
				lt, ok := localTails[node]
				if !ok {
					continue
				}
				reached = true
				// NB: a node's local tail covers its whole local space;
				// only the part inside this segment maps back here.
				if lt <= seg.Base {
					continue
				}
				g, err := cur.Global(si, ci, lt-1)
				if err == nil {
					tail = max(tail, g+1)
				} else if seg.End != 0 {
					tail = max(tail, seg.End)
				}
			}
			// CORFU: the head of a chain holds every write any replica of
			// it holds, but any one replica sealed stops the chain's writes
			// from completing; the open segment needs one per chain for
			// its tail to be known.
			if si == open && !reached {
				return sealed{}, fmt.Errorf("%w: stripe %d (%v)", ErrSealIncomplete, ci, chain)
			}
		}
	}
	tail = max(tail, cur.Segments[open].Start)
	err := seqErr
	if err == nil && res.NoMark {
		// NB: a sequencer that came back with no reservation mark answers,
		// but vouches for nothing: its tail and its streams are empty
		// whatever it handed out before. Only the units bound the log.
		c.log.Debug("seal: sequencer holds no state", "node", cur.Sequencer)
		err = errNoMark
	}
	if err != nil {
		if ctx.Err() != nil {
			return sealed{}, ctx.Err()
		}
		c.log.Debug("seal: sequencer did not answer", "node", cur.Sequencer, "err", err)
		if !headReached {
			// NB: without the sequencer's tail, only the heads bound what
			// was written: a head that took a write nobody else has would
			// hold data at a local address the next segment may reuse, and
			// a reader there would complete that stale entry at another
			// address. Better no reconfiguration than that.
			return sealed{}, fmt.Errorf("%w: neither the sequencer nor every chain head of the open segment answered", ErrSealIncomplete)
		}
		return sealed{tail: tail, written: tail, blank: blank}, nil
	}
	return sealed{tail: max(tail, res.Tail), written: tail, tails: res.Tails, seqOK: !res.Lost, lost: res.Lost, blank: blank,
		seqAnswered: true, seqInc: res.Incarnation, headless: headless}, nil
}

// sealOne seals node with seal, tried twice, and returns its answer. A node
// the caller's probes found dead (suspectOf) is sealed all the same (if it
// is only cut off from the caller, that fences it), but not waited for:
// the seal goes on as for any node that does not answer.
func sealOne[T any](ctx context.Context, c *Client, node projection.NodeID, seal func(context.Context) (T, error)) (T, error) {
	var v T
	if d, ok := suspectOf(ctx, node); ok {
		c.env.Go("seal suspect", func() {
			sctx, cancel := c.env.WithTimeout(context.Background(), d)
			defer cancel()
			_, _ = seal(sctx)
		})
		return v, fmt.Errorf("%w: %s is suspected", errHopTimeout, node)
	}
	err := c.retryN(ctx, 2, func() (err error) {
		v, err = seal(ctx)
		return err
	})
	return v, err
}

// agree gets next accepted by a majority of cur's layout servers for its
// epoch and commits it to all of them. If another proposal was accepted
// first, agree completes that one instead (Paxos) and returns it.
func (c *Client) agree(ctx context.Context, cur, next *projection.Projection) (*projection.Projection, error) {
	servers := cur.Layout
	quorum := len(servers)/2 + 1
	layout := func(i int) transport.LayoutClient {
		return transport.LayoutClient{Caller: hopCaller{c: c}, Node: servers[i]}
	}
	// Bring lagging layout servers up to cur first (cur is committed): they
	// then refuse proposals made from older projections. NB: after the
	// seal; sent beside the seals (2221d61, ad91bcf) it saves a round
	// trip. The S10 it was backed out for (seed 52040696) was the
	// simulator's standby sequencer bootstrapped at its start, fixed in
	// 638e8fc; it may go back beside the seals after a sweep of its own.
	// Every phase asks all the servers at once, and looks at their
	// answers in the servers' order.
	c.commitCur(ctx, cur)
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// NB: a rank is a round in the high bits and a random tag in the low
	// ones, so two proposers rarely tie; a rejection tells the promised
	// rank, and the next round outbids it.
	var round uint64
	for attempt := 0; attempt <= c.cfg.MaxRetries; attempt++ {
		round++
		rank := round<<rankTagBits | c.env.Rand().Uint64()&(1<<rankTagBits-1)
		promises := 0
		var acceptedRank uint64
		value := next
		ranks := make([]uint64, len(servers))
		accs := make([]*projection.Projection, len(servers))
		errs := make([]error, len(servers))
		c.each("prepare", len(servers), func(i int) {
			ranks[i], accs[i], errs[i] = layout(i).Prepare(ctx, next.Epoch, rank)
		})
		for i := range servers {
			r, acc, err := ranks[i], accs[i], errs[i]
			if errors.Is(err, projection.ErrStaleEpoch) {
				// Someone committed this epoch already: adopt it.
				won, lerr := c.latest(ctx)
				if lerr != nil {
					return nil, lerr
				}
				if won.Epoch >= next.Epoch {
					return won, nil
				}
				continue
			}
			if errors.Is(err, projection.ErrRejected) {
				round = max(round, r>>rankTagBits)
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				continue
			}
			promises++
			// NB: a value accepted by a proposer that worked from an older
			// projection than cur (it reached only lagging layout servers)
			// is no successor of cur: it was never chosen, since the servers
			// that know cur refuse it, and adopting it would wedge the epoch.
			if acc != nil && r > acceptedRank && projection.ValidateNext(cur, acc) == nil && !c.mut.ProposerIgnoresAccepted {
				acceptedRank, value = r, acc
			}
		}
		if promises >= quorum {
			c.each("propose", len(servers), func(i int) { errs[i] = layout(i).Propose(ctx, next.Epoch, rank, value) })
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			accepts := 0
			for _, err := range errs {
				if err == nil {
					accepts++
				}
			}
			if accepts >= quorum {
				c.each("commit", len(servers), func(i int) {
					_ = c.retryN(ctx, 2, func() error { return layout(i).Commit(ctx, value) })
				})
				return value, nil
			}
		}
		if err := c.env.Sleep(ctx, c.backoff(attempt)); err != nil {
			return nil, err
		}
	}
	return nil, ErrNoQuorum
}

// commitCur commits cur, a committed projection, to every one of its
// layout servers, at once.
func (c *Client) commitCur(ctx context.Context, cur *projection.Projection) {
	c.each("commit", len(cur.Layout), func(i int) {
		_ = transport.LayoutClient{Caller: hopCaller{c: c}, Node: cur.Layout[i]}.Commit(ctx, cur)
	})
}

// rankTagBits is the width of a Paxos rank's random tag.
const rankTagBits = 24

// streamScan is what scanning the log for stream tails found.
type streamScan struct {
	k     int
	found map[StreamID][]storage.Address // each stream's addresses, newest first, at most k
	// deferred lists, newest first, the addresses the scan left for after
	// the commit: a hole, or an entry the chain's last replica lacks.
	deferred []storage.Address
}

// add records the entry at addr, stored as data, in its streams.
func (s *streamScan) add(addr storage.Address, data []byte) {
	e, err := decodeEntry(addr, data)
	if err != nil {
		return
	}
	for _, id := range e.Streams {
		addrs := s.found[id]
		i, _ := slices.BinarySearchFunc(addrs, addr, func(a, b storage.Address) int { return cmp.Compare(b, a) })
		if i < len(addrs) && addrs[i] == addr {
			continue
		}
		addrs = slices.Insert(addrs, i, addr)
		if len(addrs) > s.k {
			addrs = addrs[:s.k]
		}
		s.found[id] = addrs
	}
}

// tails returns the streams' tails, sorted by stream.
func (s *streamScan) tails() []sequencer.StreamTail {
	ids := make([]StreamID, 0, len(s.found))
	for id := range s.found {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	out := make([]sequencer.StreamTail, 0, len(ids))
	for _, id := range ids {
		out = append(out, sequencer.StreamTail{Stream: id, Addrs: slices.Clone(s.found[id])})
	}
	return out
}

// scanStreamTails rebuilds every stream's recent addresses by reading the
// log backwards from tail under p, the sealed projection. It reads the
// whole untrimmed log: the price of a sequencer lost with its state.
//
// It writes no data (see scanAt): the epoch is not agreed yet, and a
// racing reconfiguration of the same epoch may win it with a lower tail
// (its seal reached a unit before this one's write would have, or after a
// unit that held the entry came back blank) and hand the address out
// afresh. An entry only its chain's first surviving replica holds counts
// in its streams, and it and the holes the scan may not fill are left for
// after the commit (streamScan.deferred), when the winner completes or
// fills them under the committed projection.
func (c *Client) scanStreamTails(ctx context.Context, p *projection.Projection, tail storage.Address, blank []projection.NodeID) (*streamScan, error) {
	s := &streamScan{k: c.backpointers(), found: map[StreamID][]storage.Address{}}
	start := p.Segments[0].Start
	// NB: scanWindow addresses at once, looked at newest first: what the
	// scan finds does not depend on which read came back first.
	type scanned struct {
		data    []byte
		settled bool
		err     error
	}
	got := make([]scanned, scanWindow)
	for hi := tail; hi > start; {
		n := int(min(storage.Address(scanWindow), hi-start))
		c.each("scan", n, func(i int) {
			loc, err := p.Locate(hi - 1 - storage.Address(i))
			if err != nil {
				got[i] = scanned{err: err}
				return
			}
			data, settled, err := c.scanAt(ctx, p, loc, blank)
			got[i] = scanned{data, settled, err}
		})
		for i := range n {
			addr, r := hi-1-storage.Address(i), got[i]
			if errors.Is(r.err, storage.ErrTrimmed) && c.mut.ScanStopsAtTrim {
				return s, nil // mutant: what lies below a trimmed address drops out
			}
			if errors.Is(r.err, storage.ErrTrimmed) || errors.Is(r.err, storage.ErrJunk) {
				// NB: a trim may be sparse: stream entries may lie below it.
				continue
			}
			if r.err != nil {
				return nil, r.err
			}
			if !r.settled {
				s.deferred = append(s.deferred, addr)
			}
			if r.data != nil {
				s.add(addr, r.data)
			}
		}
		hi -= storage.Address(n)
	}
	return s, nil
}

// scanWindow is how many addresses scanStreamTails reads at once.
const scanWindow = 256

// scanAt reads loc for scanStreamTails from the replicas of its chain that
// are not blank, and writes no data: the last one's entry is settled; an
// entry only the first one holds is not (the winner completes it after the
// commit). Junk it does write: at an address a racing recovery hands out
// again, junk only sends the writer to a fresh token. So a hole in a chain
// with no blank unit is filled now (in one with a blank unit it is left
// for after the commit: the blank unit may have held, and lost, an entry
// there), and junk at the first replica is completed down the chain. A
// junk or trimmed address is its error, and no replica surviving is
// storage.ErrBlank.
func (c *Client) scanAt(ctx context.Context, p *projection.Projection, loc projection.Location, blank []projection.NodeID) (data []byte, settled bool, err error) {
	intact := !slices.ContainsFunc(loc.Chain, func(n projection.NodeID) bool { return slices.Contains(blank, n) })
	loc.Chain = slices.DeleteFunc(slices.Clone(loc.Chain), func(n projection.NodeID) bool { return slices.Contains(blank, n) })
	if len(loc.Chain) == 0 {
		return nil, false, storage.ErrBlank
	}
	data, err = c.unitRead(ctx, p, loc.Chain[len(loc.Chain)-1], loc.Local)
	if errors.Is(err, storage.ErrCorrupt) {
		// NB: the last replica stored a record there that fails its
		// checksum, so every replica before it took the write: one of
		// them says what it was. The fill after the commit repairs it.
		for i := len(loc.Chain) - 2; i >= 0; i-- {
			if d, rerr := c.unitRead(ctx, p, loc.Chain[i], loc.Local); rerr == nil || errors.Is(rerr, storage.ErrJunk) {
				return d, false, rerr
			}
		}
		return nil, false, nil
	}
	if !errors.Is(err, storage.ErrUnwritten) {
		return data, err == nil, err
	}
	head := loc.Chain[0]
	data, err = c.unitRead(ctx, p, head, loc.Local)
	if errors.Is(err, storage.ErrUnwritten) && len(loc.Chain) > 2 {
		// NB: a head that answers unwritten holds nothing a replica after
		// it holds, unless it lost the record (see restoreHead): then the
		// middle replica holds it, and no junk may go to the head. Not
		// settled: the fill after the commit writes it back at the head.
		if d, rerr := c.unitRead(ctx, p, loc.Chain[1], loc.Local); rerr == nil {
			return d, false, nil
		}
	}
	if errors.Is(err, storage.ErrUnwritten) && intact {
		err = c.unitDo(ctx, p, head, func(u transport.UnitClient) error { return u.Fill(ctx, p.Epoch, loc.Local) })
		if errors.Is(err, storage.ErrWritten) {
			data, err = c.unitRead(ctx, p, head, loc.Local) // a writer got there first
		} else if err == nil {
			err = storage.ErrJunk
		}
	}
	switch {
	case err == nil:
		return data, false, nil
	case errors.Is(err, storage.ErrJunk):
		_, err = c.fillChain(ctx, p, loc)
		return nil, false, err
	case errors.Is(err, storage.ErrUnwritten), errors.Is(err, storage.ErrCorrupt):
		// NB: a corrupt head: the fill after the commit repairs it, or
		// junk-fills a write that never got past it (fillSealed).
		return nil, false, nil
	}
	return nil, false, err
}

// fillSealed junk-fills addr, known to be below the tail, at once, under
// p, the projection a reconfiguration committed: never under a newer one,
// whose sequencer may hand addr out afresh (a unit sealed past p answers
// with a *storage.SealedError, which ends the fill). If addr holds data,
// the chain is completed instead and fillSealed returns the data; junk or a
// trim give nil and no error.
func (c *Client) fillSealed(ctx context.Context, p *projection.Projection, addr storage.Address) (data []byte, err error) {
	loc, err := p.Locate(addr)
	if err != nil {
		return nil, err
	}
	data, err = c.fillChainAs(ctx, p, loc, true)
	if errors.Is(err, storage.ErrJunk) || errors.Is(err, storage.ErrTrimmed) {
		return nil, nil
	}
	return data, err
}

// ReplaceUnit returns a Change that takes unit old out of the log: the open
// segment is closed at the tail, keeping its surviving replicas, and a new
// open segment starts at the tail with fresh in old's place (fresh may be
// empty: old then leaves the open segment's chain, if it keeps another
// replica). old is also dropped from every closed segment, except from a
// chain where it is the only replica; Rebuild gives those chains their
// replica count back.
func ReplaceUnit(old, fresh projection.NodeID) Change { return replaceUnit(old, fresh, 1) }

// MoveSequencer returns a Change that makes node the sequencer. Reconfigure
// bootstraps it above the old epoch's tail.
func MoveSequencer(node projection.NodeID) Change {
	return func(cur *projection.Projection, _ storage.Address) (*projection.Projection, error) {
		next := cur.Clone()
		next.Sequencer = node
		return next, nil
	}
}

// joinable reports whether a blank node may join p: p places it in no
// closed segment, so it is asked for nothing it held, and its open segment
// starts at or above tail, so nothing below the tail lies in it.
func joinable(p *projection.Projection, node projection.NodeID, tail storage.Address) bool {
	open := len(p.Segments) - 1
	if p.Segments[open].Start < tail {
		return false
	}
	for _, seg := range p.Segments[:open] {
		for _, chain := range seg.Stripes {
			if slices.Contains(chain, node) {
				return false
			}
		}
	}
	return true
}

// localEnd returns one past the highest local address any closed segment
// of p uses on any node: a safe base for a new segment.
func localEnd(p *projection.Projection) storage.Address {
	var end storage.Address
	for _, seg := range p.Segments {
		if seg.End == 0 {
			continue
		}
		k := storage.Address(len(seg.Stripes))
		end = max(end, seg.Base+(seg.End-seg.Start+k-1)/k)
	}
	return end
}
