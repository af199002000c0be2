package tcp

import (
	"time"

	"github.com/tund-project/tund/window"
)

// send fills in the fields every segment of this connection shares (ports,
// ACK and window) and hands it to the Sender. Every segment but a bare RST
// carries an ACK once we know the peer's ISN; sending one satisfies any
// pending acknowledgment.
func (c *Conn) send(seg Segment) {
	seg.SrcPort, seg.DstPort = c.LocalPort, c.RemotePort
	if seg.Flags&FlagRST == 0 || seg.Flags&FlagACK != 0 {
		if c.state != SynSent || seg.Flags&FlagACK != 0 {
			seg.Flags |= FlagACK
			seg.Ack = c.rcvNxt
		}
	}
	if seg.Flags&FlagRST == 0 {
		seg.Window = c.advertise(seg.Flags&FlagSYN != 0)
		c.ackNow, c.ackPending, c.ackSegs = false, 0, 0
		c.timers.stop(tDelAck)
		c.readSinceAck = 0 // the window just shown counts every read
		if seg.Flags&FlagACK != 0 {
			c.lastAckSent = seg.Ack
		}
		// RFC 7323 §3.2: once negotiated, every segment but an RST
		// carries a timestamp; our SYN offers one (TSecr 0).
		if c.tsOK || (seg.Flags&FlagSYN != 0 && c.state == SynSent && !c.cfg.NoTimestamps) {
			seg.Options.HasTS = true
			seg.Options.TSVal = c.tsVal(c.clock)
			if c.tsOK {
				seg.Options.TSEcr = c.tsRecent
			}
		}
		if c.sackOK && seg.Flags&FlagSYN == 0 && (c.rcv.HasOutOfOrder() || c.dsackPending) {
			c.addSACKBlocks(&seg)
		}
	}
	// Hand over the connection's own scratch segment: a pointer to the
	// local would escape through the interface call and cost an
	// allocation per segment.
	c.outSeg = seg
	c.out.SendSegment(&c.outSeg)
}

// advertise computes the window field from the free receive buffer,
// scaled unless this is a SYN (RFC 7323 §2.2).
//
// rcvAdvEdge is the furthest right edge ever offered: what the peer may
// send, what acceptable() admits, what the ring keeps room for. It never
// moves left (RFC 9293 §3.8.6: a window SHOULD NOT shrink). The field
// itself is rounded down to the scale unit, so the edge it expresses may
// sit up to one unit short of rcvAdvEdge — the retraction RFC 7323 §2.4
// describes — while everything up to rcvAdvEdge is still accepted.
// Rounding up instead (as Linux long did) lets a peer sending small
// segments push the edge one rounding further with every ACK, past the
// buffer without bound.
func (c *Conn) advertise(syn bool) uint16 {
	shift := c.rcvWScale
	if syn {
		shift = 0
	}
	// Receiver SWS is judged against what the last field said; the field
	// never says less than what was promised, rounded down.
	wnd := window.ReceiveWindow(c.rcvWindow(), c.shownWindow(), c.rcvBufSize, c.rcvMSS(), shift)
	wnd = max(wnd, c.rcvAdvEdge.Sub(c.rcvNxt))
	scaled := min(wnd>>shift, 0xffff)
	edge := c.rcvNxt.Add(scaled << shift)
	c.rcvShownEdge = edge
	if edge.GreaterThan(c.rcvAdvEdge) {
		c.rcvAdvEdge = edge
	}
	// The ring must hold everything an offer let the peer send.
	if need := c.rcv.Len() + c.rcvAdvEdge.Sub(c.rcvNxt); need > c.rcv.Limit() {
		c.rcv.SetLimit(need)
	}
	return uint16(scaled)
}

// shownWindow is the window the last advertisement expressed, from
// RCV.NXT: at most one scale unit short of the promise (rcvAdvEdge).
func (c *Conn) shownWindow() int {
	return max(0, c.rcvShownEdge.Sub(c.rcvNxt))
}

