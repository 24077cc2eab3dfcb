package main

import (
	"context"
	"crypto/rand"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/inproc"
	"github.com/corfulog/corfu/transport/tcp"
)

// corfu bench measures appends (or, with -sequencer, tokens) and prints one
// line in the format other log benchmarks share:
//
//	peer=corfu size=128 clients=1 appends_per_s=... mb_per_s=... p50_us=... p99_us=... p999_us=... window=64 inflight=64 mean_us=... max_us=... ops=... errors=... elapsed_s=... fsync=on mode=closed-loop store=disk ...
//
// The first eight keys come in that order; key=value pairs follow.
// mb_per_s counts payload bytes only, in 10^6 bytes/s; latencies are
// nearest-rank percentiles over every measured append, from just before the
// call to the moment its acknowledgement is seen.

// benchLayouts is the number of layout servers of a cluster the bench
// starts (as corfu cluster up's default).
const benchLayouts = 3

// benchSeqN is -n's default with -sequencer, in tokens: a sequencer in
// process hands out 200000 tokens in milliseconds.
const benchSeqN = 10_000_000

// benchConfig is corfu bench's settings.
type benchConfig struct {
	n, size, clients, window, warmup int
	sync, fsync, keep, verbose       bool
	duration, opTimeout              time.Duration
	dir, cluster, cpuProfile, trace  string
	memProfile                       string
	replicas, chains                 int
	transport, store                 string
	sequencer                        bool
	batch                            int
	async                            bool // -mode async: AppendAsync with a window of appends in flight
}

// inflight is the number of appends allowed in flight in all.
func (c *benchConfig) inflight() int { return c.clients * c.window }

// mode is the line's mode: how the appends are driven.
func (c *benchConfig) mode() string {
	switch {
	case c.sync:
		return "sync"
	case c.async:
		return "async"
	}
	return "closed-loop"
}

