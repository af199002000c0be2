package tcp

import (
	"bytes"
	"testing"
	"time"
)

// TestTimestampsNegotiatedEchoedAndPAWS: both SYNs carry the RFC 7323
// option, every later segment carries it, TSecr echoes the peer's
// TS.Recent, and a segment with an older timestamp is dropped (PAWS).
func TestTimestampsNegotiatedEchoedAndPAWS(t *testing.T) {
	p := newPair(t, Config{})
	if !p.a.tsOK || !p.b.tsOK || !p.a.sackOK || !p.b.sackOK {
		t.Fatalf("negotiated ts %v/%v sack %v/%v", p.a.tsOK, p.b.tsOK, p.a.sackOK, p.b.sackOK)
	}
	var segs []Segment
	tap(p.bOut, func(seg *Segment) { segs = append(segs, *seg) })
	p.advance(50 * time.Millisecond)
	if got := p.transfer(p.a, p.b, pattern(10000)); len(got) != 10000 {
		t.Fatal("transfer failed")
	}
	if len(segs) == 0 {
		t.Fatal("b sent nothing")
	}
	for _, s := range segs {
		if !s.Options.HasTS {
			t.Fatalf("b's segment without a timestamp: %s", s.String())
		}
	}
	last := segs[len(segs)-1]
	if last.Options.TSEcr != p.b.tsRecent || p.b.tsRecent == 0 {
		t.Errorf("TSecr %d, TS.Recent %d", last.Options.TSEcr, p.b.tsRecent)
	}
	// Segments now carry 12 option bytes: payloads shrink to keep the
	// segment within the MSS (RFC 6691).
	if p.a.segMSS() != p.a.sndMSS-12 {
		t.Errorf("segMSS %d with sndMSS %d", p.a.segMSS(), p.a.sndMSS)
	}
	// PAWS: an old duplicate (older TSval) with new-looking data is dropped.
	p.bOut.drop = nil
	rcvNxt := p.b.rcvNxt
	old := Segment{SrcPort: 40000, DstPort: 80, Seq: rcvNxt, Ack: p.b.sndNxt, Flags: FlagACK,
		Window: 100, Payload: []byte("stale")}
	old.Options.HasTS, old.Options.TSVal = true, p.b.tsRecent-1000
	p.b.Handle(&old, p.now)
	if p.b.rcvNxt != rcvNxt {
		t.Errorf("PAWS let an old segment's data in: RCV.NXT %d → %d", uint32(rcvNxt), uint32(p.b.rcvNxt))
	}
	if len(p.bOut.queue) != 1 {
		t.Errorf("PAWS drop answered with %d segments, want one ACK", len(p.bOut.queue))
	}
}

// TestNoTimestampsNoSACKWhenOneSideDeclines: an option is used only when
// both SYNs carry it.
func TestNoTimestampsNoSACKWhenOneSideDeclines(t *testing.T) {
	p := &pair{t: t}
	p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
	p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
	p.a = NewActive(Config{NoTimestamps: true}, p.aOut, 40000, 80, 1000, 0)
	syn := p.take(p.aOut)
	if syn.Options.HasTS || !syn.Options.SACKPermitted {
		t.Fatalf("SYN options %s", syn.String())
	}
	p.b = NewPassive(Config{NoSACK: true}, p.bOut, &syn, 5000, 0)
	synack := p.take(p.bOut)
	if synack.Options.HasTS || synack.Options.SACKPermitted {
		t.Fatalf("SYN+ACK offers what was not asked / turned off: %s", synack.String())
	}
	p.a.Handle(&synack, 0)
	p.run()
	if p.a.tsOK || p.b.tsOK || p.a.sackOK || p.b.sackOK {
		t.Errorf("negotiated ts %v/%v sack %v/%v, want none", p.a.tsOK, p.b.tsOK, p.a.sackOK, p.b.sackOK)
	}
}

