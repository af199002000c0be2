// Command gvisorhttp is scripts/bench.sh's peer for the columns that are
// not tund: it serves the same three services as tund (echo on port 7,
// discard on 9, HTTP GET /bytes/N on 80, the same handler code) either from
// gVisor's netstack (gvisor.dev/gvisor/pkg/tcpip) on a TUN device, or, with
// -kernel, from the Linux kernel's own TCP (the ceiling column, run under
// ip netns exec on one end of a veth pair). It is a benchmark peer, not
// part of tund.
//
// With gVisor it opens (creating) the TUN device inside an existing network
// namespace and answers on -addr; the script gives the kernel side its
// address and brings the link up:
//
//	gvisorhttp -netns NS -tun gv0 -addr 198.18.0.2 -mtu 1500
//	ip netns exec NS gvisorhttp -kernel -addr 198.18.0.2
//
// gVisor is configured as a user who wants speed would, following what
// runsc does: see configureGVisor. The line it prints at start says which
// options were set and which this gVisor version cannot honour on a TUN.
package main

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/fdbased"
	"gvisor.dev/gvisor/pkg/tcpip/link/qdisc/fifo"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"

	"github.com/tund-project/tund/scripts/internal/rawtun"
	"github.com/tund-project/tund/tun"
)

// options are the gVisor settings a flag can turn off, to see what each
// one is worth; all are on by default.
type options struct {
	mtu           int
	cubic         bool
	softwareGSO   bool
	gro           bool
	fifo          bool
	rxCsumOffload bool
}

func main() {
	netns := flag.String("netns", "", "network namespace holding the TUN device (required unless -kernel)")
	name := flag.String("tun", "gv0", "TUN device to create")
	addrS := flag.String("addr", "198.18.0.2", "the stack's address")
	kernel := flag.Bool("kernel", false, "serve from the kernel's TCP in the current network namespace instead of gVisor's (run it under ip netns exec)")
	var o options
	flag.IntVar(&o.mtu, "mtu", 1500, "MTU of gVisor's link endpoint (set the device's own with ip link)")
	flag.BoolVar(&o.cubic, "cubic", true, "gVisor: CUBIC congestion control (false: its default, Reno)")
	flag.BoolVar(&o.softwareGSO, "gso", true, "gVisor: software GSO (64 KiB TCP segments split just above the link)")
	flag.BoolVar(&o.gro, "gro", true, "gVisor: generic receive offload in fdbased's packet processors")
	flag.BoolVar(&o.fifo, "fifo", true, "gVisor: FIFO queueing discipline (qdisc/fifo, one queue per CPU, 1000 packets each)")
	flag.BoolVar(&o.rxCsumOffload, "rxcsum", true, "gVisor: receive checksum offload (trust the kernel's checksums)")
	flag.Parse()
	addr, err := netip.ParseAddr(*addrS)
	if err != nil || !addr.Is4() {
		log.Fatalf("gvisorhttp: -addr %q: need an IPv4 address", *addrS)
	}

	var listen func(port uint16) (net.Listener, error)
	var closeStack func()
	if *kernel {
		listen = func(port uint16) (net.Listener, error) {
			return net.Listen("tcp4", netip.AddrPortFrom(addr, port).String())
		}
		closeStack = func() {}
		fmt.Println("config: the kernel's TCP (its defaults and the veth's offloads)")
	} else {
		if *netns == "" {
			log.Fatalf("gvisorhttp: need -netns (or -kernel)")
		}
		var fd int
		err = tun.InNetNS(*netns, func() error {
			var err error
			fd, err = rawtun.Open(*name, true)
			return err
		})
		if err != nil {
			log.Fatalf("gvisorhttp: %v", err)
		}
		s, desc, err := configureGVisor(fd, addr, o)
		if err != nil {
			log.Fatalf("gvisorhttp: %v", err)
		}
		fmt.Println("config: " + desc)
		listen = func(port uint16) (net.Listener, error) {
			return gonet.ListenTCP(s, tcpip.FullAddress{NIC: 1, Port: port}, ipv4.ProtocolNumber)
		}
		closeStack = s.Close
	}

	var ls []net.Listener
	for _, svc := range []struct {
		port   uint16
		handle func(net.Conn)
	}{{7, echo}, {9, discard}} {
		l, err := listen(svc.port)
		if err != nil {
			log.Fatalf("gvisorhttp: listen on port %d: %v", svc.port, err)
		}
		ls = append(ls, l)
		go serve(l, svc.handle)
	}
	hl, err := listen(80)
	if err != nil {
		log.Fatalf("gvisorhttp: listen on port 80: %v", err)
	}
	ls = append(ls, hl)
	go http.Serve(hl, bytesHandler())
	fmt.Println("serving")

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	for _, l := range ls {
		l.Close()
	}
	closeStack()
}

