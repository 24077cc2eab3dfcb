package corfu

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// Defaults of DetectorConfig.
const (
	DefaultProbeInterval = 20 * time.Millisecond
	DefaultProbeTimeout  = 20 * time.Millisecond
	DefaultProbeMisses   = 3
)

// DetectorConfig configures a Detector. Zero fields take the defaults.
type DetectorConfig struct {
	// Interval is the pause between two probe rounds. Default
	// DefaultProbeInterval.
	Interval time.Duration
	// Timeout bounds one probe. Default DefaultProbeTimeout.
	Timeout time.Duration
	// Misses is how many probe rounds in a row a node must miss before it
	// is suspected and replaced: the detection timeout is about Misses x
	// (Interval + Timeout). Default DefaultProbeMisses.
	Misses int
	// Spares are storage units outside the projection that may replace a
	// failed one, in order of preference. A unit the detector replaced
	// becomes a spare once it answers again.
	Spares []projection.NodeID
	// Standbys are sequencer nodes that may take over from a failed
	// sequencer, in order of preference. A sequencer the detector moved
	// away from becomes a standby once it answers again.
	Standbys []projection.NodeID
	// Replicas is the replica count the detector keeps every chain at:
	// it rebuilds closed chains with fewer, and grows open ones with
	// spares. Default: the longest chain of the projection's open segment
	// when the detector starts.
	Replicas int
	// MinReplicas is the fewest replicas a chain keeps when a unit of it
	// is replaced: with no spare to take its place, a failed unit leaves
	// an open chain only if that keeps MinReplicas others (appends to the
	// chain wait for it until then), and a replaced unit stays in a
	// closed chain that would otherwise keep fewer (readers of that chain
	// then wait for it to come back) until a rebuild has given the chain
	// others. Default 1: a failed unit leaves every chain that keeps
	// another replica, trading redundancy for availability.
	MinReplicas int
	// Scrub is how many addresses the detector scrubs (Client.Scrub) in
	// each round it has nothing else to do, walking the log from its start
	// (or trim mark) to the tail and round again: every replica's record
	// is read, and one that fails its checksum is repaired from another.
	// Default 0: no scrubbing.
	Scrub int
	// Confirm is how many detectors must suspect a node before this one
	// takes it out (replaces or drops a unit, moves the sequencer away):
	// with more than one detector watching a log from different places,
	// one that lost its own links to a node does not act on that alone.
	// Each round, a detector with Confirm above one posts its suspects to
	// the layout servers (transport.Board) and reads the others'. Only
	// detectors still posting count: with fewer of them than Confirm, all
	// that report must agree, so a log whose other detectors died still
	// heals. Detectors that confirm each other need distinct Names.
	// Default 1: no confirmation.
	Confirm int
	// Name names the detector on the layout servers' boards (Confirm).
	// Default: the client's Writer, in hex.
	Name string
	// OnEvent, if set, is called with each thing the detector does, on the
	// detector's task.
	OnEvent func(DetectorEvent)
}

// DetectorEvent is one thing a Detector did: suspected a node, replaced a
// unit, moved the sequencer, grew or rebuilt chains, or failed to.
type DetectorEvent struct {
	At     time.Time         // when it happened, by the client's Env
	Kind   string            // "suspect", "replace", "move", "rejoin", "grow", "rebuild", "drop", "scrub"
	Node   projection.NodeID // the node suspected, replaced or moved away from
	Fresh  projection.NodeID // the node that took over, if any
	Epoch  storage.Epoch     // the epoch committed, if any
	Err    error             // why it failed, if it did
	Detail string            // more, for logs
}

// Detector watches the nodes of a log and heals it: it probes each node
// every Interval, suspects one that missed Misses probes in a row, and
// replaces a suspected unit with a spare (or, with none, takes it out of a
// chain that keeps another replica), moves a suspected sequencer to a
// standby, lets a unit that came back blank (its data lost) rejoin once it
// stayed blank for two rounds of one epoch, rebuilds the closed chains
// that lost replicas, and grows the open segment's short chains with
// spares, each through a reconfiguration of its Client. It does at most
// one of these per round, so epoch changes stay bounded by the failures it
// sees.
//
// A detector acts only when it reaches a majority of layout servers and
// suspects fewer than half of the nodes it probes: a detector on the
// minority side of a partition, which sees most nodes gone, does nothing
// (and could not commit a projection if it tried).
//
// Several detectors may watch one log from different places; with
// DetectorConfig.Confirm, each takes a node out only once others suspect
// it too, so a detector that lost its own links to a node (an asymmetric
// partition) does not remove a node the rest of the cluster still reaches.
//
// It runs on its Client's Env, so the simulator runs it like any client. It
// is not safe for concurrent use: one task runs it (see Run).
type Detector struct {
	c   *Client
	cfg DetectorConfig

	misses  map[projection.NodeID]int      // consecutive probes missed; looked up, never iterated
	blank   map[projection.NodeID]blankRun // answering its probes with storage.ErrBlank; looked up only
	refused map[Join]bool                  // joins a rebuild refused (ErrRebuildConflict); looked up only
	retired []projection.NodeID            // units replaced, in order
	movedOf []projection.NodeID            // sequencers moved away from, in order

	tail      storage.Address // the sequencer's tail at its last probe
	scrubNext storage.Address // where the next scrub starts (Scrub)

	name  string     // on the layout servers' boards (Confirm)
	inc   uint64     // this detector's incarnation, on its reports: its client's Writer (Confirm)
	round uint64     // rounds reported (Confirm)
	peers []peerView // the other detectors' reports, in the order first seen (Confirm)
}

