//go:build !unix

package tcp

import (
	"net"
	"time"
)

// rawWriter is not used where there is no Unix socket to write to.
type rawWriter struct{}

func newRawWriter(net.Conn, time.Duration) *rawWriter { return nil }

func (*rawWriter) write([][]byte) error { panic("unreachable") }

// nonBlocking is not used where there is no Unix socket to read.
type nonBlocking struct{}

func newNonBlocking(*rawWriter) *nonBlocking { return nil }

func (*nonBlocking) Read([]byte) (int, error) { panic("unreachable") }
