package main

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

func TestBuildUDPIsAValidPacket(t *testing.T) {
	src, dst := [4]byte{198, 18, 0, 2}, [4]byte{198, 18, 0, 1}
	for _, size := range []int{28, 29, 1500, 9000, 65535} {
		pkt := make([]byte, size)
		for i := range pkt {
			pkt[i] = 0xaa // buildUDP must overwrite whatever was there
		}
		buildUDP(pkt, src, dst, 40000, 9)
		h := header.IPv4(pkt)
		if !h.IsValid(size) {
			t.Fatalf("size %d: not a valid IPv4 packet", size)
		}
		if !h.IsChecksumValid() {
			t.Errorf("size %d: bad IPv4 header checksum", size)
		}
		if int(h.TotalLength()) != size || h.Protocol() != uint8(header.UDPProtocolNumber) {
			t.Errorf("size %d: total length %d, protocol %d", size, h.TotalLength(), h.Protocol())
		}
		if h.SourceAddress() != tcpip.AddrFrom4(src) || h.DestinationAddress() != tcpip.AddrFrom4(dst) {
			t.Errorf("size %d: %v -> %v", size, h.SourceAddress(), h.DestinationAddress())
		}
		u := header.UDP(h.Payload())
		if u.SourcePort() != 40000 || u.DestinationPort() != 9 || int(u.Length()) != size-20 || u.Checksum() != 0 {
			t.Errorf("size %d: UDP %d -> %d length %d checksum %#x", size, u.SourcePort(), u.DestinationPort(), u.Length(), u.Checksum())
		}
		for i, b := range u.Payload() {
			if b != 0 {
				t.Fatalf("size %d: payload byte %d is %#x, want 0", size, i, b)
			}
		}
	}
}