// sendSyn sends (or resends) our SYN, or SYN+ACK in SYN-RECEIVED, with the
// options we offer, and arms the retransmission timer.
func (c *Conn) sendSyn(now time.Duration) {
	seg := Segment{Seq: c.iss, Flags: FlagSYN}
	seg.Options.MSS = uint16(c.cfg.MSS)
	// RFC 7323 §2.2: offer window scaling on a SYN, and on a SYN+ACK only
	// if the peer's SYN offered it.
	if !c.cfg.NoWScale && (c.state == SynSent || c.wscaleOK) {
		seg.Options.HasWScale = true
		seg.Options.WScale = int8(c.rcvWScale)
	}
	// RFC 2018 §2: offer SACK on a SYN, and on a SYN+ACK only if the
	// peer's SYN did.
	if !c.cfg.NoSACK && (c.state == SynSent || c.sackOK) {
		seg.Options.SACKPermitted = true
	}
	if c.state == SynReceived {
		seg.Flags |= FlagACK
	}
	c.send(seg)
	if c.sndMax == c.iss {
		c.sndNxt, c.sndMax = c.iss+1, c.iss+1
		c.rttTiming, c.rttSeq, c.rttStart = true, c.iss, now
	}
	if !c.timers.armed(tRetransmit) {
		c.timers.arm(tRetransmit, now+c.rto.Timeout())
	}
}

// output sends whatever the windows allow now: new or rewound data, our
// FIN, and any acknowledgment that is due.
func (c *Conn) output(now time.Duration) {
	if c.synAcked {
		switch c.state {
		case Established, CloseWait, FinWait1, Closing, LastAck, SynReceived:
			if c.sackOK && !c.frtoHold {
				c.retransmitLost(now) // lost data before new (recovery.go)
			}
			c.sendData(now)
		}
	}
	if c.ackNow && c.state != Closed && c.state != SynSent && c.state != Listen {
		c.send(Segment{Seq: c.ackSeq()})
	}
}

// sendData sends segments from SND.NXT while the peer's window and the
// congestion window allow, then the FIN once all data is out.
func (c *Conn) sendData(now time.Duration) {
	for {
		off := c.sndNxt.Sub(c.sndBufSeq)
		unsent := c.snd.Len() - off
		// The peer's window, and what the congestion state allows.
		room := min(c.sndUna.Add(c.sndWnd).Sub(c.sndNxt), c.sendRoom())
		if unsent > 0 {
			var n int
			if c.sndNxt.LessThan(c.sndMax) {
				// Resending after a timeout: data the peer was already
				// offered goes as the windows allow, with no SWS or Nagle
				// wait (RFC 9293 §3.8.6.2.1), or a small window would
				// keep it from ever being retransmitted.
				n = min(unsent, room, c.segMSS(), c.sndMax.Sub(c.sndNxt))
			} else {
				n = window.SendSize(window.SendState{
					Unsent: unsent, Usable: room, MSS: c.segMSS(), MaxWnd: c.maxSndWnd,
					InFlight: c.sndNxt.Sub(c.sndUna), NoDelay: c.noDelay, Fin: c.finQueued,
				})
			}
			if n <= 0 {
				c.armPersist(now)
				return
			}
			gso := 0
			if mss := c.segMSS(); n == mss && c.cfg.GSOMax >= 2*mss && !c.sndNxt.LessThan(c.sndMax) {
				// Segmentation offload: as many whole segments as the
				// windows and the data allow, in one super-segment. Each
				// of them could have gone on its own just now (they are
				// full-sized), so nothing here bends the SWS or Nagle
				// rules; a shorter tail waits for the next round.
				if k := min(unsent, room, c.cfg.GSOMax) / mss; k >= 2 {
					n, gso = k*mss, mss
				}
			}
			payload := c.snd.Peek(off, n)
			seg := Segment{Seq: c.sndNxt, Payload: payload}
			if len(payload) > gso && gso > 0 {
				seg.GSOSize = gso
			}
			if off+len(payload) == c.snd.Len() {
				seg.Flags |= FlagPSH
				if c.finQueued {
					seg.Flags |= FlagFIN
				}
			}
			c.transmit(seg, now)
			continue
		}
		// All data is out; the FIN goes next if the application closed.
		if fin, sent := c.finSeq(); c.finQueued && !sent || (c.finQueued && c.sndNxt == fin) {
			// The FIN takes a sequence number: a shut window has no room
			// for it (the receiver drops it, RFC 9293 §3.10.7.4). It
			// waits like data, the persist timer probing meanwhile.
			if room <= 0 {
				c.armPersist(now)
				return
			}
			c.transmit(Segment{Seq: c.sndNxt, Flags: FlagFIN}, now)
		}
		return
	}
}

