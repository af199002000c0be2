package retransmit

import (
	"math"
	"time"
)

// Cubic is the RFC 9438 CUBIC congestion controller.
//
// Why cubic: Reno adds one segment per round trip, so after halving a
// large window it needs a very long time to climb back. A 10 Gbit/s path
// with a 100 ms RTT holds about 83,000 segments; Reno regains the lost
// half in some 41,000 round trips, over an hour. Reno also favours short
// RTTs, because its clock is the ACK. CUBIC instead makes the window a
// function of the time t since the last congestion event:
//
//	W_cubic(t) = C*(t-K)^3 + W_max        (RFC 9438 §4.2, Figure 1)
//
// W_max is the window, in segments, at which the last loss happened: the
// sender's best guess of where the path saturates. After the loss the
// window drops to β_cubic*W_max (β_cubic = 0.7) and the curve rises back
// towards W_max, fast at first, then flattening out (the concave region):
// the sender lingers near the window that worked just before the loss.
// K is the time, in seconds, the curve takes to get back to W_max:
//
//	K = cbrt((W_max - cwnd_epoch)/C)      (RFC 9438 §4.2, Figure 2)
//
// which is cbrt(W_max*(1-β_cubic)/C) when the epoch starts at β_cubic*W_max:
// 4.22 s for W_max = 100 and C = 0.4. Past K, with no loss, the curve
// turns convex and accelerates to probe for newly available bandwidth.
// Because growth depends on time and not on the ACK clock, flows with
// different RTTs converge to similar windows.
//
// On short, slow paths the cubic curve would be slower than Reno, so CUBIC
// also tracks W_est, the window Reno would have (§4.3), and never falls
// behind it (the Reno-friendly region).
//
// Window() is in bytes; internally W_max, W_est and K are float64 segments
// and seconds, as the RFC writes them.
type Cubic struct {
	mss int
	cubicVars
	// saved is the state before the last reduction, for Undo; canUndo
	// says it is there to restore.
	saved   cubicVars
	canUndo bool
}

// cubicVars is the state a reduction changes, kept apart so a reduction
// that proves spurious can be undone whole (RFC 9438 §4.9).
type cubicVars struct {
	cwnd     int     // bytes
	frac     float64 // growth in bytes not yet added to cwnd (less than one byte)
	ssthresh int     // bytes
	recovery bool
	rtoAgain bool // a timeout happened and no new data has been ACKed since

	// RFC 9438 §4.1.2 variables, in segments and seconds.
	wMax      float64 // 0: undefined (no loss yet, or reset by a timeout)
	cwndPrior float64 // cwnd just before the last reduction; 0: none yet
	k         float64
	wEst      float64
	epoch     bool          // a congestion avoidance stage is running
	tEpoch    time.Duration // when it began

	appLimited   bool // RFC 9438 §5.8: the sender stopped filling cwnd
	limitedSince time.Duration
}

// RFC 9438 §4.1.1 constants.
const (
	cubicC     = 0.4                                   // aggressiveness, segments/s^3
	cubicBeta  = 0.7                                   // multiplicative decrease factor
	cubicAlpha = 3 * (1 - cubicBeta) / (1 + cubicBeta) // §4.3 Reno-friendly additive increase, ≈0.529

	// maxCwnd keeps a window that grows for days from overflowing int
	// arithmetic; it is also NewReno's "unbounded" ssthresh.
	maxCwnd = 1 << 30
)

var _ Controller = (*Cubic)(nil)

// NewCubic returns a CUBIC controller for segments of mss bytes with the
// RFC 6928 initial window and an unbounded initial ssthresh.
func NewCubic(mss int) *Cubic {
	return &Cubic{mss: mss, cubicVars: cubicVars{cwnd: InitialWindow(mss), ssthresh: maxCwnd}}
}

// Name implements Controller.
func (c *Cubic) Name() string { return "cubic" }

// Window implements Controller.
func (c *Cubic) Window() int { return c.cwnd }

// SSThresh implements Controller.
func (c *Cubic) SSThresh() int { return c.ssthresh }

// WMax is W_max in bytes, for display: the window at the last congestion
// event (lowered by fast convergence), or 0 before the first one.
func (c *Cubic) WMax() int { return int(c.wMax * float64(c.mss)) }

// K is the time the current congestion avoidance stage takes to climb
// back to W_max, for display. It is 0 outside congestion avoidance.
func (c *Cubic) K() time.Duration {
	return time.Duration(c.k * float64(time.Second))
}

