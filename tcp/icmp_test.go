package tcp

import (
	"errors"
	"syscall"
	"testing"
	"time"
)

// TestICMPHardErrorAbortsAnOpeningConnection: a port unreachable quoting
// our SYN ends SYN-SENT at once with the error given (RFC 1122
// §4.2.3.9), and one quoting the SYN+ACK ends SYN-RECEIVED; a quote with
// a sequence number we never sent is ignored (RFC 5927 §4.1).
func TestICMPHardErrorAbortsAnOpeningConnection(t *testing.T) {
	p := reach(t, SynSent, Config{})
	p.a.HandleICMP(ICMPHard, p.a.iss+5, 0, syscall.ECONNREFUSED, p.now) // not our SYN
	p.wantState(p.a, SynSent)
	p.a.HandleICMP(ICMPHard, p.a.iss, 0, syscall.ECONNREFUSED, p.now)
	p.wantState(p.a, Closed)
	if !errors.Is(p.a.Err(), syscall.ECONNREFUSED) {
		t.Errorf("error %v, want ECONNREFUSED", p.a.Err())
	}
	p = reach(t, SynReceived, Config{})
	p.a.HandleICMP(ICMPHard, p.a.iss, 0, syscall.ECONNREFUSED, p.now)
	p.wantState(p.a, Closed)
}

// TestICMPSoftErrorReportedOnTimeout: host unreachable on an established
// connection does not abort it (RFC 1122 §4.2.3.9: MUST NOT); if the
// connection then times out, the error says why.
func TestICMPSoftErrorReportedOnTimeout(t *testing.T) {
	p := reach(t, Established, Config{MaxRetries: 3, MaxRTO: 2 * time.Second})
	p.aOut.drop = func(*Segment) bool { return true }
	p.a.Write([]byte("lost"), p.now)
	p.a.HandleICMP(ICMPSoft, p.a.sndUna, 0, syscall.EHOSTUNREACH, p.now)
	p.a.HandleICMP(ICMPHard, p.a.sndUna, 0, syscall.ECONNREFUSED, p.now) // hard, but synchronized: soft
	p.wantState(p.a, Established)
	p.a.HandleICMP(ICMPSoft, p.a.sndUna, 0, syscall.EHOSTUNREACH, p.now)
	p.advance(time.Minute)
	p.wantState(p.a, Closed)
	if !errors.Is(p.a.Err(), syscall.EHOSTUNREACH) {
		t.Errorf("error %v, want EHOSTUNREACH", p.a.Err())
	}
}

// TestICMPFragNeededLowersTheSegmentSize: path MTU discovery (RFC 1191):
// a "fragmentation needed" with a next-hop MTU of 1000 makes every later
// segment fit in 1000 bytes, and what was in flight is resent that way.
func TestICMPFragNeededLowersTheSegmentSize(t *testing.T) {
	p := reach(t, Established, Config{})
	big := 0
	p.aOut.drop = func(seg *Segment) bool {
		if len(seg.Payload)+seg.HeaderLen()+20 > 1000 {
			big++
			return true // the narrow link drops what does not fit
		}
		return false
	}
	p.a.Write(pattern(20000), p.now)
	p.a.HandleICMP(ICMPFragNeeded, p.a.sndUna, 1000-40, nil, p.now)
	p.a.HandleICMP(ICMPFragNeeded, p.a.sndUna, 0, nil, p.now) // no MTU reported: ignored
	dropped := big
	got := p.transfer(p.a, p.b, nil)
	_ = got
	p.advance(5 * time.Second)
	if p.a.sndUna != p.a.sndMax || p.b.RecvQueue() != 20000 {
		t.Fatalf("not delivered: una %d max %d, b holds %d", uint32(p.a.sndUna), uint32(p.a.sndMax), p.b.RecvQueue())
	}
	if big != dropped || p.a.sndMSS != 960 {
		t.Errorf("segments too big after the ICMP: %d (before: %d); sndMSS %d, want 960", big, dropped, p.a.sndMSS)
	}
	// RFC 1191 §6.3: the lowered size ages out and the full one is tried.
	p.advance(DefaultConfig().PMTUExpire)
	if p.a.sndMSS != p.a.synMSS || p.a.synMSS != DefaultConfig().MSS {
		t.Errorf("sndMSS %d after PMTUExpire, want the agreed %d", p.a.sndMSS, DefaultConfig().MSS)
	}
}
