package ip

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/tcp"
)

// withSum6 sets the checksum of the ICMPv6 message m (bytes 2-3) with
// rfc1071 over pseudo6 and returns m.
func withSum6(src, dst netip.Addr, m []byte) []byte {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:], rfc1071(pseudo6(src, dst, 58, len(m)), m))
	return m
}

func mustParse6(t *testing.T, b []byte, local netip.Addr) Packet {
	t.Helper()
	p, r := Parse(b, local)
	if r != DropNone {
		t.Fatalf("setup: %v", r)
	}
	return p
}

func TestEchoReply6Captured(t *testing.T) {
	req := mustHex(t, capturedEcho6Hex)
	keep := append([]byte{}, req...)
	pkt := mustParse6(t, req, us6)
	out := bytes.Repeat([]byte{0xee}, 100)
	n, _, isErr := NewIPv6(us6).ICMP(&pkt, out)
	// The same request, answered by hand: the flow label reflected,
	// hop limit 64, addresses swapped, type 129, the rest of the message
	// as it came.
	want := cat(mustHex(t, "6005f9b700183a40"), us6.AsSlice(), peer6.AsSlice(), withSum6(us6, peer6, cat([]byte{129, 0, 0, 0}, req[44:])))
	if n != 64 || isErr || !bytes.Equal(out[:n], want) {
		t.Fatalf("ICMP = %d, %v\n got % x\nwant % x", n, isErr, out[:n], want)
	}
	if !bytes.Equal(out[n:], bytes.Repeat([]byte{0xee}, 100-n)) || !bytes.Equal(req, keep) {
		t.Errorf("wrote outside its reply")
	}
	if got := mustParse6(t, out[:n], peer6); got.Protocol != ProtoICMPv6 || got.FlowLabel != 0x5f9b7 {
		t.Errorf("reply parsed as %+v", got)
	}
	// EchoReply6 takes the flow label it is given.
	if n := EchoReply6(out, &pkt, 0xfffff); n != 64 || binary.BigEndian.Uint32(out) != 0x600fffff {
		t.Errorf("flow label: % x", out[:4])
	}
}

func TestEchoReply6InPlace(t *testing.T) {
	// A request behind two extension headers, answered in its own
	// buffer: the data moves 16 bytes towards the front.
	data := bytes.Repeat([]byte("0123456789"), 30)
	msg := icmp6(peer6, us6, 128, 0, append([]byte{0xab, 0xcd, 0x01, 0x02}, data...))
	b := ipv6(peer6, us6, 0, cat(optsHdr(60), optsHdr(58)), msg)
	pkt := mustParse6(t, b, us6)
	n := EchoReply6(b, &pkt, 7)
	want := cat([]byte{0x60, 0, 0, 7, byte(len(msg) >> 8), byte(len(msg)), 58, 64}, us6.AsSlice(), peer6.AsSlice(),
		withSum6(us6, peer6, cat([]byte{129, 0, 0, 0}, msg[4:])))
	if n != 40+len(msg) || !bytes.Equal(b[:n], want) {
		t.Fatalf("EchoReply6 = %d\n got % x\nwant % x", n, b[:n], want)
	}
}

func TestEchoReply6Refuses(t *testing.T) {
	out := make([]byte, 1500)
	codeOne := mustParse6(t, ipv6(peer6, us6, 58, nil, icmp6(peer6, us6, 128, 1, make([]byte, 4))), us6)
	base := mustParse6(t, echo6(peer6, us6, nil), us6)
	group := mustParse6(t, ipv6(peer6, us6Group, 58, nil, icmp6(peer6, us6Group, 128, 0, make([]byte, 4))), us6)
	mcast, unspec, self, v4 := base, base, base, base
	mcast.Dst = netip.MustParseAddr("ff02::1")
	unspec.Src = netip.IPv6Unspecified()
	self.Src = us6
	v4.Version = 4
	tooBig := mustParse6(t, echo6(peer6, us6, make([]byte, 100)), us6)
	for name, p := range map[string]*Packet{
		"echo reply":           ptr(mustParse6(t, ipv6(peer6, us6, 58, nil, icmp6(peer6, us6, 129, 0, make([]byte, 4))), us6)),
		"neighbour solicit":    ptr(mustParse6(t, ipv6(peer6, us6, 58, nil, icmp6(peer6, us6, 135, 0, make([]byte, 20))), us6)),
		"echo code 1":          &codeOne,
		"to our group":         &group,
		"to all nodes":         &mcast,
		"from ::":              &unspec,
		"from ourselves":       &self,
		"version 4":            &v4,
		"tcp":                  ptr(mustParse6(t, tcp6Packet(peer6, us6, []byte{128, 0, 0, 0, 0, 0, 0, 0}), us6)),
		"IPv4 echo":            ptr(mustParse6(t, icmpPacket(peer, us, header.ICMPv4Echo, nil), us)),
		"zero packet":          {},
		"short":                {Version: 6, Protocol: ProtoICMPv6, Src: peer6, Dst: us6, Payload: []byte{128, 0, 0, 0}},
		"out one byte too few": &tooBig,
	} {
		buf := out
		if name == "out one byte too few" {
			buf = out[:40+8+99]
		}
		if n := EchoReply6(buf, p, 0); n != 0 {
			t.Errorf("%s: EchoReply6 = %d, want 0", name, n)
		}
	}
	if n := EchoReply6(out[:40+8+100], &tooBig, 0); n != 148 {
		t.Errorf("exact-size out: %d", n)
	}
}

