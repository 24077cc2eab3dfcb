package sim

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// The scaling experiment measures the log's append and read throughput
// against its number of chains, as the CORFU paper (NSDI 2012) does: real
// corfu.Clients, against the real units, sequencer and layout servers of a
// Cluster, over a Network whose Policy is a Bandwidth model of the paper's
// setup (see ScalingConfig). Throughput is the operations that completed
// in a window of virtual time, after a warm-up, per virtual second.

// Defaults of ScalingConfig.
const (
	DefaultScalingClients  = 64                     // ScalingConfig.Clients
	DefaultScalingWorkers  = 8                      // ScalingConfig.Workers
	DefaultEntryBytes      = 4096                   // ScalingConfig.EntryBytes: the paper's 4 KB
	DefaultPropagation     = 50 * time.Microsecond  // ScalingConfig.Propagation
	DefaultTokenService    = 5 * time.Microsecond   // ScalingConfig.TokenService: 200K tokens/s
	DefaultScalingWarmup   = 20 * time.Millisecond  // ScalingConfig.Warmup
	DefaultScalingWindow   = 100 * time.Millisecond // ScalingConfig.Window
	DefaultPrefillPerChain = 64                     // ScalingConfig.PrefillPerChain
)

// ScalingConfig shapes one point of the scaling experiment. Its zero value
// is one chain of two units on the paper's model: 1 Gb/s links, units
// whose flash reads and writes at the rate of their link, and a sequencer
// that hands out 200K tokens/s.
type ScalingConfig struct {
	Seed     uint64 // the seed of the run; the same seed gives the same run
	Chains   int    // chains of Replicas units each; default 1
	Replicas int    // units per chain; default 2
	// Clients is the number of client nodes, each a corfu.Client with a
	// network interface of its own; Workers the closed-loop tasks on each,
	// every one making one call after another. Defaults 64 and 8.
	Clients, Workers int
	// EntryBytes is the payload of an append; default 4096, the paper's
	// 4 KB entries. The entry's header and the request's framing come on
	// top, on the wire.
	EntryBytes int
	// Link is every node's interface rate per direction, in bytes per
	// second; default 1 Gb/s (Gbps).
	Link float64
	// UnitBandwidth is a unit's flash rate, in bytes per second, for the
	// bytes it writes (a write request) and reads (a read's answer);
	// default Link.
	UnitBandwidth float64
	// Propagation is a message's one-way time on the wire and through the
	// switch; default 50µs.
	Propagation time.Duration
	// TokenService is the sequencer's time for one request; default 5µs,
	// which caps it at 200K tokens/s.
	TokenService time.Duration
	// Warmup and Window: the operations that complete in
	// [start+Warmup, start+Warmup+Window) are counted, start being when
	// the workers begin. Defaults 20ms and 100ms.
	Warmup, Window time.Duration
	// PrefillPerChain is how many entries per chain are appended before
	// the read phase, which reads them at random; default 64.
	PrefillPerChain int
}

func (c *ScalingConfig) fill() error {
	setDefault(&c.Chains, 1)
	setDefault(&c.Replicas, 2)
	setDefault(&c.Clients, DefaultScalingClients)
	setDefault(&c.Workers, DefaultScalingWorkers)
	setDefault(&c.EntryBytes, DefaultEntryBytes)
	setDefault(&c.Propagation, DefaultPropagation)
	setDefault(&c.TokenService, DefaultTokenService)
	setDefault(&c.Warmup, DefaultScalingWarmup)
	setDefault(&c.Window, DefaultScalingWindow)
	setDefault(&c.PrefillPerChain, DefaultPrefillPerChain)
	if c.Link == 0 {
		c.Link = Gbps
	}
	if c.UnitBandwidth == 0 {
		c.UnitBandwidth = c.Link
	}
	switch {
	case c.Chains < 1, c.Replicas < 1, c.Clients < 1, c.Workers < 1, c.EntryBytes < 16, c.PrefillPerChain < 1:
		return fmt.Errorf("sim: bad scaling config %+v: want positive counts and entries of at least 16 bytes", *c)
	case c.Link < 0, c.UnitBandwidth < 0, c.Propagation < 0, c.TokenService < 0, c.Warmup < 0, c.Window <= 0:
		return fmt.Errorf("sim: bad scaling config %+v: want non-negative rates and times, a positive window", *c)
	}
	return nil
}

