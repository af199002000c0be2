package ip

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/tcp"
)

// Captured on this kind of machine (Linux 6.18) from the kernel writing to
// a TUN device (IFF_TUN|IFF_NO_PI, address fd00:7:5eed::1/64, nodad): the
// kernel's own router solicitation as the link came up, then a connect()
// to [fd00:7:5eed::2]:8080 and `ping -6 -c1 -s16 fd00:7:5eed::2`. The
// checksums are the kernel's.
const (
	capturedSYN6Hex = "600b60d000280640" + // v6, flow label 0xb60d0, payload 40, TCP, hop limit 64
		"fd0000075eed00000000000000000001fd0000075eed00000000000000000002" +
		"da161f90cb7441a800000000a002fd2098e60000" + // 55830 -> 8080, SYN, csum 0x98e6
		"020405a00402080a86646cf4000000000103030a" // MSS 1440, SACK-perm, TS, WS 10
	capturedEcho6Hex = "6005f9b700183a40" + // flow label 0x5f9b7, payload 24, ICMPv6, hop limit 64
		"fd0000075eed00000000000000000001fd0000075eed00000000000000000002" +
		"8000b85772c50001" + // echo request, csum 0xb857, id 0x72c5, seq 1
		"092e0d6b000000007f08070000000000" // 16 bytes of data
	capturedRSHex = "6000000000083aff" + // payload 8, ICMPv6, hop limit 255
		"fe8000000000000039898d85260eb56fff020000000000000000000000000002" + // fe80::… -> ff02::2
		"8500daaa00000000" // router solicitation
)

var (
	us6   = netip.MustParseAddr("fd00:7:5eed::2") // "us": destination of the captures
	peer6 = netip.MustParseAddr("fd00:7:5eed::1") // the kernel side
	// us6Group is us6's solicited-node group, written out by hand.
	us6Group = netip.MustParseAddr("ff02::1:ff00:2")
)

// pseudo6 lays out the RFC 8200 §8.1 pseudo-header by hand.
func pseudo6(src, dst netip.Addr, proto uint8, length int) []byte {
	p := make([]byte, 40)
	copy(p[0:16], src.AsSlice())
	copy(p[16:32], dst.AsSlice())
	binary.BigEndian.PutUint32(p[32:36], uint32(length))
	p[39] = proto
	return p
}

// ipv6 lays out an IPv6 packet with gvisor's encoder: flow label 0x12345,
// hop limit 50, next header next, then ext (extension headers laid out
// by the caller) and payload.
func ipv6(src, dst netip.Addr, next uint8, ext, payload []byte) []byte {
	b := make([]byte, header.IPv6MinimumSize+len(ext)+len(payload))
	header.IPv6(b).Encode(&header.IPv6Fields{
		FlowLabel:         0x12345,
		PayloadLength:     uint16(len(ext) + len(payload)),
		TransportProtocol: tcpip.TransportProtocolNumber(next),
		HopLimit:          50,
		SrcAddr:           tcpip.AddrFrom16(src.As16()),
		DstAddr:           tcpip.AddrFrom16(dst.As16()),
	})
	copy(b[40:], ext)
	copy(b[40+len(ext):], payload)
	return b
}

// optsHdr lays out a hop-by-hop or destination options header holding
// opts, padded with Pad1 or PadN to a multiple of 8 bytes.
func optsHdr(next uint8, opts ...byte) []byte {
	h := append([]byte{next, 0}, opts...)
	switch pad := (8 - len(h)%8) % 8; pad {
	case 0:
	case 1:
		h = append(h, 0)
	default:
		h = append(append(h, 1, byte(pad-2)), make([]byte, pad-2)...)
	}
	h[1] = byte(len(h)/8 - 1)
	return h
}

// routingHdr lays out a routing header of the given type and segments
// left, (units+1)*8 bytes long.
func routingHdr(next, typ, segLeft uint8, units int) []byte {
	h := make([]byte, (units+1)*8)
	h[0], h[1], h[2], h[3] = next, byte(units), typ, segLeft
	return h
}

