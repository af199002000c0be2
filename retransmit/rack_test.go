package retransmit

import (
	"testing"
	"time"

	"github.com/tund-project/tund/tcp/seqnum"
)

const ms = time.Millisecond

// sendN records n segments of 1000 bytes from seq 1000, the i-th sent at
// i ms.
func sendN(f *Flight, n int) {
	for i := 0; i < n; i++ {
		start := seqnum.Seq(1000 + 1000*i)
		f.Sent(start, start.Add(1000), time.Duration(i)*ms)
	}
}

func seg(i int) (seqnum.Seq, seqnum.Seq) {
	start := seqnum.Seq(1000 + 1000*i)
	return start, start.Add(1000)
}

// RFC 8985 §6.2 with worked numbers: four segments leave at 0, 1, 2 and
// 3 ms; the last is SACKed at 13 ms, so RACK.rtt = 10 ms and the
// reordering window min_RTT/4 = 2.5 ms. The first left 3 ms before it:
// 0 + 10 + 2.5 <= 13, lost. The second and third are due at 13.5 and
// 14.5 ms: the timer is armed for the later, 1.5 ms away.
func TestRACKLossByTime(t *testing.T) {
	var f Flight
	var r RACK
	sendN(&f, 4)
	var d Delivered
	s, e := seg(3)
	f.SACK(s, e, 13*ms, &r, &d)
	if d.Bytes != 1000 || r.RTT != 10*ms || r.MinRTT != 10*ms || f.SACKed() != 1000 {
		t.Fatalf("delivered %d, rtt %v, min %v, sacked %d", d.Bytes, r.RTT, r.MinRTT, f.SACKed())
	}
	reo := r.ReoWnd(false, 1, 10*ms)
	if reo != 2500*time.Microsecond {
		t.Fatalf("reo_wnd %v, want 2.5ms", reo)
	}
	timeout, marked := f.DetectLoss(&r, reo, 13*ms)
	if marked != 1000 || f.Lost() != 1000 || timeout != 1500*time.Microsecond {
		t.Fatalf("marked %d, lost %d, timeout %v; want 1000, 1000, 1.5ms", marked, f.Lost(), timeout)
	}
	if s, e, ok := f.NextLost(0); !ok || s != 1000 || e != 2000 {
		t.Fatalf("NextLost = %d-%d %v, want 1000-2000", s, e, ok)
	}
	// At 14.5 ms, when the timer fires, the other two are lost too.
	if timeout, marked = f.DetectLoss(&r, reo, 14500*time.Microsecond); marked != 2000 || timeout != 0 {
		t.Fatalf("at 14.5ms marked %d timeout %v, want 2000, 0", marked, timeout)
	}
	// Resending the first clears its mark; the pipe counts it again.
	f.Resent(1000, 2000, 15*ms)
	if f.Lost() != 2000 {
		t.Fatalf("lost after resend %d, want 2000", f.Lost())
	}
	if s, _, _ := f.NextLost(0); s != 2000 {
		t.Fatalf("next lost %d, want 2000", s)
	}
}

// The classic three-SACKed-segments rule: with DupThresh segments SACKed
// and no reordering seen, the window is zero, so a hole sent before them
// is lost at once (RFC 8985 §6.2 step 4).
func TestRACKDupThreshZeroWindow(t *testing.T) {
	var r RACK
	r.MinRTT = 8 * ms
	if w := r.ReoWnd(false, 3, 10*ms); w != 0 {
		t.Fatalf("3 SACKed: reo_wnd %v, want 0", w)
	}
	if w := r.ReoWnd(true, 0, 10*ms); w != 0 {
		t.Fatalf("recovering: reo_wnd %v, want 0", w)
	}
	if w := r.ReoWnd(false, 2, 10*ms); w != 2*ms {
		t.Fatalf("2 SACKed: reo_wnd %v, want 2ms", w)
	}
	r.ReorderingSeen = true
	if w := r.ReoWnd(true, 5, 10*ms); w != 2*ms {
		t.Fatalf("reordering seen, recovering: reo_wnd %v, want 2ms", w)
	}
	// Bounded by SRTT.
	r.ReoWndMult = 10
	if w := r.ReoWnd(false, 0, 10*ms); w != 10*ms {
		t.Fatalf("mult 10: reo_wnd %v, want SRTT 10ms", w)
	}
}