// lossPair transfers data from a to b while drop decides which of a's
// data segments are lost (each at most once), and returns what b read
// and the retransmitted segments' sequence numbers.
func lossRun(t *testing.T, cfg Config, n int, lose func(i int) bool) (p *pair, got []byte, rtx []Seq) {
	p = newWarmPair(t, cfg)
	seen := map[Seq]bool{}
	i := 0
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload) == 0 {
			return false
		}
		if seen[seg.Seq] {
			rtx = append(rtx, seg.Seq)
			return false
		}
		seen[seg.Seq] = true
		i++
		return lose(i - 1)
	}
	data := pattern(n)
	got = p.transfer(p.a, p.b, data)
	if !bytes.Equal(got, data) {
		t.Fatalf("transfer: got %d bytes, want %d identical", len(got), n)
	}
	return p, got, rtx
}

// TestSACKRecoveryResendsOnlyTheHoles: three separate segments of one
// window are lost; with SACK the sender learns exactly which, resends
// those three and nothing else, without waiting for a timeout.
func TestSACKRecoveryResendsOnlyTheHoles(t *testing.T) {
	lost := map[int]bool{3: true, 7: true, 12: true}
	p, _, rtx := lossRun(t, Config{}, 40*1448, func(i int) bool { return lost[i] })
	if len(rtx) != 3 {
		t.Errorf("%d retransmissions (%v), want exactly the 3 lost segments\n%s", len(rtx), rtx, logTail(p, 40))
	}
	if p.a.rto.Backoffs() != 0 && p.a.Retransmits > 3 {
		t.Errorf("recovery needed a timeout")
	}
	sawSACK := false
	for _, l := range p.log {
		if bytes.Contains([]byte(l), []byte("sack=")) {
			sawSACK = true
		}
	}
	if !sawSACK {
		t.Errorf("no SACK blocks on the wire")
	}
}

// TestFastRetransmitOnThirdDupAck: without SACK, a lost segment is resent
// when the third duplicate ACK arrives, not before (RFC 5681 §3.2).
func TestFastRetransmitOnThirdDupAck(t *testing.T) {
	p := newWarmPair(t, Config{NoSACK: true, NoTimestamps: true, DelayedAck: -1})
	lostSeq := Seq(0)
	dupacks := 0
	var retransmittedAfter int
	first := true
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload) > 0 && first {
			first = false
			lostSeq = seg.Seq
			return true
		}
		if seg.Seq == lostSeq && len(seg.Payload) > 0 && retransmittedAfter == 0 {
			// ACKs b sent that a has already processed.
			retransmittedAfter = dupacks - len(p.bOut.queue)
		}
		return false
	}
	tap(p.bOut, func(seg *Segment) {
		if lostSeq != 0 && seg.Ack == lostSeq && len(seg.Payload) == 0 {
			dupacks++
		}
	})
	p.a.Write(pattern(10*1460), p.now)
	p.run()
	// The lost segment was the first unacknowledged one, so every ACK
	// naming it is a duplicate; the third triggers the resend.
	if retransmittedAfter != 3 {
		t.Errorf("retransmitted after %d duplicate ACKs, want 3", retransmittedAfter)
	}
}

// TestNewRenoPartialAckResendsNextHole: without SACK, two losses in one
// window: fast retransmit fixes the first, and the partial ACK that
// follows makes NewReno resend the second at once (RFC 6582 §3.2 step 3),
// not after a timeout.
func TestNewRenoPartialAckResendsNextHole(t *testing.T) {
	lost := map[int]bool{2: true, 6: true}
	p, _, rtx := lossRun(t, Config{NoSACK: true}, 30*1460, func(i int) bool { return lost[i] })
	if len(rtx) != 2 {
		t.Errorf("%d retransmissions %v, want 2\n%s", len(rtx), rtx, logTail(p, 30))
	}
	if p.a.rto.Backoffs() != 0 {
		t.Errorf("a timeout was needed")
	}
}

