package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestOrphanBounded: a connection the application has closed (an orphan)
// must not be held for ever by a peer that keeps it from finishing.
func TestOrphanBounded(t *testing.T) {
	t.Run("a zero window whose probes are all answered ends an orphan in FIN-WAIT-1", func(t *testing.T) {
		p := newPair(t, Config{MinRTO: classicMinRTO})
		fillWindow(t, p, 300<<10) // b never reads: its window stays shut
		closedAt := p.now
		p.a.Close(p.now)
		p.wantState(p.a, FinWait1)
		answers, rsts := 0, 0
		var rstAt time.Duration
		tap(p.bOut, func(seg *Segment) {
			if !seg.Flags.Has(FlagRST) {
				answers++
			}
		})
		tap(p.aOut, func(seg *Segment) {
			if seg.Flags.Has(FlagRST) {
				rsts++
				rstAt = p.now
			}
		})
		for i := 0; i < 24*60 && p.a.State() != Closed; i++ {
			p.advance(time.Minute)
		}
		p.wantState(p.a, Closed)
		if !errors.Is(p.a.Err(), syscall.ETIMEDOUT) {
			t.Errorf("orphan ended with %v, want ETIMEDOUT", p.a.Err())
		}
		if rsts != 1 {
			t.Errorf("%d resets sent, want 1 (the peer must learn the connection is gone)", rsts)
		}
		if answers == 0 {
			t.Fatalf("the peer never answered a probe: this is not the case under test")
		}
		// The bound: OrphanRetries probes, backing off from the RTO.
		var bound time.Duration
		rto := p.a.rto.Timeout()
		for i := 0; i <= DefaultConfig().OrphanRetries; i++ {
			bound += min(rto<<i, DefaultConfig().MaxRTO)
		}
		// The harness steps time from timer to timer, so rstAt is exact.
		if held := rstAt - closedAt; held > bound || held > 2*time.Minute {
			t.Fatalf("orphan held %v after close, want at most %v (and under two minutes)", held, bound)
		} else {
			t.Logf("zero-window orphan held %v after the application's close (bound %v, RTO %v)", held, bound, rto)
		}
		p.run()
		p.wantState(p.b, Closed)
	})

	t.Run("a peer that never ACKs the FIN ends an orphan in LAST-ACK after OrphanRetries", func(t *testing.T) {
		p := newPair(t, Config{MinRTO: classicMinRTO})
		p.a.CloseWrite(p.now)
		p.run()
		p.wantState(p.b, CloseWait)
		p.aOut.drop = func(*Segment) bool { return true } // a has vanished
		p.b.Close(p.now)
		p.wantState(p.b, LastAck)
		for i := 0; i < 24*60 && p.b.State() != Closed; i++ {
			p.advance(time.Minute)
		}
		p.wantState(p.b, Closed)
		if want := DefaultConfig().OrphanRetries; p.b.Timeouts != uint64(want) {
			t.Fatalf("ended after %d retransmission timeouts, want OrphanRetries = %d", p.b.Timeouts, want)
		}
		if !errors.Is(p.b.Err(), syscall.ETIMEDOUT) {
			t.Fatalf("orphan ended with %v, want ETIMEDOUT", p.b.Err())
		}
	})

	t.Run("a simultaneous close whose last ACK never comes ends an orphan in CLOSING", func(t *testing.T) {
		p := newPair(t, Config{MinRTO: classicMinRTO})
		p.a.Close(p.now)
		p.b.Close(p.now)                                  // the FINs cross
		p.bOut.drop = func(*Segment) bool { return true } // b's FIN is queued already; nothing after it arrives
		p.run()
		p.wantState(p.a, Closing)
		for i := 0; i < 24*60 && p.a.State() != Closed; i++ {
			p.advance(time.Minute)
		}
		p.wantState(p.a, Closed)
		if want := DefaultConfig().OrphanRetries; p.a.Timeouts != uint64(want) {
			t.Fatalf("ended after %d retransmission timeouts, want OrphanRetries = %d", p.a.Timeouts, want)
		}
	})

	t.Run("a connection the application still holds is not an orphan", func(t *testing.T) {
		p := newPair(t, Config{MinRTO: classicMinRTO})
		fillWindow(t, p, 300<<10)
		p.a.CloseWrite(p.now) // half-closed, not released: it may still read
		p.advance(30 * time.Minute)
		p.wantState(p.a, FinWait1)
	})

	t.Run("progress restarts the count", func(t *testing.T) {
		p := newPair(t, Config{MinRTO: classicMinRTO})
		data, _ := fillWindow(t, p, 300<<10)
		p.a.Close(p.now)
		var got []byte
		// The reader takes a little every so often, always before the
		// orphan's probes run out: the orphan makes progress and lives.
		for i := 0; i < 200 && len(got) < len(data); i++ {
			p.advance(20 * time.Second)
			got = readUpTo(t, p.b, p.now, got, 4096)
			p.run()
		}
		if len(got) != len(data) {
			t.Fatalf("read %d of %d bytes before the orphan was ended (state %v, err %v)", len(got), len(data), p.a.State(), p.a.Err())
		}
	})
}
