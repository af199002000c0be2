package ip

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/tcp"
)

// The lengths of the headers we send: IPv4 without options, IPv6 without
// extension headers.
const (
	IPv4HeaderLen = header.IPv4MinimumSize // 20
	IPv6HeaderLen = header.IPv6MinimumSize // 40
)

// The smallest MTU each version allows a link (RFC 791 §3.2: every
// module must take a 68-byte datagram; RFC 8200 §5: 1280).
const (
	IPv4MinMTU = 68
	IPv6MinMTU = header.IPv6MinimumMTU // 1280
)

// DefaultTTL is the time to live (IPv4) and hop limit (IPv6) of
// everything we send (RFC 1122 §3.2.1.7: fixed, and large enough for the
// Internet's diameter; 64 as Linux uses for both).
const DefaultTTL = 64

// BuildIPv4 writes a 20-byte IPv4 header into b[:20] and returns 20:
// version 4, IHL 5, TOS 0, DF set (we never fragment; the MSS keeps our
// segments within the MTU), TTL [DefaultTTL], identification id, total
// length 20+payloadLen, protocol proto, addresses src and dst (IPv4),
// and a correct header checksum (RFC 791 §3.1). b must be at least 20
// bytes and payloadLen at most 65535-20; it does not allocate.
func BuildIPv4(b []byte, src, dst netip.Addr, proto uint8, id uint16, payloadLen int) int {
	h := header.IPv4(b[:IPv4HeaderLen])
	h.Encode(&header.IPv4Fields{
		TotalLength: uint16(IPv4HeaderLen + payloadLen),
		ID:          id,
		Flags:       header.IPv4FlagDontFragment,
		TTL:         DefaultTTL,
		Protocol:    proto,
		SrcAddr:     tcpip.AddrFrom4(src.As4()),
		DstAddr:     tcpip.AddrFrom4(dst.As4()),
	})
	// Encode left the checksum field zero, as the sum requires.
	h.SetChecksum(^h.CalculateChecksum())
	return IPv4HeaderLen
}

// BuildIPv6 writes a 40-byte IPv6 header into b[:40] and returns 40
// (RFC 8200 §3): version 6, traffic class 0, the flow label flow (its low
// 20 bits, RFC 6437), payload length payloadLen, next header proto, hop
// limit [DefaultTTL], addresses src and dst (IPv6). There is no header
// checksum in IPv6: the upper layer's covers the addresses through its
// pseudo-header. b must be at least 40 bytes and payloadLen at most
// 65535; it does not allocate.
func BuildIPv6(b []byte, src, dst netip.Addr, proto uint8, flow uint32, payloadLen int) int {
	h := header.IPv6(b[:IPv6HeaderLen])
	h.Encode(&header.IPv6Fields{
		FlowLabel:         flow & 0xfffff,
		PayloadLength:     uint16(payloadLen),
		TransportProtocol: tcpip.TransportProtocolNumber(proto),
		HopLimit:          DefaultTTL,
		SrcAddr:           tcpip.AddrFrom16(src.As16()),
		DstAddr:           tcpip.AddrFrom16(dst.As16()),
	})
	return IPv6HeaderLen
}

// PseudoHeaderChecksum returns the ones'-complement sum, folded to 16
// bits but not inverted, of the pseudo-header an upper layer's checksum
// covers: {src, dst, zero, proto, length} for IPv4 (RFC 9293 §3.1), {src,
// dst, 32-bit length, zeros, next header} for IPv6 (RFC 8200 §8.1); src
// and dst must be of one version. Callers that sum header and payload
// separately pass it as the initial value to checksum.Checksum or
// combine it with checksum.Combine, then invert the result.
func PseudoHeaderChecksum(src, dst netip.Addr, proto uint8, length int) uint16 {
	if src.Is4() {
		return pseudoSum4(src.As4(), dst.As4(), proto, length)
	}
	return pseudoSum6(src.As16(), dst.As16(), proto, length)
}

// pseudoSum4 is PseudoHeaderChecksum for IPv4 addresses as arrays: the
// six 16-bit words of the pseudo-header added and folded by hand (it is
// on every packet's path, and a call to the general sum over 12 bytes
// costs more than the sum).
func pseudoSum4(src, dst [4]byte, proto uint8, length int) uint16 {
	s := uint32(src[0])<<8 | uint32(src[1])
	s += uint32(src[2])<<8 | uint32(src[3])
	s += uint32(dst[0])<<8 | uint32(dst[1])
	s += uint32(dst[2])<<8 | uint32(dst[3])
	s += uint32(proto) + uint32(uint16(length))
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return uint16(s)
}

// TCPChecksum returns the value to store in the checksum field of the TCP
// segment seg sent from src to dst (both IPv4 or both IPv6): RFC 9293
// §3.1, the 16-bit ones' complement of the ones'-complement sum of the
// pseudo-header and the whole segment. seg's checksum field must be zero
// when it is called.
func TCPChecksum(src, dst netip.Addr, seg []byte) uint16 {
	return ^checksum.Checksum(seg, PseudoHeaderChecksum(src, dst, ProtoTCP, len(seg)))
}

// BuildTCP writes into buf the packet that carries seg from n's address
// to dst, and is the one place tund's TCP packets are made: the network
// header (n.BuildHeader, with the flow label flow for IPv6), the TCP
// header with its options, and the checksum. It returns the length of
// the headers and of the whole packet.
//
// With partial false, the payload is copied in after the headers and the
// checksum is complete: buf[:total] is the packet, and buf must hold it.
// With partial true (a device with offloads), only the headers are
// written (total is still what the packet will measure) and the checksum
// field holds the pseudo-header's sum, for the device to complete over
// the payload, which the caller passes beside buf[:hdr]. It does not
// allocate.
func BuildTCP(n Network, buf []byte, dst netip.Addr, flow uint32, seg *tcp.Segment, partial bool) (hdr, total int) {
	thl := seg.HeaderLen()
	tcpLen := thl + len(seg.Payload)
	nl := n.BuildHeader(buf, dst, ProtoTCP, flow, tcpLen)
	t := buf[nl : nl+thl]
	hdr, total = nl+thl, nl+tcpLen
	if partial {
		seg.MarshalHeader(t)
		header.TCP(t).SetChecksum(PseudoHeaderChecksum(n.Addr(), dst, ProtoTCP, tcpLen))
		return hdr, total
	}
	t = buf[nl:total]
	seg.Marshal(t)
	header.TCP(t).SetChecksum(TCPChecksum(n.Addr(), dst, t))
	return hdr, total
}
