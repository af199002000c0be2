package tun

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// udpPacket builds an IPv4 UDP datagram from 198.18.7.2:sport to
// 198.18.7.1:dport with a complete checksum.
func udpPacket(sport, dport uint16, payload []byte) []byte {
	pkt := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	src, dst := tcpip.AddrFrom4([4]byte{198, 18, 7, 2}), tcpip.AddrFrom4([4]byte{198, 18, 7, 1})
	ip := header.IPv4(pkt)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64,
		Protocol: uint8(header.UDPProtocolNumber), SrcAddr: src, DstAddr: dst})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(pkt[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(len(u))})
	copy(u[header.UDPMinimumSize:], payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
	u.SetChecksum(^checksum.Checksum(u, xsum))
	return pkt
}

// udpPacket6 is udpPacket over IPv6: from [testPeer6]:sport to
// [testHost6's address]:dport.
func udpPacket6(sport, dport uint16, payload []byte) []byte {
	pkt := make([]byte, header.IPv6MinimumSize+header.UDPMinimumSize+len(payload))
	src, dst := tcpip.AddrFrom16(testPeer6.As16()), tcpip.AddrFrom16(testHost6.Addr().As16())
	header.IPv6(pkt).Encode(&header.IPv6Fields{PayloadLength: uint16(len(pkt) - header.IPv6MinimumSize),
		TransportProtocol: header.UDPProtocolNumber, HopLimit: 64, SrcAddr: src, DstAddr: dst})
	u := header.UDP(pkt[header.IPv6MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: sport, DstPort: dport, Length: uint16(len(u))})
	copy(u[header.UDPMinimumSize:], payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
	u.SetChecksum(^checksum.Checksum(u, xsum))
	return pkt
}

// TestMultiqueueSteersFlows opens a TUN with four queues inside a network
// namespace of its own (a netns from newTestNetns, deleted afterwards; the device and
// the kernel sockets live only there) and has the kernel sockets send UDP
// on sixteen flows through it: every datagram of a flow
// arrives on one queue, the flows spread over more than one, and once
// a packet of a flow is written to another queue the kernel moves the
// flow's next datagrams to that queue (the driver's flow steering that
// Multiqueue promises). With offloads and without, over IPv4 and IPv6.
func TestMultiqueueSteersFlows(t *testing.T) {
	needRoot(t)
	for _, offload := range []bool{true, false} {
		t.Run(fmt.Sprintf("offload=%v", offload), func(t *testing.T) {
			families(t, func(t *testing.T, v int) { testMultiqueueSteers(t, offload, v) })
		})
	}
}

func testMultiqueueSteers(t *testing.T, offload bool, v int) {
	const queues, flows = 4, 16
	ns := newTestNetns(t)
	var dev *TUN
	socks := make([]*net.UDPConn, flows)
	cfg := Config{Name: "tunmq0", Host: netip.MustParsePrefix("198.18.7.1/24"), Offload: offload, Queues: queues}
	network := "udp4"
	local, remote := netip.MustParseAddr("198.18.7.1"), netip.MustParseAddr("198.18.7.2")
	reply := udpPacket
	if v == 6 {
		cfg.Host, cfg.Host6 = netip.Prefix{}, testHost6
		network, local, remote, reply = "udp6", testHost6.Addr(), testPeer6, udpPacket6
	}
	err := InNetNS(ns, func() error {
		var err error
		dev, err = Open(cfg)
		if err != nil {
			return err
		}
		for i := range socks {
			socks[i], err = net.DialUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, uint16(6000+i))),
				net.UDPAddrFromAddrPort(netip.AddrPortFrom(remote, 7000)))
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	for _, s := range socks {
		defer s.Close()
	}
	if dev.Queues() != queues || dev.QueuesErr() != nil {
		t.Fatalf("%d queues (%v), want %d", dev.Queues(), dev.QueuesErr(), queues)
	}
	if got := dev.MaxOffload() > 0; got != offload {
		t.Fatalf("offloads on: %v, want %v (%v)", got, offload, dev.OffloadErr())
	}

	// One reader per queue reports (queue, flow) for each datagram to
	// 198.18.7.2:7000.
	type arrival struct{ queue, flow int }
	arrivals := make(chan arrival, 1024)
	var wg sync.WaitGroup
	for q := range queues {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, MaxOffloadSize)
			for {
				n, _, err := dev.Queue(q).ReadOffload(buf)
				if err != nil {
					return
				}
				u := udpOf(buf[:n])
				if u == nil {
					continue // the kernel's own chatter (IGMP, MLD, router solicitations)
				}
				if u.DestinationPort() == 7000 {
					arrivals <- arrival{q, int(u.SourcePort()) - 6000}
				}
			}
		}()
	}
	defer wg.Wait()
	defer dev.Close() // unblocks the readers before wg.Wait

	// round sends one datagram per flow and returns the queue each came
	// on, checking a flow never comes on two.
	round := func(what string) [flows]int {
		t.Helper()
		for _, s := range socks {
			if _, err := s.Write([]byte(what)); err != nil {
				t.Fatal(err)
			}
		}
		var at [flows]int
		for i := range at {
			at[i] = -1
		}
		deadline := time.After(5 * time.Second)
		for seen := 0; seen < flows; {
			select {
			case a := <-arrivals:
				if a.flow < 0 || a.flow >= flows {
					continue
				}
				if at[a.flow] != -1 && at[a.flow] != a.queue {
					t.Fatalf("%s: flow %d on queues %d and %d", what, a.flow, at[a.flow], a.queue)
				}
				if at[a.flow] == -1 {
					seen++
				}
				at[a.flow] = a.queue
			case <-deadline:
				t.Fatalf("%s: only %d of %d flows arrived: %v", what, seen, flows, at)
			}
		}
		return at
	}
	first := round("first")
	if again := round("again"); again != first {
		t.Fatalf("flows changed queues with nothing written: %v, then %v", first, again)
	}
	used := map[int]bool{}
	for _, q := range first {
		used[q] = true
	}
	if len(used) < 2 {
		t.Errorf("16 flows all on queue %v: nothing spread them", first)
	}

	// A reply for each flow written to the next queue moves the flow.
	for f, q := range first {
		pkt := reply(7000, uint16(6000+f), []byte("reply"))
		to := dev.Queue((q + 1) % queues)
		if err := to.WriteOffload(pkt, nil, Offload{}); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 16)
		socks[f].SetReadDeadline(time.Now().Add(5 * time.Second))
		if n, err := socks[f].Read(buf); err != nil || string(buf[:n]) != "reply" {
			t.Fatalf("flow %d: the kernel socket read %q, %v", f, buf[:n], err)
		}
	}
	moved := round("moved")
	for f := range moved {
		if want := (first[f] + 1) % queues; moved[f] != want {
			t.Errorf("flow %d: on queue %d after a write to queue %d (was %d)", f, moved[f], want, first[f])
		}
	}
}