func ptr[T any](v T) *T { return &v }

// ns6 is a neighbour solicitation for target from src to dst with the
// given hop limit and options.
func ns6(src, dst, target netip.Addr, hop uint8, opts []byte) []byte {
	b := ipv6(src, dst, 58, nil, icmp6(src, dst, 135, 0, cat(make([]byte, 4), target.AsSlice(), opts)))
	b[7] = hop
	return b
}

func TestNeighborAdvert(t *testing.T) {
	sll := []byte{1, 1, 0x02, 0x11, 0x22, 0x33, 0x44, 0x55} // source link-layer address option
	unspec := netip.IPv6Unspecified()
	allNodes := netip.MustParseAddr("ff02::1")
	for _, tc := range []struct {
		name      string
		req       []byte
		to        netip.Addr
		flags     byte
		solicited bool
	}{
		{"unicast probe", ns6(peer6, us6, us6, 255, nil), peer6, 0x40, true},
		{"address resolution, with options", ns6(peer6, us6Group, us6, 255, cat(sll, []byte{14, 1, 1, 2, 3, 4, 5, 6})), peer6, 0x40, true},
		{"from a link-local address", ns6(netip.MustParseAddr("fe80::1"), us6Group, us6, 255, nil), netip.MustParseAddr("fe80::1"), 0x40, true},
		{"duplicate address detection", ns6(unspec, us6Group, us6, 255, []byte{14, 1, 9, 9, 9, 9, 9, 9}), allNodes, 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pkt := mustParse6(t, tc.req, us6)
			// Flow label 0, payload 24, ICMPv6, hop limit 255; type 136,
			// code 0, flags (R clear, S as solicited, O clear), the
			// target: us.
			want := cat([]byte{0x60, 0, 0, 0, 0, 24, 58, 255}, us6.AsSlice(), tc.to.AsSlice(),
				withSum6(us6, tc.to, cat([]byte{136, 0, 0, 0, tc.flags, 0, 0, 0}, us6.AsSlice())))
			out := bytes.Repeat([]byte{0xee}, 80)
			if n := NeighborAdvert(out, &pkt, us6); n != 64 || !bytes.Equal(out[:n], want) || out[64] != 0xee {
				t.Fatalf("NeighborAdvert = %d\n got % x\nwant % x", n, out[:64], want)
			}
			// Through the Network, and in place.
			n, _, isErr := NewIPv6(us6).ICMP(&pkt, tc.req)
			if n != 64 || isErr || !bytes.Equal(tc.req[:n], want) {
				t.Fatalf("in place: %d\n got % x\nwant % x", n, tc.req[:n], want)
			}
			// gvisor reads it as we meant it.
			na := header.NDPNeighborAdvert(want[44:])
			if na.SolicitedFlag() != tc.solicited || na.OverrideFlag() || na.RouterFlag() || na.TargetAddress().As16() != us6.As16() {
				t.Errorf("gvisor reads S %v O %v R %v target %v", na.SolicitedFlag(), na.OverrideFlag(), na.RouterFlag(), na.TargetAddress())
			}
			if tc.to == peer6 {
				if got := mustParse6(t, want, peer6); got.TTL != 255 || got.Protocol != ProtoICMPv6 {
					t.Errorf("peer parses %+v", got)
				}
			}
		})
	}
}

