package tcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/sequencer"
	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/transport"
)

// refFrame is a frame as the reference parser in the fuzz tests sees it.
type refFrame struct {
	typ  frameType
	id   uint64
	body []byte
}

// refParse splits b into frames of at most max body bytes, the simple way:
// it returns the whole frames before the first bad or incomplete one, and
// whether b ended cleanly at a frame boundary.
func refParse(b []byte, max int) (frames []refFrame, clean bool) {
	for len(b) >= headerBytes {
		l := binary.BigEndian.Uint32(b)
		if l < minFrameLen || int64(l)-minFrameLen > int64(max) || int64(len(b)-lenBytes) < int64(l) {
			return frames, false
		}
		frames = append(frames, refFrame{typ: frameType(b[4]), id: binary.BigEndian.Uint64(b[5:]), body: b[headerBytes : lenBytes+int(l)]})
		b = b[lenBytes+int(l):]
	}
	return frames, len(b) == 0
}

// seedFrames returns frame streams for the seed corpora: well-formed
// requests, and each kind of bad frame the table tests send.
func seedFrames() [][]byte {
	req := func(id uint64, r *transport.Request) []byte {
		return appendFrame(nil, frameRequest, id, transport.AppendRequest(nil, r))
	}
	write := req(1, &transport.Request{Op: transport.OpWrite, Addr: 1, Data: []byte("hello")})
	read := req(2, &transport.Request{Op: transport.OpRead, Addr: 1})
	token := req(3, &transport.Request{Op: transport.OpToken, N: 2, Streams: []sequencer.StreamID{1, 2}})
	seal := req(4, &transport.Request{Op: transport.OpSeal, Epoch: 1})
	return [][]byte{
		nil,
		write,
		append(append(append(append([]byte(nil), write...), read...), token...), seal...),
		append(append([]byte(nil), write...), write...), // a reused id
		append(append([]byte(nil), read...), write...),  // an id going back
		write[:20],                            // truncated
		header13(0xffffffff, frameRequest, 1), // oversize
		header13(3, frameRequest, 1),          // below the header
		appendFrame(nil, 99, 1, nil),          // unknown type
		appendFrame(nil, frameResponse, 1, transport.AppendResponse(nil, &transport.Response{})),
		appendFrame(nil, frameHello, 0, validHello()),
		appendFrame(nil, frameRequest, 1, []byte("garbage")),
		req(5, &transport.Request{Op: transport.OpWrite, Epoch: 9, Addr: storage.MaxAddress, Data: []byte{}}),
		[]byte("GET / HTTP/1.1\r\n\r\n"),
	}
}

// FuzzFrameReader checks the frame reader against refParse: the same
// frames, whatever the chunks the bytes arrive in, an error for a bad or
// cut frame, never a panic, and never a buffer larger than the frame in
// progress needs.
func FuzzFrameReader(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(uint8(0), s)
		f.Add(uint8(1), s)
	}
	f.Fuzz(func(t *testing.T, chunking uint8, b []byte) {
		const limit = 1 << 10
		want, clean := refParse(b, limit)
		var r io.Reader = bytes.NewReader(b)
		switch chunking % 3 {
		case 1:
			r = iotest.OneByteReader(r)
		case 2:
			r = iotest.HalfReader(r)
		}
		fr := frameReader{r: r, max: limit}
		var got []refFrame
		var err error
		for {
			var h header
			var body []byte
			h, body, _, err = fr.next()
			if err != nil {
				break
			}
			require.Equal(t, h.n, len(body))
			require.LessOrEqual(t, cap(fr.buf), max(minReadBytes, headerBytes+limit))
			got = append(got, refFrame{typ: h.typ, id: h.id, body: append([]byte{}, body...)})
		}
		require.Equal(t, len(want), len(got))
		for i := range want {
			require.Equal(t, want[i].typ, got[i].typ)
			require.Equal(t, want[i].id, got[i].id)
			require.Equal(t, string(want[i].body), string(got[i].body))
		}
		if clean {
			require.ErrorIs(t, err, io.EOF)
			require.NotErrorIs(t, err, errProtocol)
		} else {
			require.ErrorIs(t, err, errProtocol)
			require.ErrorIs(t, err, transport.ErrMalformed)
		}
	})
}