// fragHdr lays out a fragment header (RFC 8200 §4.5).
func fragHdr(next uint8, offset uint16, more bool) []byte {
	h := []byte{next, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef}
	v := offset << 3
	if more {
		v |= 1
	}
	binary.BigEndian.PutUint16(h[2:], v)
	return h
}

func cat(bs ...[]byte) []byte { return bytes.Join(bs, nil) }

// tcp6 is a TCP segment (ACK|PSH, ports 40000 -> 80) from src to dst,
// its checksum computed with rfc1071 over pseudo6.
func tcp6(src, dst netip.Addr, data []byte) []byte {
	seg := make([]byte, header.TCPMinimumSize+len(data))
	header.TCP(seg).Encode(&header.TCPFields{
		SrcPort: 40000, DstPort: 80, SeqNum: 1000, AckNum: 2000,
		DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck | header.TCPFlagPsh, WindowSize: 65535,
	})
	copy(seg[header.TCPMinimumSize:], data)
	header.TCP(seg).SetChecksum(rfc1071(pseudo6(src, dst, 6, len(seg)), seg))
	return seg
}

// icmp6 is an ICMPv6 message of the given type and code followed by body
// (the 4 bytes of type-specific data first), its checksum computed with
// rfc1071 over pseudo6.
func icmp6(src, dst netip.Addr, typ, code uint8, body []byte) []byte {
	m := append([]byte{typ, code, 0, 0}, body...)
	binary.BigEndian.PutUint16(m[2:], rfc1071(pseudo6(src, dst, 58, len(m)), m))
	return m
}

func tcp6Packet(src, dst netip.Addr, data []byte) []byte {
	return ipv6(src, dst, 6, nil, tcp6(src, dst, data))
}

// echo6 is an echo request (ident 0x1234, sequence 9) carrying data.
func echo6(src, dst netip.Addr, data []byte) []byte {
	return ipv6(src, dst, 58, nil, icmp6(src, dst, 128, 0, append([]byte{0x12, 0x34, 0, 9}, data...)))
}

// walk6 finds the upper layer of the IPv6 packet b by its own reading of
// RFC 8200 §4, trusting the payload length: the next header, its offset,
// whether a fragment header was passed, and false if b is cut short.
func walk6(b []byte) (next uint8, off int, frag, ok bool) {
	if len(b) < 40 {
		return 0, 0, false, false
	}
	next, off = b[6], 40
	for n := 0; n < 100; n++ {
		switch next {
		case 0, 43, 60:
			if off+2 > len(b) {
				return 0, 0, frag, false
			}
			next, off = b[off], off+8+8*int(b[off+1])
		case 44:
			if off+2 > len(b) {
				return 0, 0, frag, false
			}
			next, off, frag = b[off], off+8, true
		default:
			return next, off, frag, off <= len(b)
		}
	}
	return 0, 0, frag, false
}

// fix6 recomputes, with rfc1071, the TCP or ICMPv6 checksum of the IPv6
// packet b after any extension headers, if it can find it.
func fix6(b []byte) []byte {
	if len(b) < 40 {
		return b
	}
	end := 40 + int(binary.BigEndian.Uint16(b[4:6]))
	if end > len(b) {
		return b
	}
	next, off, _, ok := walk6(b[:end])
	if !ok {
		return b
	}
	src, dst := netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
	up := b[off:end]
	switch {
	case next == 6 && len(up) >= 18:
		up[16], up[17] = 0, 0
		binary.BigEndian.PutUint16(up[16:], rfc1071(pseudo6(src, dst, 6, len(up)), up))
	case next == 58 && len(up) >= 4:
		up[2], up[3] = 0, 0
		binary.BigEndian.PutUint16(up[2:], rfc1071(pseudo6(src, dst, 58, len(up)), up))
	}
	return b
}

