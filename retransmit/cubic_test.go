package retransmit

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

const cubicMSS = 1000

// cubicPath drives a controller with a virtual clock: each round trip
// acknowledges the whole window in MSS-sized ACKs spread evenly over one
// RTT, as a sender that always fills cwnd would see.
type cubicPath struct {
	c   *Cubic
	now time.Duration
	rtt time.Duration
}

// round runs one RTT of ACKs; limited is Ack.CwndLimited.
func (p *cubicPath) round(limited bool) {
	n := max(p.c.Window()/cubicMSS, 1)
	start := p.now
	for i := 1; i <= n; i++ {
		p.now = start + p.rtt*time.Duration(i)/time.Duration(n)
		p.c.OnAck(Ack{Acked: cubicMSS, Flight: p.c.Window(), Now: p.now, SRTT: p.rtt, CwndLimited: limited})
	}
}

// segs is the window in (fractional) segments.
func (p *cubicPath) segs() float64 { return float64(p.c.Window()) / cubicMSS }

// cubicAfterLoss slow-starts a controller to wmax segments, takes a loss
// there and ends recovery at time 0.
func cubicAfterLoss(t *testing.T, wmax int) *Cubic {
	t.Helper()
	c := NewCubic(cubicMSS)
	for c.Window() < wmax*cubicMSS {
		c.OnAck(Ack{Acked: cubicMSS, Flight: c.Window(), CwndLimited: true})
	}
	c.OnFastRetransmit(c.Window(), 0)
	c.OnRecoveryEnd(0)
	want := wmax * cubicMSS * 7 / 10
	if c.Window() != want || c.SSThresh() != want || c.WMax() != wmax*cubicMSS {
		t.Fatalf("after loss at %d segments: cwnd %d ssthresh %d W_max %d, want %d %d %d",
			wmax, c.Window(), c.SSThresh(), c.WMax(), want, want, wmax*cubicMSS)
	}
	return c
}

// wCubicRef is RFC 9438 Figure 1, written out independently of Cubic.
func wCubicRef(t, k, wmax float64) float64 { return 0.4*math.Pow(t-k, 3) + wmax }

func TestCubicInitial(t *testing.T) {
	c := NewCubic(cubicMSS)
	if c.Name() != "cubic" || c.Window() != 10*cubicMSS || c.SSThresh() < 1<<30 {
		t.Fatalf("name %q cwnd %d ssthresh %d", c.Name(), c.Window(), c.SSThresh())
	}
	// RFC 9438 §4.10: slow start, one SMSS per ACK however much it ACKs.
	c.OnAck(Ack{Acked: 3 * cubicMSS, Flight: 10 * cubicMSS, CwndLimited: true})
	if c.Window() != 11*cubicMSS {
		t.Fatalf("slow start: %d", c.Window())
	}
}

func TestCubicRecovery(t *testing.T) {
	c := NewCubic(cubicMSS)
	c.OnFastRetransmit(20*cubicMSS, 0)
	// §4.6: ssthresh = flight*0.7, cwnd = ssthresh, no +3 SMSS.
	if c.SSThresh() != 14*cubicMSS || c.Window() != 14*cubicMSS {
		t.Fatalf("fast retransmit: ssthresh %d cwnd %d", c.SSThresh(), c.Window())
	}
	c.OnDupAck()
	c.OnAck(Ack{Acked: cubicMSS, Flight: 20 * cubicMSS, Now: time.Second, SRTT: 100 * time.Millisecond, CwndLimited: true})
	c.OnFastRetransmit(15*cubicMSS, 0) // a second call in the same episode
	if c.Window() != 15*cubicMSS || c.SSThresh() != 14*cubicMSS {
		t.Fatalf("in recovery: cwnd %d ssthresh %d, want one SMSS of inflation, OnAck and a second reduction ignored",
			c.Window(), c.SSThresh())
	}
	c.OnRecoveryEnd(time.Second)
	if c.Window() != 14*cubicMSS {
		t.Fatalf("deflation: %d", c.Window())
	}
	// Never below 2 SMSS.
	c.OnFastRetransmit(cubicMSS, time.Second)
	if c.SSThresh() != 2*cubicMSS || c.Window() != 2*cubicMSS {
		t.Fatalf("tiny flight: ssthresh %d cwnd %d", c.SSThresh(), c.Window())
	}
}

