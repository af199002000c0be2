package tcp

import (
	"syscall"
	"time"

	"github.com/tund-project/tund/retransmit"
	"github.com/tund-project/tund/window"
)

// Handle processes one arriving segment (RFC 9293 §3.10.7, SEGMENT
// ARRIVES) for a connection in any state but CLOSED and LISTEN, which the
// stack handles with ResetFor and NewPassive. The segment's payload is only
// read during the call.
func (c *Conn) Handle(seg *Segment, now time.Duration) {
	c.clock = now
	switch c.state {
	case Closed, Listen:
		return
	case SynSent:
		c.handleSynSent(seg, now)
	default:
		c.handleSynchronized(seg, now)
	}
	// Anything from the peer shows it is alive (RFC 1122 §4.2.3.6): the
	// keepalive idle time starts over.
	c.kaProbes = 0
	c.timers.stop(tKeepAlive)
	c.armKeepAlive(now)
	c.checkOrphan(now)
	c.output(now)
}

// handleSynSent is RFC 9293 §3.10.7.3.
func (c *Conn) handleSynSent(seg *Segment, now time.Duration) {
	// First, check the ACK bit.
	ackOK := false
	if seg.Flags.Has(FlagACK) {
		// RFC 9293 §3.10.7.3: SEG.ACK =< ISS or SEG.ACK > SND.NXT is
		// unacceptable: reset (unless this is itself a reset) and drop.
		if seg.Ack.LessThanEq(c.iss) || seg.Ack.GreaterThan(c.sndMax) {
			if !seg.Flags.Has(FlagRST) {
				c.send(Segment{Seq: seg.Ack, Flags: FlagRST})
			}
			return
		}
		ackOK = true
	}
	// Second, check the RST bit: only an RST that ACKs our SYN resets us
	// (RFC 9293 §3.10.7.3; RFC 5961 §3.2 needs nothing more here).
	if seg.Flags.Has(FlagRST) {
		if ackOK {
			c.fail(RcvRst, seg, syscall.ECONNREFUSED)
		}
		return
	}
	// Fourth, check the SYN bit.
	if !seg.Flags.Has(FlagSYN) {
		return
	}
	c.irs = seg.Seq
	c.rcvNxt = seg.Seq + 1
	c.rcvAdvEdge, c.rcvShownEdge = c.rcvNxt, c.rcvNxt
	c.takeSynOptions(seg)
	c.sndWnd = int(seg.Window) // a SYN's window is never scaled
	c.maxSndWnd = c.sndWnd
	c.sndWL1 = seg.Seq
	if ackOK {
		c.sndWL2 = seg.Ack
		c.ackOfSyn(seg.Ack, now)
		c.transition(RcvSynAck, seg)
		c.ackNow = true
		c.events |= EvWritable
		// Data on a SYN+ACK is legal; queue it like any other.
		if len(seg.Payload) > 0 {
			c.receiveText(seg.Seq+1, seg.Payload, now)
		}
		return
	}
	// Simultaneous open: a bare SYN while our SYN is outstanding.
	c.sndWL2 = c.iss
	c.transition(RcvSyn, seg)
	c.timers.stop(tRetransmit)
	c.sendSyn(now)
}

// ackOfSyn records that our SYN was acknowledged.
func (c *Conn) ackOfSyn(ack Seq, now time.Duration) {
	c.synAcked = true
	c.sndUna = ack
	c.sndNxt = c.sndNxt.Max(ack)
	if c.rttTiming {
		c.rto.Sample(now - c.rttStart)
		c.rttTiming = false
	} else if c.retries > 0 {
		c.rto.SynTimedOut() // RFC 6298 §5.7
	}
	c.retries = 0
	c.timers.stop(tRetransmit)
}