// udpOf returns the UDP datagram of the IPv4 or IPv6 packet p (an IPv6
// one without extension headers), or nil if p is not UDP.
func udpOf(p []byte) header.UDP {
	switch header.IPVersion(p) {
	case header.IPv4Version:
		if ip := header.IPv4(p); ip.IsValid(len(p)) && ip.Protocol() == uint8(header.UDPProtocolNumber) &&
			len(ip.Payload()) >= header.UDPMinimumSize {
			return header.UDP(ip.Payload())
		}
	case header.IPv6Version:
		if ip := header.IPv6(p); ip.IsValid(len(p)) && ip.NextHeader() == uint8(header.UDPProtocolNumber) &&
			len(ip.Payload()) >= header.UDPMinimumSize {
			return header.UDP(ip.Payload())
		}
	}
	return nil
}

// TestMultiqueueRefusedFallsBack: a persistent device made without
// multi_queue refuses more queues; Open then opens it with one and says
// why in QueuesErr. The device is made inside a network namespace of the
// test's own, which is deleted with it.
func TestMultiqueueRefusedFallsBack(t *testing.T) {
	needRoot(t)
	ns := newTestNetns(t)
	err := InNetNS(ns, func() error {
		ifr, _ := unix.NewIfreq("tunsq0")
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		persist := func(on int) error {
			fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
				return err
			}
			return unix.IoctlSetInt(fd, unix.TUNSETPERSIST, on)
		}
		if err := persist(1); err != nil {
			return err
		}
		defer persist(0) // and the namespace goes too
		for _, offload := range []bool{false, true} {
			dev, err := Open(Config{Name: "tunsq0", Queues: 3, Offload: offload})
			if err != nil {
				return fmt.Errorf("offload %v: %w", offload, err)
			}
			n, qerr := dev.Queues(), dev.QueuesErr()
			dev.Close()
			if n != 1 || qerr == nil {
				return fmt.Errorf("offload %v: %d queues, QueuesErr %v; want 1 and a reason", offload, n, qerr)
			}
			t.Logf("offload %v: %v", offload, qerr)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestPipeMultiqueue: each queue of a PipeMultiqueue is a link of its
// own, and closing one end closes every queue. In memory: no TUN device,
// no network namespace needed.
func TestPipeMultiqueue(t *testing.T) {
	a, b := PipeMultiqueue(1500, 3, true)
	if a.Queues() != 3 || b.Queues() != 3 || a.Queue(0) != a {
		t.Fatalf("queues %d %d", a.Queues(), b.Queues())
	}
	for i := range 3 {
		pkt := udpPacket(1, uint16(i), nil)
		if err := a.Queue(i).WriteOffload(pkt, nil, Offload{}); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 1500)
	for i := range 3 {
		n, _, err := b.Queue(i).ReadOffload(buf)
		if err != nil || header.UDP(buf[20:n]).DestinationPort() != uint16(i) {
			t.Fatalf("queue %d: %v %x", i, err, buf[:n])
		}
	}
	done := make(chan error, 1)
	go func() { _, _, err := b.Queue(2).ReadOffload(buf); done <- err }()
	a.Close()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("a read on queue 2 returned no error after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock a read on queue 2")
	}
}