// parseBench reads corfu bench's flags. It does not read CORFU_* variables
// or a config file as the other subcommands do: a CORFU_CLUSTER meant for
// the client verbs must not point a bench at a cluster that holds data.
func parseBench(args []string, stderr io.Writer) (*benchConfig, int, bool) {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	c := &benchConfig{}
	fs.IntVar(&c.n, "n", 200000, fmt.Sprintf("appends to measure; the run stops at -n or -duration, whichever first (with -sequencer: tokens, default %d)", benchSeqN))
	fs.IntVar(&c.size, "size", 128, "payload bytes per append")
	fs.IntVar(&c.clients, "clients", 1, "independent clients, each a corfu.Client with connections of its own")
	fs.IntVar(&c.window, "window", 64, "appends in flight per client (total in flight = clients × window)")
	mode := fs.String("mode", "async", "async: each client keeps -window appends in flight with AppendAsync (batched); closed-loop: -window goroutines per client, each calling Append one at a time")
	fs.BoolVar(&c.sync, "sync", false, "single-client latency mode: one append at a time (clients=1, window=1)")
	fs.DurationVar(&c.duration, "duration", 20*time.Second, "cap on the measured phase (and on the warmup)")
	fs.IntVar(&c.warmup, "warmup", 2000, "appends done first with the same concurrency, not measured")
	fsync := fs.String("fsync", "on", "on|off: on = each unit acknowledges a write once an fsync covering it returned (disk.SyncBatch, group commit); off = units never fsync records (disk.SyncNone)")
	fs.DurationVar(&c.opTimeout, "op-timeout", 10*time.Second, "bound on one append")
	fs.StringVar(&c.dir, "dir", "", "base directory of the run's data directory (default: the system's temporary directory)")
	fs.BoolVar(&c.keep, "keep", false, "keep the data directory after the run")
	fs.BoolVar(&c.verbose, "v", false, "log the cluster's and the clients' records to stderr")
	fs.IntVar(&c.replicas, "replicas", 3, "replicas per chain")
	fs.IntVar(&c.chains, "chains", 1, "chains the log is striped over (units = replicas × chains)")
	fs.StringVar(&c.transport, "transport", "tcp", "tcp: every node on its own loopback TCP listener, served in this process as corfu serve serves it; inproc: the in-process network (which encodes every message)")
	fs.StringVar(&c.store, "store", "disk", "disk: each unit is a storage/disk unit, the sequencer and the layout servers keep their state on disk, as corfu serve does; memory: in-memory units and no state on disk (fsync is reported off)")
	fs.StringVar(&c.cluster, "cluster", "", "append to the running cluster this cluster file names instead of starting one (it keeps the entries; -fsync only labels the line)")
	fs.BoolVar(&c.sequencer, "sequencer", false, "measure the sequencer alone: tokens/s of Next calls (inproc: sequencer.Sequencer.Next; tcp: over the tcp transport)")
	fs.IntVar(&c.batch, "batch", 1, "with -sequencer: tokens per Next call")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase to this file")
	fs.StringVar(&c.memProfile, "memprofile", "", "write a heap allocation profile (allocations since the start, warmup included) to this file at the end of the measured phase")
	fs.StringVar(&c.trace, "trace", "", "write an execution trace of the measured phase to this file (go tool trace reads it)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, 0, false
		}
		return nil, 2, false
	}
	bad := func(format string, a ...any) (*benchConfig, int, bool) {
		fmt.Fprintf(stderr, "corfu bench: "+format+"\n", a...)
		return nil, 2, false
	}
	if fs.NArg() > 0 {
		return bad("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	switch *mode {
	case "async":
		c.async = !c.sync
	case "closed-loop":
	default:
		return bad("-mode %q: want async or closed-loop", *mode)
	}
	switch strings.ToLower(*fsync) {
	case "on", "true", "1", "yes":
		c.fsync = true
	case "off", "false", "0", "no":
	default:
		return bad("-fsync must be on or off, got %q", *fsync)
	}
	if c.sync {
		c.clients, c.window = 1, 1
	}
	if c.sequencer && !set["n"] {
		c.n = benchSeqN
	}
	switch {
	case c.n < 1:
		return bad("-n must be >= 1")
	case !c.sequencer && (c.size < 1 || c.size > corfu.DefaultMaxEntryBytes):
		return bad("-size must be in [1, %d]", corfu.DefaultMaxEntryBytes)
	case c.clients < 1 || c.clients > 1024:
		return bad("-clients must be in [1, 1024]")
	case c.window < 1 || c.window > 65536:
		return bad("-window must be in [1, 65536]")
	case c.inflight() > 65536:
		return bad("-clients × -window must be <= 65536")
	case c.duration <= 0 || c.duration > time.Hour:
		return bad("-duration must be in (0, 1h]")
	case c.warmup < 0:
		return bad("-warmup must be >= 0")
	case c.opTimeout <= 0 || c.opTimeout > 5*time.Minute:
		return bad("-op-timeout must be in (0, 5m]")
	case c.replicas < 1 || c.replicas > 16:
		return bad("-replicas must be in [1, 16]")
	case c.chains < 1 || c.chains > 64:
		return bad("-chains must be in [1, 64]")
	case c.transport != "tcp" && c.transport != "inproc":
		return bad("-transport must be tcp or inproc, got %q", c.transport)
	case c.store != "disk" && c.store != "memory":
		return bad("-store must be disk or memory, got %q", c.store)
	case c.batch < 1 || c.batch > sequencer.MaxBatch:
		return bad("-batch must be in [1, %d]", sequencer.MaxBatch)
	case set["batch"] && !c.sequencer:
		return bad("-batch goes with -sequencer")
	}
	if c.store == "memory" {
		if set["fsync"] && c.fsync {
			return bad("-fsync on needs -store disk: in-memory units have nothing to fsync")
		}
		c.fsync = false
	}
	if c.cluster != "" {
		for _, f := range []string{"replicas", "chains", "store", "transport", "dir", "keep"} {
			if set[f] {
				return bad("-%s does not go with -cluster: the cluster file gives the cluster's shape", f)
			}
		}
		if c.sequencer {
			return bad("-sequencer does not go with -cluster: its tokens would leave holes in the cluster's log")
		}
	}
	if c.sequencer {
		switch {
		case c.transport == "inproc":
			c.store, c.fsync = "memory", false // NB: Next called directly: nothing persists
		case c.store == "disk" && set["fsync"] && !c.fsync:
			return bad("-sequencer -store disk always fsyncs the sequencer's state; -store memory keeps none")
		default:
			c.fsync = c.store == "disk"
		}
	}
	return c, 0, true
}

