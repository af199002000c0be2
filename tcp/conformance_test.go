package tcp

import (
	"testing"
	"time"
)

// The rules below were found wanting by the FreeBSD TCP test suite run
// through tund drill (docs/conformance.md); each has its own test here.

// sackReceiver is a receiver b with SACK, and a way to hand it data segments at
// offsets from its RCV.NXT after the handshake.
func sackReceiver(t *testing.T) (p *pair, in func(off, n int) []Segment) {
	p = newPair(t, Config{})
	b := p.b
	base := b.rcvNxt
	return p, func(off, n int) []Segment {
		seg := Segment{SrcPort: b.RemotePort, DstPort: b.LocalPort, Seq: base.Add(off), Ack: b.sndNxt,
			Flags: FlagACK, Window: 1000, Payload: pattern(n)}
		var out []Segment
		tap(p.bOut, func(s *Segment) { out = append(out, *s) })
		b.Handle(&seg, p.now)
		p.bOut.drop, p.bOut.queue = nil, nil
		return out
	}
}

func blocks(t *testing.T, p *pair, seg Segment) [][2]int {
	t.Helper()
	var out [][2]int
	for i := 0; i < seg.Options.NumSACK; i++ {
		b := seg.Options.SACK[i]
		out = append(out, [2]int{b.Start.Sub(p.b.irs + 1), b.End.Sub(p.b.irs + 1)})
	}
	return out
}

// TestSACKBlocksMostRecentFirst: RFC 2018 §4: the first block holds the
// segment that triggered the ACK, and the rest repeat the most recently
// reported blocks, newest first.
func TestSACKBlocksMostRecentFirst(t *testing.T) {
	p, in := sackReceiver(t)
	in(0, 100)
	in(200, 100)
	in(400, 100)
	acks := in(600, 100)
	if len(acks) != 1 {
		t.Fatalf("%d ACKs for an out-of-order segment, want 1", len(acks))
	}
	got := blocks(t, p, acks[0])
	want := [][2]int{{600, 700}, {400, 500}, {200, 300}}
	if len(got) != len(want) {
		t.Fatalf("SACK blocks %v, want %v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("SACK blocks %v, want %v (newest first)", got, want)
		}
	}
}

// TestDSACK: a duplicate is reported once, as the first SACK block (RFC
// 2883): data wholly below RCV.NXT, the part of a segment below it, and a
// segment inside a block already held (followed by that block); the ACK
// goes at once.
func TestDSACK(t *testing.T) {
	t.Run("below RCV.NXT", func(t *testing.T) {
		p, in := sackReceiver(t)
		in(0, 100)
		p.advance(time.Second) // the delayed ACK goes
		acks := in(0, 100)
		if len(acks) != 1 {
			t.Fatalf("%d ACKs for a duplicate, want 1 at once", len(acks))
		}
		if got := blocks(t, p, acks[0]); len(got) != 1 || got[0] != [2]int{0, 100} {
			t.Fatalf("SACK blocks %v, want the D-SACK 0:100", got)
		}
		acks = in(100, 10) // new data: no D-SACK any more
		if n := len(acks); n == 1 && acks[0].Options.NumSACK != 0 {
			t.Fatalf("the D-SACK was repeated: %v", blocks(t, p, acks[0]))
		}
	})
	t.Run("partly below RCV.NXT", func(t *testing.T) {
		p, in := sackReceiver(t)
		in(0, 100)
		acks := in(50, 100)
		if len(acks) != 1 {
			t.Fatalf("%d ACKs for a partial duplicate, want 1 at once", len(acks))
		}
		if got := blocks(t, p, acks[0]); len(got) != 1 || got[0] != [2]int{50, 100} {
			t.Fatalf("SACK blocks %v, want the D-SACK 50:100", got)
		}
	})
	t.Run("inside a block held out of order", func(t *testing.T) {
		p, in := sackReceiver(t)
		in(0, 100)
		in(600, 100)
		acks := in(650, 50)
		if len(acks) != 1 {
			t.Fatalf("%d ACKs, want 1", len(acks))
		}
		got := blocks(t, p, acks[0])
		if len(got) < 2 || got[0] != [2]int{650, 700} || got[1] != [2]int{600, 700} {
			t.Fatalf("SACK blocks %v, want 650:700 (D-SACK) then 600:700", got)
		}
	})
}

// TestFillingTheGapACKsAtOnce: data at RCV.NXT while out-of-order data
// waits fills (part of) the gap and is ACKed at once (RFC 5681 §4.2),
// even when it overlaps what is held rather than ending where it starts.
func TestFillingTheGapACKsAtOnce(t *testing.T) {
	p, in := sackReceiver(t)
	in(0, 100)
	in(200, 100)
	if acks := in(100, 150); len(acks) != 1 || acks[0].Ack != p.b.irs+1+300 {
		t.Fatalf("a segment overlapping the held block: %d ACKs (%v), want one at once for 300", len(acks), acks)
	}
}

// TestRSTAtTheRightEdgeIsOutsideTheWindow: RFC 5961 §3.2 takes an RST
// only inside the window; one at RCV.NXT+RCV.WND is dropped silently
// (bare ACKs at the edge are still accepted).
func TestRSTAtTheRightEdgeIsOutsideTheWindow(t *testing.T) {
	p := newPair(t, Config{})
	b := p.b
	edge := b.rcvNxt.Add(b.rcvAdvEdge.Sub(b.rcvNxt))
	var sent int
	tap(p.bOut, func(*Segment) { sent++ })
	rst := Segment{SrcPort: b.RemotePort, DstPort: b.LocalPort, Seq: edge, Flags: FlagRST}
	b.Handle(&rst, p.now)
	if sent != 0 || b.State() != Established {
		t.Fatalf("an RST at the right edge drew %d segments, state %v; want none, ESTABLISHED", sent, b.State())
	}
	rst.Seq = edge.Add(-1)
	b.Handle(&rst, p.now)
	if sent != 1 {
		t.Fatalf("an RST just inside the window drew %d segments, want a challenge ACK", sent)
	}
}

// TestTwoSmallSegmentsACKedAtOnce: an ACK goes for at least every second
// segment, whatever its size (BSD, and Linux by its measured MSS).
func TestTwoSmallSegmentsACKedAtOnce(t *testing.T) {
	_, in := sackReceiver(t)
	if acks := in(0, 10); len(acks) != 0 {
		t.Fatalf("one small segment ACKed at once")
	}
	if acks := in(10, 10); len(acks) != 1 {
		t.Fatalf("second small segment: %d ACKs, want 1 at once", len(acks))
	}
}

// TestRetransmittedDataAlwaysAnswered: the rate limit on ACKs for
// unacceptable segments leaves retransmissions of data we have alone:
// each gets its ACK (and D-SACK), which is what stops the sender.
func TestRetransmittedDataAlwaysAnswered(t *testing.T) {
	_, in := sackReceiver(t)
	in(0, 100)
	for i := 0; i < 5; i++ {
		if acks := in(0, 100); len(acks) != 1 {
			t.Fatalf("retransmission %d drew %d ACKs, want 1", i, len(acks))
		}
	}
}
