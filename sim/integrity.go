package sim

import (
	"crypto/sha256"
	"fmt"
	"slices"

	"github.com/corfulog/corfu/projection"
	"github.com/corfulog/corfu/storage"
)

// unitWrite identifies what one write stored at a unit's local address.
type unitWrite struct {
	node  projection.NodeID
	local storage.Address
}

// UnitWrote records, for S15 (storage integrity), that unit node
// acknowledged a write of data at its local address local. Call it for
// every successful write a unit served.
func (m *Monitor) UnitWrote(node projection.NodeID, local storage.Address, data []byte) {
	sum := sha256.Sum256(data)
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.unitWrites == nil {
		m.unitWrites = make(map[unitWrite][][sha256.Size]byte)
	}
	k := unitWrite{node: node, local: local}
	if !slices.Contains(m.unitWrites[k], sum) {
		m.unitWrites[k] = append(m.unitWrites[k], sum)
	}
}

// Served checks S15 (storage integrity) for a read that unit node answered
// with data from its local address local: the bytes must be exactly those
// of a write the unit acknowledged there, since it last lost its disk (see
// Wiped). A unit whose disk damaged a record must answer
// storage.ErrCorrupt, never the damaged bytes.
func (m *Monitor) Served(node projection.NodeID, local storage.Address, data []byte) {
	sum := sha256.Sum256(data)
	m.mu.Lock()
	ok := slices.Contains(m.unitWrites[unitWrite{node: node, local: local}], sum)
	m.mu.Unlock()
	if ok {
		return
	}
	m.report(Violation{Invariant: "S15", Detail: fmt.Sprintf(
		"%s served %d bytes (%q) at local address %d that no write it acknowledged there stored",
		node, len(data), data[:min(len(data), reportPrefixBytes)], local)})
}

// forgetUnit drops what node's writes stored, for S15: it lost its disk.
// m.mu is held.
func (m *Monitor) forgetUnit(node projection.NodeID) {
	for k := range m.unitWrites {
		if k.node == node {
			delete(m.unitWrites, k)
		}
	}
}
