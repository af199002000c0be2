package tcp

import (
	"syscall"
	"time"
)

// timerID names one of a connection's timers. The order of the constants
// is the order nextTimer breaks ties in; Tick runs expired timers in its
// own, deliberate order.
type timerID uint8

const (
	// tRetransmit is the retransmission timer (RFC 6298): armed while data
	// or a SYN/FIN is outstanding; on expiry the oldest unacknowledged
	// segment is resent and the RTO backs off.
	tRetransmit timerID = iota
	// tDelAck is the delayed-ACK timer (RFC 1122 §4.2.3.2): an ACK held
	// back in the hope of sharing a segment goes out when it fires.
	tDelAck
	// tPersist is the persist timer (RFC 9293 §3.8.6.1): with the peer's
	// window shut and data waiting, it sends window probes, backing off.
	tPersist
	// tTimeWait is the 2MSL timer (RFC 9293 §3.10.8): when it fires in
	// TIME-WAIT the connection is deleted.
	tTimeWait
	// tFinWait2 reclaims an orphaned FIN-WAIT-2 connection whose peer
	// never sends its FIN (Linux's tcp_fin_timeout): it resets and fails.
	tFinWait2
	// tProbe is the tail loss probe timer (RFC 8985 §7): it sends a probe
	// segment to draw an ACK that exposes a lost tail.
	tProbe
	// tReorder is RACK's reordering timer (RFC 8985 §6.2 step 6): segments
	// not yet lost by the reordering window are marked lost when it fires.
	tReorder
	// tKeepAlive is the keepalive timer (RFC 1122 §4.2.3.6): on an idle
	// connection it sends a probe, and gives up after too many unanswered.
	tKeepAlive
	// tPMTU expires a lowered path MTU (RFC 1191 §6.3): the segment size
	// returns to the negotiated one to find out whether the path grew.
	tPMTU

	numTimers
)

var timerNames = [numTimers]string{
	tRetransmit: "retransmit",
	tDelAck:     "delack",
	tPersist:    "persist",
	tTimeWait:   "timewait",
	tFinWait2:   "finwait2",
	tProbe:      "probe",
	tReorder:    "reorder",
	tKeepAlive:  "keepalive",
	tPMTU:       "pmtu",
}

// String returns the timer's name as tund ss shows it.
func (id timerID) String() string {
	if id < numTimers {
		return timerNames[id]
	}
	return "timer?"
}

// timerSet is a connection's timers: one absolute deadline per timerID,
// on the caller's clock; 0 means not armed.
type timerSet [numTimers]time.Duration

// arm sets timer id to fire at at (replacing any earlier deadline).
func (s *timerSet) arm(id timerID, at time.Duration) { s[id] = at }

// stop disarms timer id.
func (s *timerSet) stop(id timerID) { s[id] = 0 }

// at returns when timer id fires (0: not armed).
func (s *timerSet) at(id timerID) time.Duration { return s[id] }

// armed reports whether timer id is armed.
func (s *timerSet) armed(id timerID) bool { return s[id] != 0 }

// due reports whether timer id is armed and has expired by now.
func (s *timerSet) due(id timerID, now time.Duration) bool {
	return s[id] != 0 && now >= s[id]
}

// next returns the armed timer that fires first, and when (0: none armed);
// ties go to the lower timerID.
func (s *timerSet) next() (timerID, time.Duration) {
	id, at := timerID(0), time.Duration(0)
	for i, t := range s {
		if t != 0 && (at == 0 || t < at) {
			id, at = timerID(i), t
		}
	}
	return id, at
}

// stopAll disarms every timer.
func (s *timerSet) stopAll() { *s = timerSet{} }

// NextTimer returns when Tick next has work to do (0: no timer armed).
func (c *Conn) NextTimer() time.Duration {
	_, at := c.timers.next()
	return at
}

// nextTimer returns the name of the timer that fires first ("" if none)
// and when.
func (c *Conn) nextTimer() (string, time.Duration) {
	id, at := c.timers.next()
	if at == 0 {
		return "", 0
	}
	return id.String(), at
}

// Tick runs every timer that has expired by now.
func (c *Conn) Tick(now time.Duration) {
	c.clock = now
	if c.timers.due(tTimeWait, now) {
		// RFC 9293 §3.10.8: when the 2MSL timer expires, delete the TCB.
		c.timers.stop(tTimeWait)
		c.transition(Timeout2MSL, nil)
		c.stopTimers()
		return
	}
	if c.timers.due(tFinWait2, now) {
		// The application is gone and the peer never finished: reset, as
		// Linux does when tcp_fin_timeout expires, so the peer learns too.
		c.send(Segment{Seq: c.sndMax, Flags: FlagRST})
		c.fail(TimeoutFinWait2, nil, syscall.ETIMEDOUT)
		return
	}
	// A loss probe due with the retransmission timer goes first: it
	// re-arms the timer, and the window is spared (armTLP).
	if c.timers.due(tProbe, now) {
		c.tailLossProbe(now)
	}
	if c.timers.due(tRetransmit, now) {
		c.retransmitTimeout(now)
		if c.state == Closed {
			return
		}
	}
	if c.timers.due(tKeepAlive, now) {
		c.keepAliveTimeout(now)
		if c.state == Closed {
			return
		}
	}
	if c.timers.due(tReorder, now) {
		c.reorderTimeout(now)
	}
	if c.timers.due(tPersist, now) {
		c.probeWindow(now)
	}
	if c.timers.due(tPMTU, now) {
		c.pmtuExpired()
	}
	if c.timers.due(tDelAck, now) {
		c.timers.stop(tDelAck)
		c.ackNow = true
	}
	c.output(now)
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
	c.timers.stop(tPersist)
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
	c.timers.arm(tPersist, now+min(d, c.cfg.MaxRTO))
}

// armKeepAlive starts the keepalive idle timer on a synchronized, idle
// connection when keepalives are on (RFC 1122 §4.2.3.6: only when no data
// is outstanding; the retransmission timer watches a busy one).
func (c *Conn) armKeepAlive(now time.Duration) {
	if c.cfg.KeepAlive <= 0 || (c.state != Established && c.state != CloseWait) {
		c.timers.stop(tKeepAlive)
		return
	}
	if !c.timers.armed(tKeepAlive) {
		c.timers.arm(tKeepAlive, now+c.cfg.KeepAlive)
	}
}

// keepAliveTimeout sends a keepalive probe — a segment one byte below
// SND.UNA, which the peer must answer with an ACK (RFC 1122 §4.2.3.6) —
// or, after KeepAliveProbes unanswered ones, resets and fails the
// connection with ETIMEDOUT.
func (c *Conn) keepAliveTimeout(now time.Duration) {
	c.timers.stop(tKeepAlive)
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
	c.timers.arm(tKeepAlive, now+c.cfg.KeepAlive)
}
