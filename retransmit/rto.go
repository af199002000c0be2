package retransmit

import "time"

// RTO estimates the retransmission timeout of one connection as RFC 6298
// specifies: a smoothed RTT (SRTT) and its variation (RTTVAR) from samples,
// RTO = SRTT + max(G, 4*RTTVAR) clamped to [min, max], doubled on each
// expiry. The zero value is not usable; call NewRTO.
type RTO struct {
	srtt, rttvar     time.Duration
	base             time.Duration // RTO before backoff
	min, max         time.Duration
	backoffs         int
	hasSample        bool
	clockGranularity time.Duration
}

// NewRTO returns an estimator whose first timeout is initial (RFC 6298
// §2.1 says 1 s), bounded below by min and above by max.
func NewRTO(initial, min, max time.Duration) RTO {
	return RTO{base: clamp(initial, min, max), min: min, max: max, clockGranularity: time.Millisecond}
}

// Sample feeds one round-trip measurement. Callers follow Karn's rule
// (RFC 6298 §3): never sample a segment that was retransmitted.
func (r *RTO) Sample(rtt time.Duration) {
	if rtt <= 0 {
		rtt = time.Microsecond
	}
	if !r.hasSample {
		// RFC 6298 §2.2: the first measurement R.
		r.srtt = rtt
		r.rttvar = rtt / 2
		r.hasSample = true
	} else {
		// RFC 6298 §2.3 with alpha = 1/8, beta = 1/4.
		diff := r.srtt - rtt
		if diff < 0 {
			diff = -diff
		}
		r.rttvar = (3*r.rttvar + diff) / 4
		r.srtt = (7*r.srtt + rtt) / 8
	}
	r.base = clamp(r.srtt+max(r.clockGranularity, 4*r.rttvar), r.min, r.max)
	// A measurement, and only a measurement, collapses a backed-off RTO
	// (RFC 6298 §5, the note after 5.7; Karn's algorithm keeps the
	// backoff across ACKs of retransmitted segments, which give none).
	r.backoffs = 0
}

// SynTimedOut starts data transmission after a handshake whose SYN (or
// SYN+ACK) timed out and so gave no RTT sample: RFC 6298 §5.7 says an RTO
// under 3 s MUST be re-initialized to 3 s, and the SYN's backoff goes.
func (r *RTO) SynTimedOut() {
	r.base = clamp(max(r.base, 3*time.Second), r.min, r.max)
	r.backoffs = 0
}

// Timeout is the current timeout including backoff.
func (r *RTO) Timeout() time.Duration {
	d := r.base
	for i := 0; i < r.backoffs && d < r.max; i++ {
		d *= 2
	}
	return min(d, r.max)
}

// Backoff doubles the timeout after an expiry (RFC 6298 §5.5).
func (r *RTO) Backoff() {
	if r.Timeout() < r.max {
		r.backoffs++
	}
}

// Min is the timeout's floor now.
func (r *RTO) Min() time.Duration { return r.min }

// ResetBackoff drops the backoff.
func (r *RTO) ResetBackoff() { r.backoffs = 0 }

// Backoffs reports how many times the timeout has been doubled.
func (r *RTO) Backoffs() int { return r.backoffs }

// SRTT is the smoothed round-trip time (0 before the first sample).
func (r *RTO) SRTT() time.Duration { return r.srtt }

// RTTVar is the round-trip time variation (0 before the first sample).
func (r *RTO) RTTVar() time.Duration { return r.rttvar }

func clamp(d, lo, hi time.Duration) time.Duration {
	return max(lo, min(d, hi))
}