// handleSynchronized is RFC 9293 §3.10.7.4 for SYN-RECEIVED and every
// later state.
func (c *Conn) handleSynchronized(seg *Segment, now time.Duration) {
	// TIME-WAIT has its own compact rules (timewait.go). On TWReopen this
	// incarnation ends, and the owner hands the SYN to its listener.
	if c.state == TimeWait {
		expires := c.tw.Expires
		v, _ := c.tw.Handle(seg, now, c.cfg.MSL, c.cfg.InvalidAckInterval)
		if restarted := c.tw.Expires != expires; restarted && c.cfg.Trace != nil {
			t := LoopTimeWaitFin
			if v == TWLimited {
				t.Action = "restart 2MSL; ACK held back by the rate limit"
			}
			c.cfg.Trace(t, seg)
		}
		switch v {
		case TWAck:
			c.ackNow = true
		case TWLimited:
			c.AcksLimited++
		case TWReopen:
			c.transition(RcvSyn, seg)
			c.stopTimers()
			return
		}
		c.timers.arm(tTimeWait, c.tw.Expires)
		return
	}
	// SYN-RECEIVED: a duplicate of the peer's SYN means our SYN+ACK was
	// lost; answer with the SYN+ACK again rather than a bare ACK.
	if c.state == SynReceived && seg.Flags.Has(FlagSYN) && !seg.Flags.Has(FlagACK) && seg.Seq == c.irs {
		c.sendSyn(now)
		return
	}

	// RFC 7323 §5.3 PAWS: a segment whose timestamp is older than the
	// newest we have seen is an old duplicate from a previous wrap of the
	// sequence space: ACK it (rate-limited) and drop it. An RST is exempt.
	if c.tsOK && seg.Options.HasTS && !seg.Flags.Has(FlagRST) &&
		int32(seg.Options.TSVal-c.tsRecent) < 0 {
		c.challengeACK(now)
		return
	}

	// Data we have had already (a retransmission whose original, or ACK,
	// arrived) is reported as a D-SACK block (RFC 2883 §4.1.1).
	if n := len(seg.Payload); n > 0 && seg.Seq.Add(n).LessThanEq(c.rcvNxt) && c.rcvNxt.Sub(seg.Seq) <= 0xffff<<c.rcvWScale {
		c.noteDuplicate(seg.Seq, seg.Seq.Add(n))
	}
	// First, check the sequence number.
	if !c.acceptable(seg, now) {
		// RFC 9293 §3.10.7.4: an unacceptable segment gets an ACK (unless
		// it is a reset) and is dropped.
		c.OutOfWindow++
		if !seg.Flags.Has(FlagRST) {
			c.invalidAck(seg, now)
		}
		return
	}
	// RFC 7323 §4.3: remember the timestamp to echo, from a segment that
	// covers the last ACK we sent (so a delayed ACK's timestamp is the
	// oldest of the segments it acknowledges, and RTTs include the delay).
	if c.tsOK && seg.Options.HasTS && int32(seg.Options.TSVal-c.tsRecent) >= 0 &&
		seg.Seq.LessThanEq(c.lastAckSent) {
		c.tsRecent = seg.Options.TSVal
	}
	// Second, check the RST bit (RFC 5961 §3.2): reset only on an exact
	// match with RCV.NXT; anything else in the window earns a challenge ACK.
	if seg.Flags.Has(FlagRST) {
		if seg.Seq != c.rcvNxt && !c.cfg.InWindowRST {
			c.challengeACK(now)
			return
		}
		switch c.state {
		case SynReceived:
			c.fail(RcvRst, seg, syscall.ECONNREFUSED)
		default:
			// Also in CLOSING and LAST-ACK, where RFC 9293 only says
			// "enter CLOSED": the application learns its last data and
			// FIN may not have arrived (ECONNRESET, as Linux and BSD
			// report to SO_ERROR).
			c.fail(RcvRst, seg, syscall.ECONNRESET)
		}
		return
	}
	// Fourth, check the SYN bit: RFC 5961 §4.2 (and RFC 9293 §3.10.7.4):
	// a SYN on a synchronized connection gets a challenge ACK.
	if seg.Flags.Has(FlagSYN) {
		if c.cfg.InWindowSYN && c.state != SynReceived {
			// RFC 793 §3.9: a SYN in the window is an error: reset the
			// connection and tell the peer.
			c.send(Segment{Seq: c.sndNxt, Flags: FlagRST | FlagACK})
			c.fail(RcvSynInWindow, seg, syscall.ECONNRESET)
			return
		}
		c.challengeACK(now)
		return
	}
	// Fifth, check the ACK field: without it the segment is dropped.
	if !seg.Flags.Has(FlagACK) {
		return
	}
	if c.state == SynReceived {
		// RFC 9293 §3.10.7.4: SND.UNA < SEG.ACK =< SND.NXT completes the
		// handshake; any other ACK is answered with a reset.
		if !(c.sndUna.LessThan(seg.Ack) && seg.Ack.LessThanEq(c.sndMax)) {
			c.send(Segment{Seq: seg.Ack, Flags: FlagRST})
			return
		}
		c.ackOfSyn(seg.Ack, now)
		c.transition(RcvAckOfSyn, seg)
		c.sndWnd = int(seg.Window) << c.sndWScale
		c.maxSndWnd = max(c.maxSndWnd, c.sndWnd)
		c.sndWL1, c.sndWL2 = seg.Seq, seg.Ack
		c.events |= EvWritable
	}
	if !c.processAck(seg, now) {
		return
	}
	if c.state == Closed {
		return
	}

	// Seventh, process the segment text.
	if len(seg.Payload) > 0 && c.state.canReceiveData() {
		c.receiveText(seg.Seq, seg.Payload, now)
	}

	// Eighth, check the FIN bit. Only the first: the peer's sequence
	// space ends at its FIN, so a "FIN" beyond it is not one (CLOSE-WAIT,
	// CLOSING and LAST-ACK remain, RFC 9293 §3.10.7.4; 4.4BSD's
	// TCPS_HAVERCVDFIN).
	if seg.Flags.Has(FlagFIN) && !c.finRcvd {
		finSeq := seg.Seq.Add(len(seg.Payload))
		switch {
		case finSeq == c.rcvNxt:
			c.receiveFin(seg, now)
		case finSeq.GreaterThan(c.rcvNxt):
			// Beyond a gap: remember it until the gap fills.
			c.oooFin, c.oooFinSeq = true, finSeq
			c.ackNow = true
		}
	}
	// Our FIN was ACKed by a segment whose FIN we could not take yet.
	if c.state == FinWait1 {
		if fin, sent := c.finSeq(); sent && c.sndUna.GreaterThan(fin) {
			c.transition(RcvAckOfFin, seg)
		}
	}
}

