package ip

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func checkEchoReply(t *testing.T, req []byte, reqPkt Packet, out []byte, n int, id uint16) {
	t.Helper()
	reqICMP := header.ICMPv4(req[len(reqPkt.Header):header.IPv4(req).TotalLength()])
	if n != 20+len(reqICMP) {
		t.Fatalf("EchoReply = %d, want %d", n, 20+len(reqICMP))
	}
	rep := out[:n]
	h := header.IPv4(rep)
	if !h.IsChecksumValid() || rfc1071(rep[:20]) != 0 {
		t.Errorf("IPv4 checksum invalid")
	}
	s := netip.AddrFrom4([4]byte(h.SourceAddressSlice()))
	d := netip.AddrFrom4([4]byte(h.DestinationAddressSlice()))
	if s != reqPkt.Dst || d != reqPkt.Src {
		t.Errorf("addresses %v -> %v, want swapped %v -> %v", s, d, reqPkt.Dst, reqPkt.Src)
	}
	if h.ID() != id || h.Protocol() != 1 || h.TotalLength() != uint16(n) || h.HeaderLength() != 20 {
		t.Errorf("ip fields % x", rep[:20])
	}
	m := header.ICMPv4(rep[20:])
	if m.Type() != header.ICMPv4EchoReply || m.Code() != 0 {
		t.Errorf("type %d code %d", m.Type(), m.Code())
	}
	if m.Ident() != reqICMP.Ident() || m.Sequence() != reqICMP.Sequence() || !bytes.Equal(m.Payload(), reqICMP.Payload()) {
		t.Errorf("ident/seq/data differ: % x vs % x", m, reqICMP)
	}
	if rfc1071(m) != 0 {
		t.Errorf("ICMP checksum invalid")
	}
	// The reply must pass our own input checks at the requester.
	if got, r := Parse(rep, reqPkt.Src); r != DropNone || got.Protocol != ProtoICMP {
		t.Errorf("reply rejected: %v", r)
	}
}

func TestEchoReplyCaptured(t *testing.T) {
	req := mustHex(t, capturedEchoHex)
	pkt, r := Parse(req, capPeer)
	if r != DropNone {
		t.Fatal(r)
	}
	reqCopy := append([]byte{}, req...)
	out := make([]byte, 1500)
	n := EchoReply(out, &pkt, 0x4242)
	checkEchoReply(t, reqCopy, pkt, out, n, 0x4242)
	if !bytes.Equal(req, reqCopy) {
		t.Errorf("request buffer modified")
	}
}

func TestEchoReplyInPlace(t *testing.T) {
	// A request with IP options, answered in its own buffer: the data
	// moves 4 bytes towards the front.
	data := bytes.Repeat([]byte("0123456789"), 30)
	plain := icmpPacket(peer, us, header.ICMPv4Echo, data)
	b := append(append(append([]byte{}, plain[:20]...), 1, 1, 1, 0), plain[20:]...)
	header.IPv4(b).SetHeaderLength(24)
	header.IPv4(b).SetTotalLength(uint16(len(b)))
	fixIP(b)
	orig := append([]byte{}, b...)
	pkt, r := Parse(b, us)
	if r != DropNone {
		t.Fatal(r)
	}
	n := EchoReply(b, &pkt, 1)
	checkEchoReply(t, orig, pkt, b, n, 1)
}

