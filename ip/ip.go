package ip

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Protocol numbers of the transports this package accepts (RFC 790, and
// IANA's registry for ICMPv6).
const (
	ProtoICMP   = uint8(header.ICMPv4ProtocolNumber) // 1
	ProtoTCP    = uint8(header.TCPProtocolNumber)    // 6
	ProtoICMPv6 = uint8(header.ICMPv6ProtocolNumber) // 58
)

// DropReason says why an inbound packet was discarded.
type DropReason uint8

// The reasons [Parse] gives for discarding a packet; DropICMP is also what
// the stack counts for ICMP it does not answer.
const (
	DropNone         DropReason = iota // not dropped
	DropShort                          // shorter than a minimal header or than IHL says
	DropVersion                        // version is neither 4 nor 6, or a family the stack has no address in
	DropHeaderLength                   // IHL < 5
	DropTotalLength                    // total (v4) or payload (v6) length disagrees with the bytes received
	DropChecksum                       // bad IPv4 header checksum
	DropFragment                       // a fragment: MF or offset (v4), a Fragment header (v6); we do not reassemble
	DropNotForUs                       // destination is not our address (broadcast/multicast/other)
	DropProtocol                       // protocol we do not speak (not TCP, not ICMP)
	DropTCPShort                       // TCP header shorter than 20 bytes or data offset out of range (tcp.Parse's check; the stack counts it)
	DropTCPChecksum                    // bad TCP checksum (pseudo-header included)
	DropICMP                           // malformed/bad-checksum ICMP or ICMP type we ignore
	DropSource                         // unusable source address (RFC 1122 §3.2.1.3, §4.2.3.10; RFC 4291 §2.5.2, §2.7)
	DropExtension                      // IPv6 extension header malformed, unknown, or with an option that asks for discard (RFC 8200 §4)
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
	DropExtension:    "extension_header",
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

// Packet is a parsed inbound IP packet of either version. Header and
// Payload alias the buffer given to [Parse]; the rest are copies.
type Packet struct {
	Version  uint8 // 4 or 6
	Src, Dst netip.Addr
	// Protocol is the upper layer: ProtoTCP, ProtoICMP (v4) or
	// ProtoICMPv6 (v6, the Next Header after any extension headers).
	Protocol uint8
	TTL      uint8  // TTL or Hop Limit as received; a host does not act on it (RFC 1122 §3.2.1.7)
	ID       uint16 // the IPv4 identification field (0 for v6)
	// FlowLabel is the IPv6 flow label (RFC 6437), 0 for v4.
	FlowLabel uint32
	// Header is the IPv4 header with its options (IHL*4 bytes), or the
	// fixed IPv6 header with every extension header that follows it.
	Header  []byte
	Payload []byte // the upper-layer data, exactly as long as the header says: link padding removed
}

// Version returns the IP version of the packet b (its first four bits),
// or 0 if b is empty.
func Version(b []byte) int {
	if len(b) == 0 {
		return 0
	}
	return int(b[0] >> 4)
}

// Parse validates b as an inbound IP packet of either version (chosen by
// its first four bits) and returns it, or the reason it must be dropped
// (pkt is then meaningless). local is the address it must be sent to;
// the zero Addr accepts any unicast destination of the packet's version,
// and a local of the other version drops it as DropVersion. See
// [IPv4.Parse] and [IPv6.Parse] for the checks each makes. Parse never
// allocates and never panics.
func Parse(b []byte, local netip.Addr) (pkt Packet, reason DropReason) {
	return parseAny(b, local, false)
}

// ParseTrusted is Parse for a packet whose device vouches for its TCP
// checksum (tun.Offload.Trusted): the kernel handed it over with a
// partial checksum, meaning it never left this host's memory, or
// verified the checksum itself. Everything else is checked as Parse
// does. RFC 1122 §4.2.2.7's MUST is met: the checksum is verified by
// the device, as Linux relies on CHECKSUM_UNNECESSARY and
// CHECKSUM_PARTIAL.
func ParseTrusted(b []byte, local netip.Addr) (pkt Packet, reason DropReason) {
	return parseAny(b, local, true)
}

func parseAny(b []byte, local netip.Addr, trusted bool) (Packet, DropReason) {
	switch Version(b) {
	case 4:
		if local.IsValid() && !local.Is4() {
			return Packet{}, DropVersion
		}
		var l [4]byte
		if local.IsValid() {
			l = local.As4()
		}
		return parse4(b, l, trusted)
	case 6:
		if local.IsValid() && !local.Is6() {
			return Packet{}, DropVersion
		}
		return parse6(b, local, trusted)
	}
	if len(b) < header.IPv4MinimumSize {
		return Packet{}, DropShort
	}
	return Packet{}, DropVersion
}

// parse4 validates b as an inbound IPv4 packet and returns it, or the
// reason it must be dropped (pkt is then meaningless). It makes the checks
// RFC 791 §3.1 and RFC 1122 §3.2.1.1-§3.2.1.3 require of a host: version,
// header length, total length, header checksum, no fragment, a destination
// that is ours and a source that names a single other host. When local is
// nonzero the destination must equal it; when local is zero any unicast
// destination is accepted.
//
// For TCP it also verifies the TCP checksum over the pseudo-header (the
// TCP header's structure is tcp.Parse's to check); for ICMP it checks the
// minimum length and the ICMP checksum. A packet that passes can therefore
// be trusted byte for byte by the transport.
func parse4(b []byte, local [4]byte, trusted bool) (pkt Packet, reason DropReason) {
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
	src, dst := [4]byte(h.SourceAddressSlice()), [4]byte(h.DestinationAddressSlice())
	if local != ([4]byte{}) {
		if dst != local {
			return pkt, DropNotForUs
		}
	} else if !isUnicast(dst) {
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
	if !isUnicast(src) || src == dst {
		return pkt, DropSource
	}
	pkt.Version = 4
	pkt.Src, pkt.Dst = netip.AddrFrom4(src), netip.AddrFrom4(dst)
	pkt.Protocol = h.Protocol()
	pkt.TTL = h.TTL()
	pkt.ID = h.ID()
	pkt.Header = b[:hl:hl]
	pkt.Payload = b[hl:tl:tl]
	switch pkt.Protocol {
	case ProtoTCP:
		// RFC 9293 §3.1: the checksum covers the pseudo-header, the
		// header and the data; a segment that fails it is dropped
		// (RFC 1122 §4.2.2.7: the checksum MUST be checked). It is
		// checked here because the pseudo-header is the network
		// layer's; the TCP header's own structure (length, data offset)
		// is tcp.Parse's to check, once.
		if trusted {
			break
		}
		t := pkt.Payload
		xsum := pseudoSum4(src, dst, ProtoTCP, len(t))
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
