package retransmit

import (
	"fmt"
	"time"
)

// Controller is a congestion control algorithm. All sizes are bytes, all
// times durations on the connection's clock; the tcp core calls it under
// the connection's lock.
type Controller interface {
	// Name is the algorithm's name as tund's flags spell it ("newreno").
	Name() string
	// Window is the congestion window: how many bytes may be in flight.
	Window() int
	// SSThresh is the slow start threshold, for display.
	SSThresh() int
	// OnAck reports an ACK of new data outside loss recovery.
	OnAck(a Ack)
	// OnFastRetransmit reports that loss recovery begins: the third
	// duplicate ACK (RFC 5681 §3.2) or SACK evidence of loss (RFC 6675).
	OnFastRetransmit(flight int, now time.Duration)
	// OnDupAck reports a further duplicate ACK during fast recovery.
	OnDupAck()
	// OnRecoveryEnd reports that fast recovery is over.
	OnRecoveryEnd(now time.Duration)
	// OnTimeout reports a retransmission timeout (RFC 5681 §3.1, eq. 4).
	OnTimeout(flight int, now time.Duration)
	// Undo reverts the reduction of the latest loss episode (the
	// OnFastRetransmit or OnTimeout that began it), which proved
	// spurious: every retransmission in it was D-SACKed (RFC 2883 §5), or
	// the peer's timestamps show the originals arrived (RFC 3522, RFC
	// 4015). Called a second time, or with nothing to undo, it does
	// nothing.
	Undo()
}

// Ack describes one acknowledgment of new data for Controller.OnAck.
type Ack struct {
	Acked  int           // bytes newly acknowledged
	Flight int           // bytes outstanding before this ACK
	Now    time.Duration // when it arrived
	SRTT   time.Duration // smoothed round-trip time (0 until measured)
	// CwndLimited reports whether the sender was using (nearly) the whole
	// congestion window. RFC 7661 §4.3: a window the sender does not use
	// has not been validated by the network and must not grow.
	CwndLimited bool
	// SlowStartLimit is the most slow start may add to cwnd for this ACK
	// (RFC 3465's L), 0 meaning one SMSS, RFC 5681 §3.1's choice. A
	// sender using segmentation offload sets it to its largest
	// super-segment: the receiver takes a super-segment as one packet and
	// acknowledges it with one stretch ACK where it would have
	// acknowledged every second segment, and with L = SMSS slow start
	// would grow dozens of times slower than the RFC means it to.
	SlowStartLimit int
}

// slowStartIncrease is how much slow start grows cwnd for a: the bytes
// acknowledged, at most one SMSS or the ACK's SlowStartLimit.
func slowStartIncrease(a Ack, mss int) int {
	if a.SlowStartLimit > mss {
		return min(a.Acked, a.SlowStartLimit)
	}
	return min(a.Acked, mss)
}

// New returns the controller called name for segments of mss bytes.
func New(name string, mss int) (Controller, error) {
	switch name {
	case "newreno", "":
		return NewNewReno(mss), nil
	case "cubic":
		return NewCubic(mss), nil
	}
	return nil, fmt.Errorf("unknown congestion control %q (want newreno or cubic)", name)
}

// InitialWindow is the RFC 6928 initial congestion window for an MSS:
// min(10*MSS, max(2*MSS, 14600)).
func InitialWindow(mss int) int {
	return min(10*mss, max(2*mss, 14600))
}

// NewReno is the RFC 5681 / RFC 6582 congestion controller: slow start
// below ssthresh, one MSS per RTT above it, halve on loss.
type NewReno struct {
	mss        int
	cwnd       int
	ssthresh   int
	bytesAcked int // congestion avoidance accumulator (RFC 5681 §3.1 appropriate byte counting)
	recovery   bool
	// The window and threshold before the latest reduction, for Undo.
	priorCwnd, priorSSThresh int
	canUndo                  bool
}

// NewNewReno returns a controller for segments of mss bytes with the
// RFC 6928 initial window and an unbounded initial ssthresh.
func NewNewReno(mss int) *NewReno {
	return &NewReno{mss: mss, cwnd: InitialWindow(mss), ssthresh: 1 << 30}
}

// Name implements Controller.
func (c *NewReno) Name() string { return "newreno" }

// Window implements Controller.
func (c *NewReno) Window() int { return c.cwnd }

// SSThresh implements Controller.
func (c *NewReno) SSThresh() int { return c.ssthresh }

// OnAck implements Controller.
func (c *NewReno) OnAck(a Ack) {
	if c.recovery || !a.CwndLimited {
		return
	}
	acked := a.Acked
	if c.cwnd < c.ssthresh {
		// RFC 5681 §3.1: slow start grows by at most one SMSS per ACK
		// (or per super-segment acknowledged, see Ack.SlowStartLimit).
		c.cwnd += slowStartIncrease(a, c.mss)
		return
	}
	// Congestion avoidance: one SMSS per cwnd of acknowledged bytes.
	c.bytesAcked += acked
	if c.bytesAcked >= c.cwnd {
		c.bytesAcked -= c.cwnd
		c.cwnd += c.mss
	}
}

// OnFastRetransmit implements Controller (RFC 5681 §3.2 steps 2-3).
func (c *NewReno) OnFastRetransmit(flight int, _ time.Duration) {
	c.save()
	c.ssthresh = max(flight/2, 2*c.mss)
	c.cwnd = c.ssthresh + 3*c.mss
	c.recovery = true
}

// OnDupAck implements Controller: inflate by one SMSS (RFC 5681 §3.2 step 4).
func (c *NewReno) OnDupAck() {
	if c.recovery {
		c.cwnd += c.mss
	}
}

// OnRecoveryEnd implements Controller: deflate to ssthresh (step 6).
func (c *NewReno) OnRecoveryEnd(time.Duration) {
	if c.recovery {
		c.cwnd = c.ssthresh
		c.recovery = false
		c.bytesAcked = 0
	}
}

// OnTimeout implements Controller: RFC 5681 §3.1 equation 4, then
// cwnd = 1 SMSS (loss window).
func (c *NewReno) OnTimeout(flight int, _ time.Duration) {
	if c.cwnd > c.mss { // not the retransmission itself timing out again
		c.save()
	}
	c.ssthresh = max(flight/2, 2*c.mss)
	c.cwnd = c.mss
	c.recovery = false
	c.bytesAcked = 0
}

func (c *NewReno) save() {
	if !c.recovery {
		c.priorCwnd, c.priorSSThresh, c.canUndo = c.cwnd, c.ssthresh, true
	}
}

// Undo implements Controller: cwnd and ssthresh return to at least what
// they were before the reduction (as RFC 4015's response restores them).
func (c *NewReno) Undo() {
	if !c.canUndo {
		return
	}
	c.cwnd = max(c.cwnd, c.priorCwnd)
	c.ssthresh = max(c.ssthresh, c.priorSSThresh)
	c.recovery, c.canUndo, c.bytesAcked = false, false, 0
}