// segs is cwnd in segments.
func (c *Cubic) segs() float64 { return (float64(c.cwnd) + c.frac) / float64(c.mss) }

// OnAck implements Controller.
func (c *Cubic) OnAck(a Ack) {
	c.rtoAgain = false
	if c.recovery || a.Acked <= 0 {
		return
	}
	if !a.CwndLimited {
		// RFC 7661: an unused window must not grow. RFC 9438 §4.2 (and
		// §5.8): t MUST NOT include application-limited periods, so
		// remember when this one began.
		if c.epoch && !c.appLimited {
			c.appLimited, c.limitedSince = true, a.Now
		}
		return
	}
	if c.appLimited {
		// Slide the epoch forward over the application-limited time.
		c.tEpoch += a.Now - c.limitedSince
		c.appLimited = false
	}
	if c.cwnd < c.ssthresh {
		// RFC 9438 §4.10: CUBIC MUST use slow start below ssthresh. This
		// is RFC 5681 slow start with appropriate byte counting (at most
		// one SMSS per ACK, or one super-segment: Ack.SlowStartLimit);
		// HyStart++ (RFC 9406), which the RFC prefers, is not implemented.
		c.cwnd = min(c.cwnd+slowStartIncrease(a, c.mss), maxCwnd)
		return
	}
	if !c.epoch {
		c.startEpoch(a.Now)
	}
	c.avoid(a)
}

// startEpoch begins a congestion avoidance stage at the first ACK in it.
func (c *Cubic) startEpoch(now time.Duration) {
	cwnd := c.segs()
	c.epoch, c.tEpoch = true, now
	c.appLimited = false
	// RFC 9438 §4.3: W_est starts at cwnd_epoch.
	c.wEst = cwnd
	if c.cwndPrior == 0 {
		// §4.10: leaving slow start with no congestion event yet.
		c.cwndPrior = cwnd
	}
	if c.wMax <= cwnd {
		// §4.8 (after a timeout) and §4.10 (no loss yet): W_max is the
		// window at the start of the stage and K is 0. A W_max left below
		// cwnd_epoch by fast convergence is treated the same way rather
		// than taking the cube root of a negative number, which would put
		// the plateau in the past.
		c.wMax, c.k = cwnd, 0
		return
	}
	// §4.2 Figure 2.
	c.k = math.Cbrt((c.wMax - cwnd) / cubicC)
}

// wCubic is RFC 9438 §4.2 Figure 1, t in seconds since the epoch.
func (c *Cubic) wCubic(t float64) float64 {
	d := t - c.k
	return cubicC*d*d*d + c.wMax
}

// avoid is one ACK of congestion avoidance (RFC 9438 §4.2-4.5).
func (c *Cubic) avoid(a Ack) {
	mss := float64(c.mss)
	cwnd := c.segs()
	acked := float64(a.Acked)

	// §4.3 Figure 4: W_est += α_cubic * segments_acked / cwnd, with
	// α_cubic raised to Reno's 1 once W_est reaches cwnd_prior (SHOULD).
	alpha := cubicAlpha
	if c.wEst >= c.cwndPrior {
		alpha = 1
	}
	c.wEst += alpha * (acked / mss) / cwnd

	// Without an RTT sample there is no t+RTT to aim at: stay with W_est.
	if a.SRTT > 0 {
		t := (a.Now - c.tEpoch).Seconds()
		if c.wCubic(t) >= c.wEst {
			// §4.4 (concave, cwnd < W_max) and §4.5 (convex, cwnd >= W_max)
			// share one rule: cwnd MUST grow by (target - cwnd)/cwnd per
			// ACK of one segment, with target = W_cubic(t+RTT) bounded to
			// [cwnd, 1.5*cwnd] (§4.2) so it never shrinks and never beats
			// slow start. An ACK of several segments counts for each.
			target := min(max(c.wCubic(t+a.SRTT.Seconds()), cwnd), 1.5*cwnd)
			c.grow((target - cwnd) / cwnd * acked)
			return
		}
	}
	// §4.3: W_cubic(t) < W_est, the Reno-friendly region: cwnd SHOULD be
	// set to W_est.
	if w := c.wEst * mss; w > float64(c.cwnd)+c.frac {
		c.grow(w - float64(c.cwnd) - c.frac)
	}
}

// grow adds n bytes to cwnd, carrying fractions of a byte.
func (c *Cubic) grow(n float64) {
	c.frac += n
	whole := math.Floor(c.frac)
	c.frac -= whole
	if c.cwnd+int(whole) >= maxCwnd {
		c.cwnd, c.frac = maxCwnd, 0
		return
	}
	c.cwnd += int(whole)
}

