package retransmit

// Controller is a congestion control algorithm. All sizes are bytes; the
// tcp core calls it under the connection's lock.
type Controller interface {
	// Window is the congestion window: how many bytes may be in flight.
	Window() int
	// OnAck reports that acked bytes of new data were acknowledged while
	// flight bytes were outstanding before the ACK.
	OnAck(acked, flight int)
	// OnFastRetransmit reports the third duplicate ACK (RFC 5681 §3.2).
	OnFastRetransmit(flight int)
	// OnDupAck reports a further duplicate ACK during fast recovery.
	OnDupAck()
	// OnRecoveryEnd reports that fast recovery is over.
	OnRecoveryEnd()
	// OnTimeout reports a retransmission timeout (RFC 5681 §3.1, eq. 4).
	OnTimeout(flight int)
	// SSThresh is the slow start threshold, for display.
	SSThresh() int
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
}

// NewNewReno returns a controller for segments of mss bytes with the
// RFC 6928 initial window and an unbounded initial ssthresh.
func NewNewReno(mss int) *NewReno {
	return &NewReno{mss: mss, cwnd: InitialWindow(mss), ssthresh: 1 << 30}
}

// Window implements Controller.
func (c *NewReno) Window() int { return c.cwnd }

// SSThresh implements Controller.
func (c *NewReno) SSThresh() int { return c.ssthresh }

// OnAck implements Controller.
func (c *NewReno) OnAck(acked, flight int) {
	if c.recovery {
		return
	}
	if c.cwnd < c.ssthresh {
		// RFC 5681 §3.1: slow start grows by at most one SMSS per ACK.
		c.cwnd += min(acked, c.mss)
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
func (c *NewReno) OnFastRetransmit(flight int) {
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
func (c *NewReno) OnRecoveryEnd() {
	if c.recovery {
		c.cwnd = c.ssthresh
		c.recovery = false
		c.bytesAcked = 0
	}
}

// OnTimeout implements Controller: RFC 5681 §3.1 equation 4, then
// cwnd = 1 SMSS (loss window).
func (c *NewReno) OnTimeout(flight int) {
	c.ssthresh = max(flight/2, 2*c.mss)
	c.cwnd = c.mss
	c.recovery = false
	c.bytesAcked = 0
}
