package tcp

import (
	"crypto/rand"
	"encoding/binary"
	"hash/maphash"
	"time"
)

// ISNGenerator chooses initial sequence numbers as RFC 6528 §3 specifies:
// ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M
// is a clock ticking every 4 microseconds and F a keyed hash, so ISNs of
// one 4-tuple advance with time and cannot be predicted from another's.
type ISNGenerator struct {
	seed   maphash.Seed
	offset uint32
}

// NewISNGenerator returns a generator with a fresh random key.
func NewISNGenerator() *ISNGenerator {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &ISNGenerator{seed: maphash.MakeSeed(), offset: binary.LittleEndian.Uint32(b[:])}
}

// ISN returns the initial sequence number for a connection at time now
// (any monotonic clock).
func (g *ISNGenerator) ISN(local, remote [4]byte, lport, rport uint16, now time.Duration) Seq {
	var t [12]byte
	copy(t[0:4], local[:])
	copy(t[4:8], remote[:])
	binary.BigEndian.PutUint16(t[8:], lport)
	binary.BigEndian.PutUint16(t[10:], rport)
	f := uint32(maphash.Bytes(g.seed, t[:]))
	m := uint32(now / (4 * time.Microsecond))
	return Seq(m + f + g.offset)
}
