package sim

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/storage"
)

// Workload is what the simulated clients do.
type Workload struct {
	Appenders int           // clients appending; default 4
	Appends   int           // appends per appender; default 50
	Readers   int           // clients reading random addresses; default 2
	Reads     int           // reads per reader; default 50
	Streams   int           // streams an append may join; default 3
	OpTimeout time.Duration // bound on one client call; default 10s
	Think     time.Duration // the most a client pauses between calls; default 5ms
	// Reconfigs is how many reconfigurations a reconfiguring client runs
	// during the workload, each after a random pause of up to ReconfigGap:
	// a new epoch with the same layout, or a unit replaced by a spare (the
	// cluster's Spares).
	Reconfigs   int
	ReconfigGap time.Duration // default 300ms
}

func (w *Workload) fill() {
	setDefault(&w.Appenders, 4)
	setDefault(&w.Appends, 50)
	setDefault(&w.Readers, 2)
	setDefault(&w.Reads, 50)
	setDefault(&w.Streams, 3)
	setDefault(&w.OpTimeout, 10*time.Second)
	setDefault(&w.Think, 5*time.Millisecond)
	setDefault(&w.ReconfigGap, 300*time.Millisecond)
}

// Options configure one simulated run. All of it is derived from Seed by
// Swarm; tests may set fields by hand.
type Options struct {
	Seed     uint64
	Cluster  ClusterConfig
	Workload Workload
	Latency  time.Duration // one-way network delay; default 1ms
	Client   corfu.Config  // client tuning (timeouts, retries); transport fields are set by the cluster
	MaxSteps int           // event budget; default 10M
	// Trace, if set, receives every event the scheduler processes (see
	// Scheduler.Trace), for timelines. It does not change the run.
	Trace func(Event) `json:"-"`
}

// Swarm derives a run's options from its seed: the workload's shape and the
// network's latency vary, so a sweep over seeds covers many configurations.
func Swarm(seed uint64) Options {
	r := rand.New(rand.NewPCG(seed, 0x5157a4d))
	o := Options{Seed: seed}
	o.Cluster.Replicas = 1 + r.IntN(3)
	o.Cluster.Units = o.Cluster.Replicas * (1 + r.IntN(3))
	o.Cluster.Backpointers = 1 + r.IntN(4)
	o.Workload.Appenders = 1 + r.IntN(5)
	o.Workload.Appends = 5 + r.IntN(30)
	o.Workload.Readers = 1 + r.IntN(3)
	o.Workload.Reads = 5 + r.IntN(30)
	o.Workload.Streams = 1 + r.IntN(4)
	o.Workload.Reconfigs = r.IntN(4)
	o.Cluster.Spares = r.IntN(o.Workload.Reconfigs + 1)
	o.Latency = time.Duration(100+r.IntN(3000)) * time.Microsecond
	o.Client.RPCTimeout = 50 * time.Millisecond
	o.Client.HoleFillWait = 500 * time.Millisecond
	return o
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
	Failed          int // operations that ended with an error
	Epochs          int // the newest epoch committed
}

// linTimeout bounds the linearizability check of one run's history. A
// check that runs out of it is reported as a violation ("LinUnknown"), never
// as a pass.
const linTimeout = 30 * time.Second

