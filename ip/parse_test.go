package ip

import (
	"bytes"
	"net/netip"
	"sync"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

var (
	us4   = [4]byte{192, 0, 2, 1}
	peer4 = [4]byte{198, 51, 100, 7}
	us    = netip.AddrFrom4(us4)
	peer  = netip.AddrFrom4(peer4)
)

func TestParseValidTCP(t *testing.T) {
	data := []byte("hello, world")
	b := tcpPacket(peer, us, data)
	pkt, r := Parse(b, us)
	if r != DropNone {
		t.Fatalf("reason %v, want none", r)
	}
	if pkt.Src != peer || pkt.Dst != us || pkt.Protocol != ProtoTCP || pkt.TTL != 50 || pkt.ID != 7 {
		t.Errorf("fields: %+v", pkt)
	}
	if !bytes.Equal(pkt.Header, b[:20]) || !bytes.Equal(pkt.Payload, b[20:]) {
		t.Errorf("header/payload slices wrong")
	}
	if got := header.TCP(pkt.Payload).Payload(); !bytes.Equal(got, data) {
		t.Errorf("segment data %q", got)
	}
}

func TestParseCapturedSYN(t *testing.T) {
	b := mustHex(t, capturedSYNHex)
	pkt, r := Parse(b, capPeer)
	if r != DropNone {
		t.Fatalf("kernel SYN dropped: %v", r)
	}
	if pkt.Src != capHost || pkt.Dst != capPeer || pkt.Protocol != ProtoTCP || pkt.TTL != 64 || pkt.ID != 0x204d {
		t.Errorf("fields: %+v", pkt)
	}
	if len(pkt.Header) != 20 || len(pkt.Payload) != 40 {
		t.Errorf("lengths %d/%d", len(pkt.Header), len(pkt.Payload))
	}
	tcp := header.TCP(pkt.Payload)
	if tcp.SourcePort() != 35640 || tcp.DestinationPort() != 8080 || tcp.Flags() != header.TCPFlagSyn {
		t.Errorf("tcp: %d -> %d flags %v", tcp.SourcePort(), tcp.DestinationPort(), tcp.Flags())
	}
}

func TestParseValidICMPEcho(t *testing.T) {
	b := mustHex(t, capturedEchoHex)
	pkt, r := Parse(b, capPeer)
	if r != DropNone {
		t.Fatalf("ping dropped: %v", r)
	}
	if pkt.Src != capHost || pkt.Dst != capPeer || pkt.Protocol != ProtoICMP || pkt.TTL != 64 || pkt.ID != 0x0d07 {
		t.Errorf("fields: %+v", pkt)
	}
	m := header.ICMPv4(pkt.Payload)
	if len(m) != 24 || m.Type() != header.ICMPv4Echo || m.Ident() != 0x1c86 || m.Sequence() != 1 {
		t.Errorf("icmp: len %d type %d id %#x seq %d", len(m), m.Type(), m.Ident(), m.Sequence())
	}
}

func TestParseStripsPadding(t *testing.T) {
	b := tcpPacket(peer, us, []byte("x")) // 41 bytes
	padded := append(append([]byte{}, b...), 0, 0, 0, 0, 0)
	pkt, r := Parse(padded, us)
	if r != DropNone {
		t.Fatalf("padded packet dropped: %v", r)
	}
	if len(pkt.Payload) != len(b)-20 || !bytes.Equal(pkt.Payload, b[20:]) {
		t.Errorf("payload %d bytes, want %d", len(pkt.Payload), len(b)-20)
	}
	if cap(pkt.Payload) != len(pkt.Payload) {
		t.Errorf("payload capacity %d exposes the padding", cap(pkt.Payload))
	}
}

func TestParseOptions(t *testing.T) {
	// IHL 6: one word of options (NOP, NOP, NOP, EOL), which a host that
	// does not implement them ignores (RFC 1122 §3.2.1.8).
	b := tcpPacket(peer, us, []byte("opt"))
	seg := append([]byte{}, b[20:]...)
	o := append(append(append([]byte{}, b[:20]...), 1, 1, 1, 0), seg...)
	h := header.IPv4(o)
	h.SetHeaderLength(24)
	h.SetTotalLength(uint16(len(o)))
	fixIP(o)
	pkt, r := Parse(o, us)
	if r != DropNone {
		t.Fatalf("reason %v", r)
	}
	if len(pkt.Header) != 24 || !bytes.Equal(pkt.Payload, seg) {
		t.Errorf("header %d bytes, payload %x", len(pkt.Header), pkt.Payload)
	}
}

func TestParseDrops(t *testing.T) {
	tcp := func() []byte { return tcpPacket(peer, us, []byte("data")) }
	icmp := func() []byte { return icmpPacket(peer, us, header.ICMPv4Echo, []byte("ping")) }
	tests := []struct {
		name  string
		pkt   []byte
		local netip.Addr
		want  DropReason
	}{
		{"empty", nil, us, DropShort},
		{"19 bytes", tcp()[:19], us, DropShort},
		{"shorter than IHL", func() []byte {
			b := tcp()[:40] // IHL 15 needs 60 bytes
			header.IPv4(b).SetHeaderLength(60)
			return b
		}(), us, DropShort},
		{"version 6", func() []byte { b := tcp(); b[0] = 6<<4 | 5; return fixIP(b) }(), us, DropVersion},
		{"version 0", func() []byte { b := tcp(); b[0] = 5; return b }(), us, DropVersion},
		{"IHL 4", func() []byte { b := tcp(); b[0] = 4<<4 | 4; return b }(), us, DropHeaderLength},
		{"IHL 0", func() []byte { b := tcp(); b[0] = 4 << 4; return b }(), us, DropHeaderLength},
		{"total length too big", func() []byte {
			b := tcp()
			header.IPv4(b).SetTotalLength(uint16(len(b) + 1))
			return fixIP(b)
		}(), us, DropTotalLength},
		{"total length 19", func() []byte {
			b := tcp()
			header.IPv4(b).SetTotalLength(19)
			return fixIP(b)
		}(), us, DropTotalLength},
		{"total length 0", func() []byte {
			b := tcp()
			header.IPv4(b).SetTotalLength(0)
			return fixIP(b)
		}(), us, DropTotalLength},
		{"header checksum", func() []byte { b := tcp(); b[10] ^= 0x01; return b }(), us, DropChecksum},
		{"header bit flip", func() []byte { b := tcp(); b[8]--; return b }(), us, DropChecksum},
		{"MF set", func() []byte {
			b := tcp()
			header.IPv4(b).SetFlagsFragmentOffset(header.IPv4FlagMoreFragments, 0)
			return fixIP(b)
		}(), us, DropFragment},
		{"offset nonzero", func() []byte {
			b := tcp()
			header.IPv4(b).SetFlagsFragmentOffset(0, 8)
			return fixIP(b)
		}(), us, DropFragment},
		{"wrong dst", tcpPacket(peer, netip.AddrFrom4([4]byte{192, 0, 2, 2}), nil), us, DropNotForUs},
		{"broadcast dst", tcpPacket(peer, netip.AddrFrom4([4]byte{255, 255, 255, 255}), nil), us, DropNotForUs},
		{"broadcast dst, any local", tcpPacket(peer, netip.AddrFrom4([4]byte{255, 255, 255, 255}), nil), netip.Addr{}, DropNotForUs},
		{"multicast dst, any local", icmpPacket(peer, netip.AddrFrom4([4]byte{224, 0, 0, 1}), header.ICMPv4Echo, nil), netip.Addr{}, DropNotForUs},
		{"protocol 17", ipv4(peer, us, 17, 1, make([]byte, 8)), us, DropProtocol},
		{"TCP checksum", func() []byte { b := tcp(); b[len(b)-1] ^= 0x40; return b }(), us, DropTCPChecksum},
		{"TCP checksum misses pseudo-header", func() []byte {
			// TCP checksum computed for another source; IP header
			// checksum correct: only the pseudo-header catches it.
			b := tcpPacket(netip.AddrFrom4([4]byte{198, 51, 100, 8}), us, []byte("data"))
			copy(b[12:16], peer4[:])
			return fixIP(b)
		}(), us, DropTCPChecksum},
		{"TCP length in pseudo-header", func() []byte {
			// Payload trimmed by lowering total length: the segment
			// bytes summed change only by a zero word, so only the
			// pseudo-header length catches it.
			b := tcpPacket(peer, us, []byte{'a', 'b', 0, 0})
			header.IPv4(b).SetTotalLength(uint16(len(b) - 2))
			return fixIP(b)
		}(), us, DropTCPChecksum},
		{"ICMP checksum", func() []byte { b := icmp(); b[len(b)-1] ^= 1; return b }(), us, DropICMP},
		{"ICMP 4 bytes", fixIP(ipv4(peer, us, 1, 1, []byte{8, 0, 0xf7, 0xff})), us, DropICMP},
		{"source 0.0.0.0", tcpPacket(netip.AddrFrom4([4]byte{}), us, nil), us, DropSource},
		{"source 0.1.2.3", tcpPacket(netip.AddrFrom4([4]byte{0, 1, 2, 3}), us, nil), us, DropSource},
		{"source 224.0.0.1", tcpPacket(netip.AddrFrom4([4]byte{224, 0, 0, 1}), us, nil), us, DropSource},
		{"source 239.1.2.3", icmpPacket(netip.AddrFrom4([4]byte{239, 1, 2, 3}), us, header.ICMPv4Echo, nil), us, DropSource},
		{"source 240.0.0.1", tcpPacket(netip.AddrFrom4([4]byte{240, 0, 0, 1}), us, nil), us, DropSource},
		{"source 255.255.255.255", tcpPacket(netip.AddrFrom4([4]byte{255, 255, 255, 255}), us, nil), us, DropSource},
		{"source 127.0.0.1", tcpPacket(netip.AddrFrom4([4]byte{127, 0, 0, 1}), us, nil), us, DropSource},
		{"source our own", tcpPacket(us, us, nil), us, DropSource},
		{"source 0.0.0.0, any local", tcpPacket(netip.AddrFrom4([4]byte{}), us, nil), netip.Addr{}, DropSource},
		{"source = destination, any local", tcpPacket(peer, peer, nil), netip.Addr{}, DropSource},
		{"any local accepts unicast", tcp(), netip.Addr{}, DropNone},
		{"valid ICMP", icmp(), us, DropNone},
		{"valid ICMP echo reply", icmpPacket(peer, us, header.ICMPv4EchoReply, nil), us, DropNone},
		{"valid TCP", tcp(), us, DropNone},
		// Parse dispatches on the version; TestParse6Drops has the rest.
		{"IPv6 routing header with segments left", ipv6(peer6, us6, 43, routingHdr(6, 0, 1, 2), tcp6(peer6, us6, nil)), us6, DropExtension},
	}
	seen := map[DropReason]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, r := Parse(tc.pkt, tc.local)
			if r != tc.want {
				t.Errorf("Parse = %v, want %v", r, tc.want)
			}
		})
		seen[tc.want] = true
	}
	seen[DropTCPShort] = true // tcp.Parse's check, counted by the stack (stack.TestShortTCPHeaderCountedOnce)
	for r := DropNone; r < NumDropReasons; r++ {
		if !seen[r] {
			t.Errorf("no case produces %v", r)
		}
	}
}

