package window

import (
	"time"

	"github.com/tund-project/tund/tcp/seqnum"
)

// This file holds the flow-control decisions the tcp core asks about: when
// the send window may be updated, how much to send now (sender silly
// window avoidance and Nagle), what window to offer (receiver silly window
// avoidance), when an ACK may wait, and how big the receive buffer should
// grow. They are pure functions of numbers the core passes in, so each rule
// can be read, and tested, on its own.

// UpdateSendWindow reports whether a segment may set the send window (RFC
// 9293 §3.10.7.4, fifth step): only one newer than the segment that last
// set it, SND.WL1 < SEG.SEQ, or as new and acknowledging at least as much,
// SND.WL1 = SEG.SEQ and SND.WL2 =< SEG.ACK. An old, reordered segment thus
// never shrinks or reopens the window behind a newer one's back.
func UpdateSendWindow(wl1, wl2, seq, ack seqnum.Seq) bool {
	return wl1.LessThan(seq) || (wl1 == seq && ack.GreaterThanEq(wl2))
}

// SendState is what the sender knows when it decides whether to send.
type SendState struct {
	Unsent   int  // bytes queued but not yet sent
	Usable   int  // what the windows allow beyond what is in flight: min(SND.WND, cwnd) - in flight
	MSS      int  // effective send MSS
	MaxWnd   int  // the largest window the peer has ever offered
	InFlight int  // bytes sent and not yet acknowledged
	NoDelay  bool // Nagle's algorithm is off (SetNoDelay(true))
	Fin      bool // the application closed: nothing more will follow the queued bytes
}

// SendSize returns how many bytes to put in the next segment now, or 0 to
// wait for an ACK or a larger window. It is RFC 1122 §4.2.3.4 (sender
// silly window avoidance) with Nagle's algorithm (RFC 896) as the rule for
// pushed data:
//
//   - a full-sized segment always goes;
//   - everything that is queued goes if it fits and nothing is in flight
//     (or Nagle is off, or a FIN follows it): small writes leave one at a
//     time, each after the previous one was acknowledged;
//   - a segment of at least half the largest window the peer ever offered
//     goes, so a peer with a small buffer is still served;
//   - anything else waits. If nothing is in flight to bring an ACK, the
//     caller's persist timer overrides the wait (RFC 1122's "override
//     timeout").
func SendSize(s SendState) int {
	n := min(s.Unsent, s.Usable, s.MSS)
	switch {
	case n <= 0:
		return 0
	case n == s.MSS:
		return n
	case n == s.Unsent && (s.NoDelay || s.InFlight == 0 || s.Fin):
		return n
	case s.MaxWnd > 0 && n >= s.MaxWnd/2:
		return n
	}
	return 0
}

// ReceiveWindow returns the window to advertise. free is the receive
// buffer's free space, offered what the last advertisement promised (its
// right edge minus RCV.NXT), bufSize the buffer's size, mss the largest
// segment the peer sends, and shift our window scale: the window field
// counts units of 1<<shift bytes. RFC 1122 §4.2.3.3 (receiver silly window
// avoidance): the right edge moves only when it can move by at least
// min(bufSize/2, MSS), and then to the free space rounded down to the
// scale unit, so we never promise more than the buffer holds; and it never
// moves left (RFC 9293 §3.8.6), so the result is never below offered.
func ReceiveWindow(free, offered, bufSize, mss int, shift uint8) int {
	offered = max(offered, 0)
	wnd := free &^ (1<<shift - 1)
	if wnd-offered >= min(bufSize/2, mss) {
		return wnd
	}
	return offered
}

// WindowUpdateDue reports whether a read that freed receive buffer space
// is worth an ACK of its own, a window update: when the window the peer
// has left (shown) is at most half the buffer (bufSize) and the window
// now offered (wnd, from ReceiveWindow) is at least twice it — Linux's
// "lots of space" rule (tcp_cleanup_rbuf). A smaller opening rides on the
// next ACK, which is never far off while data flows; a shut or nearly shut
// window always qualifies, so a sender that stopped is told at once
// rather than at its next window probe.
func WindowUpdateDue(shown, wnd, bufSize int) bool {
	return wnd > shown && 2*shown <= bufSize && wnd >= 2*shown
}

// AckState is what the receiver knows when it decides whether an ACK can
// be delayed.
type AckState struct {
	UnackedBytes    int  // in-order bytes received since the last ACK we sent
	UnackedSegments int  // in-order segments received since the last ACK we sent
	MSS             int  // the peer's segment size (our receive MSS)
	OutOfOrder      bool // the segment left or found a gap
	FilledGap       bool // the segment filled (part of) a gap
}

// AckNow reports whether to acknowledge at once rather than wait for the
// delayed-ACK timer. RFC 1122 §4.2.3.2 and RFC 5681 §4.2: an ACK SHOULD be
// sent for at least every second full-sized segment, and out-of-order data
// and data that fills a gap MUST be acknowledged at once (so the sender's
// fast retransmit and recovery see it). We ACK every second segment
// whatever its size, as BSD does (and Linux, which measures "full-sized"
// by the segments it receives): a stream of small segments is not left
// waiting on the timer. A single segment may wait for it, hoping to ride
// on data or a window update.
func AckNow(s AckState) bool {
	return s.OutOfOrder || s.FilledGap || s.UnackedSegments >= 2 || s.UnackedBytes >= 2*s.MSS
}

// Autotuner grows a receive buffer toward what the application actually
// drains in a round trip, so one connection can fill a fast path without
// the user choosing buffer sizes (the idea of Linux's dynamic right-sizing,
// RFC 7323 §1.1's bandwidth-delay product). Each round trip it compares the
// bytes the application read with the buffer: a reader keeping pace with a
// window-limited sender reads the whole window every RTT, so the buffer is
// the bottleneck and doubles (up to Max). A slow reader leaves it alone.
type Autotuner struct {
	Max int // the cap (tund's -rcvbuf-max)

	periodStart time.Duration
	copied      int
}

// OnRead records n bytes read by the application at now, with rtt the
// current round-trip estimate (0 if unknown). It returns the new buffer
// size when the buffer should grow, or 0.
func (a *Autotuner) OnRead(n int, now, rtt time.Duration, size int) int {
	if rtt <= 0 || a.Max <= size {
		return 0
	}
	a.copied += n
	elapsed := now - a.periodStart
	if elapsed < rtt {
		return 0
	}
	// Bytes per round trip, even if this period spanned several.
	copied := int(int64(a.copied) * int64(rtt) / int64(elapsed))
	a.copied, a.periodStart = 0, now
	// Twice the per-RTT consumption: room for the next RTT's data while
	// this one's is read, and for the sender's window to grow.
	if target := 2 * copied; target > size {
		return min(max(target, 2*size), a.Max)
	}
	return 0
}
