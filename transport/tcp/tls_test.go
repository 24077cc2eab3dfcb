package tcp_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
	"github.com/corfulog/corfu/transport/tcp"
	"github.com/corfulog/corfu/transport/tcp/tcptest"
)

// syncBuffer is a log sink for tests.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// wait waits for want to appear in the log.
func (s *syncBuffer) wait(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		s.mu.Lock()
		got := s.b.String()
		s.mu.Unlock()
		if strings.Contains(got, want) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("no log record with %q in:\n%s", want, got)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestTLSIdentity checks who may talk to whom: a server must present a
// certificate of the client's authority that names the node dialed and
// grants the roles it serves; a client must present one of the server's
// authority granting the client role. Whatever fails, the node stays
// unreachable to that peer, and the server serves the others.
func TestTLSIdentity(t *testing.T) {
	checkGoroutines(t)
	ca, err := tcptest.NewCA()
	require.NoError(t, err)
	other, err := tcptest.NewCA()
	require.NoError(t, err)
	unitServer := &transport.Server{Unit: storage.NewMemory()}
	issue := func(ca *tcptest.CA, name string, roles tcp.Role) tls.Certificate {
		cert, err := ca.Issue(name, roles)
		require.NoError(t, err)
		return cert
	}
	serverTLS := func(cert tls.Certificate) *tls.Config {
		return &tls.Config{Certificates: []tls.Certificate{cert}, ClientCAs: ca.Pool()}
	}
	clientTLS := func(certs ...tls.Certificate) *tls.Config {
		return &tls.Config{Certificates: certs, RootCAs: ca.Pool()}
	}
	goodClient := clientTLS(issue(ca, "c", tcp.RoleClient))
	tests := []struct {
		name   string
		server *tls.Config
		client *tls.Config
		want   string // in the client's error, or the server's log
	}{
		// The first three fail on the server's side, the others on the
		// client's.
		{"good", serverTLS(issue(ca, "unit", tcp.RoleUnit)), goodClient, ""},
		{"server names another node", serverTLS(issue(ca, "unit9", tcp.RoleUnit)), goodClient, "valid for unit9, not unit"},
		{"server lacks its role", serverTLS(issue(ca, "unit", tcp.RoleLayout)), goodClient, "the server announces unit, its certificate"},
		{"server of another authority", serverTLS(issue(other, "unit", tcp.RoleUnit)), goodClient, "unknown authority"},
		{"client without a certificate", serverTLS(issue(ca, "unit", tcp.RoleUnit)), clientTLS(), "certificate"},
		{"client of another authority", serverTLS(issue(ca, "unit", tcp.RoleUnit)), clientTLS(issue(other, "c", tcp.RoleClient)), "unknown"},
		{"client lacks the client role", serverTLS(issue(ca, "unit", tcp.RoleUnit)), clientTLS(issue(ca, "c", tcp.RoleUnit)), "not the client role"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			log := new(syncBuffer)
			_, addr := serve(t, "unit", unitServer, security{server: func(transport.NodeID, tcp.Role) *tls.Config { return tt.server }},
				func(c *tcp.ServerConfig) {
					c.Logger = slog.New(slog.NewTextHandler(log, nil))
				})
			c := client(t, map[transport.NodeID]string{"unit": addr}, security{client: tt.client}, nil)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, err := c.Call(ctx, "unit", &transport.Request{Op: transport.OpRead})
			if tt.want == "" {
				require.ErrorIs(t, err, storage.ErrUnwritten)
				return
			}
			require.ErrorIs(t, err, transport.ErrUnreachable)
			if !strings.Contains(err.Error(), tt.want) {
				log.wait(t, tt.want)
			}
			if strings.HasPrefix(tt.name, "client") {
				// The server still serves a good client.
				good := client(t, map[transport.NodeID]string{"unit": addr}, security{client: goodClient}, nil)
				_, err = good.Call(ctx, "unit", &transport.Request{Op: transport.OpRead})
				require.ErrorIs(t, err, storage.ErrUnwritten)
			}
		})
	}
}

// TestPlainBytesOnTLSPort sends a plain hello to a TLS server: the
// handshake fails, with a log record, and the server serves TLS clients.
func TestPlainBytesOnTLSPort(t *testing.T) {
	checkGoroutines(t)
	sec := mutualTLS(t)
	log := new(syncBuffer)
	_, addr := serve(t, "unit", &transport.Server{Unit: storage.NewMemory()}, sec, func(c *tcp.ServerConfig) {
		c.Logger = slog.New(slog.NewTextHandler(log, nil))
	})
	plainClient := client(t, map[transport.NodeID]string{"unit": addr}, plain(), func(c *tcp.ClientConfig) { c.DialTimeout = time.Second })
	ctx := context.Background()
	_, err := plainClient.Call(ctx, "unit", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, transport.ErrUnreachable)
	log.wait(t, "handshake failed")

	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	_, err = nc.Write([]byte("GET / HTTP/1.1\r\n\r\n"))
	require.NoError(t, err)
	require.NoError(t, nc.SetReadDeadline(time.Now().Add(10*time.Second)))
	buf := make([]byte, 256)
	for err == nil {
		_, err = nc.Read(buf)
	}
	require.NotErrorIs(t, err, context.DeadlineExceeded, "the server closes the connection")
	require.NoError(t, nc.Close())

	_, err = client(t, map[transport.NodeID]string{"unit": addr}, sec, nil).Call(ctx, "unit", &transport.Request{Op: transport.OpRead})
	require.ErrorIs(t, err, storage.ErrUnwritten)
}