// benchCmd runs corfu bench: it starts a cluster (or connects to one),
// measures, and prints the result line on stdout.
func benchCmd(args []string, stdout, stderr io.Writer) int {
	c, status, ok := parseBench(args, stderr)
	if !ok {
		return status
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	line, err := runBench(ctx, c, stderr)
	if line != "" {
		fmt.Fprintln(stdout, line)
	}
	if err != nil {
		fmt.Fprintf(stderr, "corfu bench: %v\n", err)
		return 1
	}
	return 0
}

// runBench runs the bench c describes and returns its result line.
func runBench(ctx context.Context, c *benchConfig, stderr io.Writer) (line string, err error) {
	log := slog.New(slog.DiscardHandler)
	if c.verbose {
		log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	if c.sequencer && c.transport == "inproc" {
		line, err := runSeqBench(ctx, c, nil, stderr)
		if ctx.Err() != nil && err == nil {
			err = errors.New("interrupted: the line covers the calls done until then")
		}
		return line, err
	}
	var b *benchCluster
	if c.cluster != "" {
		cf, err := readClusterFile(c.cluster)
		if err != nil {
			return "", err
		}
		b = &benchCluster{cf: cf, log: log}
	} else {
		dir, err := os.MkdirTemp(c.dir, "corfu-bench-")
		if err != nil {
			return "", err
		}
		defer func() {
			if c.keep {
				fmt.Fprintf(stderr, "# kept data in %s\n", dir)
				return
			}
			if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
				err = rerr
			}
		}()
		var names []string // NB: nil serves every node
		if c.sequencer {
			names = []string{"seq"}
		}
		if b, err = startBenchCluster(c, dir, names, log); err != nil {
			return "", err
		}
		if c.verbose {
			fmt.Fprintf(stderr, "# cluster: %d layout servers, a sequencer, %d units in %d chains of %d (%s, %s store), data in %s\n",
				benchLayouts, c.replicas*c.chains, c.chains, c.replicas, c.transport, c.store, dir)
		}
	}
	defer func() {
		if cerr := b.close(); cerr != nil && err == nil {
			err = cerr
		}
	}()
	if c.sequencer {
		line, err = runSeqBench(ctx, c, b, stderr)
	} else {
		line, err = runAppendBench(ctx, c, b, stderr)
	}
	if ferr := b.failure(); ferr != nil && err == nil {
		err = ferr
	}
	if ctx.Err() != nil && err == nil {
		err = errors.New("interrupted: the line covers the appends done until then")
	}
	return line, err
}

// runAppendBench opens c.clients clients of b, warms up, measures and
// returns the result line.
func runAppendBench(ctx context.Context, c *benchConfig, b *benchCluster, stderr io.Writer) (string, error) {
	var layout []projection.NodeID
	for _, n := range b.cf.Layout {
		layout = append(layout, projection.NodeID(n))
	}
	var loops []func(*phase)
	for range c.clients {
		caller, err := b.caller()
		if err != nil {
			return "", err
		}
		octx, cancel := context.WithTimeout(ctx, c.opTimeout)
		rec := &asyncRecorder{}
		cfg := corfu.Config{Layout: layout, Transport: caller, Logger: b.log, Backpointers: b.cf.backpointers()}
		if c.async {
			cfg.Window = c.window
			cfg.Hooks = []corfu.Hook{rec}
		}
		cl, err := corfu.Open(octx, cfg)
		cancel()
		if err != nil {
			if cc, ok := caller.(io.Closer); ok {
				cc.Close()
			}
			return "", fmt.Errorf("opening a client: %w", err)
		}
		defer cl.Close()
		if c.async {
			loops = append(loops, func(ph *phase) { asyncLoop(ph, cl, rec) })
			continue
		}
		app := appender(func(ctx context.Context, data []byte) error {
			_, err := cl.Append(ctx, data)
			return err
		})
		loops = append(loops, func(ph *phase) { benchLoop(ph, app, c.window) })
	}
	data := make([]byte, c.size)
	rand.Read(data)
	res, err := measure(ctx, c, loops, data, c.opTimeout, 1, "appends", stderr)
	if err != nil {
		return "", err
	}
	transportName, store := c.transport, c.store
	var unitSync string
	if c.cluster != "" {
		transportName, store, unitSync = "tcp", "cluster", "cluster"
	} else {
		unitSync = c.unitSync().String()
		if c.store == "memory" {
			unitSync = "memory"
		}
	}
	extra := []string{"mode=" + c.mode(), "store=" + store,
		fmt.Sprintf("replicas=%d", b.cf.Replicas), fmt.Sprintf("chains=%d", len(b.cf.Units)/b.cf.Replicas),
		"transport=" + transportName, "unit_sync=" + unitSync}
	if c.sync && c.fsync && b.dir != "" && c.store == "disk" && c.transport == "tcp" {
		// NB: after the measured phase, in the same run, on the same disk.
		bd, err := measureBound(ctx, b.dir, b.cf.Replicas)
		if err != nil {
			return "", err
		}
		p50 := res.percentile(0.5)
		fmt.Fprintf(stderr, "# protocol bound: %d x fsync %v + %d x loopback round trip %v = %v; p50 %v is %.2fx it\n",
			bd.replicas, bd.fsync, bd.replicas+1, bd.rtt, bd.total(), p50, float64(p50)/float64(bd.total()))
		extra = append(extra, fmt.Sprintf("bound_us=%d", bd.total().Microseconds()),
			fmt.Sprintf("fsync_us=%d", bd.fsync.Microseconds()), fmt.Sprintf("rtt_us=%d", bd.rtt.Microseconds()))
	}
	if !c.sync && c.fsync && c.size >= 4096 && b.dir != "" && c.store == "disk" {
		// NB: after the measured phase, in the same run, on the same disk
		// the replicas share.
		bw, err := measureDiskBandwidth(ctx, b.dir)
		if err != nil {
			return "", fmt.Errorf("timing the disk: %w", err)
		}
		target := 0.7 * bw / float64(b.cf.Replicas)
		fmt.Fprintf(stderr, "# disk: %.1f MB/s sequential; 70%% of it over %d replicas is %.1f MB/s; this run wrote %.1f MB/s of payload (%.2fx it)\n",
			bw, b.cf.Replicas, target, res.rate()*float64(c.size)/1e6, res.rate()*float64(c.size)/1e6/target)
		extra = append(extra, fmt.Sprintf("disk_mb_per_s=%.1f", bw), fmt.Sprintf("target_mb_per_s=%.1f", target))
	}
	line := benchLine("corfu", "appends_per_s", c.size, c.clients, c.window, c.fsync, res, res.rate(), extra...)
	return line, res.check()
}

// runSeqBench measures the sequencer alone: in process (b nil) calling
// sequencer.Sequencer.Next directly, else over TCP to b's sequencer node.
func runSeqBench(ctx context.Context, c *benchConfig, b *benchCluster, stderr io.Writer) (string, error) {
	var apps []appender
	opTimeout := c.opTimeout
	if b == nil {
		s := sequencer.New(sequencer.Config{Incarnation: 1})
		if err := s.Bootstrap(0, 0, nil); err != nil {
			return "", err
		}
		for range c.clients {
			apps = append(apps, func(context.Context, []byte) error {
				_, err := s.Next(0, c.batch, nil)
				return err
			})
		}
		opTimeout = 0 // NB: Next does not wait; a ctx per call would cost more than the call
	} else {
		for range c.clients {
			caller, err := b.caller()
			if err != nil {
				return "", err
			}
			if cc, ok := caller.(io.Closer); ok {
				defer cc.Close()
			}
			sc := transport.SequencerClient{Caller: caller, Node: transport.NodeID(b.cf.Sequencer)}
			apps = append(apps, func(ctx context.Context, _ []byte) error {
				_, err := sc.Next(ctx, 0, c.batch, nil)
				return err
			})
		}
	}
	calls := *c
	calls.n = (c.n + c.batch - 1) / c.batch
	calls.warmup = (c.warmup + c.batch - 1) / c.batch
	var loops []func(*phase)
	for _, app := range apps {
		loops = append(loops, func(ph *phase) { benchLoop(ph, app, calls.window) })
	}
	res, err := measure(ctx, &calls, loops, nil, opTimeout, c.batch, "tokens", stderr)
	if err != nil {
		return "", err
	}
	tokens := int64(res.ops) * int64(c.batch)
	line := benchLine("corfu-sequencer", "tokens_per_s", 0, c.clients, c.window, c.fsync, res, res.rate()*float64(c.batch),
		"mode="+c.mode(), "store="+c.store, fmt.Sprintf("batch=%d", c.batch), fmt.Sprintf("tokens=%d", tokens),
		fmt.Sprintf("calls_per_s=%.0f", res.rate()), "transport="+c.transport)
	return line, res.check()
}

// unitSync is the disk units' sync mode under c.
func (c *benchConfig) unitSync() disk.SyncMode {
	if c.fsync {
		return disk.SyncBatch
	}
	return disk.SyncNone
}

// measure runs the warmup and then the measured phase of c with one
// appender per client, optionally under a CPU profile and an execution
// trace, and writes the allocation profile c asks for. perOp scales the
// progress line's count (tokens per call).
func measure(ctx context.Context, c *benchConfig, loops []func(*phase), data []byte, opTimeout time.Duration, perOp int, unit string, stderr io.Writer) (benchResult, error) {
	if c.warmup > 0 {
		w := runPhase(ctx, "warmup", c.warmup, c.duration, opTimeout, data, loops, perOp, unit, stderr)
		if w.ops == 0 {
			return w, fmt.Errorf("warmup: no append succeeded (%d errors, the first: %v)", w.errors, w.firstErr)
		}
	}
	if ctx.Err() != nil {
		return benchResult{}, ctx.Err()
	}
	var stops []func() error
	if c.cpuProfile != "" {
		stop, err := startProfile(c.cpuProfile, pprof.StartCPUProfile, pprof.StopCPUProfile)
		if err != nil {
			return benchResult{}, err
		}
		stops = append(stops, stop)
	}
	if c.trace != "" {
		stop, err := startProfile(c.trace, trace.Start, trace.Stop)
		if err != nil {
			return benchResult{}, errors.Join(err, stopAll(stops))
		}
		stops = append(stops, stop)
	}
	res := runPhase(ctx, "measure", c.n, c.duration, opTimeout, data, loops, perOp, unit, stderr)
	err := stopAll(stops)
	if c.memProfile != "" {
		err = errors.Join(err, writeAllocs(c.memProfile))
	}
	return res, err
}

// startProfile creates path and starts a profile (or trace) writing to
// it; the function it returns stops the profile and closes the file.
func startProfile(path string, start func(io.Writer) error, stop func()) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	if err := start(f); err != nil {
		f.Close()
		return nil, err
	}
	return func() error { stop(); return f.Close() }, nil
}

