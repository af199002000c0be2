package tcp

import (
	"bytes"
	"testing"
	"time"
)

// TestRecoveryWithPRRReported: three segments of a window of ten are
// lost; recovery (RACK, then PRR) repairs them without a timeout, and
// Info shows it as it goes: the state "recovery", bytes SACKed and judged
// lost, PRR's delivered and sent counts, which by the end of the episode
// have sent about ssthresh/RecoverFS (a half, for NewReno) of what was
// delivered (RFC 6937 §3).
func TestRecoveryWithPRRReported(t *testing.T) {
	p := newWarmPair(t, Config{})
	p.transfer(p.a, p.b, pattern(3000))
	mss := p.a.segMSS()
	lost := map[int]bool{2: true, 5: true, 7: true}
	n := 0
	seen := map[Seq]bool{}
	var during Info
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload) == 0 {
			return false
		}
		if p.a.loss == lossFast {
			during = p.a.Info() // as recovery sends its last segment
		}
		if seen[seg.Seq] {
			return false
		}
		seen[seg.Seq] = true
		n++
		return lost[n-1]
	}
	data := pattern(40 * mss)
	got := p.transfer(p.a, p.b, data)
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	if p.a.Timeouts != 0 || p.a.Recoveries == 0 {
		t.Fatalf("timeouts %d, recoveries %d: want recovery without a timeout", p.a.Timeouts, p.a.Recoveries)
	}
	if during.LossState != "recovery" || during.SACKed == 0 || during.PRROut == 0 {
		t.Errorf("Info during recovery: state %q, sacked %d, lost %d, prr %d/%d; want recovery with SACKed bytes and PRR counting",
			during.LossState, during.SACKed, during.Lost, during.PRRDelivered, during.PRROut)
	}
	end := p.a.Info()
	if end.LossState != "open" || end.Lost != 0 || end.SACKed != 0 {
		t.Errorf("Info after: state %q, sacked %d, lost %d; want open, nothing outstanding", end.LossState, end.SACKed, end.Lost)
	}
	if end.PRRDelivered == 0 || end.PRROut > end.PRRDelivered {
		t.Errorf("PRR sent %d for %d delivered: a reduction never sends more than is delivered", end.PRROut, end.PRRDelivered)
	}
}

// deliverAll hands every segment queued on from to the other end, at now.
func deliverAll(p *pair, from *wire, to *Conn) {
	for len(from.queue) > 0 {
		seg := p.take(from)
		to.Handle(&seg, p.now)
	}
}

// spuriousRecovery runs the first half of both undo tests: the first of
// six segments is only late (reordered behind the other five). Three
// SACKed segments above it and no reordering seen yet: RACK's window is
// zero, the segment is declared lost, recovery cuts the window and
// resends it. It returns the late original, the window before, and
// leaves the resend queued on a's wire.
func spuriousRecovery(t *testing.T, cfg Config) (p *pair, late Segment, before int) {
	t.Helper()
	p, _ = slowPair(t, cfg)
	mss := p.a.segMSS()
	before = p.a.cc.Window()
	p.a.Write(pattern(6*mss), p.now)
	if n := len(p.aOut.queue); n != 6 {
		t.Fatalf("%d segments sent, want 6 (cwnd %d)", n, before)
	}
	late = p.take(p.aOut)
	p.now += 50 * time.Millisecond
	deliverAll(p, p.aOut, p.b) // the other five
	p.now += 50 * time.Millisecond
	deliverAll(p, p.bOut, p.a) // their SACKs
	if p.a.loss != lossFast || p.a.cc.Window() >= before || len(p.aOut.queue) != 1 {
		t.Fatalf("after the SACKs: state %v, cwnd %d (was %d), %d queued; want recovery, a smaller window, the resend",
			p.a.loss, p.a.cc.Window(), before, len(p.aOut.queue))
	}
	return p, late, before
}