func TestNeighborAdvertRefuses(t *testing.T) {
	out := make([]byte, 100)
	other := netip.MustParseAddr("fd00:7:5eed::3")
	unspec := netip.IPv6Unspecified()
	parse := func(b []byte) *Packet { return ptr(mustParse6(t, b, us6)) }
	codeOne := ns6(peer6, us6, us6, 255, nil)
	codeOne[41] = 1
	fix6(codeOne)
	short := ipv6(peer6, us6, 58, nil, icmp6(peer6, us6, 135, 0, cat(make([]byte, 4), us6.AsSlice()[:12])))
	short[7] = 255
	dadToUs := *parse(ns6(peer6, us6, us6, 255, nil))
	dadToUs.Src = unspec
	fromMcast := *parse(ns6(peer6, us6, us6, 255, nil))
	fromMcast.Src = netip.MustParseAddr("ff02::1")
	toOther := *parse(ns6(peer6, us6, us6, 255, nil))
	toOther.Dst = other
	for name, p := range map[string]*Packet{
		"hop limit 64":          parse(ns6(peer6, us6, us6, 64, nil)),
		"hop limit 254":         parse(ns6(peer6, us6Group, us6, 254, nil)),
		"code 1":                parse(codeOne),
		"20 bytes":              parse(short),
		"another target":        parse(ns6(peer6, us6, other, 255, nil)),
		"multicast target":      parse(ns6(peer6, us6, us6Group, 255, nil)),
		"option length 0":       parse(ns6(peer6, us6, us6, 255, []byte{1, 0, 0, 0, 0, 0, 0, 0})),
		"option past the end":   parse(ns6(peer6, us6, us6, 255, []byte{1, 2, 0, 0, 0, 0, 0, 0})),
		"one stray option byte": parse(ns6(peer6, us6, us6, 255, []byte{1})),
		"DAD with a source LLA": parse(ns6(unspec, us6Group, us6, 255, []byte{1, 1, 2, 0, 0, 0, 0, 1})),
		"from :: to us":         &dadToUs,
		"from multicast":        &fromMcast,
		"sent to someone else":  &toOther,
		"an advertisement":      parse(ipv6(peer6, us6, 58, nil, icmp6(peer6, us6, 136, 0, cat([]byte{0x60, 0, 0, 0}, peer6.AsSlice())))),
		"echo request":          parse(echo6(peer6, us6, us6.AsSlice())),
		"zero packet":           {},
		"tcp":                   parse(tcp6Packet(peer6, us6, make([]byte, 40))),
		"v4 version on the pkt": func() *Packet { p := *parse(ns6(peer6, us6, us6, 255, nil)); p.Version = 4; return &p }(),
	} {
		if n := NeighborAdvert(out, p, us6); n != 0 {
			t.Errorf("%s: NeighborAdvert = %d, want 0", name, n)
		}
	}
	ok := parse(ns6(peer6, us6, us6, 255, nil))
	for _, local := range []netip.Addr{us, peer6, {}, us6Group} {
		if n := NeighborAdvert(out, ok, local); n != 0 {
			t.Errorf("local %v: NeighborAdvert = %d, want 0", local, n)
		}
	}
	if n := NeighborAdvert(out[:63], ok, us6); n != 0 {
		t.Errorf("63-byte out: %d", n)
	}
	if n := NeighborAdvert(out[:64], ok, us6); n != 64 {
		t.Errorf("64-byte out: %d", n)
	}
}

// ourSegment is a TCP segment tund sends (us6:40000 -> peer6:80, seq
// 0xdeadbeef), built by BuildTCP as the stack does, behind ext if any.
func ourSegment(t *testing.T, ext []byte, first uint8, dlen int) []byte {
	t.Helper()
	seg := tcp.Segment{SrcPort: 40000, DstPort: 80, Seq: 0xdeadbeef, Ack: 1, Flags: tcp.FlagACK, Window: 100,
		Payload: bytes.Repeat([]byte{'d'}, dlen)}
	buf := make([]byte, 40+len(ext)+20+dlen)
	_, total := BuildTCP(NewIPv6(us6), buf[len(ext):], peer6, 0, &seg, false)
	if total != len(buf)-len(ext) {
		t.Fatalf("BuildTCP total %d", total)
	}
	if len(ext) > 0 {
		copy(buf, buf[len(ext):len(ext)+40])
		copy(buf[40:], ext)
		buf[6] = first
		binary.BigEndian.PutUint16(buf[4:], uint16(len(buf)-40))
	}
	return buf
}