// newData is the segment of n unsent bytes at SND.MAX (off into the send
// ring) that recovery or a loss probe sends: with PSH if it empties the
// buffer, as RFC 1122 §4.2.2.2 (RFC 9293 §3.9.1.2) wants of the last
// buffered segment.
func (c *Conn) newData(off, n int) Segment {
	seg := Segment{Seq: c.sndMax, Payload: c.snd.Peek(off, n)}
	if off+n == c.snd.Len() {
		seg.Flags |= FlagPSH
	}
	return seg
}

// transmit sends a segment carrying sequence space and advances SND.NXT,
// arming the retransmission timer and timing a fresh segment for the RTT.
func (c *Conn) transmit(seg Segment, now time.Duration) {
	l := seg.Len()
	c.send(seg)
	end := seg.Seq.Add(l)
	if seg.Seq.LessThan(c.sndMax) {
		// Going back over sent data (after a timeout without SACK, or
		// a smaller path MTU): those records now date from now.
		c.flight.Resent(seg.Seq, end.Min(c.sndMax), now)
	}
	if end.GreaterThan(c.sndMax) {
		if !c.rttTiming && seg.Seq == c.sndMax {
			c.rttTiming, c.rttSeq, c.rttStart = true, seg.Seq, now
		}
		// One record per segment, also for each segment of a
		// super-segment: loss is judged and repaired a segment at a time.
		start, step := seg.Seq.Max(c.sndMax), c.segMSS()
		if seg.GSOSize > 0 {
			step = seg.GSOSize
		}
		for start.LessThan(end) {
			next := start.Add(step).Min(end)
			c.flight.Sent(start, next, now)
			start = next
		}
		c.sndMax = end
		c.lastDataAt = now
	}
	c.sndNxt = end
	c.sentInRecovery(l)
	if !c.timers.armed(tRetransmit) {
		c.timers.arm(tRetransmit, now+c.rto.Timeout())
	}
	if !c.timers.armed(tProbe) {
		c.armTLP(now)
	}
}

// resend sends again up to n bytes already sent once, from start, with the
// FIN if it follows them, without moving SND.NXT; Karn's rule stops the
// RTT timing. It returns the sequence space sent (0: nothing to send). The
// retransmission paths (fast retransmit, SACK recovery, tail loss probe)
// all go through here.
func (c *Conn) resend(start Seq, n int) int {
	// Only what was sent before: bytes past SND.MAX are new data, which
	// the peer's window may not admit (RFC 9293 §3.8.6).
	n = min(n, c.sndMax.Sub(start))
	// Nor the SYN's sequence number: it is not in the ring (its own timer
	// resends the SYN).
	if d := c.sndBufSeq.Sub(start); d > 0 {
		start, n = c.sndBufSeq, n-d
	}
	seg := Segment{Seq: start, Payload: c.snd.Peek(start.Sub(c.sndBufSeq), n)}
	if fin, sent := c.finSeq(); sent && start.Add(len(seg.Payload)) == fin {
		seg.Flags |= FlagFIN
	}
	l := seg.Len()
	if l == 0 {
		return 0
	}
	c.Retransmits++
	c.rttTiming = false
	c.send(seg)
	now := c.clock
	c.flight.Resent(start, start.Add(l), now)
	c.sentInRecovery(l)
	if c.loss != lossOpen && c.undoable {
		// Undo bookkeeping: one more resend that a D-SACK must cover,
		// and the first one's timestamp for Eifel.
		c.undoRetrans++
		if !c.rxtTSSet && c.undoRetrans == 1 && c.tsOK {
			c.rxtTS, c.rxtEnd, c.rxtTSSet = c.tsVal(now), start.Add(l), true
		}
	}
	return l
}