// configureGVisor builds gVisor's stack on the TUN device fd with the
// options a user who wants speed would pick (runsc's choices where runsc
// has one), and returns it with a description of what was set.
func configureGVisor(fd int, addr netip.Addr, o options) (*stack.Stack, string, error) {
	var desc []string
	tcpProto := tcp.NewProtocol
	if o.cubic {
		tcpProto = tcp.NewProtocolCUBIC
		desc = append(desc, "CUBIC")
	} else {
		desc = append(desc, "Reno (its default)")
	}
	s := stack.New(stack.Options{
		NetworkProtocols:   []stack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []stack.TransportProtocolFactory{tcpProto},
	})
	// runsc's netstack settings: SACK on, receive buffer moderation
	// (autotuning) on. The buffer ranges are larger than gVisor's defaults
	// (1 MiB default, 4 MiB max) so that neither side's buffer limits a
	// fast transfer; gVisor allocates buffer memory as data arrives, so a
	// large default costs an idle connection nothing.
	sack := tcpip.TCPSACKEnabled(true)
	moderate := tcpip.TCPModerateReceiveBufferOption(true)
	sndRange := tcpip.TCPSendBufferSizeRangeOption{Min: 4 << 10, Default: 4 << 20, Max: 8 << 20}
	rcvRange := tcpip.TCPReceiveBufferSizeRangeOption{Min: 4 << 10, Default: 1 << 20, Max: 8 << 20}
	for _, opt := range []tcpip.SettableTransportProtocolOption{&sack, &moderate, &sndRange, &rcvRange} {
		if e := s.SetTransportProtocolOption(tcp.ProtocolNumber, opt); e != nil {
			return nil, "", fmt.Errorf("TCP option %T: %v", opt, e)
		}
	}
	desc = append(desc, "SACK", "receive buffer moderation", "send buffer 4 MiB (max 8 MiB)", "receive buffer 1 MiB autotuned up to 8 MiB")

	// fdbased: GSOMaxSize and GVisorGSOEnabled are runsc's software-GSO
	// settings, but this gVisor version only turns GSO on for socket fds
	// (AF_PACKET), never for a TUN fd; gsoEndpoint below does what the
	// option would. GRO coalesces inbound TCP segments in fdbased's
	// packet processors (there is no GRO timeout option any more: it is on
	// or off). RXChecksumOffload trusts the kernel's checksums as runsc does
	// for its host link. TX checksum offload stays off: a TUN without
	// IFF_VNET_HDR has no way to tell the kernel a checksum is missing.
	fopts := fdbased.Options{FDs: []int{fd}, MTU: uint32(o.mtu), RXChecksumOffload: o.rxCsumOffload, GRO: o.gro}
	if o.softwareGSO {
		fopts.GSOMaxSize = stack.GVisorGSOMaxSize
		fopts.GVisorGSOEnabled = true
	}
	ep, err := fdbased.New(&fopts)
	if err != nil {
		return nil, "", fmt.Errorf("fdbased: %w", err)
	}
	desc = append(desc, fmt.Sprintf("fdbased on the TUN fd, MTU %d, readv dispatcher (the only one for a non-socket fd), %d packet processors",
		o.mtu, max(1, runtime.GOMAXPROCS(0))))
	if o.rxCsumOffload {
		desc = append(desc, "RXChecksumOffload")
	}
	if o.gro {
		desc = append(desc, "GRO")
	}
	var link stack.LinkEndpoint = ep
	if o.softwareGSO {
		link = &gsoEndpoint{LinkEndpoint: ep}
		desc = append(desc, "software GSO up to 64 KiB (fdbased ignores GSOMaxSize/GVisorGSOEnabled on a TUN fd; a wrapper reports GVisorGSOSupported)")
	}
	nicOpts := stack.NICOptions{}
	if o.fifo {
		// runsc's default queueing discipline: FIFO, one queue per CPU, 1000
		// packets each.
		nicOpts.QDisc = fifo.New(link, runtime.GOMAXPROCS(0), 1000)
		desc = append(desc, fmt.Sprintf("FIFO qdisc (%d queues x 1000 packets)", runtime.GOMAXPROCS(0)))
	}
	desc = append(desc, "TX checksum offload off (impossible on a TUN without IFF_VNET_HDR); host GSO/TSO on the TUN: not available in this gVisor version")
	if e := s.CreateNICWithOptions(1, link, nicOpts); e != nil {
		return nil, "", fmt.Errorf("CreateNIC: %v", e)
	}
	pa := tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: tcpip.AddrFrom4(addr.As4()).WithPrefix()}
	if e := s.AddProtocolAddress(1, pa, stack.AddressProperties{}); e != nil {
		return nil, "", fmt.Errorf("address: %v", e)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})
	return s, "gVisor netstack: " + strings.Join(desc, ", "), nil
}

