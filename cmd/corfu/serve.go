package main

import (
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/corfulog/corfu/storage/disk"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
)

// serveFlags are corfu serve's settings.
type serveFlags struct {
	fs                     *flag.FlagSet
	config, cluster, node  *string
	data, listen, http     *string
	init, pprof, logJSON   *bool
	heal                   *bool
	healTimeout            *time.Duration
	healConfirm            *int
	healScrub              *int
	sync, logLevel         *string
	tlsCert, tlsKey, tlsCA *string
	drain                  *time.Duration
}

func newServeFlags() *serveFlags {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	return &serveFlags{
		fs:          fs,
		config:      fs.String("config", "", "a JSON file of settings, by flag name ({\"data\": \"/var/lib/corfu\"}); flags and CORFU_* variables win over it"),
		cluster:     fs.String("cluster", "", "the cluster file: every node's address and the layout of epoch 0 (required)"),
		node:        fs.String("node", "", "this node's name in the cluster file (required)"),
		data:        fs.String("data", "", "this node's data directory (required)"),
		listen:      fs.String("listen", "", "address to listen on (default: the node's address in the cluster file)"),
		http:        fs.String("http", "", "address of the HTTP endpoint serving /metrics, /livez and /readyz (empty: none)"),
		init:        fs.Bool("init", false, "first start of a new node: create its data directory (a layout server starts from the cluster file's epoch 0)"),
		pprof:       fs.Bool("pprof", false, "serve /debug/pprof on the HTTP endpoint too"),
		logJSON:     fs.Bool("log-json", false, "log JSON lines instead of text"),
		sync:        fs.String("sync", "batch", "when a unit's writes are durable: batch (group commit), each (one fsync per write), none (power loss loses acknowledged writes: tests only)"),
		logLevel:    fs.String("log-level", "info", "debug, info, warn or error"),
		tlsCert:     fs.String("tls-cert", "", "PEM certificate of this node (enables TLS 1.3)"),
		tlsKey:      fs.String("tls-key", "", "PEM key of --tls-cert"),
		tlsCA:       fs.String("tls-ca", "", "PEM CA bundle that client certificates must chain to (enables mutual TLS)"),
		drain:       fs.Duration("drain", 10*time.Second, "on SIGTERM or SIGINT, how long to wait for requests in flight"),
		heal:        fs.Bool("heal", false, "run a failure detector (corfu.Detector) from this node too: it probes every node and replaces a failed unit with one of the cluster file's spares, moves a failed sequencer to a standby and rebuilds short chains; several nodes may run one (a majority of layout servers decides each epoch)"),
		healTimeout: fs.Duration("heal-timeout", 100*time.Millisecond, "with --heal: a probe's timeout, and the pause between probe rounds; a node is replaced after 3 missed rounds in a row"),
		healScrub:   fs.Int("heal-scrub", 64, "with --heal: how many addresses the detector scrubs in each round it has nothing else to do (every replica read, a damaged record repaired from another); 0 switches scrubbing off"),
		healConfirm: fs.Int("heal-confirm", 1, "with --heal: how many of the cluster's detectors (this one included) must suspect a node before it is taken out; they confirm each other through the layout servers (corfu.DetectorConfig.Confirm)"),
	}
}

