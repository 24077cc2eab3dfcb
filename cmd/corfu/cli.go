package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
)

// clientFlags are the flags every CLI verb shares.
type clientFlags struct {
	fs              *flag.FlagSet
	config, cluster *string
	json            *bool
	timeout         *time.Duration
	tlsCert, tlsKey *string
	tlsCA, logLevel *string
	stdin           io.Reader
	stdout, stderr  io.Writer
	net             *tcp.Client // set by open
	args            []string    // the positional arguments
}

func newClientFlags(verb string, stdin io.Reader, stdout, stderr io.Writer) *clientFlags {
	fs := flag.NewFlagSet(verb, flag.ContinueOnError)
	return &clientFlags{
		fs:       fs,
		config:   fs.String("config", "", "a JSON file of settings, by flag name; flags and CORFU_* variables win over it"),
		cluster:  fs.String("cluster", "", "the cluster file (required)"),
		json:     fs.Bool("json", false, "print JSON, one object per line"),
		timeout:  fs.Duration("timeout", 30*time.Second, "bound on the whole command (follow: on each step)"),
		tlsCert:  fs.String("tls-cert", "", "PEM client certificate (mutual TLS)"),
		tlsKey:   fs.String("tls-key", "", "PEM key of --tls-cert"),
		tlsCA:    fs.String("tls-ca", "", "PEM CA bundle the nodes' certificates chain to (enables TLS)"),
		logLevel: fs.String("log-level", "warn", "client log level on stderr: debug, info, warn or error"),
		stdin:    stdin, stdout: stdout, stderr: stderr,
	}
}

// open connects a client to the cluster the flags name. The caller closes
// both.
func (f *clientFlags) open(ctx context.Context) (*corfu.Client, *clusterFile, error) {
	if *f.cluster == "" {
		return nil, nil, fmt.Errorf("%w: --cluster is required", errUsage)
	}
	cl, err := readClusterFile(*f.cluster)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	log, err := newLogger(f.stderr, *f.logLevel, false)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	tlsCfg, err := clientTLS(*f.tlsCert, *f.tlsKey, *f.tlsCA)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %v", errUsage, err)
	}
	net, err := tcp.NewClient(tcp.ClientConfig{Resolve: cl.resolver(), Name: "corfu-cli", TLS: tlsCfg, Logger: log})
	if err != nil {
		return nil, nil, err
	}
	f.net = net
	var layout []projection.NodeID
	for _, n := range cl.Layout {
		layout = append(layout, projection.NodeID(n))
	}
	c, err := corfu.Open(ctx, corfu.Config{Layout: layout, Transport: net, Logger: log, Backpointers: cl.backpointers()})
	if err != nil {
		net.Close()
		return nil, nil, err
	}
	return c, cl, nil
}

// clientTLS returns the TLS configuration of the client flags, or nil.
func clientTLS(cert, key, ca string) (*tls.Config, error) {
	if cert == "" && key == "" && ca == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS13}
	if ca != "" {
		pool, err := loadCAs(ca)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	if cert != "" || key != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, err
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}

// loadCAs reads a PEM bundle of CA certificates.
func loadCAs(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s: no PEM certificates", path)
	}
	return pool, nil
}

// print writes v as a JSON line with --json, else text as a line.
func (f *clientFlags) print(v any, text string) {
	if *f.json {
		b, _ := json.Marshal(v)
		fmt.Fprintln(f.stdout, string(b))
		return
	}
	fmt.Fprintln(f.stdout, text)
}

// entryJSON is an entry as --json prints it.
type entryJSON struct {
	Address storage.Address  `json:"address"`
	Writer  string           `json:"writer"`
	Seq     uint64           `json:"seq"`
	Streams []corfu.StreamID `json:"streams,omitempty"`
	Data    string           `json:"data"`
}

func (f *clientFlags) printEntry(e corfu.Entry) {
	f.print(entryJSON{Address: e.Address, Writer: fmt.Sprintf("%016x", uint64(e.Writer)), Seq: e.Seq, Streams: e.Streams, Data: string(e.Data)},
		fmt.Sprintf("%d\t%s", e.Address, e.Data))
}