// stopAll calls the stop functions, the last started first, and returns
// their errors.
func stopAll(stops []func() error) error {
	var errs []error
	for i := len(stops) - 1; i >= 0; i-- {
		errs = append(errs, stops[i]())
	}
	return errors.Join(errs...)
}

// writeAllocs writes the heap allocation profile (every allocation since
// the process started) to path.
func writeAllocs(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC() // NB: the profile is as of the last collection
	return errors.Join(pprof.Lookup("allocs").WriteTo(f, 0), f.Close())
}

// appender appends data through one client and returns once the append is
// acknowledged, or failed.
type appender func(ctx context.Context, data []byte) error

// loop drives one client's share of a phase: it keeps up to window appends
// in flight through app until ph's budget is spent (ph.take), and hands ph
// each append's latency, from just before the call to its acknowledgement,
// or its error (ph.add). benchLoop is the one the bench runs; one built on
// an asynchronous append (a future per append, window of them outstanding)
// can take closedLoop's place without changing anything else.
type loop func(ph *phase, app appender, window int)

// benchLoop is the loop every phase runs.
var benchLoop loop = closedLoop

// closedLoop runs window goroutines, each calling app one append at a time.
func closedLoop(ph *phase, app appender, window int) {
	var wg sync.WaitGroup
	for range window {
		wg.Go(func() {
			var lat []int64
			var errs int64
			var first error
			for ph.take() {
				ctx, cancel := ph.opContext()
				t0 := time.Now()
				err := app(ctx, ph.data)
				d := time.Since(t0)
				cancel()
				if err != nil {
					if errs++; first == nil {
						first = err
					}
					continue
				}
				lat = append(lat, int64(d))
				ph.done.Add(1)
			}
			ph.add(lat, errs, first)
		})
	}
	wg.Wait()
}

