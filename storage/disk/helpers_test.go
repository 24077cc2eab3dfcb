package disk_test

import "math/rand/v2"

func randFor(seed uint64) *rand.Rand { return rand.New(rand.NewPCG(seed, 99)) }

// recHeader is the size of a record header (docs/formats.md).
const recHeader = 64
