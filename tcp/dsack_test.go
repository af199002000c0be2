package tcp

import (
	"testing"
	"time"
)

// TestIsDSACK: RFC 2883 §4's two shapes of a D-SACK, with worked numbers.
// The first block reports bytes received twice: it lies below the
// cumulative ACK, or inside the second block; anything else is an
// ordinary SACK.
func TestIsDSACK(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ack    Seq
		blocks []SACKBlock
		want   bool
	}{
		{"no SACK", 5000, nil, false},
		{"below the ACK (§4.1.1: a retransmission arrived after the original)", 5000, []SACKBlock{{3000, 4000}}, true},
		{"ending at the ACK", 5000, []SACKBlock{{4000, 5000}}, true},
		{"inside the second block (§4.1.2: a duplicate beyond a hole)", 5000, []SACKBlock{{6000, 7000}, {6000, 8000}}, true},
		{"an ordinary first block", 5000, []SACKBlock{{6000, 7000}, {8000, 9000}}, false},
		{"overlapping the second but not inside it", 5000, []SACKBlock{{6000, 9000}, {7000, 8000}}, false},
		{"across the sequence space's wrap", 100, []SACKBlock{{0xffffff00, 50}}, true},
	} {
		seg := Segment{Ack: tc.ack, Flags: FlagACK}
		seg.Options.NumSACK = copy(seg.Options.SACK[:], tc.blocks)
		if got := isDSACK(&seg); got != tc.want {
			t.Errorf("%s: isDSACK = %v, want %v", tc.name, got, tc.want)
		}
	}
}

// TestSpuriousTimeoutDrawsDSACK: the peer's ACK of a segment is held up
// past the RTO, so the sender resends a segment the peer already has. The
// peer answers the duplicate with a D-SACK (RFC 2883 §4.1.1), and the
// sender counts it: the evidence that the timeout was spurious, which a
// too-short minimum RTO would show as D-SACKs per retransmission.
func TestSpuriousTimeoutDrawsDSACK(t *testing.T) {
	p, _ := slowPair(t, Config{DelayedAck: -1, MinRTO: classicMinRTO})
	mss := p.a.segMSS()
	p.a.Write(pattern(mss), p.now)
	orig := p.take(p.aOut)
	p.now += 50 * time.Millisecond
	p.b.Handle(&orig, p.now)
	held := p.take(p.bOut) // the ACK, held up in the network

	p.now = p.a.timers.at(tRetransmit)
	p.a.Tick(p.now)
	if p.a.Timeouts != 1 || len(p.aOut.queue) != 1 {
		t.Fatalf("at the RTO: %d timeouts, %d segments queued; want the segment resent\n%s", p.a.Timeouts, len(p.aOut.queue), p.dump())
	}
	again := p.take(p.aOut)
	if again.Seq != orig.Seq {
		t.Fatalf("resent %v, want the original %v", again.String(), orig.String())
	}
	p.now += 50 * time.Millisecond
	p.b.Handle(&again, p.now)
	dup := p.take(p.bOut)
	if dup.Options.NumSACK == 0 || dup.Options.SACK[0] != (SACKBlock{orig.Seq, orig.Seq.Add(mss)}) {
		t.Fatalf("the peer answered the duplicate with %v, want a D-SACK of %d:%d", dup.String(), orig.Seq, orig.Seq.Add(mss))
	}
	p.now += 50 * time.Millisecond
	p.a.Handle(&held, p.now)
	if p.a.DSACKs != 0 {
		t.Fatalf("an ordinary ACK counted as a D-SACK")
	}
	p.a.Handle(&dup, p.now)
	if p.a.DSACKs != 1 || p.a.Info().DSACKs != 1 {
		t.Fatalf("DSACKs %d (Info %d), want 1", p.a.DSACKs, p.a.Info().DSACKs)
	}
}
