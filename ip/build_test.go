package ip

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestBuildHeaderFields(t *testing.T) {
	b := bytes.Repeat([]byte{0xee}, 64) // garbage must be overwritten
	if n := BuildIPv4(b, us, peer, ProtoTCP, 0xbeef, 1000); n != IPv4HeaderLen || IPv4HeaderLen != 20 {
		t.Fatalf("BuildHeader = %d, IPv4HeaderLen %d", n, IPv4HeaderLen)
	}
	h := header.IPv4(b[:20])
	if !h.IsChecksumValid() {
		t.Errorf("gvisor rejects the header checksum")
	}
	if rfc1071(b[:20]) != 0 {
		t.Errorf("RFC 1071 sum over header not zero")
	}
	if !h.IsValid(1020) {
		t.Errorf("gvisor: header not valid")
	}
	tos, _ := h.TOS()
	if header.IPVersion(b) != 4 || h.HeaderLength() != 20 || tos != 0 || h.TotalLength() != 1020 ||
		h.ID() != 0xbeef || h.Flags() != header.IPv4FlagDontFragment || h.FragmentOffset() != 0 ||
		h.TTL() != 64 || h.Protocol() != 6 ||
		h.SourceAddress() != tcpip.AddrFrom4(us4) || h.DestinationAddress() != tcpip.AddrFrom4(peer4) {
		t.Errorf("header fields: % x", b[:20])
	}
	if !bytes.Equal(b[20:], bytes.Repeat([]byte{0xee}, 44)) {
		t.Errorf("wrote past 20 bytes")
	}
}

// TestBuildMatchesKernelSYN rebuilds the kernel's SYN: the same ID,
// length, protocol and addresses must give the very header bytes Linux
// sent (Linux also sends TOS 0, DF, TTL 64), and TCPChecksum over the
// segment must give the checksum Linux computed.
func TestBuildMatchesKernelSYN(t *testing.T) {
	want := mustHex(t, capturedSYNHex)
	got := make([]byte, len(want))
	BuildIPv4(got, capHost, capPeer, ProtoTCP, 0x204d, len(want)-20)
	if !bytes.Equal(got[:20], want[:20]) {
		t.Errorf("header\n got % x\nwant % x", got[:20], want[:20])
	}
	seg := append([]byte{}, want[20:]...)
	kernel := header.TCP(seg).Checksum()
	header.TCP(seg).SetChecksum(0)
	if c := TCPChecksum(capHost, capPeer, seg); c != kernel || c != 0x3bc7 {
		t.Errorf("TCPChecksum = %#04x, kernel sent %#04x", c, kernel)
	}
}

func TestTCPChecksumIndependent(t *testing.T) {
	// Lengths cover even, odd and empty payloads.
	for _, n := range []int{0, 1, 2, 3, 17, 536, 1459, 1460} {
		data := make([]byte, n)
		for i := range data {
			data[i] = byte(i*7 + n)
		}
		total := header.TCPMinimumSize + 12 + n // with 12 bytes of options
		pkt := make([]byte, IPv4HeaderLen+total)
		BuildIPv4(pkt, us, peer, ProtoTCP, uint16(n), total)
		seg := pkt[IPv4HeaderLen:]
		header.TCP(seg).Encode(&header.TCPFields{
			SrcPort: 80, DstPort: 40000, SeqNum: 0xfffffff0, AckNum: 12345,
			DataOffset: header.TCPMinimumSize + 12, Flags: header.TCPFlagAck, WindowSize: 1000,
		})
		copy(seg[20:32], []byte{1, 1, 8, 10, 1, 2, 3, 4, 5, 6, 7, 8})
		copy(seg[32:], data)
		c := TCPChecksum(us, peer, seg)
		header.TCP(seg).SetChecksum(c)

		if !header.IPv4(pkt).IsChecksumValid() {
			t.Errorf("n=%d: gvisor rejects IPv4 checksum", n)
		}
		if !header.TCP(seg).IsChecksumValid(tcpip.AddrFrom4(us4), tcpip.AddrFrom4(peer4),
			checksum.Checksum(data, 0), uint16(n)) {
			t.Errorf("n=%d: gvisor rejects TCP checksum %#04x", n, c)
		}
		if rfc1071(pseudo(us, peer, 6, len(seg)), seg) != 0 {
			t.Errorf("n=%d: RFC 1071 sum over pseudo-header and segment not zero", n)
		}
		if _, r := Parse(pkt, peer); r != DropNone {
			t.Errorf("n=%d: own packet dropped: %v", n, r)
		}
	}
}

func TestPseudoHeaderChecksum(t *testing.T) {
	for _, tc := range []struct {
		src, dst netip.Addr
		proto    uint8
		n        int
	}{
		{us, peer, 6, 40},
		{peer, us, 17, 9},
		{netip.AddrFrom4([4]byte{255, 255, 255, 255}), netip.AddrFrom4([4]byte{255, 255, 255, 255}), 255, 65535},
		{netip.AddrFrom4([4]byte{}), netip.AddrFrom4([4]byte{}), 0, 0},
	} {
		// rfc1071 returns the complement; PseudoHeaderChecksum does not.
		want := ^rfc1071(pseudo(tc.src, tc.dst, tc.proto, tc.n))
		got := PseudoHeaderChecksum(tc.src, tc.dst, tc.proto, tc.n)
		// 0x0000 and 0xffff are both ones'-complement zero.
		if got != want && !(got|want == 0xffff && got&want == 0) {
			t.Errorf("%v: got %#04x want %#04x", tc, got, want)
		}
	}
	// Split use: pseudo-header, then header, then payload.
	b := tcpPacket(peer, us, []byte("split"))
	seg := b[20:]
	xsum := PseudoHeaderChecksum(peer, us, ProtoTCP, len(seg))
	xsum = checksum.Combine(xsum, checksum.Checksum(seg[:20], 0))
	xsum = checksum.Checksum(seg[20:], xsum)
	if xsum != 0xffff {
		t.Errorf("split sum %#04x over a valid segment", xsum)
	}
}
