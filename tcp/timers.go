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
	// A loss probe due with the retransmission timer goes first: it
	// re-arms the timer, and the window is spared (armTLP).
	if c.tlpAt != 0 && now >= c.tlpAt {
		c.tailLossProbe(now)
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
