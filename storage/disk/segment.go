package disk

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/corfulog/corfu/storage"
	"github.com/corfulog/corfu/storage/vfs"
)

// segment is one segment file. The last segment of Unit.segs is the active
// one, which records are appended to; the others are read-only.
type segment struct {
	num  uint64
	file vfs.File
	// size is the offset the next record goes to (appended, not
	// necessarily written or synced yet). The unit's mu guards it.
	size int64
	// maxAddr is one past the highest address of any record in the
	// segment (0 if none): the segment may go once the prefix trim mark
	// reaches it. lastSeq is the commit sequence of its last record. The
	// unit's mu guards both.
	maxAddr storage.Address
	lastSeq uint64
	// durableOff is where the durable records end: every byte below it
	// has been synced. Records carry it as their synced field. The unit's
	// mu guards it.
	durableOff int64
	// unsyncedEntry says the segment's directory entry is not durable yet:
	// the commit that writes its first records syncs the directory.
	unsyncedEntry bool
	// zeroEnd is how far the file is known to extend durably: the active
	// segment is written ahead of its records with zeros (see
	// Options.Prewrite), and the bytes from size to zeroEnd are those
	// zeros. The unit's mu guards it.
	zeroEnd int64
	// prev, if set, is the segment before this one, whose zeros past its
	// last record the commit that writes this one's file header cuts off
	// (and syncs) first: only the last segment may end in anything but a
	// record. Set under mu when the segment starts; then only that commit's
	// leader touches it.
	prev *segment
}

func segName(num uint64) string { return fmt.Sprintf("%016d%s", num, segSuffix) }

// parseSegName returns the number of a segment file name.
func parseSegName(name string) (uint64, bool) {
	digits, ok := strings.CutSuffix(name, segSuffix)
	if !ok || len(digits) != 16 {
		return 0, false
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil && n > 0
}

// segmentNumbers returns the numbers of the segment files among names,
// sorted.
func segmentNumbers(names []string) []uint64 {
	var nums []uint64
	for _, name := range names {
		if n, ok := parseSegName(name); ok {
			nums = append(nums, n)
		}
	}
	slices.Sort(nums)
	return nums
}

// findSegment returns the segment numbered num in segs (sorted), or nil.
func findSegment(segs []*segment, num uint64) *segment {
	i, ok := slices.BinarySearchFunc(segs, num, func(s *segment, n uint64) int {
		switch {
		case s.num < n:
			return -1
		case s.num > n:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return segs[i]
}