// NewDetector returns a Detector that heals the log c works on.
func NewDetector(c *Client, cfg DetectorConfig) *Detector {
	setDefault(&cfg.Interval, DefaultProbeInterval)
	setDefault(&cfg.Timeout, DefaultProbeTimeout)
	setDefault(&cfg.Misses, DefaultProbeMisses)
	setDefault(&cfg.MinReplicas, 1)
	if cfg.Replicas <= 0 {
		open := c.projection().Segments[len(c.projection().Segments)-1]
		for _, chain := range open.Stripes {
			cfg.Replicas = max(cfg.Replicas, len(chain))
		}
	}
	name := cfg.Name
	if name == "" {
		name = fmt.Sprintf("%016x", uint64(c.cfg.Writer))
	}
	return &Detector{c: c, cfg: cfg, name: name, inc: uint64(c.cfg.Writer), misses: map[projection.NodeID]int{}, blank: map[projection.NodeID]blankRun{}, refused: map[Join]bool{}}
}

// Run probes and heals until ctx ends, and returns ctx's error.
func (d *Detector) Run(ctx context.Context) error {
	for {
		d.Step(ctx)
		if err := d.c.env.Sleep(ctx, d.cfg.Interval); err != nil {
			return err
		}
	}
}

// Step runs one round: it fetches the projection, probes every node and
// takes at most one action. It reports whether it committed a new epoch.
func (d *Detector) Step(ctx context.Context) bool {
	// NB: the layout servers and the nodes of the projection in hand are
	// asked at once; a round costs one probe timeout.
	cached := d.c.projection()
	nodes := d.watched(cached)
	ups := make([]bool, len(nodes))
	blanks := make([]bool, len(nodes))
	tails := make([]storage.Address, len(nodes))
	var p *projection.Projection
	var reached int
	d.c.each("probe round", 2, func(i int) {
		if i == 0 {
			p, reached = d.fetch(ctx)
			return
		}
		d.c.each("probe", len(nodes), func(i int) { ups[i], blanks[i], tails[i] = d.probe(ctx, cached, nodes[i]) })
	})
	if p == nil || reached < len(p.Layout)/2+1 {
		return false // NB: maybe the minority side of a partition
	}
	suspects := 0
	for i, n := range nodes {
		if ups[i] {
			d.misses[n] = 0
			d.blank[n] = d.blank[n].next(blanks[i], cached.Epoch)
			if n == cached.Sequencer {
				d.tail = max(d.tail, tails[i])
			}
			continue
		}
		d.misses[n]++
		if d.misses[n] == d.cfg.Misses {
			d.emit(DetectorEvent{Kind: "suspect", Node: n})
		}
		if d.misses[n] >= d.cfg.Misses {
			suspects++
		}
	}
	if d.cfg.Confirm > 1 {
		// NB: after the probes, so that the report says what this round
		// found; it costs one round trip to the layout servers.
		d.report(ctx, p, nodes)
	}
	if ctx.Err() != nil || 2*suspects >= len(nodes) {
		return false
	}
	return d.act(ctx, p)
}

// suspected reports whether n missed enough probes in a row.
func (d *Detector) suspected(n projection.NodeID) bool { return d.misses[n] >= d.cfg.Misses }

// alive reports whether n answered its last probe, and not as a blank
// unit.
func (d *Detector) alive(n projection.NodeID) bool { return d.misses[n] == 0 && d.blank[n].rounds == 0 }

// blankRun counts the probe rounds in a row in which a unit answered that
// it lost its data (storage.ErrBlank), all under one epoch.
type blankRun struct {
	epoch  storage.Epoch
	rounds int
}