// A lost retransmission is found the same way (RFC 8985 §6.3 needs no
// special case): the first segment is resent at 20 ms, a new one leaves
// at 21 ms and is SACKed at 31 ms; the resend left before it and
// 20 + 10 + 0 <= 31, so it is lost again.
func TestRACKLostRetransmission(t *testing.T) {
	var f Flight
	var r RACK
	sendN(&f, 4)
	var d Delivered
	for i := 1; i < 4; i++ {
		s, e := seg(i)
		f.SACK(s, e, 13*ms, &r, &d)
	}
	f.DetectLoss(&r, r.ReoWnd(true, 3, 10*ms), 13*ms)
	f.Resent(1000, 2000, 20*ms)
	s, e := seg(4)
	f.Sent(s, e, 21*ms)
	f.SACK(s, e, 31*ms, &r, &d)
	if r.RTT != 10*ms {
		t.Fatalf("rtt %v", r.RTT)
	}
	if _, marked := f.DetectLoss(&r, r.ReoWnd(true, 4, 10*ms), 31*ms); marked != 1000 {
		t.Fatalf("lost retransmission not detected: marked %d", marked)
	}
	// What must not happen is marking a resend that left after RACK's
	// segment.
	var f2 Flight
	var r2 RACK
	sendN(&f2, 2)
	f2.Resent(1000, 2000, 20*ms) // left after segment 2 (1 ms)
	s2, e2 := seg(1)
	var d2 Delivered
	f2.SACK(s2, e2, 30*ms, &r2, &d2)
	if _, marked := f2.DetectLoss(&r2, 0, 40*ms); marked != 0 {
		t.Fatalf("a resend that left after RACK's segment was marked lost")
	}
}

// RFC 8985 §6.2 step 2: a segment sent once and delivered below the
// highest delivered one arrived out of order.
func TestRACKReorderingSeen(t *testing.T) {
	var f Flight
	var r RACK
	sendN(&f, 3)
	var d Delivered
	r.BeginAck(0, false)
	s, e := seg(2)
	f.SACK(s, e, 12*ms, &r, &d)
	// The same ACK acknowledging the first segment is no reordering.
	f.Ack(2000, 12*ms, &r, &d)
	if r.ReorderingSeen {
		t.Fatal("reordering seen in an ACK that SACKs above its own cumulative ACK")
	}
	r.BeginAck(0, false)
	s, e = seg(1)
	f.SACK(s, e, 13*ms, &r, &d)
	if !r.ReorderingSeen || !d.Reordered {
		t.Fatal("segment 2 delivered after segment 3: reordering not seen")
	}
	// RACK's segment stays the one sent last (3, at 2 ms).
	if r.xmitAt != 2*ms {
		t.Fatalf("RACK.xmit_ts %v, want 2ms", r.xmitAt)
	}
}

// RFC 8985 §6.2 step 3: D-SACKs raise the window by one min_RTT/4 per
// round trip, and 16 recoveries without one bring it back.
func TestRACKDSACKGrowsWindow(t *testing.T) {
	var r RACK
	r.MinRTT, r.ReorderingSeen = 4*ms, true
	r.OnDSACK(100, 5000)
	r.OnDSACK(200, 5000) // same round: SND.UNA has not passed 5000
	if r.ReoWndMult != 2 || r.ReoWnd(false, 0, time.Second) != 2*ms {
		t.Fatalf("after one round of D-SACKs: mult %d, reo_wnd %v; want 2, 2ms", r.ReoWndMult, r.ReoWnd(false, 0, time.Second))
	}
	r.OnDSACK(5000, 9000)
	if r.ReoWndMult != 3 {
		t.Fatalf("mult %d after the second round, want 3", r.ReoWndMult)
	}
	for i := 0; i < 15; i++ {
		r.OnRecoveryEnd()
	}
	if r.ReoWndMult != 3 {
		t.Fatalf("window fell back after 15 recoveries")
	}
	r.OnRecoveryEnd()
	if r.ReoWndMult != 1 {
		t.Fatalf("mult %d after 16 recoveries, want 1", r.ReoWndMult)
	}
}

