package ip

import (
	"encoding/binary"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// IPv6 is the Network of IPv6 (RFC 8200, with the addressing rules of
// RFC 4291 and as much of neighbour discovery, RFC 4861, as a
// point-to-point TUN needs) for the stack's address addr. It holds no
// mutable state and is safe for concurrent use.
type IPv6 struct {
	addr netip.Addr
}

// NewIPv6 returns the IPv6 network layer for the local address addr,
// which must be an IPv6 address and not a v4-mapped one (NewIPv6 panics
// otherwise: that is a caller's bug, not a packet's). A zone is dropped.
func NewIPv6(addr netip.Addr) *IPv6 {
	if !addr.Is6() || addr.Is4In6() {
		panic("ip.NewIPv6: " + addr.String() + " is not an IPv6 address")
	}
	return &IPv6{addr: addr.WithZone("")}
}

// Version returns 6.
func (n *IPv6) Version() int { return 6 }

// Addr returns the stack's IPv6 address.
func (n *IPv6) Addr() netip.Addr { return n.addr }

// HeaderLen returns 40: we send no extension headers.
func (n *IPv6) HeaderLen() int { return IPv6HeaderLen }

// MinMTU returns 1280 (RFC 8200 §5).
func (n *IPv6) MinMTU() int { return IPv6MinMTU }

// Parse validates b as an inbound IPv6 packet for n's address (RFC 8200):
// the fixed header (version, payload length, link padding removed), the
// addresses (RFC 4291: a destination that is n's address, or its
// solicited-node group for ICMPv6; a source that names a single other
// node), every extension header up to the upper layer (hop-by-hop first
// only, destination options and hop-by-hop options walked and acted on,
// a routing header only with no segments left; fragments dropped), and
// then, for TCP, the checksum over the IPv6 pseudo-header (unless
// trusted, see [ParseTrusted]; the TCP header's structure is tcp.Parse's
// to check); for ICMPv6, the
// minimum length and the checksum (RFC 4443 §2.3). It never allocates
// and never panics.
func (n *IPv6) Parse(b []byte, trusted bool) (Packet, DropReason) {
	return parse6(b, n.addr, trusted)
}

// BuildHeader writes the 40-byte header of [BuildIPv6] from n's address
// with the flow label flow.
func (n *IPv6) BuildHeader(b []byte, dst netip.Addr, proto uint8, flow uint32, payloadLen int) int {
	return BuildIPv6(b, n.addr, dst, proto, flow, payloadLen)
}

// ICMP answers an echo request ([EchoReply6], reflecting the request's
// flow label) or a neighbour solicitation for n's address
// ([NeighborAdvert]), or reads an error about one of n's TCP segments
// ([ParseICMPv6Error]).
func (n *IPv6) ICMP(pkt *Packet, out []byte) (reply int, e ICMPError, isErr bool) {
	if r := EchoReply6(out, pkt, pkt.FlowLabel); r > 0 {
		return r, e, false
	}
	if r := NeighborAdvert(out, pkt, n.addr); r > 0 {
		return r, e, false
	}
	e, isErr = ParseICMPv6Error(pkt, n.addr)
	return 0, e, isErr
}

// The IPv6 next-header values parse6 knows (IANA's "Assigned Internet
// Protocol Numbers"; RFC 8200 §4).
const (
	nextHopByHop  = 0
	nextRouting   = 43
	nextFragment  = 44
	nextNone      = 59
	nextDestOpts  = 60
	protoUDP      = 17
	maxExtHeaders = 8 // more than any sane packet carries; bounds the walk
)

// parse6 validates b as an inbound IPv6 packet for local (see
// [IPv6.Parse]); a zero or unspecified local accepts any unicast
// destination. trusted skips the TCP checksum, as for parse4.
func parse6(b []byte, local netip.Addr, trusted bool) (pkt Packet, reason DropReason) {
	if len(b) < header.IPv6MinimumSize {
		return pkt, DropShort
	}
	if b[0]>>4 != header.IPv6Version {
		return pkt, DropVersion
	}
	// RFC 8200 §3: Payload Length counts everything after the fixed
	// header. Bytes beyond it are link-layer padding; a packet longer
	// than what arrived is truncated. Zero means a jumbogram (RFC 2675,
	// which needs a link MTU above 65575 that a TUN never has) or an
	// empty payload, which cannot hold a TCP or ICMPv6 header either.
	pl := int(binary.BigEndian.Uint16(b[4:6]))
	if pl == 0 || header.IPv6MinimumSize+pl > len(b) {
		return pkt, DropTotalLength
	}
	b = b[:header.IPv6MinimumSize+pl]
	src, dst := [16]byte(b[8:24]), [16]byte(b[24:40])

	var l16 [16]byte
	specific := local.IsValid() && !local.IsUnspecified()
	if specific {
		l16 = local.As16()
	}
	// Our solicited-node group is the one multicast destination we take,
	// and then only for ICMPv6 (a neighbour solicitation, checked once
	// the upper layer is known).
	solicited := specific && dst == solicitedNode(l16)
	if !solicited {
		// RFC 4291 §2.5.3: a packet received with the loopback
		// destination must be dropped; §2.5.2: the unspecified address
		// is never a destination; and we speak no multicast (TCP MUST
		// NOT accept it, RFC 9293 §3.9.1 / RFC 1122 §4.2.3.10).
		if !isUnicast6(dst) {
			return pkt, DropNotForUs
		}
		if specific && dst != l16 {
			return pkt, DropNotForUs
		}
	}
	// The source must name a single other node: not the unspecified
	// address (RFC 4291 §2.5.2), not loopback (§2.5.3: never sent
	// outside a node), not multicast (§2.7: never a source), not
	// v4-mapped (RFC 4038 §4.2: never on the wire), and not ours (a loop
	// or a spoof). The one exception is RFC 4861 §7.1.1: duplicate
	// address detection solicits from the unspecified address to a
	// solicited-node group, which NeighborAdvert then validates.
	if !isUnicast6(src) || src == dst || (specific && src == l16) {
		if !(solicited && src == [16]byte{}) {
			return pkt, DropSource
		}
	}

	// RFC 8200 §4: walk the extension headers to the upper layer.
	next, off, reason, _ := chain6(b)
	if reason != DropNone {
		return pkt, reason
	}
	if solicited && next != ProtoICMPv6 {
		return pkt, DropNotForUs
	}

	pkt.Version = 6
	pkt.Src, pkt.Dst = netip.AddrFrom16(src), netip.AddrFrom16(dst)
	pkt.Protocol = next
	pkt.TTL = b[7]
	pkt.FlowLabel = binary.BigEndian.Uint32(b[0:4]) & 0xfffff
	pkt.Header = b[:off:off]
	pkt.Payload = b[off:len(b):len(b)]
	switch next {
	case ProtoTCP:
		// The TCP header's structure is tcp.Parse's to check, once;
		// the checksum is the network layer's, which owns the
		// pseudo-header.
		t := pkt.Payload
		if trusted {
			break
		}
		// RFC 8200 §8.1: the TCP checksum covers the IPv6
		// pseudo-header; RFC 9293 §3.1 and RFC 1122 §4.2.2.7: it MUST
		// be checked.
		if checksum.Checksum(t, pseudoSum6(src, dst, ProtoTCP, len(t))) != 0xffff {
			return pkt, DropTCPChecksum
		}
	case ProtoICMPv6:
		// RFC 4443 §2.3: the checksum covers the pseudo-header and the
		// whole message, and is always checked. Every message we act on
		// has at least the 4 bytes of type-specific data (§2.1).
		m := pkt.Payload
		if len(m) < header.ICMPv6MinimumSize || checksum.Checksum(m, pseudoSum6(src, dst, ProtoICMPv6, len(m))) != 0xffff {
			return pkt, DropICMP
		}
	}
	return pkt, DropNone
}

// problem6 is why a walk stopped, when RFC 8200 §4 asks the node to tell
// the packet's source with an ICMPv6 Parameter Problem (RFC 4443 §3.4):
// its code (0 erroneous header field, 1 unrecognized next header, 2
// unrecognized option) and the offset of the offending byte from the
// start of the packet. report is false when the RFC asks for silence (a
// truncated or overlong chain, an option whose action is "discard", No
// Next Header, UDP, which a host without it leaves unanswered as on
// IPv4). multicastToo marks the one case reported even for a packet to a
// multicast address: an option whose type's high bits are 10 (§4.2).
type problem6 struct {
	report       bool
	code         uint8
	pointer      int
	multicastToo bool
}

// chain6 walks the extension headers of b, an IPv6 packet whose payload
// length has been checked against len(b), to the upper layer (RFC 8200
// §4): it returns the upper layer's protocol and offset, or the reason to
// drop the packet and, where the RFC asks for one, the Parameter Problem
// to send. It never reads outside b.
func chain6(b []byte) (next uint8, off int, reason DropReason, prob problem6) {
	next, off = b[6], header.IPv6MinimumSize
	nextAt := 6 // where the Next Header field that names next is
	for i := 0; ; i++ {
		if next == ProtoTCP || next == ProtoICMPv6 {
			return next, off, DropNone, prob
		}
		if i == maxExtHeaders {
			return next, off, DropExtension, prob
		}
		switch next {
		case nextHopByHop, nextDestOpts:
			// RFC 8200 §4.3: Hop-by-Hop Options is restricted to
			// appear immediately after the fixed header; anywhere else
			// its Next Header value is one we cannot act on (Linux
			// answers it as unrecognized, code 1).
			if next == nextHopByHop && i != 0 {
				return next, off, DropExtension, problem6{report: true, code: 1, pointer: nextAt}
			}
			hl, ok := extLen(b[off:])
			if !ok {
				return next, off, DropExtension, prob
			}
			if at, action, ok := walkOptions(b[off+2 : off+hl]); !ok {
				// RFC 8200 §4.2: an unrecognized option whose type's
				// high bits are 10 MUST be answered with code 2 even
				// to a multicast destination, 11 only to a unicast one;
				// 01 is a silent discard, and so is a malformed list.
				if action >= 2 {
					prob = problem6{report: true, code: 2, pointer: off + 2 + at, multicastToo: action == 2}
				}
				return next, off, DropExtension, prob
			}
			next, nextAt, off = b[off], off, off+hl
		case nextRouting:
			// RFC 8200 §4.4: with Segments Left zero a node must
			// ignore the Routing header, whatever its type; with
			// Segments Left nonzero and a type it does not know, it
			// must discard the packet and send a Parameter Problem,
			// code 0, pointing to the Routing Type (we route nothing,
			// so every type is unknown; RFC 5095 §3 has RH0 treated so
			// too).
			hl, ok := extLen(b[off:])
			if !ok {
				return next, off, DropExtension, prob
			}
			if b[off+3] != 0 {
				return next, off, DropExtension, problem6{report: true, code: 0, pointer: off + 2}
			}
			next, nextAt, off = b[off], off, off+hl
		case nextFragment:
			// RFC 6946 §4: an atomic fragment (offset 0, M clear) is a
			// whole packet and MUST be processed as one, in isolation
			// from any other fragment: its Fragment header is skipped.
			// Anything else is a piece of a larger packet: we do not
			// reassemble (RFC 8200 §4.5), so it is counted and dropped,
			// as for IPv4.
			if off+8 > len(b) {
				return next, off, DropExtension, prob
			}
			if binary.BigEndian.Uint16(b[off+2:off+4])&0xfff9 != 0 { // offset and M (the 2 reserved bits aside)
				return next, off, DropFragment, prob
			}
			next, nextAt, off = b[off], off, off+8
		default:
			// No Next Header (59), ESP, AH, UDP and everything else:
			// no upper layer we speak. RFC 8200 §4: an unrecognized
			// Next Header value should be answered with code 1,
			// pointing to it; not No Next Header (§4.7: nothing
			// follows, by design) nor UDP (left unanswered, as on
			// IPv4).
			if next != nextNone && next != protoUDP {
				prob = problem6{report: true, code: 1, pointer: nextAt}
			}
			return next, off, DropProtocol, prob
		}
	}
}

// extLen returns the length in bytes of the hop-by-hop, destination
// options or routing header at the start of b (RFC 8200 §4.3-§4.4: Hdr
// Ext Len counts 8-byte units beyond the first), and false if b does not
// hold all of it.
func extLen(b []byte) (int, bool) {
	if len(b) < 8 {
		return 0, false
	}
	hl := (int(b[1]) + 1) * 8
	return hl, hl <= len(b)
}

// walkOptions walks the TLV-encoded options of a hop-by-hop or
// destination options header (RFC 8200 §4.2) and reports whether the
// packet may be processed further: every option must lie within opts,
// and an option we do not recognise must have 00 in the two high bits of
// its type ("skip over this option"). Otherwise it returns false, with
// the offset in opts of the option we refuse and the two high bits of its
// type (1 discard; 2 and 3 discard and send a Parameter Problem, which
// chain6 turns into a problem6); a list that overruns its header gives
// action 0.
func walkOptions(opts []byte) (at int, action uint8, ok bool) {
	for i := 0; i < len(opts); {
		typ := opts[i]
		if typ == 0 { // Pad1: a single zero byte
			i++
			continue
		}
		if i+2 > len(opts) {
			return i, 0, false
		}
		end := i + 2 + int(opts[i+1])
		if end > len(opts) {
			return i, 0, false
		}
		// PadN (1) and options of action 00 (Router Alert, RFC 2711,
		// among them) are skipped; Jumbo Payload (0xc2, action 11) is
		// refused here, as RFC 2675 requires of a node without jumbogram
		// support.
		if typ != 1 && typ>>6 != 0 {
			return i, typ >> 6, false
		}
		i = end
	}
	return 0, 0, true
}

// isUnicast6 reports whether a can name a single node: not the
// unspecified address (RFC 4291 §2.5.2), not loopback (§2.5.3), not
// multicast (ff00::/8, §2.7), not v4-mapped (::ffff:0:0/96, §2.5.5.2,
// which belongs to IPv4 and never appears in an IPv6 header).
func isUnicast6(a [16]byte) bool {
	if a[0] == 0xff {
		return false
	}
	if [10]byte(a[:10]) == [10]byte{} {
		if a[10] == 0xff && a[11] == 0xff {
			return false
		}
		if [4]byte(a[10:14]) == [4]byte{} && a[14] == 0 && a[15] <= 1 {
			return false
		}
	}
	return true
}

// solicitedNode returns the solicited-node multicast address of a,
// ff02::1:ff00:0/104 with a's low 24 bits (RFC 4291 §2.7.1).
func solicitedNode(a [16]byte) [16]byte {
	return [16]byte{0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, a[13], a[14], a[15]}
}

// pseudoSum6 returns the ones'-complement sum, folded but not inverted,
// of the IPv6 pseudo-header of RFC 8200 §8.1: source, destination, the
// upper-layer length as 32 bits, three zero bytes and the next header.
func pseudoSum6(src, dst [16]byte, proto uint8, length int) uint16 {
	// Its 16-bit words added by hand, as pseudoSum4's: it is on every
	// packet's path. Twenty words of at most 0xffff fit in 32 bits.
	var s uint32
	for i := 0; i < 16; i += 2 {
		s += uint32(src[i])<<8 | uint32(src[i+1])
		s += uint32(dst[i])<<8 | uint32(dst[i+1])
	}
	s += uint32(length)>>16 + uint32(length)&0xffff + uint32(proto)
	s = s&0xffff + s>>16
	s = s&0xffff + s>>16
	return uint16(s)
}
