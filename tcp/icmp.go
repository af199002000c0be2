package tcp

import "time"

// ICMPKind is how an ICMP error about one of our segments bears on the
// connection (RFC 1122 §4.2.3.9, RFC 5927).
type ICMPKind uint8

// The kinds the stack maps ICMP messages to.
const (
	// ICMPSoft: network or host unreachable, time exceeded, parameter
	// problem. RFC 1122 §4.2.3.9: TCP MUST NOT abort for these (the route
	// may come back); the error is remembered and reported if the
	// connection later times out.
	ICMPSoft ICMPKind = iota
	// ICMPHard: protocol or port unreachable. A connection still opening
	// is aborted at once (RFC 1122: SHOULD abort); a synchronized one
	// treats it as soft, as RFC 5927 §4.2 recommends against blind resets.
	ICMPHard
	// ICMPFragNeeded: "fragmentation needed and DF set" with the next-hop
	// MTU: path MTU discovery (RFC 1191) lowers the segment size.
	ICMPFragNeeded
)

// HandleICMP applies an ICMP error that quotes a segment of ours with
// sequence number seq. err is the errno to report (ECONNREFUSED,
// EHOSTUNREACH, ...); for ICMPFragNeeded, mss is the segment size the
// reported next-hop MTU allows (the stack derives it from the MTU and
// its floor; 0: the message carried no MTU). The quoted sequence number
// must lie in SND.UNA..SND.MAX (RFC 5927 §4.1), or the message is
// ignored: a blind attacker must not be able to guess its way into a
// connection.
func (c *Conn) HandleICMP(kind ICMPKind, seq Seq, mss int, err error, now time.Duration) {
	c.clock = now
	if c.state == Closed || c.state == Listen || c.state == TimeWait {
		return
	}
	if seq.LessThan(c.sndUna) || !seq.LessThan(c.sndMax) {
		return
	}
	switch kind {
	case ICMPHard:
		if c.state == SynSent || c.state == SynReceived {
			c.fail(RcvICMPError, nil, err)
			return
		}
		c.softErr = err
	case ICMPFragNeeded:
		// RFC 1191 §3: take the reported size if it is smaller, and
		// resend what is in flight in segments that fit. RFC 1191 §6.3:
		// after PMTUExpire the path is tried at full size again, so a
		// route that has widened (or a forged report) does not cost us
		// for the life of the connection.
		if mss > 0 && mss < c.sndMSS {
			c.sndMSS = max(mss, 64)
			if c.cfg.PMTUExpire > 0 {
				c.timers.arm(tPMTU, now+c.cfg.PMTUExpire)
			}
			if c.synAcked {
				c.sndNxt = c.sndUna
			}
			c.output(now)
		}
	default:
		c.softErr = err
	}
}

// pmtuExpired restores the segment size the handshake agreed on once a
// lowered path MTU has aged PMTUExpire (RFC 1191 §6.3). If the path is
// still narrow, the next "fragmentation needed" lowers it again.
func (c *Conn) pmtuExpired() {
	c.timers.stop(tPMTU)
	c.sndMSS = c.synMSS
}
