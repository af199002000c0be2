package ip

import "net/netip"

// parse6 is to come (a helper writes it).
func parse6(b []byte, local netip.Addr, trusted bool) (Packet, DropReason) {
	return Packet{}, DropVersion
}

// IPv6 is a placeholder until the IPv6 layer lands.
type IPv6 struct{ addr netip.Addr }

// NewIPv6 is a placeholder.
func NewIPv6(addr netip.Addr) *IPv6 { return &IPv6{addr: addr} }

// Version returns 6.
func (n *IPv6) Version() int { return 6 }

// Addr returns the stack's IPv6 address.
func (n *IPv6) Addr() netip.Addr { return n.addr }

// HeaderLen returns 40.
func (n *IPv6) HeaderLen() int { return IPv6HeaderLen }

// MinMTU returns 1280.
func (n *IPv6) MinMTU() int { return IPv6MinMTU }

// Parse is a placeholder.
func (n *IPv6) Parse(b []byte, trusted bool) (Packet, DropReason) { return parse6(b, n.addr, trusted) }

// BuildHeader writes the IPv6 header.
func (n *IPv6) BuildHeader(b []byte, dst netip.Addr, proto uint8, flow uint32, payloadLen int) int {
	return BuildIPv6(b, n.addr, dst, proto, flow, payloadLen)
}

// ICMP is a placeholder.
func (n *IPv6) ICMP(pkt *Packet, out []byte) (int, ICMPError, bool) { return 0, ICMPError{}, false }
