package retransmit

import (
	"sync"

	"github.com/tund-project/tund/tcp/seqnum"
)

// Scoreboard is the SACK sender's record of which bytes beyond SND.UNA
// the peer has told us it holds (RFC 2018, RFC 6675 §3). Sequence numbers
// are seqnum.Seq, the type the tcp core uses, compared with serial
// arithmetic (RFC 1982). It keeps at most MaxRanges disjoint ranges,
// sorted, in a fixed array taken from a pool with the first range and
// given back when the last goes: a connection holds one only while the
// peer reports holes, and updating it never allocates.
type Scoreboard struct {
	r *[MaxRanges]span // nil while n == 0
	n int
}

// rangePool holds the scoreboards' arrays.
var rangePool = sync.Pool{New: func() any { return new([MaxRanges]span) }}

// setLen sets the number of ranges, giving the array back at zero.
func (s *Scoreboard) setLen(n int) {
	s.n = n
	if n == 0 && s.r != nil {
		rangePool.Put(s.r)
		s.r = nil
	}
}

// MaxRanges bounds the SACKed ranges remembered. A peer reports at most
// four per segment; more holes than this only make recovery slower.
const MaxRanges = 32

// DupThresh is RFC 6675's duplicate threshold: three segments' worth of
// evidence beyond a hole mark it lost.
const DupThresh = 3

type span struct{ start, end seqnum.Seq }

// Reset forgets everything (after a retransmission timeout the sender
// starts over from SND.UNA, and the peer may have reneged: RFC 2018 §8).
func (s *Scoreboard) Reset() { s.setLen(0) }

// Empty reports whether nothing beyond SND.UNA is SACKed.
func (s *Scoreboard) Empty() bool { return s.n == 0 }

// Add records a SACK block [start, end) reported by the peer, if it is
// plausible: inside (una, max], where max is the highest sequence number
// sent (RFC 2018 §3 lets a receiver report only what it holds). It
// reports whether the block told us anything new.
func (s *Scoreboard) Add(start, end, una, max seqnum.Seq) bool {
	if !start.LessThan(end) || max.LessThan(end) {
		return false
	}
	start = start.Max(una)
	if !start.LessThan(end) {
		return false
	}
	// Find where it goes, merging every range it overlaps or touches.
	i := 0
	for i < s.n && s.r[i].end.LessThan(start) {
		i++
	}
	j := i
	merged := span{start, end}
	for j < s.n && s.r[j].start.LessThanEq(end) {
		merged.start = merged.start.Min(s.r[j].start)
		merged.end = merged.end.Max(s.r[j].end)
		j++
	}
	if j-i == 1 && s.r[i] == merged {
		return false // nothing new
	}
	if i == j && s.n == MaxRanges {
		return false // full: keep what we have
	}
	if s.r == nil {
		s.r = rangePool.Get().(*[MaxRanges]span)
	}
	// Replace r[i:j] with merged.
	shift := 1 - (j - i)
	if shift > 0 {
		copy(s.r[i+1:s.n+1], s.r[i:s.n])
	} else if shift < 0 {
		copy(s.r[i+1:], s.r[j:s.n])
	}
	s.r[i] = merged
	s.n += shift
	return true
}

// Ack drops everything below una, the new SND.UNA.
func (s *Scoreboard) Ack(una seqnum.Seq) {
	k := 0
	for i := 0; i < s.n; i++ {
		r := s.r[i]
		if r.end.LessThanEq(una) {
			continue
		}
		r.start = r.start.Max(una)
		s.r[k] = r
		k++
	}
	s.setLen(k)
}

// Highest is the end of the highest SACKed range, or una if none.
func (s *Scoreboard) Highest(una seqnum.Seq) seqnum.Seq {
	if s.n == 0 {
		return una
	}
	return una.Max(s.r[s.n-1].end)
}

// SackedAbove is the number of SACKed bytes above seq.
func (s *Scoreboard) SackedAbove(seq seqnum.Seq) int {
	total := 0
	for i := s.n - 1; i >= 0; i-- {
		r := s.r[i]
		if r.end.LessThanEq(seq) {
			break
		}
		total += r.end.Sub(r.start.Max(seq))
	}
	return total
}

// IsLost is RFC 6675's IsLost(seq) with the duplicate threshold thresh
// (DupThresh normally, less for RFC 5827 early retransmit): the byte at
// seq is deemed lost when thresh separate SACKed ranges lie above it, or
// more than (thresh-1)*mss SACKed bytes do.
func (s *Scoreboard) IsLost(seq seqnum.Seq, mss, thresh int) bool {
	ranges := 0
	for i := s.n - 1; i >= 0 && seq.LessThan(s.r[i].end); i-- {
		ranges++
	}
	return ranges >= thresh || s.SackedAbove(seq) > (thresh-1)*mss
}

// NextHole returns the first range of un-SACKed bytes at or after from
// and below limit.
func (s *Scoreboard) NextHole(from, limit seqnum.Seq) (start, end seqnum.Seq, ok bool) {
	start = from
	for i := 0; i < s.n; i++ {
		r := s.r[i]
		if r.end.LessThanEq(start) {
			continue
		}
		if r.start.LessThanEq(start) {
			start = r.end // inside a SACKed range: skip past it
			continue
		}
		end = r.start.Min(limit)
		return start, end, start.LessThan(end)
	}
	return start, limit, start.LessThan(limit)
}

// HoleBytes is the number of un-SACKed bytes in [from, to).
func (s *Scoreboard) HoleBytes(from, to seqnum.Seq) int {
	if !from.LessThan(to) {
		return 0
	}
	total := to.Sub(from)
	for i := 0; i < s.n; i++ {
		a, b := s.r[i].start.Max(from), s.r[i].end.Min(to)
		if a.LessThan(b) {
			total -= b.Sub(a)
		}
	}
	return total
}

// Ranges calls f for each SACKed range in order, for display and tests.
func (s *Scoreboard) Ranges(f func(start, end seqnum.Seq)) {
	for i := 0; i < s.n; i++ {
		f(s.r[i].start, s.r[i].end)
	}
}