func TestICMPv6ErrorRoundTrip(t *testing.T) {
	n := NewIPv6(us6)
	router := netip.MustParseAddr("fd00:7:5eed::ff")
	seg := ourSegment(t, nil, 0, 10)
	orig := mustParse6(t, seg, peer6) // as the peer received it
	check := func(t *testing.T, msg []byte, want ICMPError) {
		t.Helper()
		pkt := mustParse6(t, msg, us6)
		reply, e, isErr := n.ICMP(&pkt, make([]byte, 1500))
		if reply != 0 || !isErr || e != want {
			t.Errorf("ICMP = %d, %v\n got %+v\nwant %+v", reply, isErr, e, want)
		}
		if e2, ok := ParseICMPv6Error(&pkt, us6); !ok || e2 != e {
			t.Errorf("ParseICMPv6Error differs: %+v", e2)
		}
		if _, ok := ParseICMPv6Error(&pkt, netip.MustParseAddr("fd00:7:5eed::3")); ok {
			t.Errorf("an error about someone else's segment was accepted")
		}
	}
	base := ICMPError{Peer: peer6, SrcPort: 40000, DstPort: 80, Seq: 0xdeadbeef}
	out := make([]byte, 1500)
	for _, tc := range []struct {
		code  uint8
		kind  ErrorKind
		errno syscall.Errno
	}{
		{ICMPv6CodeNoRoute, ErrorSoft, syscall.ENETUNREACH},
		{ICMPv6CodeProhibited, ErrorSoft, syscall.EACCES},
		{ICMPv6CodeBeyondScope, ErrorSoft, syscall.EHOSTUNREACH},
		{ICMPv6CodeAddrUnreach, ErrorSoft, syscall.EHOSTUNREACH},
		{ICMPv6CodePortUnreach, ErrorHard, syscall.ECONNREFUSED},
		{ICMPv6CodePolicy, ErrorSoft, syscall.EACCES},
		{ICMPv6CodeRejectRoute, ErrorSoft, syscall.EACCES},
		{7, ErrorSoft, syscall.EHOSTUNREACH},
	} {
		m := DestUnreachable6(out, peer6, &orig, tc.code)
		if m != 40+8+len(seg) {
			t.Fatalf("code %d: DestUnreachable6 = %d", tc.code, m)
		}
		want := base
		want.Type, want.Code, want.Kind, want.Errno = 1, tc.code, tc.kind, tc.errno
		check(t, out[:m], want)
	}
	for _, mtu := range []uint32{1400, 1280, 600, 0, 0xffffffff} {
		m := PacketTooBig(out, router, seg, mtu)
		if m != 40+8+len(seg) {
			t.Fatalf("PacketTooBig = %d", m)
		}
		want := base
		want.Type, want.Kind, want.MTU = 2, ErrorTooBig, int(mtu)
		check(t, out[:m], want)
	}
	// Types DestUnreachable6 and PacketTooBig do not build, and one
	// nobody knows (RFC 4443 §2.4 (a): passed up all the same).
	for _, tc := range []struct {
		typ, code uint8
		errno     syscall.Errno
	}{
		{ICMPv6TimeExceeded, 0, syscall.EHOSTUNREACH},
		{ICMPv6TimeExceeded, 1, syscall.EHOSTUNREACH},
		{ICMPv6ParamProblem, 1, syscall.EPROTO},
		{42, 3, syscall.EPROTO},
		{0, 0, syscall.EPROTO},
	} {
		msg := ipv6(router, us6, 58, nil, icmp6(router, us6, tc.typ, tc.code, cat([]byte{0, 0, 0, 40}, seg)))
		want := base
		want.Type, want.Code, want.Errno = tc.typ, tc.code, tc.errno
		check(t, msg, want)
	}
	// A quote that must be walked: our segment behind hop-by-hop,
	// destination options and routing headers, or a first fragment.
	for _, tc := range []struct {
		name  string
		first uint8
		ext   []byte
	}{
		{"options and routing", 0, cat(optsHdr(60, 5, 2, 0, 0), optsHdr(43, append([]byte{0x3f, 20}, make([]byte, 20)...)...), routingHdr(6, 0, 0, 1))},
		{"first fragment", 44, fragHdr(6, 0, true)},
	} {
		msg := ipv6(router, us6, 58, nil, icmp6(router, us6, 3, 0, cat([]byte{0, 0, 0, 0}, ourSegment(t, tc.ext, tc.first, 0))))
		want := base
		want.Type, want.Errno = 3, syscall.EHOSTUNREACH
		t.Run(tc.name, func(t *testing.T) { check(t, msg, want) })
	}

	// A full-size segment: the quote stops at 1280 bytes in all.
	big := ourSegment(t, nil, 0, 1440)
	if m := PacketTooBig(out, router, big, 1400); m != 1280 || !bytes.Equal(out[48:m], big[:1232]) {
		t.Errorf("PTB about 1500 bytes: %d", m)
	} else {
		want := base
		want.Type, want.Kind, want.MTU = 2, ErrorTooBig, 1400
		check(t, out[:m], want)
	}
}