// acceptable is the RFC 9293 §3.10.7.4 sequence number test, against the
// window we advertised. It also trims the segment to the window.
func (c *Conn) acceptable(seg *Segment, now time.Duration) bool {
	wnd := c.rcvAdvEdge.Sub(c.rcvNxt)
	if wnd < 0 {
		wnd = 0
	}
	segLen := seg.Len()
	if segLen == 0 {
		// RFC 9293 §3.10.7.4 reads RCV.NXT =< SEG.SEQ < RCV.NXT+RCV.WND.
		// We accept the right edge itself too for an ACK, as Linux does: a
		// bare ACK carries SND.NXT, and a peer that filled our window sends
		// exactly the right edge; refusing it would throw away the very
		// ACKs that let the peer's data (and so our buffer space) move
		// again. Not for an RST: RFC 5961 §3.2 takes one only inside the
		// window, and one at the edge is dropped without an answer.
		if seg.Flags.Has(FlagRST) {
			// (With the window shut, only SEG.SEQ = RCV.NXT, as for any
			// empty segment.)
			return seg.Seq == c.rcvNxt || seg.Seq.InWindow(c.rcvNxt, wnd)
		}
		return seg.Seq.InWindow(c.rcvNxt, wnd+1)
	}
	if wnd == 0 {
		// RFC 9293 §3.10.7.4: with a zero window nothing that occupies
		// sequence space is acceptable, "but special allowance should be
		// made to accept valid ACKs": the peer's window updates must get
		// through, or two full windows deadlock. The caller then ACKs.
		// Only at RCV.NXT: a window taken from beyond it would set SND.WL1
		// past segments the peer has yet to send, and block later updates.
		if seg.Seq == c.rcvNxt && seg.Flags.Has(FlagACK) &&
			!seg.Flags.Has(FlagRST) && !seg.Flags.Has(FlagSYN) {
			c.processAckOnly(seg, now)
		}
		return false
	}
	last := seg.Seq.Add(segLen - 1)
	if !seg.Seq.InWindow(c.rcvNxt, wnd) && !last.InWindow(c.rcvNxt, wnd) {
		return false
	}
	// Trim what lies before RCV.NXT (an old SYN included) and beyond the window.
	if d := c.rcvNxt.Sub(seg.Seq); d > 0 {
		if seg.Flags.Has(FlagSYN) {
			seg.Flags &^= FlagSYN
			seg.Seq++
			d--
		}
		d = min(d, len(seg.Payload))
		c.noteDuplicate(seg.Seq, seg.Seq.Add(d)) // RFC 2883 §4.1.2: the part we had
		seg.Payload = seg.Payload[d:]
		seg.Seq = seg.Seq.Add(d)
	}
	if over := seg.Seq.Add(len(seg.Payload)).Sub(c.rcvNxt.Add(wnd)); over > 0 {
		seg.Payload = seg.Payload[:max(0, len(seg.Payload)-over)]
		seg.Flags &^= FlagFIN | FlagPSH
	}
	return true
}

