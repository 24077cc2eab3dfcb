package disk

import "errors"

var (
	// ErrBadMeta reports a metadata file that fails its checksum or is
	// malformed. Open refuses the directory: the sealed epoch and the trim
	// mark cannot be trusted, and an epoch never defaults back to zero.
	ErrBadMeta = errors.New("disk: metadata damaged")
	// ErrNoMeta reports a directory that holds segment files but no
	// metadata. Open refuses it rather than start over at epoch 0.
	ErrNoMeta = errors.New("disk: segments without metadata")
	// ErrForeign reports a directory stamped with another node's name or
	// identity (a disk moved between nodes, or an old incarnation's).
	ErrForeign = errors.New("disk: data directory belongs to another node")
	// ErrDamaged reports a segment damaged so that the unit cannot tell
	// which addresses it held (a record header destroyed in the middle of
	// the log). Open refuses it, wrapping storage.ErrCorrupt as well: the
	// unit could not answer ErrUnwritten truthfully. The operator treats it
	// like a lost disk: wipe the directory and open it with
	// Options.HeldData, so that the unit comes back blank.
	ErrDamaged = errors.New("disk: segment damaged beyond recovery")
	// ErrNoIdentity reports a new directory opened with neither an ID nor
	// a Rand to draw one from.
	ErrNoIdentity = errors.New("disk: no identity for a new directory")
	// ErrFailed reports a unit whose write or fsync failed. The outcome of
	// the writes in flight is unknown (an fsync that failed cannot be
	// retried safely), so the unit refuses every later Write, Fill and Trim
	// until it is closed and opened again, which recovers what reached the
	// disk. Reads, seals and prefix trims still work.
	ErrFailed = errors.New("disk: unit failed a write and must be reopened")
	// ErrClosed reports a call on a closed unit.
	ErrClosed = errors.New("disk: unit closed")
)