func TestParse6CapturedSYN(t *testing.T) {
	b := mustHex(t, capturedSYN6Hex)
	pkt, r := Parse(b, us6)
	if r != DropNone {
		t.Fatalf("kernel SYN dropped: %v", r)
	}
	if pkt.Version != 6 || pkt.Src != peer6 || pkt.Dst != us6 || pkt.Protocol != ProtoTCP || pkt.TTL != 64 ||
		pkt.FlowLabel != 0xb60d0 || pkt.ID != 0 {
		t.Errorf("fields: %+v", pkt)
	}
	if !within(b, pkt.Header, 0) || len(pkt.Header) != 40 || !within(b, pkt.Payload, 40) || len(pkt.Payload) != 40 {
		t.Errorf("header %d / payload %d bytes, not b[:40], b[40:]", len(pkt.Header), len(pkt.Payload))
	}
	h := header.TCP(pkt.Payload)
	if h.SourcePort() != 55830 || h.DestinationPort() != 8080 || h.Flags() != header.TCPFlagSyn {
		t.Errorf("tcp: %d -> %d flags %v", h.SourcePort(), h.DestinationPort(), h.Flags())
	}
	// One flipped bit anywhere in the segment or in an address is caught.
	for _, i := range []int{9, 30, 40, 55, 79} {
		c := append([]byte{}, b...)
		c[i] ^= 0x10
		if _, r := Parse(c, us6); r == DropNone {
			t.Errorf("bit flip at %d accepted", i)
		}
	}
}

func TestParse6CapturedEcho(t *testing.T) {
	b := mustHex(t, capturedEcho6Hex)
	pkt, r := Parse(b, us6)
	if r != DropNone {
		t.Fatalf("ping dropped: %v", r)
	}
	if pkt.Src != peer6 || pkt.Dst != us6 || pkt.Protocol != ProtoICMPv6 || pkt.TTL != 64 || pkt.FlowLabel != 0x5f9b7 {
		t.Errorf("fields: %+v", pkt)
	}
	m := header.ICMPv6(pkt.Payload)
	if len(m) != 24 || m.Type() != header.ICMPv6EchoRequest || m.Ident() != 0x72c5 || m.Sequence() != 1 {
		t.Errorf("icmp: len %d type %d id %#x seq %d", len(m), m.Type(), m.Ident(), m.Sequence())
	}
}

func TestParse6CapturedRouterSolicitation(t *testing.T) {
	// The kernel solicits routers (ff02::2) as the link comes up: not for
	// us, whatever our address.
	b := mustHex(t, capturedRSHex)
	for _, local := range []netip.Addr{us6, {}} {
		if _, r := Parse(b, local); r != DropNotForUs {
			t.Errorf("local %v: %v, want not_for_us", local, r)
		}
	}
}

func TestParse6ValidTCP(t *testing.T) {
	data := []byte("hello, world")
	b := tcp6Packet(peer6, us6, data)
	for _, local := range []netip.Addr{us6, {}, netip.IPv6Unspecified()} {
		pkt, r := Parse(b, local)
		if r != DropNone {
			t.Fatalf("local %v: reason %v", local, r)
		}
		if pkt.Version != 6 || pkt.Src != peer6 || pkt.Dst != us6 || pkt.Protocol != ProtoTCP || pkt.TTL != 50 ||
			pkt.FlowLabel != 0x12345 {
			t.Errorf("fields: %+v", pkt)
		}
		if got := header.TCP(pkt.Payload).Payload(); !bytes.Equal(got, data) {
			t.Errorf("segment data %q", got)
		}
	}
}

func TestParse6StripsPadding(t *testing.T) {
	b := tcp6Packet(peer6, us6, []byte("x"))
	padded := append(append([]byte{}, b...), 0, 0, 0, 0, 0, 0)
	pkt, r := Parse(padded, us6)
	if r != DropNone {
		t.Fatalf("padded packet dropped: %v", r)
	}
	if !bytes.Equal(pkt.Payload, b[40:]) || cap(pkt.Payload) != len(pkt.Payload) || cap(pkt.Header) != 40 {
		t.Errorf("payload %d bytes (cap %d), want %d", len(pkt.Payload), cap(pkt.Payload), len(b)-40)
	}
}

