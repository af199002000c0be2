package tcp

import (
	"syscall"
	"time"

	"github.com/tund-project/tund/retransmit"
)

// What happens when a segment is lost: this file is the whole answer.
//
// Every segment sent is recorded with the time it left (retransmit.Flight).
// An ACK tells the sender what the peer holds: everything below the
// cumulative ACK, and the SACK blocks above it (RFC 2018). From those:
//
//  1. Detect (RFC 8985 §6, RACK). A segment is lost once one sent after it
//     has been delivered and more than RACK.rtt plus a reordering window
//     has passed since it left. The window starts at a quarter of the
//     smallest RTT and grows each round trip a D-SACK shows a resend was
//     needless (RFC 2883), so a path that reorders stops costing resends.
//     With LossDetection "rfc6675" the classic rule decides instead:
//     three SACKed segments above a hole (RFC 6675 IsLost).
//  2. Recover (RFC 6675 §5 with RFC 6937 PRR). The first loss starts fast
//     recovery: the congestion controller picks the new window once
//     (RFC 5681, RFC 9438), lost segments are sent again first, then new
//     data, and PRR paces both so that the flight shrinks smoothly to
//     the new window as the old one drains.
//  3. Probe (RFC 8985 §7, TLP). When the tail of a flight is lost no later
//     segment can expose it; two RTTs after the last send a probe goes
//     out, whose SACK starts recovery instead of the timeout.
//  4. Time out (RFC 6298). If nothing is heard for an RTO, every segment
//     not SACKed is presumed lost and sent again from a window of one
//     segment; the timer backs off; after the retry limit, ETIMEDOUT.
//  5. Undo (RFC 2883 §5, RFC 3522). If every resend of an episode comes
//     back D-SACKed, or the peer's timestamp shows it acknowledged the
//     original, nothing was lost: the window reduction is undone.
//
// Without SACK the sender falls back to RFC 6582 NewReno: three duplicate
// ACKs, the first unacknowledged segment resent, and one more for every
// partial ACK; after a timeout, go-back-N.

// lossState is where a sender stands in repairing losses (Linux calls
// these its congestion-avoidance states).
type lossState uint8

// The loss states.
const (
	lossOpen lossState = iota // nothing being repaired
	lossFast                  // fast recovery, until SND.UNA passes recover
	lossRTO                   // after a retransmission timeout, until SND.UNA passes recover
)

func (s lossState) String() string {
	return [...]string{"open", "recovery", "loss"}[s]
}

// Loss detectors for Config.LossDetection.
const (
	LossRACK    = "rack"    // RFC 8985, by send time (default)
	LossRFC6675 = "rfc6675" // RFC 6675 IsLost, by SACKed segment count
)

// recovery is a connection's loss-recovery state.
type recovery struct {
	flight retransmit.Flight // every segment in flight, with its send time
	rack   retransmit.RACK
	prr    retransmit.PRR
	loss   lossState
	// recover is SND.MAX when the episode began (RFC 6582's recover, RFC
	// 6675's RecoveryPoint): the episode ends when SND.UNA passes it.
	recover Seq
	sndcnt  int // PRR: bytes that may still leave for the latest ACK
	dupAcks int // duplicate ACKs in a row (the path without SACK)

	// Tail loss probe (RFC 8985 §7): the probe outstanding, if any: where
	// it ended and whether it was a resend (TLP.end_seq, TLP.is_retrans).
	// The probe's timer is Conn.timers[tProbe], and RACK's reordering
	// timer (RFC 8985 §6.2 step 6) Conn.timers[tReorder].
	tlpOut     bool
	tlpEnd     Seq
	tlpRetrans bool

	// Undo (RFC 2883 §5, RFC 3522): resends of this episode not yet
	// D-SACKed, the episode's start, and the TSval and end of its first
	// resend.
	undoable    bool
	frtoArmed   bool  // F-RTO is judging the timeout that began the episode
	frtoStep    uint8 // 0: awaiting the first ACK after it; 1: new data sent
	frtoHold    bool  // this ACK sends new data instead of resends (F-RTO step 2b)
	undoRetrans int
	undoFrom    Seq
	rxtTS       uint32
	rxtEnd      Seq
	rxtTSSet    bool
}