func TestDropReasonString(t *testing.T) {
	want := []string{"none", "short", "version", "header_length", "total_length", "checksum",
		"fragment", "not_for_us", "protocol", "tcp_short", "tcp_checksum", "icmp", "source",
		"extension_header"}
	if len(want) != int(NumDropReasons) {
		t.Fatalf("%d names for %d reasons", len(want), NumDropReasons)
	}
	for i, w := range want {
		if got := DropReason(i).String(); got != w {
			t.Errorf("DropReason(%d) = %q, want %q", i, got, w)
		}
	}
	if got := NumDropReasons.String(); got != "unknown" {
		t.Errorf("out of range: %q", got)
	}
}

func TestStats(t *testing.T) {
	var s Stats
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ {
				s.Drop(DropChecksum)
				s.Drop(DropReason(g%int(NumDropReasons-1)) + 1)
				_ = s.Snapshot()
			}
		}()
	}
	wg.Wait()
	s.Drop(NumDropReasons) // ignored, must not panic
	s.Drop(DropNone)       // not a drop
	snap := s.Snapshot()
	var total uint64
	for r, n := range snap {
		total += n
		if got := s.Dropped(DropReason(r)); got != n {
			t.Errorf("Dropped(%v) = %d, snapshot %d", DropReason(r), got, n)
		}
	}
	if total != 16000 {
		t.Errorf("total %d, want 16000", total)
	}
	if snap[DropNone] != 0 {
		t.Errorf("DropNone counted")
	}
	// goroutines 0..7 added reasons 1..8; reason 5 is DropChecksum.
	if snap[DropChecksum] != 9000 || snap[DropShort] != 1000 || snap[DropTCPShort] != 0 {
		t.Errorf("snapshot %v", snap)
	}
	if s.Dropped(NumDropReasons) != 0 {
		t.Errorf("out-of-range Dropped nonzero")
	}
}

