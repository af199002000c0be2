package tun

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// tcpPacket builds an IPv4 TCP packet from 198.18.7.2 to 198.18.7.1 with
// a complete checksum (or a partial one if partial is set).
func tcpPacket(sport, dport uint16, seq, ack uint32, flags header.TCPFlags, opts, payload []byte, partial bool) []byte {
	return tcpPacketOf(4, sport, dport, seq, ack, flags, opts, payload, partial)
}

// The IPv6 addresses of the real-TUN tests: the kernel's side of the
// device (Config.Host6) and the peer's, which the test plays.
var (
	testHost6 = netip.MustParsePrefix("fd00:7:5eed::1/64")
	testPeer6 = netip.MustParseAddr("fd00:7:5eed::2")
)

// tcpPacketOf is tcpPacket for IP version v: for 6, an IPv6 packet from
// testPeer6 to testHost6's address.
func tcpPacketOf(v int, sport, dport uint16, seq, ack uint32, flags header.TCPFlags, opts, payload []byte, partial bool) []byte {
	thl := header.TCPMinimumSize + len(opts)
	hl := header.IPv4MinimumSize
	if v == 6 {
		hl = header.IPv6MinimumSize
	}
	pkt := make([]byte, hl+thl+len(payload))
	var src, dst tcpip.Address
	if v == 6 {
		src, dst = tcpip.AddrFrom16(testPeer6.As16()), tcpip.AddrFrom16(testHost6.Addr().As16())
		header.IPv6(pkt).Encode(&header.IPv6Fields{PayloadLength: uint16(thl + len(payload)),
			TransportProtocol: header.TCPProtocolNumber, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	} else {
		src, dst = tcpip.AddrFrom4([4]byte{198, 18, 7, 2}), tcpip.AddrFrom4([4]byte{198, 18, 7, 1})
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64, Flags: header.IPv4FlagDontFragment,
			Protocol: uint8(header.TCPProtocolNumber), SrcAddr: src, DstAddr: dst})
		ip.SetChecksum(^ip.CalculateChecksum())
	}
	t := header.TCP(pkt[hl:])
	t.Encode(&header.TCPFields{SrcPort: sport, DstPort: dport, SeqNum: seq, AckNum: ack, DataOffset: uint8(thl),
		Flags: flags, WindowSize: 65535})
	copy(t[header.TCPMinimumSize:], opts)
	copy(t[thl:], payload)
	if partial {
		PartialChecksum(pkt, len(t))
	} else {
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(t)))
		t.SetChecksum(^checksum.Checksum(t, xsum))
	}
	return pkt
}

// tcpOf returns the TCP segment of the IPv4 or IPv6 packet p (an IPv6
// one without extension headers), or nil if p is not TCP.
func tcpOf(p []byte) header.TCP {
	switch header.IPVersion(p) {
	case header.IPv4Version:
		if ip := header.IPv4(p); ip.IsValid(len(p)) && ip.Protocol() == uint8(header.TCPProtocolNumber) {
			return header.TCP(ip.Payload())
		}
	case header.IPv6Version:
		if ip := header.IPv6(p); ip.IsValid(len(p)) && ip.NextHeader() == uint8(header.TCPProtocolNumber) &&
			len(ip.Payload()) >= header.TCPMinimumSize {
			return header.TCP(ip.Payload())
		}
	}
	return nil
}

// watchdog closes dev if the test is still running after d, so that a
// Read waiting for a packet that never comes fails instead of hanging.
func watchdog(t *testing.T, dev *TUN, d time.Duration) {
	w := time.AfterFunc(d, func() { dev.Close() })
	t.Cleanup(func() { w.Stop() })
}

// TestOffloadTUNWithTheKernel opens a TUN with offloads and talks TCP by
// hand with a kernel socket in the namespace, over IPv4 and over IPv6: a
// 20,000-byte super-segment written in one call (GSO type TCPV4 or
// TCPV6) reaches the kernel's socket intact (TSO), and the kernel's reply
// arrives as super-segments (it sends through a TSO device) whose
// checksums the kernel vouches for.
func TestOffloadTUNWithTheKernel(t *testing.T) {
	needRoot(t)
	families(t, offloadTUNWithTheKernel)
}

