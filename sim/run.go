package sim

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// Workload is what the simulated clients do.
type Workload struct {
	Appenders int // clients appending; default 4
	Appends   int // appends per appender; default 50
	Readers   int // clients reading random addresses; default 2
	Reads     int // reads per reader; default 50
	FillOneIn int // one reader call in FillOneIn is a Fill of the newest address; default 10
	// ReplaceHeads makes the reconfiguring client replace chain heads
	// only, where uncommitted writes sit.
	ReplaceHeads bool
	// TrimOneIn, if positive, makes one reader call in TrimOneIn a prefix
	// trim of the older half of the log (as a checkpointing application
	// would); zero never trims.
	TrimOneIn int
	// ReadNewest makes readers read the newest address, whose write is
	// most likely still in flight, instead of a random one.
	ReadNewest bool
	Streams    int           // streams an append may join; default 3
	OpTimeout  time.Duration // bound on one client call; default 10s
	Think      time.Duration // the most a client pauses between calls; default 5ms
	// Reconfigs is how many reconfigurations a reconfiguring client runs
	// during the workload, each after a random pause of up to ReconfigGap:
	// a new epoch with the same layout, or a unit replaced by a spare (the
	// cluster's Spares). With faults, they run in the fault phase, and the
	// client runs one more after the heal, which must succeed (L2).
	Reconfigs   int
	ReconfigGap time.Duration // default 300ms
	// HealedAppends and HealedReads are the appends each appender and the
	// reads each reader make once the run has healed, after their Appends
	// and Reads and not before the heal: the liveness phase's workload
	// (L1, L3). Zero means none.
	HealedAppends int
	HealedReads   int
}

func (w *Workload) fill() {
	setDefault(&w.Appenders, 4)
	setDefault(&w.Appends, 50)
	setDefault(&w.Readers, 2)
	setDefault(&w.Reads, 50)
	setDefault(&w.FillOneIn, 10)
	setDefault(&w.Streams, 3)
	setDefault(&w.OpTimeout, 10*time.Second)
	setDefault(&w.Think, 5*time.Millisecond)
	setDefault(&w.ReconfigGap, 300*time.Millisecond)
}

// LivenessConfig tunes the liveness checks (see LivenessBounds); zero
// fields take defaults derived from the workload.
type LivenessConfig struct {
	AppendBound     time.Duration // L1 T_append; default Workload.OpTimeout
	FillBound       time.Duration // L3 T_fill; default Workload.OpTimeout
	MaxEpochChanges int           // L2; default 2 per client, plus 4
}

// Options configure one simulated run. All of it is derived from Seed by
// Swarm; tests may set fields by hand. It prints in full with %+v.
type Options struct {
	Seed     uint64
	Cluster  ClusterConfig
	Workload Workload
	Latency  time.Duration // one-way network delay when healthy; default 1ms
	Client   corfu.Config  // client tuning (timeouts, retries); transport fields are set by the cluster
	MaxSteps int           // event budget; default 10M
	// Faults are injected in the fault phase, [0, Faults.Duration); then
	// the run heals and its liveness phase begins. The zero value injects
	// nothing.
	Faults   FaultConfig
	Liveness LivenessConfig
	// Mutants switches on deliberately broken protocol variants, which the
	// checker must catch; only the checker's own tests set it.
	Mutants mutant.Set
	// Trace, if set, receives every event the scheduler processes (see
	// Scheduler.Trace), for timelines. It does not change the run.
	Trace func(Event) `json:"-"`
}

// Expanded returns o with every default filled in, as Run uses it, so that
// %+v shows the whole configuration of a run. Run(o.Expanded()) is the
// same run as Run(o).
func (o Options) Expanded() Options {
	o.Workload.fill()
	setDefault(&o.Latency, time.Millisecond)
	setDefault(&o.MaxSteps, 10_000_000)
	setDefault(&o.Cluster.Layouts, 3)
	setDefault(&o.Cluster.Units, 6)
	setDefault(&o.Cluster.Replicas, 2)
	setDefault(&o.Cluster.Backpointers, sequencer.DefaultBackpointers)
	c := &o.Client
	setDefault(&c.MaxRetries, corfu.DefaultMaxRetries)
	setDefault(&c.RPCTimeout, corfu.DefaultRPCTimeout)
	setDefault(&c.HoleFillWait, corfu.DefaultHoleFillWait)
	setDefault(&c.Backoff, corfu.DefaultBackoff)
	setDefault(&c.MaxBackoff, corfu.DefaultMaxBackoff)
	setDefault(&c.FollowPoll, corfu.DefaultFollowPoll)
	setDefault(&c.MaxEntryBytes, corfu.DefaultMaxEntryBytes)
	lv := &o.Liveness
	setDefault(&lv.AppendBound, o.Workload.OpTimeout)
	setDefault(&lv.FillBound, o.Workload.OpTimeout)
	setDefault(&lv.MaxEpochChanges, 2*(o.clients()+1)+4)
	return o
}