// TestCubicCurve follows the window after a loss at W_max = 100 segments on
// a 100 ms path and holds it against RFC 9438 Figure 1.
func TestCubicCurve(t *testing.T) {
	const wmax = 100
	k := math.Cbrt(wmax * (1 - 0.7) / 0.4)
	if math.Abs(k-4.2172) > 0.001 {
		t.Fatalf("K = %.4f s, want 4.2172 s for W_max 100, β 0.7, C 0.4", k)
	}
	p := &cubicPath{c: cubicAfterLoss(t, wmax), rtt: 100 * time.Millisecond}
	p.round(true)
	if got := p.c.K().Seconds(); math.Abs(got-k) > 1e-6 {
		t.Fatalf("controller's K %.6f s, want %.6f s", got, k)
	}

	// Near and past K the Reno-friendly W_est (§4.3), which by then grows
	// one segment per RTT, can run slightly ahead of W_cubic: at 1.5K the
	// window is about 2 segments above the curve. Hence the tolerance.
	reached := time.Duration(-1)
	for _, frac := range []float64{0.5, 1, 1.5, 2} {
		until := time.Duration(frac * k * float64(time.Second))
		for p.now < until {
			p.round(true)
			if reached < 0 && p.c.Window() >= wmax*cubicMSS {
				reached = p.now
			}
		}
		tt := p.now.Seconds()
		want := wCubicRef(tt+p.rtt.Seconds(), k, wmax)
		t.Logf("t = %.2f s (%.1f K): cwnd %.2f segments, W_cubic(t+RTT) %.2f", tt, frac, p.segs(), want)
		if math.Abs(p.segs()-want) > 3 {
			t.Errorf("t = %.2f s: cwnd %.2f segments, want W_cubic(t+RTT) = %.2f ± 3", tt, p.segs(), want)
		}
	}
	t.Logf("cwnd reached W_max at t = %v (K = %.2f s)", reached, k)
	if reached < 0 || math.Abs(reached.Seconds()-k) > 0.5 {
		t.Errorf("cwnd reached W_max at %v, want within 0.5 s of K = %.2f s", reached, k)
	}
}

// TestCubicRenoFriendly: on a short, thin path the cubic curve is slower
// than Reno, and CUBIC follows W_est (RFC 9438 §4.3) instead.
func TestCubicRenoFriendly(t *testing.T) {
	const wmax = 20
	c := cubicAfterLoss(t, wmax)
	rtt, now := 10*time.Millisecond, time.Duration(0)
	k := math.Cbrt(wmax * (1 - 0.7) / 0.4)
	// RFC 9438 Figure 4, fed the same ACKs: W_est += α*segments_acked/cwnd,
	// α = 3(1-β)/(1+β) until W_est reaches cwnd_prior (20), then 1.
	west := 0.7 * wmax
	for r := 1; r <= 50; r++ {
		n, start := c.Window()/cubicMSS, now
		for i := 1; i <= n; i++ {
			alpha := 3 * (1 - 0.7) / (1 + 0.7)
			if west >= wmax {
				alpha = 1
			}
			west += alpha / (float64(c.Window()) / cubicMSS)
			now = start + rtt*time.Duration(i)/time.Duration(n)
			c.OnAck(Ack{Acked: cubicMSS, Flight: c.Window(), Now: now, SRTT: rtt, CwndLimited: true})
			if got := float64(c.Window()) / cubicMSS; got < west-0.01 {
				t.Fatalf("round %d: cwnd %.3f segments, want at least W_est %.3f", r, got, west)
			}
		}
	}
	got := float64(c.Window()) / cubicMSS
	cub := wCubicRef(now.Seconds()+rtt.Seconds(), k, wmax)
	t.Logf("after 50 RTTs of 10 ms: cwnd %.2f, W_est %.2f, W_cubic(t+RTT) %.2f", got, west, cub)
	// Reno's pace: ~α per RTT up to 20 segments (11 RTTs), then 1 per RTT.
	if got < 55 || got < cub+10 {
		t.Fatalf("cwnd %.2f, want about 58 segments, well above W_cubic %.2f", got, cub)
	}
}