// cliVerb runs one client verb: it parses args with the shared flags plus
// those add defines, opens a client and calls do with it.
func cliVerb(verb string, args []string, stdin io.Reader, stdout, stderr io.Writer,
	add func(fs *flag.FlagSet), do func(ctx context.Context, f *clientFlags, c *corfu.Client, cl *clusterFile) error) int {
	f := newClientFlags(verb, stdin, stdout, stderr)
	if add != nil {
		add(f.fs)
	}
	pos, status, ok := parseFlags(f.fs, args, stderr)
	if !ok {
		return status
	}
	f.args = pos
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	octx, cancel := context.WithTimeout(ctx, *f.timeout)
	defer cancel()
	c, cl, err := f.open(octx)
	if err == nil {
		defer c.Close() // NB: closes the TCP client with it
		err = do(ctx, f, c, cl)
	}
	if err != nil {
		fmt.Fprintf(stderr, "corfu %s: %v\n", verb, err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	return 0
}

// streamsFlag is a comma-separated list of stream IDs.
type streamsFlag []corfu.StreamID

func (s *streamsFlag) String() string { return fmt.Sprint([]corfu.StreamID(*s)) }
func (s *streamsFlag) Set(v string) error {
	*s = nil
	for _, part := range strings.Split(v, ",") {
		if part == "" {
			continue
		}
		id, err := strconv.ParseUint(strings.TrimSpace(part), 10, 64)
		if err != nil {
			return fmt.Errorf("stream %q: %v", part, err)
		}
		*s = append(*s, corfu.StreamID(id))
	}
	return nil
}

// appendCmd: corfu append [--stream IDS] [DATA ...]: one entry per
// argument, or per line of stdin without arguments; prints each address.
func appendCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var streams streamsFlag
	return cliVerb("append", args, stdin, stdout, stderr, func(fs *flag.FlagSet) {
		fs.Var(&streams, "stream", "comma-separated streams the entries join")
	}, func(ctx context.Context, f *clientFlags, c *corfu.Client, _ *clusterFile) error {
		one := func(data []byte) error {
			actx, cancel := context.WithTimeout(ctx, *f.timeout)
			defer cancel()
			addr, err := c.Append(actx, data, streams...)
			if err != nil {
				return err
			}
			f.print(map[string]any{"address": addr}, strconv.FormatUint(uint64(addr), 10))
			return nil
		}
		if len(f.args) > 0 {
			for _, a := range f.args {
				if err := one([]byte(a)); err != nil {
					return err
				}
			}
			return nil
		}
		sc := bufio.NewScanner(f.stdin)
		sc.Buffer(make([]byte, 64<<10), storage.MaxEntryBytes)
		for sc.Scan() {
			if err := one(append([]byte(nil), sc.Bytes()...)); err != nil {
				return err
			}
		}
		return sc.Err()
	})
}

// parseRange reads ADDR or FROM..TO (TO exclusive).
func parseRange(s string) (from, to storage.Address, err error) {
	lo, hi, isRange := strings.Cut(s, "..")
	a, err := strconv.ParseUint(lo, 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: address %q", errUsage, lo)
	}
	if !isRange {
		return storage.Address(a), storage.Address(a) + 1, nil
	}
	b, err := strconv.ParseUint(hi, 10, 64)
	if err != nil || b < a {
		return 0, 0, fmt.Errorf("%w: range %q: want FROM..TO with TO >= FROM", errUsage, s)
	}
	return storage.Address(a), storage.Address(b), nil
}

// readCmd: corfu read ADDR | FROM..TO: prints each entry (skipping junk in
// a range).
func readCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cliVerb("read", args, stdin, stdout, stderr, nil, func(ctx context.Context, f *clientFlags, c *corfu.Client, _ *clusterFile) error {
		if len(f.args) != 1 {
			return fmt.Errorf("%w: want one ADDR or FROM..TO", errUsage)
		}
		from, to, err := parseRange(f.args[0])
		if err != nil {
			return err
		}
		rctx, cancel := context.WithTimeout(ctx, *f.timeout)
		defer cancel()
		if to == from+1 {
			e, err := c.Read(rctx, from)
			if err != nil {
				return err
			}
			f.printEntry(e)
			return nil
		}
		for e, err := range c.Range(rctx, from, to) {
			if err != nil {
				return fmt.Errorf("address %d: %w", e.Address, err)
			}
			f.printEntry(e)
		}
		return nil
	})
}

// tailCmd: corfu tail: prints the log's tail.
func tailCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cliVerb("tail", args, stdin, stdout, stderr, nil, func(ctx context.Context, f *clientFlags, c *corfu.Client, _ *clusterFile) error {
		tctx, cancel := context.WithTimeout(ctx, *f.timeout)
		defer cancel()
		t, err := c.Tail(tctx)
		if err != nil {
			return err
		}
		f.print(map[string]any{"tail": t}, strconv.FormatUint(uint64(t), 10))
		return nil
	})
}

