package window

import (
	"math/bits"
	"sync"
)

// Ring memory is shared by every connection of the process through
// size-classed pools: a ring is taken when data arrives to be held and
// given back the moment it is empty again (SendBuffer.Consume,
// RecvBuffer.Read), so an idle connection holds no ring at all, while a
// busy one trades its ring with the pool once per burst, not per
// segment, and a steady transfer allocates nothing. Classes are the
// powers of two from minRing up (ringClasses); a ring sized in between
// (a limit that is not a power of two caps its growth) takes the next
// class up and uses part of it. A ring beyond the largest class is made
// for the occasion and left to the garbage collector. The pools are
// sync.Pools, so memory nobody takes again goes back to the runtime
// within two garbage collections.

// ringClasses are minRing << 0 .. minRing << 11: 4 KiB to 8 MiB, above
// the largest receive ring autotuning makes by default (6 MiB and slack).
const ringClasses = 12

// ring is a pooled ring buffer. The pools hold *ring, so that giving a
// ring back allocates nothing.
type ring struct{ b []byte }

var ringPools [ringClasses]sync.Pool

// ringClass is the smallest class holding size bytes (ringClasses if
// none does).
func ringClass(size int) int {
	if size <= minRing {
		return 0
	}
	c := bits.Len(uint(size-1)) - bits.Len(uint(minRing-1))
	return min(c, ringClasses)
}

// getRing returns a ring of exactly size bytes (its contents are stale:
// the buffers only ever expose bytes written since).
func getRing(size int) *ring {
	c := ringClass(size)
	if c == ringClasses {
		return &ring{b: make([]byte, size)}
	}
	r, _ := ringPools[c].Get().(*ring)
	if r == nil {
		r = &ring{b: make([]byte, minRing<<c)}
	}
	r.b = r.b[:size]
	return r
}

// putRing gives r back to its class's pool. The caller keeps no slice of
// it.
func putRing(r *ring) {
	if r == nil {
		return
	}
	c := ringClass(cap(r.b))
	if c == ringClasses || minRing<<c != cap(r.b) {
		return // made for the occasion
	}
	r.b = r.b[:cap(r.b)]
	ringPools[c].Put(r)
}
