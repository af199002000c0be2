package tcp

import (
	"testing"
	"time"
)

// TestBackoffKeptUntilValidSample: after a retransmission timeout the
// backed-off RTO stays until an ACK yields a valid RTT sample (Karn's
// algorithm, RFC 6298 §3, and the note after §5.7: the computation that
// may "collapse" RTO back down runs "once a new RTT measurement is
// obtained"). Without timestamps the ACK of a retransmitted segment is no
// measurement, so the next segment is timed with the doubled RTO. Were
// the backoff dropped on that ACK, a path whose RTT grew past the RTO
// would time out every segment and never yield a sample again.
func TestBackoffKeptUntilValidSample(t *testing.T) {
	p := newWarmPair(t, Config{NoTimestamps: true, NoSACK: true, DelayedAck: -1, MinRTO: classicMinRTO})
	base := p.a.rto.Timeout()
	lose := 0
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload) > 0 && lose > 0 {
			lose--
			return true
		}
		return false
	}

	lose = 1
	p.a.Write([]byte("first"), p.now)
	if got := p.a.timers.at(tRetransmit) - p.now; got != base {
		t.Fatalf("first segment timed with %v, want the base RTO %v", got, base)
	}
	p.advance(base) // the RTO fires; the resend is ACKed (no sample: Karn)
	if p.a.Timeouts != 1 || p.a.sndUna != p.a.sndMax {
		t.Fatalf("timeouts %d, %d bytes unacknowledged\n%s", p.a.Timeouts, p.a.sndMax.Sub(p.a.sndUna), p.dump())
	}

	lose = 1
	p.a.Write([]byte("second"), p.now)
	if got := p.a.timers.at(tRetransmit) - p.now; got != 2*base {
		t.Errorf("after a timeout and an ambiguous ACK the next segment is timed with %v, want the backed-off %v\n%s", got, 2*base, p.dump())
	}
	p.advance(2 * base) // resent, ACKed: still no sample
	if p.a.sndUna != p.a.sndMax {
		t.Fatalf("second segment not delivered\n%s", p.dump())
	}

	// A segment sent once and ACKed is a valid measurement: the backoff
	// goes.
	p.a.Write([]byte("third"), p.now)
	p.run()
	if p.a.sndUna != p.a.sndMax || p.a.rto.Backoffs() != 0 {
		t.Errorf("after a valid sample: %d backoffs, want 0", p.a.rto.Backoffs())
	}
}

// TestSynTimeoutRTOFallback: RFC 6298 §5.7, a MUST: when the timer
// expired awaiting the ACK of a SYN and the RTO in use is under 3 s, the
// RTO is re-initialized to 3 s when data transmission begins. Both ends:
// the active opener whose SYN was lost, the passive one whose SYN+ACK was.
func TestSynTimeoutRTOFallback(t *testing.T) {
	t.Run("SYN lost", func(t *testing.T) {
		p := &pair{t: t}
		p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
		p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
		p.a = NewActive(Config{NoTimestamps: true}, p.aOut, 40000, 80, 1000, p.now)
		p.take(p.aOut) // lost
		p.now = time.Second
		p.a.Tick(p.now) // the SYN again
		syn := p.take(p.aOut)
		p.b = NewPassive(Config{NoTimestamps: true}, p.bOut, &syn, 5000, p.now)
		p.run()
		p.wantState(p.a, Established)
		p.a.Write([]byte("data"), p.now)
		if got := p.a.timers.at(tRetransmit) - p.now; got != 3*time.Second {
			t.Errorf("first data after a SYN timeout is timed with %v, want 3s", got)
		}
	})
	t.Run("SYN+ACK lost", func(t *testing.T) {
		p := &pair{t: t}
		p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
		p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
		p.a = NewActive(Config{NoTimestamps: true}, p.aOut, 40000, 80, 1000, p.now)
		syn := p.take(p.aOut)
		p.b = NewPassive(Config{NoTimestamps: true}, p.bOut, &syn, 5000, p.now)
		p.take(p.bOut) // lost
		p.now = time.Second
		p.b.Tick(p.now) // the SYN+ACK again
		p.run()
		p.wantState(p.b, Established)
		p.b.Write([]byte("data"), p.now)
		if got := p.b.timers.at(tRetransmit) - p.now; got != 3*time.Second {
			t.Errorf("first data after a SYN+ACK timeout is timed with %v, want 3s", got)
		}
	})
}