func TestEchoReplyRefuses(t *testing.T) {
	out := make([]byte, 1500)
	parse := func(b []byte) *Packet {
		t.Helper()
		p, r := Parse(b, us)
		if r != DropNone {
			t.Fatalf("setup: %v", r)
		}
		return &p
	}
	codeOne := icmpPacket(peer, us, header.ICMPv4Echo, nil)
	codeOne[21] = 1
	fixICMP(codeOne)
	bcast := *parse(icmpPacket(peer, us, header.ICMPv4Echo, nil))
	bcast.Dst = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	mcast := bcast
	mcast.Dst = netip.AddrFrom4([4]byte{224, 0, 0, 1})
	loopSrc, selfSrc := bcast, bcast
	loopSrc.Dst, loopSrc.Src = us, netip.AddrFrom4([4]byte{127, 0, 0, 1})
	selfSrc.Dst, selfSrc.Src = us, us
	tooBig := parse(icmpPacket(peer, us, header.ICMPv4Echo, make([]byte, 100)))
	for name, p := range map[string]*Packet{
		"echo reply":      parse(icmpPacket(peer, us, header.ICMPv4EchoReply, []byte("x"))),
		"dest unreach":    parse(icmpPacket(peer, us, header.ICMPv4DstUnreachable, make([]byte, 28))),
		"timestamp":       parse(icmpPacket(peer, us, header.ICMPv4Timestamp, make([]byte, 12))),
		"echo code 1":     parse(codeOne),
		"tcp":             parse(tcpPacket(peer, us, []byte{8, 0, 0, 0, 0, 0, 0, 0})),
		"zero packet":     {},
		"short icmp":      {Protocol: ProtoICMP, Src: peer, Dst: us, Payload: []byte{8, 0, 0, 0}},
		"broadcast dst":   &bcast,
		"multicast dst":   &mcast,
		"loopback src":    &loopSrc,
		"src is us":       &selfSrc,
		"out too small":   tooBig,
		"nil payload tcp": {Protocol: ProtoTCP},
	} {
		buf := out
		if name == "out too small" {
			buf = out[:20+8+99]
		}
		if n := EchoReply(buf, p, 1); n != 0 {
			t.Errorf("%s: EchoReply = %d, want 0", name, n)
		}
	}
	// Exactly large enough works.
	if n := EchoReply(out[:20+8+100], tooBig, 1); n != 128 {
		t.Errorf("exact-size out: %d", n)
	}
}

func TestDestUnreachable(t *testing.T) {
	syn := mustHex(t, capturedSYNHex)
	orig, r := Parse(syn, capPeer)
	if r != DropNone {
		t.Fatal(r)
	}
	out := bytes.Repeat([]byte{0xee}, 200)
	n := DestUnreachable(out, capPeer, &orig, uint8(header.ICMPv4PortUnreachable), 77)
	if want := 20 + 8 + 20 + 8; n != want {
		t.Fatalf("DestUnreachable = %d, want %d", n, want)
	}
	msg := out[:n]
	h := header.IPv4(msg)
	if !h.IsChecksumValid() || h.ID() != 77 || h.Protocol() != 1 || h.TotalLength() != uint16(n) ||
		!bytes.Equal(h.SourceAddressSlice(), capPeer4[:]) || !bytes.Equal(h.DestinationAddressSlice(), capHost4[:]) {
		t.Errorf("ip header % x", msg[:20])
	}
	m := header.ICMPv4(msg[20:])
	if m.Type() != header.ICMPv4DstUnreachable || m.Code() != header.ICMPv4PortUnreachable {
		t.Errorf("type %d code %d", m.Type(), m.Code())
	}
	if !bytes.Equal(m[4:8], []byte{0, 0, 0, 0}) {
		t.Errorf("unused field % x", m[4:8])
	}
	if !bytes.Equal(m.Payload(), syn[:28]) {
		t.Errorf("quote\n got % x\nwant % x", m.Payload(), syn[:28])
	}
	if rfc1071(m) != 0 {
		t.Errorf("ICMP checksum invalid")
	}
	if p, r := Parse(msg, capHost); r != DropNone || p.Protocol != ProtoICMP {
		t.Errorf("peer would drop it: %v", r)
	}

	// A short payload is quoted whole; options are quoted with the header.
	ping := icmpPacket(peer, us, header.ICMPv4Echo, nil) // 8-byte ICMP
	withOpts := append(append(append([]byte{}, ping[:20]...), 1, 1, 1, 0), ping[20:24]...)
	header.IPv4(withOpts).SetHeaderLength(24)
	header.IPv4(withOpts).SetTotalLength(28)
	fixIP(withOpts)
	short := Packet{Version: 4, Src: peer, Dst: us, Protocol: 17, Header: withOpts[:24], Payload: withOpts[24:]}
	n = DestUnreachable(out, us, &short, uint8(header.ICMPv4ProtoUnreachable), 1)
	if n != 20+8+24+4 || !bytes.Equal(out[28:n], withOpts) || rfc1071(out[20:n]) != 0 {
		t.Errorf("short quote: n=%d % x", n, out[:n])
	}
	if header.ICMPv4(out[20:]).Code() != header.ICMPv4ProtoUnreachable {
		t.Errorf("code %d", header.ICMPv4(out[20:]).Code())
	}

	// An echo request (a query, not an error) may be answered.
	pp, _ := Parse(ping, us)
	if n := DestUnreachable(out, us, &pp, 3, 1); n != 20+8+20+8 {
		t.Errorf("about an echo request: %d", n)
	}
}

