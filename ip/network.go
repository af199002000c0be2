package ip

import (
	"net/netip"
	"sync/atomic"
)

// Network is the network layer of one IP version as the stack uses it:
// everything that differs between IPv4 and IPv6 sits behind it, so the
// stack and the TCP core above are indifferent to the family. [IPv4] and
// [IPv6] implement it; each knows the stack's own address in its family.
type Network interface {
	// Version is 4 or 6.
	Version() int
	// Addr is the stack's own address in this family.
	Addr() netip.Addr
	// HeaderLen is the length of the network header on every packet the
	// stack sends (20 or 40): the MTU less it and TCP's 20 is the MSS.
	HeaderLen() int
	// MinMTU is the smallest MTU the version allows a link (68 or 1280),
	// and so the floor of path MTU discovery.
	MinMTU() int
	// Parse validates b, a packet of this version, as one sent to Addr,
	// and returns it or the reason to drop it. It never allocates and
	// never panics.
	Parse(b []byte, trusted bool) (Packet, DropReason)
	// BuildHeader writes into b the network header of a packet from Addr
	// to dst carrying payloadLen bytes of protocol proto (with flow label
	// flow, for IPv6), and returns its length.
	BuildHeader(b []byte, dst netip.Addr, proto uint8, flow uint32, payloadLen int) int
	// ICMP handles pkt, an ICMP (v4) or ICMPv6 (v6) message from Parse.
	// A message that wants a reply (an echo request; for IPv6 also a
	// neighbour solicitation for Addr) has it written into out, and
	// reply is its length. A message that reports an error about a TCP
	// segment Addr sent is returned as e with isErr set, classified for
	// TCP. Anything else gives neither: the caller counts it as
	// DropICMP.
	ICMP(pkt *Packet, out []byte) (reply int, e ICMPError, isErr bool)
}

// ErrorKind is how an ICMP error bears on the TCP connection it is about
// (RFC 1122 §4.2.3.9, RFC 5927, RFC 4443 §3): the network layer's
// classification, which the stack hands to the TCP core.
type ErrorKind uint8

// The kinds of ICMP errors.
const (
	// ErrorSoft: network or host unreachable, time exceeded, parameter
	// problem, and the rest: remembered, reported if the connection
	// later times out; never a reason to abort (RFC 1122 §4.2.3.9).
	ErrorSoft ErrorKind = iota
	// ErrorHard: port or protocol unreachable (v4), port unreachable
	// (v6): aborts a connection that is still opening.
	ErrorHard
	// ErrorTooBig: "fragmentation needed and DF set" (RFC 1191) or
	// Packet Too Big (RFC 8201): MTU says how large a packet fits.
	ErrorTooBig
	// ErrorIgnored: source quench, which RFC 6633 §2 says to ignore.
	ErrorIgnored
)

// IPv4 is the Network of IPv4 (RFC 791, with the host requirements of
// RFC 1122), for the stack's address addr. It numbers the packets it
// builds (the identification field) from a counter of its own. It is
// safe for concurrent use.
type IPv4 struct {
	addr netip.Addr
	a4   [4]byte
	id   atomic.Uint32
}

// NewIPv4 returns the IPv4 network layer for the local address addr,
// which must be an IPv4 address (a v4-mapped IPv6 one is unmapped).
func NewIPv4(addr netip.Addr) *IPv4 {
	addr = addr.Unmap()
	return &IPv4{addr: addr, a4: addr.As4()}
}

// Version returns 4.
func (n *IPv4) Version() int { return 4 }

// Addr returns the stack's IPv4 address.
func (n *IPv4) Addr() netip.Addr { return n.addr }

// HeaderLen returns 20: we send no IPv4 options.
func (n *IPv4) HeaderLen() int { return IPv4HeaderLen }

// MinMTU returns 68 (RFC 791 §3.2).
func (n *IPv4) MinMTU() int { return IPv4MinMTU }

// Parse validates b as an inbound IPv4 packet for n's address. It makes
// the checks RFC 791 §3.1 and RFC 1122 §3.2.1.1-§3.2.1.3 require of a
// host: version, header length, total length, header checksum, no
// fragment, our destination and a source that names a single other
// host. For TCP it also verifies the checksum over the pseudo-header
// (unless trusted, see [ParseTrusted]); for ICMP the minimum length and
// the checksum.
func (n *IPv4) Parse(b []byte, trusted bool) (Packet, DropReason) {
	return parse4(b, n.a4, trusted)
}

// BuildHeader writes the 20-byte header of [BuildIPv4] from n's address,
// numbered from n's counter; flow is ignored.
func (n *IPv4) BuildHeader(b []byte, dst netip.Addr, proto uint8, flow uint32, payloadLen int) int {
	return BuildIPv4(b, n.addr, dst, proto, n.nextID(), payloadLen)
}

// ICMP answers an echo request ([EchoReply]) or reads an error about one
// of n's TCP segments ([ParseICMPError]).
func (n *IPv4) ICMP(pkt *Packet, out []byte) (reply int, e ICMPError, isErr bool) {
	if r := EchoReply(out, pkt, n.nextID()); r > 0 {
		return r, e, false
	}
	e, isErr = ParseICMPError(pkt, n.addr)
	return 0, e, isErr
}

func (n *IPv4) nextID() uint16 { return uint16(n.id.Add(1)) }