// processAckOnly applies the ACK of a segment whose data we cannot take.
func (c *Conn) processAckOnly(seg *Segment, now time.Duration) {
	if c.state == SynReceived || !seg.Ack.InWindow(c.sndUna, c.sndMax.Sub(c.sndUna)+1) {
		return
	}
	s := *seg
	s.Flags &^= FlagFIN // the FIN lies beyond the window: not ours to take yet
	c.processAck(&s, now)
}

// processAck is the fifth step for the synchronized states. It returns
// false when the segment must be dropped.
func (c *Conn) processAck(seg *Segment, now time.Duration) bool {
	ack := seg.Ack
	// RFC 5961 §5.2: an ACK beyond what we sent, or older than the largest
	// window the peer ever offered, is answered with an ACK and dropped.
	if ack.GreaterThan(c.sndMax) || ack.LessThan(c.sndUna.Add(-c.maxSndWnd)) {
		c.challengeACK(now)
		return false
	}

	// RFC 2018: record what the peer reports holding beyond SND.UNA,
	// and what this ACK delivered (recovery.go reads both).
	var d retransmit.Delivered
	c.rack.BeginAck(seg.Options.TSEcr-c.tsOffset, c.tsOK && seg.Options.HasTS && seg.Options.TSEcr != 0)
	sackNews := false
	if c.sackOK && isDSACK(seg) {
		c.onDSACK(seg)
	}
	if c.sackOK {
		for i := 0; i < seg.Options.NumSACK; i++ {
			b := seg.Options.SACK[i]
			if c.sb.Add(b.Start, b.End, ack.Max(c.sndUna), c.sndMax) {
				sackNews = true
				c.flight.SACK(b.Start, b.End, now, &c.rack, &d)
			}
		}
	}
	finSeq, finSent := c.finSeq()
	advanced := c.sndUna.LessThan(ack)
	if advanced {
		c.newAck(seg, now, &d)
	} else if ack == c.sndUna && len(seg.Payload) == 0 && !seg.Flags.Has(FlagFIN) &&
		(sackNews || int(seg.Window)<<c.sndWScale == c.sndWnd) && c.sndUna != c.sndMax {
		c.dupAck(now)
	}
	c.onAckRecovery(seg, advanced, &d, now)

	// The peer answered: whatever window probes were outstanding were not
	// sent into the void (RFC 1122 §4.2.2.17).
	c.probesUnanswered = 0
	// RFC 9293 §3.10.7.4: update the send window from the newest segment
	// (SND.WL1 < SEG.SEQ, or equal and SND.WL2 =< SEG.ACK).
	if window.UpdateSendWindow(c.sndWL1, c.sndWL2, seg.Seq, ack) {
		wnd := int(seg.Window) << c.sndWScale
		if wnd > c.sndWnd {
			c.events |= EvWritable
		}
		c.sndWnd = wnd
		c.maxSndWnd = max(c.maxSndWnd, wnd)
		c.sndWL1, c.sndWL2 = seg.Seq, ack
		if wnd > 0 {
			c.timers.stop(tPersist)
			c.persistN = 0
		}
	}

	// Was our FIN acknowledged?
	if finSent && ack.GreaterThan(finSeq) {
		switch c.state {
		case FinWait1:
			// If this segment also carries the peer's FIN (in order), go
			// straight to TIME-WAIT from the FIN step.
			if seg.Flags.Has(FlagFIN) && seg.Seq == c.rcvNxt {
				return true
			}
			c.transition(RcvAckOfFin, seg)
		case Closing:
			c.transition(RcvAckOfFin, seg)
			c.enterTimeWait(now)
		case LastAck:
			c.transition(RcvAckOfFin, seg)
			c.stopTimers()
			return false
		}
	}
	return true
}