func TestICMPv6ErrorNotOurs(t *testing.T) {
	router := netip.MustParseAddr("fd00:7:5eed::ff")
	seg := ourSegment(t, nil, 0, 0)
	errMsg := func(q []byte) []byte {
		return ipv6(router, us6, 58, nil, icmp6(router, us6, 1, 4, cat([]byte{0, 0, 0, 0}, q)))
	}
	udp := append([]byte{}, seg...)
	udp[6] = 17
	notV6 := append([]byte{}, seg...)
	notV6[0] = 0x45
	fromOther := append([]byte{}, seg...)
	copy(fromOther[8:24], peer6.AsSlice())
	laterFrag := cat(seg[:40], fragHdr(6, 1, false), seg[40:])
	laterFrag[6] = 44
	cutInChain := cat(seg[:40], []byte{6, 1, 1, 12, 0, 0, 0, 0, 0, 0}) // 16 bytes said, 10 there
	cutInChain[6] = 60
	tenHeaders := append([]byte{}, seg[:40]...)
	tenHeaders[6] = 60
	for i := 0; i < 9; i++ {
		tenHeaders = append(tenHeaders, optsHdr(60)...)
	}
	tenHeaders = append(tenHeaders, append(optsHdr(6), seg[40:]...)...)
	for name, msg := range map[string][]byte{
		"quote cut at 4 TCP bytes":    errMsg(seg[:44]),
		"quote cut at the IP header":  errMsg(seg[:40]),
		"quote of 39 bytes":           errMsg(seg[:39]),
		"no quote":                    errMsg(nil),
		"quoted UDP":                  errMsg(udp),
		"quoted IPv4 version":         errMsg(notV6),
		"quoted source not ours":      errMsg(fromOther),
		"quoted non-first fragment":   errMsg(laterFrag),
		"quote cut in the options":    errMsg(cutInChain),
		"quote behind nine headers":   errMsg(tenHeaders),
		"echo reply":                  ipv6(router, us6, 58, nil, icmp6(router, us6, 129, 0, cat([]byte{0, 0, 0, 0}, seg))),
		"router solicitation (133)":   ipv6(router, us6, 58, nil, icmp6(router, us6, 133, 0, make([]byte, 4))),
		"router advertisement (134)":  ipv6(router, us6, 58, nil, icmp6(router, us6, 134, 0, make([]byte, 12))),
		"neighbour advert (136)":      ipv6(router, us6, 58, nil, icmp6(router, us6, 136, 0, cat([]byte{0x20, 0, 0, 0}, router.AsSlice()))),
		"redirect (137)":              ipv6(router, us6, 58, nil, icmp6(router, us6, 137, 0, cat(make([]byte, 4), peer6.AsSlice(), peer6.AsSlice(), []byte{4, 6, 0, 0, 0, 0, 0, 0}, seg))),
		"MLD query (130)":             ipv6(router, us6, 58, nil, icmp6(router, us6, 130, 0, make([]byte, 20))),
		"MLD report (131)":            ipv6(router, us6, 58, nil, icmp6(router, us6, 131, 0, make([]byte, 20))),
		"MLD done (132)":              ipv6(router, us6, 58, nil, icmp6(router, us6, 132, 0, make([]byte, 20))),
		"MLDv2 report (143)":          ipv6(router, us6, 58, nil, icmp6(router, us6, 143, 0, make([]byte, 4))),
		"unknown informational (200)": ipv6(router, us6, 58, nil, icmp6(router, us6, 200, 0, cat(make([]byte, 4), seg))),
		"tcp":                         tcp6Packet(router, us6, seg),
	} {
		pkt := mustParse6(t, msg, us6)
		reply, e, isErr := NewIPv6(us6).ICMP(&pkt, make([]byte, 1500))
		if reply != 0 || isErr {
			t.Errorf("%s: ICMP = %d, %v, %+v", name, reply, isErr, e)
		}
	}
	// Errors are never sent to a multicast address.
	pkt := mustParse6(t, errMsg(seg), us6)
	pkt.Dst = us6Group
	if _, ok := ParseICMPv6Error(&pkt, us6); ok {
		t.Errorf("an error sent to our group was taken")
	}
	if _, ok := ParseICMPv6Error(&Packet{}, us6); ok {
		t.Errorf("zero packet taken")
	}
}

func TestDestUnreachable6(t *testing.T) {
	b := tcp6Packet(peer6, us6, []byte("data"))
	orig := mustParse6(t, b, us6)
	out := bytes.Repeat([]byte{0xee}, 200)
	n := DestUnreachable6(out, us6, &orig, ICMPv6CodePortUnreach)
	want := cat([]byte{0x60, 0, 0, 0, 0, byte(8 + len(b)), 58, 64}, us6.AsSlice(), peer6.AsSlice(),
		withSum6(us6, peer6, cat([]byte{1, 4, 0, 0, 0, 0, 0, 0}, b)))
	if n != len(want) || !bytes.Equal(out[:n], want) || out[n] != 0xee {
		t.Fatalf("DestUnreachable6 = %d\n got % x\nwant % x", n, out[:n], want)
	}
	// The quote is the whole packet as parsed, extension headers
	// included, without link padding.
	ext := ipv6(peer6, us6, 0, cat(optsHdr(60), optsHdr(6)), tcp6(peer6, us6, nil))
	pe := mustParse6(t, append(append([]byte{}, ext...), 0, 0, 0), us6)
	if n := DestUnreachable6(out, us6, &pe, 1); n != 48+len(ext) || !bytes.Equal(out[48:n], ext) || rfc1071(pseudo6(us6, peer6, 58, n-40), out[40:n]) != 0 {
		t.Errorf("with extension headers: %d % x", n, out[:n])
	}
	// A large packet is quoted up to 1280 bytes in all (RFC 4443 §2.4 (c)).
	large := tcp6Packet(peer6, us6, make([]byte, 1400))
	pl := mustParse6(t, large, us6)
	big := make([]byte, 1500)
	if n := DestUnreachable6(big, us6, &pl, 4); n != 1280 || !bytes.Equal(big[48:n], large[:1232]) ||
		rfc1071(pseudo6(us6, peer6, 58, 1240), big[40:n]) != 0 {
		t.Errorf("large: %d", n)
	}
	if n := DestUnreachable6(big[:1279], us6, &pl, 4); n != 0 {
		t.Errorf("out of 1279 bytes: %d", n)
	}
	// An echo request is informational: an error about it is allowed.
	echo := mustParse6(t, echo6(peer6, us6, nil), us6)
	if n := DestUnreachable6(out, us6, &echo, 4); n != 48+48 {
		t.Errorf("about an echo request: %d", n)
	}
}

