package tcp

import (
	"syscall"
	"time"
)

// NextTimer returns when Tick next has work to do (0: no timer armed).
func (c *Conn) NextTimer() time.Duration {
	_, at := c.nextTimer()
	return at
}

func (c *Conn) nextTimer() (string, time.Duration) {
	name, at := "", time.Duration(0)
	for _, t := range [...]struct {
		name string
		at   time.Duration
	}{{"retransmit", c.rtxAt}, {"delack", c.ackAt}, {"persist", c.persistAt}, {"timewait", c.twAt}, {"finwait2", c.fw2At}, {"probe", c.tlpAt}, {"reorder", c.rackAt}, {"keepalive", c.kaAt}, {"pmtu", c.pmtuAt}} {
		if t.at != 0 && (at == 0 || t.at < at) {
			name, at = t.name, t.at
		}
	}
	return name, at
}

// Tick runs every timer that has expired by now.
func (c *Conn) Tick(now time.Duration) {
	c.clock = now
	if c.twAt != 0 && now >= c.twAt {
		// RFC 9293 §3.10.8: when the 2MSL timer expires, delete the TCB.
		c.twAt = 0
		c.transition(Timeout2MSL, nil)
		c.stopTimers()
		return
	}
	if c.fw2At != 0 && now >= c.fw2At {
		// The application is gone and the peer never finished: reset, as
		// Linux does when tcp_fin_timeout expires, so the peer learns too.
		c.send(Segment{Seq: c.sndMax, Flags: FlagRST})
		c.fail(TimeoutFinWait2, nil, syscall.ETIMEDOUT)
		return
	}
	if c.rtxAt != 0 && now >= c.rtxAt {
		c.retransmitTimeout(now)
		if c.state == Closed {
			return
		}
	}
	if c.kaAt != 0 && now >= c.kaAt {
		c.keepAliveTimeout(now)
		if c.state == Closed {
			return
		}
	}
	if c.rackAt != 0 && now >= c.rackAt {
		c.reorderTimeout(now)
	}
	if c.tlpAt != 0 && now >= c.tlpAt {
		c.tailLossProbe(now)
	}
	if c.persistAt != 0 && now >= c.persistAt {
		c.probeWindow(now)
	}
	if c.pmtuAt != 0 && now >= c.pmtuAt {
		c.pmtuExpired()
	}
	if c.ackAt != 0 && now >= c.ackAt {
		c.ackAt = 0
		c.ackNow = true
	}
	c.output(now)
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
	if !c.lowFloor() || !c.synAcked || c.retries > 0 || c.inRecover || !c.sb.Empty() ||
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
	c.rtxAt = 0
	if at := c.delayedAckWait(now); at != 0 {
		c.rtxAt = at
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
	c.Retransmits++
	c.Timeouts++
	c.rto.Backoff()
	c.rttTiming = false // Karn's rule
	c.inRecover = false
	c.dupAcks = 0
	// Start over from SND.UNA: the peer may have discarded what it SACKed
	// (RFC 2018 §8), so the scoreboard is not trusted past a timeout.
	c.sb.Reset()
	c.highRxt = c.sndUna
	c.tlpAt, c.tlpOut, c.rackAt = 0, false, 0
	c.lostBelow = c.sndUna
	if !c.synAcked {
		c.sendSyn(now)
		return
	}
	if c.cc != nil {
		c.cc.OnTimeout(c.sndMax.Sub(c.sndUna), now)
	}
	// Go back to the first unacknowledged byte; output resends from there
	// as the (now one-segment) congestion window allows.
	c.sndNxt = c.sndUna
	c.rtxAt = now + c.rto.Timeout()
	if probing {
		if c.probesUnanswered == 0 {
			c.firstUnansweredAt = now
		}
		c.probesUnanswered++
		c.resend(c.sndUna, c.segMSS())
	}
}

// probeWindow runs when the persist timer fires. With the window shut it
// sends a zero-window probe: a segment one byte below SND.UNA that the
// peer must answer with an ACK carrying its current window. With a window
// open but too small for the sender SWS rule, it overrides the rule and
// sends what fits (RFC 1122 §4.2.3.4). Probes back off exponentially for
// as long as the window stays shut; a peer that keeps answering them is
// never dropped for it (RFC 1122 §4.2.2.17), but one that stops answering
// is given up after MaxRetries probes, like a lost retransmission.
func (c *Conn) probeWindow(now time.Duration) {
	c.persistAt = 0
	unsent := c.snd.Len() - c.sndNxt.Sub(c.sndBufSeq)
	_, finSent := c.finSeq()
	finWaits := c.finQueued && !finSent // a FIN waits for the window too (sendData)
	if (unsent <= 0 && !finWaits) || c.sndUna != c.sndMax {
		return
	}
	if c.probesUnanswered >= c.cfg.MaxRetries &&
		c.lastedAsFrom200ms(c.cfg.MaxRetries, c.firstUnansweredAt, now) {
		c.fail(TimeoutRetransmit, nil, syscall.ETIMEDOUT)
		return
	}
	// An orphan gets OrphanRetries probes in all, answered or not: a peer
	// that holds its window shut for ever must not pin the connection and
	// its send buffer for ever (the probes' backoff, persistN, restarts
	// only when the window opens).
	if c.sndWnd == 0 && c.orphanGaveUp(c.persistN, c.firstProbeAt, now) {
		c.endOrphan()
		return
	}
	if c.sndWnd > 0 {
		if unsent <= 0 {
			return // the window opened: Tick's output sends the FIN
		}
		n := min(unsent, c.sndWnd, c.segMSS())
		off := c.sndNxt.Sub(c.sndBufSeq)
		seg := Segment{Seq: c.sndNxt, Payload: c.snd.Peek(off, n), Flags: FlagPSH}
		c.transmit(seg, now)
		return
	}
	c.send(Segment{Seq: c.sndUna.Add(-1)})
	if c.cfg.Trace != nil {
		c.cfg.Trace(Transition{c.state, TimeoutPersist, c.state, "send window probe"}, nil)
	}
	if c.persistN == 0 {
		c.firstProbeAt = now
	}
	if c.probesUnanswered == 0 {
		c.firstUnansweredAt = now
	}
	c.persistN++
	c.probesUnanswered++
	d := c.rto.Timeout()
	for i := 0; i < c.persistN && d < c.cfg.MaxRTO; i++ {
		d *= 2
	}
	c.persistAt = now + min(d, c.cfg.MaxRTO)
}

// armTLP schedules a tail loss probe (RFC 8985 §7.2) while data is in
// flight (also during recovery, where a lost tail would otherwise leave
// nothing to detect it but the RTO): PTO = 2*SRTT, plus a delayed-ACK allowance when
// only one segment is out, and only if it comes before the RTO. It needs
// SACK, which is how the probe's answer exposes the loss, and an RTT.
func (c *Conn) armTLP(now time.Duration) {
	c.tlpAt = 0
	srtt := c.rto.SRTT()
	if !c.sackOK || c.tlpOut || srtt == 0 || c.sndUna == c.sndMax || !c.synAcked {
		return
	}
	pto := max(2*srtt, 10*time.Millisecond)
	if c.sndMax.Sub(c.sndUna) <= c.segMSS() {
		pto += wcDelAckT // RFC 8985 §7.2
	}
	if c.rtxAt != 0 && now+pto >= c.rtxAt {
		return
	}
	c.tlpAt = now + pto
}

// tailLossProbe sends the probe: new data if the windows allow, else the
// last segment sent again (RFC 8985 §7.3). The peer's SACK for it shows
// which tail segments are missing and starts fast recovery; the RTO,
// re-armed, stays the backstop.
func (c *Conn) tailLossProbe(now time.Duration) {
	c.tlpAt = 0
	if c.sndUna == c.sndMax || c.tlpOut {
		return
	}
	off := c.sndMax.Sub(c.sndBufSeq)
	fresh := min(c.snd.Len()-off, c.segMSS(), c.sndUna.Add(c.sndWnd).Sub(c.sndMax))
	last := min(c.segMSS(), c.sndMax.Sub(c.sndUna))
	if (fresh <= 0 || c.sndNxt != c.sndMax) && c.sb.HoleBytes(c.sndMax.Add(-last), c.sndMax) == 0 {
		// The peer holds the tail (SACKed since the probe was armed):
		// there is no lost tail to expose, and resending it would waste
		// a segment (RFC 8985 §7.2 probes only with nothing SACKed).
		// Holes below are recovery's, or the RTO's.
		return
	}
	c.tlpOut = true
	c.Probes++
	if fresh > 0 && c.sndNxt == c.sndMax {
		c.transmit(c.newData(off, fresh), now)
	} else if c.resend(c.sndMax.Add(-last), last) == 0 {
		return
	}
	c.rtxAt = now + c.rto.Timeout()
}

// armKeepAlive starts the keepalive idle timer on a synchronized, idle
// connection when keepalives are on (RFC 1122 §4.2.3.6: only when no data
// is outstanding; the retransmission timer watches a busy one).
func (c *Conn) armKeepAlive(now time.Duration) {
	if c.cfg.KeepAlive <= 0 || (c.state != Established && c.state != CloseWait) {
		c.kaAt = 0
		return
	}
	if c.kaAt == 0 {
		c.kaAt = now + c.cfg.KeepAlive
	}
}

// keepAliveTimeout sends a keepalive probe — a segment one byte below
// SND.UNA, which the peer must answer with an ACK (RFC 1122 §4.2.3.6) —
// or, after KeepAliveProbes unanswered ones, resets and fails the
// connection with ETIMEDOUT.
func (c *Conn) keepAliveTimeout(now time.Duration) {
	c.kaAt = 0
	if c.sndUna != c.sndMax {
		c.armKeepAlive(now) // busy: the retransmission timer is in charge
		return
	}
	if c.kaProbes >= c.cfg.KeepAliveProbes {
		c.send(Segment{Seq: c.sndMax, Flags: FlagRST})
		c.fail(TimeoutKeepAlive, nil, syscall.ETIMEDOUT)
		return
	}
	c.kaProbes++
	c.send(Segment{Seq: c.sndUna.Add(-1)})
	c.kaAt = now + c.cfg.KeepAlive
}