// clients counts the workload's clients before the final pass.
func (o Options) clients() int {
	n := o.Workload.Appenders + o.Workload.Readers
	if o.Workload.Reconfigs > 0 {
		n++
	}
	return n
}

// Swarm derives a run's options from its seed (swarm testing): the
// cluster's and the workload's shape, the client's timeouts, the network's
// latency, and a random subset of the fault catalog with random rates and
// a random fault phase. About one seed in ten runs without faults. A sweep
// over seeds thus covers many configurations, and every kind of fault.
func Swarm(seed uint64) Options {
	r := rand.New(rand.NewPCG(seed, 0x5157a4d))
	ms := func(lo, hi int) time.Duration { return time.Duration(lo+r.IntN(hi-lo+1)) * time.Millisecond }
	o := Options{Seed: seed}
	o.Cluster.Replicas = 1 + r.IntN(3)
	o.Cluster.Units = o.Cluster.Replicas * (1 + r.IntN(3))
	o.Cluster.Backpointers = 1 + r.IntN(4)
	o.Workload.Appenders = 1 + r.IntN(4)
	o.Workload.Appends = 3 + r.IntN(18)
	o.Workload.Readers = 1 + r.IntN(3)
	o.Workload.Reads = 3 + r.IntN(18)
	o.Workload.Streams = 1 + r.IntN(4)
	o.Workload.Reconfigs = r.IntN(4)
	o.Workload.HealedAppends = 1 + r.IntN(3)
	o.Workload.HealedReads = 1 + r.IntN(3)
	o.Cluster.Spares = r.IntN(o.Workload.Reconfigs + 1)
	o.Latency = time.Duration(100+r.IntN(3000)) * time.Microsecond
	o.Client.RPCTimeout = []time.Duration{20, 50, 100, 250}[r.IntN(4)] * time.Millisecond
	o.Client.HoleFillWait = o.Client.RPCTimeout * time.Duration(4+r.IntN(8))
	o.Workload.Think = 5 * time.Millisecond
	// A third of the seeds trim: drawn from a stream of its own, so that
	// it shifts no other draw.
	if tr := rand.New(rand.NewPCG(seed, 0x7a1d)); tr.IntN(3) == 0 {
		o.Workload.TrimOneIn = 10 + tr.IntN(40)
	}
	if r.IntN(10) == 0 {
		return o.Expanded()
	}
	f := &o.Faults
	f.Duration = ms(1000, 6000)
	// Each kind is in with probability 1/3 (a third of a seed's faults,
	// on average, are of any one kind); rates and counts are drawn even
	// for kinds left out, so that one kind's presence never shifts the
	// others' draws.
	in := func() bool { return r.IntN(3) == 0 }
	latency := []string{
		"bimodal",
		fmt.Sprintf("exp:min=%dms,mean=%dms", r.IntN(31), 30+r.IntN(71)),
		"study",
		fmt.Sprintf("cloud+outage:%v-%v", f.Duration/4, f.Duration/2),
	}[r.IntN(4)]
	if in() {
		f.Latency = latency
	}
	if p := 0.3 * r.Float64(); in() {
		f.Drop = p
	}
	if p, late := 0.5*r.Float64(), ms(10, 2000); in() {
		f.Duplicate, f.DuplicateLate = p, late
	}
	if p := 0.2 * r.Float64(); in() {
		f.Reorder = p
	}
	counts := []*int{&f.Clogs, &f.Swizzles, &f.Partitions, &f.Asymmetric, &f.Bridges, &f.Flaps,
		&f.Blackouts, &f.Outages, &f.Pauses, &f.Crashes, &f.Clocks, &f.Reformats}
	for _, c := range counts {
		if n := 1 + r.IntN(3); in() {
			*c = n
		}
	}
	if f.Blackouts > 1 {
		f.Blackouts = 1
	}
	f.ClogMean = f.Duration / time.Duration(2+r.IntN(8))
	if mode := r.IntN(4); mode < 3 {
		f.PartitionMode = []string{PartitionUniformSize, PartitionUniformPartition, PartitionIsolateSingle}[mode]
	}
	f.ClockJump = ms(1, 10000)
	f.Seed = r.Uint64() // drawn last, so that it shifts no other draw
	// Spread the workload over the fault phase.
	n := max(o.Workload.Appends, o.Workload.Reads)
	o.Workload.Think = max(o.Workload.Think, 2*f.Duration/time.Duration(n))
	o.Workload.ReconfigGap = 2 * f.Duration / time.Duration(o.Workload.Reconfigs+1)
	return o.Expanded()
}

