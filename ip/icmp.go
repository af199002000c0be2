package ip

import (
	"encoding/binary"
	"net/netip"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// EchoReply answers pkt if it is an ICMP echo request (type 8, code 0): it
// writes into out the complete IPv4 packet holding the echo reply and
// returns its length (IPv4 only). The reply is type 0 code 0 with the request's
// identifier, sequence number and data, from pkt.Dst to pkt.Src, with IP
// identification id and valid IP and ICMP checksums. It returns 0, writing
// nothing, if pkt is not an echo request, was sent to a broadcast or
// multicast address, or out is shorter than 20+len(pkt.Payload).
//
// out may be the very buffer pkt was parsed from (a reply in place);
// otherwise it must not overlap it. EchoReply does not allocate.
//
// IP options of the request (Record Route, Timestamp) are not reflected:
// RFC 1122 §3.2.2.6 says SHOULD, and we send no options at all.
func EchoReply(out []byte, pkt *Packet, id uint16) int {
	if pkt.Version != 4 || pkt.Protocol != ProtoICMP || len(pkt.Payload) < header.ICMPv4MinimumSize {
		return 0
	}
	req := header.ICMPv4(pkt.Payload)
	if req.Type() != header.ICMPv4Echo || req.Code() != 0 {
		return 0
	}
	// RFC 1122 §3.2.2.6: the reply's source MUST be the request's specific
	// destination, so a request to a broadcast or multicast address
	// (which we MAY discard) has no source we could answer from.
	// Nor is a reply sent to a source that names no single other host
	// (RFC 1122 §3.2.2; Parse has already dropped such packets).
	if !isUnicast(pkt.Dst.As4()) || !isUnicast(pkt.Src.As4()) || pkt.Src == pkt.Dst {
		return 0
	}
	n := IPv4HeaderLen + len(pkt.Payload)
	if len(out) < n || n > 0xffff {
		return 0
	}
	src, dst, data := pkt.Dst, pkt.Src, pkt.Payload
	// The header goes first: with options absent or present, the request's
	// payload starts at or after byte 20 of its buffer, so in place this
	// overwrites only the request's header, which src and dst have copied.
	BuildIPv4(out, src, dst, ProtoICMP, id, len(data))
	rep := header.ICMPv4(out[IPv4HeaderLen:n])
	// RFC 1122 §3.2.2.6: the data received in the request MUST be entirely
	// included in the reply; RFC 792: identifier and sequence number are
	// returned too. copy is a memmove, so the in-place shift is safe.
	copy(rep, data)
	rep.SetType(header.ICMPv4EchoReply)
	rep.SetCode(0)
	rep.SetChecksum(0)
	rep.SetChecksum(^checksum.Checksum(rep, 0))
	return n
}

// DestUnreachable writes into out an IPv4 packet from src to orig.Src
// holding an ICMP destination unreachable message (type 3, the given code,
// e.g. 2 protocol unreachable or 3 port unreachable) about orig, quoting
// orig's IP header and the first 8 bytes of its payload (RFC 792; RFC 1122
// §3.2.2), and returns its length. orig must come from [Parse]; out must
// not overlap orig's buffer. The 4-byte field after the checksum is zero,
// so code 4 (fragmentation needed) carries no next-hop MTU.
//
// It returns 0, writing nothing, when RFC 1122 §3.2.2 forbids the error:
// orig is itself an ICMP error (or an ICMP message whose type we do not
// know), was sent to a broadcast or multicast address, is a fragment, or
// has a source that does not name a single host; also when orig has no
// IPv4 header or out is too small. It does not allocate.
func DestUnreachable(out []byte, src netip.Addr, orig *Packet, code uint8, id uint16) int {
	if orig.Version != 4 || !src.Is4() || len(orig.Header) < header.IPv4MinimumSize || len(orig.Header) > header.IPv4MaximumHeaderSize {
		return 0
	}
	// RFC 1122 §3.2.2: an ICMP error message MUST NOT be sent as the
	// result of receiving an ICMP error message...
	if orig.Protocol == ProtoICMP && (len(orig.Payload) == 0 || !isICMPQuery(header.ICMPv4Type(orig.Payload[0]))) {
		return 0
	}
	// ... a datagram destined to an IP broadcast or IP multicast address,
	// or one whose source does not define a single host. (A directed
	// broadcast destination cannot be recognised without the netmask; the
	// stack only hands us packets addressed to it.)
	if !isUnicast(orig.Dst.As4()) || !isUnicast(orig.Src.As4()) || orig.Src == src {
		return 0
	}
	// ... or a non-initial fragment. We go further and refuse any
	// fragment: we never reassemble, so we never judge one.
	if h := header.IPv4(orig.Header); h.More() || h.FragmentOffset() != 0 {
		return 0
	}
	quoted := min(len(orig.Payload), header.ICMPv4MinimumErrorPayloadSize)
	icmpLen := header.ICMPv4MinimumSize + len(orig.Header) + quoted
	n := IPv4HeaderLen + icmpLen
	if len(out) < n {
		return 0
	}
	BuildIPv4(out, src, orig.Src, ProtoICMP, id, icmpLen)
	m := header.ICMPv4(out[IPv4HeaderLen:n])
	clear(m[:header.ICMPv4MinimumSize]) // checksum and unused field zero
	m.SetType(header.ICMPv4DstUnreachable)
	m.SetCode(header.ICMPv4Code(code))
	k := copy(m.Payload(), orig.Header)
	copy(m.Payload()[k:], orig.Payload[:quoted])
	m.SetChecksum(^checksum.Checksum(m, 0))
	return n
}

// isICMPQuery reports whether t is an ICMP query or reply type of RFC 792,
// as opposed to an error message (3, 4, 5, 11, 12) or an unknown type,
// which we treat as an error to be safe.
func isICMPQuery(t header.ICMPv4Type) bool {
	switch t {
	case header.ICMPv4EchoReply, header.ICMPv4Echo,
		header.ICMPv4Timestamp, header.ICMPv4TimestampReply,
		header.ICMPv4InfoRequest, header.ICMPv4InfoReply:
		return true
	}
	return false
}

// ICMPError is what an ICMP or ICMPv6 error message says about a TCP
// segment this host sent: how TCP should take it (Kind, and the errno
// Linux reports for it), the message's type and code, and from the quoted
// original, the peer's address, both ports and the segment's sequence
// number.
type ICMPError struct {
	Kind             ErrorKind
	Errno            syscall.Errno // ECONNREFUSED, EHOSTUNREACH, ...; 0 for ErrorTooBig and ErrorIgnored
	Type, Code       uint8
	Peer             netip.Addr // the original datagram's destination
	SrcPort, DstPort uint16     // of our segment
	Seq              uint32     // of our segment
	// MTU is what a "fragmentation needed" (RFC 1191) or Packet Too Big
	// (RFC 8201) message reports, as received (0 if absent): the caller
	// applies its floor.
	MTU int
}

// ICMPv4Echo is the type of an ICMP echo request (RFC 792).
const ICMPv4Echo = uint8(header.ICMPv4Echo)

// The ICMP error types a TCP sender cares about (RFC 792, RFC 1122 §4.2.3.9).
const (
	ICMPDestUnreachable  = uint8(header.ICMPv4DstUnreachable)
	ICMPSourceQuench     = uint8(header.ICMPv4SrcQuench)
	ICMPTimeExceeded     = uint8(header.ICMPv4TimeExceeded)
	ICMPParamProblem     = uint8(header.ICMPv4ParamProblem)
	ICMPCodePortUnreach  = uint8(header.ICMPv4PortUnreachable)
	ICMPCodeProtoUnreach = uint8(header.ICMPv4ProtoUnreachable)
	ICMPCodeFragNeeded   = uint8(header.ICMPv4FragmentationNeeded)
)

// ParseICMPError reads pkt, an IPv4 ICMP message from [Parse], as an
// error about a TCP segment local sent (RFC 1122 §4.2.3.9 wants TCP to
// act on them), and classifies it. ok is false for anything else: a
// query, an error about some other protocol or sender, or a quote too
// short to hold the TCP ports and sequence number (RFC 792 quotes the IP
// header and 8 bytes of data). It does not allocate.
func ParseICMPError(pkt *Packet, local netip.Addr) (e ICMPError, ok bool) {
	if pkt.Version != 4 || pkt.Protocol != ProtoICMP || len(pkt.Payload) < header.ICMPv4MinimumSize || !local.Is4() {
		return e, false
	}
	m := header.ICMPv4(pkt.Payload)
	switch uint8(m.Type()) {
	case ICMPDestUnreachable, ICMPSourceQuench, ICMPTimeExceeded, ICMPParamProblem:
	default:
		return e, false
	}
	q := m.Payload()
	if len(q) < header.IPv4MinimumSize {
		return e, false
	}
	ih := header.IPv4(q)
	hl := int(ih.HeaderLength())
	if header.IPVersion(q) != header.IPv4Version || hl < header.IPv4MinimumSize || len(q) < hl+8 ||
		ih.Protocol() != ProtoTCP || [4]byte(ih.SourceAddressSlice()) != local.As4() {
		return e, false
	}
	t := q[hl:]
	e = ICMPError{
		Type: uint8(m.Type()), Code: uint8(m.Code()),
		Peer:    netip.AddrFrom4([4]byte(ih.DestinationAddressSlice())),
		SrcPort: binary.BigEndian.Uint16(t[0:]), DstPort: binary.BigEndian.Uint16(t[2:]),
		Seq: binary.BigEndian.Uint32(t[4:]),
	}
	e.Kind, e.Errno = ErrorSoft, syscall.EHOSTUNREACH
	switch {
	case e.Type == ICMPSourceQuench:
		e.Kind, e.Errno = ErrorIgnored, 0
	case e.Type == ICMPDestUnreachable && e.Code == ICMPCodePortUnreach:
		e.Kind, e.Errno = ErrorHard, syscall.ECONNREFUSED
	case e.Type == ICMPDestUnreachable && e.Code == ICMPCodeProtoUnreach:
		e.Kind, e.Errno = ErrorHard, syscall.ENOPROTOOPT
	case e.Type == ICMPDestUnreachable && e.Code == ICMPCodeFragNeeded:
		e.Kind, e.Errno = ErrorTooBig, 0
		e.MTU = int(m.MTU())
	case e.Type == ICMPDestUnreachable && e.Code == 0:
		e.Errno = syscall.ENETUNREACH
	case e.Type == ICMPParamProblem:
		e.Errno = syscall.EPROTO
	}
	return e, true
}