// trimCmd: corfu trim [--prefix] ADDR.
func trimCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var prefix *bool
	return cliVerb("trim", args, stdin, stdout, stderr, func(fs *flag.FlagSet) {
		prefix = fs.Bool("prefix", false, "trim every address below ADDR instead of ADDR alone")
	}, func(ctx context.Context, f *clientFlags, c *corfu.Client, _ *clusterFile) error {
		if len(f.args) != 1 {
			return fmt.Errorf("%w: want one ADDR", errUsage)
		}
		a, err := strconv.ParseUint(f.args[0], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: address %q", errUsage, f.args[0])
		}
		tctx, cancel := context.WithTimeout(ctx, *f.timeout)
		defer cancel()
		if *prefix {
			err = c.PrefixTrim(tctx, storage.Address(a))
		} else {
			err = c.Trim(tctx, storage.Address(a))
		}
		if err != nil {
			return err
		}
		f.print(map[string]any{"trimmed": a, "prefix": *prefix}, "ok")
		return nil
	})
}

// streamCmd: corfu stream read|follow ID [--from ADDR]. A follower waits
// at the units for the next append (Stream.Wait) rather than poll.
func streamCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var from *uint64
	return cliVerb("stream", args, stdin, stdout, stderr, func(fs *flag.FlagSet) {
		from = fs.Uint64("from", 0, "the address to read the stream from")
	}, func(ctx context.Context, f *clientFlags, c *corfu.Client, _ *clusterFile) error {
		if len(f.args) != 2 || (f.args[0] != "read" && f.args[0] != "follow") {
			return fmt.Errorf("%w: want read ID or follow ID", errUsage)
		}
		id, err := strconv.ParseUint(f.args[1], 10, 64)
		if err != nil {
			return fmt.Errorf("%w: stream %q", errUsage, f.args[1])
		}
		s := c.Stream(corfu.StreamID(id), storage.Address(*from))
		for {
			sctx, cancel := context.WithTimeout(ctx, *f.timeout)
			entries, err := s.Sync(sctx)
			cancel()
			if err != nil {
				return err
			}
			for _, e := range entries {
				f.printEntry(e)
			}
			if f.args[0] == "read" {
				return nil
			}
			if err := s.Wait(ctx); err != nil {
				return nil // NB: interrupted: a follower stops cleanly
			}
		}
	})
}

// layoutCmd: corfu layout show: prints the current projection.
func layoutCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cliVerb("layout", args, stdin, stdout, stderr, nil, func(ctx context.Context, f *clientFlags, c *corfu.Client, _ *clusterFile) error {
		if len(f.args) != 1 || f.args[0] != "show" {
			return fmt.Errorf("%w: want show", errUsage)
		}
		p := c.Projection()
		if *f.json {
			b, err := json.Marshal(p)
			if err != nil {
				return err
			}
			fmt.Fprintln(f.stdout, string(b))
			return nil
		}
		fmt.Fprintf(f.stdout, "epoch %d\nsequencer %s\nlayout servers %v\n", p.Epoch, p.Sequencer, p.Layout)
		for _, seg := range p.Segments {
			end := "open"
			if seg.End != 0 {
				end = strconv.FormatUint(uint64(seg.End), 10)
			}
			fmt.Fprintf(f.stdout, "segment [%d, %s) local base %d: chains %v\n", seg.Start, end, seg.Base, seg.Stripes)
		}
		return nil
	})
}

// nodeStatus is one node's line of corfu status.
type nodeStatus struct {
	Node    string  `json:"node"`
	Addr    string  `json:"addr"`
	Roles   string  `json:"roles"`
	Healthy bool    `json:"healthy"`
	Epoch   *uint64 `json:"epoch,omitempty"` // nil: not known
	Tail    *uint64 `json:"tail,omitempty"`  // nil: not known, or no tail (a layout server)
	Error   string  `json:"error,omitempty"`
}

// statusCmd: corfu status: each node's role, epoch, tail and health.
func statusCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cliVerb("status", args, stdin, stdout, stderr, nil, func(ctx context.Context, f *clientFlags, c *corfu.Client, cl *clusterFile) error {
		sctx, cancel := context.WithTimeout(ctx, *f.timeout)
		defer cancel()
		p := c.Projection()
		net := f.net
		unhealthy := 0
		for _, name := range cl.names() {
			st := probe(sctx, net, cl, p, name)
			if !st.Healthy {
				unhealthy++
			}
			f.print(st, fmt.Sprintf("%-10s %-22s %-18s healthy=%-5v epoch=%-3s tail=%-6s %s", st.Node, st.Addr, st.Roles, st.Healthy, orDash(st.Epoch), orDash(st.Tail), st.Error))
		}
		if unhealthy > 0 {
			return fmt.Errorf("%d of %d nodes unhealthy", unhealthy, len(cl.Nodes))
		}
		return nil
	})
}

