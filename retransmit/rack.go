package retransmit

import (
	"math/bits"
	"sync"
	"time"

	"github.com/tund-project/tund/tcp/seqnum"
)

// Flight is the sender's record of every segment in flight, in sequence
// order: where it starts and ends, when it last left, and whether it was
// sent again, SACKed or judged lost. RACK (RFC 8985) reads loss from these
// send times; the pipe (RFC 6675 §2) and PRR's delivered count (RFC 6937)
// are kept as running totals beside them.
//
// The records live in a ring that doubles when full and is reused for the
// life of the connection, so recording a segment never allocates once the
// ring has grown to the flight's size. Release gives it back when the
// connection goes idle.
type Flight struct {
	ring []segment // len is a power of two, or 0
	head int       // index of the oldest record
	n    int       // records in use

	sacked int // bytes in SACKed records
	lost   int // bytes in records marked lost and not yet sent again
	// next numbers transmissions, so that two that left within the same
	// clock tick are still ordered.
	next uint32
	// highRetrans is the end of the highest record ever sent again: above
	// it records left in sequence order, which lets the loss scan stop
	// early.
	highRetrans seqnum.Seq
}

// segment is one record of Flight.
type segment struct {
	start, end seqnum.Seq
	at         time.Duration // when it last left
	order      uint32        // and in which transmission (Flight.next)
	flags      uint8
}

// The flags of a segment record.
const (
	segRetrans uint8 = 1 << iota // sent more than once (its RTT sample is ambiguous)
	segSACKed                    // the peer holds it (RFC 2018)
	segLost                      // judged lost, not yet sent again
)

func (s *segment) len() int { return s.end.Sub(s.start) }

// at returns the i-th record from the oldest.
func (f *Flight) rec(i int) *segment { return &f.ring[(f.head+i)&(len(f.ring)-1)] }

// Len is the number of records (segments) in flight.
func (f *Flight) Len() int { return f.n }

// SACKed is the number of SACKed bytes in flight.
func (f *Flight) SACKed() int { return f.sacked }

// Lost is the number of bytes judged lost and not yet sent again.
func (f *Flight) Lost() int { return f.lost }

// Sent records new data [start, end) sent at now, after everything already
// recorded. The caller records each segment of a super-segment (GSO) on
// its own, so that loss is judged, and repaired, a segment at a time.
func (f *Flight) Sent(start, end seqnum.Seq, now time.Duration) {
	if f.n == len(f.ring) {
		f.grow()
	}
	*f.rec(f.n) = segment{start: start, end: end, at: now, order: f.next}
	f.n++
	f.next++
}

// ringPools hold released rings by size class: 16 << i records.
var ringPools [16]sync.Pool

func ringClass(size int) int { return bits.Len(uint(size>>4)) - 1 }

func (f *Flight) grow() {
	size := max(minRing, 2*len(f.ring))
	var ring []segment
	if k := ringClass(size); k < len(ringPools) {
		if r, ok := ringPools[k].Get().(*[]segment); ok {
			ring = *r
		}
	}
	if ring == nil {
		ring = make([]segment, size)
	}
	for i := 0; i < f.n; i++ {
		ring[i] = *f.rec(i)
	}
	old := f.ring
	f.ring, f.head = ring, 0
	f.put(old)
}

func (f *Flight) put(ring []segment) {
	if len(ring) == 0 {
		return
	}
	if k := ringClass(len(ring)); k < len(ringPools) {
		ringPools[k].Put(&ring)
	}
}

// minRing is the smallest ring. A ring larger than bigRing goes back to
// the pools as soon as the flight empties: an idle connection keeps at
// most a small one.
const (
	minRing = 16
	bigRing = 1024
)

// Release gives the ring back to the pools; call it with nothing in
// flight. Ack does it itself when the flight empties from a ring larger
// than bigRing, so that a connection gone idle after a bulk transfer
// does not keep one.
func (f *Flight) Release() {
	if f.n == 0 {
		f.put(f.ring)
		f.ring, f.head = nil, 0
	}
}

// find returns the index of the first record that ends after seq.
func (f *Flight) find(seq seqnum.Seq) int {
	lo, hi := 0, f.n
	for lo < hi {
		mid := (lo + hi) / 2
		if f.rec(mid).end.LessThanEq(seq) {
			lo = mid + 1
		} else {
			hi = mid
		}
	}
	return lo
}