// pipe is RFC 6675's estimate of the bytes still in the network: what
// was sent, less what the peer SACKed and what is judged lost and not yet
// sent again.
func (c *Conn) pipe() int {
	return c.sndMax.Sub(c.sndUna) - c.flight.SACKed() - c.flight.Lost()
}

// sackedSegs is how many segments' worth of data the peer has SACKed.
func (c *Conn) sackedSegs() int { return c.flight.SACKed() / c.segMSS() }

// onAckRecovery is the loss-recovery half of processing an ACK, after the
// cumulative ACK and the SACK blocks were recorded: d is what it
// delivered, advanced whether SND.UNA moved.
func (c *Conn) onAckRecovery(seg *Segment, advanced bool, d *retransmit.Delivered, now time.Duration) {
	if c.cc == nil || !c.synAcked {
		return
	}
	if !c.sackOK {
		c.renoOnAck(advanced, now)
		return
	}
	c.checkTLP(seg)
	if advanced {
		c.eifel(seg)
	}
	c.frto(d, advanced)
	// An episode ends once everything outstanding when it began is
	// acknowledged (RFC 6675 §5, RFC 6582 §3.2 step 3).
	if c.loss != lossOpen && c.recover.LessThanEq(c.sndUna) {
		if c.loss == lossFast {
			c.cc.OnRecoveryEnd(now) // cwnd = ssthresh (RFC 6937 §3.1)
			c.rack.OnRecoveryEnd()
		}
		c.loss = lossOpen
	}
	c.detectLoss(now)
	if c.flight.Lost() > 0 && c.loss == lossOpen {
		c.enterRecovery(now)
	}
	if c.loss == lossFast {
		c.sndcnt = c.prr.OnAck(d.Bytes, c.pipe(), c.segMSS())
	}
	// RFC 8985 §7.2: the probe timer restarts on an ACK of new data
	// only. Restarted by every duplicate ACK, a probe the peer answers
	// with a D-SACK would go again and again, each time pushing the
	// retransmission timer back, while a hole below stays unrepaired.
	if advanced {
		c.armTLP(now)
	} else if c.loss == lossRTO || (c.loss == lossOpen && c.flight.SACKed() > 0) {
		c.timers.stop(tProbe)
	}
}

// detectLoss marks lost what the detector says is lost and arms the
// reordering timer for what may yet be.
func (c *Conn) detectLoss(now time.Duration) {
	if c.cfg.LossDetection == LossRFC6675 {
		// RFC 6675 §4 IsLost: DupThresh SACKed segments above a hole;
		// each hole once (NextSeg rule 1 skips what was resent).
		c.flight.MarkLostIf(func(start Seq) bool {
			return c.sb.IsLost(start, c.segMSS(), c.dupThresh())
		}, c.sb.Highest(c.sndUna))
		return
	}
	reo := c.rack.ReoWnd(c.loss != lossOpen, c.sackedSegs(), c.rto.SRTT())
	timeout, _ := c.flight.DetectLoss(&c.rack, reo, now)
	c.timers.stop(tReorder)
	if timeout > 0 {
		c.timers.arm(tReorder, now+timeout)
	}
}

// reorderTimeout is RFC 8985 §6.2 step 6: the reordering window of a
// segment passed without it being delivered.
func (c *Conn) reorderTimeout(now time.Duration) {
	c.timers.stop(tReorder)
	if c.cc == nil || c.sndUna == c.sndMax {
		return
	}
	c.detectLoss(now)
	if c.flight.Lost() > 0 && c.loss == lossOpen {
		// The ACKs that delivered what exposed the loss came earlier;
		// PRR counts one segment delivered for them, as Linux does.
		c.enterRecovery(now)
		c.sndcnt = c.prr.OnAck(c.segMSS(), c.pipe(), c.segMSS())
	} else if c.loss == lossFast {
		// Lost resends found by time: if the pipe has room under
		// ssthresh, PRR lets them go now rather than at the next ACK.
		c.sndcnt = max(c.sndcnt, c.prr.OnAck(0, c.pipe(), c.segMSS()))
	}
}

