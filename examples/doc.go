// Package examples holds runnable programs built on the corfu log, in the
// Tango style: replicated objects whose in-memory views are rebuilt from
// streams of the shared log, with an update helper that appends and a query
// helper that syncs to the tail before it reads.
//
//	tango    the object runtime: typed objects (Map, Counter, Register, Queue),
//	         multi-object transactions
//	kvmap    a replicated string map on one stream, a thin user of tango
//	         (go run ./examples/kvmap/cmd/kvmap)
//	bank     accounts and a ledger moved by transactions, simulated under
//	         faults and checked (go run ./examples/bank/cmd/bank)
package examples
