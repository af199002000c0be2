package tcp

import "time"

// TimeWaitEntry is everything a connection in TIME-WAIT still needs: enough to
// acknowledge the peer's FIN again and to judge a new SYN for the same
// four-tuple. It is what the stack keeps in its TIME-WAIT table instead of
// the whole connection (buffers, timers, congestion state), because a busy
// server that closes first holds tens of thousands of these at once.
//
// Why TIME-WAIT exists at all (RFC 9293 §3.6): our ACK of the peer's FIN
// may be lost, and the peer then retransmits its FIN; someone must still
// know the connection to ACK it again, or the peer would get an RST and
// report an error. And old duplicates of this connection's segments must
// die out (one MSL each way, hence 2MSL) before the same four-tuple can
// carry a new connection that might mistake them for its own.
type TimeWaitEntry struct {
	SndNxt  Seq           // our next sequence number: the SEQ of every ACK we send
	RcvNxt  Seq           // one past the peer's FIN: the ACK we send
	Expires time.Duration // end of the 2MSL wait, on the caller's clock
	// NextAck is the earliest time another ACK may be sent: everything
	// that reaches a TIME-WAIT entry is an unacceptable segment, and the
	// ACKs answering those are rate-limited (RFC 5961 §7).
	NextAck time.Duration
	Window  uint16 // window field of our ACKs (already scaled)
	// TS is set when the connection negotiated timestamps (RFC 7323):
	// every ACK from the entry then carries one (§3.2: on every segment
	// but an RST), TSval on the connection's clock (TSOffset) and TSecr
	// the peer's newest timestamp (TSRecent).
	TS       bool
	TSOffset uint32
	TSRecent uint32
}

// TimeWaitVerdict says what to do with a segment that reached a TIME-WAIT
// entry.
type TimeWaitVerdict uint8

// The verdicts of TimeWaitEntry.Handle.
const (
	TWDrop    TimeWaitVerdict = iota // ignore the segment
	TWAck                            // send the ACK Handle built
	TWReopen                         // a safe new SYN: forget the entry and give the SYN to the listener
	TWLimited                        // an ACK was due, but the rate limit holds it back: drop the segment
)

// Handle judges a segment for a connection in TIME-WAIT (RFC 9293
// §3.10.7.4). It may restart the 2MSL timer (tw.Expires). For TWAck, ack
// is the segment to send back. ACKs go at most once per ackEvery
// (Config.InvalidAckInterval; negative: no limit): a peer flooding the
// entry with FINs or stray segments gets one, not one each.
func (tw *TimeWaitEntry) Handle(seg *Segment, now, msl, ackEvery time.Duration) (v TimeWaitVerdict, ack Segment) {
	v, ack = tw.judge(seg, now, msl)
	if v == TWAck && ackEvery > 0 {
		// A real peer retransmits its FIN after an RTO of at least 200
		// ms, doubling: one ACK per interval still answers each of its
		// retransmissions but the first few, and a single ACK suffices.
		if now < tw.NextAck {
			return TWLimited, ack
		}
		tw.NextAck = now + ackEvery
	}
	return v, ack
}

// judge is Handle without the rate limit.
func (tw *TimeWaitEntry) judge(seg *Segment, now, msl time.Duration) (v TimeWaitVerdict, ack Segment) {
	ack = Segment{
		SrcPort: seg.DstPort, DstPort: seg.SrcPort,
		Seq: tw.SndNxt, Ack: tw.RcvNxt, Flags: FlagACK, Window: tw.Window,
	}
	if tw.TS {
		// RFC 7323 §4.3: TS.Recent follows a timestamp that is not older,
		// on a segment at or below the ACK we send (a retransmitted FIN
		// is; a SYN for a new connection is not the old connection's).
		if seg.Options.HasTS && !seg.Flags.Has(FlagSYN) && !seg.Seq.GreaterThan(tw.RcvNxt) &&
			int32(seg.Options.TSVal-tw.TSRecent) >= 0 {
			tw.TSRecent = seg.Options.TSVal
		}
		ack.Options.HasTS = true
		ack.Options.TSVal = uint32(now/time.Millisecond) + tw.TSOffset
		ack.Options.TSEcr = tw.TSRecent
	}
	switch {
	case seg.Flags.Has(FlagRST):
		// RFC 1337 ("TIME-WAIT assassination"): an RST must not cut
		// TIME-WAIT short, or an old duplicate could open the tuple early.
		return TWDrop, ack
	case seg.Flags.Has(FlagSYN) && !seg.Flags.Has(FlagACK):
		// RFC 9293 §3.10.7.4 and RFC 1122 §4.2.2.13: a new SYN may reopen
		// the connection when its sequence number lies beyond everything
		// the old connection used, so no old duplicate can fall inside the
		// new connection's window. (RFC 6191 relaxes this with timestamps.)
		if seg.Seq.GreaterThan(tw.RcvNxt) {
			return TWReopen, ack
		}
		// Otherwise RFC 5961 §4.2: a challenge ACK; a real peer that lost
		// its state answers it with an RST, which we ignore (above), and
		// it retries after the wait.
		return TWAck, ack
	case !seg.Flags.Has(FlagACK):
		// Without the ACK bit (and not a SYN): RFC 9293 §3.10.7.4's fifth
		// step drops it. Nothing a peer that knew this connection sends
		// lacks it, so even an old one gets no answer (as in BSD).
		return TWDrop, ack
	case seg.Flags.Has(FlagFIN) && seg.Seq.Add(len(seg.Payload)+1) == tw.RcvNxt:
		// The peer's FIN again: our last ACK was lost. ACK it again and
		// restart the 2MSL timer (RFC 9293 §3.10.7.4, eighth step).
		tw.Expires = now + 2*msl
		return TWAck, ack
	case seg.Len() == 0 && seg.Seq == tw.RcvNxt:
		// A bare ACK at the expected sequence is acceptable and needs no
		// answer; answering it would start an ACK war with a peer that is
		// itself in TIME-WAIT (after a simultaneous close).
		return TWDrop, ack
	}
	// Anything else is not acceptable in this state: RFC 9293 §3.10.7.4
	// answers an unacceptable segment with an ACK.
	return TWAck, ack
}

// ReopenISS returns an initial sequence number for a connection that
// reopens a TIME-WAIT four-tuple: isn if it lies safely beyond the old
// connection's sequence space, else just past it plus a maximal window, so
// the peer cannot take an old duplicate of ours for new data.
func (tw *TimeWaitEntry) ReopenISS(isn Seq) Seq {
	if floor := tw.SndNxt.Add(1 << 16); isn.GreaterThan(floor) {
		return isn
	}
	return tw.SndNxt.Add(1<<16 + 1)
}
