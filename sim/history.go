package sim

import (
	"fmt"
	"time"

	"github.com/corfulog/corfu/corfu"
	"github.com/corfulog/corfu/storage"
)

// OpKind is the kind of a client operation in a History.
type OpKind uint8

// The client operations the simulator records.
const (
	OpAppend OpKind = iota + 1 // Value appended; Addr is the address returned
	OpRead                     // Addr read; Value is what was returned
	OpTail                     // Addr is the tail returned
	OpFill                     // Addr filled by the client's API call
	OpTrim                     // Addr trimmed (prefix trim below Addr when Prefix)
	// OpStreamSync is a stream read (corfu.Stream.Sync, or Follow over the
	// whole log when Streams is empty): Entries are what it returned from
	// [Addr, To), in the order returned.
	OpStreamSync
	// OpPut is an append made through an object (a kvmap Put), whose
	// address the object's API does not return: Value was appended to
	// Streams, Addr is zero.
	OpPut
)

// String returns the operation's name.
func (k OpKind) String() string {
	switch k {
	case OpAppend:
		return "append"
	case OpRead:
		return "read"
	case OpTail:
		return "tail"
	case OpFill:
		return "fill"
	case OpTrim:
		return "trim"
	case OpStreamSync:
		return "stream-sync"
	case OpPut:
		return "put"
	}
	return fmt.Sprintf("op(%d)", uint8(k))
}

// Outcome is how an operation ended.
type Outcome uint8

// The outcomes. OK, Junk, Unwritten and Trimmed are definite answers;
// Failed means the operation definitely did not take effect; Unknown means it
// may or may not have (a timeout, ErrUnknownOutcome, a crash of the client).
const (
	Pending   Outcome = iota // invoked, not returned (yet)
	OK                       // succeeded; for a read, Value holds the data
	Junk                     // a read found junk, or a fill junk-filled the address
	Unwritten                // a read found nothing and did not fill
	Trimmed                  // a read found the address trimmed
	Failed                   // definitely not applied
	Unknown                  // may or may not have been applied
)

// String returns the outcome's name.
func (o Outcome) String() string {
	return [...]string{"pending", "ok", "junk", "unwritten", "trimmed", "failed", "unknown"}[o]
}

// Op is one client operation: its invocation, its return and what it saw.
// Times are virtual.
type Op struct {
	ID      int
	Client  int
	Kind    OpKind
	Invoke  time.Duration // virtual time since the run started
	Return  time.Duration // zero while Pending
	Addr    storage.Address
	Value   string // append: the value written; read: the value returned
	Outcome Outcome
	Err     string // the error, if any, for the report
	// Streams are, for an append or a put, the streams it joined; for a
	// read that returned an entry, the entry's streams; for a stream read,
	// the stream read (none: the whole log).
	Streams []corfu.StreamID
	// To ends the range [Addr, To) a stream read covered, and Entries are
	// what it returned there.
	To      storage.Address
	Entries []Seen
}

// Seen is one entry a stream read returned: its address and its value.
type Seen struct {
	Addr  storage.Address
	Value string
}

// String formats the operation for a violation report.
func (o Op) String() string {
	if o.Kind == OpStreamSync {
		return fmt.Sprintf("#%d c%d %s streams=%v [%d, %d) %d entries -> %s [%v, %v] %s",
			o.ID, o.Client, o.Kind, o.Streams, o.Addr, o.To, len(o.Entries), o.Outcome, o.Invoke, o.Return, o.Err)
	}
	return fmt.Sprintf("#%d c%d %s addr=%d value=%q -> %s [%v, %v] %s",
		o.ID, o.Client, o.Kind, o.Addr, o.Value, o.Outcome, o.Invoke, o.Return, o.Err)
}

// History is the record of every client operation of one run, in invocation
// order. It is filled by a single task at a time, so it needs no lock.
type History struct {
	Ops []Op
}

// Invoke records the start of an operation and returns its ID.
func (h *History) Invoke(client int, kind OpKind, at time.Duration, addr storage.Address, value string) int {
	id := len(h.Ops)
	h.Ops = append(h.Ops, Op{ID: id, Client: client, Kind: kind, Invoke: at, Addr: addr, Value: value})
	return id
}

// Return records the end of operation id.
func (h *History) Return(id int, at time.Duration, addr storage.Address, value string, out Outcome, err error) {
	o := &h.Ops[id]
	o.Return, o.Addr, o.Outcome = at, addr, out
	if o.Kind == OpRead {
		o.Value = value
	}
	if err != nil {
		o.Err = err.Error()
	}
}