// TestSpuriousRecoveryUndoneByDSACK: without timestamps, the D-SACK is
// the evidence. The original arrives, the resend reaches the peer as a
// duplicate and comes back D-SACKed (RFC 2883 §4.1.1): the episode's one
// resend was needless, so its reduction is undone (RFC 2883 §5) and the
// window is what it was. The D-SACK also marks the path as reordering
// (RFC 8985 §6.2), which keeps RACK's window open from now on.
func TestSpuriousRecoveryUndoneByDSACK(t *testing.T) {
	p, late, before := spuriousRecovery(t, Config{DelayedAck: -1, NoTimestamps: true})
	p.now += 50 * time.Millisecond
	p.b.Handle(&late, p.now)   // the original, late
	deliverAll(p, p.aOut, p.b) // the resend: a duplicate now
	p.now += 50 * time.Millisecond
	deliverAll(p, p.bOut, p.a)
	if p.a.DSACKs != 1 || p.a.SpuriousUndone != 1 {
		t.Fatalf("D-SACKs %d, undone %d: want the needless resend D-SACKed and the episode undone", p.a.DSACKs, p.a.SpuriousUndone)
	}
	if got := p.a.cc.Window(); got < before {
		t.Errorf("cwnd %d after the undo, want at least the %d before the episode", got, before)
	}
	if !p.a.rack.ReorderingSeen || p.a.loss != lossOpen {
		t.Errorf("reordering seen %v, state %v: want the path marked reordering, recovery over", p.a.rack.ReorderingSeen, p.a.loss)
	}
}

// TestSpuriousRecoveryUndoneByTimestamp: with timestamps the first ACK
// past the resend tells at once (RFC 3522, Eifel): the late original
// filled the hole, so the ACK echoes its timestamp, older than the
// resend's. The resend itself is lost here, so no D-SACK ever comes.
func TestSpuriousRecoveryUndoneByTimestamp(t *testing.T) {
	p, late, before := spuriousRecovery(t, Config{DelayedAck: -1})
	p.take(p.aOut) // the resend, lost
	p.now += 50 * time.Millisecond
	p.b.Handle(&late, p.now)
	p.now += 50 * time.Millisecond
	deliverAll(p, p.bOut, p.a)
	if p.a.DSACKs != 0 || p.a.SpuriousUndone != 1 {
		t.Fatalf("D-SACKs %d, undone %d: want the episode undone by the echoed timestamp alone", p.a.DSACKs, p.a.SpuriousUndone)
	}
	if got := p.a.cc.Window(); got < before {
		t.Errorf("cwnd %d after the undo, want at least the %d before the episode", got, before)
	}
}

// TestRealRecoveryNotUndone: the same, but the first segment really is
// lost: the resend fills the hole, no D-SACK comes, the window stays
// reduced.
func TestRealRecoveryNotUndone(t *testing.T) {
	p, exchange := slowPair(t, Config{DelayedAck: -1})
	mss := p.a.segMSS()
	before := p.a.cc.Window()
	p.a.Write(pattern(6*mss), p.now)
	exchange(0)
	for i := 0; i < 4 && p.a.sndUna != p.a.sndMax; i++ {
		exchange(-1)
	}
	if p.a.sndUna != p.a.sndMax || p.a.Recoveries != 1 {
		t.Fatalf("recoveries %d, %d bytes outstanding", p.a.Recoveries, p.a.sndMax.Sub(p.a.sndUna))
	}
	if p.a.SpuriousUndone != 0 || p.a.cc.Window() >= before {
		t.Errorf("undone %d, cwnd %d (was %d): a real loss must keep its reduction", p.a.SpuriousUndone, p.a.cc.Window(), before)
	}
}

// TestProbeInPlaceOfTimeout: three segments out, all lost. The loss
// probe is due at 2·SRTT + 1 ms but never after the RTO; here the RTO
// (about 110 ms on slowPair's 100 ms path) comes first, so the probe goes
// at the RTO in its place (RFC 8985 §7.2): the last segment is resent,
// no timeout is counted, the window is not cut to one segment and the
// timer is not backed off.
func TestProbeInPlaceOfTimeout(t *testing.T) {
	p, _ := slowPair(t, Config{DelayedAck: -1, MinRTO: 5 * time.Millisecond})
	mss := p.a.segMSS()
	cwnd, rto := p.a.cc.Window(), p.a.rto.Timeout()
	p.a.Write(pattern(3*mss), p.now)
	p.aOut.queue = nil // all three lost
	if !p.a.timers.armed(tProbe) || p.a.timers.at(tProbe) != p.a.timers.at(tRetransmit) {
		t.Fatalf("probe at %v, RTO at %v: want the probe armed at the RTO", p.a.timers.at(tProbe), p.a.timers.at(tRetransmit))
	}
	p.now = p.a.timers.at(tRetransmit)
	p.a.Tick(p.now)
	if p.a.Probes != 1 || p.a.Timeouts != 0 || len(p.aOut.queue) != 1 {
		t.Fatalf("at the RTO: %d probes, %d timeouts, %d sent; want one probe and no timeout", p.a.Probes, p.a.Timeouts, len(p.aOut.queue))
	}
	if seg := p.take(p.aOut); seg.Seq != p.a.sndMax.Add(-mss) {
		t.Errorf("the probe resent %d, want the last segment at %d", seg.Seq, p.a.sndMax.Add(-mss))
	}
	if p.a.cc.Window() != cwnd || p.a.rto.Timeout() != rto {
		t.Errorf("cwnd %d (was %d), RTO %v (was %v): the probe must spare both", p.a.cc.Window(), cwnd, p.a.rto.Timeout(), rto)
	}
}