func offloadTUNWithTheKernel(t *testing.T, v int) {
	ns := newTestNetns(t)
	var dev *TUN
	var ln net.Listener
	cfg := Config{Name: "tunoff0", Host: netip.MustParsePrefix("198.18.7.1/24"), Offload: true}
	network, addr, mss := "tcp4", "198.18.7.1:5000", 1460
	if v == 6 {
		cfg.Host, cfg.Host6 = netip.Prefix{}, testHost6
		network, addr, mss = "tcp6", netip.AddrPortFrom(testHost6.Addr(), 5000).String(), 1440
	}
	err := InNetNS(ns, func() error {
		var err error
		if dev, err = Open(cfg); err != nil {
			return err
		}
		ln, err = net.Listen(network, addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	defer ln.Close()
	watchdog(t, dev, 20*time.Second)
	if dev.MaxOffload() != MaxOffloadSize || dev.OffloadErr() != nil {
		t.Fatalf("offloads not on: MaxOffload %d, %v", dev.MaxOffload(), dev.OffloadErr())
	}
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			accepted <- c
		}
	}()

	buf := make([]byte, MaxOffloadSize)
	// next returns the next TCP packet from the kernel to port 40000.
	next := func() (header.TCP, Offload) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for time.Now().Before(deadline) {
			n, o, err := dev.ReadOffload(buf)
			if err != nil {
				t.Fatal(err)
			}
			p := buf[:n]
			tcp := tcpOf(p)
			if tcp == nil || header.IPVersion(p) != v {
				continue // router solicitations, MLD reports and the like
			}
			if tcp.DestinationPort() == 40000 {
				return tcp, o
			}
		}
		t.Fatal("no TCP packet from the kernel")
		return nil, Offload{}
	}
	packet := func(seq, ack uint32, flags header.TCPFlags, opts, payload []byte, partial bool) []byte {
		return tcpPacketOf(v, 40000, 5000, seq, ack, flags, opts, payload, partial)
	}

	// Handshake: SYN with the MSS of a 1500-byte MTU, no window scale.
	const iss = 1000
	mssOpt := []byte{2, 4, byte(mss >> 8), byte(mss)}
	if _, err := dev.Write(packet(iss, 0, header.TCPFlagSyn, mssOpt, nil, false)); err != nil {
		t.Fatal(err)
	}
	synack, _ := next()
	if synack.Flags() != header.TCPFlagSyn|header.TCPFlagAck {
		t.Fatalf("got %v, want SYN+ACK", synack.Flags())
	}
	rcvNxt := synack.SequenceNumber() + 1
	if _, err := dev.Write(packet(iss+1, rcvNxt, header.TCPFlagAck, nil, nil, false)); err != nil {
		t.Fatal(err)
	}
	var kc net.Conn
	select {
	case kc = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("the kernel did not accept")
	}
	defer kc.Close()

	// One write, 14 segments: the kernel takes it whole.
	up := randomPayload(20000, 8)
	super := packet(iss+1, rcvNxt, header.TCPFlagAck|header.TCPFlagPsh, nil, up, true)
	hl := len(super) - len(up)
	if err := dev.WriteOffload(super[:hl], super[hl:], Offload{GSOSize: uint16(mss), CsumPartial: true}); err != nil {
		t.Fatal(err)
	}
	kc.SetReadDeadline(time.Now().Add(5 * time.Second))
	got := make([]byte, len(up))
	if _, err := io.ReadFull(kc, got); err != nil || !bytes.Equal(got, up) {
		t.Fatalf("the kernel's socket read %v; bytes intact: %v", err, bytes.Equal(got, up))
	}
	if dev.MaxOffload() == 0 {
		t.Fatalf("the kernel refused the super-segment: %v", dev.OffloadErr())
	}

	// The kernel answers with 60,000 bytes; we acknowledge as we go.
	down := randomPayload(60000, 9)
	go kc.Write(down)
	var rcvd []byte
	supers := 0
	sndNxt := uint32(iss + 1 + len(up))
	for len(rcvd) < len(down) {
		tcp, o := next()
		if len(tcp.Payload()) == 0 {
			continue
		}
		if !o.Trusted() {
			t.Fatalf("a packet from the kernel without checksum offload: %+v", o)
		}
		if o.GSOSize > 0 {
			supers++
			if len(tcp.Payload()) <= int(o.GSOSize) {
				t.Fatalf("a %d-byte super-segment of %d-byte segments", len(tcp.Payload()), o.GSOSize)
			}
			if int(o.GSOSize) > mss {
				t.Fatalf("segments of %d bytes for an MSS of %d", o.GSOSize, mss)
			}
		}
		if tcp.SequenceNumber() != rcvNxt {
			t.Fatalf("seq %d, want %d (nothing is lost here)", tcp.SequenceNumber(), rcvNxt)
		}
		rcvd = append(rcvd, tcp.Payload()...)
		rcvNxt += uint32(len(tcp.Payload()))
		if _, err := dev.Write(packet(sndNxt, rcvNxt, header.TCPFlagAck, nil, nil, false)); err != nil {
			t.Fatal(err)
		}
	}
	if !bytes.Equal(rcvd, down) {
		t.Fatal("the kernel's bytes arrived changed")
	}
	if supers == 0 {
		t.Fatal("the kernel sent no super-segment: TSO on the device is not working")
	}
	t.Logf("the kernel's 60,000 bytes came in %d super-segments among the packets", supers)
}