// newAck handles an ACK that acknowledges new data (SND.UNA < SEG.ACK).
func (c *Conn) newAck(seg *Segment, now time.Duration, d *retransmit.Delivered) {
	ack := seg.Ack
	acked := ack.Sub(c.sndUna)
	flight := c.sndMax.Sub(c.sndUna)
	if !c.synAcked {
		// The ACK of our SYN arriving in a state past SYN-RECEIVED
		// (e.g. after a simultaneous open and close).
		c.synAcked = true
		acked--
	}
	// Drop the acknowledged bytes from the send buffer.
	if n := min(ack.Sub(c.sndBufSeq), c.snd.Len()); n > 0 {
		c.snd.Consume(n)
		c.sndBufSeq = c.sndBufSeq.Add(n)
		c.events |= EvWritable
	}
	c.sndUna = ack
	if c.sndNxt.LessThan(ack) {
		c.sndNxt = ack
	}
	// RTT sample (Karn: only for a segment never retransmitted, which
	// rttTiming guarantees since a retransmission cancels it). While no
	// segment is being timed (after a retransmission), the echoed
	// timestamp still gives an unambiguous sample (RFC 7323 §4.1): it
	// names the transmission the peer acknowledged.
	switch {
	case c.rttTiming && c.rttSeq.LessThan(ack):
		c.rto.Sample(now - c.rttStart)
		c.rttTiming = false
	case !c.rttTiming && c.tsOK && seg.Options.HasTS && seg.Options.TSEcr != 0:
		if ms := int32(c.tsVal(now) - seg.Options.TSEcr); ms >= 0 {
			c.rto.Sample(time.Duration(ms)*time.Millisecond + time.Millisecond/2)
		}
	}
	c.sb.Ack(ack)
	c.flight.Ack(ack, now, &c.rack, d)
	c.retries = 0

	// Slow start and congestion avoidance run outside fast recovery
	// (after a timeout too: that is how the window regrows).
	if c.cc != nil && c.loss != lossFast {
		// RFC 7661: grow only a window the sender was actually filling
		// (within one MSS of it), or an idle or application-limited
		// connection would grow cwnd without bound.
		c.cc.OnAck(retransmit.Ack{
			Acked: acked, Flight: flight, Now: now, SRTT: c.rto.SRTT(),
			CwndLimited:    flight+c.segMSS() >= c.cc.Window(),
			SlowStartLimit: c.cfg.GSOMax,
		})
	}
	c.dupAcks = 0

	// RFC 6298 §5.2-5.3: stop the timer when everything is acknowledged,
	// restart it otherwise.
	if c.sndUna == c.sndMax {
		c.timers.stop(tRetransmit)
	} else {
		c.timers.arm(tRetransmit, now+c.rto.Timeout())
	}
}

// receiveText is the seventh step: deliver in-order data, keep
// out-of-order data for later, and schedule the acknowledgment.
// quickAckSegs is how many in-order segments after out-of-order data are
// acknowledged at once rather than delayed (Linux's TCP_MAX_QUICKACKS).
const quickAckSegs = 16

func (c *Conn) receiveText(seq Seq, payload []byte, now time.Duration) {
	if c.readClosed {
		// The application will never read this: tell the peer (RFC 9293
		// §3.10.7.4 leaves this to the implementation; Linux resets).
		c.Abort(now)
		return
	}
	off := seq.Sub(c.rcvNxt)
	hadGap := c.rcv.HasOutOfOrder()
	// What of it we hold already, out of order, is a duplicate too
	// (RFC 2883 §4.2).
	c.rcv.OutOfOrder(func(start, end int) {
		if a, b := max(start, off), min(end, off+len(payload)); a < b {
			c.noteDuplicate(c.rcvNxt.Add(a), c.rcvNxt.Add(b))
		}
	})
	adv := c.rcv.Write(off, payload)
	if off > 0 {
		c.lastOOO = seq
	}
	if c.readShut && adv > 0 {
		// CloseRead: acknowledge and drop, freeing the window at once.
		c.rcv.Discard(c.rcv.Len())
		c.maybeWindowUpdate()
	}
	if off > 0 || adv == 0 {
		// Out of order or duplicate: ACK at once so the sender sees the
		// gap (RFC 5681 §4.2).
		c.ackNow = true
		if off > 0 {
			c.quickAcks = quickAckSegs
		}
		return
	}
	// In-order data while out-of-order data waits fills (part of) the
	// gap before it, whether or not it reaches the stored data.
	filledGap := hadGap
	c.rcvNxt = c.rcvNxt.Add(adv)
	c.events |= EvReadable
	c.ackPending += adv
	c.ackSegs++
	c.measureRcvRTT(now)
	// A D-SACK goes at once: it tells a sender that retransmitted
	// needlessly (RFC 2883), and a partly duplicated segment is a
	// retransmission.
	// After a loss the sender's window is small and its RTT estimate
	// matters: the next segments are acknowledged at once (Linux's quick
	// ACK mode), so no delayed ACK stalls a recovery or inflates its RTT.
	quick := c.quickAcks > 0
	if quick {
		c.quickAcks--
	}
	if quick || c.cfg.DelayedAck < 0 || c.dsackPending || window.AckNow(window.AckState{
		UnackedBytes: c.ackPending, UnackedSegments: c.ackSegs, MSS: c.rcvMSS(),
		OutOfOrder: c.rcv.HasOutOfOrder(), FilledGap: filledGap,
	}) {
		c.ackNow = true
	} else if !c.timers.armed(tDelAck) {
		c.timers.arm(tDelAck, now+c.cfg.DelayedAck)
	}
	if c.oooFin && c.oooFinSeq == c.rcvNxt {
		c.oooFin = false
		c.receiveFin(nil, now)
	}
}