// The ring keeps order and totals across wrap and growth, and partial
// ACKs and SACKs count only what they cover.
func TestFlightAccounting(t *testing.T) {
	var f Flight
	var r RACK
	var d Delivered
	sendN(&f, 10)
	f.Ack(5000, 20*ms, &r, &d) // four whole segments
	if f.Len() != 6 || d.Bytes != 4000 {
		t.Fatalf("len %d delivered %d", f.Len(), d.Bytes)
	}
	for i := 10; i < 40; i++ { // wraps the 16-slot ring, then grows it
		s, e := seg(i)
		f.Sent(s, e, time.Duration(i)*ms)
	}
	if f.Len() != 36 {
		t.Fatalf("len %d, want 36", f.Len())
	}
	d = Delivered{}
	// A SACK block covering half a segment marks nothing.
	f.SACK(20500, 22000, 50*ms, &r, &d)
	if d.Bytes != 1000 || f.SACKed() != 1000 { // only 21000-22000 whole
		t.Fatalf("partial SACK: delivered %d sacked %d", d.Bytes, f.SACKed())
	}
	f.MarkAllLost()
	if f.Lost() != 35000 {
		t.Fatalf("lost %d, want 35000", f.Lost())
	}
	// A partial cumulative ACK trims the first record.
	d = Delivered{}
	f.Ack(5500, 51*ms, &r, &d)
	if d.Bytes != 500 || f.Lost() != 34500 || f.Len() != 36 {
		t.Fatalf("partial ACK: delivered %d lost %d len %d", d.Bytes, f.Lost(), f.Len())
	}
	d = Delivered{}
	f.Ack(41000, 60*ms, &r, &d)
	if f.Len() != 0 || f.Lost() != 0 || f.SACKed() != 0 || d.Bytes != 34500 {
		t.Fatalf("all acked: len %d lost %d sacked %d delivered %d", f.Len(), f.Lost(), f.SACKed(), d.Bytes)
	}
	f.Release()
	if f.ring != nil {
		t.Fatal("ring kept after Release")
	}
}

// Recording segments allocates nothing once the ring has grown.
func TestFlightNoAllocs(t *testing.T) {
	var f Flight
	var r RACK
	sendN(&f, 64)
	f.Ack(65000, time.Second, &r, &Delivered{})
	n := testing.AllocsPerRun(100, func() {
		sendN(&f, 64)
		var d Delivered
		s, e := seg(40)
		f.SACK(s, e, time.Second, &r, &d)
		f.DetectLoss(&r, 0, time.Second)
		f.Ack(65000, time.Second, &r, &d)
	})
	if n != 0 {
		t.Fatalf("%v allocations per round", n)
	}
}

// RFC 6937 with worked numbers: RecoverFS 20 segments, ssthresh 10. While
// the pipe is above ssthresh, one segment leaves for every two delivered,
// so after 20 ACKs of one segment each 10 have been sent.
func TestPRRProportional(t *testing.T) {
	var p PRR
	p.Start(20, 10)
	sent := 0
	for i := 0; i < 20; i++ {
		n := p.OnAck(1, 15, 1) // the pipe stays above ssthresh
		p.Sent(n)
		sent += n
		if want := (i + 2) / 2; sent != want {
			t.Fatalf("after ACK %d: sent %d, want %d", i+1, sent, want)
		}
	}
}

