package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestLowFloorWaitsOutDelayedAck: with a minimum RTO under 200 ms, the
// timer may beat a receiver that holds its ACK for a lone in-order
// segment. Worked numbers on the 100 ms round trip of slowPair: one
// segment sent at t0, unanswered; the RTO (SRTT + 4·RTTVAR, about 110 ms)
// fires, and is moved to t0 + SRTT + 200 ms (RFC 8985 §7.2's WCDelAckT)
// with nothing resent and no timeout counted; then it goes. With two
// segments in flight the receiver ACKs the second at once (RFC 5681
// §4.2), so there is no wait (the loss probe goes at the RTO); and with
// the default floor of 200 ms nothing changes.
func TestLowFloorWaitsOutDelayedAck(t *testing.T) {
	lone := func(t *testing.T, minRTO time.Duration, segs int) (p *pair, t0, rto time.Duration) {
		p, _ = slowPair(t, Config{DelayedAck: -1, MinRTO: minRTO})
		t0 = p.now
		p.a.Write(pattern(segs*p.a.segMSS()), p.now)
		p.aOut.queue = nil // lost, or its ACK held
		return p, t0, p.a.timers.at(tRetransmit) - t0
	}

	t.Run("one segment, floor 5 ms: wait for the delayed ACK", func(t *testing.T) {
		p, t0, rto := lone(t, 5*time.Millisecond, 1)
		srtt := p.a.rto.SRTT()
		if rto >= srtt+wcDelAckT {
			t.Fatalf("RTO %v: want it under SRTT %v + 200 ms for the test to mean anything", rto, srtt)
		}
		p.now = t0 + rto
		p.a.Tick(p.now)
		if p.a.Timeouts != 0 || len(p.aOut.queue) != 0 || p.a.timers.at(tRetransmit) != t0+srtt+wcDelAckT {
			t.Fatalf("at the RTO (%v): %d timeouts, %d segments, timer at +%v; want none, none, +%v (SRTT + 200 ms)",
				rto, p.a.Timeouts, len(p.aOut.queue), p.a.timers.at(tRetransmit)-t0, srtt+wcDelAckT)
		}
		p.now = p.a.timers.at(tRetransmit)
		p.a.Tick(p.now)
		if p.a.Timeouts != 1 || len(p.aOut.queue) != 1 {
			t.Fatalf("at SRTT + 200 ms: %d timeouts, %d segments; want the segment resent", p.a.Timeouts, len(p.aOut.queue))
		}
	})

	t.Run("two segments, floor 5 ms: no wait", func(t *testing.T) {
		p, t0, rto := lone(t, 5*time.Millisecond, 2)
		p.now = t0 + rto
		p.a.Tick(p.now)
		// The loss probe, due no later than the RTO, goes in its place
		// (RFC 8985 §7.2): a resend at the RTO, not a wait.
		if p.a.Timeouts+p.a.Probes != 1 || len(p.aOut.queue) != 1 {
			t.Fatalf("at the RTO with two segments out: %d timeouts, %d probes, %d segments sent; want one resend",
				p.a.Timeouts, p.a.Probes, len(p.aOut.queue))
		}
	})

	t.Run("one segment, classic 200 ms floor: unchanged", func(t *testing.T) {
		p, t0, rto := lone(t, classicMinRTO, 1)
		if rto != 200*time.Millisecond {
			t.Fatalf("RTO %v, want the 200 ms floor", rto)
		}
		p.now = t0 + rto
		p.a.Tick(p.now)
		if p.a.Timeouts != 1 {
			t.Fatalf("at the RTO: %d timeouts, want 1", p.a.Timeouts)
		}
	})
}

// TestLowFloorGivesUpByTime: RFC 9293 §3.8.3 wants R2, the give-up, to be
// at least 100 s, and counts it in retransmissions; with a 1 ms floor, 3
// retries would be over in about 15 ms. With a low floor the count must
// also have taken as long as it would from the classic 200 ms floor:
// 200 + 400 + 800 = 1.4 s after the first timeout for MaxRetries = 3. The
// classic 200 ms floor gives up at the count, as before.
func TestLowFloorGivesUpByTime(t *testing.T) {
	run := func(t *testing.T, minRTO time.Duration) (timeouts uint64, span time.Duration) {
		p := newPair(t, Config{DelayedAck: -1, MinRTO: minRTO, MaxRetries: 3})
		p.a.Write(pattern(100), p.now)
		p.aOut.queue = nil
		var first time.Duration
		for i := 0; i < 1000 && p.a.Err() == nil; i++ {
			p.now = p.a.NextTimer()
			p.a.Tick(p.now)
			if p.a.Timeouts == 1 && first == 0 {
				first = p.now
			}
			p.aOut.queue = nil
		}
		if !errors.Is(p.a.Err(), syscall.ETIMEDOUT) {
			t.Fatalf("error %v, want ETIMEDOUT", p.a.Err())
		}
		return p.a.Timeouts, p.now - first
	}
	n, span := run(t, time.Millisecond)
	if span < 1400*time.Millisecond || span > 2400*time.Millisecond || n <= 3 {
		t.Errorf("floor 1 ms: gave up %v after the first timeout, after %d timeouts; want 1.4 s (and up to one more backed-off RTO), more than 3", span, n)
	}
	if n, _ := run(t, classicMinRTO); n != 3 {
		t.Errorf("200 ms floor: gave up after %d timeouts, want MaxRetries = 3", n)
	}
}

