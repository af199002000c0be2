package tcp

import (
	"crypto/rand"
	"encoding/binary"
	"net/netip"
	"time"
)

// ISNGenerator chooses initial sequence numbers as RFC 6528 §3 specifies:
// ISN = M + F(localip, localport, remoteip, remoteport, secretkey), where M
// is a clock ticking every 4 microseconds and F a keyed hash (SipHash-2-4,
// as for the SYN cookies), so ISNs of one 4-tuple advance with time and
// cannot be predicted from another's.
type ISNGenerator struct {
	k0, k1 uint64
	offset uint32
}

// NewISNGenerator returns a generator with a fresh random key.
func NewISNGenerator() *ISNGenerator {
	var key [16]byte
	_, _ = rand.Read(key[:]) // crypto/rand.Read never fails (Go 1.24+)
	return NewISNGeneratorKey(key)
}

// NewISNGeneratorKey returns a generator with the given key: the same key
// gives the same ISNs at the same times, for reproducible test runs. A
// stack on a network needs a secret, random one (NewISNGenerator).
func NewISNGeneratorKey(key [16]byte) *ISNGenerator {
	g := &ISNGenerator{k0: binary.LittleEndian.Uint64(key[0:]), k1: binary.LittleEndian.Uint64(key[8:])}
	g.offset = uint32(siphash24(g.k0, g.k1, []byte("isn offset")))
	return g
}

// ISN returns the initial sequence number for a connection at time now
// (any monotonic clock).
func (g *ISNGenerator) ISN(local, remote netip.Addr, lport, rport uint16, now time.Duration) Seq {
	// Both families as 16 bytes (IPv4 v4-mapped): a fixed-width layout.
	var t [36]byte
	l, r := local.As16(), remote.As16()
	copy(t[0:16], l[:])
	copy(t[16:32], r[:])
	binary.BigEndian.PutUint16(t[32:], lport)
	binary.BigEndian.PutUint16(t[34:], rport)
	f := uint32(siphash24(g.k0, g.k1, t[:]))
	m := uint32(now / (4 * time.Microsecond))
	return Seq(m + f + g.offset)
}