// Result is the outcome of one run.
type Result struct {
	Err        error       // the first violation, a stall or a task panic; nil if the run passed
	Violations []Violation // every invariant violation and warning, sorted
	// Linearizability is the porcupine check of the history; its Info can
	// be drawn with porcupine.VisualizePath(LogModel(), ...).
	Linearizability LinearizabilityResult
	History         *History
	TraceHash       uint64
	Steps           uint64
	VirtualTime     time.Duration
	Appends         int // acknowledged appends
	Reads           int // reads that returned an entry or junk
	Failed          int // operations that ended with an error, but for fills that found an entry
	Epochs          int // the newest epoch committed

	// Faults lists every fault injected, ordered by start, the
	// reconfigurations of the workload's reconfiguring client included
	// (kind FaultReconfig, Detail its outcome). FaultCounts counts them by
	// kind.
	Faults      []FaultRecord
	FaultCounts map[FaultKind]int
	// Heal is when the faults stopped: the start of the liveness phase.
	Heal time.Duration
	// EpochChanges counts the projections committed after the heal (L2).
	EpochChanges int
	// Unseen counts acknowledged appends that the final read-all pass did
	// not read back (L4); it is zero in a run that passes.
	Unseen int
	// Reconfigs and ReconfigsFailed count the reconfiguring client's
	// reconfigurations that succeeded and that failed (in the fault phase
	// a failure is expected).
	Reconfigs, ReconfigsFailed int
	Net                        Stats // what the network did with its messages
}

// linTimeout bounds the linearizability check of one run's history. A
// check that runs out of it is reported as a violation ("LinUnknown"), never
// as a pass.
const linTimeout = 30 * time.Second

// Run executes one simulated run: it builds the cluster, plans the faults,
// runs the workload's clients concurrently through the fault phase and,
// once every fault has healed, through the liveness phase; then a final
// client reads every address. It checks the history and the replicas'
// observations (Check, CheckLinearizable) and the liveness rules
// (CheckLiveness).
func Run(o Options) Result {
	o = o.Expanded()
	r, err := newRun(o)
	if err != nil {
		return Result{Err: err}
	}
	defer r.close()
	if err := r.planFaults(); err != nil {
		return Result{Err: err}
	}
	r.spawnWorkload()
	if err := r.s.Run(); err != nil {
		r.res.Err = err
	}
	if r.res.Err == nil {
		r.finalPass()
	}
	r.collect()
	r.check()
	return r.res
}

// run is the state of one Run: the simulated world, the history being
// recorded and the client tasks' bookkeeping.
type run struct {
	o      Options
	w      Workload
	s      *Scheduler
	net    *Network
	cl     *Cluster
	faults *Faults
	h      *History
	res    Result
	start  time.Time
	heal   time.Duration // when the fault phase ends, since start
	bg     context.Context

	taskErrs []error // the client tasks' errors, in order of failing
	running  int     // client tasks not finished
	client   int     // the last client ID handed out
	// finalID is the final pass's client; the workload's clients are
	// 1..finalID-1.
	finalID int

	reconfigs      []FaultRecord // the reconfiguring client's reconfigurations
	healedReconfig error         // the outcome of its reconfiguration after the heal (L2)
}

