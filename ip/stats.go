package ip

import "sync/atomic"

// Stats counts dropped packets by reason. The zero value is ready to use;
// it is safe for concurrent use (atomic counters, no locks) and must not be
// copied after first use.
type Stats struct {
	drops [NumDropReasons]atomic.Uint64
}

// Drop counts one packet dropped for r. DropNone and out-of-range values
// are counted nowhere.
func (s *Stats) Drop(r DropReason) {
	if r != DropNone && r < NumDropReasons {
		s.drops[r].Add(1)
	}
}

// Dropped returns how many packets have been dropped for r.
func (s *Stats) Dropped(r DropReason) uint64 {
	if r < NumDropReasons {
		return s.drops[r].Load()
	}
	return 0
}

// Snapshot returns every counter, indexed by DropReason. Each value is read
// atomically; the set as a whole is not one instant.
func (s *Stats) Snapshot() [NumDropReasons]uint64 {
	var out [NumDropReasons]uint64
	for i := range out {
		out[i] = s.drops[i].Load()
	}
	return out
}