// Below ssthresh the bounds differ: CRB sends no more than was delivered,
// SSRB up to one MSS more per ACK (RFC 6937 §3).
func TestPRRReductionBounds(t *testing.T) {
	var crb, ssrb PRR
	crb.Conservative = true
	crb.Start(20, 10)
	ssrb.Start(20, 10)
	// The pipe collapsed to 4 (much more was lost): an ACK delivers 1.
	if n := crb.OnAck(1, 4, 1); n != 1 {
		t.Fatalf("CRB sndcnt %d, want 1", n)
	}
	if n := ssrb.OnAck(1, 4, 1); n != 2 {
		t.Fatalf("SSRB sndcnt %d, want 2", n)
	}
	// Never past ssthresh: pipe 9, SSRB would allow 2 but only 1 fits.
	var p PRR
	p.Start(20, 10)
	if n := p.OnAck(1, 9, 1); n != 1 {
		t.Fatalf("sndcnt %d at pipe 9, want 1", n)
	}
	// The fast retransmit goes even with nothing delivered yet (a
	// recovery the reordering timer started); after it, nothing more
	// until something is delivered.
	var q PRR
	q.Start(20, 10)
	if n := q.OnAck(0, 15, 1); n != 1 {
		t.Fatalf("first sndcnt %d with nothing delivered, want the fast retransmit's 1", n)
	}
	q.Sent(1)
	if n := q.OnAck(0, 15, 1); n != 0 {
		t.Fatalf("sndcnt %d with nothing delivered after the fast retransmit", n)
	}
}

// RFC 8985 §6.2 step 1: the ACK of a resent segment that echoes the
// original's timestamp answers the original, and must not date RACK's
// segment to the resend (which would call lost everything sent before
// it). The original left at 0 ms, the resend at 5 ms, the ACK echoes 0.
func TestRACKIgnoresAckOfOriginal(t *testing.T) {
	var f Flight
	var r RACK
	sendN(&f, 3) // at 0, 1, 2 ms
	var d Delivered
	s, e := seg(1)
	f.SACK(s, e, 3*ms, &r, &d) // RTT 2 ms, min 2 ms
	f.Resent(1000, 2000, 5*ms)
	r.BeginAck(0, true)
	f.Ack(2000, 8*ms, &r, &d)
	if r.xmitAt != 1*ms || r.RTT != 2*ms {
		t.Fatalf("RACK took the ambiguous sample: xmit %v rtt %v", r.xmitAt, r.RTT)
	}
	// Echoing the resend's time (5 ms), it is the resend's own sample.
	f.Resent(3000, 4000, 9*ms)
	r.BeginAck(9, true)
	f.Ack(4000, 12*ms, &r, &d)
	if r.xmitAt != 9*ms || r.RTT != 3*ms {
		t.Fatalf("RACK ignored the resend's sample: xmit %v rtt %v", r.xmitAt, r.RTT)
	}
}

// On a path seen to reorder, a SACK of a resent segment is not taken: it
// may be the late original, and dating RACK's segment to the resend
// would call lost everything sent before it. Without reordering seen it
// is taken (the original was most likely lost).
func TestRACKSACKOfResendOnReorderingPath(t *testing.T) {
	for _, reordering := range []bool{false, true} {
		var f Flight
		var r RACK
		sendN(&f, 4) // at 0..3 ms
		var d Delivered
		s, e := seg(1)
		f.SACK(s, e, 3*ms, &r, &d) // RTT 2 ms
		r.ReorderingSeen = reordering
		f.Resent(3000, 4000, 10*ms) // the third, resent
		r.BeginAck(0, false)
		s, e = seg(2)
		f.SACK(s, e, 15*ms, &r, &d)
		took := r.xmitAt == 10*ms
		if took == reordering {
			t.Errorf("reordering seen %v: RACK took the resend's SACK %v", reordering, took)
		}
	}
}
