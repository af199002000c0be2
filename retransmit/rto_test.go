package retransmit

import (
	"testing"
	"time"
)

func TestRTOWorkedValues(t *testing.T) {
	r := NewRTO(time.Second, 200*time.Millisecond, 60*time.Second)
	if got := r.Timeout(); got != time.Second {
		t.Fatalf("initial RTO %v, want 1s (RFC 6298 §2.1)", got)
	}
	// RFC 6298 §2.2: first sample R=100ms: SRTT=100ms, RTTVAR=50ms,
	// RTO = 100 + 4*50 = 300ms.
	r.Sample(100 * time.Millisecond)
	if r.SRTT() != 100*time.Millisecond || r.RTTVar() != 50*time.Millisecond || r.Timeout() != 300*time.Millisecond {
		t.Fatalf("after first sample: srtt %v rttvar %v rto %v", r.SRTT(), r.RTTVar(), r.Timeout())
	}
	// §2.3: R'=200ms: RTTVAR = 3/4*50 + 1/4*|100-200| = 62.5ms;
	// SRTT = 7/8*100 + 1/8*200 = 112.5ms; RTO = 112.5 + 250 = 362.5ms.
	r.Sample(200 * time.Millisecond)
	if r.SRTT() != 112500*time.Microsecond || r.RTTVar() != 62500*time.Microsecond || r.Timeout() != 362500*time.Microsecond {
		t.Fatalf("after second sample: srtt %v rttvar %v rto %v", r.SRTT(), r.RTTVar(), r.Timeout())
	}
	// Tiny RTTs are clamped to the minimum (§2.4).
	for i := 0; i < 50; i++ {
		r.Sample(50 * time.Microsecond)
	}
	if r.Timeout() != 200*time.Millisecond {
		t.Fatalf("rto %v, want the 200ms minimum", r.Timeout())
	}
}

func TestRTOBackoff(t *testing.T) {
	r := NewRTO(time.Second, 200*time.Millisecond, 60*time.Second)
	want := []time.Duration{1, 2, 4, 8, 16, 32, 60, 60}
	for i, w := range want {
		if got := r.Timeout(); got != w*time.Second {
			t.Fatalf("after %d backoffs: %v, want %v", i, got, w*time.Second)
		}
		r.Backoff()
	}
	r.ResetBackoff()
	if r.Timeout() != time.Second {
		t.Fatalf("after reset: %v", r.Timeout())
	}
}

func TestNewRenoPhases(t *testing.T) {
	const mss = 1000
	c := NewNewReno(mss)
	if c.Window() != 10*mss {
		t.Fatalf("IW %d, want %d (RFC 6928)", c.Window(), 10*mss)
	}
	// Slow start: +1 MSS per full ACK.
	c.OnAck(Ack{Acked: mss, Flight: 10 * mss, CwndLimited: true})
	if c.Window() != 11*mss {
		t.Fatalf("slow start: %d", c.Window())
	}
	c.OnFastRetransmit(20*mss, 0)
	if c.SSThresh() != 10*mss || c.Window() != 13*mss {
		t.Fatalf("fast retransmit: ssthresh %d cwnd %d", c.SSThresh(), c.Window())
	}
	c.OnDupAck()
	if c.Window() != 14*mss {
		t.Fatalf("inflation: %d", c.Window())
	}
	c.OnRecoveryEnd(0)
	if c.Window() != 10*mss {
		t.Fatalf("deflation: %d", c.Window())
	}
	// Congestion avoidance: one MSS per window's worth of ACKed bytes.
	for i := 0; i < 10; i++ {
		c.OnAck(Ack{Acked: mss, Flight: 10 * mss, CwndLimited: true})
	}
	if c.Window() != 11*mss {
		t.Fatalf("congestion avoidance: %d", c.Window())
	}
	c.OnTimeout(8*mss, 0)
	if c.Window() != mss || c.SSThresh() != 4*mss {
		t.Fatalf("timeout: cwnd %d ssthresh %d", c.Window(), c.SSThresh())
	}
}
