package tcp

import "testing"

// TestFirstSACKIsNotALossWhateverTheISN: one segment SACKed above a hole
// is not yet a loss (RFC 6675 §4 IsLost wants DupThresh segments' worth;
// RFC 8985 waits a reordering window), so the first duplicate ACK must not
// retransmit, whatever the initial sequence number. The mark below which
// holes count as lost started at sequence number 0, so for an ISN in the
// upper half of the sequence space (half of all connections) SND.UNA lay
// "below" it and every hole was lost at the first SACK: a spurious fast
// retransmit on any reordering.
func TestFirstSACKIsNotALossWhateverTheISN(t *testing.T) {
	for _, iss := range []Seq{1000, 0x90000000} {
		p := &pair{t: t}
		p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
		p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
		p.a = NewActive(Config{}, p.aOut, 40000, 80, iss, p.now)
		syn := p.take(p.aOut)
		p.b = NewPassive(Config{}, p.bOut, &syn, 5000, p.now)
		p.run()
		p.wantState(p.a, Established)

		first := true
		p.aOut.drop = func(seg *Segment) bool {
			lost := first && len(seg.Payload) > 0
			if lost {
				first = false
			}
			return lost
		}
		p.a.Write(pattern(5*p.a.segMSS()), p.now)
		// The second segment arrives; the receiver's duplicate ACK with
		// its SACK block reaches the sender.
		second := p.take(p.aOut)
		p.b.Handle(&second, p.now)
		dup := p.take(p.bOut)
		if dup.Options.NumSACK == 0 {
			t.Fatalf("ISN %#x: the receiver's ACK has no SACK block: %s", uint32(iss), dup.String())
		}
		p.a.Handle(&dup, p.now)
		if p.a.Retransmits != 0 || p.a.Recoveries != 0 {
			t.Errorf("ISN %#x: one SACKed segment made the sender retransmit (%d retransmissions, %d recoveries)\n%s",
				uint32(iss), p.a.Retransmits, p.a.Recoveries, p.dump())
		}
	}
}