// enterRecovery starts fast recovery: one congestion response per
// episode (RFC 5681 §3.2, RFC 6582), PRR started from the flight.
func (c *Conn) enterRecovery(now time.Duration) {
	flight := c.sndMax.Sub(c.sndUna)
	c.loss = lossFast
	c.recover = c.sndMax
	c.Recoveries++
	c.cc.OnFastRetransmit(flight, now)
	c.prr.Start(flight, c.cc.SSThresh())
	c.sndcnt = 0
	c.startEpisode()
	if !c.sackOK {
		c.retransmitFirst(now)
	}
}

// startEpisode begins the undo bookkeeping for a new loss episode.
func (c *Conn) startEpisode() {
	c.undoable, c.undoRetrans, c.undoFrom, c.rxtTSSet = true, 0, c.sndUna, false
}

// sendRoom is how much the congestion state lets leave now, beyond what
// is in flight: PRR's allowance in fast recovery, cwnd less the pipe
// after a timeout, cwnd less the flight otherwise.
func (c *Conn) sendRoom() int {
	if c.cc == nil {
		return c.sndWnd
	}
	if !c.sackOK {
		return c.cc.Window() - c.sndNxt.Sub(c.sndUna)
	}
	switch c.loss {
	case lossFast:
		return c.sndcnt
	case lossRTO:
		return c.cc.Window() - c.pipe()
	}
	return c.cc.Window() - c.sndNxt.Sub(c.sndUna)
}

// sentInRecovery charges n bytes sent during an episode to PRR.
func (c *Conn) sentInRecovery(n int) {
	if c.loss == lossFast {
		c.prr.Sent(n)
		c.sndcnt -= n
	}
}

// retransmitLost sends again, lowest first, the segments judged lost, as
// sendRoom allows (RFC 6675 §5 NextSeg rule 1: lost data before new).
// A lost segment larger than the MSS (the path MTU shrank since it left)
// goes whole, in several pieces.
func (c *Conn) retransmitLost(now time.Duration) {
	for i := 0; i < 256 && c.sendRoom() > 0; i++ {
		start, end, ok := c.flight.NextLost(c.sndUna)
		if !ok || !start.LessThan(c.sndUna.Add(c.sndWnd)) {
			return // nothing lost, or only beyond the peer's window
		}
		for s := start; s.LessThan(end); {
			n := c.resend(s, min(end.Sub(s), c.segMSS()))
			if n == 0 {
				// Nothing could go (the SYN's number, say): stop
				// calling it lost, or it would be picked for ever.
				c.flight.Resent(start, end, now)
				break
			}
			s = s.Add(n)
		}
		if !c.timers.armed(tRetransmit) {
			c.timers.arm(tRetransmit, now+c.rto.Timeout())
		}
	}
}

// onDSACK reacts to a D-SACK (RFC 2883): the reordering window grows
// (RFC 8985 §6.2 step 3) and, if it reports a resend of the current
// episode, one fewer resend stands between the episode and its undo.
func (c *Conn) onDSACK(seg *Segment) {
	c.DSACKs++
	c.rack.OnDSACK(c.sndUna, c.sndMax)
	b := seg.Options.SACK[0]
	if c.undoable && c.undoRetrans > 0 && c.undoFrom.LessThanEq(b.Start) {
		c.undoRetrans--
		if c.undoRetrans == 0 && c.flight.Lost() == 0 {
			c.undo()
		}
	}
}

