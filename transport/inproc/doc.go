// Package inproc is an in-process network: a transport.Caller that delivers
// each request to a transport.Handler registered under a node's name, in the
// calling goroutine.
//
// It encodes and decodes every request and response with the transport
// codec, exactly as a network transport does, so that a test over inproc
// exercises the codec and catches aliasing between caller and server: a
// handler never sees the caller's slices, and the caller never sees the
// handler's. Calls to one node are served one at a time; calls to different
// nodes run in parallel.
//
// A Network delivers every message at once and loses none. It is meant for
// ordinary tests, examples and embedding a cluster in one process; the
// simulator has its own network, with virtual time and faults.
package inproc