func TestParse6Trusted(t *testing.T) {
	b := tcp6Packet(peer6, us6, []byte("data"))
	b[len(b)-1] ^= 1
	if _, r := Parse(b, us6); r != DropTCPChecksum {
		t.Fatalf("Parse: %v", r)
	}
	if pkt, r := ParseTrusted(b, us6); r != DropNone || pkt.Protocol != ProtoTCP {
		t.Errorf("ParseTrusted: %v", r)
	}
	// The rest is still checked: the ICMPv6 checksum, the data offset.
	e := echo6(peer6, us6, []byte("x"))
	e[len(e)-1] ^= 1
	if _, r := ParseTrusted(e, us6); r != DropICMP {
		t.Errorf("ParseTrusted, bad ICMPv6 checksum: %v", r)
	}
	// The TCP header's structure is not the network layer's to check:
	// tcp.Parse does, once (and the stack counts DropTCPShort).
	b = tcp6Packet(peer6, us6, nil)
	b[40+12] = 4 << 4
	if _, r := ParseTrusted(b, us6); r != DropNone {
		t.Errorf("ParseTrusted, data offset 4: %v, want it left to tcp.Parse", r)
	}
}

// TestParse6ExtensionChains: extension headers a host must accept, and
// the upper layer found behind them.
func TestParse6ExtensionChains(t *testing.T) {
	seg := tcp6(peer6, us6, []byte("behind the chain"))
	echo := icmp6(peer6, us6, 128, 0, []byte{0, 1, 0, 2, 'p', 'i', 'n', 'g'})
	eight := []byte{}
	for i := 0; i < 7; i++ {
		eight = append(eight, optsHdr(60)...)
	}
	eight = append(eight, optsHdr(6)...)
	for _, tc := range []struct {
		name  string
		first uint8
		ext   []byte
		up    []byte
	}{
		{"hop-by-hop", 0, optsHdr(6), seg},
		{"hop-by-hop, router alert (skip)", 0, optsHdr(6, 5, 2, 0, 0), seg},
		{"destination options, PadN", 60, optsHdr(6, 1, 4, 0, 0, 0, 0), seg},
		{"destination options, Pad1s", 60, optsHdr(6, 0, 0, 0, 0, 0, 0), seg},
		{"destination options, unknown option type 00", 60, optsHdr(6, 0x1e, 3, 'a', 'b', 'c'), seg},
		{"destination options, 16 bytes", 60, optsHdr(6, 0x3f, 10, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9), seg},
		{"routing, segments left 0", 43, routingHdr(6, 4, 0, 2), seg},
		{"routing type 0, segments left 0", 43, routingHdr(6, 0, 0, 2), seg},
		{"hop-by-hop + dest opts + routing + dest opts", 0,
			cat(optsHdr(60), optsHdr(43, 1, 0), routingHdr(60, 3, 0, 0), optsHdr(6)), seg},
		{"eight headers", 60, eight, seg},
		{"chain to ICMPv6", 0, cat(optsHdr(43), routingHdr(58, 2, 0, 1)), echo},
		// RFC 6946 §4: an atomic fragment MUST be processed as a whole packet.
		{"atomic fragment", 44, fragHdr(6, 0, false), seg},
		{"hop-by-hop + atomic fragment to ICMPv6", 0, cat(optsHdr(44), fragHdr(58, 0, false)), echo},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := ipv6(peer6, us6, tc.first, tc.ext, tc.up)
			pkt, r := Parse(b, us6)
			if r != DropNone {
				t.Fatalf("reason %v", r)
			}
			if len(pkt.Header) != 40+len(tc.ext) || !within(b, pkt.Header, 0) ||
				!within(b, pkt.Payload, 40+len(tc.ext)) || !bytes.Equal(pkt.Payload, tc.up) {
				t.Errorf("header %d bytes, payload %d: not split after the chain", len(pkt.Header), len(pkt.Payload))
			}
			want := ProtoTCP
			if bytes.Equal(tc.up, echo) {
				want = ProtoICMPv6
			}
			if pkt.Protocol != want {
				t.Errorf("protocol %d", pkt.Protocol)
			}
		})
	}
}

