package sim

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/examples/kvmap"
	"github.com/corfulog/corfu/internal/mutant"
	"github.com/corfulog/corfu/projection"
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

	// SamePayloadOneIn, if positive, makes one append in SamePayloadOneIn
	// reuse the bytes of an earlier append of any client: the history
	// tells entries apart by their writer and sequence number, never by
	// their bytes.
	SamePayloadOneIn int
	// SparseTrimOneIn, if positive, makes one reader call in
	// SparseTrimOneIn a trim of one random address below the tail
	// (Client.Trim).
	SparseTrimOneIn int
	// TrimNearTail makes the prefix trims of TrimOneIn trim at or just
	// below the tail, racing the appends in flight, instead of the older
	// half of the log.
	TrimNearTail bool
	// MoveSequencer adds a standby sequencer node to the cluster (see
	// Cluster.AddStandby) and makes one in three of the reconfiguring
	// client's reconfigurations move the sequencer to the node that is not
	// serving it (corfu.MoveSequencer).
	MoveSequencer bool
	// Streamers are clients that read the streams: each makes StreamReads
	// calls, then HealedReads more once the run has healed, each a Sync of
	// a random stream (corfu.Stream) or a Follow of the whole log over a
	// bounded range (corfu.Client.Follow).
	Streamers   int
	StreamReads int
	// FollowPast makes a streamer's Follow read on until FollowPast
	// entries past the tail it found first (or its time is up), so that,
	// once caught up, it waits at the units for appends still to come.
	FollowPast int
	// KVMaps are clients that each hold a replica of one kvmap.Map (the
	// stream KVStream) and make KVOps calls, then HealedReads more once the
	// run has healed, each a Put or a Get of one of a few keys. After the
	// final pass every replica must hold the map the log holds.
	KVMaps int
	KVOps  int

	// Bursts, if positive, makes one in Bursts of an appender's turns a
	// burst: 2 to MaxBurst appends started at once with
	// corfu.Client.AppendAsync (so that they share batches), then waited
	// for. Its draws come from a stream of their own (see appender).
	Bursts   int
	MaxBurst int // default 8

	// NoStreams makes every append join no stream, so that two appends of
	// equal bytes store entries that differ only in their writer's
	// identity (with SamePayloadOneIn).
	NoStreams bool
	// SlowWriteOneIn, if positive, makes an appender stall, in the fault
	// phase, before one in SlowWriteOneIn of its writes to a replica, and
	// any client before one in SlowWriteOneIn of its fills (a reader's, or
	// a recovery's), for up to
	// SlowWrite (default 1s), as a client paused between taking its token
	// and writing, or between its last look at a hole (or its commit) and
	// its fill, would:
	// the request's own timeout does not cut the stall short, so the
	// request arrives late, possibly after a reconfiguration or after
	// another client's request.
	SlowWriteOneIn int
	SlowWrite      time.Duration
	// LaggingLayouts leaves layout servers behind: the reconfiguring
	// client's commits reach only the last layout server, and in the
	// fault phase every client loses half its requests to that server, so
	// that clients often see only servers that lag an epoch behind.
	LaggingLayouts bool
	// ReplaceOneIn, if positive, makes one in ReplaceOneIn of the
	// reconfiguring client's reconfigurations (those that do not move the
	// sequencer) replace a unit by a spare, while spares last; default 2.
	ReplaceOneIn int
	// AbortOneIn, if positive, makes one in AbortOneIn of the
	// reconfiguring client's reconfigurations in the fault phase die once
	// it has sealed the units: its context ends as its seal of the
	// sequencer goes out, leaving the log sealed at an epoch nobody
	// proposed.
	AbortOneIn int
	// Detector makes the reconfiguring client a failure detector
	// (corfu.Detector) instead of a hand-driven one: it replaces failed
	// units with the cluster's spares, moves a failed sequencer to the
	// standby (with MoveSequencer), rebuilds the chains replacements left
	// short, and grows chains again as units come back; Reconfigs and its
	// shapes are then unused. Once the run has healed it also runs one
	// reconfiguration of its own (L2), and it keeps probing until the
	// other clients are done.
	Detector bool
	// Vantages is, with Detector, how many failure detectors watch the
	// log, each on a client node of its own (default one). With more than
	// one, each confirms a suspicion with the others before it takes a
	// node out (corfu.DetectorConfig.Confirm: a majority of them); only
	// the first runs the reconfiguration after the heal.
	Vantages int
}

// KVStream is the stream of the workload's kvmap replicas, apart from the
// appenders' streams 1..Workload.Streams.
const KVStream corfu.StreamID = 1000

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
	if w.SlowWriteOneIn > 0 {
		setDefault(&w.SlowWrite, time.Second)
	}
}

