package tun

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// needRoot skips without root or /dev/net/tun, unless the run requires
// integration tests (TUND_REQUIRE_INTEGRATION=1), where it fails.
func needRoot(t *testing.T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root"
	} else if _, err := os.Stat("/dev/net/tun"); err != nil {
		reason = "needs /dev/net/tun"
	}
	if reason != "" {
		if os.Getenv("TUND_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("TUND_REQUIRE_INTEGRATION=1 but the real TUN test %s", reason)
		}
		t.Skip("real TUN test " + reason)
	}
}

// newTestNetns creates a network namespace (netns) for the test and deletes it
// after, also on failure: no real TUN device is ever made outside one.
func newTestNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("tund-tun-%d-%s", os.Getpid(), strings.NewReplacer("/", "-", "=", "-").Replace(t.Name()))
	if len(name) > 60 {
		name = name[:60]
	}
	if err := CreateNetNS(name); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := DeleteNetNS(name); err != nil {
			t.Error(err)
		}
		if NetNSExists(name) {
			t.Errorf("namespace %s still exists", name)
		}
	})
	return name
}

func TestNetNSLifecycle(t *testing.T) {
	needRoot(t)
	ns := newTestNetns(t)
	if !NetNSExists(ns) {
		t.Fatal("namespace not found after CreateNetNS")
	}
	if err := CreateNetNS(ns); !os.IsExist(unwrapAll(err)) {
		t.Fatalf("second CreateNetNS: %v, want EEXIST", err)
	}
	// The namespace is really separate: it has only lo.
	var ifaces []net.Interface
	if err := InNetNS(ns, func() error {
		var err error
		ifaces, err = net.Interfaces()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if len(ifaces) != 1 || ifaces[0].Name != "lo" || ifaces[0].Flags&net.FlagUp == 0 {
		t.Fatalf("interfaces in a new namespace: %+v", ifaces)
	}
}

func unwrapAll(err error) error {
	for {
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return err
		}
		err = u.Unwrap()
	}
}

func TestCreateConfiguresDevice(t *testing.T) {
	needRoot(t)
	ns := newTestNetns(t)
	var dev *TUN
	var mtu int
	var addrs []net.Addr
	err := InNetNS(ns, func() error {
		var err error
		dev, err = Open(Config{Name: "tuntest0", MTU: 1400, Host: netip.MustParsePrefix("198.18.7.1/24"), Host6: testHost6})
		if err != nil {
			return err
		}
		if err := checkHost6(dev.Name(), testHost6); err != nil {
			return err
		}
		ifc, err := net.InterfaceByName("tuntest0")
		if err != nil {
			return err
		}
		mtu = ifc.MTU
		if ifc.Flags&net.FlagUp == 0 {
			return fmt.Errorf("device is not up")
		}
		addrs, err = ifc.Addrs()
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	if !dev.Created() || dev.Name() != "tuntest0" || dev.MTU() != 1400 || mtu != 1400 {
		t.Fatalf("created=%v name=%q mtu=%d/%d", dev.Created(), dev.Name(), dev.MTU(), mtu)
	}
	var v4, v6 []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			v4 = append(v4, a.String())
		} else if ok && !ipn.IP.IsLinkLocalUnicast() {
			v6 = append(v6, a.String())
		}
	}
	if len(v4) != 1 || v4[0] != "198.18.7.1/24" {
		t.Fatalf("IPv4 addresses %v, want [198.18.7.1/24]", v4)
	}
	if len(v6) != 1 || v6[0] != testHost6.String() {
		t.Fatalf("IPv6 addresses %v (link-local left out), want [%s]", v6, testHost6)
	}
}

// checkHost6 checks, in the calling thread's network namespace, that the
// interface name has the address prefix as the kernel lists it in
// /proc/net/if_inet6: with its prefix length, IFA_F_NODAD and not
// IFA_F_TENTATIVE, and routed as local: usable at once, both ways.
func checkHost6(name string, prefix netip.Prefix) error {
	// thread-self: /proc/self/net would be the namespace of the
	// process's main thread, not of this one.
	b, err := os.ReadFile("/proc/thread-self/net/if_inet6")
	if err != nil {
		return err
	}
	want := strings.ReplaceAll(prefix.Addr().StringExpanded(), ":", "")
	for _, line := range strings.Split(string(b), "\n") {
		// address ifindex prefixlen scope flags name, in hex
		f := strings.Fields(line)
		if len(f) != 6 || f[0] != want || f[5] != name {
			continue
		}
		var plen, flags int
		if _, err := fmt.Sscanf(f[2]+" "+f[4], "%x %x", &plen, &flags); err != nil {
			return fmt.Errorf("if_inet6 line %q: %v", line, err)
		}
		if plen != prefix.Bits() || flags&unix.IFA_F_NODAD == 0 || flags&unix.IFA_F_TENTATIVE != 0 {
			return fmt.Errorf("%s on %s: prefix length %d, flags %#x; want %d, NODAD, not TENTATIVE",
				prefix.Addr(), name, plen, flags, prefix.Bits())
		}
		// And packets to it are delivered: its local route is in
		// already (no waiting here).
		return waitLocalRoute(prefix.Addr(), 0)
	}
	return fmt.Errorf("%s is not on %s:\n%s", prefix.Addr(), name, b)
}

// TestHost6EnablesIPv6: in a namespace whose new interfaces start with
// IPv6 disabled (net.ipv6.conf.default.disable_ipv6 = 1, set in the
// test's own namespace only), Open turns IPv6 on for its device before
// it adds Host6, and the address is there, usable at once.
func TestHost6EnablesIPv6(t *testing.T) {
	needRoot(t)
	ns := newTestNetns(t)
	var dev *TUN
	var disabled string
	err := InNetNS(ns, func() error {
		if err := os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1\n"), 0o644); err != nil {
			return err
		}
		var err error
		if dev, err = Open(Config{Name: "tunv6", Host6: testHost6}); err != nil {
			return err
		}
		b, err := os.ReadFile("/proc/sys/net/ipv6/conf/tunv6/disable_ipv6")
		disabled = strings.TrimSpace(string(b))
		if err != nil {
			return err
		}
		return checkHost6("tunv6", testHost6)
	})
	if dev != nil {
		defer dev.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if disabled != "0" {
		t.Fatalf("disable_ipv6 of the device is %q after Open, want 0", disabled)
	}
}

// TestPacketsBothWays sends a UDP datagram from a kernel socket in the
// namespace out through the TUN, and writes one into the TUN for a kernel
// socket to receive. Traffic stays inside the namespace.
func TestPacketsBothWays(t *testing.T) { packetsBothWays(t, false) }

// TestPacketsBothWaysOffload is TestPacketsBothWays on a device with
// offloads: every packet behind a virtio-net header, and the kernel's UDP
// datagram, sent with a partial checksum, completed by Read.
func TestPacketsBothWaysOffload(t *testing.T) { packetsBothWays(t, true) }

func packetsBothWays(t *testing.T, offload bool) {
	needRoot(t)
	ns := newTestNetns(t)
	var dev *TUN
	var sock *net.UDPConn
	err := InNetNS(ns, func() error {
		var err error
		if dev, err = Open(Config{Name: "tuntest1", Host: netip.MustParsePrefix("198.18.7.1/24"), Offload: offload}); err != nil {
			return err
		}
		sock, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(198, 18, 7, 1), Port: 4000})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	defer sock.Close()

	// Kernel -> TUN.
	if _, err := sock.WriteToUDP([]byte("to the tun"), &net.UDPAddr{IP: net.IPv4(198, 18, 7, 2), Port: 9999}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := dev.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		p := buf[:n]
		if header.IPVersion(p) == 4 && header.IPv4(p).Protocol() == uint8(header.UDPProtocolNumber) {
			u := header.UDP(header.IPv4(p).Payload())
			if u.DestinationPort() != 9999 || string(u.Payload()) != "to the tun" {
				t.Fatalf("unexpected UDP packet %x", p)
			}
			ip := header.IPv4(p)
			xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(u)))
			if u.Checksum() != 0 && checksum.Checksum(u, xsum) != 0xffff {
				t.Fatalf("the UDP checksum of the packet Read returned is wrong (offload %v)", offload)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no UDP packet from the kernel")
		}
	}

	// TUN -> kernel: a hand-built IPv4/UDP packet from 198.18.7.2.
	payload := []byte("from the tun")
	pkt := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	src, dst := tcpip.AddrFrom4([4]byte{198, 18, 7, 2}), tcpip.AddrFrom4([4]byte{198, 18, 7, 1})
	ipHdr := header.IPv4(pkt)
	ipHdr.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64,
		Protocol: uint8(header.UDPProtocolNumber), SrcAddr: src, DstAddr: dst})
	ipHdr.SetChecksum(^ipHdr.CalculateChecksum())
	u := header.UDP(pkt[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: 9999, DstPort: 4000, Length: uint16(header.UDPMinimumSize + len(payload))})
	copy(u.Payload(), payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
	u.SetChecksum(^checksum.Checksum(u, xsum))
	if _, err := dev.Write(pkt); err != nil {
		t.Fatal(err)
	}
	sock.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := sock.ReadFromUDP(buf)
	if err != nil {
		logIPv6Counters(t, ns)
		t.Fatalf("kernel did not receive the packet written to the TUN: %v", err)
	}
	if !bytes.Equal(buf[:n], payload) || from.Port != 9999 {
		t.Fatalf("kernel got %q from %v", buf[:n], from)
	}
}