// Run executes one simulated run: it builds the cluster, runs the workload's
// clients concurrently, then a final read of every address, and checks the
// history and the replicas' observations.
func Run(o Options) Result {
	o.Workload.fill()
	setDefault(&o.Latency, time.Millisecond)
	setDefault(&o.MaxSteps, 10_000_000)
	s := NewScheduler(o.Seed)
	defer s.Close()
	s.MaxSteps = uint64(o.MaxSteps)
	s.Trace = o.Trace
	net := NewNetwork(s, Constant(o.Latency))
	cl, err := NewCluster(s, net, o.Cluster)
	if err != nil {
		return Result{Err: err}
	}
	start := s.Now()
	h := &History{}
	res := Result{History: h}
	since := func() time.Duration { return s.Now().Sub(start) }
	w := o.Workload
	bg := context.Background()

	// call runs one client operation under the workload's timeout and
	// records it in the history.
	record := func(client int, kind OpKind, addr storage.Address, value string, f func(ctx context.Context) (storage.Address, string, error)) (storage.Address, error) {
		id := h.Invoke(client, kind, since(), addr, value)
		ctx, cancel := s.WithTimeout(bg, w.OpTimeout)
		defer cancel()
		a, v, err := f(ctx)
		if a == 0 && kind != OpAppend && kind != OpTail {
			a = addr
		}
		h.Return(id, since(), a, v, outcome(kind, err), err)
		switch outcome(kind, err) {
		case OK, Junk:
			switch kind {
			case OpAppend:
				res.Appends++
			case OpRead:
				res.Reads++
			}
		case Failed, Unknown:
			res.Failed++
		}
		return a, err
	}
	think := func(r *rand.Rand) error { return s.Sleep(bg, time.Duration(r.Int64N(int64(w.Think)+1))) }
	open := func() (*corfu.Client, error) {
		ctx, cancel := s.WithTimeout(bg, w.OpTimeout)
		defer cancel()
		return cl.Client(ctx, o.Client)
	}
	var taskErrs []error
	running := 0
	client := 0
	spawn := func(name string, f func(id int, r *rand.Rand) error) {
		client++
		id := client
		running++
		r := s.Fork(fmt.Sprintf("%s%d", name, id))
		s.Go(fmt.Sprintf("%s%d", name, id), func() {
			defer func() { running-- }()
			if err := f(id, r); err != nil {
				taskErrs = append(taskErrs, fmt.Errorf("%s%d: %w", name, id, err))
			}
		})
	}
	for range w.Appenders {
		spawn("appender", func(id int, r *rand.Rand) error {
			c, err := open()
			if err != nil {
				return err
			}
			for i := range w.Appends {
				if err := think(r); err != nil {
					return err
				}
				var streams []corfu.StreamID
				for sid := range w.Streams {
					if r.IntN(2) == 0 {
						streams = append(streams, corfu.StreamID(sid+1))
					}
				}
				value := fmt.Sprintf("c%d-%d", id, i)
				record(id, OpAppend, 0, value, func(ctx context.Context) (storage.Address, string, error) {
					a, err := c.Append(ctx, []byte(value), streams...)
					return a, "", err
				})
			}
			return nil
		})
	}
	for range w.Readers {
		spawn("reader", func(id int, r *rand.Rand) error {
			c, err := open()
			if err != nil {
				return err
			}
			for range w.Reads {
				if err := think(r); err != nil {
					return err
				}
				tail, err := record(id, OpTail, 0, "", func(ctx context.Context) (storage.Address, string, error) {
					t, err := c.Tail(ctx)
					return t, "", err
				})
				if err != nil {
					continue
				}
				addr := tail // sometimes probe the tail itself: unwritten, never filled
				if tail > 0 && r.IntN(8) != 0 {
					addr = storage.Address(r.Uint64N(uint64(tail)))
				}
				record(id, OpRead, addr, "", readOp(c, addr))
			}
			return nil
		})
	}
	if w.Reconfigs > 0 {
		spawn("reconfigurer", func(id int, r *rand.Rand) error {
			c, err := open()
			if err != nil {
				return err
			}
			spares := cl.UnitIDs[len(cl.UnitIDs)-cl.Options.Spares:]
			for range w.Reconfigs {
				if err := s.Sleep(bg, time.Duration(r.Int64N(int64(w.ReconfigGap)+1))); err != nil {
					return err
				}
				var change corfu.Change
				cur := c.Projection()
				if len(spares) > 0 && r.IntN(2) == 0 {
					units := cur.Segments[len(cur.Segments)-1].Stripes[r.IntN(len(cur.Segments[len(cur.Segments)-1].Stripes))]
					old := units[r.IntN(len(units))]
					change, spares = corfu.ReplaceUnit(old, spares[0]), spares[1:]
				}
				ctx, cancel := s.WithTimeout(bg, w.OpTimeout)
				p, err := c.Reconfigure(ctx, change)
				cancel()
				if errors.Is(err, corfu.ErrReconfigLost) {
					continue // another client's recovery took the epoch
				}
				if err != nil {
					return fmt.Errorf("reconfigure: %w", err)
				}
				res.Epochs = max(res.Epochs, int(p.Epoch))
			}
			return nil
		})
	}
	if err := s.Run(); err != nil {
		res.Err = err
	}
	// The final pass: read every address handed out, once all clients are
	// done, so that no acknowledged append goes unchecked.
	if res.Err == nil {
		spawn("final", func(id int, r *rand.Rand) error {
			c, err := open()
			if err != nil {
				return err
			}
			tail, err := record(id, OpTail, 0, "", func(ctx context.Context) (storage.Address, string, error) {
				t, err := c.Tail(ctx)
				return t, "", err
			})
			if err != nil {
				return err
			}
			for a := range tail {
				record(id, OpRead, a, "", readOp(c, a))
			}
			return nil
		})
		if err := s.Run(); err != nil {
			res.Err = err
		}
	}
	if res.Err == nil && running != 0 {
		res.Err = fmt.Errorf("sim: %d client tasks never finished", running)
	}
	if res.Err == nil && len(taskErrs) > 0 {
		res.Err = errors.Join(taskErrs...)
	}
	res.Violations = Check(h, cl.Monitor)
	lin := CheckLinearizable(h, linTimeout)
	res.Linearizability = lin
	res.Violations = append(res.Violations, lin.Violations()...)
	if res.Err == nil {
		for _, v := range res.Violations {
			if !v.Warning {
				res.Err = fmt.Errorf("sim: invariant violated: %v", v)
				break
			}
		}
	}
	res.TraceHash = s.TraceHash()
	res.Steps = s.Steps()
	res.VirtualTime = since()
	return res
}

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
	}
	// Any other failed call is definite: an append that returns another
	// error wrote nothing anywhere (see corfu.Client.Append); a failed read,
	// tail, fill or trim changed nothing a checker relies on.
	return Failed
}