func TestDestUnreachableRefuses(t *testing.T) {
	out := make([]byte, 200)
	parse := func(b []byte) Packet {
		t.Helper()
		p, r := Parse(b, us)
		if r != DropNone {
			t.Fatalf("setup: %v", r)
		}
		return p
	}
	errPkt := parse(icmpPacket(peer, us, header.ICMPv4DstUnreachable, make([]byte, 28)))
	timeEx := parse(icmpPacket(peer, us, header.ICMPv4TimeExceeded, make([]byte, 28)))
	redirect := parse(icmpPacket(peer, us, header.ICMPv4Redirect, make([]byte, 28)))
	unknown := parse(icmpPacket(peer, us, 42, nil))
	base := parse(tcpPacket(peer, us, []byte("data")))
	if DestUnreachable(out, us, &base, 2, 1) == 0 {
		t.Fatal("baseline refused")
	}
	bcast, mcast, badSrc, self := base, base, base, base
	bcast.Dst = netip.AddrFrom4([4]byte{255, 255, 255, 255})
	mcast.Dst = netip.AddrFrom4([4]byte{239, 0, 0, 9})
	badSrc.Src = netip.AddrFrom4([4]byte{127, 0, 0, 1})
	self.Src = us
	frag := base
	frag.Header = append([]byte{}, base.Header...)
	header.IPv4(frag.Header).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
	later := base
	later.Header = append([]byte{}, base.Header...)
	header.IPv4(later.Header).SetFlagsFragmentOffset(0, 64)
	emptyICMP := Packet{Src: peer, Dst: us, Protocol: ProtoICMP, Header: base.Header}
	for name, p := range map[string]*Packet{
		"dest unreachable": &errPkt,
		"time exceeded":    &timeEx,
		"redirect":         &redirect,
		"unknown icmp":     &unknown,
		"empty icmp":       &emptyICMP,
		"broadcast dst":    &bcast,
		"multicast dst":    &mcast,
		"loopback src":     &badSrc,
		"from ourselves":   &self,
		"first fragment":   &frag,
		"later fragment":   &later,
		"zero packet":      {},
	} {
		if n := DestUnreachable(out, us, p, 2, 1); n != 0 {
			t.Errorf("%s: DestUnreachable = %d, want 0", name, n)
		}
	}
	if n := DestUnreachable(out[:55], us, &base, 2, 1); n != 0 {
		t.Errorf("small out: %d", n)
	}
}

// TestParseICMPErrorRoundTrip: an ICMP port unreachable built by
// DestUnreachable about a TCP segment we sent is read back by
// ParseICMPError with the quoted ports and sequence number.
func TestParseICMPErrorRoundTrip(t *testing.T) {
	us, peer := netip.AddrFrom4([4]byte{198, 18, 0, 2}), netip.AddrFrom4([4]byte{198, 18, 0, 1})
	// Our TCP segment, as the peer received it.
	seg := make([]byte, 60)
	n := BuildIPv4(seg, us, peer, ProtoTCP, 7, 20)
	tcpb := header.TCP(seg[n : n+20])
	tcpb.Encode(&header.TCPFields{SrcPort: 40000, DstPort: 80, SeqNum: 0xdeadbeef, DataOffset: 20, Flags: header.TCPFlagSyn, WindowSize: 1000})
	tcpb.SetChecksum(TCPChecksum(us, peer, tcpb))
	orig, reason := Parse(seg[:n+20], peer)
	if reason != DropNone {
		t.Fatalf("parse original: %v", reason)
	}
	out := make([]byte, 200)
	m := DestUnreachable(out, peer, &orig, ICMPCodePortUnreach, 9)
	pkt, reason := Parse(out[:m], us)
	if reason != DropNone {
		t.Fatalf("parse ICMP: %v", reason)
	}
	e, ok := ParseICMPError(&pkt, us)
	if !ok || e.Type != ICMPDestUnreachable || e.Code != ICMPCodePortUnreach || e.Peer != peer ||
		e.SrcPort != 40000 || e.DstPort != 80 || e.Seq != 0xdeadbeef {
		t.Fatalf("ParseICMPError = %+v, %v", e, ok)
	}
	if _, ok := ParseICMPError(&pkt, netip.AddrFrom4([4]byte{10, 0, 0, 1})); ok {
		t.Error("an error about someone else's segment was accepted")
	}
	if allocs := testing.AllocsPerRun(100, func() { ParseICMPError(&pkt, us) }); allocs != 0 {
		t.Errorf("%v allocations", allocs)
	}
}