// LivenessConfig tunes the liveness checks (see LivenessBounds); zero
// fields take defaults derived from the client's configuration and the
// workload.
//
// The defaults of AppendBound and FillBound are 3 and 4 times U, capped at
// Workload.OpTimeout, where U = 2 x HoleFillWait + 4 x (RPCTimeout +
// MaxBackoff): what a call may spend after the heal waiting out a hole
// (HoleFillWait), a recovery that takes over a half-done reconfiguration
// (refresh waits two of them), and a few requests that time out with
// their backoffs. Over 2000 seeds of Swarm (the amnesia fault aside, which
// the protocol cannot survive yet) the slowest append after the heal took
// 0.96 U and the slowest read or tail 1.34 U.
type LivenessConfig struct {
	AppendBound     time.Duration // L1 T_append; default min(3 U, Workload.OpTimeout)
	FillBound       time.Duration // L3 T_fill; default min(4 U, Workload.OpTimeout)
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
	// Disk is where the cluster keeps its state: DiskMemory (or "") for
	// the in-memory units and roles, DiskDurable for the production
	// code's durable state on simulated disks, which crash as power
	// losses and take the disk faults of FaultConfig (see Durable). Swarm
	// runs one seed in four durable.
	Disk string
	// Plan, if set, adds fault episodes of its own to the fault plan,
	// after FaultConfig's (the heal-time runs aim one fault at one node
	// this way; see HealTime). Faults.Duration must cover them.
	Plan func(f *Faults, t Topology) `json:"-"`
	// Detector tunes the failure detector of Workload.Detector: its
	// non-zero Interval, Timeout and Misses replace the ones DetectorConfig
	// derives from the client's timeouts.
	Detector corfu.DetectorConfig `json:"-"`
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
	setDefault(&c.FollowWait, corfu.DefaultFollowWait)
	setDefault(&c.MaxEntryBytes, corfu.DefaultMaxEntryBytes)
	lv := &o.Liveness
	u := 2*c.HoleFillWait + 4*(c.RPCTimeout+c.MaxBackoff)
	setDefault(&lv.AppendBound, min(3*u, o.Workload.OpTimeout))
	setDefault(&lv.FillBound, min(4*u, o.Workload.OpTimeout))
	setDefault(&lv.MaxEpochChanges, 2*(o.clients()+1)+4)
	return o
}

// clients counts the workload's clients before the final pass.
func (o Options) clients() int {
	n := o.Workload.Appenders + o.Workload.Readers
	if o.Workload.Reconfigs > 0 || o.Workload.Detector {
		n++
	}
	return n + o.Workload.Streamers + o.Workload.KVMaps + o.peerDetectors()
}