func TestCloseUnblocksRead(t *testing.T) {
	needRoot(t)
	ns := newTestNetns(t)
	var dev *TUN
	if err := InNetNS(ns, func() error {
		var err error
		dev, err = Open(Config{Name: "tuntest2"})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		for {
			if _, err := dev.Read(make([]byte, 2000)); err != nil {
				errc <- err
				return
			}
		}
	}()
	time.Sleep(20 * time.Millisecond)
	dev.Close()
	select {
	case <-errc:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not unblock Read")
	}
}

// TestAttachToPersistentDevice makes a persistent TUN as `ip tuntap add`
// would, attaches to it, and checks it survives Close still persistent.
func TestAttachToPersistentDevice(t *testing.T) {
	needRoot(t)
	ns := newTestNetns(t)
	err := InNetNS(ns, func() error {
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, _ := unix.NewIfreq("tunpersist")
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return err
		}
		if err := unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1); err != nil {
			return err
		}
		unix.Close(fd)

		dev, err := Open(Config{Name: "tunpersist"})
		if err != nil {
			return err
		}
		if dev.Created() {
			return fmt.Errorf("Open created a device that existed")
		}
		dev.Close()
		if _, err := linkIndex("tunpersist"); err != nil {
			return fmt.Errorf("persistent device gone after Close: %w", err)
		}
		// Still persistent: attach again, then delete it for good.
		fd, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			return fmt.Errorf("reattach: %w", err)
		}
		return unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestOpenRejectsBadConfig: a bad Config is a one-line error naming the
// bad value, before any device is made. Where the test could make one
// (as root), it runs in a network namespace of its own all the same.
func TestOpenRejectsBadConfig(t *testing.T) {
	ns := ""
	if os.Geteuid() == 0 {
		if _, err := os.Stat("/dev/net/tun"); err == nil {
			ns = newTestNetns(t)
		}
	}
	for _, c := range []struct {
		cfg  Config
		name string // what the error must name
	}{
		{Config{Name: "a-name-longer-than-15", MTU: 1500}, "a-name-longer-than-15"},
		{Config{Name: "x", MTU: 10}, "10"},
		{Config{Name: "x", Host: netip.MustParsePrefix("2001:db8::1/64")}, "2001:db8::1/64"},
		{Config{Name: "x", Host: netip.MustParsePrefix("::ffff:198.18.7.1/120")}, "::ffff:198.18.7.1/120"},
		{Config{Name: "x", Host6: netip.MustParsePrefix("198.18.7.1/24")}, "198.18.7.1/24"},
		{Config{Name: "x", Host6: netip.MustParsePrefix("::ffff:198.18.7.1/120")}, "::ffff:198.18.7.1/120"},
		{Config{Name: "x", Host: testHost6, Host6: netip.MustParsePrefix("198.18.7.1/24")}, testHost6.String()},
	} {
		var err error
		if ierr := InNetNS(ns, func() error {
			var dev *TUN
			if dev, err = Open(c.cfg); err == nil {
				dev.Close()
			}
			return nil
		}); ierr != nil {
			t.Fatal(ierr)
		}
		if err == nil {
			t.Fatalf("Open(%+v) succeeded", c.cfg)
		}
		if msg := err.Error(); !strings.Contains(msg, c.name) || strings.Contains(msg, "\n") {
			t.Errorf("Open(%+v): %q, want one line naming %s", c.cfg, msg, c.name)
		}
	}
}

// TestPacketsIPv6 sends a UDP datagram from a kernel socket in the
// namespace to [fd00:7:5eed::2]:9 out through a TUN that has only
// Config.Host6, reads the IPv6 packet from the TUN (past the kernel's own
// ICMPv6: router solicitations, MLD reports), and writes one into the
// TUN for a kernel socket to receive. The kernel's socket is bound to
// Host6's address as soon as Open returns: it is not tentative. Traffic
// stays inside the namespace.
func TestPacketsIPv6(t *testing.T) { packetsIPv6(t, false) }

// TestPacketsIPv6Offload is TestPacketsIPv6 on a device with offloads:
// the kernel's datagram comes with a partial checksum, completed by Read.
func TestPacketsIPv6Offload(t *testing.T) { packetsIPv6(t, true) }

func packetsIPv6(t *testing.T, offload bool) {
	needRoot(t)
	ns := newTestNetns(t)
	var dev *TUN
	var sock *net.UDPConn
	host := testHost6.Addr()
	err := InNetNS(ns, func() error {
		var err error
		if dev, err = Open(Config{Name: "tuntest6", Host6: testHost6, Offload: offload}); err != nil {
			return err
		}
		sock, err = net.ListenUDP("udp6", net.UDPAddrFromAddrPort(netip.AddrPortFrom(host, 4000)))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	defer dev.Close()
	defer sock.Close()
	watchdog(t, dev, 20*time.Second)
	if got := dev.MaxOffload() > 0; got != offload {
		t.Fatalf("offloads on: %v, want %v (%v)", got, offload, dev.OffloadErr())
	}

	// Kernel -> TUN.
	if _, err := sock.WriteToUDPAddrPort([]byte("to the tun"), netip.AddrPortFrom(testPeer6, 9)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 2000)
	skipped := 0
	for deadline := time.Now().Add(5 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatalf("no UDP packet from the kernel (%d others)", skipped)
		}
		n, err := dev.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		p := buf[:n]
		if header.IPVersion(p) != 6 || !header.IPv6(p).IsValid(n) || header.IPv6(p).NextHeader() != uint8(header.UDPProtocolNumber) {
			skipped++ // ICMPv6, or MLD behind a hop-by-hop header
			continue
		}
		ip := header.IPv6(p)
		if int(ip.PayloadLength())+header.IPv6MinimumSize != n {
			t.Fatalf("payload length %d in a %d-byte packet", ip.PayloadLength(), n)
		}
		src, dst := ip.SourceAddress(), ip.DestinationAddress()
		if src != tcpip.AddrFrom16(host.As16()) || dst != tcpip.AddrFrom16(testPeer6.As16()) {
			t.Fatalf("from %v to %v, want %v to %v", src, dst, host, testPeer6)
		}
		u := header.UDP(ip.Payload())
		if u.SourcePort() != 4000 || u.DestinationPort() != 9 || string(u.Payload()) != "to the tun" {
			t.Fatalf("unexpected UDP datagram %x", u)
		}
		// RFC 8200 §8.1: over IPv6 the UDP checksum is not optional.
		xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
		if u.Checksum() == 0 || checksum.Checksum(u, xsum) != 0xffff {
			t.Fatalf("the UDP checksum of the packet Read returned is wrong (offload %v)", offload)
		}
		break
	}
	t.Logf("%d other packets from the kernel before the datagram", skipped)

	// TUN -> kernel: a hand-built IPv6/UDP packet from the peer.
	pkt := udpPacket6(9, 4000, []byte("from the tun"))
	if _, err := dev.Write(pkt); err != nil {
		t.Fatal(err)
	}
	sock.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, from, err := sock.ReadFromUDPAddrPort(buf)
	if err != nil {
		logIPv6Counters(t, ns)
		t.Fatalf("kernel did not receive the packet written to the TUN: %v", err)
	}
	if string(buf[:n]) != "from the tun" || from != netip.AddrPortFrom(testPeer6, 9) {
		t.Fatalf("kernel got %q from %v", buf[:n], from)
	}
}

// logIPv6Counters logs the nonzero IPv6 counters of the namespace ns
// (Ip6InAddrErrors, say, for a packet taken for one to forward).
func logIPv6Counters(t *testing.T, ns string) {
	t.Helper()
	var b []byte
	InNetNS(ns, func() error {
		var err error
		b, err = os.ReadFile("/proc/thread-self/net/snmp6")
		return err
	})
	var nonzero []string
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) == 2 && f[1] != "0" {
			nonzero = append(nonzero, f[0]+"="+f[1])
		}
	}
	t.Logf("IPv6 counters in the namespace: %s", strings.Join(nonzero, " "))
}