func TestParse6Drops(t *testing.T) {
	tcp := func() []byte { return tcp6Packet(peer6, us6, []byte("data")) }
	seg := tcp6(peer6, us6, []byte("data"))
	withExt := func(first uint8, ext ...[]byte) []byte { return ipv6(peer6, us6, first, cat(ext...), seg) }
	echo := func(src, dst netip.Addr) []byte { return echo6(src, dst, []byte("ping")) }
	ns := func(src, dst netip.Addr) []byte {
		return ipv6(src, dst, 58, nil, icmp6(src, dst, 135, 0, append(make([]byte, 4), us6.AsSlice()...)))
	}
	other := netip.MustParseAddr("fd00:7:5eed::3")
	nine := []byte{}
	for i := 0; i < 8; i++ {
		nine = append(nine, optsHdr(60)...)
	}
	nine = append(nine, optsHdr(6)...)
	tests := []struct {
		name  string
		pkt   []byte
		local netip.Addr
		want  DropReason
	}{
		{"empty", nil, us6, DropShort},
		{"39 bytes", tcp()[:39], us6, DropShort},
		{"20-byte header only", tcp()[:20], us6, DropShort},
		{"IPv4 packet, IPv6 local", tcpPacket(peer, us, nil), us6, DropVersion},
		{"IPv6 packet, IPv4 local", tcp(), us, DropVersion},
		{"version 7", func() []byte { b := tcp(); b[0] = 7<<4 | b[0]&0xf; return b }(), us6, DropVersion},
		{"payload length beyond the bytes", func() []byte {
			b := tcp()
			binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40+1))
			return b
		}(), us6, DropTotalLength},
		{"truncated", tcp()[:50], us6, DropTotalLength},
		{"payload length 0 (jumbogram)", func() []byte {
			b := withExt(0, optsHdr(6, 0xc2, 4, 0, 0, 0, 80))
			b[4], b[5] = 0, 0
			return b
		}(), us6, DropTotalLength},
		{"payload length 0, no next header", ipv6(peer6, us6, 59, nil, nil), us6, DropTotalLength},
		{"fragment", withExt(44, fragHdr(6, 0, true)), us6, DropFragment},
		{"fragment, offset", withExt(44, fragHdr(6, 185, false)), us6, DropFragment},
		{"fragment after hop-by-hop and routing", withExt(0, optsHdr(43), routingHdr(44, 0, 0, 0), fragHdr(6, 0, true)), us6, DropFragment},
		{"wrong dst", tcp6Packet(peer6, other, nil), us6, DropNotForUs},
		{"all-nodes dst", echo(peer6, netip.MustParseAddr("ff02::1")), us6, DropNotForUs},
		{"all-nodes dst, any local", echo(peer6, netip.MustParseAddr("ff02::1")), netip.Addr{}, DropNotForUs},
		{"global multicast dst, any local", tcp6Packet(peer6, netip.MustParseAddr("ff0e::101"), nil), netip.Addr{}, DropNotForUs},
		{"our solicited-node group, TCP", tcp6Packet(peer6, us6Group, nil), us6, DropNotForUs},
		{"our solicited-node group, TCP after options", ipv6(peer6, us6Group, 60, optsHdr(6), tcp6(peer6, us6Group, nil)), us6, DropNotForUs},
		{"another's solicited-node group", ns(peer6, netip.MustParseAddr("ff02::1:ff00:3")), us6, DropNotForUs},
		{"solicited-node group, any local", ns(peer6, us6Group), netip.Addr{}, DropNotForUs},
		{"loopback dst, any local", tcp6Packet(peer6, netip.IPv6Loopback(), nil), netip.Addr{}, DropNotForUs},
		{"unspecified dst, any local", tcp6Packet(peer6, netip.IPv6Unspecified(), nil), netip.Addr{}, DropNotForUs},
		{"v4-mapped dst, any local", tcp6Packet(peer6, netip.MustParseAddr("::ffff:192.0.2.1"), nil), netip.Addr{}, DropNotForUs},
		{"v4-mapped dst equal to a v4-mapped local", tcp6Packet(peer6, netip.MustParseAddr("::ffff:192.0.2.1"), nil),
			netip.MustParseAddr("::ffff:192.0.2.1"), DropNotForUs},
		{"UDP", ipv6(peer6, us6, 17, nil, make([]byte, 8)), us6, DropProtocol},
		{"no next header after options", withExt(60, optsHdr(59)), us6, DropProtocol},
		{"no next header", ipv6(peer6, us6, 59, nil, make([]byte, 8)), us6, DropProtocol},
		{"ESP", ipv6(peer6, us6, 50, nil, make([]byte, 16)), us6, DropProtocol},
		{"AH after routing", withExt(43, routingHdr(51, 0, 0, 0), make([]byte, 16)), us6, DropProtocol},
		{"ICMP (v4) in IPv6", ipv6(peer6, us6, 1, nil, make([]byte, 8)), us6, DropProtocol},
		{"TCP checksum", func() []byte { b := tcp(); b[len(b)-1] ^= 0x40; return b }(), us6, DropTCPChecksum},
		{"TCP checksum behind extension headers", func() []byte {
			b := withExt(0, optsHdr(60), optsHdr(6))
			b[len(b)-2] ^= 0x40
			return b
		}(), us6, DropTCPChecksum},
		{"TCP checksum misses the pseudo-header", func() []byte {
			b := tcp()
			copy(b[8:24], other.AsSlice()) // the source the sum was not made for
			return b
		}(), us6, DropTCPChecksum},
		{"TCP checksum with a v4-style pseudo-header", func() []byte {
			b := tcp()
			up := b[40:]
			up[16], up[17] = 0, 0
			binary.BigEndian.PutUint16(up[16:], rfc1071(pseudo(peer6, us6, 6, len(up)), up))
			return b
		}(), us6, DropTCPChecksum},
		{"TCP length in pseudo-header", func() []byte {
			// Trimming a zero word leaves the bytes' sum alone: only
			// the pseudo-header's length catches it.
			b := tcp6Packet(peer6, us6, []byte{'a', 'b', 0, 0})
			binary.BigEndian.PutUint16(b[4:], uint16(len(b)-40-2))
			return b
		}(), us6, DropTCPChecksum},
		{"ICMPv6 checksum", func() []byte { b := echo(peer6, us6); b[len(b)-1] ^= 1; return b }(), us6, DropICMP},
		{"ICMPv6 checksum without pseudo-header", func() []byte {
			b := echo(peer6, us6)
			m := b[40:]
			m[2], m[3] = 0, 0
			binary.BigEndian.PutUint16(m[2:], rfc1071(m))
			return b
		}(), us6, DropICMP},
		{"ICMPv6 4 bytes", ipv6(peer6, us6, 58, nil, icmp6(peer6, us6, 129, 0, nil)), us6, DropICMP},
		{"ICMPv6 7 bytes", ipv6(peer6, us6, 58, nil, icmp6(peer6, us6, 129, 0, []byte{1, 2, 3})), us6, DropICMP},
		{"source ::", tcp6Packet(netip.IPv6Unspecified(), us6, nil), us6, DropSource},
		{"source ::, echo", echo(netip.IPv6Unspecified(), us6), us6, DropSource},
		{"source :: to our group, TCP", tcp6Packet(netip.IPv6Unspecified(), us6Group, nil), us6, DropNotForUs},
		{"source ::1", tcp6Packet(netip.IPv6Loopback(), us6, nil), us6, DropSource},
		{"source ff02::1", tcp6Packet(netip.MustParseAddr("ff02::1"), us6, nil), us6, DropSource},
		{"source ff05::2, to our group", ns(netip.MustParseAddr("ff05::2"), us6Group), us6, DropSource},
		{"source v4-mapped", tcp6Packet(netip.MustParseAddr("::ffff:198.51.100.7"), us6, nil), us6, DropSource},
		{"source our own", tcp6Packet(us6, us6, nil), us6, DropSource},
		{"source our own, to our group", ns(us6, us6Group), us6, DropSource},
		{"source = destination, any local", tcp6Packet(peer6, peer6, nil), netip.Addr{}, DropSource},
		{"source ::, any local", tcp6Packet(netip.IPv6Unspecified(), us6, nil), netip.Addr{}, DropSource},
		{"hop-by-hop second", withExt(60, optsHdr(0), optsHdr(6)), us6, DropExtension},
		{"hop-by-hop twice", withExt(0, optsHdr(0), optsHdr(6)), us6, DropExtension},
		{"option runs past its header", withExt(60, []byte{6, 0, 1, 5, 0, 0, 0, 0}), us6, DropExtension},
		{"option length byte missing", withExt(60, []byte{6, 0, 0, 0, 0, 0, 0, 0x1e}), us6, DropExtension},
		{"unknown option, action 01", withExt(60, optsHdr(6, 0x5e, 0)), us6, DropExtension},
		{"unknown option, action 10", withExt(60, optsHdr(6, 0x9e, 0)), us6, DropExtension},
		{"unknown option, action 11", withExt(0, optsHdr(6, 0xde, 0)), us6, DropExtension},
		{"jumbo option with a payload length", withExt(0, optsHdr(6, 0xc2, 4, 0, 1, 0, 0)), us6, DropExtension},
		{"routing, segments left 1", withExt(43, routingHdr(6, 4, 1, 2)), us6, DropExtension},
		{"routing type 0, segments left 2", withExt(43, routingHdr(6, 0, 2, 4)), us6, DropExtension},
		{"options header longer than the payload", ipv6(peer6, us6, 60, []byte{6, 3, 1, 4, 0, 0, 0, 0}, nil), us6, DropExtension},
		{"routing header longer than the payload", ipv6(peer6, us6, 43, []byte{6, 1, 0, 0, 0, 0, 0, 0}, nil), us6, DropExtension},
		{"options header cut at 4 bytes", ipv6(peer6, us6, 60, nil, []byte{6, 0, 1, 0}), us6, DropExtension},
		{"routing header cut at 3 bytes", ipv6(peer6, us6, 43, nil, []byte{6, 0, 0}), us6, DropExtension},
		{"nine headers", withExt(60, nine), us6, DropExtension},
		{"valid TCP", tcp(), us6, DropNone},
		{"valid echo", echo(peer6, us6), us6, DropNone},
		{"valid TCP, any local", tcp(), netip.Addr{}, DropNone},
		{"valid TCP, link-local source", tcp6Packet(netip.MustParseAddr("fe80::1"), us6, nil), us6, DropNone},
		{"solicitation to our group", ns(peer6, us6Group), us6, DropNone},
		{"solicitation from :: to our group (DAD)", ns(netip.IPv6Unspecified(), us6Group), us6, DropNone},
	}
	seen := map[DropReason]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, r := Parse(tc.pkt, tc.local)
			if r != tc.want {
				t.Errorf("Parse = %v, want %v", r, tc.want)
			}
			if tc.local.Is6() && !tc.local.Is4In6() && Version(tc.pkt) == 6 {
				if _, r := NewIPv6(tc.local).Parse(tc.pkt, false); r != tc.want {
					t.Errorf("IPv6.Parse = %v, want %v", r, tc.want)
				}
			}
		})
		seen[tc.want] = true
	}
	for r := DropNone; r < NumDropReasons; r++ {
		if r == DropHeaderLength || r == DropChecksum {
			continue // IPv4 only: IPv6 has no IHL and no header checksum
		}
		if r == DropTCPShort {
			continue // tcp.Parse's check, counted by the stack (stack.TestShortTCPHeaderCountedOnce)
		}
		if !seen[r] {
			t.Errorf("no case produces %v", r)
		}
	}
	// The Network's Parse takes only its own version.
	if _, r := NewIPv6(us6).Parse(tcpPacket(peer, us, nil), false); r != DropVersion {
		t.Errorf("IPv6.Parse of an IPv4 packet: %v", r)
	}
}