// next returns the run after a round that probed under epoch and found the
// unit blank or not.
func (b blankRun) next(blank bool, epoch storage.Epoch) blankRun {
	switch {
	case !blank:
		return blankRun{}
	case b.rounds == 0 || b.epoch != epoch:
		return blankRun{epoch: epoch, rounds: 1}
	}
	return blankRun{epoch: epoch, rounds: b.rounds + 1}
}

// blankRounds is how many probe rounds in a row, under one epoch, a unit
// must answer as blank before the detector reconfigures to let it rejoin:
// the reconfiguration that committed an epoch lets its blank units join as
// its last step, and a round that saw the unit just before that join must
// not seal the next epoch under it (which would refuse the join).
const blankRounds = 2

// othersHold reports whether every chain of p that holds n has another
// replica that is alive: taking n out then loses nothing, whatever n held.
func (d *Detector) othersHold(p *projection.Projection, n projection.NodeID) bool {
	for _, seg := range p.Segments {
		for _, chain := range seg.Stripes {
			if slices.Contains(chain, n) && !slices.ContainsFunc(chain, func(m projection.NodeID) bool { return m != n && d.alive(m) }) {
				return false
			}
		}
	}
	return true
}

// act takes the most urgent action p calls for, if any.
func (d *Detector) act(ctx context.Context, p *projection.Projection) bool {
	if d.confirmed(p.Sequencer) {
		if to := d.pick(d.standbys(p)); to != "" {
			return d.reconfigure(ctx, "move", p.Sequencer, to, MoveSequencer(to))
		}
	}
	open := p.Segments[len(p.Segments)-1]
	for _, chain := range open.Stripes {
		for _, n := range chain {
			if !d.confirmed(n) {
				continue
			}
			fresh := d.pick(d.spares(p))
			if fresh == "" && len(chain)-1 < max(d.cfg.MinReplicas, 1) || !d.othersHold(p, n) {
				// NB: nothing to replace it with, nor to go on without
				// it; or it may hold the last copy of something.
				continue
			}
			return d.reconfigure(ctx, "replace", n, fresh, replaceUnit(n, fresh, d.cfg.MinReplicas))
		}
	}
	for _, n := range p.Units() {
		if b := d.blank[n]; b.rounds >= blankRounds && b.epoch == p.Epoch && rejoinable(p, n) && d.othersHold(p, n) && d.alive(p.Sequencer) {
			// NB: the reconfiguration takes the unit out of the chains
			// whose data it lost and lets it join the new open segment
			// (see Reconfigure), or, if the sequencer did not answer its
			// seal, bootstraps it so that the next one can. With no live
			// replica beside it in some chain, the seal could not bound
			// that chain's tail; with the sequencer not answering, the
			// unit could not join (and a reconfiguration every other round
			// would only pile up epochs): nothing to try.
			return d.reconfigure(ctx, "rejoin", n, n, nil)
		}
	}
	for _, chain := range open.Stripes {
		if len(chain) < d.cfg.Replicas {
			if fresh := d.pick(d.spares(p)); fresh != "" {
				return d.reconfigure(ctx, "grow", "", fresh, growChain(chain[0], fresh))
			}
		}
	}
	var joins []Join
	for _, j := range ShortChains(p, d.cfg.Replicas) {
		if d.alive(j.Node) && !d.refused[j] {
			joins = append(joins, j)
		}
	}
	if len(joins) > 0 {
		np, err := d.c.Rebuild(d.withSuspects(ctx), joins)
		d.noteRefused(err)
		ev := DetectorEvent{Kind: "rebuild", Err: err, Detail: fmt.Sprint(joins)}
		if np != nil && np.Epoch > p.Epoch {
			ev.Epoch = np.Epoch
		}
		d.emit(ev)
		return ev.Epoch > 0
	}
	// NB: a replaced unit kept in closed chains (MinReplicas) leaves them
	// once a rebuild gave them enough others.
	for _, n := range p.Units() {
		if d.confirmed(n) && droppable(p, n, d.cfg.MinReplicas) && d.othersHold(p, n) {
			return d.reconfigure(ctx, "drop", n, "", replaceUnit(n, "", d.cfg.MinReplicas))
		}
	}
	d.scrub(ctx)
	return false
}

