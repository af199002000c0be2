package tcp

import "testing"

// TestPSHOnLastSegmentSentInRecovery: new data sent during SACK recovery
// (RFC 6675 §5 NextSeg rule 2) that empties the send buffer carries PSH,
// as the last buffered segment always must: RFC 1122 §4.2.2.2 and RFC
// 9293 §3.9.1.2 (an API without PUSH on SEND sets PSH on the last
// buffered segment). The normal output path did; recovery's new data did
// not.
func TestPSHOnLastSegmentSentInRecovery(t *testing.T) {
	p, exchange := slowPair(t, Config{DelayedAck: -1, MinRTO: classicMinRTO})
	mss := p.a.segMSS()
	// A loss in a window of five halves cwnd.
	p.a.Write(pattern(5*mss), p.now)
	exchange(0) // the first lost; the SACKs of the rest start recovery
	exchange(-1)
	if p.a.Recoveries != 1 || p.a.sndUna != p.a.sndMax {
		t.Fatalf("recoveries %d, %d bytes outstanding\n%s", p.a.Recoveries, p.a.sndMax.Sub(p.a.sndUna), p.dump())
	}

	// Three segments to send, two fit the window: the first is lost,
	// the second SACKed; once the hole counts as lost, recovery resends
	// it, and the third, the last of the buffer, follows as PRR allows
	// (with the retransmission, or once it is acknowledged).
	p.a.Write(pattern(3*mss), p.now)
	if n := len(p.aOut.queue); n != 2 {
		t.Fatalf("%d segments sent at once, want 2 of 3 (cwnd halved)\n%s", n, p.dump())
	}
	last := p.a.sndMax // where the third segment starts
	exchange(0)
	found := false
	for round := 0; round < 5 && !found; round++ {
		for i := 0; i < 10 && len(p.aOut.queue) == 0; i++ {
			p.now = max(p.now, p.a.NextTimer())
			p.a.Tick(p.now)
		}
		for _, b := range p.aOut.queue {
			var seg Segment
			if err := Parse(b, &seg); err != nil {
				t.Fatal(err)
			}
			if seg.Seq == last {
				found = true
				if !seg.Flags.Has(FlagPSH) {
					t.Errorf("the last buffered segment went without PSH: %s\n%s", seg.String(), p.dump())
				}
			}
		}
		exchange(-1)
	}
	if !found {
		t.Fatalf("the third segment was never sent\n%s", p.dump())
	}
	if p.a.Timeouts != 0 {
		t.Errorf("recovery needed a timeout\n%s", p.dump())
	}
}
