package tcp

import (
	"testing"
	"time"
)

func TestTimeWaitEntry(t *testing.T) {
	p := reach(t, TimeWait, Config{MSL: 10 * time.Second})
	tw, ok := p.a.TimeWaitInfo()
	if !ok {
		t.Fatal("no TIME-WAIT record")
	}
	if tw.RcvNxt != p.b.sndMax || tw.SndNxt != p.a.sndMax || tw.Expires != p.now+20*time.Second {
		t.Fatalf("record %+v; peer sndMax %d, ours %d", tw, uint32(p.b.sndMax), uint32(p.a.sndMax))
	}
	if _, ok := p.b.TimeWaitInfo(); ok {
		t.Error("the passive closer has a TIME-WAIT record")
	}
	msl := 10 * time.Second
	from := func(flags Flags, seq Seq, payload int) *Segment {
		return &Segment{SrcPort: 80, DstPort: 40000, Seq: seq, Ack: tw.SndNxt, Flags: flags, Payload: make([]byte, payload)}
	}
	for _, tc := range []struct {
		name string
		seg  *Segment
		want TimeWaitVerdict
	}{
		{"retransmitted FIN", from(FlagFIN|FlagACK, tw.RcvNxt-1, 0), TWAck},
		{"FIN without ACK (RFC 9293 fifth step)", from(FlagFIN, tw.RcvNxt-1, 0), TWDrop},
		{"data without ACK", from(0, tw.RcvNxt, 10), TWDrop},
		{"RST (RFC 1337)", from(FlagRST, tw.RcvNxt, 0), TWDrop},
		{"RST+ACK (RFC 1337)", from(FlagRST|FlagACK, tw.RcvNxt, 0), TWDrop},
		{"bare ACK at RCV.NXT", from(FlagACK, tw.RcvNxt, 0), TWDrop},
		{"stray data", from(FlagACK, tw.RcvNxt, 100), TWAck},
		{"old duplicate", from(FlagACK, tw.RcvNxt-500, 100), TWAck},
		{"SYN beyond the old sequence space", from(FlagSYN, tw.RcvNxt+100000, 0), TWReopen},
		{"SYN with an old ISN", from(FlagSYN, tw.RcvNxt-1, 0), TWAck},
		{"SYN at RCV.NXT", from(FlagSYN, tw.RcvNxt, 0), TWAck},
	} {
		e := tw
		now := p.now + 5*time.Second
		v, ack := e.Handle(tc.seg, now, msl, 0)
		if v != tc.want {
			t.Errorf("%s: verdict %d, want %d", tc.name, v, tc.want)
		}
		if v == TWAck && (ack.Seq != tw.SndNxt || ack.Ack != tw.RcvNxt || ack.Flags != FlagACK ||
			ack.SrcPort != 40000 || ack.DstPort != 80 || ack.Window != tw.Window) {
			t.Errorf("%s: ACK %s", tc.name, ack.String())
		}
		restarted := e.Expires == now+2*msl
		if restarted != (tc.name == "retransmitted FIN") {
			t.Errorf("%s: expiry %v (restart only on the FIN)", tc.name, e.Expires)
		}
	}
}

// TestTimeWaitReopenISS: a connection reopening a TIME-WAIT tuple starts
// beyond everything the old one sent, even if the ISN clock says less.
func TestTimeWaitReopenISS(t *testing.T) {
	tw := TimeWaitEntry{SndNxt: 0xfffff000}
	if got := tw.ReopenISS(0xfffff100); got != Seq(0xfffff000).Add(1<<16+1) {
		t.Errorf("ReopenISS near the old SND.NXT = %#x", uint32(got))
	}
	if got := tw.ReopenISS(0x40000000); got != 0x40000000 {
		t.Errorf("ReopenISS far ahead = %#x, want the ISN itself", uint32(got))
	}
}