// measureRcvRTT times how long a whole advertised window takes to arrive:
// for a window-limited sender that is one round trip. It is the RTT
// autotuning uses when this side sends no data to time (Linux's
// rcv_rtt_est does the same without timestamps).
func (c *Conn) measureRcvRTT(now time.Duration) {
	if !c.rcvRTTMeasuring {
		c.rcvRTTMeasuring, c.rcvRTTMark, c.rcvRTTStart = true, c.rcvAdvEdge, now
		return
	}
	if c.rcvNxt.LessThan(c.rcvRTTMark) {
		return
	}
	sample := now - c.rcvRTTStart
	switch {
	case sample <= 0:
	case c.rcvRTT == 0 || sample < c.rcvRTT:
		c.rcvRTT = sample
	default:
		c.rcvRTT += (sample - c.rcvRTT) / 8
	}
	c.rcvRTTMeasuring = false
}

// rcvRTTEstimate is the round trip autotuning works with: the sender's
// smoothed RTT if we have timed our own data, else the receiver estimate.
func (c *Conn) rcvRTTEstimate() time.Duration {
	if s := c.rto.SRTT(); s > 0 {
		return s
	}
	return c.rcvRTT
}

// receiveFin is the eighth step for a FIN at RCV.NXT.
func (c *Conn) receiveFin(seg *Segment, now time.Duration) {
	c.rcvNxt++
	c.finRcvd = true
	c.ackNow = true
	c.events |= EvReadable
	switch c.state {
	case SynReceived, Established:
		c.transition(RcvFin, seg)
	case FinWait1:
		if fin, sent := c.finSeq(); sent && c.sndUna.GreaterThan(fin) {
			c.transition(RcvFinAckOfFin, seg)
			c.enterTimeWait(now)
		} else {
			c.transition(RcvFin, seg)
		}
	case FinWait2:
		c.transition(RcvFin, seg)
		c.enterTimeWait(now)
	}
}

// enterTimeWait starts the 2MSL wait; nothing else is pending then.
func (c *Conn) enterTimeWait(now time.Duration) {
	c.timers.stop(tRetransmit)
	c.timers.stop(tPersist)
	c.timers.stop(tFinWait2)
	c.timers.arm(tTimeWait, now+2*c.cfg.MSL)
	c.tw = TimeWaitEntry{
		SndNxt: c.sndMax, RcvNxt: c.rcvNxt, Expires: c.timers.at(tTimeWait),
		Window: c.advertise(false),
		TS:     c.tsOK, TSOffset: c.tsOffset, TSRecent: c.tsRecent,
	}
	// Everything we sent is acknowledged: the send ring (up to SndBuf
	// bytes) is dead weight for the next 2MSL. Unread received data stays.
	c.sndBufSeq = c.sndBufSeq.Add(c.snd.Len())
	c.snd.Reset()
	c.snd.SetLimit(0)
}

// finSeq returns the sequence number our FIN has (or will have) and
// whether it has been sent.
func (c *Conn) finSeq() (Seq, bool) {
	if !c.finQueued {
		return 0, false
	}
	fin := c.sndBufSeq.Add(c.snd.Len())
	return fin, c.sndMax.GreaterThan(fin)
}