func TestIPv6Network(t *testing.T) {
	var n Network = NewIPv6(netip.MustParseAddr("fd00:7:5eed::2%tun0"))
	if n.Version() != 6 || n.Addr() != us6 || n.HeaderLen() != 40 || n.MinMTU() != 1280 {
		t.Errorf("Version %d Addr %v HeaderLen %d MinMTU %d", n.Version(), n.Addr(), n.HeaderLen(), n.MinMTU())
	}
	b := bytes.Repeat([]byte{0xee}, 48)
	if got := n.BuildHeader(b, peer6, ProtoTCP, 0xabcdef, 1000); got != 40 {
		t.Fatalf("BuildHeader = %d", got)
	}
	want := cat([]byte{0x60, 0x0b, 0xcd, 0xef, 0x03, 0xe8, 6, 64}, us6.AsSlice(), peer6.AsSlice(), bytes.Repeat([]byte{0xee}, 8))
	if !bytes.Equal(b, want) {
		t.Errorf("BuildHeader\n got % x\nwant % x", b, want)
	}
	for _, bad := range []string{"192.0.2.1", "::ffff:192.0.2.1"} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("NewIPv6(%s) did not panic", bad)
				}
			}()
			NewIPv6(netip.MustParseAddr(bad))
		}()
	}
}