// TestChecksumNegativeZero: a TCP checksum of 0xffff where the computed
// value is 0x0000 is the same ones'-complement zero (RFC 1624 §3), and
// Linux sends it (skb_checksum_help's CSUM_MANGLED_0) whenever a segment
// it checksums in software sums to zero: Parse accepts both forms, in
// either family, and still refuses a wrong one.
func TestChecksumNegativeZero(t *testing.T) {
	for _, mk := range []struct {
		name  string
		build func(data []byte) []byte
		local netip.Addr
		tcpAt int
	}{
		{"IPv4", func(d []byte) []byte { return tcpPacket(peer, us, d) }, us, 20},
		{"IPv6", func(d []byte) []byte { return tcp6Packet(peer6, us6, d) }, us6, 40},
	} {
		t.Run(mk.name, func(t *testing.T) {
			b := mk.build([]byte{0, 0, 'z', 'e', 'r', 'o'})
			seg := b[mk.tcpAt:]
			// Make the segment sum to zero by choosing its first two
			// payload bytes: the canonical checksum is then 0x0000.
			var src, dst netip.Addr
			if mk.tcpAt == 20 {
				src, dst = netip.AddrFrom4([4]byte(b[12:16])), netip.AddrFrom4([4]byte(b[16:20]))
			} else {
				src, dst = netip.AddrFrom16([16]byte(b[8:24])), netip.AddrFrom16([16]byte(b[24:40]))
			}
			seg[16], seg[17] = 0, 0
			sum := ^TCPChecksum(src, dst, seg) // the ones'-complement sum, folded
			fill := ^sum                       // what brings it to 0xffff
			seg[20], seg[21] = byte(fill>>8), byte(fill)
			if c := TCPChecksum(src, dst, seg); c != 0 {
				t.Fatalf("the crafted segment's checksum is %#04x, want 0x0000", c)
			}
			for _, field := range []uint16{0x0000, 0xffff} {
				seg[16], seg[17] = byte(field>>8), byte(field)
				if _, r := Parse(b, mk.local); r != DropNone {
					t.Errorf("checksum field %#04x for a zero sum: %v, want accepted", field, r)
				}
			}
			seg[16], seg[17] = 0xff, 0xfe
			if _, r := Parse(b, mk.local); r != DropTCPChecksum {
				t.Errorf("checksum field 0xfffe for a zero sum: %v, want tcp_checksum", r)
			}
		})
	}
}