// armPersist starts the persist timer when data waits for the peer's
// window and nothing is in flight whose ACK could open it: a closed window
// (RFC 9293 §3.8.6.1) or one too small to be worth a segment (the sender
// SWS override timeout, RFC 1122 §4.2.3.4).
func (c *Conn) armPersist(now time.Duration) {
	if c.sndUna == c.sndMax && !c.timers.armed(tPersist) {
		c.timers.arm(tPersist, now+c.rto.Timeout())
	}
}

// maybeWindowUpdate decides after a Read whether the window opened enough
// to tell the peer: by at least min(half the buffer, one MSS) beyond the
// last advertisement (RFC 1122 §4.2.3.3, receiver SWS avoidance).
func (c *Conn) maybeWindowUpdate() {
	if !c.state.synchronized() || c.finRcvd {
		return
	}
	shown := c.shownWindow()
	if window.ReceiveWindow(c.rcvWindow(), shown, c.rcvBufSize, c.rcvMSS(), c.rcvWScale) > shown {
		c.ackNow = true
	}
}

// windowUpdateAfterRead is maybeWindowUpdate for a read by the
// application: an ACK of its own only when the window at least doubles
// (window.WindowUpdateDue). A bulk receiver whose application reads as
// fast as data comes would otherwise send a window update for nearly
// every read on top of the ACKs for the data, three packets where one
// does.
func (c *Conn) windowUpdateAfterRead() {
	if !c.state.synchronized() || c.finRcvd {
		return
	}
	shown := c.shownWindow()
	wnd := window.ReceiveWindow(c.rcvWindow(), shown, c.rcvBufSize, c.rcvMSS(), c.rcvWScale)
	// Only what the reads opened counts, not a buffer that grew
	// (autotuning, or the first window clamped to 64 KiB): a server that
	// reads a 60-byte request must not answer it with an ACK of its own
	// just before its response carries one anyway. (Linux gets the same
	// from growing its window only as data comes, rcv_ssthresh.)
	opened := min(wnd, shown+c.readSinceAck)
	if window.WindowUpdateDue(shown, opened, c.rcvSpace()) {
		c.ackNow = true
	}
}

// rcvWindow is the free space of the receive buffer as configured.
func (c *Conn) rcvWindow() int {
	return max(0, c.rcvSpace()-c.rcv.Len())
}

// rcvSpace is the receive buffer the window is offered from: the
// configured (or autotuned) size, or, while the memory budget is under
// pressure, no more than the ring already allocated (at least
// window.MinRing), so that offering a window never needs new memory.
// The right edge already offered still never moves left (advertise).
func (c *Conn) rcvSpace() int {
	if c.cfg.Memory.Level() != window.Normal {
		return min(c.rcvBufSize, max(c.rcv.Cap(), window.MinRing))
	}
	return c.rcvBufSize
}

// setRcvLimit sets the receive buffer to buf bytes. The ring may hold
// more when a window already offered promised more: a buffer that shrinks
// (SetReadBuffer) must still take the bytes the peer was allowed to send,
// or it would drop them forever.
func (c *Conn) setRcvLimit(buf int) {
	c.rcvBufSize = buf
	c.rcv.SetLimit(max(buf, c.rcv.Len()+c.rcvAdvEdge.Sub(c.rcvNxt)))
}