// Resent records that [start, end) was sent again at now: every record it
// covers, in part or whole, now dates from now, is no longer lost, and
// gives no RTT sample (Karn's rule, RFC 6298 §3).
func (f *Flight) Resent(start, end seqnum.Seq, now time.Duration) {
	for i := f.find(start); i < f.n; i++ {
		s := f.rec(i)
		if !s.start.LessThan(end) {
			break
		}
		if s.flags&segLost != 0 {
			f.lost -= s.len()
		}
		s.flags = s.flags&^segLost | segRetrans
		s.at, s.order = now, f.next
		f.highRetrans = f.highRetrans.Max(s.end)
	}
	f.next++
}

// Delivered describes what one ACK delivered, for RACK and PRR.
type Delivered struct {
	// Bytes newly delivered: cumulatively acknowledged and not SACKed
	// before, plus newly SACKed (RFC 6937's DeliveredData).
	Bytes int
	// Reordered reports that a segment never sent again was delivered
	// below one delivered before it (RFC 8985 §6.2 step 2).
	Reordered bool
	// Original reports that a segment sent only once was delivered, and
	// OriginalEnd the highest end of such a segment: after a timeout,
	// data the timer presumed lost that arrived anyway (F-RTO's test).
	Original    bool
	OriginalEnd seqnum.Seq
}

// Ack drops the records below una, the new SND.UNA, feeding each newly
// delivered one to r.
func (f *Flight) Ack(una seqnum.Seq, now time.Duration, r *RACK, d *Delivered) {
	for f.n > 0 {
		s := f.rec(0)
		if una.LessThan(s.end) {
			if s.start.LessThan(una) {
				// Acknowledged in part (a peer need not acknowledge
				// whole segments): keep the rest as its own record.
				if s.flags&segSACKed == 0 {
					d.Bytes += una.Sub(s.start)
				} else {
					f.sacked -= una.Sub(s.start)
				}
				if s.flags&segLost != 0 {
					f.lost -= una.Sub(s.start)
				}
				s.start = una
			}
			break
		}
		if s.flags&segSACKed == 0 {
			d.Bytes += s.len()
			r.delivered(s, now, d, true)
		} else {
			f.sacked -= s.len()
		}
		if s.flags&segLost != 0 {
			f.lost -= s.len()
		}
		f.head = (f.head + 1) & (len(f.ring) - 1)
		f.n--
	}
	if f.n == 0 {
		f.head = 0
		if len(f.ring) > bigRing {
			f.Release()
		}
	}
}

// SACK marks the records wholly inside [start, end), a block the peer
// reported holding, as delivered, feeding each newly SACKed one to r.
func (f *Flight) SACK(start, end seqnum.Seq, now time.Duration, r *RACK, d *Delivered) {
	for i := f.find(start); i < f.n; i++ {
		s := f.rec(i)
		if !s.end.LessThanEq(end) {
			break
		}
		if s.flags&segSACKed != 0 || s.start.LessThan(start) {
			continue
		}
		if s.flags&segLost != 0 {
			f.lost -= s.len()
		}
		s.flags = s.flags&^segLost | segSACKed
		f.sacked += s.len()
		d.Bytes += s.len()
		r.delivered(s, now, d, false)
	}
}

// UnSACK forgets every SACK (the peer may have discarded what it
// reported, RFC 2018 §8) and marks every record lost: what a repeated
// retransmission timeout falls back to.
func (f *Flight) UnSACK() {
	f.sacked, f.lost = 0, 0
	for i := 0; i < f.n; i++ {
		s := f.rec(i)
		s.flags = s.flags&^segSACKed | segLost
		f.lost += s.len()
	}
}

// MarkAllLost marks lost every record not SACKed: after a retransmission
// timeout everything still missing is presumed lost (RFC 8985 §6.3 marks
// by time; a timeout of RTO length is past every send time's RTT plus
// reordering window but, at worst, the newest few).
func (f *Flight) MarkAllLost() {
	for i := 0; i < f.n; i++ {
		s := f.rec(i)
		if s.flags&(segSACKed|segLost) == 0 {
			s.flags |= segLost
			f.lost += s.len()
		}
	}
}

