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
		dev, err = Open(Config{Name: "tuntest0", MTU: 1400, Host: netip.MustParsePrefix("198.18.7.1/24")})
		if err != nil {
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
	var v4 []string
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
			v4 = append(v4, a.String())
		}
	}
	if len(v4) != 1 || v4[0] != "198.18.7.1/24" {
		t.Fatalf("IPv4 addresses %v, want [198.18.7.1/24]", v4)
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

func TestOpenRejectsBadConfig(t *testing.T) {
	for _, cfg := range []Config{
		{Name: "a-name-longer-than-15", MTU: 1500},
		{Name: "x", MTU: 10},
		{Name: "x", Host: netip.MustParsePrefix("2001:db8::1/64")},
	} {
		if _, err := Open(cfg); err == nil {
			t.Fatalf("Open(%+v) succeeded", cfg)
		}
	}
}