// ackSeq is the sequence number of a bare ACK. SND.MAX rather than a
// rewound SND.NXT (as BSD does), since an older number would make the
// peer's SND.WL1 rule ignore the window the ACK carries; but never beyond
// the peer's right window edge (as Linux does), or a peer whose window is
// shut would find the ACK unacceptable and never learn what we received.
func (c *Conn) ackSeq() Seq {
	if edge := c.sndUna.Add(c.sndWnd); c.sndMax.GreaterThan(edge) {
		return edge.Max(c.sndNxt)
	}
	return c.sndMax
}

// addSACKBlocks reports the out-of-order data we hold (RFC 2018 §4): the
// block holding the most recently received segment first, then the
// blocks reported last time, most recent first (so that each block is
// repeated in several ACKs and survives their loss), then any others from
// the lowest, as many as fit in the option space the segment leaves (a
// full-sized data segment has none to spare, so SACK rides on ACKs). A
// pending D-SACK block (RFC 2883) goes before them all, once.
func (c *Conn) addSACKBlocks(seg *Segment) {
	used := seg.Options.encodedLen() + 4                 // NOP NOP kind len
	room := min(40-used, c.sndMSS-len(seg.Payload)-used) // 40 option bytes at most
	limit := min(room/8, MaxSACKBlocks)
	if limit <= 0 {
		return
	}
	o := &seg.Options
	add := func(b SACKBlock) {
		if o.NumSACK >= limit || b.Start == b.End {
			return
		}
		for i := 0; i < o.NumSACK; i++ {
			if o.SACK[i] == b && !(i == 0 && c.dsackPending) {
				return
			}
		}
		o.SACK[o.NumSACK] = b
		o.NumSACK++
	}
	// holding returns the out-of-order block that holds seq, if any.
	holding := func(seq Seq) (blk SACKBlock) {
		c.rcv.OutOfOrder(func(start, end int) {
			b := SACKBlock{c.rcvNxt.Add(start), c.rcvNxt.Add(end)}
			if blk.Start == blk.End && seq.InWindow(b.Start, b.End.Sub(b.Start)) {
				blk = b
			}
		})
		return blk
	}
	if c.dsackPending {
		add(c.dsack)
		// RFC 2883 §4: a duplicate inside a block we hold is followed by
		// that block.
		add(holding(c.dsack.Start))
	}
	add(holding(c.lastOOO))
	for i := 0; i < c.nSackRecent; i++ {
		add(holding(c.sackRecent[i].Start))
	}
	c.rcv.OutOfOrder(func(start, end int) {
		add(SACKBlock{c.rcvNxt.Add(start), c.rcvNxt.Add(end)})
	})
	// Remember what was reported, D-SACK apart, for the next time.
	c.nSackRecent = 0
	for i := 0; i < o.NumSACK; i++ {
		if i == 0 && c.dsackPending {
			continue
		}
		c.sackRecent[c.nSackRecent] = o.SACK[i]
		c.nSackRecent++
	}
	c.dsackPending = false
}

// noteDuplicate records received data we already had, [start, end), to
// report once as a D-SACK block (RFC 2883), so the sender can tell a
// spurious retransmission from a loss.
func (c *Conn) noteDuplicate(start, end Seq) {
	if !c.sackOK || !start.LessThan(end) {
		return
	}
	// One segment's duplicate parts (before RCV.NXT, inside blocks we
	// hold) are reported as one range where they touch; where they do
	// not, the first (lowest) is, as one D-SACK block can say only one.
	if d := c.dsack; c.dsackPending {
		if end.LessThan(d.Start) || d.End.LessThan(start) {
			return
		}
		start, end = start.Min(d.Start), end.Max(d.End)
	}
	c.dsack, c.dsackPending = SACKBlock{start, end}, true
}
