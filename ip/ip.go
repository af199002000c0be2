package ip

import (
	"encoding/binary"
	"sync/atomic"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// HeaderLen is the length of the headers we send: no IP options.
const HeaderLen = header.IPv4MinimumSize

// Protocol numbers we speak.
const (
	ProtoICMP = uint8(header.ICMPv4ProtocolNumber)
	ProtoTCP  = uint8(header.TCPProtocolNumber)
)

// DropReason says why an inbound packet was discarded.
type DropReason uint8

// The drop reasons.
const (
	DropNone         DropReason = iota
	DropShort                   // shorter than a minimal IPv4 header or than IHL says
	DropVersion                 // version != 4
	DropHeaderLength            // IHL < 5
	DropTotalLength             // total length < IHL*4 or > bytes received
	DropChecksum                // bad IPv4 header checksum
	DropFragment                // MF set or fragment offset != 0 (not reassembled)
	DropNotForUs                // destination is not our address
	DropProtocol                // neither TCP nor ICMP
	DropTCPShort                // TCP header short or data offset out of range
	DropTCPChecksum             // bad TCP checksum
	DropICMP                    // malformed or bad-checksum ICMP, or a type we ignore
	DropSource                  // unusable source address (RFC 1122 §3.2.1.3)
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	"none", "short", "version", "header_length", "total_length", "checksum",
	"fragment", "not_for_us", "protocol", "tcp_short", "tcp_checksum", "icmp", "source",
}

// String is the reason's snake_case name, as counters are labelled.
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return "unknown"
}

// Packet is a parsed inbound IPv4 packet. Header and Payload alias the
// buffer given to Parse.
type Packet struct {
	Src, Dst [4]byte
	Protocol uint8
	TTL      uint8
	ID       uint16
	Header   []byte // the IPv4 header with options
	Payload  []byte // exactly TotalLength - IHL bytes
}

// Parse validates b as an inbound IPv4 packet addressed to local and
// returns it, or the reason it must be dropped. The checks are those RFC
// 1122 §3.2.1.1-3.2.1.3 and RFC 791 require of a host; for TCP and ICMP
// the transport checksum is verified too, so callers can trust the bytes.
func Parse(b []byte, local [4]byte) (pkt Packet, reason DropReason) {
	if len(b) < header.IPv4MinimumSize {
		return pkt, DropShort
	}
	h := header.IPv4(b)
	// RFC 1122 §3.2.1.1: a datagram whose version is not 4 MUST be discarded.
	if header.IPVersion(b) != header.IPv4Version {
		return pkt, DropVersion
	}
	hl := int(h.HeaderLength())
	if hl < header.IPv4MinimumSize {
		return pkt, DropHeaderLength
	}
	if hl > len(b) {
		return pkt, DropShort
	}
	tl := int(h.TotalLength())
	if tl < hl || tl > len(b) {
		return pkt, DropTotalLength
	}
	// RFC 1122 §3.2.1.2: a datagram with a bad header checksum MUST be
	// silently discarded.
	if checksum.Checksum(b[:hl], 0) != 0xffff {
		return pkt, DropChecksum
	}
	if h.More() || h.FragmentOffset() != 0 {
		return pkt, DropFragment
	}
	copy(pkt.Src[:], h.SourceAddressSlice())
	copy(pkt.Dst[:], h.DestinationAddressSlice())
	if local != ([4]byte{}) && pkt.Dst != local {
		return pkt, DropNotForUs
	}
	// RFC 1122 §3.2.1.3: a host MUST silently discard a datagram whose
	// source is not a valid unicast address of another host.
	if badSource(pkt.Src, local) {
		return pkt, DropSource
	}
	pkt.Protocol = h.Protocol()
	pkt.TTL = h.TTL()
	pkt.ID = h.ID()
	pkt.Header = b[:hl]
	pkt.Payload = b[hl:tl]
	switch pkt.Protocol {
	case ProtoTCP:
		t := pkt.Payload
		if len(t) < header.TCPMinimumSize {
			return pkt, DropTCPShort
		}
		off := int(header.TCP(t).DataOffset())
		if off < header.TCPMinimumSize || off > len(t) {
			return pkt, DropTCPShort
		}
		// RFC 9293 §3.1: the checksum covers the pseudo-header too.
		if checksum.Checksum(t, PseudoHeaderChecksum(pkt.Src, pkt.Dst, ProtoTCP, len(t))) != 0xffff {
			return pkt, DropTCPChecksum
		}
	case ProtoICMP:
		if len(pkt.Payload) < header.ICMPv4MinimumSize || checksum.Checksum(pkt.Payload, 0) != 0xffff {
			return pkt, DropICMP
		}
	default:
		return pkt, DropProtocol
	}
	return pkt, DropNone
}

// badSource reports a source that no host may send from.
func badSource(src, local [4]byte) bool {
	switch {
	case src == [4]byte{}, // this host, only valid while booting
		src == [4]byte{255, 255, 255, 255}, // limited broadcast
		src[0] >= 224,                      // multicast and reserved
		src[0] == 127,                      // loopback never arrives on a link
		src == local:
		return true
	}
	return false
}

// Stats counts drops by reason. It is safe for concurrent use.
type Stats struct {
	drops [NumDropReasons]atomic.Uint64
}

// Drop counts one packet dropped for r.
func (s *Stats) Drop(r DropReason) {
	if r < NumDropReasons {
		s.drops[r].Add(1)
	}
}

// Dropped is how many packets were dropped for r.
func (s *Stats) Dropped(r DropReason) uint64 {
	if r < NumDropReasons {
		return s.drops[r].Load()
	}
	return 0
}

// Snapshot returns all counters, indexed by DropReason.
func (s *Stats) Snapshot() [NumDropReasons]uint64 {
	var out [NumDropReasons]uint64
	for i := range out {
		out[i] = s.drops[i].Load()
	}
	return out
}

// BuildHeader writes a 20-byte IPv4 header into b: version 4, no options,
// DF set (we never fragment; the MSS keeps segments within the MTU), TTL
// 64, total length 20+payloadLen, and a correct checksum. It returns 20.
func BuildHeader(b []byte, src, dst [4]byte, proto uint8, id uint16, payloadLen int) int {
	h := header.IPv4(b[:HeaderLen])
	h.Encode(&header.IPv4Fields{
		TOS:         0,
		TotalLength: uint16(HeaderLen + payloadLen),
		ID:          id,
		Flags:       header.IPv4FlagDontFragment,
		TTL:         64,
		Protocol:    proto,
		SrcAddr:     tcpipAddr(src),
		DstAddr:     tcpipAddr(dst),
	})
	h.SetChecksum(^checksum.Checksum(b[:HeaderLen], 0))
	return HeaderLen
}

// PseudoHeaderChecksum is the ones'-complement sum (not yet inverted) of
// the TCP/UDP pseudo-header {src, dst, 0, proto, length}.
func PseudoHeaderChecksum(src, dst [4]byte, proto uint8, length int) uint16 {
	var ph [12]byte
	copy(ph[0:4], src[:])
	copy(ph[4:8], dst[:])
	ph[9] = proto
	binary.BigEndian.PutUint16(ph[10:], uint16(length))
	return checksum.Checksum(ph[:], 0)
}

// TCPChecksum returns the value for the checksum field of seg (whose
// checksum field must be zero): RFC 9293 §3.1, the ones' complement of the
// ones'-complement sum over the pseudo-header and the segment.
func TCPChecksum(src, dst [4]byte, seg []byte) uint16 {
	return ^checksum.Checksum(seg, PseudoHeaderChecksum(src, dst, ProtoTCP, len(seg)))
}