// newRun builds the scheduler, the network and the cluster of a run.
func newRun(o Options) (*run, error) {
	s := NewScheduler(o.Seed)
	s.MaxSteps = uint64(o.MaxSteps)
	s.Trace = o.Trace
	net := NewNetwork(s, Constant(o.Latency))
	cl, err := NewCluster(s, net, o.Cluster)
	if err != nil {
		s.Close()
		return nil, err
	}
	cl.Mutants = o.Mutants
	r := &run{o: o, w: o.Workload, s: s, net: net, cl: cl, start: s.Now(), h: &History{}, bg: context.Background()}
	r.res.History = r.h
	// Every client has a fixed node name, so that the fault plan can aim
	// at it: client1.. for the appenders, then the readers, then the
	// reconfiguring client; the final pass's client comes last.
	r.finalID = o.clients() + 1
	return r, nil
}

// close releases the cluster's mutant registrations and the scheduler's
// parked tasks.
func (r *run) close() {
	r.cl.Close()
	r.s.Close()
}

// since returns the virtual time since the run started.
func (r *run) since() time.Duration { return r.s.Now().Sub(r.start) }

// planFaults plans the run's faults on the cluster's nodes and the
// workload's clients, and wires the node faults to the cluster.
func (r *run) planFaults() error {
	cl, s := r.cl, r.s
	topo := Topology{
		Layouts:   cl.Projection.Layout,
		Sequencer: cl.Projection.Sequencer,
		Units:     cl.UnitIDs,
		Replicas:  cl.Options.Replicas,
	}
	for id := 1; id < r.finalID; id++ {
		topo.Clients = append(topo.Clients, clientNode(id))
	}
	faults := NewFaults(s, r.net.Policy())
	faults.OnCrash = func(n transport.NodeID) {
		if err := cl.Crash(n); err != nil {
			s.fail(err)
		}
	}
	faults.OnRestart = func(n transport.NodeID) {
		if err := cl.Restart(n); err != nil {
			s.fail(err)
		}
	}
	faults.OnReformat = func(n transport.NodeID) {
		if err := cl.RestartFrom(n, FaultReformat); err != nil {
			s.fail(err)
		}
	}
	r.faults = faults
	if err := faults.Plan(r.o.Faults, topo); err != nil {
		return err
	}
	r.net.SetPolicy(faults)
	cl.Clock = faults.ClockOffset
	r.heal = max(r.o.Faults.Duration, 0)
	r.res.Heal = r.heal
	return nil
}

// spawnWorkload starts the workload's client tasks, in the order of their
// IDs: the appenders, the readers, then the reconfiguring client.
func (r *run) spawnWorkload() {
	for range r.w.Appenders {
		r.spawn("appender", r.appender)
	}
	for range r.w.Readers {
		r.spawn("reader", r.reader)
	}
	if r.w.Reconfigs > 0 {
		r.spawn("reconfigurer", r.reconfigurer)
	}
}

// record runs one client operation under the workload's timeout and
// records it in the history.
func (r *run) record(client int, kind OpKind, addr storage.Address, value string, f func(ctx context.Context) (storage.Address, string, error)) (storage.Address, error) {
	h := r.h
	id := h.Invoke(client, kind, r.since(), addr, value)
	ctx, cancel := r.s.WithTimeout(r.bg, r.w.OpTimeout)
	defer cancel()
	a, v, err := f(ctx)
	if a == 0 && kind != OpAppend && kind != OpTail {
		a = addr
	}
	h.Return(id, r.since(), a, v, outcome(kind, err), err)
	switch outcome(kind, err) {
	case OK, Junk:
		switch kind {
		case OpAppend:
			r.res.Appends++
		case OpRead:
			r.res.Reads++
		}
	case Failed, Unknown:
		// NB: a fill that found an entry (ErrWritten) is a definite
		// answer that the log is fine, not a failure.
		if kind != OpFill || !errors.Is(err, corfu.ErrWritten) {
			r.res.Failed++
		}
	}
	return a, err
}

// think pauses a client for a random time of up to Workload.Think.
func (r *run) think(rng *rand.Rand) error {
	return r.s.Sleep(r.bg, time.Duration(rng.Int64N(int64(r.w.Think)+1)))
}

