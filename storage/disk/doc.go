// Package disk is the durable storage.Unit: a write-once address space kept
// in append-only segment files of a vfs.FS, with the sealed epoch, the
// prefix trim mark and the node's identity in a metadata file.
//
// # Layout
//
// A data directory holds META (the metadata, replaced by writing META.tmp,
// syncing it, renaming it over META and syncing the directory), LOCK (held
// while a unit is open) and segment files numbered from 1. Every Write, Fill
// and Trim appends a record (kind, local and global address, epoch, writer,
// length, payload) guarded by two CRC32C checksums, one over the header and
// one over the whole record. docs/formats.md gives the format byte by byte.
// Open rebuilds a B-tree index (address to segment and offset) by scanning
// the segments; reads go to the file and check the checksums every time.
//
// # Durability
//
// A change is acknowledged only once it is durable, and reads see it only
// then. Options.Sync says what durable means for records:
//
//   - SyncBatch (the default), group commit: concurrent writes share one
//     fsync; each Write, Fill and Trim returns once an fsync covering its
//     record has returned. Acknowledged records survive a power loss.
//   - SyncEach: every record has its own write and fsync before its call
//     returns. As durable as SyncBatch, and slower under concurrency.
//   - SyncNone: records are written to the file but never fsynced; a
//     process crash loses nothing, a power loss loses acknowledged records.
//     For tests and benchmarks only.
//
// Where the file system prefers overwrites (vfs.PrefersOverwrite), the
// active segment is written with zeros, and synced, a few MiB ahead of its
// records (Options.Prewrite), by writers whose own commit has landed: a
// group commit's fdatasync then flushes data only, not the file's new size
// and block allocation as well.
//
// Seal, PrefixTrim and Join rewrite the metadata durably (in every mode)
// before they reply; Seal first waits for the writes accepted before it to
// be durable, so none is acknowledged after the seal's reply.
//
// # Recovery
//
// A torn record at the end of the last segment (a write that never
// completed its fsync) is dropped and the file truncated. A record whose
// header holds but whose payload fails its checksum leaves its address
// answering storage.ErrCorrupt, and nothing after it is dropped. A header
// destroyed in the middle of the log (the unit cannot tell which address it
// held), damaged metadata, segments without metadata and another node's
// directory make Open refuse with an error. A directory found empty comes
// back as a fresh unit, or blank (storage.ErrBlank until Join) if
// Options.HeldData says the node held data there.
//
// # Space
//
// PrefixTrim deletes the segment files whose records all lie below the new
// mark. A single-address Trim is recorded but frees its bytes only when a
// prefix trim passes their segment.
//
// # Benchmarks
//
// go test -run XXX -bench . measures, on the real disk under the test's
// temporary directory: BenchmarkWrite (64 writers, 128 B and 4 KiB, beside
// the raw bandwidth of fsynced 1 MiB blocks and one fsync's latency,
// measured in the same run), BenchmarkWriteShape (its 4 KiB case's ceiling
// on that disk without a unit: one full group commit of the 64 writers per
// fdatasync, appended, over zeros written ahead meanwhile, or over zeros
// written before the timer; and the same split into two overlapping
// commits, as the unit's are), BenchmarkRead, BenchmarkIndexMemory (heap bytes
// per indexed entry) and BenchmarkReopen (Open of 10M entries).
//
// # Faults
//
// Everything goes through the vfs.FS: the simulator models a power loss by
// reopening the unit on vfs.MemFS.CrashClone, and disk faults by wrapping
// the FS in package errorfs. A write or fsync that fails makes the unit
// refuse further writes (ErrFailed) until it is reopened, since the outcome
// of the writes in flight is unknown.
package disk