// TestTimeoutKeepsSACKed: after a timeout every segment not SACKed is
// presumed lost and resent, and what the peer SACKed is not (RFC 6675
// §5.1 keeps the scoreboard; Linux does too unless the peer reneges). Of
// six segments the 1st and 4th are lost and the SACKs of the others are
// lost as well, but one of them, for the 5th and 6th, got through: at
// the RTO only the 1st to the 4th go again. A second timeout in a row
// trusts the scoreboard no more (RFC 2018 §8) and resends from SND.UNA.
func TestTimeoutKeepsSACKed(t *testing.T) {
	p, _ := slowPair(t, Config{DelayedAck: -1, NoTimestamps: true})
	mss := p.a.segMSS()
	p.a.Write(pattern(6*mss), p.now)
	segs := make([]Segment, 0, 6)
	for len(p.aOut.queue) > 0 {
		segs = append(segs, p.take(p.aOut))
	}
	p.now += 50 * time.Millisecond
	for _, i := range []int{1, 2, 4, 5} {
		p.b.Handle(&segs[i], p.now)
	}
	var last Segment
	for len(p.bOut.queue) > 0 {
		last = p.take(p.bOut) // only the last ACK arrives
	}
	p.now += 50 * time.Millisecond
	p.a.Handle(&last, p.now)
	p.aOut.queue = nil // whatever recovery sent, lost
	sacked := p.a.flight.SACKed()
	if sacked != 4*mss {
		t.Fatalf("SACKed %d bytes, want the four delivered segments", sacked)
	}
	// Nothing more arrives: the timer runs out.
	for i := 0; i < 10 && p.a.Timeouts == 0; i++ {
		p.now = max(p.now, p.a.NextTimer())
		p.a.Tick(p.now)
		if p.a.Timeouts == 0 {
			p.aOut.queue = nil // probes and resends before the timeout, lost too
		}
	}
	if p.a.Timeouts != 1 {
		t.Fatalf("no timeout")
	}
	resent := map[Seq]bool{}
	for _, b := range p.aOut.queue {
		var seg Segment
		if err := Parse(b, &seg); err != nil {
			t.Fatal(err)
		}
		resent[seg.Seq] = true
	}
	if len(resent) == 0 || !resent[segs[0].Seq] {
		t.Fatalf("after the timeout: resent %v, want the first segment", resent)
	}
	if p.a.flight.SACKed() != sacked {
		t.Errorf("the timeout forgot the SACKed segments (%d bytes left, was %d)", p.a.flight.SACKed(), sacked)
	}
	if p.a.flight.Lost()+p.a.pipe() != 2*mss {
		t.Errorf("lost %d + pipe %d, want the two segments not SACKed", p.a.flight.Lost(), p.a.pipe())
	}
	// A second timeout in a row: the scoreboard goes.
	p.aOut.queue = nil
	p.now = p.a.timers.at(tRetransmit)
	p.a.Tick(p.now)
	if p.a.Timeouts != 2 || p.a.flight.SACKed() != 0 || p.a.flight.Lost() != 6*mss-mss {
		t.Errorf("after a second timeout: %d timeouts, SACKed %d, lost %d; want the scoreboard gone, all but the resent segment lost",
			p.a.Timeouts, p.a.flight.SACKed(), p.a.flight.Lost())
	}
}