// TestLowFloorOrphanKeepsItsTime: an orphan is given OrphanRetries
// timeouts, or window probes, without progress; with a 5 ms floor those
// would be over in about a second. With a low floor they must also span
// what they would from 200 ms: for OrphanRetries = 8 and MaxRTO 60 s,
// 0.2 + 0.4 + … + 25.6 = 51 s. Both ways an orphan ends: a peer that
// never ACKs the FIN (LAST-ACK), and one that holds its window shut and
// answers every probe (FIN-WAIT-1).
func TestLowFloorOrphanKeepsItsTime(t *testing.T) {
	cfg := Config{MinRTO: 5 * time.Millisecond}
	span := classicSpan(DefaultConfig().OrphanRetries, DefaultConfig().MaxRTO)
	if span != 51*time.Second {
		t.Fatalf("classicSpan(8, 60 s) = %v, want 51 s", span)
	}

	t.Run("LAST-ACK, the FIN never acknowledged", func(t *testing.T) {
		p := newPair(t, cfg)
		p.a.CloseWrite(p.now)
		p.run()
		p.aOut.drop = func(*Segment) bool { return true }
		p.b.Close(p.now)
		closedAt := p.now
		for i := 0; i < 100000 && p.b.State() != Closed; i++ {
			p.now = p.b.NextTimer()
			p.b.Tick(p.now)
		}
		held := p.now - closedAt
		if p.b.State() != Closed || !errors.Is(p.b.Err(), syscall.ETIMEDOUT) {
			t.Fatalf("state %v, error %v: want the orphan ended with ETIMEDOUT", p.b.State(), p.b.Err())
		}
		if held < span || held > 2*span {
			t.Fatalf("orphan held %v after %d timeouts; want at least %v (and not twice that)", held, p.b.Timeouts, span)
		}
		t.Logf("LAST-ACK orphan held %v, %d timeouts", held, p.b.Timeouts)
	})

	t.Run("FIN-WAIT-1, a shut window whose probes are answered", func(t *testing.T) {
		p := newPair(t, cfg)
		fillWindow(t, p, 300<<10)
		closedAt := p.now
		p.a.Close(p.now)
		p.wantState(p.a, FinWait1)
		for i := 0; i < 24*60*60 && p.a.State() != Closed; i++ {
			p.advance(time.Second)
		}
		held := p.now - closedAt
		if p.a.State() != Closed || !errors.Is(p.a.Err(), syscall.ETIMEDOUT) {
			t.Fatalf("state %v, error %v: want the orphan ended with ETIMEDOUT", p.a.State(), p.a.Err())
		}
		if held < span || held > 3*span {
			t.Fatalf("zero-window orphan held %v; want at least %v (and not three times that)", held, span)
		}
		t.Logf("zero-window orphan held %v", held)
	})
}

// TestLowFloorProbesKeepTheirTime: a sender whose peer shut its window
// and then vanished gives up after MaxRetries unanswered window probes.
// With a 5 ms floor the probes back off from the (small) RTO, and 5 of
// them were over in 2.8 s here; with a low floor they must also span what
// they would from 200 ms: 0.2 + 0.4 + 0.8 + 1.6 + 3.2 = 6.2 s after the
// first.
func TestLowFloorProbesKeepTheirTime(t *testing.T) {
	p := newPair(t, Config{MinRTO: 5 * time.Millisecond, MaxRetries: 5})
	fillWindow(t, p, 300<<10)
	p.bOut.drop = func(*Segment) bool { return true } // b is gone
	var first time.Duration
	tap(p.aOut, func(seg *Segment) {
		// A zero-window probe: no payload, one below SND.UNA.
		if first == 0 && len(seg.Payload) == 0 && seg.Flags == FlagACK && seg.Seq == p.a.sndUna.Add(-1) {
			first = p.now
		}
	})
	for i := 0; i < 100000 && p.a.State() != Closed; i++ {
		p.now = p.a.NextTimer()
		p.a.Tick(p.now)
		p.aOut.queue = nil
	}
	if !errors.Is(p.a.Err(), syscall.ETIMEDOUT) || first == 0 {
		t.Fatalf("error %v, first probe at %v: want probes, then ETIMEDOUT", p.a.Err(), first)
	}
	span := classicSpan(5, DefaultConfig().MaxRTO)
	if held := p.now - first; held < span || held > 3*span {
		t.Fatalf("gave up %v after the first unanswered probe; want at least %v (and not three times that)", held, span)
	} else {
		t.Logf("gave up %v after the first unanswered probe (span %v)", held, span)
	}
}