// probe asks node what its roles know, without changing anything: a layout
// server its newest epoch, the sequencer its tail, a unit its epoch and its
// local tail (by a seal at the epoch it is at already, which changes
// nothing).
func probe(ctx context.Context, net transport.Caller, cl *clusterFile, p *projection.Projection, name string) nodeStatus {
	isUnit, isSeq, isLayout := cl.roles(name)
	st := nodeStatus{Node: name, Addr: cl.Nodes[name]}
	var roles []string
	id := projection.NodeID(name)
	var errs []error
	if isLayout {
		roles = append(roles, "layout")
		got, err := (transport.LayoutClient{Caller: net, Node: id}).Get(ctx)
		if err == nil {
			st.Epoch = ptr(uint64(got.Epoch))
		}
		errs = append(errs, err)
	}
	if isSeq {
		roles = append(roles, "sequencer")
		if id != p.Sequencer {
			roles[len(roles)-1] = "standby"
		}
		tok, err := (transport.SequencerClient{Caller: net, Node: id}).Next(ctx, p.Epoch, 0, nil)
		if err == nil {
			st.Epoch, st.Tail = ptr(uint64(p.Epoch)), ptr(uint64(tok.Start))
		}
		if errors.Is(err, sequencer.ErrNotReady) && id != p.Sequencer {
			err = nil // NB: a standby is not bootstrapped, as it should be
		}
		errs = append(errs, err)
	}
	if isUnit {
		roles = append(roles, "unit")
		u := transport.UnitClient{Caller: net, Node: id}
		_, err := u.Read(ctx, p.Epoch, storage.MaxAddress-1)
		var sealed *storage.SealedError
		switch {
		case errors.As(err, &sealed):
			st.Epoch, err = ptr(uint64(sealed.Epoch)), nil // ahead of this client's projection
		case errors.Is(err, storage.ErrFutureEpoch):
			err = fmt.Errorf("unit behind epoch %d (not sealed at it yet)", p.Epoch)
		case errors.Is(err, storage.ErrBlank):
			err = errors.New("blank: lost its data, waits for a reconfiguration to rejoin")
		case err == nil, errors.Is(err, storage.ErrUnwritten), errors.Is(err, storage.ErrTrimmed), errors.Is(err, storage.ErrJunk):
			// NB: the unit is at p's epoch, where a seal changes nothing
			// and answers the unit's tail.
			var tail storage.Address
			tail, err = u.Seal(ctx, p.Epoch)
			st.Epoch, st.Tail = ptr(uint64(p.Epoch)), ptr(uint64(tail))
		}
		errs = append(errs, err)
	}
	st.Roles = strings.Join(roles, ",")
	if err := errors.Join(errs...); err != nil {
		st.Error = err.Error()
	} else {
		st.Healthy = true
	}
	return st
}

// reconfigureCmd: corfu reconfigure [--replace OLD=NEW] [--move-sequencer
// NODE]: moves the log to a new epoch, with that change (none keeps the
// layout).
func reconfigureCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	var replace, move *string
	return cliVerb("reconfigure", args, stdin, stdout, stderr, func(fs *flag.FlagSet) {
		replace = fs.String("replace", "", "OLD=NEW: take unit OLD out of the log, NEW (a spare) in")
		move = fs.String("move-sequencer", "", "make NODE (a standby) the sequencer")
	}, func(ctx context.Context, f *clientFlags, c *corfu.Client, _ *clusterFile) error {
		var change corfu.Change
		switch {
		case *replace != "" && *move != "":
			return fmt.Errorf("%w: one change at a time", errUsage)
		case *replace != "":
			old, fresh, ok := strings.Cut(*replace, "=")
			if !ok || old == "" || fresh == "" {
				return fmt.Errorf("%w: --replace OLD=NEW", errUsage)
			}
			change = corfu.ReplaceUnit(projection.NodeID(old), projection.NodeID(fresh))
		case *move != "":
			change = corfu.MoveSequencer(projection.NodeID(*move))
		}
		rctx, cancel := context.WithTimeout(ctx, *f.timeout)
		defer cancel()
		p, err := c.Reconfigure(rctx, change)
		if err != nil {
			return err
		}
		f.print(map[string]any{"epoch": p.Epoch}, fmt.Sprintf("epoch %d", p.Epoch))
		return nil
	})
}

func ptr(v uint64) *uint64 { return &v }

// orDash formats v, or "-" if it is nil.
func orDash(v *uint64) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatUint(*v, 10)
}