// Throughput is what one phase of a scaling run measured.
type Throughput struct {
	Ops         int           // operations that completed in the window
	PerSecond   float64       // Ops per virtual second of the window
	MeanLatency time.Duration // their mean time from call to return
	Errors      int           // operations that failed, in the window or before it
	TraceHash   uint64        // the run's Scheduler.TraceHash, for determinism checks
	Steps       uint64        // the run's events
}

// ScalingPoint is one point of the scaling experiment: the append and the
// read throughput of one number of chains.
type ScalingPoint struct {
	Chains, Units int        // the cluster: Units is Chains x Replicas
	Appends       Throughput // MeasureAppends
	Reads         Throughput // MeasureReads
}

// Scale runs the two phases of one point, each a run of its own from
// cfg.Seed: MeasureAppends, then MeasureReads.
func Scale(cfg ScalingConfig) (ScalingPoint, error) {
	if err := cfg.fill(); err != nil {
		return ScalingPoint{}, err
	}
	pt := ScalingPoint{Chains: cfg.Chains, Units: cfg.Chains * cfg.Replicas}
	var err error
	if pt.Appends, err = MeasureAppends(cfg); err != nil {
		return pt, err
	}
	pt.Reads, err = MeasureReads(cfg)
	return pt, err
}

// MeasureAppends measures the append throughput: every worker appends
// entries of cfg.EntryBytes, one after another, to no stream.
func MeasureAppends(cfg ScalingConfig) (Throughput, error) { return measure(cfg, false) }

// MeasureReads measures the read throughput: the workers first append
// cfg.PrefillPerChain entries per chain between them, then every worker
// reads one of those entries after another, each drawn at random.
func MeasureReads(cfg ScalingConfig) (Throughput, error) { return measure(cfg, true) }

// scalingRun is the state of one measuring run.
type scalingRun struct {
	cfg     ScalingConfig
	s       *Scheduler
	cl      *Cluster
	clients []*corfu.Client
	units   map[transport.NodeID]bool // looked up, never iterated

	from, end time.Time // the window
	ops       int
	latency   time.Duration
	errs      int
	firstErr  error
	written   []storage.Address // the prefill's entries
	result    Throughput
	failed    error // the driver's failure
}

// service is the Bandwidth model's Service: the sequencer's time per
// request, and a unit's flash time for the bytes a request writes or a
// read's answer carries.
func (r *scalingRun) service(m *Message) time.Duration {
	switch {
	case !m.Reply && m.To == r.cl.Projection.Sequencer:
		return r.cfg.TokenService
	case !m.Reply && isMutation(m.Op) && r.units[m.To]:
		// NB: a write, a batch of writes, a fill, a trim: the bytes it
		// carries go to flash.
		return transmit(len(m.Data), r.cfg.UnitBandwidth)
	case m.Reply && m.Op == transport.OpRead && r.units[m.From]:
		return transmit(len(m.Data), r.cfg.UnitBandwidth)
	}
	return 0
}

func measure(cfg ScalingConfig, reads bool) (Throughput, error) {
	if err := cfg.fill(); err != nil {
		return Throughput{}, err
	}
	s := NewScheduler(cfg.Seed)
	defer s.Close()
	net := NewNetwork(s, Constant(cfg.Propagation))
	cl, err := NewCluster(s, net, ClusterConfig{Units: cfg.Chains * cfg.Replicas, Replicas: cfg.Replicas})
	if err != nil {
		return Throughput{}, err
	}
	defer cl.Close()
	r := &scalingRun{cfg: cfg, s: s, cl: cl, units: make(map[transport.NodeID]bool)}
	for _, seg := range cl.Projection.Segments {
		for _, chain := range seg.Stripes {
			for _, u := range chain {
				r.units[u] = true
			}
		}
	}
	net.SetPolicy(&Bandwidth{Link: cfg.Link, Propagation: cfg.Propagation, Service: r.service})
	s.Go("scale", func() { r.drive(reads) })
	if err := s.Run(); err != nil {
		return Throughput{}, err
	}
	if r.failed != nil {
		return Throughput{}, r.failed
	}
	if n := cl.Monitor.Count(); n > 0 {
		return Throughput{}, fmt.Errorf("sim: scaling run (seed %d, %d chains) broke %d invariants, the first: %v",
			cfg.Seed, cfg.Chains, n, cl.Monitor.Violations()[0])
	}
	return r.result, nil
}