// scrub scrubs the next Scrub addresses below the tail (see
// DetectorConfig.Scrub), and reports what it found if it found damage.
func (d *Detector) scrub(ctx context.Context) {
	if d.cfg.Scrub <= 0 || d.tail == 0 {
		return
	}
	if d.scrubNext >= d.tail {
		d.scrubNext = 0 // NB: round again; Scrub skips what is trimmed
	}
	from := d.scrubNext
	to := min(from+storage.Address(d.cfg.Scrub), d.tail)
	res, err := d.c.Scrub(ctx, from, to)
	d.scrubNext = from + storage.Address(res.Checked)
	if res.Corrupt > 0 || err != nil {
		d.emit(DetectorEvent{Kind: "scrub", Err: err, Detail: fmt.Sprintf("[%d, %d): %d corrupt, %d repaired, unrepaired %v",
			from, to, res.Corrupt, res.Repaired, res.Unrepaired)})
	}
}

// reconfigure runs one reconfiguration for act and reports it.
func (d *Detector) reconfigure(ctx context.Context, kind string, node, fresh projection.NodeID, change Change) bool {
	p, err := d.c.Reconfigure(d.withSuspects(ctx), change)
	ev := DetectorEvent{Kind: kind, Node: node, Fresh: fresh, Err: err}
	if err == nil {
		ev.Epoch = p.Epoch
		switch kind {
		case "replace", "drop":
			d.retire(&d.retired, node)
		case "move":
			d.retire(&d.movedOf, node)
		}
	}
	d.emit(ev)
	return err == nil
}

// noteRefused remembers the joins err (from Rebuild) says conflict, so
// that they are not tried again: the unit holds other content there.
func (d *Detector) noteRefused(err error) {
	var errs []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	} else if err != nil {
		errs = []error{err}
	}
	for _, e := range errs {
		var re *RebuildError
		if errors.As(e, &re) && errors.Is(re, ErrRebuildConflict) {
			d.refused[re.Join] = true
		}
	}
}

// withSuspects returns ctx naming the suspected nodes for the seal of the
// reconfiguration it starts (see withSuspects): the detector has waited
// for them long enough.
func (d *Detector) withSuspects(ctx context.Context) context.Context {
	var nodes []projection.NodeID
	for _, n := range d.watched(d.c.projection()) {
		if d.suspected(n) {
			nodes = append(nodes, n)
		}
	}
	return withSuspects(ctx, nodes, d.cfg.Timeout)
}

// retire adds n to list once.
func (d *Detector) retire(list *[]projection.NodeID, n projection.NodeID) {
	if !slices.Contains(*list, n) {
		*list = append(*list, n)
	}
}

