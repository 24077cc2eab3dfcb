// Package tcp is a network transport for corfu: a transport.Caller
// (Client) that reaches nodes over TCP or TLS, and a Server that serves a
// transport.Handler (usually a transport.Server) to them.
//
// A connection opens with a handshake: the client's hello names the
// protocol versions it speaks, its role and the node it means to reach;
// the server answers with a welcome (its node name, the roles it serves
// and its limits) or a reject. Then the client sends request frames and
// the server answers each with a response frame of the same request id.
// Many requests are in flight on one connection at once; the server serves
// them concurrently and answers each when it is done, so answers may come
// back in any order. Frames queued while a write is under way go out
// together in the next write. The messages inside the frames are the
// transport codec's (transport.AppendRequest, transport.AppendResponse).
//
// The wire format, the handshake, the limits and the TLS identity checks
// are described in docs/wire.md
// (https://github.com/corfulog/corfu/blob/main/docs/wire.md).
//
// # Errors
//
// Client.Call returns what transport.Caller promises: a transport error
// (ctx's, or one wrapping transport.ErrUnreachable or
// transport.ErrMalformed) or the server's answer and its Err, so a
// rejected Prepare still carries the promised rank. A call in flight on a
// connection that fails may or may not have been served; a call the server
// refused before serving it (it was shutting down) is sent again on a
// fresh connection.
//
// # Bad input
//
// A server drops a connection whose peer breaks the protocol (an oversized,
// truncated or unknown frame, a frame sent the wrong way, a reused request
// id, a hello of another version, role or node, a handshake or a frame that
// takes too long) with a log record, and keeps serving the others. A frame
// is checked before it is served, so nothing of a bad frame reaches the
// Handler.
package tcp