func TestDestUnreachable6Refuses(t *testing.T) {
	out := make([]byte, 1500)
	router := netip.MustParseAddr("fd00:7:5eed::ff")
	parse := func(b []byte) *Packet { return ptr(mustParse6(t, b, us6)) }
	base := *parse(tcp6Packet(peer6, us6, []byte("data")))
	if DestUnreachable6(out, us6, &base, 4) == 0 {
		t.Fatal("baseline refused")
	}
	mcast, unspec, mcastSrc, self, v4, noHdr := base, base, base, base, base, base
	mcast.Dst = netip.MustParseAddr("ff02::1")
	unspec.Src = netip.IPv6Unspecified()
	mcastSrc.Src = netip.MustParseAddr("ff02::2")
	self.Src = us6
	v4.Version = 4
	noHdr.Header = noHdr.Header[:39]
	tooBig := ipv6(router, us6, 58, nil, icmp6(router, us6, 2, 0, cat([]byte{0, 0, 5, 0}, tcp6Packet(us6, peer6, nil))))
	for name, p := range map[string]*Packet{
		"about a dest unreachable": parse(ipv6(router, us6, 58, nil, icmp6(router, us6, 1, 4, make([]byte, 52)))),
		"about a packet too big":   parse(tooBig),
		"about an unknown error":   parse(ipv6(router, us6, 58, nil, icmp6(router, us6, 100, 0, make([]byte, 4)))),
		"about a redirect":         parse(ipv6(router, us6, 58, nil, icmp6(router, us6, 137, 0, make([]byte, 36)))),
		"about an empty ICMPv6":    {Version: 6, Src: peer6, Dst: us6, Protocol: ProtoICMPv6, Header: base.Header},
		"to our group (NS)":        parse(ns6(peer6, us6Group, us6, 255, nil)),
		"from :: (DAD)":            parse(ns6(netip.IPv6Unspecified(), us6Group, us6, 255, nil)),
		"to all nodes":             &mcast,
		"from ::":                  &unspec,
		"from multicast":           &mcastSrc,
		"from ourselves":           &self,
		"an IPv4 packet":           &v4,
		"header of 39 bytes":       &noHdr,
		"zero packet":              {},
	} {
		if n := DestUnreachable6(out, us6, p, 4); n != 0 {
			t.Errorf("%s: DestUnreachable6 = %d, want 0", name, n)
		}
	}
	for _, src := range []netip.Addr{us, netip.MustParseAddr("ff02::1"), netip.IPv6Unspecified(), peer6, {}} {
		if n := DestUnreachable6(out, src, &base, 4); n != 0 {
			t.Errorf("from %v: %d", src, n)
		}
	}
}