// spares returns the units that may join p: the configured spares, then
// the units the detector replaced, less those p uses.
func (d *Detector) spares(p *projection.Projection) []projection.NodeID {
	used := p.Units()
	var out []projection.NodeID
	for _, n := range slices.Concat(d.cfg.Spares, d.retired) {
		if !slices.Contains(used, n) && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// standbys returns the sequencer nodes that may take over from p's.
func (d *Detector) standbys(p *projection.Projection) []projection.NodeID {
	var out []projection.NodeID
	for _, n := range slices.Concat(d.cfg.Standbys, d.movedOf) {
		if n != p.Sequencer && !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// pick returns the first of nodes that answered its last probe, or "".
func (d *Detector) pick(nodes []projection.NodeID) projection.NodeID {
	for _, n := range nodes {
		if d.alive(n) {
			return n
		}
	}
	return ""
}

// watched returns every node the detector probes under p, in a fixed
// order: the units, the sequencer, the spares and the standbys.
func (d *Detector) watched(p *projection.Projection) []projection.NodeID {
	nodes := p.Units()
	for _, n := range slices.Concat([]projection.NodeID{p.Sequencer}, d.spares(p), d.standbys(p)) {
		if !slices.Contains(nodes, n) {
			nodes = append(nodes, n)
		}
	}
	return nodes
}

// fetch returns the newest projection a layout server holds (installing
// it) and how many layout servers answered.
func (d *Detector) fetch(ctx context.Context) (*projection.Projection, int) {
	best, reached := d.c.newestLayout(ctx, func(ctx context.Context, node projection.NodeID) (*projection.Projection, error) {
		pctx, cancel := d.c.env.WithTimeout(ctx, d.cfg.Timeout)
		defer cancel()
		return transport.LayoutClient{Caller: d.c.cfg.Transport, Node: node}.Get(pctx)
	})
	if best == nil {
		return d.c.projection(), reached
	}
	return d.c.install(best), reached
}

// probe reports whether node answered a harmless request within Timeout:
// a seal at p's epoch for a unit (which a unit at that epoch ignores, and
// one behind it is entitled to), a tail query for a sequencer. Any answer
// counts, refusals included: the node is up. blank reports a unit that
// answered that it lost its data (storage.ErrBlank): up, but holding
// nothing.
func (d *Detector) probe(ctx context.Context, p *projection.Projection, node projection.NodeID) (up, blank bool, tail storage.Address) {
	pctx, cancel := d.c.env.WithTimeout(ctx, d.cfg.Timeout)
	defer cancel()
	var err error
	if node == p.Sequencer || slices.Contains(d.standbys(p), node) {
		var tok sequencer.Token
		tok, err = transport.SequencerClient{Caller: d.c.cfg.Transport, Node: node}.Next(pctx, p.Epoch, 0, nil)
		tail = tok.Start
		if errors.Is(err, sequencer.ErrNotReady) {
			err = nil
		}
	} else {
		_, err = transport.UnitClient{Caller: d.c.cfg.Transport, Node: node}.Seal(pctx, p.Epoch)
	}
	return !unanswered(err), errors.Is(err, storage.ErrBlank), tail
}

// unanswered reports whether err says a request got no answer.
func unanswered(err error) bool {
	return err != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) ||
		errors.Is(err, transport.ErrUnreachable) || errors.Is(err, transport.ErrMalformed) || errors.Is(err, errHopTimeout))
}

// emit stamps ev and hands it to OnEvent, and to the log.
func (d *Detector) emit(ev DetectorEvent) {
	ev.At = d.c.env.Now()
	d.c.log.Info("detector", "kind", ev.Kind, "node", ev.Node, "fresh", ev.Fresh, "epoch", ev.Epoch, "err", ev.Err)
	if d.cfg.OnEvent != nil {
		d.cfg.OnEvent(ev)
	}
	d.c.hooks.onDetectorEvent(ev)
}

// droppable reports whether unit n, which is in no chain of p's open
// segment, may leave a closed chain of p that keeps at least min others.
func droppable(p *projection.Projection, n projection.NodeID, min int) bool {
	if inSegment(p.Segments[len(p.Segments)-1], n) {
		return false
	}
	for _, seg := range p.Segments[:len(p.Segments)-1] {
		for _, chain := range seg.Stripes {
			if slices.Contains(chain, n) && len(chain)-1 >= min {
				return true
			}
		}
	}
	return false
}

// replaceUnit is ReplaceUnit, where fresh may be "" (old leaves the open
// chain, which must keep another replica) and old stays in a closed chain
// that would keep fewer than min replicas without it.
func replaceUnit(old, fresh projection.NodeID, min int) Change {
	return func(cur *projection.Projection, tail storage.Address) (*projection.Projection, error) {
		next := cur.Clone()
		open := &next.Segments[len(next.Segments)-1]
		replaced := make([]projection.Chain, len(open.Stripes))
		for i, chain := range open.Stripes {
			nc := slices.Clone(chain)
			if fresh == "" && len(nc) > 1 {
				nc = slices.DeleteFunc(nc, func(n projection.NodeID) bool { return n == old })
			}
			for j, n := range nc {
				if n == old && fresh != "" {
					nc[j] = fresh
				}
			}
			replaced[i] = nc
		}
		// NB: old == fresh (a blank unit rejoining) reopens too: the unit
		// must start afresh above everything it held.
		if inSegment(*open, old) {
			reopen(next, tail, replaced)
		}
		for si := range next.Segments[:len(next.Segments)-1] {
			seg := &next.Segments[si]
			for ci, chain := range seg.Stripes {
				if kept := slices.DeleteFunc(slices.Clone(chain), func(n projection.NodeID) bool { return n == old }); len(kept) >= max(min, 1) {
					seg.Stripes[ci] = kept
				}
			}
		}
		return next, nil
	}
}

// growChain returns a Change that adds fresh to the end of the open
// segment's chain whose head is head.
func growChain(head, fresh projection.NodeID) Change {
	return func(cur *projection.Projection, tail storage.Address) (*projection.Projection, error) {
		next := cur.Clone()
		open := next.Segments[len(next.Segments)-1]
		grown := make([]projection.Chain, len(open.Stripes))
		for i, chain := range open.Stripes {
			grown[i] = slices.Clone(chain)
			if len(chain) > 0 && chain[0] == head && !slices.Contains(chain, fresh) {
				grown[i] = append(grown[i], fresh)
			}
		}
		reopen(next, tail, grown)
		return next, nil
	}
}

// reopen closes next's open segment at tail and opens a new one there with
// stripes (or, if the open segment holds nothing, gives it stripes).
func reopen(next *projection.Projection, tail storage.Address, stripes []projection.Chain) {
	open := &next.Segments[len(next.Segments)-1]
	if tail > open.Start {
		open.End = tail
		next.Segments = append(next.Segments, projection.Segment{Start: tail, Base: localEnd(next), Stripes: stripes})
		return
	}
	open.Stripes = stripes
}
