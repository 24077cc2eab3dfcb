package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"syscall"
	"time"
)

// clusterCmd runs corfu cluster SUBCOMMAND; today only up.
func clusterCmd(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "up" {
		fmt.Fprintln(stderr, "usage: corfu cluster up [flags]")
		return 2
	}
	fs := flag.NewFlagSet("cluster up", flag.ContinueOnError)
	dir := fs.String("dir", "corfu-cluster", "directory of the cluster file, the nodes' data directories and their logs")
	layouts := fs.Int("layouts", 3, "layout servers")
	units := fs.Int("units", 4, "storage units in the layout of epoch 0")
	replicas := fs.Int("replicas", 2, "replicas per chain")
	spares := fs.Int("spares", 1, "spare units, for reconfigurations to bring in")
	standbys := fs.Int("standbys", 0, "standby sequencers")
	sync := fs.String("sync", "batch", "the units' --sync")
	heal := fs.Bool("heal", true, "the layout servers run failure detectors (corfu serve --heal): a killed unit is replaced by a spare, a killed sequencer by a standby")
	pos, status, ok := parseFlags(fs, args[1:], stderr)
	if !ok {
		return status
	}
	if len(pos) > 0 {
		fmt.Fprintf(stderr, "corfu cluster up: unexpected arguments %q\n", pos)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	c, err := clusterUp(ctx, upOptions{dir: *dir, layouts: *layouts, units: *units, replicas: *replicas,
		spares: *spares, standbys: *standbys, sync: *sync, heal: *heal, stdout: stdout})
	if err != nil {
		fmt.Fprintf(stderr, "corfu cluster up: %v\n", err)
		if errors.Is(err, errUsage) {
			return 2
		}
		return 1
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "stopping the cluster")
	if err := c.stop(30 * time.Second); err != nil {
		fmt.Fprintf(stderr, "corfu cluster up: %v\n", err)
		return 1
	}
	fmt.Fprintln(stdout, "stopped")
	return 0
}

// upOptions shape a local cluster.
type upOptions struct {
	dir                                        string
	layouts, units, replicas, spares, standbys int
	sync                                       string
	heal                                       bool   // the layout servers run --heal
	exe                                        string // the corfu binary; default os.Executable
	stdout                                     io.Writer
}

// localCluster is a running set of corfu serve processes.
type localCluster struct {
	dir   string
	file  string // the cluster file's path
	cf    *clusterFile
	http  map[string]string // each node's HTTP endpoint
	procs map[string]*exec.Cmd
	exe   string
	sync  string
	heal  bool
}

// clusterUp writes o.dir/cluster.json (on loopback ports the OS picks) if
// it is not there yet, starts one corfu serve per node with its data under
// o.dir/NODE and its log in o.dir/NODE.log, waits until every node accepts
// connections, and prints how to reach the cluster. A directory that holds
// a cluster already restarts it, on the same ports and data.
func clusterUp(ctx context.Context, o upOptions) (*localCluster, error) {
	if err := os.MkdirAll(o.dir, 0o755); err != nil {
		return nil, err
	}
	dir, err := filepath.Abs(o.dir)
	if err != nil {
		return nil, err
	}
	exe := o.exe
	if exe == "" {
		if exe, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	c := &localCluster{dir: dir, file: filepath.Join(dir, "cluster.json"), http: map[string]string{}, procs: map[string]*exec.Cmd{}, exe: exe, sync: o.sync, heal: o.heal}
	if c.cf, err = readClusterFile(c.file); errors.Is(err, os.ErrNotExist) {
		if c.cf, err = newLocalClusterFile(o); err != nil {
			return nil, err
		}
		if err := c.cf.write(c.file); err != nil {
			return nil, err
		}
	} else if err != nil {
		return nil, err
	}
	for _, n := range c.cf.names() {
		if c.http[n], err = freePort(); err != nil {
			return nil, err
		}
	}
	for _, n := range c.cf.names() {
		if err := c.start(n); err != nil {
			c.stop(5 * time.Second)
			return nil, err
		}
	}
	if err := c.waitUp(ctx, 30*time.Second); err != nil {
		c.stop(5 * time.Second)
		return nil, err
	}
	w := o.stdout
	fmt.Fprintf(w, "cluster up: %d nodes, cluster file %s\n", len(c.cf.Nodes), c.file)
	for _, n := range c.cf.names() {
		unit, seq, layout := c.cf.roles(n)
		fmt.Fprintf(w, "  %-8s %-16s %-22s metrics http://%s/metrics  log %s\n", n, roleNames(unit, seq, layout), c.cf.Nodes[n], c.http[n], filepath.Join(dir, n+".log"))
	}
	fmt.Fprintf(w, "try:\n  corfu append --cluster %s hello\n  corfu read --cluster %s 0\n  corfu status --cluster %s\nCtrl-C stops the cluster.\n", c.file, c.file, c.file)
	return c, nil
}

func roleNames(unit, seq, layout bool) string {
	var s []string
	if layout {
		s = append(s, "layout")
	}
	if seq {
		s = append(s, "sequencer")
	}
	if unit {
		s = append(s, "unit")
	}
	return fmt.Sprint(s)
}

// newLocalClusterFile lays out o's nodes on loopback ports.
func newLocalClusterFile(o upOptions) (*clusterFile, error) {
	if o.layouts < 1 || o.replicas < 1 || o.units < o.replicas || o.units%o.replicas != 0 || o.spares < 0 || o.standbys < 0 {
		return nil, fmt.Errorf("%w: want --layouts >= 1 and --units a positive multiple of --replicas", errUsage)
	}
	cf := &clusterFile{Nodes: map[string]string{}, Sequencer: "seq", Replicas: o.replicas}
	add := func(name string) error {
		addr, err := freePort()
		cf.Nodes[name] = addr
		return err
	}
	for i := range o.layouts {
		cf.Layout = append(cf.Layout, fmt.Sprintf("layout%d", i))
	}
	for i := range o.units {
		cf.Units = append(cf.Units, fmt.Sprintf("unit%d", i))
	}
	for i := range o.spares {
		cf.Spares = append(cf.Spares, fmt.Sprintf("spare%d", i))
	}
	for i := range o.standbys {
		cf.Standbys = append(cf.Standbys, fmt.Sprintf("seq%d", i+1))
	}
	names := append(append(append(append([]string{"seq"}, cf.Layout...), cf.Units...), cf.Spares...), cf.Standbys...)
	for _, n := range names {
		if err := add(n); err != nil {
			return nil, err
		}
	}
	return cf, cf.check()
}

// freePort returns a loopback address whose port the OS just handed out.
func freePort() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// start starts node's corfu serve, with --init if its data directory does
// not exist yet.
func (c *localCluster) start(node string) error {
	data := filepath.Join(c.dir, node)
	args := []string{"serve", "--cluster", c.file, "--node", node, "--data", data, "--http", c.http[node], "--sync", c.sync}
	if c.heal && slices.Contains(c.cf.Layout, node) {
		// NB: every layout server runs a detector; a majority of them
		// must suspect a node before one takes it out.
		args = append(args, "--heal", "--heal-confirm", strconv.Itoa(len(c.cf.Layout)/2+1))
	}
	if _, err := os.Stat(data); errors.Is(err, os.ErrNotExist) {
		args = append(args, "--init")
	}
	log, err := os.OpenFile(filepath.Join(c.dir, node+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(c.exe, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return err
	}
	log.Close() // NB: the child holds its own copy
	c.procs[node] = cmd
	return nil
}

// waitUp waits until every node answers ready on its HTTP endpoint.
func (c *localCluster) waitUp(ctx context.Context, limit time.Duration) error {
	deadline := time.Now().Add(limit)
	client := &http.Client{Timeout: time.Second}
	for _, n := range c.cf.names() {
		for {
			resp, err := client.Get("http://" + c.http[n] + "/readyz")
			if err == nil {
				resp.Body.Close()
				if resp.StatusCode == http.StatusOK {
					break
				}
				err = fmt.Errorf("readyz: %s", resp.Status)
			}
			if time.Now().After(deadline) || ctx.Err() != nil {
				return fmt.Errorf("node %s did not come up (see %s): %v", n, filepath.Join(c.dir, n+".log"), err)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// stop sends every process SIGTERM and waits up to limit for all of them,
// then kills what is left.
func (c *localCluster) stop(limit time.Duration) error {
	done := make(chan error, len(c.procs))
	for _, p := range c.procs {
		p.Process.Signal(syscall.SIGTERM) //nolint:errcheck // NB: one that exited already is fine
		go func() { done <- p.Wait() }()
	}
	timer := time.NewTimer(limit)
	defer timer.Stop()
	var errs []error
	for range c.procs {
		select {
		case err := <-done:
			errs = append(errs, err)
		case <-timer.C:
			for _, p := range c.procs {
				p.Process.Kill() //nolint:errcheck
			}
			return errors.New("nodes did not stop in time; killed")
		}
	}
	return errors.Join(errs...)
}
