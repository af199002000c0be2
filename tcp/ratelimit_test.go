package tcp

import (
	"testing"
	"time"
)

// TestInvalidAckRateLimit: ACKs answering unacceptable segments go at
// most once per InvalidAckInterval; keepalive and window probes are
// answered every time (within the per-second challenge allowance).
func TestInvalidAckRateLimit(t *testing.T) {
	p := newPair(t, Config{})
	b := p.b
	acks := 0
	tap(p.bOut, func(seg *Segment) {
		if seg.Flags == FlagACK {
			acks++
		}
	})
	in := func(seq Seq, payload int) {
		seg := Segment{SrcPort: b.RemotePort, DstPort: b.LocalPort, Seq: seq, Ack: b.sndNxt,
			Flags: FlagACK, Window: 1000, Payload: make([]byte, payload)}
		b.Handle(&seg, p.now)
		p.bOut.queue = nil
	}
	far := b.rcvNxt.Add(1 << 30)
	for i := 0; i < 100; i++ {
		in(far, 10)
	}
	if acks != 1 || b.AcksLimited != 99 {
		t.Fatalf("100 out-of-window segments at one instant: %d ACKs, %d limited; want 1 and 99", acks, b.AcksLimited)
	}
	p.now += DefaultConfig().InvalidAckInterval - time.Millisecond
	in(far, 10)
	if acks != 1 {
		t.Fatalf("an ACK %v after the last one: want none until the interval has passed", DefaultConfig().InvalidAckInterval-time.Millisecond)
	}
	p.now += time.Millisecond
	in(far, 10)
	if acks != 2 {
		t.Fatalf("no ACK once the interval had passed")
	}

	acks = 0
	for i := 0; i < 5; i++ {
		p.now += 100 * time.Millisecond
		in(b.rcvNxt.Add(-1), 0) // a keepalive or zero-window probe
	}
	if acks != 5 {
		t.Fatalf("5 probes 100 ms apart drew %d ACKs, want 5", acks)
	}
	acks = 0
	p.now += time.Second // a fresh second of allowance
	for i := 0; i < 5000; i++ {
		in(b.rcvNxt.Add(-1), 0) // a flood of probe-shaped segments
	}
	if lim := DefaultConfig().ChallengeACKLimit; acks != lim {
		t.Fatalf("5000 probes in one instant drew %d ACKs, want the per-second allowance %d", acks, lim)
	}
}
