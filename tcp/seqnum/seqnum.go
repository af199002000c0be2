// Package seqnum is TCP sequence-number arithmetic, shared by the tcp core
// and the packages beneath it (window, retransmit) so that every comparison
// of sequence numbers in tund is made one way: modulo 2^32, by the sign of
// the wrapping difference (RFC 1982 serial arithmetic, RFC 9293 §3.4).
package seqnum

// Seq is a TCP sequence number. Sequence space wraps at 2^32, so two
// numbers are ordered by the sign of their wrapping difference (RFC 1982
// serial arithmetic, RFC 9293 §3.4). Never compare raw uint32 values.
type Seq uint32

// Add returns s advanced by n bytes (n may be negative).
func (s Seq) Add(n int) Seq { return s + Seq(uint32(n)) }

// Sub returns the signed distance s - o. It is meaningful while the two
// numbers are less than 2^31 apart, which TCP windows guarantee.
func (s Seq) Sub(o Seq) int { return int(int32(uint32(s) - uint32(o))) }

// LessThan reports whether s comes strictly before o.
func (s Seq) LessThan(o Seq) bool { return int32(uint32(s)-uint32(o)) < 0 }

// LessThanEq reports whether s comes before o or equals it.
func (s Seq) LessThanEq(o Seq) bool { return int32(uint32(s)-uint32(o)) <= 0 }

// GreaterThan reports whether s comes strictly after o.
func (s Seq) GreaterThan(o Seq) bool { return int32(uint32(s)-uint32(o)) > 0 }

// GreaterThanEq reports whether s comes after o or equals it.
func (s Seq) GreaterThanEq(o Seq) bool { return int32(uint32(s)-uint32(o)) >= 0 }

// InWindow reports whether start <= s < start+size. A window of size 0
// contains nothing.
func (s Seq) InWindow(start Seq, size int) bool {
	d := uint32(s) - uint32(start)
	return size > 0 && d < uint32(size)
}

// Max returns the later of s and o.
func (s Seq) Max(o Seq) Seq {
	if s.LessThan(o) {
		return o
	}
	return s
}

// Min returns the earlier of s and o.
func (s Seq) Min(o Seq) Seq {
	if s.LessThan(o) {
		return s
	}
	return o
}
