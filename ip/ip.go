package ip

import (
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Protocol numbers of the transports this package accepts (RFC 790).
const (
	ProtoICMP = uint8(header.ICMPv4ProtocolNumber) // 1
	ProtoTCP  = uint8(header.TCPProtocolNumber)    // 6
)

// DropReason says why an inbound packet was discarded.
type DropReason uint8

// The reasons [Parse] gives for discarding a packet; DropICMP is also what
// the stack counts for ICMP it does not answer.
const (
	DropNone         DropReason = iota // not dropped
	DropShort                          // shorter than a minimal IPv4 header or than IHL says
	DropVersion                        // version != 4
	DropHeaderLength                   // IHL < 5
	DropTotalLength                    // total length < IHL*4 or > bytes received
	DropChecksum                       // bad IPv4 header checksum
	DropFragment                       // MF set or fragment offset != 0 (we do not reassemble)
	DropNotForUs                       // destination is not our address (broadcast/multicast/other)
	DropProtocol                       // protocol we do not speak (not TCP, not ICMP)
	DropTCPShort                       // TCP header shorter than 20 bytes or data offset out of range
	DropTCPChecksum                    // bad TCP checksum (pseudo-header included)
	DropICMP                           // malformed/bad-checksum ICMP or ICMP type we ignore
	DropSource                         // unusable source address (RFC 1122 §3.2.1.3, §4.2.3.10)
	NumDropReasons                     // number of reasons, for arrays indexed by DropReason
)

var dropNames = [NumDropReasons]string{
	DropNone:         "none",
	DropShort:        "short",
	DropVersion:      "version",
	DropHeaderLength: "header_length",
	DropTotalLength:  "total_length",
	DropChecksum:     "checksum",
	DropFragment:     "fragment",
	DropNotForUs:     "not_for_us",
	DropProtocol:     "protocol",
	DropTCPShort:     "tcp_short",
	DropTCPChecksum:  "tcp_checksum",
	DropICMP:         "icmp",
	DropSource:       "source",
}

// String returns the reason's short snake_case name, as used for counter
// labels ("short", "tcp_checksum", ...), or "unknown" for an out-of-range
// value.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Packet is a parsed inbound IPv4 packet. Header and Payload alias the
// buffer given to [Parse]; the rest are copies.
type Packet struct {
	Src, Dst [4]byte
	Protocol uint8  // ProtoTCP or ProtoICMP
	TTL      uint8  // as received; a host does not act on it (RFC 1122 §3.2.1.7)
	ID       uint16 // the identification field
	Header   []byte // the IPv4 header including options (IHL*4 bytes)
	Payload  []byte // exactly TotalLength-IHL*4 bytes: link padding removed
}

// Parse validates b as an inbound IPv4 packet and returns it, or the
// reason it must be dropped (pkt is then meaningless). It makes the checks
// RFC 791 §3.1 and RFC 1122 §3.2.1.1-§3.2.1.3 require of a host: version,
// header length, total length, header checksum, no fragment, a destination
// that is ours and a source that names a single other host. When local is
// nonzero the destination must equal it; when local is zero any unicast
// destination is accepted.
//
// For TCP it also checks that the data offset lies within the segment and
// verifies the TCP checksum over the pseudo-header; for ICMP it checks the
// minimum length and the ICMP checksum. A packet that passes can therefore
// be trusted byte for byte by the transport. Parse never allocates and
// never panics.
func Parse(b []byte, local [4]byte) (pkt Packet, reason DropReason) {
	return parse(b, local, false)
}

// ParseTrusted is Parse for a packet whose device vouches for its TCP
// checksum (tun.Offload.Trusted): the kernel handed it over with a
// partial checksum, meaning it never left this host's memory, or
// verified the checksum itself. Everything else is checked as Parse
// does. RFC 1122 §4.2.2.7's MUST is met: the checksum is verified by
// the device, as Linux relies on CHECKSUM_UNNECESSARY and
// CHECKSUM_PARTIAL.
func ParseTrusted(b []byte, local [4]byte) (pkt Packet, reason DropReason) {
	return parse(b, local, true)
}

func parse(b []byte, local [4]byte, trusted bool) (pkt Packet, reason DropReason) {
	if len(b) < header.IPv4MinimumSize {
		return pkt, DropShort
	}
	h := header.IPv4(b)
	// RFC 1122 §3.2.1.1: a datagram whose version number is not 4 MUST be
	// silently discarded.
	if header.IPVersion(b) != header.IPv4Version {
		return pkt, DropVersion
	}
	// RFC 791 §3.1: IHL counts 32-bit words; 5 is the minimum of a
	// correct header.
	hl := int(h.HeaderLength())
	if hl < header.IPv4MinimumSize {
		return pkt, DropHeaderLength
	}
	if hl > len(b) {
		return pkt, DropShort
	}
	// RFC 791 §3.1: Total Length covers header and data. Anything past it
	// is link-layer padding; a packet longer than what arrived is truncated.
	tl := int(h.TotalLength())
	if tl < hl || tl > len(b) {
		return pkt, DropTotalLength
	}
	// RFC 1122 §3.2.1.2: a host MUST verify the header checksum and
	// silently discard a datagram whose checksum is bad.
	if h.CalculateChecksum() != 0xffff {
		return pkt, DropChecksum
	}
	// We do not reassemble (RFC 1122 §3.3.2 would require it for a full
	// host); fragments are counted and dropped. Our MSS keeps peers' TCP
	// segments whole, and DF is set on everything we send.
	if h.More() || h.FragmentOffset() != 0 {
		return pkt, DropFragment
	}
	copy(pkt.Src[:], h.SourceAddressSlice())
	copy(pkt.Dst[:], h.DestinationAddressSlice())
	if local != ([4]byte{}) {
		if pkt.Dst != local {
			return pkt, DropNotForUs
		}
	} else if !isUnicast(pkt.Dst) {
		// We speak neither multicast nor broadcast: TCP MUST NOT accept
		// them (RFC 1122 §4.2.3.10) and an echo to them MAY be dropped
		// (RFC 1122 §3.2.2.6).
		return pkt, DropNotForUs
	}
	// RFC 1122 §3.2.1.3: a host MUST silently discard a datagram whose
	// source address is invalid (this-network, loopback, broadcast,
	// multicast or reserved); §4.2.3.10 likewise for TCP. Our own address
	// (the destination, now known to be ours) as source means a loop or a
	// spoof.
	if !isUnicast(pkt.Src) || pkt.Src == pkt.Dst {
		return pkt, DropSource
	}
	pkt.Protocol = h.Protocol()
	pkt.TTL = h.TTL()
	pkt.ID = h.ID()
	pkt.Header = b[:hl:hl]
	pkt.Payload = b[hl:tl:tl]
	switch pkt.Protocol {
	case ProtoTCP:
		t := header.TCP(pkt.Payload)
		if len(t) < header.TCPMinimumSize {
			return pkt, DropTCPShort
		}
		if off := int(t.DataOffset()); off < header.TCPMinimumSize || off > len(t) {
			return pkt, DropTCPShort
		}
		// RFC 9293 §3.1: the checksum covers the pseudo-header, the
		// header and the data; a segment that fails it is dropped
		// (RFC 1122 §4.2.2.7: the checksum MUST be checked).
		if trusted {
			break
		}
		xsum := PseudoHeaderChecksum(pkt.Src, pkt.Dst, ProtoTCP, len(t))
		if checksum.Checksum(t, xsum) != 0xffff {
			return pkt, DropTCPChecksum
		}
	case ProtoICMP:
		// RFC 792: the checksum covers the whole ICMP message.
		if len(pkt.Payload) < header.ICMPv4MinimumSize || checksum.Checksum(pkt.Payload, 0) != 0xffff {
			return pkt, DropICMP
		}
	default:
		return pkt, DropProtocol
	}
	return pkt, DropNone
}

// isUnicast reports whether a can name a single host: not in 0.0.0.0/8
// ("this network", RFC 1122 §3.2.1.3 (a), (b)), 127.0.0.0/8 (loopback,
// §3.2.1.3 (g): never outside a host), or 224.0.0.0/3 (multicast, the
// reserved class E, and the limited broadcast 255.255.255.255, §3.2.1.3
// (c)). A directed broadcast cannot be told from here without the netmask.
func isUnicast(a [4]byte) bool {
	return a[0] != 0 && a[0] != 127 && a[0] < 224
}
