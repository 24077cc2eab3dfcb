package main

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/corfu/corfutest"
	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/transport/tcp"
	"github.com/corfulog/corfu/transport/tcp/tcptest"
)

// scrape returns what GET url/metrics serves.
func scrape(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// TestClientMetrics: a library client whose hooks are a clientMetrics
// shows its appends (a failing one included), reads, retries, refreshes,
// reconfigurations and detector actions on /metrics.
func TestClientMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newClientMetrics(reg)
	var live atomic.Bool
	live.Store(true)
	srv := httptest.NewServer(httpMux(reg, &live, false))
	defer srv.Close()
	before := scrape(t, srv.URL)
	for _, want := range []string{
		`corfu_client_appends_total{outcome="ok"} 0`,
		`corfu_client_reconfigurations_total{outcome="ok"} 0`,
		`corfu_detector_actions_total{kind="replace",outcome="ok"} 0`,
		`corfu_client_append_seconds_count 0`,
	} {
		require.Contains(t, before, want, "every family shows before anything happened")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cluster, err := corfutest.New(corfutest.Options{Units: 4, Replicas: 2, Spares: 1})
	require.NoError(t, err)
	defer cluster.Close()
	cfg := cluster.Config()
	cfg.RPCTimeout, cfg.HoleFillWait = 20*time.Millisecond, 100*time.Millisecond
	cfg.Hooks = []corfu.Hook{m}
	c, err := corfu.Open(ctx, cfg)
	require.NoError(t, err)
	for _, s := range []string{"a", "b", "c"} {
		_, err := c.Append(ctx, []byte(s))
		require.NoError(t, err)
	}
	_, err = c.Append(ctx, make([]byte, corfu.DefaultMaxEntryBytes+1))
	require.ErrorIs(t, err, corfu.ErrTooLarge)
	_, err = c.Read(ctx, 1)
	require.NoError(t, err)
	_, err = c.Read(ctx, 7)
	require.ErrorIs(t, err, corfu.ErrUnwritten)

	d := corfu.NewDetector(c, corfu.DetectorConfig{Spares: []projection.NodeID{"spare0"}, Timeout: time.Second})
	cluster.Net.Remove("unit0")
	for range 4 {
		d.Step(ctx)
	}
	_, err = c.Append(ctx, []byte("d")) // on the new epoch
	require.NoError(t, err)

	got := scrape(t, srv.URL)
	for _, want := range []string{
		`corfu_client_appends_total{outcome="ok"} 4`,
		`corfu_client_appends_total{outcome="invalid"} 1`,
		`corfu_client_append_seconds_count 4`,
		`corfu_client_append_lost_races_total 0`,
		`corfu_client_reads_total{outcome="ok"} 1`,
		`corfu_client_reads_total{outcome="unwritten"} 1`,
		`corfu_client_read_seconds_count 1`,
		`corfu_client_refreshes_total{outcome="ok"} 1`, // Open's
		`corfu_client_reconfigurations_total{outcome="ok"} 2`,
		`corfu_client_reconfiguration_seconds_count 2`,
		`corfu_detector_actions_total{kind="suspect",outcome="ok"} 1`,
		`corfu_detector_actions_total{kind="replace",outcome="ok"} 1`,
		`corfu_detector_actions_total{kind="rebuild",outcome="ok"} 1`,
	} {
		require.Contains(t, got, want)
	}
}

// TestServeHealMetrics: corfu serve --heal shows its detector's client on
// /metrics. A cluster file names a unit that never starts; the detector of
// the layout server replaces it with the spare, and its /metrics says so.
func TestServeHealMetrics(t *testing.T) {
	cf, err := newLocalClusterFile(upOptions{layouts: 1, units: 2, replicas: 2, spares: 1})
	require.NoError(t, err)
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.json")
	require.NoError(t, cf.write(file))

	url := serveHealing(t, file, dir, nil)
	want := []string{
		`corfu_detector_actions_total{kind="suspect",outcome="ok"} 1`,
		`corfu_detector_actions_total{kind="replace",outcome="ok"} 1`,
		`corfu_client_reconfigurations_total{outcome="ok"} 1`,
		`corfu_client_refreshes_total{outcome="ok"} 1`,
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		got := scrape(t, url)
		missing := ""
		for _, w := range want {
			if !strings.Contains(got, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s:\n%s", missing, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// serveHealing runs corfu serve for layout0, seq, unit0 and spare0 of the
// cluster file (unit1 never starts), each with its data under dir and
// more(node)'s flags if more is not nil, layout0 with --heal, until the
// test ends. It returns the URL of layout0's HTTP server.
func serveHealing(t *testing.T, file, dir string, more func(node string) []string) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(wg.Wait)
	t.Cleanup(cancel)
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	httpAddr := make(chan net.Addr, 1)
	for _, node := range []string{"layout0", "seq", "unit0", "spare0"} {
		f := newServeFlags()
		args := []string{"--cluster", file, "--node", node, "--data", filepath.Join(dir, node), "--init", "--sync", "none", "--drain", "1s"}
		if more != nil {
			args = append(args, more(node)...)
		}
		if node == "layout0" {
			args = append(args, "--http", "127.0.0.1:0", "--heal", "--heal-timeout", "50ms")
		}
		require.NoError(t, f.fs.Parse(args))
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := runServe(ctx, f, log, func(_, h net.Addr) {
				if h != nil {
					httpAddr <- h
				}
			})
			if err != nil {
				t.Errorf("%s: %v", node, err)
			}
		}()
	}
	return "http://" + (<-httpAddr).String()
}

// TestServeHealOverTLS: corfu serve --heal on a cluster with mutual TLS.
// The layout server's certificate grants the client role too, and its
// detector, a client of every node over TLS, replaces the unit that never
// started. A certificate without the client role is refused at start.
func TestServeHealOverTLS(t *testing.T) {
	cf, err := newLocalClusterFile(upOptions{layouts: 1, units: 2, replicas: 2, spares: 1})
	require.NoError(t, err)
	dir := t.TempDir()
	file := filepath.Join(dir, "cluster.json")
	require.NoError(t, cf.write(file))
	ca, err := tcptest.NewCA()
	require.NoError(t, err)
	caFile := filepath.Join(dir, "ca.pem")
	require.NoError(t, os.WriteFile(caFile, ca.CertPEM(), 0o600))
	certFiles := func(node string, roles tcp.Role) []string {
		cert, err := ca.Issue(node, roles)
		require.NoError(t, err)
		c, k, err := tcptest.PEM(cert)
		require.NoError(t, err)
		cfile, kfile := filepath.Join(dir, node+".crt"), filepath.Join(dir, node+".key")
		require.NoError(t, os.WriteFile(cfile, c, 0o600))
		require.NoError(t, os.WriteFile(kfile, k, 0o600))
		return []string{"--tls-cert", cfile, "--tls-key", kfile, "--tls-ca", caFile}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))

	f := newServeFlags()
	require.NoError(t, f.fs.Parse(append([]string{"--cluster", file, "--node", "layout0", "--data", filepath.Join(dir, "refused"),
		"--init", "--heal"}, certFiles("layout0", tcp.RoleLayout)...)))
	err = runServe(context.Background(), f, log, func(_, _ net.Addr) {})
	require.ErrorContains(t, err, "not the client role")

	roles := map[string]tcp.Role{"layout0": tcp.RoleLayout | tcp.RoleClient, "seq": tcp.RoleSequencer, "unit0": tcp.RoleUnit, "spare0": tcp.RoleUnit}
	url := serveHealing(t, file, dir, func(node string) []string { return certFiles(node, roles[node]) })
	want := `corfu_detector_actions_total{kind="replace",outcome="ok"} 1`
	deadline := time.Now().Add(30 * time.Second)
	for got := scrape(t, url); !strings.Contains(got, want); got = scrape(t, url) {
		if time.Now().After(deadline) {
			t.Fatalf("/metrics never showed %s:\n%s", want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