// FuzzHandshake checks the decoders of the handshake bodies: never a
// panic, errors that wrap errProtocol and transport.ErrMalformed, and
// whatever decodes encodes to something that decodes the same.
func FuzzHandshake(f *testing.F) {
	f.Add(validHello())
	f.Add(appendHello(nil, hello{minVersion: 1, maxVersion: 3, role: RoleClient | RoleUnit, from: "é", to: ""}))
	f.Add(appendWelcome(nil, welcome{version: 1, roles: RoleUnit | RoleLayout, node: "unit0", maxInFlight: 1024, maxFrameBytes: transport.MaxFrameBytes}))
	f.Add(appendReason(nil, "server shutting down"))
	f.Add([]byte(magic))
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		check := func(err error) bool {
			t.Helper()
			if err != nil {
				require.ErrorIs(t, err, errProtocol)
				require.ErrorIs(t, err, transport.ErrMalformed)
				return false
			}
			return true
		}
		if h, err := decodeHello(b); check(err) {
			h2, err := decodeHello(appendHello(nil, h))
			require.NoError(t, err)
			require.Equal(t, h, h2)
			require.LessOrEqual(t, h.minVersion, h.maxVersion)
		}
		if w, err := decodeWelcome(b); check(err) {
			w2, err := decodeWelcome(appendWelcome(nil, w))
			require.NoError(t, err)
			require.Equal(t, w, w2)
			require.Zero(t, w.roles&^serverRoles)
		}
		if r, err := decodeReason(b); check(err) {
			r2, err := decodeReason(appendReason(nil, r))
			require.NoError(t, err)
			require.Equal(t, r, r2)
		}
	})
}

// recorder serves a unit and a sequencer and keeps, encoded, every request
// it is handed.
type recorder struct {
	inner transport.Handler
	mu    sync.Mutex
	seen  map[string]int
}

func (r *recorder) Handle(req *transport.Request) *transport.Response {
	r.mu.Lock()
	r.seen[string(transport.AppendRequest(nil, req))]++
	r.mu.Unlock()
	return r.inner.Handle(req)
}

// FuzzServer sends arbitrary bytes after a valid hello to a live server.
// It must not panic, must hand the Handler only requests of well-formed
// frames that came before the first bad one (the frame rules: request
// frames only, ids strictly increasing, bodies within the limit), and must
// still serve a well-behaved client afterwards.
func FuzzServer(f *testing.F) {
	for _, s := range seedFrames() {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		seq := sequencer.New(sequencer.Config{})
		require.NoError(t, seq.Bootstrap(0, 0, nil))
		rec := &recorder{inner: &transport.Server{Unit: storage.NewMemory(), Sequencer: seq}, seen: map[string]int{}}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		srv, err := Serve(l, rec, ServerConfig{Node: "node", FrameTimeout: time.Second, MaxInFlight: 16})
		require.NoError(t, err)

		nc, err := net.Dial("tcp", l.Addr().String())
		require.NoError(t, err)
		_, err = nc.Write(appendFrame(nil, frameHello, 0, validHello()))
		require.NoError(t, err)
		go func() {
			_, _ = nc.Write(b)
			_ = nc.(*net.TCPConn).CloseWrite()
		}()
		require.NoError(t, nc.SetReadDeadline(time.Now().Add(20*time.Second)))
		_, err = io.Copy(io.Discard, nc) // until the server closes
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept the connection")
		_ = nc.Close()

		// What the Handler may have seen: the requests of the good frames
		// before the first bad one.
		frames, _ := refParse(b, transport.MaxFrameBytes)
		allowed := map[string]int{}
		var last uint64
		for _, fr := range frames {
			if fr.typ != frameRequest || fr.id <= last {
				break
			}
			last = fr.id
			if req, err := transport.DecodeRequest(fr.body); err == nil {
				allowed[string(transport.AppendRequest(nil, req))]++
			}
		}

		// A good client is served.
		c, err := NewClient(ClientConfig{Resolve: StaticResolver(map[transport.NodeID]string{"node": l.Addr().String()})})
		require.NoError(t, err)
		probe := &transport.Request{Op: transport.OpGetLayout}
		_, err = c.Call(t.Context(), "node", probe)
		require.ErrorIs(t, err, transport.ErrWrongRole, "answered, whatever the state")
		require.NoError(t, c.Close())
		require.NoError(t, srv.Close())

		rec.mu.Lock()
		defer rec.mu.Unlock()
		probed := string(transport.AppendRequest(nil, probe))
		for req, n := range rec.seen {
			if req == probed {
				n--
			}
			require.LessOrEqual(t, n, allowed[req], "the handler got a request of no good frame: %x", req)
		}
	})
}
