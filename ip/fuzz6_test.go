package ip

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// repair6 makes the payload length of b agree with its size when it
// cannot be right (zero, or more than arrived), then recomputes the
// upper layer's checksum behind any extension headers, so that the
// fuzzer also explores packets that pass those checks.
func repair6(b []byte) {
	if len(b) < 40 {
		return
	}
	pl := int(binary.BigEndian.Uint16(b[4:6]))
	if n := len(b) - 40; (pl == 0 || pl > n) && n > 0 && n <= 0xffff {
		binary.BigEndian.PutUint16(b[4:6], uint16(n))
	}
	fix6(b)
}

// unicast6 is the test's own reading of RFC 4291: an address that can
// name a single node on the wire.
func unicast6(a netip.Addr) bool {
	return a.Is6() && !a.Is4In6() && !a.IsMulticast() && !a.IsUnspecified() && !a.IsLoopback()
}

// groupOf is a's solicited-node group, laid out by hand (RFC 4291 §2.7.1).
func groupOf(a netip.Addr) netip.Addr {
	s := a.As16()
	return netip.AddrFrom16([16]byte{0xff, 2, 11: 1, 12: 0xff, 13: s[13], 14: s[14], 15: s[15]})
}

// FuzzParse6 feeds Parse arbitrary IPv6 packets (with length and
// checksums optionally repaired) for an arbitrary local address, and
// checks that it never panics, that whatever it accepts is consistent
// with the input and with the checks it claims to make, and that what
// the stack builds from an accepted packet (echo reply, neighbour
// advertisement, ICMPv6 errors) is valid in turn.
func FuzzParse6(f *testing.F) {
	seg := tcp6(peer6, us6, []byte("payload"))
	echo := icmp6(peer6, us6, 128, 0, []byte{0, 1, 0, 2, 'x'})
	for _, b := range [][]byte{
		mustHex(f, capturedSYN6Hex),
		mustHex(f, capturedEcho6Hex),
		mustHex(f, capturedRSHex),
		tcp6Packet(peer6, us6, []byte("payload")),
		ipv6(peer6, us6, 0, cat(optsHdr(60, 5, 2, 0, 0), optsHdr(43, 1, 0), routingHdr(60, 3, 0, 1), optsHdr(6, 0x1e, 1, 0)), seg),
		ipv6(peer6, us6, 60, cat(optsHdr(60), optsHdr(60), optsHdr(60), optsHdr(60), optsHdr(60), optsHdr(60), optsHdr(60), optsHdr(58)), echo),
		ipv6(peer6, us6, 0, cat(optsHdr(0), optsHdr(6)), seg),
		ipv6(peer6, us6, 43, routingHdr(6, 0, 1, 2), seg),
		ipv6(peer6, us6, 44, fragHdr(6, 0, true), seg),
		ipv6(peer6, us6, 0, optsHdr(44, 0xc2, 4, 0, 1, 0, 0), cat(fragHdr(58, 0, false), echo)),
		ipv6(peer6, us6, 60, optsHdr(6, 0x9e, 1, 0), seg),
		ns6(peer6, us6Group, us6, 255, []byte{1, 1, 2, 0, 0, 0, 0, 1}),
		ns6(netip.IPv6Unspecified(), us6Group, us6, 255, nil),
		ns6(peer6, us6, us6, 255, nil),
		echo6(peer6, us6, bytes.Repeat([]byte{0xa5}, 64)),
	} {
		f.Add(b, us6.AsSlice(), false)
	}
	// ICMPv6 errors about one of our segments, with and without a chain
	// in the quote.
	ours := tcp6Packet(us6, peer6, []byte("ours"))
	ourPkt, _ := Parse(ours, peer6)
	out := make([]byte, 1500)
	f.Add(append([]byte{}, out[:DestUnreachable6(out, peer6, &ourPkt, 4)]...), us6.AsSlice(), false)
	f.Add(append([]byte{}, out[:PacketTooBig(out, peer6, ours, 1280)]...), us6.AsSlice(), false)
	chained := ipv6(us6, peer6, 0, cat(optsHdr(43), routingHdr(6, 0, 0, 0)), tcp6(us6, peer6, nil))
	f.Add(append([]byte{}, out[:PacketTooBig(out, peer6, chained, 1300)]...), us6.AsSlice(), false)
	// Any local; broken packets that repair mends.
	f.Add(tcp6Packet(peer6, us6, nil), []byte{}, false)
	f.Add(ipv6(peer6, us6, 60, optsHdr(6), seg)[:60], us6.AsSlice(), true)
	f.Add([]byte{0x60}, us6.AsSlice(), true)
	f.Fuzz(func(t *testing.T, b []byte, localB []byte, fix bool) {
		var l16 [16]byte
		copy(l16[:], localB)
		var local netip.Addr
		if l16 != ([16]byte{}) {
			local = netip.AddrFrom16(l16)
		}
		if Version(b) != 6 {
			return // FuzzParse explores IPv4
		}
		if fix {
			repair6(b)
		}
		pkt, r := Parse(b, local)
		if r >= NumDropReasons {
			t.Fatalf("reason %d out of range", r)
		}
		// ParseTrusted differs only in skipping the TCP checksum; the
		// Network's Parse not at all.
		tp, tr := ParseTrusted(b, local)
		if (r == DropTCPChecksum && tr != DropNone) || (r != DropTCPChecksum && tr != r) || (r == DropNone && !samePacket(tp, pkt)) {
			t.Fatalf("Parse %v, ParseTrusted %v", r, tr)
		}
		var n *IPv6
		if local.IsValid() && !local.Is4In6() {
			n = NewIPv6(local)
			if np, nr := n.Parse(b, false); nr != r || (r == DropNone && !samePacket(np, pkt)) {
				t.Fatalf("Parse %v, IPv6.Parse %v", r, nr)
			}
		}
		if r != DropNone {
			return
		}

		// The fixed header, as read.
		end := 40 + int(binary.BigEndian.Uint16(b[4:6]))
		hl := len(pkt.Header)
		if end > len(b) || end == 40 || hl < 40 || hl+len(pkt.Payload) != end ||
			!within(b, pkt.Header, 0) || !within(b, pkt.Payload, hl) || cap(pkt.Payload) != len(pkt.Payload) {
			t.Fatalf("lengths: payload length %d, header %d, payload %d, input %d", end-40, hl, len(pkt.Payload), len(b))
		}
		if b[0]>>4 != 6 || pkt.Version != 6 || pkt.TTL != b[7] || pkt.FlowLabel != binary.BigEndian.Uint32(b)&0xfffff || pkt.ID != 0 ||
			pkt.Src != netip.AddrFrom16([16]byte(b[8:24])) || pkt.Dst != netip.AddrFrom16([16]byte(b[24:40])) {
			t.Fatalf("fields %+v", pkt)
		}
		// The chain, walked again: at most eight headers, hop-by-hop
		// first only, no fragment but an atomic one (RFC 6946), routing
		// only with no segments left, every option one a host may skip.
		next, off := b[6], 40
		for i := 0; next != 6 && next != 58; i++ {
			if i == 8 || off+8 > end || (next == 0 && i > 0) {
				t.Fatalf("accepted a bad chain at header %d (%d)", i, next)
			}
			l := 8 + 8*int(b[off+1])
			if next == 44 {
				l = 8 // a Fragment header's second byte is reserved, not a length
			}
			switch next {
			case 0, 60:
				o := b[off+2 : off+l]
				for len(o) > 0 {
					if o[0] == 0 {
						o = o[1:]
						continue
					}
					if len(o) < 2 || 2+int(o[1]) > len(o) || (o[0] != 1 && o[0]&0xc0 != 0) {
						t.Fatalf("accepted a bad option % x", o)
					}
					o = o[2+int(o[1]):]
				}
			case 43:
				if b[off+3] != 0 {
					t.Fatalf("accepted a routing header with segments left")
				}
			case 44:
				if binary.BigEndian.Uint16(b[off+2:])&0xfff9 != 0 {
					t.Fatalf("accepted a fragment that is not atomic")
				}
			default:
				t.Fatalf("accepted next header %d", next)
			}
			next, off = b[off], off+l
		}
		if off != hl || next != pkt.Protocol {
			t.Fatalf("chain ends at %d with %d; header %d, protocol %d", off, next, hl, pkt.Protocol)
		}

		// The addresses.
		specific := local.IsValid() && !local.IsUnspecified()
		toGroup := specific && pkt.Dst == groupOf(local)
		switch {
		case toGroup:
			if pkt.Protocol != ProtoICMPv6 {
				t.Fatalf("accepted protocol %d to our group", pkt.Protocol)
			}
		case specific && pkt.Dst != local, !unicast6(pkt.Dst):
			t.Fatalf("accepted dst %v for local %v", pkt.Dst, local)
		}
		if !unicast6(pkt.Src) || pkt.Src == pkt.Dst || (specific && pkt.Src == local) {
			if !(toGroup && pkt.Src.IsUnspecified()) {
				t.Fatalf("accepted src %v (dst %v, local %v)", pkt.Src, pkt.Dst, local)
			}
		}

		// The upper layer.
		switch pkt.Protocol {
		case ProtoTCP:
			// The header's structure is tcp.Parse's; the checksum is ours.
			if rfc1071(pseudo6(pkt.Src, pkt.Dst, 6, len(pkt.Payload)), pkt.Payload) != 0 {
				t.Fatalf("accepted a TCP segment with a bad checksum")
			}
		case ProtoICMPv6:
			if len(pkt.Payload) < 8 || rfc1071(pseudo6(pkt.Src, pkt.Dst, 58, len(pkt.Payload)), pkt.Payload) != 0 {
				t.Fatalf("accepted a bad ICMPv6 message")
			}
		default:
			t.Fatalf("accepted protocol %d", pkt.Protocol)
		}

		// What the stack does next must not panic either, and what it
		// builds must be valid.
		out := make([]byte, 65536+100)
		checkReply := func(what string, rep []byte) {
			t.Helper()
			if bytes.Equal(rep[24:40], allNodes.AsSlice()) {
				if rfc1071(pseudo6(netip.AddrFrom16([16]byte(rep[8:24])), allNodes, 58, len(rep)-40), rep[40:]) != 0 {
					t.Fatalf("%s to all nodes: bad checksum", what)
				}
				return
			}
			if _, r := Parse(rep, pkt.Src); r != DropNone {
				t.Fatalf("our %s is dropped: %v", what, r)
			}
		}
		if m := EchoReply6(out, &pkt, pkt.FlowLabel); m > 0 {
			checkReply("echo reply", out[:m])
			if out[40] != 129 || !bytes.Equal(out[44:m], pkt.Payload[4:]) {
				t.Fatalf("echo reply does not return the request")
			}
		}
		if n == nil && unicast6(pkt.Dst) {
			n = NewIPv6(pkt.Dst) // any local: the stack at the address the packet came to
		}
		if n != nil {
			if m := NeighborAdvert(out, &pkt, n.Addr()); m > 0 {
				if m != 64 || out[7] != 255 || out[40] != 136 || !bytes.Equal(out[48:64], n.Addr().AsSlice()) {
					t.Fatalf("advertisement % x", out[:m])
				}
				checkReply("advertisement", out[:m])
			}
			reply, e, isErr := n.ICMP(&pkt, out)
			if reply > 0 {
				checkReply("ICMP reply", out[:reply])
			}
			if isErr && (reply > 0 || e.Type >= 128 || e.Kind > ErrorTooBig || !e.Peer.Is6()) {
				t.Fatalf("error %+v with reply %d", e, reply)
			}
		}
		// The peer's view: an error about its segment, built by us,
		// reaches it and names the segment.
		if m := DestUnreachable6(out, pkt.Dst, &pkt, ICMPv6CodePortUnreach); m > 0 {
			checkReply("unreachable", out[:m])
			e := roundTrip6(t, out[:m], &pkt)
			if e != nil && (e.Kind != ErrorHard || e.Code != 4) {
				t.Fatalf("unreachable read back as %+v", e)
			}
		} else if pkt.Protocol == ProtoTCP {
			t.Fatalf("no unreachable about a TCP segment")
		}
		if m := PacketTooBig(out, pkt.Dst, b[:end], 1400); m > 0 {
			checkReply("packet too big", out[:m])
			e := roundTrip6(t, out[:m], &pkt)
			if e != nil && (e.Kind != ErrorTooBig || e.MTU != 1400) {
				t.Fatalf("packet too big read back as %+v", e)
			}
		} else if pkt.Protocol == ProtoTCP && !toGroup {
			t.Fatalf("no packet too big about a TCP segment")
		}
	})
}