// drive opens the clients, runs the prefill of a read phase, starts the
// workers and, at the end of the window, takes the measurement and stops
// the run.
func (r *scalingRun) drive(reads bool) {
	ctx := context.Background()
	s := r.s
	for range r.cfg.Clients {
		c, err := r.cl.Client(ctx, corfu.Config{})
		if err != nil {
			r.failed = fmt.Errorf("sim: scaling: open a client: %w", err)
			s.Stop()
			return
		}
		r.clients = append(r.clients, c)
	}
	if reads {
		if err := r.prefill(ctx); err != nil {
			r.failed = err
			s.Stop()
			return
		}
	}
	start := s.Now()
	r.from = start.Add(r.cfg.Warmup)
	r.end = r.from.Add(r.cfg.Window)
	for i, c := range r.clients {
		for w := range r.cfg.Workers {
			name := fmt.Sprintf("client%d/worker%d", i+1, w)
			if reads {
				rng := s.Fork("scale/" + name)
				s.Go(name, func() {
					r.loop(func() error {
						_, err := c.Read(ctx, r.written[rng.IntN(len(r.written))])
						return err
					})
				})
			} else {
				p := scalingPayload(r.cfg.EntryBytes, i, w)
				n := uint64(0)
				s.Go(name, func() {
					r.loop(func() error {
						n++
						binary.LittleEndian.PutUint64(p[8:], n)
						_, err := c.Append(ctx, p)
						return err
					})
				})
			}
		}
	}
	if err := s.Sleep(ctx, r.end.Sub(s.Now())); err != nil {
		r.failed = err
		return
	}
	r.result = Throughput{Ops: r.ops, PerSecond: float64(r.ops) / r.cfg.Window.Seconds(), Errors: r.errs,
		TraceHash: s.TraceHash(), Steps: s.Steps()}
	if r.ops > 0 {
		r.result.MeanLatency = r.latency / time.Duration(r.ops)
	}
	if r.errs > 0 {
		// NB: with no faults and timeouts far above the queues' waits,
		// an operation that fails is a finding, not noise.
		r.failed = fmt.Errorf("sim: scaling run (seed %d, %d chains): %d operations failed, the first: %w",
			r.cfg.Seed, r.cfg.Chains, r.errs, r.firstErr)
	}
	s.Stop()
}

// loop is a closed-loop worker: it calls op until the window ends and
// counts the calls that complete in it.
func (r *scalingRun) loop(op func() error) {
	s := r.s
	for s.Now().Before(r.end) {
		start := s.Now()
		err := op()
		if errors.Is(err, ErrStopped) {
			return
		}
		done := s.Now()
		switch {
		case err != nil:
			r.errs++
			if r.firstErr == nil {
				r.firstErr = err
			}
		case !done.Before(r.from) && done.Before(r.end):
			r.ops++
			r.latency += done.Sub(start)
		}
	}
}

// prefill appends PrefillPerChain entries per chain with every worker of
// every client, and waits for them all.
func (r *scalingRun) prefill(ctx context.Context) error {
	s := r.s
	total := r.cfg.PrefillPerChain * r.cfg.Chains
	claimed, running := 0, 0
	done := s.NewSignal("prefill")
	var failed error
	for i, c := range r.clients {
		for w := range r.cfg.Workers {
			running++
			p := scalingPayload(r.cfg.EntryBytes, i, w)
			s.Go(fmt.Sprintf("client%d/prefill%d", i+1, w), func() {
				defer func() {
					if running--; running == 0 {
						done.Fire()
					}
				}()
				for claimed < total && failed == nil {
					claimed++
					binary.LittleEndian.PutUint64(p[8:], uint64(claimed))
					a, err := c.Append(ctx, p)
					if err != nil {
						failed = fmt.Errorf("sim: scaling: prefill append: %w", err)
						return
					}
					r.written = append(r.written, a)
				}
			})
		}
	}
	if err := done.Wait(ctx); err != nil {
		return err
	}
	return failed
}

// scalingPayload returns an entry of n bytes that names its client and worker.
func scalingPayload(n, client, worker int) []byte {
	p := make([]byte, n)
	binary.LittleEndian.PutUint32(p, uint32(client))
	binary.LittleEndian.PutUint32(p[4:], uint32(worker))
	for i := 16; i < n; i++ {
		p[i] = byte(i)
	}
	return p
}