// serve runs corfu serve: one node's roles over TCP until SIGTERM or SIGINT.
func serve(args []string, stdout, stderr io.Writer) int {
	f := newServeFlags()
	pos, status, ok := parseFlags(f.fs, args, stderr)
	if !ok {
		return status
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "corfu serve: unexpected arguments %q\n", pos)
		return 2
	}
	log, err := newLogger(stderr, *f.logLevel, *f.logJSON)
	if err != nil {
		fmt.Fprintf(stderr, "corfu serve: %v\n", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	if err := runServe(ctx, f, log, nil); err != nil {
		log.Error("corfu serve", "err", err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// errUsage marks a configuration that cannot work.
var errUsage = errors.New("usage")

// runServe starts the node f describes, serves until ctx ends, then shuts
// down gracefully: it stops accepting, drains the requests in flight (for
// up to --drain), and syncs and closes the node's files. ready, if not nil,
// is called with the listening addresses once the node serves.
func runServe(ctx context.Context, f *serveFlags, log *slog.Logger, ready func(rpc, http net.Addr)) error {
	if *f.cluster == "" || *f.node == "" || *f.data == "" {
		return fmt.Errorf("%w: --cluster, --node and --data are required", errUsage)
	}
	cl, err := readClusterFile(*f.cluster)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	mode, err := parseSync(*f.sync)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	tlsCfg, err := serverTLS(*f.tlsCert, *f.tlsKey, *f.tlsCA)
	if err != nil {
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	var healTLS *tls.Config
	if *f.heal && tlsCfg != nil {
		// NB: the detector is a client of every node: it presents this
		// node's certificate, which must grant the client role too, and
		// trusts the servers that --tls-ca signed.
		if *f.tlsCA == "" {
			return fmt.Errorf("%w: --heal over TLS needs --tls-ca (the authority of the other nodes' certificates)", errUsage)
		}
		if healTLS, err = clientTLS(*f.tlsCert, *f.tlsKey, *f.tlsCA); err != nil {
			return fmt.Errorf("--heal: %w", err)
		}
		if roles := tcp.CertRoles(healTLS.Certificates[0].Leaf); roles&tcp.RoleClient == 0 {
			return fmt.Errorf("%w: --heal over TLS: the node's certificate grants %v, not the client role its detector needs", errUsage, roles)
		}
	}
	if *f.heal && *f.healTimeout <= 0 {
		return fmt.Errorf("%w: --heal-timeout must be positive", errUsage)
	}
	if *f.heal && *f.healScrub < 0 {
		return fmt.Errorf("%w: --heal-scrub must not be negative", errUsage)
	}
	if *f.heal && *f.healConfirm < 1 {
		return fmt.Errorf("%w: --heal-confirm must be at least 1", errUsage)
	}
	addr := *f.listen
	if addr == "" {
		addr = cl.Nodes[*f.node]
	}
	base, log := log, log.With("node", *f.node)
	ctx, stopServing := context.WithCancelCause(ctx)
	defer stopServing(nil)
	n, err := openNode(nodeOptions{cluster: cl, name: *f.node, data: *f.data, init: *f.init, sync: mode, log: log,
		failed: func(err error) {
			log.Error("could not make state durable: stopping", "err", err)
			stopServing(fmt.Errorf("state not durable: %w", err))
		}})
	if err != nil {
		return err
	}
	defer func() {
		if cerr := n.close(); cerr != nil {
			log.Error("closing the data directory", "err", cerr)
		}
	}()
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	var handler transport.Handler = newMetered(n.server, reg)
	var waits *transport.ReadWaits
	if n.server.Unit != nil {
		// NB: outermost, so that it sees every request that may take an
		// address a follower waits for.
		waits = transport.NewReadWaits(handler, transport.SystemTimers{})
		handler = waits
	}
	registerNodeMetrics(reg, n)
	var detectorMetrics *clientMetrics
	if *f.heal {
		detectorMetrics = newClientMetrics(reg)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	srv, err := tcp.Serve(l, handler, tcp.ServerConfig{Node: transport.NodeID(*f.node), Roles: n.roles, TLS: tlsCfg, Logger: base, DrainTimeout: *f.drain})
	if err != nil {
		l.Close()
		return err
	}
	var live atomic.Bool
	live.Store(true)
	var httpAddr net.Addr
	var hs *http.Server
	if *f.http != "" {
		hl, err := net.Listen("tcp", *f.http)
		if err != nil {
			srv.Close()
			return err
		}
		httpAddr = hl.Addr()
		hs = &http.Server{Handler: httpMux(reg, &live, *f.pprof), ReadHeaderTimeout: 10 * time.Second}
		go func() {
			if err := hs.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) {
				log.Error("http endpoint", "err", err)
			}
		}()
	}
	log.Info("serving", "addr", srv.Addr().String(), "roles", tcp.RoleNames(n.roles), "http", fmt.Sprint(httpAddr))
	healed := make(chan struct{})
	if *f.heal {
		go func() {
			defer close(healed)
			runDetector(ctx, cl, *f.node, log, healTLS, *f.healTimeout, *f.healConfirm, *f.healScrub, detectorMetrics)
		}()
	} else {
		close(healed)
	}
	defer func() { <-healed }()
	if ready != nil {
		ready(srv.Addr(), httpAddr)
	}
	<-ctx.Done()
	log.Info("shutting down: draining requests in flight", "drain", f.drain.String())
	live.Store(false)
	if waits != nil {
		waits.Release() // NB: parked reads would hold the drain up
	}
	sctx, cancel := context.WithTimeout(context.Background(), *f.drain)
	defer cancel()
	serr := srv.Shutdown(sctx)
	if hs != nil {
		hs.Shutdown(sctx) //nolint:errcheck // NB: best effort; the node's files matter, not the endpoint
	}
	if serr != nil {
		log.Warn("drain cut short", "err", serr)
	}
	log.Info("stopped")
	if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
		return cause // NB: exits 1, so that a supervisor restarts the node from its disk
	}
	return nil
}

// parseSync reads a --sync value.
func parseSync(s string) (disk.SyncMode, error) {
	for _, m := range []disk.SyncMode{disk.SyncBatch, disk.SyncEach, disk.SyncNone} {
		if m.String() == s {
			return m, nil
		}
	}
	return 0, fmt.Errorf("--sync %q: want batch, each or none", s)
}

// serverTLS returns the TLS configuration of the flags, or nil without a
// certificate.
func serverTLS(cert, key, ca string) (*tls.Config, error) {
	if cert == "" && key == "" && ca == "" {
		return nil, nil
	}
	if cert == "" || key == "" {
		return nil, errors.New("--tls-cert and --tls-key go together")
	}
	pair, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		return nil, err
	}
	cfg := &tls.Config{Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS13}
	if ca != "" {
		pool, err := loadCAs(ca)
		if err != nil {
			return nil, err
		}
		cfg.ClientCAs = pool
	}
	return cfg, nil
}

// httpMux serves the metrics in reg, /livez (the process runs), /readyz
// (it serves and is not shutting down) and, with withPprof, /debug/pprof.
func httpMux(reg *prometheus.Registry, live *atomic.Bool, withPprof bool) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("/livez", func(w http.ResponseWriter, _ *http.Request) {
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !live.Load() {
			http.Error(w, "shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	if withPprof {
		mux.HandleFunc("/debug/pprof/", pprof.Index)
		mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	}
	return mux
}