// NextLost returns the first record at or after from that is lost and not
// yet sent again.
func (f *Flight) NextLost(from seqnum.Seq) (start, end seqnum.Seq, ok bool) {
	if f.lost == 0 {
		return 0, 0, false
	}
	for i := f.find(from); i < f.n; i++ {
		s := f.rec(i)
		if s.flags&segLost != 0 {
			return s.start.Max(from), s.end, true
		}
	}
	return 0, 0, false
}

// HeadSACKed reports whether the first record in flight is SACKed: an
// ACK that stops there means the peer discarded what it had SACKed
// (reneging, RFC 2018 §8).
func (f *Flight) HeadSACKed() bool { return f.n > 0 && f.rec(0).flags&segSACKed != 0 }

// RACK is RFC 8985's state: the most recently sent segment that has been
// delivered, the RTT it measured, and the reordering window.
type RACK struct {
	xmitAt time.Duration // RACK.xmit_ts: when the segment left
	order  uint32        // and in which transmission
	endSeq seqnum.Seq    // RACK.end_seq
	RTT    time.Duration // RACK.rtt: measured by that segment
	MinRTT time.Duration // the smallest RTT seen (RFC 8985's min_RTT)
	fack   seqnum.Seq    // RACK.fack: the highest sequence delivered
	// priorFack is fack before the ACK being processed: a segment it
	// delivers below that arrived out of order; one below what the same
	// ACK SACKs did not.
	priorFack seqnum.Seq
	hasFack   bool
	// echoMs is the ACK's echoed timestamp as a time in milliseconds on
	// the sender's clock (TSecr less the timestamp offset); hasEcho says
	// the ACK carried one.
	echoMs  uint32
	hasEcho bool
	started bool // xmitAt and endSeq hold a segment

	// ReorderingSeen reports that reordering was observed (RFC 8985
	// §6.2 step 2), which keeps the reordering window open.
	ReorderingSeen bool
	// ReoWndMult is RACK.reo_wnd_mult: the reordering window in units of
	// min_RTT/4, raised by one per round trip in which a D-SACK arrives.
	ReoWndMult int
	// reoWndPersist counts the recoveries the raised window is kept for.
	reoWndPersist int
	dsackRound    seqnum.Seq // RACK.dsack_round: SND.NXT when the window last grew
	dsackRoundOn  bool
}

// reoWndPersistRounds is how many recoveries a raised reordering window
// lasts without another D-SACK before it falls back (RFC 8985 §6.2 step 3).
const reoWndPersistRounds = 16

// sentAfter is RFC 8985's RACK_sent_after: the transmission at t1,
// numbered o1, left after the one at t2, numbered o2. The RFC breaks a
// tie in time by sequence number, which orders new data but not a resend
// that left in the same clock tick as new data above it; the
// transmission number orders both.
func sentAfter(t1 time.Duration, o1 uint32, t2 time.Duration, o2 uint32) bool {
	return t1 > t2 || (t1 == t2 && int32(o1-o2) > 0)
}

// delivered is RFC 8985 §6.2 steps 1 and 2 for one newly delivered segment.
func (r *RACK) delivered(s *segment, now time.Duration, d *Delivered, cumulative bool) {
	if s.flags&segRetrans == 0 && (!d.Original || s.end.GreaterThan(d.OriginalEnd)) {
		d.Original, d.OriginalEnd = true, s.end
	}
	// Step 2: a segment never sent again, delivered below the highest
	// delivered sequence, arrived out of order.
	if s.flags&segRetrans == 0 && r.hasFack && s.end.LessThan(r.priorFack) {
		r.ReorderingSeen = true
		d.Reordered = true
	}
	if !r.hasFack || s.end.GreaterThan(r.fack) {
		r.fack, r.hasFack = s.end, true
	}
	rtt := now - s.at
	// Step 1: an ACK of a segment sent more than once may answer an
	// earlier transmission. It does if it echoes a timestamp older than
	// the latest one's; without timestamps, if the sample is shorter than
	// the smallest RTT ever seen. Taking such a sample would date RACK's
	// segment to the resend and call lost everything sent before it.
	if s.flags&segRetrans != 0 {
		// The echo speaks for a segment only when it was cumulatively
		// acknowledged: a receiver takes the timestamp to echo from
		// the segment that filled its next expected byte, never from
		// one out of order (RFC 7323 §4.3), so a SACKed segment's ACK
		// echoes an older one whatever copy arrived.
		if cumulative && r.hasEcho && int32(r.echoMs-uint32(s.at/time.Millisecond)) < 0 {
			return
		}
		// A SACK of a resent segment on a path seen to reorder is as
		// likely the late original: nothing tells them apart, and taking
		// it would call lost every segment sent before the resend.
		if !cumulative && r.ReorderingSeen {
			return
		}
		if rtt < r.MinRTT {
			return
		}
	}
	r.RTT = rtt
	if r.MinRTT == 0 || rtt < r.MinRTT {
		r.MinRTT = rtt
	}
	if !r.started || sentAfter(s.at, s.order, r.xmitAt, r.order) {
		r.xmitAt, r.order, r.endSeq, r.started = s.at, s.order, s.end, true
	}
}