// asyncLoop drives one client's share of a phase with AppendAsync: it
// starts appends while ph's budget lasts, the client's window (-window)
// bounding those in flight, then flushes. Each append's latency is the
// client's own measure (corfu.AppendEvent.Took: from its acceptance into
// the window to its acknowledgement), which rec hands to ph.
func asyncLoop(ph *phase, cl *corfu.Client, rec *asyncRecorder) {
	rec.start(ph)
	// NB: one ctx for the phase's appends: an append's ctx bounds its
	// retries after AppendAsync returns, so it must outlive the call.
	ctx, cancel := context.Background(), context.CancelFunc(func() {})
	if ph.opTimeout > 0 {
		ctx, cancel = context.WithDeadline(ctx, ph.deadline.Add(ph.opTimeout))
	}
	defer cancel()
	for ph.take() {
		if _, err := cl.AppendAsync(ctx, ph.data); err != nil {
			rec.fail(err)
		}
	}
	fctx, cancel := ph.opContext()
	if err := cl.Flush(fctx); err != nil {
		rec.fail(err)
	}
	cancel()
	rec.finish(ph)
}

// asyncRecorder collects one client's appends as its Append hook sees
// them, for the phase under way.
type asyncRecorder struct {
	mu    sync.Mutex
	ph    *phase
	lat   []int64
	errs  int64
	first error
}

