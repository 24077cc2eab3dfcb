// Package examples holds runnable programs built on the corfu log. Each
// subpackage is one replicated object in the Tango style: an in-memory view
// rebuilt from a stream of the shared log, with an update helper that
// appends and a query helper that syncs to the tail before it reads.
//
//	kvmap    a replicated string map on one stream
package examples
