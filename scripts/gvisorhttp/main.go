// Command gvisorhttp serves the same HTTP /bytes/N endpoint as tund, but
// with gVisor's netstack (gvisor.dev/gvisor/pkg/tcpip) on a TUN device, so
// scripts/bench.sh can compare the two stacks over the same kind of link.
// It is a benchmark peer, not part of tund.
//
// It opens (creating) the TUN device inside an existing network namespace
// and answers on -addr; the script gives the kernel side its address and
// brings the link up:
//
//	gvisorhttp -netns NS -tun gv0 -addr 198.18.0.2
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"strconv"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/tund-project/tund/tun"
)

func main() {
	netns := flag.String("netns", "", "network namespace holding the device (required)")
	name := flag.String("tun", "gv0", "TUN device to create")
	addrS := flag.String("addr", "198.18.0.2", "the stack's address")
	mtu := flag.Int("mtu", 1500, "MTU")
	flag.Parse()
	addr, err := netip.ParseAddr(*addrS)
	if err != nil || !addr.Is4() || *netns == "" {
		log.Fatalf("gvisorhttp: need -netns and an IPv4 -addr")
	}
	var fd int
	err = tun.InNetNS(*netns, func() error {
		var err error
		fd, err = openTUN(*name)
		return err
	})
	if err != nil {
		log.Fatalf("gvisorhttp: open TUN: %v", err)
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcp.NewProtocol},
	})
	sack := tcpip.TCPSACKEnabled(true)
	s.SetTransportProtocolOption(tcp.ProtocolNumber, &sack)
	ep, err := fdbased.New(&fdbased.Options{FDs: []int{fd}, MTU: uint32(*mtu)})
	if err != nil {
		log.Fatalf("gvisorhttp: fdbased: %v", err)
	}
	if e := s.CreateNIC(1, ep); e != nil {
		log.Fatalf("gvisorhttp: CreateNIC: %v", e)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddrFrom4(addr.As4()).WithPrefix()}
	if e := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); e != nil {
		log.Fatalf("gvisorhttp: address: %v", e)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	l, err := gonet.ListenTCP(s, tcpip.FullAddress{NIC: 1, Port: 80}, ipv4.ProtocolNumber)
	if err != nil {
		log.Fatalf("gvisorhttp: listen: %v", err)
	}
	pattern := []byte("tund ")
	for len(pattern) < 64<<10 {
		pattern = append(pattern, pattern...)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 {
			http.Error(w, "bad size", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(pattern)))
			if _, err := w.Write(pattern[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	go http.Serve(l, mux)
	fmt.Println("serving")
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	l.Close()
	s.Close()
}

// openTUN creates a TUN device (IFF_TUN | IFF_NO_PI) and returns its fd.
func openTUN(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TUN | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.TUNSETIFF, uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		unix.Close(fd)
		return -1, errno
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}