// TestRFC6675DetectorForComparison: with LossDetection "rfc6675" the
// classic detector decides, and it cannot see a lost retransmission
// (RFC 6675 §5 resends each hole once): where RACK resends the hole again
// within the recovery (TestLostRetransmissionResentWithoutTimeout), the
// RFC 6675 sender waits for the retransmission timeout.
func TestRFC6675DetectorForComparison(t *testing.T) {
	for _, tc := range []struct {
		detector string
		timeouts bool
	}{{LossRACK, false}, {LossRFC6675, true}} {
		p, _, _ := lostRetransmissionRun(t, Config{LossDetection: tc.detector})
		if (p.a.Timeouts > 0) != tc.timeouts {
			t.Errorf("%s: %d timeouts; want timeouts %v", tc.detector, p.a.Timeouts, tc.timeouts)
		}
	}
}

// TestFRTOUndoesPrematureTimeout: without timestamps (so Eifel cannot
// tell), three segments leave and their three ACKs are held up past the
// RTO. The timeout presumes all three lost and resends the first from a
// window of one segment. Then the held ACKs arrive: the first answers the
// original of the resent segment, which proves nothing, and is answered
// with new data rather than resends (F-RTO step 2b, so more data is
// written meanwhile); the second acknowledges the second segment, sent
// once, before the timeout, which the timeout had presumed lost: F-RTO's
// test (RFC 5682 §3), so the timeout is undone, the window is back, and
// nothing more is resent.
func TestFRTOUndoesPrematureTimeout(t *testing.T) {
	p, _ := slowPair(t, Config{DelayedAck: -1, NoTimestamps: true, MinRTO: 5 * time.Millisecond})
	mss := p.a.segMSS()
	cwnd := p.a.cc.Window()
	p.a.Write(pattern(3*mss), p.now)
	p.now += 50 * time.Millisecond
	deliverAll(p, p.aOut, p.b)
	held := p.bOut.queue
	p.bOut.queue = nil
	if len(held) != 3 {
		t.Fatalf("%d ACKs, want one per segment", len(held))
	}
	for i := 0; i < 4 && p.a.Timeouts == 0; i++ {
		p.now = p.a.NextTimer()
		p.a.Tick(p.now) // the probe first, in the timeout's place; then the timeout
	}
	p.aOut.queue = nil
	if p.a.loss != lossRTO || p.a.cc.Window() != mss {
		t.Fatalf("state %v, cwnd %d: want a timeout with a window of one segment", p.a.loss, p.a.cc.Window())
	}
	p.a.Write(pattern(3*mss), p.now) // more to send: F-RTO needs new data
	resent := p.a.Retransmits
	p.now += time.Millisecond
	for i, b := range held {
		var ack Segment
		if err := Parse(b, &ack); err != nil {
			t.Fatal(err)
		}
		p.a.Handle(&ack, p.now)
		if i == 0 && p.a.FRTOs != 0 {
			t.Fatalf("the ACK of the resent segment's original was taken as proof")
		}
	}
	if p.a.FRTOs != 1 || p.a.SpuriousUndone != 1 || p.a.loss != lossOpen || p.a.cc.Window() < cwnd {
		t.Fatalf("F-RTO %d, undone %d, state %v, cwnd %d (was %d): want the timeout undone",
			p.a.FRTOs, p.a.SpuriousUndone, p.a.loss, p.a.cc.Window(), cwnd)
	}
	if p.a.Retransmits != resent {
		t.Errorf("retransmits %d → %d: nothing more should have been resent", resent, p.a.Retransmits)
	}
}

// TestFRTOKeepsRealTimeout: the same three segments, all lost. After the
// timeout only resends are acknowledged, so F-RTO finds nothing and the
// timeout stands: the window grows again from one segment.
func TestFRTOKeepsRealTimeout(t *testing.T) {
	p, exchange := slowPair(t, Config{DelayedAck: -1, NoTimestamps: true, MinRTO: 5 * time.Millisecond})
	mss := p.a.segMSS()
	p.a.Write(pattern(3*mss), p.now)
	p.aOut.queue = nil
	for i := 0; i < 4 && p.a.Timeouts == 0; i++ {
		p.now = p.a.NextTimer()
		p.a.Tick(p.now)
		if p.a.Timeouts == 0 {
			p.aOut.queue = nil // the probe, lost too
		}
	}
	for i := 0; i < 6 && p.a.sndUna != p.a.sndMax; i++ {
		exchange(-1)
	}
	if p.a.sndUna != p.a.sndMax || p.a.Timeouts != 1 {
		t.Fatalf("%d bytes outstanding after %d timeouts", p.a.sndMax.Sub(p.a.sndUna), p.a.Timeouts)
	}
	if p.a.FRTOs != 0 || p.a.SpuriousUndone != 0 {
		t.Errorf("F-RTO %d, undone %d: a real timeout must stand", p.a.FRTOs, p.a.SpuriousUndone)
	}
}

