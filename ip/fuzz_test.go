package ip

import (
	"net/netip"
	"testing"
	"unsafe"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// within reports whether sub lies inside b's backing array, starting off
// bytes into b.
func within(b, sub []byte, off int) bool {
	if len(sub) == 0 {
		return off <= len(b)
	}
	return off+len(sub) <= len(b) && unsafe.SliceData(sub) == &b[off]
}

// repair recomputes whatever checksums b's own length fields let it reach,
// so that the fuzzer also explores packets that pass the checksum checks.
func repair(b []byte) {
	if len(b) < header.IPv4MinimumSize {
		return
	}
	h := header.IPv4(b)
	hl, tl := int(h.HeaderLength()), int(h.TotalLength())
	if hl < header.IPv4MinimumSize || hl > len(b) {
		return
	}
	fixIP(b)
	if tl < hl || tl > len(b) {
		return
	}
	switch h.Protocol() {
	case ProtoTCP:
		if tl-hl >= header.TCPChecksumOffset+2 {
			fixTCP(b)
		}
	case ProtoICMP:
		if tl-hl >= 4 {
			fixICMP(b)
		}
	}
}

// FuzzParse feeds Parse arbitrary bytes (with checksums optionally
// repaired) and checks that it never panics and that whatever it accepts
// is consistent with the input and with the checks it claims to make.
func FuzzParse(f *testing.F) {
	f.Add(mustHex(f, capturedSYNHex), capPeer4[:], false)
	f.Add(mustHex(f, capturedEchoHex), capPeer4[:], false)
	f.Add(mustHex(f, capturedEchoHex), []byte{0, 0, 0, 0}, false)
	f.Add(tcpPacket(peer, us, []byte("payload")), us4[:], false)
	f.Add(icmpPacket(peer, us, header.ICMPv4DstUnreachable, make([]byte, 28)), us4[:], false)
	f.Add([]byte{0x45}, us4[:], false)
	f.Add([]byte{0x4f, 0, 0, 20, 0, 0, 0, 0, 64, 6, 0, 0, 1, 2, 3, 4, 5, 6, 7, 8}, us4[:], true)
	f.Add(tcpPacket(peer, us, []byte("payload")), us4[:], true)
	f.Fuzz(func(t *testing.T, b []byte, localB []byte, fix bool) {
		var l4 [4]byte
		copy(l4[:], localB)
		var local netip.Addr
		if l4 != ([4]byte{}) {
			local = netip.AddrFrom4(l4)
		}
		if Version(b) != 4 {
			return // FuzzParse6 explores IPv6
		}
		if fix {
			repair(b)
		}
		pkt, r := Parse(b, local)
		if r >= NumDropReasons {
			t.Fatalf("reason %d out of range", r)
		}
		if r != DropNone {
			return
		}
		hl := len(pkt.Header)
		if hl < 20 || hl > 60 || hl%4 != 0 || !within(b, pkt.Header, 0) {
			t.Fatalf("header %d bytes, not b[:IHL*4]", hl)
		}
		h := header.IPv4(b)
		if int(h.HeaderLength()) != hl || int(h.TotalLength()) != hl+len(pkt.Payload) || hl+len(pkt.Payload) > len(b) {
			t.Fatalf("lengths: IHL %d total %d, header %d payload %d, input %d",
				h.HeaderLength(), h.TotalLength(), hl, len(pkt.Payload), len(b))
		}
		if !within(b, pkt.Payload, hl) {
			t.Fatalf("payload does not lie at b[%d:]", hl)
		}
		if header.IPVersion(b) != 4 || rfc1071(pkt.Header) != 0 || h.More() || h.FragmentOffset() != 0 {
			t.Fatalf("accepted a bad header % x", pkt.Header)
		}
		if local.IsValid() && pkt.Dst != local {
			t.Fatalf("accepted dst %v for local %v", pkt.Dst, local)
		}
		switch pkt.Protocol {
		case ProtoTCP:
			// The header's structure is tcp.Parse's; the checksum is ours.
			if rfc1071(pseudo(pkt.Src, pkt.Dst, 6, len(pkt.Payload)), pkt.Payload) != 0 {
				t.Fatalf("accepted a TCP segment with a bad checksum")
			}
		case ProtoICMP:
			if len(pkt.Payload) < 8 || rfc1071(pkt.Payload) != 0 {
				t.Fatalf("accepted a bad ICMP message")
			}
		default:
			t.Fatalf("accepted protocol %d", pkt.Protocol)
		}
		// What the stack does next must not panic either, and what it
		// builds must be valid.
		out := make([]byte, 65536+100)
		if n := EchoReply(out, &pkt, 1); n > 0 {
			if _, r := Parse(out[:n], pkt.Src); r != DropNone {
				t.Fatalf("our echo reply is dropped: %v", r)
			}
		}
		if n := DestUnreachable(out, pkt.Dst, &pkt, 3, 1); n > 0 {
			if _, r := Parse(out[:n], pkt.Src); r != DropNone {
				t.Fatalf("our unreachable is dropped: %v", r)
			}
		}
	})
}