// frto is F-RTO's test of a timeout (RFC 5682 §3, SACK-enhanced, in the
// form Linux gives it). The timeout presumed everything in flight lost
// and resent the first segment. If an ACK then delivers, cumulatively or
// selectively, a segment sent before the timeout and never sent again,
// not everything was lost: the timeout was premature and is undone (the
// window and what was judged lost come back; RACK then finds what really
// is lost, and a fast recovery with its smaller reduction repairs it).
// So that such a segment can show up, the ACK of the first resend is
// answered with new data rather than more resends (step 2b), if there
// is new data the peer's window admits; the ACK after that decides
// (step 3). Only the first timeout of a run is judged: a backed-off one
// follows real silence.
func (c *Conn) frto(d *retransmit.Delivered, advanced bool) {
	c.frtoHold = false
	if c.loss != lossRTO || !c.frtoArmed {
		return
	}
	if c.undoable && d.Original && d.OriginalEnd.LessThanEq(c.recover) {
		c.frtoArmed = false
		c.FRTOs++
		c.undo()
		return
	}
	if c.frtoStep > 0 || !advanced {
		c.frtoArmed = false // step 3a, or a duplicate ACK: the loss was real
		return
	}
	c.frtoStep = 1
	unsent := c.snd.Len() - c.sndMax.Sub(c.sndBufSeq)
	if unsent <= 0 || !c.sndMax.LessThan(c.sndUna.Add(c.sndWnd)) {
		c.frtoArmed = false // nothing new to send: plain recovery
		return
	}
	c.frtoHold = true // step 2b: this ACK sends new data, not resends
}

// eifel is RFC 3522's detection on the first ACK past the episode's first
// resend: if it echoes a timestamp older than that resend, the peer
// acknowledged the original, which therefore was not lost.
func (c *Conn) eifel(seg *Segment) {
	if !c.undoable || !c.rxtTSSet || !c.tsOK || !seg.Options.HasTS || seg.Options.TSEcr == 0 ||
		seg.Ack.LessThan(c.rxtEnd) {
		return
	}
	c.rxtTSSet = false // only the first ACK past it tells
	if int32(seg.Options.TSEcr-c.rxtTS) < 0 {
		c.undo()
	}
}

// undo reverts a spurious episode's window reduction and ends it: what
// was judged lost is taken to be in flight after all.
func (c *Conn) undo() {
	c.undoable = false
	c.cc.Undo()
	c.flight.UnmarkLost()
	c.SpuriousUndone++
	c.loss = lossOpen
}

// armTLP schedules a tail loss probe (RFC 8985 §7.2) after new data left
// or an ACK advanced SND.UNA: PTO = 2*SRTT, plus the worst-case delayed
// ACK when only one segment is out, no later than the RTO. Not after a
// timeout, nor in the open state with segments SACKed (RACK's reordering
// timer covers those). The RFC leaves fast recovery out too; tund arms it
// there, because a resend lost together with the segments after it
// leaves RACK nothing to see, and on a TUN link those waits for the RTO
// were a third of a 10%-loss download's time. It needs SACK, which is
// how the probe's answer exposes the loss, and an RTT.
func (c *Conn) armTLP(now time.Duration) {
	c.timers.stop(tProbe)
	srtt := c.rto.SRTT()
	if !c.sackOK || c.tlpOut || srtt == 0 || c.sndUna == c.sndMax || !c.synAcked ||
		c.loss == lossRTO || (c.loss == lossOpen && c.flight.SACKed() > 0) {
		return
	}
	// PTO = 2*SRTT (RFC 8985 §7.2), plus the worst-case delayed ACK with
	// one segment out, or else one clock granule (as Linux adds), so
	// that an ACK on its way is not beaten by a hair.
	if c.sndMax.Sub(c.sndUna) <= c.segMSS() {
		// One segment out: the peer may be holding its ACK, so allow
		// for that; if the RTO comes first, it is in charge (and with a
		// low floor it waits out the delayed ACK, delayedAckWait).
		if pto := 2*srtt + wcDelAckT; !c.timers.armed(tRetransmit) || now+pto < c.timers.at(tRetransmit) {
			c.timers.arm(tProbe, now+pto)
		}
		return
	}
	c.timers.arm(tProbe, now+2*srtt+time.Millisecond)
	if c.timers.armed(tRetransmit) && c.timers.at(tRetransmit) < c.timers.at(tProbe) {
		// Never later than the RTO: where the timeout would fire first
		// the probe goes in its place (Tick runs it first), sparing the
		// window its collapse to one segment; the RTO, re-armed by the
		// probe, stays the backstop (RFC 8985 §7.2, as Linux does).
		c.timers.arm(tProbe, c.timers.at(tRetransmit))
	}
}

