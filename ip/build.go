package ip

import (
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// HeaderLen is the length of every IPv4 header we send: we send no options.
const HeaderLen = header.IPv4MinimumSize // 20

// DefaultTTL is the time to live of everything we send (RFC 1122
// §3.2.1.7: fixed, and large enough for the Internet's diameter; 64 as
// Linux uses).
const DefaultTTL = 64

// BuildHeader writes a 20-byte IPv4 header into b[:20] and returns 20:
// version 4, IHL 5, TOS 0, DF set (we never fragment; the MSS keeps our
// segments within the MTU), TTL [DefaultTTL], identification id, total
// length 20+payloadLen, protocol proto, addresses src and dst, and a
// correct header checksum (RFC 791 §3.1). b must be at least 20 bytes and
// payloadLen at most 65535-20; it does not allocate.
func BuildHeader(b []byte, src, dst [4]byte, proto uint8, id uint16, payloadLen int) int {
	h := header.IPv4(b[:HeaderLen])
	h.Encode(&header.IPv4Fields{
		TotalLength: uint16(HeaderLen + payloadLen),
		ID:          id,
		Flags:       header.IPv4FlagDontFragment,
		TTL:         DefaultTTL,
		Protocol:    proto,
		SrcAddr:     tcpip.AddrFrom4(src),
		DstAddr:     tcpip.AddrFrom4(dst),
	})
	// Encode left the checksum field zero, as the sum requires.
	h.SetChecksum(^h.CalculateChecksum())
	return HeaderLen
}

// PseudoHeaderChecksum returns the ones'-complement sum, folded to 16 bits
// but not inverted, of the TCP/UDP pseudo-header {src, dst, zero, proto,
// length} (RFC 9293 §3.1). Callers that sum header and payload separately
// pass it as the initial value to checksum.Checksum or combine it with
// checksum.Combine, then invert the result.
func PseudoHeaderChecksum(src, dst [4]byte, proto uint8, length int) uint16 {
	return header.PseudoHeaderChecksum(tcpip.TransportProtocolNumber(proto),
		tcpip.AddrFrom4(src), tcpip.AddrFrom4(dst), uint16(length))
}

// TCPChecksum returns the value to store in the checksum field of the TCP
// segment seg sent from src to dst: RFC 9293 §3.1, the 16-bit ones'
// complement of the ones'-complement sum of the pseudo-header and the whole
// segment. seg's checksum field must be zero when it is called.
func TCPChecksum(src, dst [4]byte, seg []byte) uint16 {
	return ^checksum.Checksum(seg, PseudoHeaderChecksum(src, dst, ProtoTCP, len(seg)))
}