// TestKernelSYNIPv6 has a kernel socket in the namespace connect to
// [fd00:7:5eed::2]:80 through a TUN with offloads and finds its SYN with
// ReadOffload: IPv6 from Host6's address, the MSS of IPv6 over the MTU
// (1500 - 40 - 20), and a TCP checksum that verifies once completed as
// the virtio-net header says. The SYN is never answered; the socket is
// closed.
func TestKernelSYNIPv6(t *testing.T) {
	needRoot(t)
	ns := newTestNetns(t)
	var dev *TUN
	fd := -1
	host := testHost6.Addr()
	err := InNetNS(ns, func() error {
		var err error
		if dev, err = Open(Config{Name: "tunsyn6", Host6: testHost6, Offload: true}); err != nil {
			return err
		}
		// A non-blocking connect: the SYN goes out, and the socket,
		// made on this thread, lives in the namespace.
		if fd, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		err = unix.Connect(fd, &unix.SockaddrInet6{Port: 80, Addr: testPeer6.As16()})
		if err != unix.EINPROGRESS {
			return fmt.Errorf("connect: %v, want EINPROGRESS", err)
		}
		return nil
	})
	if fd >= 0 {
		defer unix.Close(fd)
	}
	if dev != nil {
		defer dev.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	watchdog(t, dev, 20*time.Second)
	if dev.MaxOffload() == 0 {
		t.Fatalf("offloads off: %v", dev.OffloadErr())
	}
	buf := make([]byte, MaxOffloadSize)
	for deadline := time.Now().Add(5 * time.Second); ; {
		if time.Now().After(deadline) {
			t.Fatal("no SYN from the kernel")
		}
		n, o, err := dev.ReadOffload(buf)
		if err != nil {
			t.Fatal(err)
		}
		p := buf[:n]
		tcp := tcpOf(p)
		if tcp == nil || tcp.DestinationPort() != 80 {
			continue // ICMPv6 and MLD
		}
		ip := header.IPv6(p)
		if header.IPVersion(p) != 6 || ip.SourceAddress() != tcpip.AddrFrom16(host.As16()) ||
			ip.DestinationAddress() != tcpip.AddrFrom16(testPeer6.As16()) {
			t.Fatalf("SYN %x is not from %v to %v", p[:40], host, testPeer6)
		}
		if tcp.Flags() != header.TCPFlagSyn || o.GSOSize != 0 {
			t.Fatalf("flags %v, offload %+v; want a lone SYN", tcp.Flags(), o)
		}
		if mss := header.ParseSynOptions(tcp.Options(), false).MSS; mss != 1440 {
			t.Errorf("MSS %d, want 1440", mss)
		}
		if o.CsumPartial && !completeChecksum(p, o) {
			t.Fatalf("cannot complete the checksum with %+v", o)
		}
		xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), uint16(len(tcp)))
		if checksum.Checksum(tcp, xsum) != 0xffff {
			t.Fatalf("the SYN's TCP checksum does not verify (offload %+v)", o)
		}
		t.Logf("SYN from the kernel with offload %+v", o)
		return
	}
}