// tailLossProbe sends the probe (RFC 8985 §7.3): new data if the windows
// allow, else the last segment sent again. The peer's SACK for it shows
// which tail segments are missing and starts recovery; the RTO, re-armed,
// stays the backstop.
func (c *Conn) tailLossProbe(now time.Duration) {
	c.timers.stop(tProbe)
	if c.sndUna == c.sndMax || c.tlpOut || c.loss == lossRTO {
		return
	}
	off := c.sndMax.Sub(c.sndBufSeq)
	fresh := min(c.snd.Len()-off, c.segMSS(), c.sndUna.Add(c.sndWnd).Sub(c.sndMax))
	c.tlpOut = true
	c.Probes++
	if fresh > 0 && c.sndNxt == c.sndMax {
		c.transmit(c.newData(off, fresh), now)
		c.tlpRetrans = false
	} else {
		last := min(c.segMSS(), c.sndMax.Sub(c.sndUna))
		if c.resend(c.sndMax.Add(-last), last) == 0 {
			return
		}
		c.tlpRetrans = true
	}
	c.tlpEnd = c.sndMax
	c.timers.arm(tRetransmit, now+c.rto.Timeout())
}

// checkTLP is RFC 8985 §7.4: did the probe repair a loss? A resent probe
// D-SACKed was needless; an ACK beyond a resent probe without one means
// the probe itself filled the hole, a loss the congestion controller must
// hear of.
func (c *Conn) checkTLP(seg *Segment) {
	if !c.tlpOut {
		return
	}
	if c.tlpRetrans && seg.Options.NumSACK > 0 && isDSACK(seg) && seg.Options.SACK[0].End == c.tlpEnd {
		c.tlpOut = false
		return
	}
	if !c.tlpRetrans {
		// A probe of new data has done its work once the peer reports
		// holding it: what it exposed is RACK's to find. Until then no
		// second probe goes; after it one may, for a loss it could not
		// show (the resends that followed, lost too).
		for i := 0; i < seg.Options.NumSACK; i++ {
			if b := seg.Options.SACK[i]; b.Start.LessThan(c.tlpEnd) && c.tlpEnd.LessThanEq(b.End) {
				c.tlpOut = false
				return
			}
		}
	}
	if seg.Ack.GreaterThan(c.tlpEnd) || (seg.Ack == c.tlpEnd && c.sndUna == c.sndMax) {
		if c.tlpRetrans && c.loss == lossOpen {
			c.cc.OnFastRetransmit(c.sndMax.Sub(c.sndUna)+c.segMSS(), c.clock)
			c.cc.OnRecoveryEnd(c.clock)
			c.Recoveries++
		}
		c.tlpOut = false
	}
}

// renoOnAck is loss recovery without SACK, RFC 6582 NewReno.
func (c *Conn) renoOnAck(advanced bool, now time.Duration) {
	if !advanced || c.loss != lossFast {
		return
	}
	if c.recover.LessThanEq(c.sndUna) {
		// RFC 6582 §3.2 step 3: full acknowledgment ends recovery.
		c.loss = lossOpen
		c.cc.OnRecoveryEnd(now)
		return
	}
	// Partial ACK: retransmit the next hole at once.
	c.retransmitFirst(now)
}

// dupAck counts duplicate ACKs without SACK: loss recovery starts on the
// third (RFC 5681 §3.2, RFC 6582) or fewer with little in flight (RFC
// 5827); further ones inflate the window (step 4).
func (c *Conn) dupAck(now time.Duration) {
	c.dupAcks++
	if c.sackOK || c.cc == nil {
		return
	}
	if c.loss == lossFast {
		c.cc.OnDupAck()
		return
	}
	if c.loss == lossOpen && c.dupAcks >= c.dupThresh() {
		c.enterRecovery(now)
	}
}