// TestCubicFastConvergence: a loss before the window regains W_max lowers
// W_max to cwnd*(1+β)/2 (RFC 9438 §4.7); a loss beyond it sets W_max = cwnd.
func TestCubicFastConvergence(t *testing.T) {
	p := &cubicPath{c: cubicAfterLoss(t, 100), rtt: 100 * time.Millisecond}
	for p.now < 2*time.Second {
		p.round(true)
	}
	w := p.c.Window()
	if w >= 100*cubicMSS {
		t.Fatalf("cwnd %d already past W_max", w)
	}
	p.c.OnFastRetransmit(w, p.now)
	p.c.OnRecoveryEnd(p.now)
	wantMax := float64(w) * 0.85
	if math.Abs(float64(p.c.WMax())-wantMax) > 1 {
		t.Fatalf("loss at cwnd %d < W_max: W_max %d, want %.0f", w, p.c.WMax(), wantMax)
	}
	if p.c.Window() != w*7/10 {
		t.Fatalf("cwnd %d, want %d", p.c.Window(), w*7/10)
	}
	p.round(true)
	// §4.2: K from W_max and cwnd_epoch = 0.7*cwnd: cbrt(0.15*cwnd/C).
	wantK := math.Cbrt((wantMax - float64(w*7/10)) / cubicMSS / 0.4)
	if math.Abs(p.c.K().Seconds()-wantK) > 0.01 {
		t.Fatalf("K %v, want %.3f s", p.c.K(), wantK)
	}

	// Now climb past W_max and lose again: W_max is the window itself.
	for p.c.Window() < p.c.WMax()+5*cubicMSS {
		p.round(true)
	}
	w = p.c.Window()
	p.c.OnFastRetransmit(w, p.now)
	if p.c.WMax() != w {
		t.Fatalf("loss at cwnd %d >= W_max: W_max %d", w, p.c.WMax())
	}
}

// TestCubicTimeout: RFC 9438 §4.8 and RFC 5681 §3.1.
func TestCubicTimeout(t *testing.T) {
	p := &cubicPath{c: cubicAfterLoss(t, 100), rtt: 100 * time.Millisecond}
	for i := 0; i < 10; i++ {
		p.round(true)
	}
	c := p.c
	c.OnTimeout(80*cubicMSS, p.now)
	if c.Window() != cubicMSS || c.SSThresh() != 56*cubicMSS {
		t.Fatalf("timeout: cwnd %d ssthresh %d, want 1 MSS and 0.7*flight", c.Window(), c.SSThresh())
	}
	// The retransmission times out too: ssthresh is held.
	c.OnTimeout(10*cubicMSS, p.now+time.Second)
	if c.Window() != cubicMSS || c.SSThresh() != 56*cubicMSS {
		t.Fatalf("second timeout: cwnd %d ssthresh %d", c.Window(), c.SSThresh())
	}
	// Slow start, one MSS per ACK, up to ssthresh.
	for c.Window() < c.SSThresh() {
		before := c.Window()
		p.now += time.Millisecond
		c.OnAck(Ack{Acked: cubicMSS, Flight: before, Now: p.now, SRTT: p.rtt, CwndLimited: true})
		if c.Window() != before+cubicMSS {
			t.Fatalf("slow start from %d: %d", before, c.Window())
		}
	}
	if c.Window() != 56*cubicMSS {
		t.Fatalf("slow start ended at %d", c.Window())
	}
	// Congestion avoidance: K = 0 and W_max = cwnd at the start of the stage.
	before := c.Window()
	p.now += time.Millisecond
	c.OnAck(Ack{Acked: cubicMSS, Flight: before, Now: p.now, SRTT: p.rtt, CwndLimited: true})
	if c.K() != 0 || c.WMax() != 56*cubicMSS {
		t.Fatalf("first stage after timeout: K %v W_max %d, want 0 and %d", c.K(), c.WMax(), 56*cubicMSS)
	}
	if g := c.Window() - before; g <= 0 || g >= cubicMSS {
		t.Fatalf("congestion avoidance grew %d bytes on one ACK", g)
	}
}

func TestCubicNotCwndLimited(t *testing.T) {
	c := NewCubic(cubicMSS)
	c.OnAck(Ack{Acked: cubicMSS, Flight: cubicMSS, CwndLimited: false})
	if c.Window() != 10*cubicMSS {
		t.Fatalf("slow start grew an unused window: %d", c.Window())
	}
	p := &cubicPath{c: cubicAfterLoss(t, 100), rtt: 100 * time.Millisecond}
	p.round(true)
	w := p.c.Window()
	for i := 0; i < 20; i++ {
		p.round(false)
	}
	if p.c.Window() != w {
		t.Fatalf("congestion avoidance grew an unused window: %d -> %d", w, p.c.Window())
	}

	// RFC 9438 §4.2: t excludes application-limited time, so a sender that
	// paused for 5 s resumes on the curve where it left it.
	a := &cubicPath{c: cubicAfterLoss(t, 100), rtt: 100 * time.Millisecond}
	b := &cubicPath{c: cubicAfterLoss(t, 100), rtt: 100 * time.Millisecond}
	for i := 0; i < 10; i++ {
		a.round(true)
		b.round(true)
	}
	for i := 0; i < 50; i++ {
		a.round(false)
	}
	for i := 0; i < 20; i++ {
		a.round(true)
		b.round(true)
	}
	if d := math.Abs(a.segs() - b.segs()); d > 1 {
		t.Fatalf("after a 5 s pause cwnd %.2f, without one %.2f", a.segs(), b.segs())
	}
}