// TestKarnRuleSkipsRetransmittedSegments: without timestamps, the RTT of
// a retransmitted segment is ambiguous and is not sampled (RFC 6298 §3).
func TestKarnRuleSkipsRetransmittedSegments(t *testing.T) {
	p := newWarmPair(t, Config{NoTimestamps: true, NoSACK: true})
	srtt := p.a.rto.SRTT()
	dropped := false
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload) > 0 && !dropped {
			dropped = true
			return true
		}
		return false
	}
	p.a.Write([]byte("only segment"), p.now)
	p.advance(5 * time.Second) // RTO fires, the resend is ACKed 0 s later
	if p.a.sndUna != p.a.sndMax {
		t.Fatal("not delivered")
	}
	if got := p.a.rto.SRTT(); got != srtt {
		t.Errorf("SRTT moved from %v to %v on a retransmitted segment's ACK", srtt, got)
	}
}

// TestTailLossProbe: the last two segments of a transfer are lost, so no
// duplicate ACKs can come. The tail loss probe (RFC 8985 §7), two SRTTs
// later, resends the last segment; its SACK exposes the other hole, and
// fast recovery repairs it — no retransmission timeout.
func TestTailLossProbe(t *testing.T) {
	p := newWarmPair(t, Config{})
	// An RTT sample first, so the probe timeout can be computed.
	p.transfer(p.a, p.b, pattern(3000))
	n := 10 * p.a.segMSS()
	data := pattern(n)
	var sent []Seq
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload) == 0 {
			return false
		}
		for _, s := range sent {
			if s == seg.Seq {
				return false // a retransmission: let it through
			}
		}
		sent = append(sent, seg.Seq)
		return len(sent) >= 9 // the last two original segments are lost
	}
	got := p.transfer(p.a, p.b, data)
	if !bytes.Equal(got, data) {
		t.Fatal("data differs")
	}
	if p.a.Probes == 0 || p.a.Timeouts != 0 {
		t.Errorf("probes %d, timeouts %d: want the tail repaired by a probe, not a timeout\n%s", p.a.Probes, p.a.Timeouts, logTail(p, 40))
	}
}

// TestLostRetransmissionResentWithoutTimeout: a hole's retransmission is
// lost too; once data sent after it is SACKed the sender resends the hole
// again in the same recovery instead of waiting for the RTO.
func TestLostRetransmissionResentWithoutTimeout(t *testing.T) {
	p, copies, victim := lostRetransmissionRun(t, Config{})
	if copies[victim] != 3 || p.a.Timeouts != 0 {
		t.Errorf("the victim was sent %d times with %d timeouts: want 3 sends, no timeout\n%s", copies[victim], p.a.Timeouts, logTail(p, 30))
	}
}

// lostRetransmissionRun transfers 60 segments from a to b on a pair with
// cfg, losing the 5th segment and its first retransmission, and returns
// the pair, how often each sequence number was sent, and the victim's.
func lostRetransmissionRun(t *testing.T, cfg Config) (p *pair, copies map[Seq]int, victim Seq) {
	t.Helper()
	p = newWarmPair(t, cfg)
	p.transfer(p.a, p.b, pattern(3000))
	copies = map[Seq]int{}
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload) == 0 {
			return false
		}
		copies[seg.Seq]++
		if victim == 0 && copies[seg.Seq] == 1 && len(copies) == 5 {
			victim = seg.Seq
		}
		// The 5th segment is lost, and so is its first retransmission.
		return seg.Seq == victim && copies[seg.Seq] <= 2
	}
	data := pattern(60 * p.a.segMSS())
	if got := p.transfer(p.a, p.b, data); !bytes.Equal(got, data) {
		t.Fatalf("%s: got %d of %d bytes; timeouts %d, state %v, lost %d, sacked %d, una %d max %d\n%s",
			cfg.LossDetection, len(got), len(data), p.a.Timeouts, p.a.loss, p.a.flight.Lost(), p.a.flight.SACKed(),
			p.a.sndUna, p.a.sndMax, logTail(p, 20))
	}
	return p, copies, victim
}