// dupThresh is the number of duplicate ACKs (or SACKed segments) that
// mark a loss: three (RFC 5681), or fewer when fewer segments are
// outstanding and nothing new can be sent, since no more duplicates can
// ever come (RFC 5827 early retransmit).
func (c *Conn) dupThresh() int {
	unsent := c.snd.Len() - c.sndMax.Sub(c.sndBufSeq)
	if unsent > 0 && c.sndUna.Add(c.sndWnd).GreaterThan(c.sndMax) {
		return retransmit.DupThresh
	}
	mss := c.segMSS()
	segs := (c.sndMax.Sub(c.sndUna) + mss - 1) / mss
	return max(1, min(retransmit.DupThresh, segs-1))
}

// retransmitFirst resends the first unacknowledged segment without moving
// SND.NXT (fast retransmit, RFC 5681 §3.2 step 2).
func (c *Conn) retransmitFirst(now time.Duration) {
	if c.resend(c.sndUna, c.segMSS()) > 0 {
		c.timers.arm(tRetransmit, now+c.rto.Timeout())
	}
}

// isDSACK reports whether seg's first SACK block is a D-SACK (RFC 2883
// §4): one reporting bytes received twice, which it shows by lying below
// the cumulative ACK, or inside the second block.
func isDSACK(seg *Segment) bool {
	if seg.Options.NumSACK == 0 {
		return false
	}
	first := seg.Options.SACK[0]
	if first.End.LessThanEq(seg.Ack) {
		return true
	}
	if seg.Options.NumSACK > 1 {
		second := seg.Options.SACK[1]
		return second.Start.LessThanEq(first.Start) && first.End.LessThanEq(second.End)
	}
	return false
}

// wcDelAckT is RFC 8985 §7.2's worst-case delayed ACK: how long a
// receiver may hold its ACK for a lone in-order segment (RFC 1122
// §4.2.3.2 allows up to 500 ms; Linux waits 40 to 200 ms). It is also the
// classic minimum RTO, the base Linux computes its retry limits from.
const wcDelAckT = 200 * time.Millisecond

// lowFloor reports whether the minimum RTO is under wcDelAckT: then the
// timer can beat a receiver's delayed ACK, and a count of timeouts no
// longer measures time. retransmitTimeout corrects for both.
func (c *Conn) lowFloor() bool { return c.cfg.MinRTO < wcDelAckT }

// delayedAckWait is when, with a low floor, a timeout that fired at now
// should fire instead, or 0 if it should go ahead. While all that is in
// flight is one in-order segment and no loss is being repaired, the
// receiver may be holding its ACK (it acknowledges at once only data
// that is out of order or fills a hole, RFC 5681 §4.2): wait SRTT plus
// the allowance from when that segment left, as RFC 8985 §7.2 does for
// the loss probe, before calling it lost.
func (c *Conn) delayedAckWait(now time.Duration) time.Duration {
	if !c.lowFloor() || !c.synAcked || c.retries > 0 || c.loss != lossOpen || !c.sb.Empty() ||
		c.sndWnd == 0 || c.sndMax.Sub(c.sndUna) > c.segMSS() {
		return 0
	}
	if at := c.lastDataAt + c.rto.SRTT() + wcDelAckT; now < at {
		return at
	}
	return 0
}

// retriesExhausted reports whether a connection that has timed out
// c.retries times in a row, against limit, is to be given up. By count,
// as RFC 9293 §3.8.3 describes R2; with a low floor also by time: not
// before limit timeouts from the classic 200 ms floor would have taken
// (Linux's tcp_retries2 is such a time), so that a small RTO does not
// shrink R2 below the 100 s RFC 9293 §3.8.3 asks for (MUST-20).
func (c *Conn) retriesExhausted(limit int, now time.Duration) bool {
	if c.retries < limit {
		return false
	}
	return !c.synAcked || c.lastedAsFrom200ms(limit, c.firstTimeoutAt, now)
}