func TestPacketTooBigRefuses(t *testing.T) {
	out := make([]byte, 1500)
	router := netip.MustParseAddr("fd00:7:5eed::ff")
	seg := tcp6Packet(us6, peer6, []byte("x"))
	if n := PacketTooBig(out, router, seg, 1280); n != 48+len(seg) {
		t.Fatalf("baseline: %d", n)
	}
	// Padding beyond the payload length is not quoted; a packet to a
	// multicast group may be answered (RFC 4443 §2.4 (e.3)).
	if n := PacketTooBig(out, router, append(append([]byte{}, seg...), 0, 0), 1280); n != 48+len(seg) {
		t.Errorf("padded: %d", n)
	}
	if n := PacketTooBig(out, router, echo6(us6, netip.MustParseAddr("ff0e::1"), nil), 1280); n != 48+48 {
		t.Errorf("about multicast: %d", n)
	}
	unspecSrc := append([]byte{}, seg...)
	clear(unspecSrc[8:24])
	mcastSrc := append([]byte{}, seg...)
	mcastSrc[8] = 0xff
	cut := cat(seg[:40], []byte{6}) // the header's length byte missing
	cut[6] = 60
	icmpCut := cat(seg[:40], []byte{58, 1}) // an ICMPv6 type beyond the end
	icmpCut[6] = 60
	for name, orig := range map[string][]byte{
		"39 bytes":             seg[:39],
		"IPv4":                 tcpPacket(us, peer, nil),
		"about an error":       ipv6(us6, peer6, 58, nil, icmp6(us6, peer6, 1, 0, make([]byte, 44))),
		"about a redirect":     ipv6(us6, peer6, 58, nil, icmp6(us6, peer6, 137, 0, make([]byte, 36))),
		"about an ICMPv6 cut":  ipv6(us6, peer6, 58, nil, nil),
		"upper layer not seen": cut,
		"ICMPv6 type not seen": icmpCut,
		"from ::":              unspecSrc,
		"from multicast":       mcastSrc,
	} {
		if n := PacketTooBig(out, router, orig, 1280); n != 0 {
			t.Errorf("%s: PacketTooBig = %d, want 0", name, n)
		}
	}
	for _, src := range []netip.Addr{us, us6, netip.MustParseAddr("ff02::1"), {}} {
		if n := PacketTooBig(out, src, seg, 1280); n != 0 {
			t.Errorf("from %v: %d", src, n)
		}
	}
	if n := PacketTooBig(out[:48+len(seg)-1], router, seg, 1280); n != 0 {
		t.Errorf("small out: %d", n)
	}
}

func TestNoAllocs6(t *testing.T) {
	n := NewIPv6(us6)
	full := tcp6Packet(peer6, us6, make([]byte, 1440))
	chain := ipv6(peer6, us6, 0, cat(optsHdr(60, 5, 2, 0, 0), optsHdr(43), routingHdr(6, 0, 0, 2)), tcp6(peer6, us6, make([]byte, 1000)))
	echo := echo6(peer6, us6, make([]byte, 56))
	echoPkt := mustParse6(t, echo, us6)
	nsPkt := mustParse6(t, ns6(peer6, us6Group, us6, 255, []byte{1, 1, 2, 0, 0, 0, 0, 1}), us6)
	tcpPkt := mustParse6(t, full, us6)
	ours := ourSegment(t, nil, 0, 100)
	out := make([]byte, 2048)
	unreach := make([]byte, 1500)
	unreachPkt := mustParse6(t, unreach[:DestUnreachable6(unreach, peer6, ptr(mustParse6(t, ours, peer6)), 4)], us6)
	seg := tcp.Segment{SrcPort: 1, DstPort: 2, Flags: tcp.FlagACK, Payload: make([]byte, 1000)}
	for name, f := range map[string]func(){
		"Parse TCP":         func() { _, r := Parse(full, us6); sinkN += int(r) },
		"Parse chain":       func() { _, r := Parse(chain, us6); sinkN += int(r) },
		"Parse echo":        func() { _, r := Parse(echo, us6); sinkN += int(r) },
		"Parse bad":         func() { _, r := Parse(full[:50], us6); sinkN += int(r) },
		"IPv6.Parse":        func() { _, r := n.Parse(full, false); sinkN += int(r) },
		"EchoReply6":        func() { sinkN += EchoReply6(out, &echoPkt, 1) },
		"NeighborAdvert":    func() { sinkN += NeighborAdvert(out, &nsPkt, us6) },
		"ParseICMPv6Error":  func() { e, _ := ParseICMPv6Error(&unreachPkt, us6); sinkN += int(e.Seq) },
		"ICMP echo":         func() { r, _, _ := n.ICMP(&echoPkt, out); sinkN += r },
		"ICMP NS":           func() { r, _, _ := n.ICMP(&nsPkt, out); sinkN += r },
		"ICMP error":        func() { _, e, _ := n.ICMP(&unreachPkt, out); sinkN += int(e.Seq) },
		"DestUnreachable6":  func() { sinkN += DestUnreachable6(out, us6, &tcpPkt, 4) },
		"PacketTooBig":      func() { sinkN += PacketTooBig(out, peer6, full, 1280) },
		"BuildHeader":       func() { sinkN += n.BuildHeader(out, peer6, ProtoTCP, 5, 1000) },
		"PseudoHeaderSum":   func() { sinkN += int(PseudoHeaderChecksum(us6, peer6, ProtoTCP, 1000)) },
		"TCPChecksum":       func() { sinkN += int(TCPChecksum(us6, peer6, full[40:])) },
		"BuildTCP":          func() { _, total := BuildTCP(n, out, peer6, 9, &seg, false); sinkN += total },
		"BuildTCP, partial": func() { _, total := BuildTCP(n, out, peer6, 9, &seg, true); sinkN += total },
	} {
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %v allocations per run", name, a)
		}
	}
}

