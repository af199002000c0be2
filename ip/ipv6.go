package ip

import "net/netip"

// parse6 is to come.
func parse6(b []byte, local netip.Addr, trusted bool) (Packet, DropReason) {
	return Packet{}, DropVersion
}