// TestFRTOHoldEndsAtTimeout: F-RTO answers the first ACK after a timeout
// with new data instead of resends (step 2b). If that new data and its
// ACKs are lost too, the next timeout must resend: the hold on resends
// ends with it (it once did not, and the connection resent nothing until
// it timed out for good).
func TestFRTOHoldEndsAtTimeout(t *testing.T) {
	p, _ := slowPair(t, Config{DelayedAck: -1, NoTimestamps: true, MinRTO: 5 * time.Millisecond})
	mss := p.a.segMSS()
	p.a.Write(pattern(3*mss), p.now)
	p.aOut.queue = nil // all three lost
	for i := 0; i < 4 && p.a.Timeouts == 0; i++ {
		p.now = p.a.NextTimer()
		p.a.Tick(p.now)
		if p.a.Timeouts == 0 {
			p.aOut.queue = nil
		}
	}
	p.a.Write(pattern(3*mss), p.now) // new data for step 2b
	p.now += 50 * time.Millisecond
	deliverAll(p, p.aOut, p.b) // the resend of the first segment arrives
	p.now += 50 * time.Millisecond
	deliverAll(p, p.bOut, p.a) // its ACK: step 2b sends new data
	if !p.a.frtoHold || len(p.aOut.queue) == 0 {
		t.Fatalf("after the first ACK: hold %v, %d sent; want F-RTO's new data", p.a.frtoHold, len(p.aOut.queue))
	}
	p.aOut.queue = nil // lost, and nothing comes back
	before := p.a.Retransmits
	p.now = p.a.timers.at(tRetransmit)
	p.a.Tick(p.now)
	if p.a.Timeouts != 2 || p.a.Retransmits == before || len(p.aOut.queue) == 0 {
		t.Fatalf("second timeout: %d timeouts, retransmits %d → %d, %d sent; want a resend", p.a.Timeouts, before, p.a.Retransmits, len(p.aOut.queue))
	}
}

// TestProbeInFastRecovery: in recovery, the resend of a hole and the
// new data sent with it are lost together, so no later segment can
// reach the peer and show RACK the loss. The probe, armed in recovery
// too (beyond RFC 8985 §7.2, which leaves recovery out), goes before the
// retransmission timer would, and its answer repairs the rest without a
// timeout.
func TestProbeInFastRecovery(t *testing.T) {
	p, exchange := slowPair(t, Config{DelayedAck: -1, MinRTO: 5 * time.Millisecond})
	mss := p.a.segMSS()
	p.a.Write(pattern(12*mss), p.now)
	exchange(0) // the first is lost; the SACKs of the rest start recovery
	if p.a.loss != lossFast || len(p.aOut.queue) == 0 {
		t.Fatalf("state %v, %d queued: want recovery and its resend", p.a.loss, len(p.aOut.queue))
	}
	p.aOut.queue = nil // the resend and what went with it: lost
	if !p.a.timers.armed(tProbe) {
		t.Fatal("no probe armed in recovery")
	}
	p.now = p.a.NextTimer()
	p.a.Tick(p.now)
	if p.a.Probes == 0 || p.a.Timeouts != 0 || len(p.aOut.queue) == 0 {
		t.Fatalf("at the first timer: %d probes, %d timeouts, %d sent; want a probe, no timeout", p.a.Probes, p.a.Timeouts, len(p.aOut.queue))
	}
	for i := 0; i < 10 && p.a.sndUna != p.a.sndMax; i++ {
		exchange(-1)
	}
	if p.a.sndUna != p.a.sndMax || p.a.Timeouts != 0 {
		t.Errorf("%d bytes outstanding, %d timeouts: want the probe's answer to repair everything", p.a.sndMax.Sub(p.a.sndUna), p.a.Timeouts)
	}
}