// lastedAsFrom200ms is the time half of every give-up that counts
// timeouts or probes (retries, orphan retries, unanswered window probes):
// with a low floor, n of them that began at since must also have lasted
// as long as they would from the classic 200 ms floor. Without one the
// count alone decides.
func (c *Conn) lastedAsFrom200ms(n int, since, now time.Duration) bool {
	return !c.lowFloor() || now-since >= classicSpan(n, c.cfg.MaxRTO)
}

// classicSpan is how long n timeouts in a row take from the classic
// 200 ms floor, each twice the last, up to maxRTO: what a count of
// retries meant before a low floor shortened them.
func classicSpan(n int, maxRTO time.Duration) time.Duration {
	var span time.Duration
	for i, d := 0, wcDelAckT; i < n; i++ {
		span += min(d, maxRTO)
		d *= 2
	}
	return span
}

// retransmitTimeout is RFC 6298 §5.4-5.7: resend from the first
// unacknowledged segment, back the timer off, and give up after the retry
// limit with ETIMEDOUT.
func (c *Conn) retransmitTimeout(now time.Duration) {
	c.timers.stop(tRetransmit)
	if at := c.delayedAckWait(now); at != 0 {
		c.timers.arm(tRetransmit, at)
		return
	}
	limit := c.cfg.MaxRetries
	switch {
	case c.state == SynSent:
		limit = c.cfg.SynRetries
	case !c.synAcked:
		limit = c.cfg.SynAckRetries
	}
	if c.synAcked && c.orphanGaveUp(c.retries, c.firstTimeoutAt, now) {
		c.endOrphan()
		return
	}
	// With the peer's window shut (or shrunk under what is in flight, or
	// a stale update taken for the latest after reordering), going back
	// to SND.UNA sends nothing; the first segment goes anyway, as a probe
	// whose answer carries the window (RFC 9293 §3.8.6.1, RFC 1122
	// §4.2.2.17). A peer that answers is alive and is not timed out for
	// its window: then only probes it left unanswered count.
	probing := c.synAcked && c.sndWnd == 0
	if c.retriesExhausted(limit, now) && (!probing || c.probesUnanswered >= limit) {
		c.fail(TimeoutRetransmit, nil, syscall.ETIMEDOUT)
		return
	}
	if c.retries == 0 {
		c.firstTimeoutAt = now
	}
	c.retries++
	c.Timeouts++
	c.frtoHold = false // a timeout resends, whatever F-RTO was waiting for
	if !c.sackOK || !c.synAcked {
		c.Retransmits++ // with SACK, retransmitLost's resend counts itself
	}
	c.rto.Backoff()
	c.rttTiming = false // Karn's rule
	c.dupAcks = 0
	c.timers.stop(tProbe)
	c.timers.stop(tReorder)
	c.tlpOut = false
	if !c.synAcked {
		c.sendSyn(now)
		return
	}
	if c.cc != nil {
		c.cc.OnTimeout(c.sndMax.Sub(c.sndUna), now)
	}
	if c.loss != lossRTO {
		c.startEpisode()
	}
	c.loss = lossRTO
	c.frtoArmed, c.frtoStep = c.retries == 1 && c.sackOK, 0
	c.recover = c.sndMax // RFC 6675 §5.1: no new recovery before this is acknowledged
	if c.sackOK && c.retries == 1 && !c.flight.HeadSACKed() {
		// Everything not SACKed is presumed lost and goes again, from a
		// window of one segment; what the peer SACKed stays sent.
		c.flight.MarkAllLost()
	} else {
		// A second timeout in a row, or no SACK: the peer may have
		// discarded what it SACKed (RFC 2018 §8), so the scoreboard is
		// not trusted; go back to SND.UNA and resend everything.
		c.sb.Reset()
		c.flight.UnSACK()
		if !c.sackOK {
			c.sndNxt = c.sndUna // go-back-N: sendData resends
		}
	}
	c.timers.arm(tRetransmit, now+c.rto.Timeout())
	if probing {
		if c.probesUnanswered == 0 {
			c.firstUnansweredAt = now
		}
		c.probesUnanswered++
		c.resend(c.sndUna, c.segMSS())
	}
}
