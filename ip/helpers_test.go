package ip

import (
	"encoding/binary"
	"encoding/hex"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Captured on this kind of machine from a Linux kernel writing to a TUN
// device (IFF_TUN|IFF_NO_PI, address 10.99.0.1/24): `nc 10.99.0.2 8080`
// produced the SYN, `ping -c1 -s16 10.99.0.2` the echo request. Both carry
// checksums computed by the kernel (a TUN device gets no offload).
const (
	capturedSYNHex = "4500003c204d4000400605a70a6300010a630002" + // IPv4, ID 0x204d, DF, TTL 64, csum 0x05a7
		"8b381f906084a67000000000a002faf03bc70000" + // TCP 35640 -> 8080, SYN, csum 0x3bc7
		"020405b40402080a69b3e10b000000000103030a" // MSS 1460, SACK-perm, TS, WS 10
	capturedEchoHex = "4500002c0d074000400119020a6300010a630002" + // IPv4, ID 0x0d07, csum 0x1902
		"08007b311c860001" + // echo request, csum 0x7b31, id 0x1c86, seq 1
		"9777066b00000000ba64080000000000" // 16 bytes of data
)

var (
	capHost4 = [4]byte{10, 99, 0, 1} // the kernel side: source of the captures
	capPeer4 = [4]byte{10, 99, 0, 2} // "us": destination of the captures
	capHost  = netip.AddrFrom4(capHost4)
	capPeer  = netip.AddrFrom4(capPeer4)
)

func mustHex(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rfc1071 is a deliberately plain RFC 1071 Internet checksum over the
// concatenation of bufs (odd lengths padded with a zero byte at the very
// end only), written independently of the package and of gvisor: it
// returns the ones' complement of the ones'-complement sum.
func rfc1071(bufs ...[]byte) uint16 {
	var all []byte
	for _, b := range bufs {
		all = append(all, b...)
	}
	if len(all)%2 == 1 {
		all = append(all, 0)
	}
	var sum uint32
	for i := 0; i < len(all); i += 2 {
		sum += uint32(all[i])<<8 | uint32(all[i+1])
	}
	for sum > 0xffff {
		sum = sum&0xffff + sum>>16
	}
	return ^uint16(sum)
}

// pseudo lays out the RFC 9293 §3.1 pseudo-header by hand.
func pseudo(src, dst netip.Addr, proto uint8, length int) []byte {
	p := make([]byte, 12)
	copy(p[0:4], src.AsSlice())
	copy(p[4:8], dst.AsSlice())
	p[9] = proto
	binary.BigEndian.PutUint16(p[10:], uint16(length))
	return p
}

// fixIP recomputes the IPv4 header checksum of b with rfc1071.
func fixIP(b []byte) []byte {
	h := header.IPv4(b)
	h.SetChecksum(0)
	h.SetChecksum(rfc1071(b[:h.HeaderLength()]))
	return b
}

// fixTCP recomputes the TCP checksum of the packet b with rfc1071, taking
// the addresses from its IP header.
func fixTCP(b []byte) []byte {
	h := header.IPv4(b)
	seg := b[h.HeaderLength():h.TotalLength()]
	t := header.TCP(seg)
	t.SetChecksum(0)
	s := netip.AddrFrom4([4]byte(h.SourceAddressSlice()))
	d := netip.AddrFrom4([4]byte(h.DestinationAddressSlice()))
	t.SetChecksum(rfc1071(pseudo(s, d, 6, len(seg)), seg))
	return b
}

// fixICMP recomputes the ICMP checksum of the packet b with rfc1071.
func fixICMP(b []byte) []byte {
	h := header.IPv4(b)
	m := header.ICMPv4(b[h.HeaderLength():h.TotalLength()])
	m.SetChecksum(0)
	m.SetChecksum(rfc1071(m))
	return b
}

// ipv4 lays out an IPv4 packet with gvisor's encoder (no DF, TTL 50) and
// an rfc1071 header checksum.
func ipv4(src, dst netip.Addr, proto uint8, id uint16, payload []byte) []byte {
	b := make([]byte, header.IPv4MinimumSize+len(payload))
	header.IPv4(b).Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		ID:          id,
		TTL:         50,
		Protocol:    proto,
		SrcAddr:     tcpip.AddrFrom4(src.As4()),
		DstAddr:     tcpip.AddrFrom4(dst.As4()),
	})
	copy(b[header.IPv4MinimumSize:], payload)
	return fixIP(b)
}

// tcpPacket is a valid TCP segment (ACK|PSH, ports 40000 -> 80) in IPv4.
func tcpPacket(src, dst netip.Addr, data []byte) []byte {
	seg := make([]byte, header.TCPMinimumSize+len(data))
	header.TCP(seg).Encode(&header.TCPFields{
		SrcPort:    40000,
		DstPort:    80,
		SeqNum:     1000,
		AckNum:     2000,
		DataOffset: header.TCPMinimumSize,
		Flags:      header.TCPFlagAck | header.TCPFlagPsh,
		WindowSize: 65535,
	})
	copy(seg[header.TCPMinimumSize:], data)
	return fixTCP(ipv4(src, dst, 6, 7, seg))
}

// icmpPacket is a valid ICMP message of the given type (ident 0x1234,
// sequence 9) in IPv4.
func icmpPacket(src, dst netip.Addr, typ header.ICMPv4Type, data []byte) []byte {
	m := header.ICMPv4(make([]byte, header.ICMPv4MinimumSize+len(data)))
	m.SetType(typ)
	m.SetIdent(0x1234)
	m.SetSequence(9)
	copy(m.Payload(), data)
	return fixICMP(ipv4(src, dst, 1, 8, m))
}