// TestVnetHeaderRoundTrip: the virtio-net header encodeVnet writes for a
// super-segment says what the kernel expects, field by field (GSO type
// TCPV4 or TCPV6 by the IP version, hdr_len the IP and TCP headers,
// csum_start the TCP header, csum_offset 16), and decodeVnet reads it
// back into the same offload; what the kernel may send (TCPV6 with the ECN
// bit, checksum only, DATA_VALID) decodes, and UDP segmentation, which
// tund never asks for, does not.
func TestVnetHeaderRoundTrip(t *testing.T) {
	ne := binary.NativeEndian
	families(t, func(t *testing.T, v int) {
		pkt := superSegmentOf(v, header.TCPFlagAck, randomPayload(3000, 10))
		hl, gsoType := header.IPv4MinimumSize, byte(1) // VIRTIO_NET_HDR_GSO_TCPV4
		if v == 6 {
			hl, gsoType = header.IPv6MinimumSize, 4 // VIRTIO_NET_HDR_GSO_TCPV6
		}
		head := pkt[:headLen(v)]
		var b [vnetHdrLen]byte
		for _, o := range []Offload{
			{GSOSize: 1400, CsumPartial: true},
			{CsumPartial: true},
			{},
		} {
			encodeVnet(b[:], head, o)
			var want [vnetHdrLen]byte
			if o.CsumPartial {
				want[0] = 1 // NEEDS_CSUM
				ne.PutUint16(want[6:], uint16(hl))
				ne.PutUint16(want[8:], 16)
			}
			if o.GSOSize > 0 {
				want[1] = gsoType
				ne.PutUint16(want[2:], uint16(len(head)))
				ne.PutUint16(want[4:], o.GSOSize)
			}
			if b != want {
				t.Fatalf("%+v: header %x, want %x", o, b, want)
			}
			got, ok := decodeVnet(b[:])
			if o.CsumPartial {
				o.csumStart, o.csumOffset = uint16(hl), 16
			}
			if !ok || got != o {
				t.Fatalf("decoded %+v, %v; want %+v", got, ok, o)
			}
		}
	})
	// From the kernel: TCPV6 with ECN, and DATA_VALID.
	var b [vnetHdrLen]byte
	b[0], b[1] = 1, 4|0x80
	ne.PutUint16(b[2:], 72)
	ne.PutUint16(b[4:], 1428)
	ne.PutUint16(b[6:], 40)
	ne.PutUint16(b[8:], 16)
	if o, ok := decodeVnet(b[:]); !ok || o != (Offload{GSOSize: 1428, CsumPartial: true, csumStart: 40, csumOffset: 16}) {
		t.Fatalf("TCPV6|ECN: %+v, %v", o, ok)
	}
	b = [vnetHdrLen]byte{2}
	if o, ok := decodeVnet(b[:]); !ok || o != (Offload{CsumValid: true}) || !o.Trusted() {
		t.Fatalf("DATA_VALID: %+v, %v", o, ok)
	}
	for _, typ := range []byte{3, 5} { // VIRTIO_NET_HDR_GSO_UDP, _UDP_L4
		b = [vnetHdrLen]byte{1, typ}
		if o, ok := decodeVnet(b[:]); ok {
			t.Fatalf("GSO type %d accepted: %+v", typ, o)
		}
	}
}
