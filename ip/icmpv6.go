package ip

import (
	"encoding/binary"
	"math"
	"net/netip"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// The ICMPv6 message types this package reads or writes (RFC 4443 §2.1,
// RFC 4861 §4). Types below 128 are errors, the rest informational.
const (
	ICMPv6DestUnreachable = uint8(header.ICMPv6DstUnreachable)  // 1
	ICMPv6PacketTooBig    = uint8(header.ICMPv6PacketTooBig)    // 2
	ICMPv6TimeExceeded    = uint8(header.ICMPv6TimeExceeded)    // 3
	ICMPv6ParamProblem    = uint8(header.ICMPv6ParamProblem)    // 4
	ICMPv6EchoRequest     = uint8(header.ICMPv6EchoRequest)     // 128
	ICMPv6EchoReply       = uint8(header.ICMPv6EchoReply)       // 129
	ICMPv6NeighborSolicit = uint8(header.ICMPv6NeighborSolicit) // 135
	ICMPv6NeighborAdvert  = uint8(header.ICMPv6NeighborAdvert)  // 136
	ICMPv6Redirect        = uint8(header.ICMPv6RedirectMsg)     // 137
)

// The codes of an ICMPv6 Destination Unreachable (RFC 4443 §3.1), for
// [DestUnreachable6] and as [ParseICMPv6Error] reports them.
const (
	ICMPv6CodeNoRoute     = uint8(header.ICMPv6NetworkUnreachable) // 0
	ICMPv6CodeProhibited  = uint8(header.ICMPv6Prohibited)         // 1
	ICMPv6CodeBeyondScope = uint8(header.ICMPv6BeyondScope)        // 2
	ICMPv6CodeAddrUnreach = uint8(header.ICMPv6AddressUnreachable) // 3
	ICMPv6CodePortUnreach = uint8(header.ICMPv6PortUnreachable)    // 4
	ICMPv6CodePolicy      = uint8(header.ICMPv6Policy)             // 5
	ICMPv6CodeRejectRoute = uint8(header.ICMPv6RejectRoute)        // 6
)

// icmpv6MaxQuote is how much of the invoking packet an ICMPv6 error
// quotes at most: RFC 4443 §2.4 (c), as much as fits without the error
// exceeding the minimum IPv6 MTU (1280 - 40 - 8).
const icmpv6MaxQuote = IPv6MinMTU - IPv6HeaderLen - header.ICMPv6ErrorHeaderSize

// ndpOptSourceLinkAddr is the type of the Source Link-Layer Address
// option of neighbour discovery (RFC 4861 §4.6.1).
const ndpOptSourceLinkAddr = 1

// allNodes is ff02::1, the link-local all-nodes group (RFC 4291 §2.7.1).
var allNodes = netip.AddrFrom16([16]byte{0xff, 0x02, 15: 1})

// EchoReply6 answers pkt if it is an ICMPv6 echo request (type 128, code
// 0): it writes into out the complete IPv6 packet holding the echo reply
// and returns its length. The reply is type 129 code 0 from pkt.Dst to
// pkt.Src with flow label flow, carrying the request's identifier,
// sequence number and data (RFC 4443 §4.2), with a valid checksum over
// the IPv6 pseudo-header. It returns 0, writing nothing, if pkt is not an
// IPv6 echo request, was sent to a multicast address, comes from an
// address that names no single other node, or out is shorter than
// 40+len(pkt.Payload).
//
// out may be the very buffer pkt was parsed from (a reply in place);
// otherwise it must not overlap it. EchoReply6 does not allocate.
//
// RFC 4443 §4.2 says a request to a multicast address SHOULD be answered
// from a unicast address; we do not speak multicast (Parse drops all of
// it but our solicited-node group), so such requests go unanswered.
func EchoReply6(out []byte, pkt *Packet, flow uint32) int {
	if pkt.Version != 6 || pkt.Protocol != ProtoICMPv6 || len(pkt.Payload) < header.ICMPv6EchoMinimumSize {
		return 0
	}
	req := pkt.Payload
	if req[0] != ICMPv6EchoRequest || req[1] != 0 {
		return 0
	}
	src, dst := pkt.Dst.As16(), pkt.Src.As16()
	if !isUnicast6(src) || !isUnicast6(dst) || src == dst {
		return 0
	}
	n := IPv6HeaderLen + len(req)
	if len(out) < n || len(req) > math.MaxUint16 {
		return 0
	}
	// The header goes first: the request's data starts at byte 40 of its
	// buffer or later (after its extension headers), so in place this
	// overwrites only the request's fixed header, which src and dst have
	// copied.
	BuildIPv6(out, pkt.Dst, pkt.Src, ProtoICMPv6, flow, len(req))
	rep := out[IPv6HeaderLen:n]
	// RFC 4443 §4.2: the data received in the request MUST be returned
	// entirely and unmodified, with its identifier and sequence number.
	// copy is a memmove, so the in-place shift is safe.
	copy(rep, req)
	rep[0], rep[1] = ICMPv6EchoReply, 0
	setICMPv6Checksum(rep, src, dst)
	return n
}

// NeighborAdvert answers pkt if it is a valid neighbour solicitation
// (RFC 4861 §7.1.1) for the address local: it writes into out the IPv6
// packet holding the neighbour advertisement (type 136, RFC 4861 §4.4,
// §7.2.4) and returns its length, 64. The advertisement is from local,
// with hop limit 255, the Router flag clear (we are a host), target
// local and no options: a TUN has no link-layer address to advertise.
// It goes to the solicitation's source with the Solicited flag set, or,
// when that source is the unspecified address (duplicate address
// detection), to the all-nodes group ff02::1 with Solicited clear. The
// Override flag is clear: RFC 4861 §7.2.4 says it SHOULD be when no
// Target Link-Layer Address option is included.
//
// It returns 0, writing nothing, for anything else: not a solicitation,
// one that fails §7.1.1's checks (hop limit 255, code 0, at least 24
// bytes, a target that is not multicast, options of nonzero length, and
// from the unspecified address only to a solicited-node group and
// without a Source Link-Layer Address option), one for another target or
// sent to neither local nor its solicited-node group, or out shorter
// than 64 bytes. out may be the buffer pkt was parsed from. It does not
// allocate.
func NeighborAdvert(out []byte, pkt *Packet, local netip.Addr) int {
	const msgLen = header.ICMPv6NeighborAdvertMinimumSize // 24
	if pkt.Version != 6 || pkt.Protocol != ProtoICMPv6 || !local.Is6() {
		return 0
	}
	m := pkt.Payload
	// RFC 4861 §7.1.1: a node MUST silently discard a solicitation that
	// fails any of these checks (the checksum Parse has verified).
	if len(m) < header.ICMPv6NeighborSolicitMinimumSize || m[0] != ICMPv6NeighborSolicit || m[1] != 0 ||
		pkt.TTL != header.NDPHopLimit {
		return 0
	}
	target, l16 := [16]byte(m[8:24]), local.As16()
	if target[0] == 0xff || target != l16 || !isUnicast6(l16) {
		return 0
	}
	dst, src := pkt.Dst.As16(), pkt.Src.As16()
	group := solicitedNode(l16)
	if dst != l16 && dst != group {
		return 0
	}
	dad := src == [16]byte{}
	if dad && dst != group || !dad && (!isUnicast6(src) || src == l16) {
		return 0
	}
	for o := m[header.ICMPv6NeighborSolicitMinimumSize:]; len(o) > 0; {
		// RFC 4861 §4.6: options are 8-byte units; length 0 is invalid.
		if len(o) < 2 || o[1] == 0 || int(o[1])*8 > len(o) {
			return 0
		}
		if dad && o[0] == ndpOptSourceLinkAddr {
			return 0
		}
		o = o[int(o[1])*8:]
	}
	n := IPv6HeaderLen + msgLen
	if len(out) < n {
		return 0
	}
	to, flags := pkt.Src, byte(0x40) // Solicited
	if dad {
		// RFC 4861 §7.2.4: for a solicitation from the unspecified
		// address the node MUST clear Solicited and multicast the
		// advertisement to all nodes.
		to, flags = allNodes, 0
	}
	// Everything read from the solicitation has been copied: in place,
	// the writes below are safe.
	BuildIPv6(out, local, to, ProtoICMPv6, 0, msgLen)
	// RFC 4861 §7.1.2: a receiver MUST discard an advertisement whose hop
	// limit is not 255 (BuildIPv6 sets DefaultTTL).
	header.IPv6(out).SetHopLimit(header.NDPHopLimit)
	a := out[IPv6HeaderLen:n]
	clear(a[:8])
	a[0], a[4] = ICMPv6NeighborAdvert, flags
	copy(a[8:24], l16[:])
	setICMPv6Checksum(a, l16, to.As16())
	return n
}

// ParseICMPv6Error reads pkt, an ICMPv6 message from [Parse], as an error
// about a TCP segment local sent, and classifies it for TCP (RFC 4443
// §3, RFC 1122 §4.2.3.9, RFC 5927), with Linux's errno for each. ok is
// false for anything else: an informational message, one sent to a
// multicast address, or an error whose quoted packet is not from local,
// is not TCP, or is cut before the TCP ports and sequence number.
//
// The quoted packet's extension headers are walked to find its upper
// layer (RFC 4443 §2.4 (d)); a quote truncated within them is dropped,
// as §2.4 (d) says. An error type this package does not know is passed up
// as a soft EPROTO (§2.4 (a): it MUST be passed to the upper layer).
// Destination Unreachable, port unreachable (code 4) is hard
// (ECONNREFUSED); no route (0) is soft ENETUNREACH; administratively
// prohibited, policy and reject route (1, 5, 6) soft EACCES; the rest
// soft EHOSTUNREACH. Packet Too Big is ErrorTooBig with the MTU it
// reports (RFC 8201; the caller applies the 1280 floor). Time Exceeded is
// soft EHOSTUNREACH and Parameter Problem soft EPROTO. It does not
// allocate.
func ParseICMPv6Error(pkt *Packet, local netip.Addr) (e ICMPError, ok bool) {
	if pkt.Version != 6 || pkt.Protocol != ProtoICMPv6 || len(pkt.Payload) < header.ICMPv6ErrorHeaderSize ||
		!local.Is6() {
		return e, false
	}
	m := pkt.Payload
	typ, code := m[0], m[1]
	// RFC 4443 §2.1: errors have types below 128. None is sent to a
	// multicast address (§2.4 (e.3) forbids most of them about multicast,
	// and none is sent to one).
	if typ >= 128 || pkt.Dst.As16()[0] == 0xff {
		return e, false
	}
	q := m[header.ICMPv6ErrorHeaderSize:]
	if len(q) < header.IPv6MinimumSize || q[0]>>4 != header.IPv6Version || [16]byte(q[8:24]) != local.As16() {
		return e, false
	}
	proto, off, found := upperLayer(q)
	if !found || proto != ProtoTCP || len(q) < off+8 {
		return e, false
	}
	t := q[off:]
	e = ICMPError{
		Type: typ, Code: code,
		Peer:    netip.AddrFrom16([16]byte(q[24:40])),
		SrcPort: binary.BigEndian.Uint16(t[0:]), DstPort: binary.BigEndian.Uint16(t[2:]),
		Seq: binary.BigEndian.Uint32(t[4:]),
	}
	e.Kind, e.Errno = ErrorSoft, syscall.EHOSTUNREACH
	switch typ {
	case ICMPv6DestUnreachable:
		switch code {
		case ICMPv6CodeNoRoute:
			e.Errno = syscall.ENETUNREACH
		case ICMPv6CodeProhibited, ICMPv6CodePolicy, ICMPv6CodeRejectRoute:
			e.Errno = syscall.EACCES
		case ICMPv6CodePortUnreach:
			e.Kind, e.Errno = ErrorHard, syscall.ECONNREFUSED
		}
	case ICMPv6PacketTooBig:
		// RFC 4443 §3.2: the code is ignored by the receiver.
		e.Kind, e.Errno = ErrorTooBig, 0
		e.MTU = int(min(uint64(binary.BigEndian.Uint32(m[4:8])), math.MaxInt))
	case ICMPv6TimeExceeded:
	default: // Parameter Problem, and error types we do not know
		e.Errno = syscall.EPROTO
	}
	return e, true
}

// DestUnreachable6 writes into out an IPv6 packet from src to orig.Src
// holding an ICMPv6 Destination Unreachable (type 1, the given code, e.g.
// [ICMPv6CodePortUnreach]) about orig, quoting as much of orig as fits
// in 1280 bytes (RFC 4443 §3.1, §2.4 (c)), and returns its length. orig
// must come from [Parse]; out must not overlap orig's buffer.
//
// It returns 0, writing nothing, where RFC 4443 §2.4 (e) says an error
// MUST NOT be sent: orig is an ICMPv6 error or a redirect (e.1, e.2),
// was sent to a multicast address (e.3), or comes from an address that
// does not name a single node (e.6); also when orig is not IPv6, src is
// not a unicast IPv6 address or is orig's source, or out is too small.
// Rate limiting (§2.4 (f)) is the caller's. It does not allocate.
func DestUnreachable6(out []byte, src netip.Addr, orig *Packet, code uint8) int {
	if orig.Version != 6 || !src.Is6() || len(orig.Header) < header.IPv6MinimumSize {
		return 0
	}
	if orig.Protocol == ProtoICMPv6 && (len(orig.Payload) == 0 || !mayAnswerICMPv6(orig.Payload[0])) {
		return 0
	}
	s16, os, od := src.As16(), orig.Src.As16(), orig.Dst.As16()
	if !isUnicast6(s16) || !isUnicast6(od) || !isUnicast6(os) || os == s16 {
		return 0
	}
	return icmpv6Error(out, s16, os, ICMPv6DestUnreachable, code, 0, orig.Header, orig.Payload)
}

// PacketTooBig writes into out an IPv6 packet from src to the source of
// orig holding an ICMPv6 Packet Too Big (type 2, code 0) that reports
// mtu (RFC 4443 §3.2) and quotes as much of orig as fits in 1280 bytes
// (§2.4 (c)), and returns its length. orig is a raw IPv6 packet (link
// padding beyond its payload length is not quoted), typically one the
// stack sent, so that a test can play the router that could not forward
// it; mtu is written as given, even below 1280.
//
// It returns 0, writing nothing, when orig is shorter than an IPv6
// header or not IPv6, is an ICMPv6 error or redirect (RFC 4443 §2.4 (e.1),
// (e.2); a packet whose upper layer cannot be found counts as one), or
// comes from an address that does not name a single node (e.6); when src
// is not a unicast IPv6 address or is orig's source; or when out is too
// small. Unlike other errors, Packet Too Big may answer a packet sent to
// a multicast address (e.3). out must not overlap orig. It does not
// allocate.
func PacketTooBig(out []byte, src netip.Addr, orig []byte, mtu uint32) int {
	if !src.Is6() || len(orig) < header.IPv6MinimumSize || orig[0]>>4 != header.IPv6Version {
		return 0
	}
	if pl := int(binary.BigEndian.Uint16(orig[4:6])); pl != 0 && header.IPv6MinimumSize+pl < len(orig) {
		orig = orig[:header.IPv6MinimumSize+pl]
	}
	s16, os := src.As16(), [16]byte(orig[8:24])
	if !isUnicast6(s16) || !isUnicast6(os) || os == s16 {
		return 0
	}
	proto, off, ok := upperLayer(orig)
	if !ok || proto == ProtoICMPv6 && (off >= len(orig) || !mayAnswerICMPv6(orig[off])) {
		return 0
	}
	return icmpv6Error(out, s16, os, ICMPv6PacketTooBig, 0, mtu, orig, nil)
}

// mayAnswerICMPv6 reports whether an ICMPv6 message of type typ may be
// the subject of an ICMPv6 error: RFC 4443 §2.4 (e.1) and (e.2) forbid
// errors about errors (types below 128) and about redirects.
func mayAnswerICMPv6(typ uint8) bool {
	return typ >= 128 && typ != ICMPv6Redirect
}

// icmpv6Error writes into out the ICMPv6 error type/code from src to dst
// with the 32-bit type-specific field field, quoting q1 then q2 up to
// icmpv6MaxQuote bytes in all, and returns the packet's length, or 0 if
// out is too small.
func icmpv6Error(out []byte, src, dst [16]byte, typ, code uint8, field uint32, q1, q2 []byte) int {
	quoted := min(len(q1)+len(q2), icmpv6MaxQuote)
	msgLen := header.ICMPv6ErrorHeaderSize + quoted
	n := IPv6HeaderLen + msgLen
	if len(out) < n {
		return 0
	}
	BuildIPv6(out, netip.AddrFrom16(src), netip.AddrFrom16(dst), ProtoICMPv6, 0, msgLen)
	m := out[IPv6HeaderLen:n]
	m[0], m[1], m[2], m[3] = typ, code, 0, 0
	binary.BigEndian.PutUint32(m[4:8], field)
	k := copy(m[header.ICMPv6ErrorHeaderSize:], q1)
	copy(m[header.ICMPv6ErrorHeaderSize+k:], q2)
	setICMPv6Checksum(m, src, dst)
	return n
}

// setICMPv6Checksum fills in the checksum of the ICMPv6 message m sent
// from src to dst: RFC 4443 §2.3, over the IPv6 pseudo-header and the
// whole message.
func setICMPv6Checksum(m []byte, src, dst [16]byte) {
	m[2], m[3] = 0, 0
	binary.BigEndian.PutUint16(m[2:4], ^checksum.Checksum(m, pseudoSum6(src, dst, ProtoICMPv6, len(m))))
}

// upperLayer walks the extension headers of q, an IPv6 packet that may
// be truncated (as a quote in an ICMPv6 error is, RFC 4443 §2.4 (d)),
// and returns the upper-layer protocol and its offset in q, which may lie
// at or beyond len(q). found is false if the walk cannot reach it: q
// shorter than the fixed header, an extension header cut before its
// length, a non-first fragment, or more than eight extension headers.
// Options are not examined.
func upperLayer(q []byte) (proto uint8, off int, found bool) {
	if len(q) < header.IPv6MinimumSize {
		return 0, 0, false
	}
	next, off := q[6], header.IPv6MinimumSize
	for i := 0; ; i++ {
		switch next {
		case nextHopByHop, nextDestOpts, nextRouting, nextFragment:
		default:
			return next, off, true
		}
		if i == maxExtHeaders || off+2 > len(q) {
			return 0, 0, false
		}
		hl := (int(q[off+1]) + 1) * 8
		if next == nextFragment {
			// RFC 8200 §4.5: 8 bytes; only the first fragment (offset
			// 0) holds the upper-layer header.
			if off+4 > len(q) || binary.BigEndian.Uint16(q[off+2:])>>3 != 0 {
				return 0, 0, false
			}
			hl = 8
		}
		next, off = q[off], off+hl
	}
}

// ParamProblem6 writes into out the ICMPv6 Parameter Problem (RFC 4443
// §3.4) from local that RFC 8200 §4 asks a node to send about b, an IPv6
// packet to local that Parse dropped for its extension headers or its
// next header, and returns its length. The message carries the problem's
// code (0 erroneous header field: a routing header we cannot follow; 1
// unrecognized Next Header; 2 unrecognized option that asks to be
// reported), the offset of the offending byte as its pointer, and as
// much of b as fits in 1280 bytes.
//
// It returns 0, writing nothing, when no message is due: the packet has
// no such problem, or one the RFC answers with silence (see chain6); its
// source does not name a single other node (RFC 4443 §2.4 (e.6)); it was
// not sent to local, or to a multicast group unless the option's action
// asks for a report even then (§2.4 (e.3), RFC 8200 §4.2); or out is too
// small. The caller limits the rate (RFC 4443 §2.4 (f)). It does not
// allocate.
func ParamProblem6(out []byte, local netip.Addr, b []byte) int {
	if !local.Is6() || len(b) < header.IPv6MinimumSize || b[0]>>4 != header.IPv6Version {
		return 0
	}
	pl := int(binary.BigEndian.Uint16(b[4:6]))
	if pl == 0 || header.IPv6MinimumSize+pl > len(b) {
		return 0
	}
	b = b[:header.IPv6MinimumSize+pl]
	l16, src, dst := local.As16(), [16]byte(b[8:24]), [16]byte(b[24:40])
	if !isUnicast6(src) || src == l16 {
		return 0
	}
	_, _, reason, prob := chain6(b)
	if reason == DropNone || !prob.report {
		return 0
	}
	if dst != l16 && (isUnicast6(dst) || !prob.multicastToo) {
		return 0
	}
	return icmpv6Error(out, l16, src, ICMPv6ParamProblem, prob.code, uint32(prob.pointer), b, nil)
}