// peerDetectors returns how many detectors watch the log besides the
// reconfiguring client's (Workload.Vantages).
func (o Options) peerDetectors() int {
	if !o.Workload.Detector {
		return 0
	}
	return max(o.Workload.Vantages-1, 0)
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
	// The shapes added since, from a stream of their own too, all drawn
	// whatever the seed's other draws.
	x := rand.New(rand.NewPCG(seed, 0x5ba7e))
	w := &o.Workload
	if x.IntN(3) == 0 {
		w.SamePayloadOneIn = 2 + x.IntN(6)
	}
	if x.IntN(4) == 0 {
		w.SparseTrimOneIn = 5 + x.IntN(20)
	}
	w.TrimNearTail = x.IntN(2) == 0 && w.TrimOneIn > 0
	w.MoveSequencer = x.IntN(3) == 0 && w.Reconfigs > 0
	if n, reads := 1+x.IntN(2), 3+x.IntN(12); x.IntN(2) == 0 {
		w.Streamers, w.StreamReads = n, reads
	}
	// NB: a replica reads its stream from the start, which a prefix trim
	// takes away.
	if ops := 3 + x.IntN(12); x.IntN(3) == 0 && w.TrimOneIn == 0 && w.SparseTrimOneIn == 0 {
		w.KVMaps, w.KVOps = 2, ops
	}
	amnesias := 0
	if n := 1 + x.IntN(2); x.IntN(4) == 0 {
		amnesias = n
	}
	// Half the seeds heal with a failure detector: from a stream of its
	// own too.
	UseDetector(&o, rand.New(rand.NewPCG(seed, 0xde7ec7)).IntN(2) == 0)
	// Two seeds in three append in bursts through AppendAsync's batches:
	// from a stream of its own too.
	if b := rand.New(rand.NewPCG(seed, 0xba7c4)); b.IntN(3) != 0 {
		o.Workload.Bursts = 1 + b.IntN(4)
		o.Workload.MaxBurst = 2 + b.IntN(15)
	}
	// Two seeds in three follow past the tail, waiting at the units for
	// the next entry, with waits short and long: from a stream of its own
	// too.
	if fw := rand.New(rand.NewPCG(seed, 0xf011)); fw.IntN(3) != 0 {
		o.Workload.FollowPast = 1 + fw.IntN(8)
		o.Client.FollowWait = []time.Duration{20, 100, 500}[fw.IntN(3)] * time.Millisecond
	}
	// Durable mode and its disk faults, from a stream of their own.
	disk := drawDiskFaults(seed)
	if disk.durable {
		o.Disk = DiskDurable
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
	f.Amnesias = amnesias
	if disk.durable {
		disk.apply(f, SwarmDiskKinds())
	}
	// Spread the workload over the fault phase.
	n := max(o.Workload.Appends, o.Workload.Reads)
	o.Workload.Think = max(o.Workload.Think, 2*f.Duration/time.Duration(n))
	o.Workload.ReconfigGap = 2 * f.Duration / time.Duration(o.Workload.Reconfigs+1)
	return o.Expanded()
}

// UseDetector switches the failure detector of o's run on or off
// (Workload.Detector). On, the cluster gets one or two spare units if it
// has none, and a standby sequencer in one seed of two (MoveSequencer),
// both drawn from the seed's own stream.
func UseDetector(o *Options, on bool) {
	o.Workload.Detector = on
	if !on {
		return
	}
	r := rand.New(rand.NewPCG(o.Seed, 0x59a7e5))
	if spares := 1 + r.IntN(2); o.Cluster.Spares == 0 {
		o.Cluster.Spares = spares
	}
	if r.IntN(2) == 0 {
		o.Workload.MoveSequencer = true
	}
	if r.IntN(2) == 0 && o.Workload.Vantages == 0 {
		o.Workload.Vantages = 2
	}
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
	// Batches counts the write batches of AppendAsync the units answered.
	Batches BatchStats
	// Projection is the newest projection committed when the run ended.
	Projection *projection.Projection
	// Disk is what the disks went through in a durable run (Options.Disk);
	// nil for one on in-memory units.
	Disk *DiskStats
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

	taskErrs []error           // the client tasks' errors, in order of failing
	running  int               // client tasks not finished
	client   int               // the last client ID handed out
	scrubbed corfu.ScrubResult // the final pass's scrub (durable runs)
	// finalID is the final pass's client; the workload's clients are
	// 1..finalID-1.
	finalID int

	// abort, while set, ends the reconfiguring client's reconfiguration
	// in progress (Workload.AbortOneIn).
	abort          func()
	reconfigs      []FaultRecord // the reconfiguring client's reconfigurations
	healedReconfig error         // the outcome of its reconfiguration after the heal (L2)

	payloads   []string     // the bytes of every append, in order of invoking, for SamePayloadOneIn
	kvMaps     []*kvmap.Map // the kvmap replicas of the KVMaps clients
	kvKeys     []string     // every key a kvmap client used, sorted
	kvDiverged []string     // how kvmap replicas differed from the log after the final pass
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
	cl.SetMutants(o.Mutants)
	if o.Workload.MoveSequencer {
		cl.AddStandby()
	}
	switch o.Disk {
	case "", DiskMemory:
	case DiskDurable:
		if _, err := cl.UseDurable(); err != nil {
			cl.Close()
			s.Close()
			return nil, err
		}
	default:
		cl.Close()
		s.Close()
		return nil, fmt.Errorf("sim: unknown disk mode %q; want %q or %q", o.Disk, DiskMemory, DiskDurable)
	}
	r := &run{o: o, w: o.Workload, s: s, net: net, cl: cl, start: s.Now(), h: &History{}, bg: context.Background()}
	r.res.History = r.h
	// Every client has a fixed node name, so that the fault plan can aim
	// at it: client1.. for the appenders, then the readers, then the
	// reconfiguring client; the final pass's client comes last.
	r.finalID = o.clients() + 1
	if w := o.Workload; w.SlowWriteOneIn > 0 || w.LaggingLayouts || w.AbortOneIn > 0 {
		cl.Wrap = r.wrap
	}
	return r, nil
}

// wrap is the Cluster's Wrap for the workload's filters on the clients' own
// transports (Workload.SlowWriteOneIn, LaggingLayouts, AbortOneIn).
func (r *run) wrap(node transport.NodeID, c transport.Caller) transport.Caller {
	w := r.w
	f := &filterCaller{r: r, inner: c, rng: r.s.Fork("filter " + string(node))}
	for id := 1; id < r.finalID; id++ {
		if clientNode(id) != node {
			continue
		}
		f.appender = id <= w.Appenders
		f.reader = id > w.Appenders && id <= w.Appenders+w.Readers
		f.reconfigurer = (w.Reconfigs > 0 || w.Detector) && id == w.Appenders+w.Readers+1
	}
	return f
}

// filterCaller is a workload client's filter on its own transport.
type filterCaller struct {
	r                              *run
	inner                          transport.Caller
	rng                            *rand.Rand
	appender, reader, reconfigurer bool
}

func (f *filterCaller) Call(ctx context.Context, to transport.NodeID, req *transport.Request) (*transport.Response, error) {
	r, w := f.r, f.r.w
	faulty := r.since() < r.heal
	if w.LaggingLayouts {
		layouts := r.cl.Projection.Layout
		keep := layouts[len(layouts)-1]
		switch {
		case f.reconfigurer && req.Op == transport.OpCommit && to != keep:
			return nil, fmt.Errorf("%w: the commit reaches %s only", transport.ErrUnreachable, keep)
		case to == keep && faulty && f.rng.IntN(2) == 0:
			return nil, fmt.Errorf("%w: %s lost", transport.ErrUnreachable, to)
		}
	}
	if f.reconfigurer && req.Op == transport.OpSeqSeal && r.abort != nil {
		r.abort() // the reconfiguration dies with the units sealed
		r.abort = nil
	}
	slow := f.appender && (req.Op == transport.OpWrite || req.Op == transport.OpWriteBatch) || req.Op == transport.OpFill
	if slow && w.SlowWriteOneIn > 0 && faulty && f.rng.IntN(w.SlowWriteOneIn) == 0 {
		// NB: a stall before the request; sent afterwards with a timeout
		// of its own, as the request the client sent before it stalled.
		if err := r.s.Sleep(r.bg, time.Duration(f.rng.Int64N(int64(w.SlowWrite)+1))); err != nil {
			return nil, err
		}
		sctx, cancel := r.s.WithTimeout(r.bg, r.o.Client.RPCTimeout)
		defer cancel()
		return f.inner.Call(sctx, to, req)
	}
	return f.inner.Call(ctx, to, req)
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
		Standby:   cl.Standby,
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
	faults.OnAmnesia = func(n transport.NodeID) {
		if err := cl.RestartFrom(n, FaultAmnesia); err != nil {
			s.fail(err)
		}
	}
	cfg := r.o.Faults
	if d := cl.durable; d != nil {
		faults.OnDisk = d.DiskFault
		faults.OnRestartFrom = func(n transport.NodeID, kind FaultKind) {
			if err := cl.RestartFrom(n, kind); err != nil {
				s.fail(err)
			}
		}
		faults.ReplyDelay = cl.ReplyDelay
		cl.CutPower = faults.CutPower
	} else {
		// NB: the disk faults need a durable cluster; on in-memory units
		// there is nothing beneath the code to inject them into.
		diskFaults{}.apply(&cfg, nil)
	}
	r.faults = faults
	if err := faults.Plan(cfg, topo); err != nil {
		return err
	}
	if r.o.Plan != nil {
		r.o.Plan(faults, topo)
	}
	r.net.SetPolicy(faults)
	cl.Clock = faults.ClockOffset
	r.heal = max(r.o.Faults.Duration, 0)
	r.res.Heal = r.heal
	return nil
}

// spawnWorkload starts the workload's client tasks, in the order of their
// IDs: the appenders, the readers, the reconfiguring client, the stream
// readers, then the kvmap clients.
func (r *run) spawnWorkload() {
	for range r.w.Appenders {
		r.spawn("appender", r.appender)
	}
	for range r.w.Readers {
		r.spawn("reader", r.reader)
	}
	if r.w.Detector {
		r.spawn("detector", r.detector)
	} else if r.w.Reconfigs > 0 {
		r.spawn("reconfigurer", r.reconfigurer)
	}
	for range r.w.Streamers {
		r.spawn("streamer", r.streamer)
	}
	for range r.w.KVMaps {
		r.spawn("kv", r.kvClient)
	}
	for range r.o.peerDetectors() {
		r.spawn("detector", r.peerDetector)
	}
}

// record runs one client operation under the workload's timeout and
// records it in the history.
func (r *run) record(client int, kind OpKind, addr storage.Address, value string, f func(ctx context.Context) (storage.Address, string, error)) (storage.Address, error) {
	a, _, err := r.recordOp(client, kind, addr, value, f)
	return a, err
}

// recordOp is record, returning the operation's ID in the history too.
func (r *run) recordOp(client int, kind OpKind, addr storage.Address, value string, f func(ctx context.Context) (storage.Address, string, error)) (storage.Address, int, error) {
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
	return a, id, err
}

// identify returns the history's value for an entry: its writer, its
// sequence number and its bytes, so that two appends of equal bytes are
// two values, and a read that matches an append's bytes but not its
// identity is caught.
func identify(writer corfu.WriterID, seq uint64, data []byte) string {
	return fmt.Sprintf("w%x#%d:%s", writer, seq, data)
}

// payload returns the bytes of a value made by identify.
func payload(value string) string {
	if _, data, ok := strings.Cut(value, ":"); ok {
		return data
	}
	return value
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
	var seq uint64 // the client's Append calls so far: each takes the next Seq
	// NB: bursts draw from a stream of their own, so that a seed's other
	// draws are the same with them and without.
	brng := r.s.Fork(fmt.Sprintf("burst%d", id))
	entry := func(i int) (string, []corfu.StreamID) {
		var streams []corfu.StreamID
		for sid := range w.Streams {
			if rng.IntN(2) == 0 && !w.NoStreams {
				streams = append(streams, corfu.StreamID(sid+1))
			}
		}
		data := fmt.Sprintf("c%d-%d", id, i)
		if w.SamePayloadOneIn > 0 && len(r.payloads) > 0 && rng.IntN(w.SamePayloadOneIn) == 0 {
			data = r.payloads[rng.IntN(len(r.payloads))]
		}
		r.payloads = append(r.payloads, data)
		return data, streams
	}
	appendOne := func(i int) error {
		if err := r.think(rng); err != nil {
			return err
		}
		data, streams := entry(i)
		seq++
		_, op, _ := r.recordOp(id, OpAppend, 0, identify(c.Writer(), seq, []byte(data)), func(ctx context.Context) (storage.Address, string, error) {
			a, err := c.Append(ctx, []byte(data), streams...)
			if u := (*corfu.UnknownOutcomeError)(nil); errors.As(err, &u) {
				a = u.Addr // where the entry may be
			}
			return a, "", err
		})
		r.h.Ops[op].Streams = streams
		return nil
	}
	// turn appends entry i, or a burst from it on, and returns how many
	// it appended.
	turn := func(i, left int) (int, error) {
		if w.Bursts <= 0 || left < 2 || brng.IntN(w.Bursts) != 0 {
			return 1, appendOne(i)
		}
		if err := r.think(rng); err != nil {
			return 0, err
		}
		n := min(left, 2+brng.IntN(max(w.MaxBurst, 2)-1))
		// NB: every entry of a burst joins the streams of its first or
		// none, at random, so that batches form and get cut.
		_, streams := entry(i)
		r.payloads = r.payloads[:len(r.payloads)-1]
		ctx, cancel := r.s.WithTimeout(r.bg, w.OpTimeout)
		defer cancel()
		type started struct {
			op int
			f  *corfu.AppendFuture
		}
		var burst []started
		for j := range n {
			data, _ := entry(i + j)
			ss := streams
			if brng.IntN(8) == 0 {
				ss = nil
			}
			seq++
			op := r.h.Invoke(id, OpAppend, r.since(), 0, identify(c.Writer(), seq, []byte(data)))
			r.h.Ops[op].Streams = ss
			f, err := c.AppendAsync(ctx, []byte(data), ss...)
			if err != nil {
				seq-- // NB: refused before it took an identity
				r.finishAppend(op, 0, err)
				continue
			}
			burst = append(burst, started{op, f})
		}
		for _, b := range burst {
			a, err := b.f.Wait(ctx)
			if err == nil {
				a, err = b.f.Result()
			} else if b.f.Done() {
				a, err = b.f.Result()
			} else {
				// NB: the history must not claim the entry is nowhere: it
				// may still be appended after the wait gave up.
				err = &corfu.UnknownOutcomeError{Cause: err}
			}
			r.finishAppend(b.op, a, err)
		}
		return n, nil
	}
	for i := 0; i < w.Appends; {
		n, err := turn(i, w.Appends-i)
		if err != nil {
			return err
		}
		i += n
	}
	if err := r.untilHeal(); err != nil {
		return err
	}
	for i := 0; i < w.HealedAppends; {
		n, err := turn(w.Appends+i, w.HealedAppends-i)
		if err != nil {
			return err
		}
		i += n
	}
	return nil
}

// finishAppend records the return of append op, started by AppendAsync,
// as recordOp records a call's.
func (r *run) finishAppend(op int, a storage.Address, err error) {
	if u := (*corfu.UnknownOutcomeError)(nil); errors.As(err, &u) {
		a = u.Addr // where the entry may be
	}
	r.h.Return(op, r.since(), a, "", outcome(OpAppend, err), err)
	switch outcome(OpAppend, err) {
	case OK:
		r.res.Appends++
	case Failed, Unknown:
		r.res.Failed++
	}
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
		if w.SparseTrimOneIn > 0 && tail > 0 && rng.IntN(w.SparseTrimOneIn) == 0 {
			// An application done with one entry: trim it alone.
			at := storage.Address(rng.Uint64N(uint64(tail)))
			r.record(id, OpTrim, at, "", func(ctx context.Context) (storage.Address, string, error) {
				return at, "", c.Trim(ctx, at)
			})
			return nil
		}
		if w.TrimOneIn > 0 && tail > 1 && rng.IntN(w.TrimOneIn) == 0 {
			// A checkpointing application: trim the older half; or,
			// racing the appends in flight, all but the newest few.
			mark := tail / 2
			if w.TrimNearTail {
				mark = tail - min(tail, storage.Address(rng.IntN(3)))
			}
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
			var ferr error
			_, op, _ := r.recordOp(id, OpFill, addr, "", func(ctx context.Context) (storage.Address, string, error) {
				ferr = c.Fill(ctx, addr)
				return addr, "", ferr
			})
			// NB: a fill's answer is committed too: junk, or an entry
			// whose chain it completed (S7, Monitor.Returned).
			if ferr == nil || errors.Is(ferr, corfu.ErrWritten) {
				r.cl.Monitor.Returned(addr, c.Epoch(), ferr == nil, func([]byte) bool { return true }, opString(&r.h.Ops[op]))
			}
			return nil
		}
		r.read(id, c, addr)
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
		if w.AbortOneIn > 0 && begin < r.heal && rng.IntN(w.AbortOneIn) == 0 {
			r.abort = cancel
			what += ", dying once the units are sealed"
		}
		p, err := c.Reconfigure(ctx, change)
		r.abort = nil
		cancel()
		r.recordReconfig(what, begin, epochOf(p), err)
		return err
	}
	spares := cl.UnitIDs[len(cl.UnitIDs)-cl.Options.Spares:]
	// NB: without a rebuild, a unit replaced by a spare leaves the
	// closed segments of its chain with one replica fewer, as a
	// reformat does (P4). A chain survives f = replicas-1 such
	// losses: in a run with reformats or misdirected writes (which
	// may cost a unit what it held), they share that budget, so that
	// neither hits the last replica of a chain.
	replacements := len(spares)
	if n := r.faults.Counts()[FaultReformat] + r.faults.Counts()[FaultMisdirect]; n > 0 {
		replacements = max(cl.Options.Replicas-1-n, 0)
	}
	for range w.Reconfigs {
		if err := s.Sleep(r.bg, time.Duration(rng.Int64N(int64(w.ReconfigGap)+1))); err != nil {
			return err
		}
		var change corfu.Change
		what := "new epoch"
		cur := c.Projection()
		if w.MoveSequencer && rng.IntN(3) == 0 {
			to := cl.Standby
			if cur.Sequencer == cl.Standby {
				to = cl.Projection.Sequencer
			}
			what = fmt.Sprintf("move the sequencer from %s to %s", cur.Sequencer, to)
			change = corfu.MoveSequencer(to)
		} else if len(spares) > 0 && rng.IntN(cmp.Or(w.ReplaceOneIn, 2)) == 0 && replacements > 0 {
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

// epochOf returns p's epoch, or 0 for no projection.
func epochOf(p *projection.Projection) storage.Epoch {
	if p == nil {
		return 0
	}
	return p.Epoch
}

// recordReconfig records a reconfiguration of the workload's reconfiguring
// client (or its detector), what it was for, begun at begin, that
// committed epoch or failed with err.
func (r *run) recordReconfig(what string, begin time.Duration, epoch storage.Epoch, err error) {
	rec := FaultRecord{Kind: FaultReconfig, Target: what, Start: begin, End: r.since(), Detail: "ok"}
	switch {
	case err == nil:
		r.res.Reconfigs++
		rec.Detail = fmt.Sprintf("ok: epoch %d", epoch)
	case errors.Is(err, corfu.ErrReconfigLost):
		// Another client's recovery took the epoch.
		rec.Detail = "lost the epoch to another reconfiguration"
	default:
		r.res.ReconfigsFailed++
		rec.Detail = "failed: " + err.Error()
	}
	r.reconfigs = append(r.reconfigs, rec)
}

// streamer reads the streams: each call is a Sync of a random stream with
// the client's reader of it (now and then a new reader, from an address
// the old one had passed), or a Follow of the whole log from such an
// address until it passes the tail as it was when the call began, or for
// at most a few hole-fill waits.
func (r *run) streamer(id int, rng *rand.Rand) error {
	w := r.w
	c, err := r.open(id)
	if err != nil {
		return err
	}
	readers := make([]*corfu.Stream, w.Streams)
	for i := range readers {
		readers[i] = c.Stream(corfu.StreamID(i+1), 0)
	}
	one := func() error {
		if err := r.think(rng); err != nil {
			return err
		}
		i := rng.IntN(len(readers))
		st := readers[i]
		if rng.IntN(4) == 0 {
			// A new reader, from somewhere the old one passed.
			st = c.Stream(st.ID(), storage.Address(rng.Uint64N(uint64(st.Position())+1)))
			readers[i] = st
		}
		if rng.IntN(3) != 0 {
			r.syncStream(id, st)
			return nil
		}
		r.follow(id, c, storage.Address(rng.Uint64N(uint64(st.Position())+1)))
		return nil
	}
	for range w.StreamReads {
		if err := one(); err != nil {
			return err
		}
	}
	if err := r.untilHeal(); err != nil {
		return err
	}
	for range w.HealedReads {
		if err := one(); err != nil {
			return err
		}
	}
	return nil
}

// syncStream syncs st and records what it returned from its range.
func (r *run) syncStream(client int, st *corfu.Stream) {
	from := st.Position()
	var seen []Seen
	_, op, _ := r.recordOp(client, OpStreamSync, from, "", func(ctx context.Context) (storage.Address, string, error) {
		entries, err := st.Sync(ctx)
		for _, e := range entries {
			seen = append(seen, Seen{Addr: e.Address, Value: identify(e.Writer, e.Seq, e.Data)})
		}
		return from, "", err
	})
	o := &r.h.Ops[op]
	o.Streams, o.To, o.Entries = []corfu.StreamID{st.ID()}, st.Position(), seen
	if o.Outcome != OK {
		o.To = from
	} else {
		o.Addr = st.Start() // NB: below from after a reset (corfu.Stream.Sync)
	}
}

// follow follows the whole log from from until it yields an entry at or
// past the tail it finds first (plus Workload.FollowPast), or its time is
// up, and records what it yielded: the range it covered ends past its last
// entry (or at the tail, once it got there).
func (r *run) follow(client int, c *corfu.Client, from storage.Address) {
	to := from
	var seen []Seen
	_, op, _ := r.recordOp(client, OpStreamSync, from, "", func(ctx context.Context) (storage.Address, string, error) {
		tail, err := c.Tail(ctx)
		if err != nil {
			return from, "", err
		}
		if tail <= from && r.w.FollowPast == 0 {
			to = from
			return from, "", nil
		}
		tail += storage.Address(r.w.FollowPast)
		fctx, cancel := r.s.WithTimeout(ctx, 3*r.o.Client.HoleFillWait)
		defer cancel()
		for e, err := range c.Follow(fctx, from) {
			if err != nil {
				if fctx.Err() != nil && ctx.Err() == nil {
					return from, "", nil // its time is up: [from, to) was read
				}
				return from, "", err
			}
			seen = append(seen, Seen{Addr: e.Address, Value: identify(e.Writer, e.Seq, e.Data)})
			to = e.Address + 1
			if to >= tail {
				break
			}
		}
		return from, "", nil
	})
	o := &r.h.Ops[op]
	o.To, o.Entries = to, seen
	if o.Outcome != OK {
		// NB: what it yielded before the error still counts, from its
		// range: the call read it all.
		o.Outcome = OK
	}
}

// kvKeys are the keys the kvmap clients put and get.
const kvKeys = 4

// kvClient puts and gets keys of its replica of the workload's kvmap.
func (r *run) kvClient(id int, rng *rand.Rand) error {
	w := r.w
	c, err := r.open(id)
	if err != nil {
		return err
	}
	m := kvmap.New(c, KVStream)
	r.kvMaps = append(r.kvMaps, m)
	var seq uint64 // the client's Append calls so far: a Put makes one
	one := func(i int) error {
		if err := r.think(rng); err != nil {
			return err
		}
		key := fmt.Sprintf("k%d", rng.IntN(kvKeys))
		if !slices.Contains(r.kvKeys, key) {
			r.kvKeys = append(r.kvKeys, key)
			slices.Sort(r.kvKeys)
		}
		if rng.IntN(2) == 0 {
			value := fmt.Sprintf("kv%d-%d", id, i)
			seq++
			_, op, _ := r.recordOp(id, OpPut, 0, identify(c.Writer(), seq, kvUpdate(key, value)), func(ctx context.Context) (storage.Address, string, error) {
				return 0, "", m.Put(ctx, key, value)
			})
			r.h.Ops[op].Streams = []corfu.StreamID{KVStream}
			return nil
		}
		ctx, cancel := r.s.WithTimeout(r.bg, w.OpTimeout)
		defer cancel()
		_, _, _ = m.Get(ctx, key) // NB: checked by convergence, after the final pass
		return nil
	}
	for i := range w.KVOps {
		if err := one(i); err != nil {
			return err
		}
	}
	if err := r.untilHeal(); err != nil {
		return err
	}
	for i := range w.HealedReads {
		if err := one(w.KVOps + i); err != nil {
			return err
		}
	}
	return nil
}

// kvUpdate is how kvmap lays out a Put of key and value in its entry: the
// key's length (uvarint), the key, the value.
func kvUpdate(key, value string) []byte {
	b := binary.AppendUvarint(nil, uint64(len(key)))
	return append(append(b, key...), value...)
}

// checkKV checks, at the end of the final pass, that every kvmap replica
// converges to the map the log holds: the updates of KVStream the final
// pass read, applied in log order. A fresh replica on the final client c
// must too. A replica whose stream was trimmed below it cannot sync, and
// is left out.
func (r *run) checkKV(client int, c *corfu.Client) {
	if len(r.kvMaps) == 0 || slices.ContainsFunc(r.h.Ops, func(o Op) bool { return o.Kind == OpTrim }) {
		return // NB: a trimmed update leaves the log and the replicas that applied it
	}
	want := map[string]string{}
	for i := range r.h.Ops {
		o := &r.h.Ops[i]
		if o.Client != client || o.Kind != OpRead || o.Outcome != OK || !slices.Contains(o.Streams, KVStream) {
			continue
		}
		b := []byte(payload(o.Value))
		n, k := binary.Uvarint(b)
		if k <= 0 || n > uint64(len(b)-k) {
			continue
		}
		want[string(b[k:k+int(n)])] = string(b[k+int(n):])
	}
	replicas := append(slices.Clone(r.kvMaps), kvmap.New(c, KVStream))
	for i, m := range replicas {
		ctx, cancel := r.s.WithTimeout(r.bg, r.w.OpTimeout)
		err := m.Sync(ctx)
		for _, key := range r.kvKeys {
			if err != nil {
				break
			}
			var got string
			var ok bool
			got, ok, err = m.Get(ctx, key)
			if w, wok := want[key]; err == nil && (got != w || ok != wok) {
				r.kvDiverged = append(r.kvDiverged, fmt.Sprintf("replica %d of %d: key %q is %q (present %v), the log says %q (present %v)",
					i+1, len(replicas), key, got, ok, w, wok))
			}
		}
		cancel()
		if err != nil && !errors.Is(err, corfu.ErrTrimmed) {
			r.kvDiverged = append(r.kvDiverged, fmt.Sprintf("replica %d of %d did not sync after the heal: %v", i+1, len(replicas), err))
		}
	}
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
		if r.o.Disk == DiskDurable {
			// NB: a disk may have damaged records no read reaches (a
			// head's or a middle replica's): a scrub repairs them before
			// the replicas are compared (S16).
			ctx, cancel := r.s.WithTimeout(r.bg, r.w.OpTimeout)
			res, err := c.Scrub(ctx, 0, tail)
			cancel()
			if err != nil {
				return fmt.Errorf("final scrub: %w", err)
			}
			r.scrubbed = res
		}
		for a := range tail {
			r.read(id, c, a)
		}
		r.checkKV(id, c)
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
	res.Projection = r.cl.Latest().Clone()
	slices.SortStableFunc(res.Faults, func(a, b FaultRecord) int { return cmp.Compare(a.Start, b.Start) })
	res.FaultCounts = r.faults.Counts()
	if len(r.reconfigs) > 0 {
		res.FaultCounts[FaultReconfig] = len(r.reconfigs)
	}
	res.Epochs = int(r.cl.Latest().Epoch)
	res.Net = r.net.Stats()
	res.Batches = r.cl.Batches
	if d := r.cl.durable; d != nil {
		st := d.Stats()
		res.Disk = &st
	}
}

// check runs the safety and liveness checks over the history and the
// cluster's observations, and fails the run on the first violation that is
// not a warning.
func (r *run) check() {
	res, w, lv := &r.res, r.w, r.o.Liveness
	res.Violations = Check(r.h, r.cl.Monitor)
	res.Violations = append(res.Violations, CheckStored(r.h, r.cl.Monitor)...)
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
	for _, d := range r.kvDiverged {
		res.Violations = append(res.Violations, Violation{Invariant: "S16", Detail: "kvmap: " + d})
	}
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

// read reads addr with c and records it, the entry's streams included.
// What it returned must be on the last replica of the address's chain in
// the client's projection already (S7, Monitor.Returned).
func (r *run) read(client int, c *corfu.Client, addr storage.Address) {
	var e corfu.Entry
	_, op, _ := r.recordOp(client, OpRead, addr, "", func(ctx context.Context) (storage.Address, string, error) {
		var err error
		if e, err = c.Read(ctx, addr); err != nil {
			return addr, "", err
		}
		return addr, identify(e.Writer, e.Seq, e.Data), nil
	})
	o := &r.h.Ops[op]
	o.Streams = e.Streams
	if o.Outcome == OK || o.Outcome == Junk {
		r.cl.Monitor.Returned(addr, c.Epoch(), o.Outcome == Junk, func(stored []byte) bool {
			w, seq, ok := storedID(stored)
			return ok && w == e.Writer && seq == e.Seq && bytes.HasSuffix(stored, e.Data)
		}, opString(o))
	}
}

// storedID returns the writer and sequence number recorded in an entry's
// stored form (corfu's layout: a version byte, then both as uvarints), and
// false if it does not start like one.
func storedID(b []byte) (corfu.WriterID, uint64, bool) {
	if len(b) == 0 || b[0] != 2 {
		return 0, 0, false
	}
	w, n := binary.Uvarint(b[1:])
	if n <= 0 {
		return 0, 0, false
	}
	seq, m := binary.Uvarint(b[1+n:])
	return corfu.WriterID(w), seq, m > 0
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
	case (kind == OpAppend || kind == OpPut) && errors.Is(err, corfu.ErrUnknownOutcome):
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
