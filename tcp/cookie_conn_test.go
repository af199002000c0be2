package tcp

import (
	"bytes"
	"net/netip"
	"testing"
)

// TestSynCookieHandshake: a listener that keeps no state answers the SYN
// with a cookie SYN+ACK; the returning ACK builds a connection born
// ESTABLISHED with the MSS and window scale the cookie carried, and data
// then flows both ways with scaled windows.
func TestSynCookieHandshake(t *testing.T) {
	local, remote := netip.AddrFrom4([4]byte{198, 18, 0, 2}), netip.AddrFrom4([4]byte{198, 18, 0, 1})
	sc := NewSynCookies()
	cfg := Config{MSS: 1460}
	p := &pair{t: t}
	p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
	p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
	p.a = NewActive(cfg, p.aOut, 40000, 80, 1000, 0)
	syn := p.take(p.aOut)

	iss := sc.Make(local, remote, &syn, 1460, p.now)
	synack := CookieSynAck(cfg, &syn, iss)
	if !synack.Options.HasWScale || synack.Ack != syn.Seq+1 {
		t.Fatalf("cookie SYN+ACK %s", synack.String())
	}
	p.a.Handle(&synack, p.now)
	p.wantState(p.a, Established)
	ack := p.take(p.aOut)

	opts, ok := sc.Check(local, remote, &ack, p.now)
	if !ok {
		t.Fatalf("cookie in %s rejected", ack.String())
	}
	var trace []Transition
	bcfg := cfg
	bcfg.Trace = func(t Transition, _ *Segment) { trace = append(trace, t) }
	p.b = NewPassiveCookie(bcfg, p.bOut, &ack, opts, p.now)
	p.wantState(p.b, Established)
	if len(trace) != 1 || trace[0].From != Listen || trace[0].On != RcvCookieAck {
		t.Errorf("trace %v", trace)
	}
	if p.b.sndMSS != 1460 || !p.b.wscaleOK || p.b.sndWScale != p.a.rcvWScale {
		t.Errorf("cookie connection: mss %d wscale %v/%d, want 1460 and %d",
			p.b.sndMSS, p.b.wscaleOK, p.b.sndWScale, p.a.rcvWScale)
	}
	data := pattern(300000) // beyond 64 KiB: needs the scaled window
	if got := p.transfer(p.a, p.b, data); !bytes.Equal(got, data) {
		t.Fatal("a→b data differs")
	}
	if got := p.transfer(p.b, p.a, data); !bytes.Equal(got, data) {
		t.Fatal("b→a data differs")
	}
	if p.b.sndWnd <= 0xffff {
		t.Errorf("b's view of a's window %d: scaling not in use", p.b.sndWnd)
	}
}

// TestSynCookieAckCarryingData: the ACK that returns the cookie may carry
// the first data; it is not lost.
func TestSynCookieAckCarryingData(t *testing.T) {
	local, remote := netip.AddrFrom4([4]byte{198, 18, 0, 2}), netip.AddrFrom4([4]byte{198, 18, 0, 1})
	sc := NewSynCookies()
	var log []string
	w := &wire{name: "b>", log: &log}
	syn := Segment{SrcPort: 40000, DstPort: 80, Seq: 7000, Flags: FlagSYN, Window: 65535}
	syn.Options.MSS = 1400
	iss := sc.Make(local, remote, &syn, 1400, 0)
	ack := Segment{SrcPort: 40000, DstPort: 80, Seq: 7001, Ack: iss + 1, Flags: FlagACK | FlagPSH, Window: 65535,
		Payload: []byte("GET / HTTP/1.0\r\n\r\n")}
	opts, ok := sc.Check(local, remote, &ack, 0)
	if !ok || opts.WScale != -1 {
		t.Fatalf("check: %v %+v", ok, opts)
	}
	c := NewPassiveCookie(Config{}, w, &ack, opts, 0)
	buf := make([]byte, 100)
	n, _ := c.Read(buf, 0)
	if string(buf[:n]) != "GET / HTTP/1.0\r\n\r\n" {
		t.Errorf("read %q", buf[:n])
	}
	if c.wscaleOK || c.rcvWScale != 0 {
		t.Errorf("window scaling on without the peer's option")
	}
}
