package tcp

import (
	"testing"
	"time"
)

// TestTailLossProbeNeverResendsSACKedData: a window whose first segment
// is lost; the others are SACKed, fast recovery resends the hole, and that
// retransmission is lost too. The tail loss probe armed when the window
// was sent then fires - and must not resend the last segment, which the
// peer has reported holding: a probe exists to expose a lost tail (RFC
// 8985 §7), there is none, and RFC 8985 §7.2 schedules no probe once the
// scoreboard holds SACKed data. The lost retransmission is RACK's to find.
func TestTailLossProbeNeverResendsSACKedData(t *testing.T) {
	p, exchange := slowPair(t, Config{DelayedAck: -1})

	mss := p.a.segMSS()
	start := p.a.sndMax
	p.a.Write(pattern(5*mss), p.now)
	if got := p.a.sndMax.Sub(start); got != 5*mss {
		t.Fatalf("sent %d bytes of %d at once", got, 5*mss)
	}
	exchange(0) // the first segment is lost; the rest are SACKed; the hole is resent
	if p.a.Recoveries != 1 || len(p.aOut.queue) != 1 {
		t.Fatalf("recoveries %d, %d segments queued: want the hole resent in fast recovery\n%s", p.a.Recoveries, len(p.aOut.queue), p.dump())
	}
	p.aOut.queue = nil // and that retransmission is lost too

	// Until the RTO, nothing the peer holds may be sent again.
	rto := p.a.timers.at(tRetransmit)
	for p.now < rto-time.Millisecond {
		next := p.a.NextTimer()
		if next == 0 || next >= rto {
			break
		}
		p.now = next
		p.a.Tick(p.now)
		for len(p.aOut.queue) > 0 {
			seg := p.take(p.aOut)
			if len(seg.Payload) > 0 && !seg.Seq.LessThan(start.Add(mss)) {
				t.Errorf("at %v resent %s, which the peer SACKed\n%s", p.now, seg.String(), p.dump())
			}
		}
	}
}

// slowPair is a pair whose segments take 50 ms each way, warmed up until
// SRTT is the 100 ms round trip. exchange delivers what a has queued (but
// the drop-th segment, if drop >= 0) and, 50 ms later, b's answers.
func slowPair(t *testing.T, cfg Config) (p *pair, exchange func(drop int)) {
	t.Helper()
	p = newPair(t, cfg)
	const oneWay = 50 * time.Millisecond
	exchange = func(drop int) {
		p.now += oneWay
		for i := 0; len(p.aOut.queue) > 0; i++ {
			seg := p.take(p.aOut)
			if i != drop {
				p.b.Handle(&seg, p.now)
			}
		}
		p.now += oneWay
		for len(p.bOut.queue) > 0 {
			ack := p.take(p.bOut)
			p.a.Handle(&ack, p.now)
		}
	}
	for i := 0; i < 30; i++ {
		p.a.Write(pattern(100), p.now)
		exchange(-1)
	}
	if srtt := p.a.rto.SRTT(); srtt < 90*time.Millisecond || srtt > 110*time.Millisecond {
		t.Fatalf("SRTT %v after 100 ms round trips", srtt)
	}
	return p, exchange
}