// roundTrip6 parses msg, an ICMPv6 error about orig built for orig's
// source, as that source would, and checks that ParseICMPv6Error finds
// orig's TCP segment in it whenever the quote reaches it. It returns the
// error read, or nil when orig is not TCP.
func roundTrip6(t *testing.T, msg []byte, orig *Packet) *ICMPError {
	t.Helper()
	p, r := Parse(msg, orig.Src)
	if r != DropNone {
		t.Fatalf("error dropped: %v", r)
	}
	e, ok := ParseICMPv6Error(&p, orig.Src)
	if orig.Protocol != ProtoTCP {
		if ok {
			t.Fatalf("an error about protocol %d read as TCP's: %+v", orig.Protocol, e)
		}
		return nil
	}
	if len(orig.Header)+8 > icmpv6MaxQuote {
		return nil // the quote may stop before the ports
	}
	tcp := header.TCP(orig.Payload)
	if !ok || e.Peer != orig.Dst || e.SrcPort != tcp.SourcePort() || e.DstPort != tcp.DestinationPort() || e.Seq != tcp.SequenceNumber() {
		t.Fatalf("error read back as %+v, %v", e, ok)
	}
	return &e
}

// samePacket reports whether a and b are the same parse of one buffer.
func samePacket(a, b Packet) bool {
	return a.Version == b.Version && a.Src == b.Src && a.Dst == b.Dst && a.Protocol == b.Protocol &&
		a.TTL == b.TTL && a.ID == b.ID && a.FlowLabel == b.FlowLabel &&
		len(a.Header) == len(b.Header) && len(a.Payload) == len(b.Payload) &&
		(len(a.Header) == 0 || &a.Header[0] == &b.Header[0]) && (len(a.Payload) == 0 || &a.Payload[0] == &b.Payload[0])
}