// untilHeal sleeps until the fault phase is over.
func (r *run) untilHeal() error { return r.s.Sleep(r.bg, r.heal-r.since()) }

// open opens a client, trying again while faults keep it from the layout
// servers; after the heal it must succeed within OpTimeout.
func (r *run) open(id int) (*corfu.Client, error) {
	for {
		ctx, cancel := r.s.WithTimeout(r.bg, r.w.OpTimeout)
		c, err := r.cl.ClientAs(ctx, clientNode(id), r.o.Client)
		cancel()
		if err == nil {
			return c, nil
		}
		if r.since() >= r.heal+r.w.OpTimeout {
			return nil, fmt.Errorf("L1: cannot open a client %v after the heal: %w", r.since()-r.heal, err)
		}
		if err := r.s.Sleep(r.bg, r.o.Client.RPCTimeout+time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// spawn starts the next client's task, named name and its ID, with a
// random stream of its own.
func (r *run) spawn(name string, f func(id int, rng *rand.Rand) error) {
	r.client++
	id := r.client
	r.running++
	rng := r.s.Fork(fmt.Sprintf("%s%d", name, id))
	r.s.Go(fmt.Sprintf("%s%d", name, id), func() {
		defer func() { r.running-- }()
		if err := f(id, rng); err != nil {
			r.taskErrs = append(r.taskErrs, fmt.Errorf("%s%d: %w", name, id, err))
		}
	})
}

// appender appends Appends entries, each to a random subset of the
// streams, then HealedAppends more once the run has healed.
func (r *run) appender(id int, rng *rand.Rand) error {
	w := r.w
	c, err := r.open(id)
	if err != nil {
		return err
	}
	appendOne := func(i int) error {
		if err := r.think(rng); err != nil {
			return err
		}
		var streams []corfu.StreamID
		for sid := range w.Streams {
			if rng.IntN(2) == 0 {
				streams = append(streams, corfu.StreamID(sid+1))
			}
		}
		value := fmt.Sprintf("c%d-%d", id, i)
		r.record(id, OpAppend, 0, value, func(ctx context.Context) (storage.Address, string, error) {
			a, err := c.Append(ctx, []byte(value), streams...)
			return a, "", err
		})
		return nil
	}
	for i := range w.Appends {
		if err := appendOne(i); err != nil {
			return err
		}
	}
	if err := r.untilHeal(); err != nil {
		return err
	}
	for i := range w.HealedAppends {
		if err := appendOne(w.Appends + i); err != nil {
			return err
		}
	}
	return nil
}

// reader makes Reads calls, then HealedReads more once the run has healed:
// each asks for the tail, then reads a random address below it (or the
// tail itself, or the newest address), fills the newest address, or trims.
func (r *run) reader(id int, rng *rand.Rand) error {
	w := r.w
	c, err := r.open(id)
	if err != nil {
		return err
	}
	readOne := func() error {
		if err := r.think(rng); err != nil {
			return err
		}
		tail, err := r.record(id, OpTail, 0, "", func(ctx context.Context) (storage.Address, string, error) {
			t, err := c.Tail(ctx)
			return t, "", err
		})
		if err != nil {
			return nil
		}
		addr := tail // sometimes probe the tail itself: unwritten, never filled
		if tail > 0 && rng.IntN(8) != 0 {
			addr = storage.Address(rng.Uint64N(uint64(tail)))
			if w.ReadNewest {
				addr = tail - 1
			}
		}
		if w.TrimOneIn > 0 && tail > 1 && rng.IntN(w.TrimOneIn) == 0 {
			// A checkpointing application: trim the older half.
			mark := tail / 2
			r.record(id, OpTrim, mark, "prefix", func(ctx context.Context) (storage.Address, string, error) {
				return mark, "", c.PrefixTrim(ctx, mark)
			})
			return nil
		}
		if tail > 0 && rng.IntN(w.FillOneIn) == 0 {
			// An impatient hole filler: fill the newest address,
			// whose writer is most likely still on its way. The
			// writer must lose cleanly, or the fill must complete
			// its entry; never clobber it.
			addr = tail - 1
			r.record(id, OpFill, addr, "", func(ctx context.Context) (storage.Address, string, error) {
				return addr, "", c.Fill(ctx, addr)
			})
			return nil
		}
		r.record(id, OpRead, addr, "", readOp(c, addr))
		return nil
	}
	for range w.Reads {
		if err := readOne(); err != nil {
			return err
		}
	}
	if err := r.untilHeal(); err != nil {
		return err
	}
	for range w.HealedReads {
		if err := readOne(); err != nil {
			return err
		}
	}
	return nil
}

// reconfigurer runs Reconfigs reconfigurations, each after a random pause
// of up to ReconfigGap: a new epoch, or a unit replaced by a spare. Once
// the run has healed it runs one more, which must commit a new epoch (L2).
func (r *run) reconfigurer(id int, rng *rand.Rand) error {
	w, cl, s := r.w, r.cl, r.s
	c, err := r.open(id)
	if err != nil {
		return err
	}
	reconfigure := func(change corfu.Change, what string) error {
		begin := r.since()
		ctx, cancel := s.WithTimeout(r.bg, w.OpTimeout)
		p, err := c.Reconfigure(ctx, change)
		cancel()
		rec := FaultRecord{Kind: FaultReconfig, Target: what, Start: begin, End: r.since(), Detail: "ok"}
		switch {
		case err == nil:
			r.res.Reconfigs++
			rec.Detail = fmt.Sprintf("ok: epoch %d", p.Epoch)
		case errors.Is(err, corfu.ErrReconfigLost):
			// Another client's recovery took the epoch.
			rec.Detail = "lost the epoch to another reconfiguration"
		default:
			r.res.ReconfigsFailed++
			rec.Detail = "failed: " + err.Error()
		}
		r.reconfigs = append(r.reconfigs, rec)
		return err
	}
	spares := cl.UnitIDs[len(cl.UnitIDs)-cl.Options.Spares:]
	// NB: without a rebuild, a unit replaced by a spare leaves the
	// closed segments of its chain with one replica fewer, as a
	// reformat does (P4). A chain survives f = replicas-1 such
	// losses: in a run with reformats, the two share that budget,
	// so that a reformat never hits the last replica of a chain.
	replacements := len(spares)
	if n := r.faults.Counts()[FaultReformat]; n > 0 {
		replacements = max(cl.Options.Replicas-1-n, 0)
	}
	for range w.Reconfigs {
		if err := s.Sleep(r.bg, time.Duration(rng.Int64N(int64(w.ReconfigGap)+1))); err != nil {
			return err
		}
		var change corfu.Change
		what := "new epoch"
		cur := c.Projection()
		if len(spares) > 0 && rng.IntN(2) == 0 && replacements > 0 {
			replacements--
			open := cur.Segments[len(cur.Segments)-1]
			units := open.Stripes[rng.IntN(len(open.Stripes))]
			old := units[rng.IntN(len(units))]
			if w.ReplaceHeads {
				old = units[0]
			}
			what = fmt.Sprintf("replace %s by %s", old, spares[0])
			change, spares = corfu.ReplaceUnit(old, spares[0]), spares[1:]
		}
		begin := r.since()
		err := reconfigure(change, what)
		if err != nil && !errors.Is(err, corfu.ErrReconfigLost) && begin >= r.heal {
			return fmt.Errorf("reconfigure after the heal: %w", err)
		}
	}
	if r.heal == 0 {
		return nil
	}
	// The liveness phase: a new epoch must be committed once the
	// run has healed (L2). Losing the epoch to a concurrent
	// recovery is no failure: try again on top of it.
	if err := r.untilHeal(); err != nil {
		return err
	}
	for range 3 {
		err := reconfigure(nil, "new epoch after the heal")
		if !errors.Is(err, corfu.ErrReconfigLost) {
			r.healedReconfig = err
			break
		}
	}
	return nil
}

// finalPass reads every address handed out, once all clients are done, so
// that no acknowledged append goes unchecked (L4).
func (r *run) finalPass() {
	r.client = r.finalID - 1
	r.spawn("final", func(id int, rng *rand.Rand) error {
		c, err := r.open(id)
		if err != nil {
			return err
		}
		tail, err := r.record(id, OpTail, 0, "", func(ctx context.Context) (storage.Address, string, error) {
			t, err := c.Tail(ctx)
			return t, "", err
		})
		if err != nil {
			return err
		}
		for a := range tail {
			r.record(id, OpRead, a, "", readOp(c, a))
		}
		return nil
	})
	if err := r.s.Run(); err != nil {
		r.res.Err = err
	}
}

// collect gathers the run's outcome once every task is done: the tasks'
// errors, the faults injected and what the cluster and network did.
func (r *run) collect() {
	res := &r.res
	if res.Err == nil && r.running != 0 {
		res.Err = fmt.Errorf("sim: %d client tasks never finished", r.running)
	}
	if res.Err == nil && len(r.taskErrs) > 0 {
		res.Err = errors.Join(r.taskErrs...)
	}
	res.Faults = append(r.faults.Records(), r.reconfigs...)
	slices.SortStableFunc(res.Faults, func(a, b FaultRecord) int { return cmp.Compare(a.Start, b.Start) })
	res.FaultCounts = r.faults.Counts()
	if len(r.reconfigs) > 0 {
		res.FaultCounts[FaultReconfig] = len(r.reconfigs)
	}
	res.Epochs = int(r.cl.Latest().Epoch)
	res.Net = r.net.Stats()
}

// check runs the safety and liveness checks over the history and the
// cluster's observations, and fails the run on the first violation that is
// not a warning.
func (r *run) check() {
	res, w, lv := &r.res, r.w, r.o.Liveness
	res.Violations = Check(r.h, r.cl.Monitor)
	if res.Err == nil {
		// NB: only after a complete final pass, which leaves every chain
		// complete.
		res.Violations = append(res.Violations, r.cl.CheckReplicas(r.h)...)
	}
	lin := CheckLinearizable(r.h, linTimeout)
	res.Linearizability = lin
	res.Violations = append(res.Violations, lin.Violations()...)
	final := 0
	if res.Err == nil {
		final = r.finalID
	}
	live := CheckLiveness(r.h, r.cl.Commits(), LivenessBounds{
		Heal:            r.heal,
		AppendBound:     lv.AppendBound,
		FillBound:       lv.FillBound,
		MaxEpochChanges: lv.MaxEpochChanges,
		OpBound:         w.OpTimeout + w.OpTimeout/10,
		FinalClient:     final,
	})
	res.Violations = append(res.Violations, live.Violations...)
	res.EpochChanges, res.Unseen = live.EpochChanges, live.Unseen
	if r.healedReconfig != nil {
		res.Violations = append(res.Violations, Violation{Invariant: "L2",
			Detail: fmt.Sprintf("no new epoch committed after the heal: %v", r.healedReconfig)})
	}
	sortViolations(res.Violations)
	if res.Err == nil {
		for _, v := range res.Violations {
			if !v.Warning {
				res.Err = fmt.Errorf("sim: invariant violated: %v", v)
				break
			}
		}
	}
	res.TraceHash = r.s.TraceHash()
	res.Steps = r.s.Steps()
	res.VirtualTime = r.since()
}

// clientNode is the network node of the workload's client id.
func clientNode(id int) transport.NodeID { return transport.NodeID(fmt.Sprintf("client%d", id)) }

func readOp(c *corfu.Client, addr storage.Address) func(ctx context.Context) (storage.Address, string, error) {
	return func(ctx context.Context) (storage.Address, string, error) {
		e, err := c.Read(ctx, addr)
		return addr, string(e.Data), err
	}
}

// outcome classifies a client call's error for the history.
func outcome(kind OpKind, err error) Outcome {
	switch {
	case err == nil:
		if kind == OpFill {
			return Junk
		}
		return OK
	case errors.Is(err, corfu.ErrJunk):
		return Junk
	case errors.Is(err, corfu.ErrUnwritten):
		return Unwritten
	case errors.Is(err, corfu.ErrTrimmed):
		return Trimmed
	case kind == OpAppend && errors.Is(err, corfu.ErrUnknownOutcome):
		return Unknown
	case kind == OpTrim && !errors.Is(err, corfu.ErrBeyondTail) && !errors.Is(err, corfu.ErrInvalidAddress):
		// A trim that gave up may have reached some units already.
		return Unknown
	}
	// Any other failed call is definite: an append that returns another
	// error wrote nothing anywhere (see corfu.Client.Append); a failed read,
	// tail, fill or trim changed nothing a checker relies on.
	return Failed
}