func TestCubicBeforeRTTSample(t *testing.T) {
	// With no SRTT yet CUBIC has no t+RTT to aim at and grows like Reno's
	// W_est: about α_cubic per window of ACKs.
	c := cubicAfterLoss(t, 100)
	for i := 0; i < 70; i++ {
		c.OnAck(Ack{Acked: cubicMSS, Flight: c.Window(), Now: 10 * time.Second, CwndLimited: true})
	}
	got := float64(c.Window())/cubicMSS - 70
	if alpha := 3 * 0.3 / 1.7; math.Abs(got-alpha) > 0.05 {
		t.Fatalf("one window without SRTT grew %.3f segments, want α_cubic %.3f", got, alpha)
	}
}

func TestNewCubic(t *testing.T) {
	c, err := New("cubic", 1460)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := c.(*Cubic); !ok || c.Name() != "cubic" || c.Window() != InitialWindow(1460) {
		t.Fatalf("New(cubic) = %T %q cwnd %d", c, c.Name(), c.Window())
	}
	if _, err := New("bogus", 1460); err == nil || !strings.Contains(err.Error(), "want newreno or cubic") {
		t.Fatalf("New(bogus) error %v", err)
	}
}

func TestCubicNoAllocs(t *testing.T) {
	var ctl Controller = NewCubic(cubicMSS)
	now := time.Duration(0)
	allocs := testing.AllocsPerRun(100, func() {
		for i := 0; i < 20; i++ {
			now += time.Millisecond
			ctl.OnAck(Ack{Acked: cubicMSS, Flight: ctl.Window(), Now: now, SRTT: 50 * time.Millisecond, CwndLimited: true})
		}
		ctl.OnFastRetransmit(ctl.Window(), now)
		ctl.OnDupAck()
		ctl.OnRecoveryEnd(now)
		for i := 0; i < 20; i++ {
			now += time.Millisecond
			ctl.OnAck(Ack{Acked: cubicMSS, Flight: ctl.Window(), Now: now, SRTT: 50 * time.Millisecond, CwndLimited: i%3 != 0})
		}
		ctl.OnTimeout(ctl.Window(), now)
		_ = ctl.SSThresh()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run, want 0", allocs)
	}
}

// ExampleCubic shows the window climbing back after a loss at 100 segments
// on a 100 ms path: fast at first, flat around W_max at t = K, then
// accelerating past it.
func ExampleCubic() {
	const mss = 1000
	c := NewCubic(mss)
	for c.Window() < 100*mss { // slow start
		c.OnAck(Ack{Acked: mss, Flight: c.Window(), CwndLimited: true})
	}
	c.OnFastRetransmit(c.Window(), 0) // a loss at 100 segments
	c.OnRecoveryEnd(0)
	fmt.Printf("after the loss: cwnd %d, W_max %d segments\n", c.Window()/mss, c.WMax()/mss)

	rtt, now := 100*time.Millisecond, time.Duration(0)
	for sec := 2; sec <= 10; sec += 2 {
		for now < time.Duration(sec)*time.Second {
			// One round trip: the whole window is ACKed, one MSS at a time.
			n, start := c.Window()/mss, now
			for i := 1; i <= n; i++ {
				now = start + rtt*time.Duration(i)/time.Duration(n)
				c.OnAck(Ack{Acked: mss, Flight: c.Window(), Now: now, SRTT: rtt, CwndLimited: true})
			}
		}
		fmt.Printf("t=%2ds cwnd %3d segments\n", sec, c.Window()/mss)
	}
	fmt.Printf("K = %.2fs\n", c.K().Seconds())
	// Output:
	// after the loss: cwnd 70, W_max 100 segments
	// t= 2s cwnd  95 segments
	// t= 4s cwnd  99 segments
	// t= 6s cwnd 102 segments
	// t= 8s cwnd 122 segments
	// t=10s cwnd 177 segments
	// K = 4.22s
}