// TestChallengeACKRateLimit: RFC 5961 §7 — at most ChallengeACKLimit
// challenge ACKs a second, then the allowance refills.
func TestChallengeACKRateLimit(t *testing.T) {
	p := reach(t, Established, Config{ChallengeACKLimit: 3})
	rst := Segment{SrcPort: 80, DstPort: 40000, Seq: p.a.rcvNxt + 10, Flags: FlagRST}
	count := func() int {
		n := 0
		for i := 0; i < 10; i++ {
			r := rst
			p.a.Handle(&r, p.now)
		}
		for len(p.aOut.queue) > 0 {
			p.take(p.aOut)
			n++
		}
		return n
	}
	if n := count(); n != 3 {
		t.Errorf("%d challenge ACKs in the first second, want 3", n)
	}
	p.now += 500 * time.Millisecond
	if n := count(); n != 0 {
		t.Errorf("%d more in the same second, want 0", n)
	}
	p.now += 600 * time.Millisecond
	if n := count(); n != 3 {
		t.Errorf("%d after the second ended, want 3", n)
	}
	p.wantState(p.a, Established)
}

// TestTimeWaitReopenedBySafeSyn: the control block itself honours TWReopen
// by closing, so its owner can give the SYN to a listener.
func TestTimeWaitReopenedBySafeSyn(t *testing.T) {
	p := reach(t, TimeWait, Config{})
	old := Segment{SrcPort: 80, DstPort: 40000, Seq: p.a.rcvNxt - 1, Flags: FlagSYN}
	p.a.Handle(&old, p.now)
	p.wantState(p.a, TimeWait)
	syn := Segment{SrcPort: 80, DstPort: 40000, Seq: p.a.rcvNxt + 1<<20, Flags: FlagSYN}
	p.a.Handle(&syn, p.now)
	p.wantState(p.a, Closed)
	if p.a.Err() != nil {
		t.Errorf("reopen left error %v", p.a.Err())
	}
}

// TestTimeWaitAckCarriesTimestamp: a connection that negotiated
// timestamps keeps them in TIME-WAIT (RFC 7323 §3.2: every segment but an
// RST carries one): the re-ACK of a retransmitted FIN has TSval on the
// connection's clock and echoes the FIN's TSval; without timestamps it
// has none.
func TestTimeWaitAckCarriesTimestamp(t *testing.T) {
	p := reach(t, TimeWait, Config{MSL: 10 * time.Second})
	tw, ok := p.a.TimeWaitInfo()
	if !ok || !tw.TS || tw.TSRecent != p.a.tsRecent || tw.TSOffset != p.a.tsOffset {
		t.Fatalf("record %+v: timestamps not kept (connection: on %v, recent %d)", tw, p.a.tsOK, p.a.tsRecent)
	}
	now := p.now + time.Second
	fin := &Segment{SrcPort: 80, DstPort: 40000, Seq: tw.RcvNxt - 1, Ack: tw.SndNxt, Flags: FlagFIN | FlagACK}
	fin.Options.HasTS, fin.Options.TSVal, fin.Options.TSEcr = true, tw.TSRecent+1000, 1
	v, ack := tw.Handle(fin, now, 10*time.Second, 0)
	if v != TWAck || !ack.Options.HasTS || ack.Options.TSEcr != fin.Options.TSVal || ack.Options.TSVal != p.a.tsVal(now) {
		t.Fatalf("verdict %d, ACK %s: want TSval %d ecr %d", v, ack.String(), p.a.tsVal(now), fin.Options.TSVal)
	}
	if tw.TSRecent != fin.Options.TSVal {
		t.Errorf("TS.Recent %d after the FIN's %d", tw.TSRecent, fin.Options.TSVal)
	}
	// An older timestamp does not move TS.Recent back.
	fin.Options.TSVal -= 5000
	if _, ack = tw.Handle(fin, now, 10*time.Second, 0); ack.Options.TSEcr != tw.TSRecent || tw.TSRecent == fin.Options.TSVal {
		t.Errorf("an older TSval %d moved TS.Recent to %d", fin.Options.TSVal, tw.TSRecent)
	}

	q := reach(t, TimeWait, Config{MSL: 10 * time.Second, NoTimestamps: true})
	tw, _ = q.a.TimeWaitInfo()
	if _, ack := tw.Handle(fin, now, 10*time.Second, 0); tw.TS || ack.Options.HasTS {
		t.Errorf("without timestamps: entry %+v, ACK %s", tw, ack.String())
	}
}