func (r *asyncRecorder) start(ph *phase) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ph, r.lat, r.errs, r.first = ph, nil, 0, nil
}

func (r *asyncRecorder) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.errs++; r.first == nil {
		r.first = err
	}
}

// OnAppend implements corfu.HookAppend.
func (r *asyncRecorder) OnAppend(ev corfu.AppendEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Err != nil {
		if r.errs++; r.first == nil {
			r.first = ev.Err
		}
		return
	}
	r.lat = append(r.lat, int64(ev.Took))
	if r.ph != nil {
		r.ph.done.Add(1)
	}
}

func (r *asyncRecorder) finish(ph *phase) {
	r.mu.Lock()
	defer r.mu.Unlock()
	ph.add(r.lat, r.errs, r.first)
	r.ph = nil
}

// phase is one bounded run of appends: at most n started, none after the
// deadline or once ctx ends, each bounded by opTimeout (none if zero).
type phase struct {
	ctx       context.Context
	n         int64
	deadline  time.Time
	opTimeout time.Duration
	data      []byte
	started   atomic.Int64
	done      atomic.Int64 // acknowledged so far, for the progress line

	mu       sync.Mutex
	lat      [][]int64
	errors   int64
	firstErr error
}

// take reports whether one more append may start.
func (ph *phase) take() bool {
	return ph.started.Add(1) <= ph.n && ph.ctx.Err() == nil && time.Now().Before(ph.deadline)
}

// opContext returns the context of one append.
func (ph *phase) opContext() (context.Context, context.CancelFunc) {
	if ph.opTimeout <= 0 {
		return context.Background(), func() {}
	}
	return context.WithTimeout(context.Background(), ph.opTimeout)
}

// add hands ph one goroutine's latencies and errors.
func (ph *phase) add(lat []int64, errs int64, first error) {
	ph.mu.Lock()
	defer ph.mu.Unlock()
	ph.lat = append(ph.lat, lat)
	ph.errors += errs
	if ph.firstErr == nil {
		ph.firstErr = first
	}
}

// runPhase runs one phase of n appends on apps, window in flight on each,
// with a progress line on stderr once a second.
func runPhase(ctx context.Context, name string, n int, dur, opTimeout time.Duration, data []byte, loops []func(*phase), perOp int, unit string, stderr io.Writer) benchResult {
	start := time.Now()
	ph := &phase{ctx: ctx, n: int64(n), deadline: start.Add(dur), opTimeout: opTimeout, data: data}
	stop := startProgress(stderr, name, func() int64 { return ph.done.Load() * int64(perOp) }, unit)
	var wg sync.WaitGroup
	for _, l := range loops {
		wg.Go(func() { l(ph) })
	}
	wg.Wait()
	elapsed := time.Since(start)
	stop()
	total := 0
	for _, l := range ph.lat {
		total += len(l)
	}
	all := make([]int64, 0, total)
	for _, l := range ph.lat {
		all = append(all, l...)
	}
	slices.Sort(all)
	return benchResult{ops: len(all), errors: ph.errors, firstErr: ph.firstErr, elapsed: elapsed, lat: all}
}