// gsoEndpoint makes gVisor's TCP build segments of up to 64 KiB and split
// them into MSS-sized packets itself just before they reach the link
// (gVisor's "software GSO", which runsc enables when the host cannot
// offload). fdbased would report it only for socket fds.
type gsoEndpoint struct {
	stack.LinkEndpoint
}

// GSOMaxSize implements stack.GSOEndpoint.
func (*gsoEndpoint) GSOMaxSize() uint32 { return stack.GVisorGSOMaxSize }

// SupportedGSO implements stack.GSOEndpoint.
func (*gsoEndpoint) SupportedGSO() stack.SupportedGSO { return stack.GVisorGSOSupported }

// serve accepts connections on l and runs handle for each in its own
// goroutine, as tund's services do.
func serve(l net.Listener, handle func(net.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Printf("gvisorhttp: accept: %v", err)
			}
			return
		}
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// echo and discard are tund's services (cmd/tund/services.go), so that
// the stacks are compared under the same application. echo hides the
// connection's ReadFrom from io.Copy: on a kernel socket (-kernel) it
// would splice through a pipe, and an idle connection's goroutine would
// hold that pipe's two descriptors and its buffers while it waits, which
// is neither what tund's echo does nor an idle connection's cost.
func echo(c net.Conn) { _, _ = io.Copy(struct{ io.Writer }{c}, c) }

func discard(c net.Conn) { _, _ = io.Copy(io.Discard, c) }

// maxBytes caps GET /bytes/N, as tund's does.
const maxBytes = 1 << 36

// bytesHandler serves GET /bytes/N exactly as tund's HTTP service does:
// N bytes of "tund tund ...", written 64 KiB at a time.
func bytesHandler() http.Handler {
	mux := http.NewServeMux()
	pattern := bytes.Repeat([]byte("tund "), 64<<10/5)
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, "bad byte count", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/octet-stream")
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		for n > 0 {
			k := min(n, int64(len(pattern)))
			if _, err := w.Write(pattern[:k]); err != nil {
				return
			}
			n -= k
		}
	})
	return mux
}