// endEpoch ends the congestion avoidance stage after a congestion event;
// the next one starts at the next ACK that finds cwnd >= ssthresh.
func (c *Cubic) endEpoch() {
	c.epoch, c.k, c.appLimited, c.frac = false, 0, false, 0
}

// OnFastRetransmit implements Controller: RFC 9438 §4.6 multiplicative
// decrease with §4.7 fast convergence. Called again while already in
// recovery it does nothing: one reduction per loss episode (RFC 6582).
func (c *Cubic) OnFastRetransmit(flight int, _ time.Duration) {
	if c.recovery {
		return
	}
	c.saved, c.canUndo = c.cubicVars, true
	cwnd := c.segs()
	// §4.6 Figure 5: cwnd_prior = cwnd.
	c.cwndPrior = cwnd
	// §4.7: a loss below the previous W_max means the path's capacity
	// shrank (a new flow arrived, say); aim lower, at (1+β)/2 of cwnd, to
	// release bandwidth sooner. The RFC says this SHOULD be off for a
	// lone flow, which a sender cannot know; tund keeps it on, as Linux
	// does.
	if cwnd < c.wMax {
		c.wMax = cwnd * (1 + cubicBeta) / 2
	} else {
		c.wMax = cwnd
	}
	// §4.6 Figure 5: ssthresh = flight_size * β_cubic, and cwnd = ssthresh,
	// both at least 2 SMSS, MUST happen on entering recovery. The RFC's
	// flight_size is used rather than cwnd (either is allowed here since
	// the tcp core already stops an unused cwnd from growing). β_cubic is
	// the exact fraction 7/10.
	c.ssthresh = max(flight*7/10, 2*c.mss)
	// No RFC 5681 +3*SMSS inflation: §4.6 sets cwnd to ssthresh.
	c.cwnd = c.ssthresh
	c.recovery = true
	c.endEpoch()
}

// OnDupAck implements Controller. Each further duplicate ACK inflates cwnd
// by one SMSS, as RFC 5681 §3.2 step 4. The tcp core calls it only on the
// path without SACK, where it counts flight as SND.MAX - SND.UNA: without
// inflation no new data would leave during recovery and the ACK clock
// would stop. (With SACK the core measures the RFC 6675 pipe against
// cwnd = ssthresh, which is what RFC 6675 asks.) OnRecoveryEnd deflates.
func (c *Cubic) OnDupAck() {
	if c.recovery {
		c.cwnd = min(c.cwnd+c.mss, maxCwnd)
	}
}

// OnRecoveryEnd implements Controller: deflate to ssthresh (RFC 5681 §3.2
// step 6); the next ACK starts a new congestion avoidance stage.
func (c *Cubic) OnRecoveryEnd(time.Duration) {
	if c.recovery {
		c.cwnd = c.ssthresh
		c.recovery = false
		c.endEpoch()
	}
}

// OnTimeout implements Controller: RFC 9438 §4.8.
func (c *Cubic) OnTimeout(flight int, _ time.Duration) {
	if !c.rtoAgain {
		if !c.recovery {
			c.saved, c.canUndo = c.cubicVars, true
		}
		c.rtoAgain = true
		base := c.cwnd
		if c.recovery {
			base = c.ssthresh // without the dupack inflation
		}
		c.cwndPrior = float64(base) / float64(c.mss)
		// §4.8: ssthresh is set with β_cubic as in §4.6, not Reno's 1/2.
		c.ssthresh = max(flight*7/10, 2*c.mss)
		// §4.8: the first congestion avoidance stage after a timeout uses
		// K = 0 and W_max = cwnd at its start; leaving W_max undefined
		// makes startEpoch do that.
		c.wMax = 0
	}
	// Otherwise the retransmission itself timed out: RFC 5681 §3.1 holds
	// ssthresh constant, and cwnd_prior with it.

	// RFC 5681 §3.1: cwnd MUST become the loss window, 1 SMSS.
	c.cwnd = c.mss
	c.recovery = false
	c.endEpoch()
}

// Undo implements Controller: RFC 9438 §4.9, the reduction proved
// spurious, so cwnd, ssthresh, W_max and the epoch go back to what they
// were before it (cwnd no lower than it has grown to since).
func (c *Cubic) Undo() {
	if !c.canUndo {
		return
	}
	cwnd := c.cwnd
	c.cubicVars, c.canUndo = c.saved, false
	c.cwnd = max(c.cwnd, cwnd)
	c.recovery, c.rtoAgain = false, false
}