// TestParamProblem6: the problems RFC 8200 §4 asks a node to report get an
// ICMPv6 Parameter Problem (RFC 4443 §3.4) with the right code and a
// pointer to the offending byte, quoting the packet; the ones it asks to
// be dropped silently get nothing; and so does a packet from a source
// that names no single other node.
func TestParamProblem6(t *testing.T) {
	seg := tcp6(peer6, us6, []byte("x"))
	solicited := netip.AddrFrom16(solicitedNode(us6.As16()))
	for _, tc := range []struct {
		name    string
		pkt     []byte
		code    int // -1: no message
		pointer uint32
	}{
		{"option of action 10", ipv6(peer6, us6, 60, optsHdr(6, 0x80, 0), seg), 2, 42},
		{"option of action 11, after padding", ipv6(peer6, us6, 60, optsHdr(6, 1, 0, 0xc5, 1, 7), seg), 2, 44},
		{"hop-by-hop option of action 10", ipv6(peer6, us6, 0, optsHdr(6, 0x9e, 2, 0, 0), seg), 2, 42},
		{"option of action 01: silent", ipv6(peer6, us6, 60, optsHdr(6, 0x45, 0), seg), -1, 0},
		{"routing, segments left 1", ipv6(peer6, us6, 43, routingHdr(6, 4, 1, 2), seg), 0, 42},
		{"unknown next header", ipv6(peer6, us6, 253, nil, seg), 1, 6},
		{"unknown next header after options", ipv6(peer6, us6, 60, optsHdr(253), seg), 1, 40},
		{"hop-by-hop not first", ipv6(peer6, us6, 60, cat(optsHdr(0), optsHdr(6)), seg), 1, 40},
		{"ESP", ipv6(peer6, us6, 50, nil, seg), 1, 6},
		{"no next header: silent", ipv6(peer6, us6, 59, nil, seg), -1, 0},
		{"UDP: silent, as on IPv4", ipv6(peer6, us6, 17, nil, seg), -1, 0},
		{"truncated options: silent", ipv6(peer6, us6, 60, []byte{6, 3, 1, 0, 0, 0, 0, 0}, seg), -1, 0},
		{"a fine packet", tcp6Packet(peer6, us6, []byte("x")), -1, 0},
		{"a fragment: dropped, not a parameter problem", ipv6(peer6, us6, 44, fragHdr(6, 0, true), seg), -1, 0},
		{"action 10 to a multicast group: still reported", ipv6(peer6, solicited, 60, optsHdr(58, 0x80, 0), seg), 2, 42},
		{"action 11 to a multicast group: silent", ipv6(peer6, solicited, 60, optsHdr(58, 0xc0, 0), seg), -1, 0},
		{"from a multicast source", ipv6(netip.MustParseAddr("ff02::1"), us6, 60, optsHdr(6, 0x80, 0), seg), -1, 0},
		{"from ourselves", ipv6(us6, us6, 60, optsHdr(6, 0x80, 0), seg), -1, 0},
		{"to someone else", ipv6(peer6, netip.MustParseAddr("fd00:7:5eed::9"), 60, optsHdr(6, 0x80, 0), seg), -1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := make([]byte, 1500)
			n := ParamProblem6(out, us6, tc.pkt)
			if tc.code < 0 {
				if n != 0 {
					t.Fatalf("sent %d bytes, want nothing", n)
				}
				return
			}
			if n == 0 {
				t.Fatal("sent nothing")
			}
			// The message parses at its destination, the packet's source.
			pkt, r := Parse(out[:n], peer6)
			if r != DropNone || pkt.Protocol != ProtoICMPv6 || pkt.Src != us6 {
				t.Fatalf("the message does not parse at %v: %v", peer6, r)
			}
			m := pkt.Payload
			if m[0] != ICMPv6ParamProblem || int(m[1]) != tc.code || binary.BigEndian.Uint32(m[4:8]) != tc.pointer {
				t.Errorf("type %d code %d pointer %d, want 4, %d, %d", m[0], m[1], binary.BigEndian.Uint32(m[4:8]), tc.code, tc.pointer)
			}
			if !bytes.Equal(m[8:], tc.pkt) {
				t.Errorf("quote of %d bytes, not the packet's %d", len(m)-8, len(tc.pkt))
			}
		})
	}
	bad := ipv6(peer6, us6, 60, optsHdr(6, 0x80, 0), seg)
	out := make([]byte, 1500)
	if a := testing.AllocsPerRun(100, func() { ParamProblem6(out, us6, bad) }); a != 0 {
		t.Errorf("%v allocations", a)
	}
}