// TestBuildTCP6 builds a segment with BuildTCP over IPv6, complete and
// partial, and checks it independently.
func TestBuildTCP6(t *testing.T) {
	n := NewIPv6(us6)
	for _, dlen := range []int{0, 1, 1219} {
		data := bytes.Repeat([]byte{0x5a, 0xa5, 0x33}, 500)[:dlen]
		seg := tcp.Segment{SrcPort: 80, DstPort: 40000, Seq: 7, Ack: 9, Flags: tcp.FlagACK, Window: 512,
			Options: tcp.Options{HasTS: true, TSVal: 1, TSEcr: 2}, Payload: data}
		buf := make([]byte, 1500)
		hdr, total := BuildTCP(n, buf, peer6, 0x54321, &seg, false)
		if hdr != 40+32 || total != hdr+dlen {
			t.Fatalf("hdr %d total %d", hdr, total)
		}
		p := buf[:total]
		if rfc1071(pseudo6(us6, peer6, 6, total-40), p[40:]) != 0 {
			t.Errorf("len %d: TCP checksum does not verify", dlen)
		}
		pkt, r := Parse(p, peer6)
		if r != DropNone || pkt.FlowLabel != 0x54321 || !bytes.Equal(header.TCP(pkt.Payload).Payload(), data) {
			t.Errorf("len %d: peer parses %v, %+v", dlen, r, pkt)
		}
		// Partial: the pseudo-header's sum in the field; summing the
		// whole segment over it completes the checksum.
		part := make([]byte, 1500)
		hdr2, total2 := BuildTCP(n, part, peer6, 0x54321, &seg, true)
		if hdr2 != hdr || total2 != total {
			t.Fatalf("partial: hdr %d total %d", hdr2, total2)
		}
		copy(part[hdr:], data)
		th := header.TCP(part[40:total])
		if want := ^rfc1071(pseudo6(us6, peer6, 6, total-40)); th.Checksum() != want {
			t.Errorf("len %d: partial field %#04x, pseudo-header sum %#04x", dlen, th.Checksum(), want)
		}
		// The device's step: the complement of the sum over the
		// segment, the field (holding the seed) included.
		th.SetChecksum(rfc1071(th))
		if rfc1071(pseudo6(us6, peer6, 6, total-40), part[40:total]) != 0 {
			t.Errorf("len %d: partial checksum does not complete", dlen)
		}
	}
}
