package transport_test

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/corfulog/corfu/transport"
)

// FuzzDecodeRequest checks that DecodeRequest never panics, fails only with
// ErrMalformed, and that whatever it decodes round-trips.
func FuzzDecodeRequest(f *testing.F) {
	for name, req := range sampleRequests() {
		if name == "write max" || name == "write too big" {
			continue // keep the seed corpus small
		}
		f.Add(transport.AppendRequest(nil, req))
	}
	f.Add(transport.AppendResponse(nil, &transport.Response{}))
	f.Fuzz(func(t *testing.T, b []byte) {
		req, err := transport.DecodeRequest(b)
		if err != nil {
			require.ErrorIs(t, err, transport.ErrMalformed)
			require.Nil(t, req)
			return
		}
		b2 := transport.AppendRequest(nil, req)
		req2, err := transport.DecodeRequest(b2)
		require.NoError(t, err)
		require.Equal(t, req, req2)
		require.Equal(t, b2, transport.AppendRequest(nil, req2), "encoding is deterministic")
	})
}

// FuzzDecodeResponse checks that DecodeResponse never panics, fails only
// with ErrMalformed, and that whatever it decodes round-trips.
func FuzzDecodeResponse(f *testing.F) {
	for _, resp := range sampleResponses() {
		f.Add(transport.AppendResponse(nil, resp))
	}
	f.Add(transport.AppendRequest(nil, &transport.Request{Op: transport.OpRead}))
	f.Fuzz(func(t *testing.T, b []byte) {
		resp, err := transport.DecodeResponse(b)
		if err != nil {
			require.ErrorIs(t, err, transport.ErrMalformed)
			require.Nil(t, resp)
			return
		}
		b2 := transport.AppendResponse(nil, resp)
		resp2, err := transport.DecodeResponse(b2)
		require.NoError(t, err)
		require.Equal(t, resp, resp2)
		require.Equal(t, b2, transport.AppendResponse(nil, resp2), "encoding is deterministic")
	})
}