// BeginAck marks the start of an ACK's processing, before its SACK blocks
// and cumulative ACK are fed to the Flight. echoMs, if hasEcho, is the
// time the ACK's timestamp echoes, in whole milliseconds of the sender's
// clock (RFC 7323 TSecr less the sender's offset).
func (r *RACK) BeginAck(echoMs uint32, hasEcho bool) {
	r.priorFack = r.fack
	r.echoMs, r.hasEcho = echoMs, hasEcho
}

// OnDSACK is RFC 8985 §6.2 step 3 on an ACK carrying a D-SACK: the window
// grows by min_RTT/4 at most once per round trip (sndNxt marks the
// round's end), and is kept for the next 16 recoveries.
func (r *RACK) OnDSACK(una, sndNxt seqnum.Seq) {
	if r.dsackRoundOn && una.LessThan(r.dsackRound) {
		return
	}
	// A resend the peer already had means the original was late, not
	// lost: the path reorders (Linux counts a D-SACK as reordering too).
	r.ReorderingSeen = true
	r.dsackRound, r.dsackRoundOn = sndNxt, true
	r.ReoWndMult = max(r.ReoWndMult, 1) + 1
	r.reoWndPersist = reoWndPersistRounds
}

// OnRecoveryEnd is step 3's other half: after 16 recoveries without a
// D-SACK the window falls back to one min_RTT/4.
func (r *RACK) OnRecoveryEnd() {
	if r.reoWndPersist > 0 {
		r.reoWndPersist--
		if r.reoWndPersist == 0 {
			r.ReoWndMult = 1
		}
	}
}

// ReoWnd is RFC 8985 §6.2 step 4: the reordering window. Until reordering
// is seen it is zero while recovering, and once DupThresh segments are
// SACKed (the classic rule, kept for fast detection where no reordering
// happens); otherwise min_RTT/4 per unit of ReoWndMult, at most SRTT,
// and at least ReoWndFloor.
func (r *RACK) ReoWnd(recovering bool, sackedSegs int, srtt time.Duration) time.Duration {
	if !r.ReorderingSeen && (recovering || sackedSegs >= DupThresh) {
		return 0
	}
	return max(min(time.Duration(max(r.ReoWndMult, 1))*r.MinRTT/4, srtt), ReoWndFloor)
}

// ReoWndFloor is the shortest reordering window that is not zero: once
// reordering has been seen, a min_RTT that rounds to nothing (a virtual
// clock, a loopback) must not leave a window of zero, which would call
// every reordering a loss. It is kept far below a TUN link's RTT: a
// window of a millisecond there delays the repair of every loss by ten
// round trips.
const ReoWndFloor = 10 * time.Microsecond

// DetectLoss is RFC 8985 §6.2 step 5: every record not delivered that left
// before RACK's segment by more than RACK.rtt + reoWnd is marked lost. It
// returns how long until the next such record would be (0: none), which
// the caller arms the reordering timer with (step 6), and the bytes newly
// marked lost.
func (f *Flight) DetectLoss(r *RACK, reoWnd, now time.Duration) (timeout time.Duration, marked int) {
	if !r.started {
		return 0, 0
	}
	for i := 0; i < f.n; i++ {
		s := f.rec(i)
		if sentAfter(s.at, s.order, r.xmitAt, r.order) && s.flags&segRetrans == 0 && !s.start.LessThan(f.highRetrans) {
			// Sent once, after RACK's segment, and above everything sent
			// again: so is every record after it (first transmissions
			// leave in sequence order). None of them is judged yet.
			break
		}
		if s.flags&(segSACKed|segLost) != 0 || !sentAfter(r.xmitAt, r.order, s.at, s.order) {
			continue
		}
		if remaining := s.at + r.RTT + reoWnd - now; remaining > 0 {
			timeout = max(timeout, remaining)
			continue
		}
		s.flags |= segLost
		f.lost += s.len()
		marked += s.len()
	}
	return timeout, marked
}