// startProgress prints "corfu bench: NAME: COUNT UNIT, RATE/s" on w once a
// second, over itself (\r) when w is a terminal, else as lines, until the
// returned func is called.
func startProgress(w io.Writer, name string, count func() int64, unit string) (stop func()) {
	tty := false
	if f, ok := w.(*os.File); ok {
		if fi, err := f.Stat(); err == nil && fi.Mode()&os.ModeCharDevice != 0 {
			tty = true
		}
	}
	quit, done := make(chan struct{}), make(chan struct{})
	printed := false
	go func() {
		defer close(done)
		t := time.NewTicker(time.Second)
		defer t.Stop()
		last, lastAt := int64(0), time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-t.C:
				n := count()
				rate := float64(n-last) / now.Sub(lastAt).Seconds()
				last, lastAt = n, now
				if tty {
					fmt.Fprintf(w, "\rcorfu bench: %s: %d %s, %.0f/s\x1b[K", name, n, unit, rate)
				} else {
					fmt.Fprintf(w, "corfu bench: %s: %d %s, %.0f/s\n", name, n, unit, rate)
				}
				printed = true
			}
		}
	}()
	return func() {
		close(quit)
		<-done
		if tty && printed {
			fmt.Fprintln(w)
		}
	}
}

// benchResult is what one phase measured.
type benchResult struct {
	ops      int // acknowledged appends (Next calls with -sequencer)
	errors   int64
	firstErr error
	elapsed  time.Duration
	lat      []int64 // sorted, in nanoseconds
}

// percentile returns the nearest-rank p-quantile (0 < p <= 1) latency.
func (r benchResult) percentile(p float64) time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	i := int(math.Ceil(p*float64(len(r.lat)))) - 1
	return time.Duration(r.lat[max(0, min(i, len(r.lat)-1))])
}

// mean returns the mean latency.
func (r benchResult) mean() time.Duration {
	if len(r.lat) == 0 {
		return 0
	}
	var s float64
	for _, v := range r.lat {
		s += float64(v)
	}
	return time.Duration(s / float64(len(r.lat)))
}

// rate returns acknowledged operations per second.
func (r benchResult) rate() float64 {
	if r.elapsed <= 0 {
		return 0
	}
	return float64(r.ops) / r.elapsed.Seconds()
}

// check reports a phase in which nothing succeeded.
func (r benchResult) check() error {
	if r.ops == 0 {
		return fmt.Errorf("no append succeeded (%d errors, the first: %v)", r.errors, r.firstErr)
	}
	return nil
}

// benchLine formats the result line: peer, size, clients, rateKey, mb_per_s,
// p50_us, p99_us, p999_us in that order, then window, inflight, mean_us,
// max_us, ops, errors, elapsed_s, fsync and extra.
func benchLine(peer, rateKey string, size, clients, window int, fsync bool, r benchResult, rate float64, extra ...string) string {
	us := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d)/float64(time.Microsecond)) }
	onOff := "off"
	if fsync {
		onOff = "on"
	}
	fields := []string{
		"peer=" + peer,
		fmt.Sprintf("size=%d", size),
		fmt.Sprintf("clients=%d", clients),
		fmt.Sprintf("%s=%.0f", rateKey, rate),
		fmt.Sprintf("mb_per_s=%.2f", rate*float64(size)/1e6),
		"p50_us=" + us(r.percentile(0.50)),
		"p99_us=" + us(r.percentile(0.99)),
		"p999_us=" + us(r.percentile(0.999)),
		fmt.Sprintf("window=%d", window),
		fmt.Sprintf("inflight=%d", clients*window),
		"mean_us=" + us(r.mean()),
		"max_us=" + us(r.percentile(1)),
		fmt.Sprintf("ops=%d", r.ops),
		fmt.Sprintf("errors=%d", r.errors),
		fmt.Sprintf("elapsed_s=%.3f", r.elapsed.Seconds()),
		"fsync=" + onOff,
	}
	return strings.Join(append(fields, extra...), " ")
}

// benchCluster is the cluster a bench runs on: started in this process by
// startBenchCluster, or a running one that a cluster file names.
type benchCluster struct {
	cf      *clusterFile
	log     *slog.Logger
	net     *inproc.Network // nil over TCP
	servers []*tcp.Server
	nodes   []*node // the disk-backed nodes, to close
	dir     string  // the data directory; "" for a cluster started elsewhere

	mu     sync.Mutex
	failed error // the first role that could not make its state durable
}

