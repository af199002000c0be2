package ip

import (
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// EchoReply writes into out the complete IPv4 packet answering an ICMP
// echo request pkt (RFC 792; RFC 1122 §3.2.2.6: the reply carries the same
// identifier, sequence number and data) and returns its length, or 0 if
// pkt is not an echo request or out is too small.
func EchoReply(out []byte, pkt *Packet, id uint16) int {
	if pkt.Protocol != ProtoICMP || len(pkt.Payload) < header.ICMPv4MinimumSize {
		return 0
	}
	req := header.ICMPv4(pkt.Payload)
	if req.Type() != header.ICMPv4Echo || req.Code() != 0 {
		return 0
	}
	n := HeaderLen + len(pkt.Payload)
	if len(out) < n {
		return 0
	}
	BuildHeader(out, pkt.Dst, pkt.Src, ProtoICMP, id, len(pkt.Payload))
	rep := header.ICMPv4(out[HeaderLen:n])
	copy(rep, pkt.Payload)
	rep.SetType(header.ICMPv4EchoReply)
	rep.SetCode(0)
	rep.SetChecksum(0)
	rep.SetChecksum(^checksum.Checksum(rep, 0))
	return n
}

// DestUnreachable writes an ICMP destination unreachable message (type 3,
// the given code) about orig from src, quoting orig's IP header and first
// 8 payload bytes (RFC 792), and returns its length, or 0 when none may be
// sent: RFC 1122 §3.2.2 forbids one about an ICMP error, a broadcast or
// multicast, or a non-initial fragment.
func DestUnreachable(out []byte, src [4]byte, orig *Packet, code uint8, id uint16) int {
	if orig.Protocol == ProtoICMP && len(orig.Payload) > 0 {
		switch header.ICMPv4Type(orig.Payload[0]) {
		case header.ICMPv4Echo, header.ICMPv4EchoReply:
		default:
			return 0 // an error (or unknown type): never answer it
		}
	}
	if orig.Dst[0] >= 224 || orig.Dst == [4]byte{255, 255, 255, 255} || badSource(orig.Src, src) {
		return 0
	}
	if len(orig.Header) >= header.IPv4MinimumSize && header.IPv4(orig.Header).FragmentOffset() != 0 {
		return 0
	}
	quote := len(orig.Header) + min(8, len(orig.Payload))
	icmpLen := header.ICMPv4MinimumSize + quote
	n := HeaderLen + icmpLen
	if len(out) < n {
		return 0
	}
	BuildHeader(out, src, orig.Src, ProtoICMP, id, icmpLen)
	m := header.ICMPv4(out[HeaderLen:n])
	clear(m[:header.ICMPv4MinimumSize])
	m.SetType(header.ICMPv4DstUnreachable)
	m.SetCode(header.ICMPv4Code(code))
	k := copy(m[header.ICMPv4MinimumSize:], orig.Header)
	copy(m[header.ICMPv4MinimumSize+k:], orig.Payload[:min(8, len(orig.Payload))])
	m.SetChecksum(^checksum.Checksum(m, 0))
	return n
}