// PRR is RFC 6937's Proportional Rate Reduction: during recovery it spreads
// the window reduction over the round trip, sending in proportion to what
// the peer delivers, instead of halting until the pipe drains below the
// new window (RFC 6675) or bursting when it does.
type PRR struct {
	recoverFS int // RecoverFS: the flight size when recovery began
	delivered int // prr_delivered: bytes delivered since then
	out       int // prr_out: bytes sent since then
	ssthresh  int
	// Conservative selects the Conservative Reduction Bound (never send
	// more than was delivered, packet conservation) instead of the
	// Slow Start Reduction Bound RFC 6937 recommends.
	Conservative bool
}

// Start begins a recovery with flight bytes outstanding and the
// congestion controller's new ssthresh (RFC 6937 §3, "on entering").
func (p *PRR) Start(flight, ssthresh int) {
	p.recoverFS, p.delivered, p.out, p.ssthresh = max(flight, 1), 0, 0, ssthresh
}

// Sent counts bytes sent or resent during recovery (prr_out).
func (p *PRR) Sent(n int) { p.out += n }

// Counters returns prr_delivered and prr_out, for display.
func (p *PRR) Counters() (delivered, out int) { return p.delivered, p.out }

// OnAck is RFC 6937 §3 "on every ACK during recovery": given what this ACK
// delivered and the pipe after it, it returns sndcnt, the bytes that may
// be sent now.
func (p *PRR) OnAck(deliveredData, pipe, mss int) int {
	p.delivered += deliveredData
	var sndcnt int
	if pipe > p.ssthresh {
		// Proportional part: send ssthresh/RecoverFS of what is delivered,
		// rounded up, so that the window reaches ssthresh as the last of
		// the old flight is acknowledged.
		sndcnt = ceilDiv(p.delivered*p.ssthresh, p.recoverFS) - p.out
	} else {
		// The pipe has fallen below ssthresh (more was lost than the
		// reduction): grow it back towards ssthresh, by at most what was
		// delivered (CRB), or that plus one MSS per ACK (SSRB).
		limit := p.delivered - p.out
		if !p.Conservative {
			limit = max(limit, deliveredData) + mss
		}
		sndcnt = min(p.ssthresh-pipe, limit)
	}
	if p.out == 0 {
		// The fast retransmit always goes, whatever the arithmetic says
		// (RFC 5681 §3.2 step 2; Linux does the same), or a recovery
		// that began with the pipe at ssthresh would wait for the
		// timeout.
		sndcnt = max(sndcnt, mss)
	}
	return max(sndcnt, 0)
}

func ceilDiv(a, b int) int { return (a + b - 1) / b }

// MarkLostIf marks lost every record below limit that was sent once, is
// not SACKed and for whose start lost reports true: RFC 6675's detector
// (IsLost on each hole, each hole once), kept for comparison with RACK.
func (f *Flight) MarkLostIf(lost func(start seqnum.Seq) bool, limit seqnum.Seq) {
	for i := 0; i < f.n; i++ {
		s := f.rec(i)
		if !s.start.LessThan(limit) {
			return
		}
		if s.flags&(segSACKed|segLost|segRetrans) == 0 && lost(s.start) {
			s.flags |= segLost
			f.lost += s.len()
		}
	}
}

// UnmarkLost takes back every loss judgment: the episode that made them
// proved spurious, and what was judged lost is in flight after all.
func (f *Flight) UnmarkLost() {
	if f.lost == 0 {
		return
	}
	for i := 0; i < f.n; i++ {
		f.rec(i).flags &^= segLost
	}
	f.lost = 0
}

// Clear forgets every record and gives the ring back: the connection
// will send nothing more.
func (f *Flight) Clear() {
	f.n, f.head, f.sacked, f.lost = 0, 0, 0, 0
	f.Release()
}