// startBenchCluster starts, in this process, benchLayouts layout servers
// (layout0..), a sequencer (seq) and c.replicas × c.chains units (unit0..)
// with their data under dir, each node on its own loopback listener (or on
// one in-process network), and serves those names lists (all if nil). With
// -store disk each node is opened as corfu serve --init opens it.
func startBenchCluster(c *benchConfig, dir string, names []string, log *slog.Logger) (_ *benchCluster, err error) {
	cf := &clusterFile{Nodes: map[string]string{}, Sequencer: "seq", Replicas: c.replicas}
	for i := range benchLayouts {
		cf.Layout = append(cf.Layout, fmt.Sprintf("layout%d", i))
	}
	for i := range c.replicas * c.chains {
		cf.Units = append(cf.Units, fmt.Sprintf("unit%d", i))
	}
	if names == nil {
		names = append(append([]string{"seq"}, cf.Layout...), cf.Units...)
	}
	b := &benchCluster{cf: cf, log: log, dir: dir}
	listeners := map[string]net.Listener{}
	defer func() {
		if err != nil {
			for _, l := range listeners {
				l.Close()
			}
			b.close()
		}
	}()
	for _, n := range append(append([]string{"seq"}, cf.Layout...), cf.Units...) {
		cf.Nodes[n] = "in-process"
		if c.transport == "tcp" && slices.Contains(names, n) {
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				return nil, err
			}
			listeners[n], cf.Nodes[n] = l, l.Addr().String()
		}
	}
	if err := cf.check(); err != nil {
		return nil, err
	}
	if c.transport == "inproc" {
		b.net = inproc.New()
	}
	for _, n := range names {
		var h *transport.Server
		if c.store == "disk" {
			nd, err := openNode(nodeOptions{cluster: cf, name: n, data: filepath.Join(dir, n), init: true, sync: c.unitSync(), log: log,
				failed: b.fail})
			if err != nil {
				return nil, fmt.Errorf("node %s: %w", n, err)
			}
			b.nodes = append(b.nodes, nd)
			h = nd.server
		} else if h, err = memoryServer(cf, n); err != nil {
			return nil, err
		}
		var served transport.Handler = h
		if h.Unit != nil {
			served = transport.NewReadWaits(h, transport.SystemTimers{})
		}
		if b.net != nil {
			b.net.Register(transport.NodeID(n), served)
			continue
		}
		srv, err := tcp.Serve(listeners[n], served, tcp.ServerConfig{Node: transport.NodeID(n), Logger: log})
		if err != nil {
			return nil, err
		}
		delete(listeners, n)
		b.servers = append(b.servers, srv)
	}
	return b, nil
}

// memoryServer returns node n of cf with its state in memory only, as
// package corfutest builds its nodes.
func memoryServer(cf *clusterFile, n string) (*transport.Server, error) {
	unit, seq, layout := cf.roles(n)
	s := &transport.Server{}
	if unit {
		s.Unit = storage.NewMemory()
	}
	if seq {
		s.Sequencer = sequencer.New(sequencer.Config{Backpointers: cf.backpointers(), Incarnation: 1})
		if err := s.Sequencer.Bootstrap(0, 0, nil); err != nil {
			return nil, err
		}
	}
	if layout {
		p, err := cf.projection()
		if err != nil {
			return nil, err
		}
		s.Layout = projection.NewAcceptor(p)
	}
	return s, nil
}

// caller returns a transport for one client of b: connections of its own
// over TCP (corfu.Client.Close closes them), else the in-process network.
func (b *benchCluster) caller() (transport.Caller, error) {
	if b.net != nil {
		return b.net, nil
	}
	return tcp.NewClient(tcp.ClientConfig{Resolve: b.cf.resolver(), Name: "corfu-bench", Logger: b.log})
}

// fail records that a node could not make its state durable.
func (b *benchCluster) fail(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.failed == nil {
		b.failed = fmt.Errorf("a node could not make its state durable: %w", err)
	}
}

// failure returns what fail recorded first.
func (b *benchCluster) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.failed
}

// close stops b's servers and closes its nodes' data directories; a
// cluster b did not start is left alone.
func (b *benchCluster) close() error {
	var errs []error
	for _, s := range b.servers {
		errs = append(errs, s.Close())
	}
	for _, n := range b.nodes {
		errs = append(errs, n.close())
	}
	b.servers, b.nodes = nil, nil
	return errors.Join(errs...)
}
