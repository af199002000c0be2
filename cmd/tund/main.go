// Command tund runs the tund userspace TCP/IP stack (IPv4 and IPv6) on a
// TUN device and serves echo (7), discard (9), chargen (19) and HTTP (80)
// on the stack's addresses, all through the stack's public API.
//
// As root, with no flags, it creates the TUN device tund0, gives the
// kernel side 198.18.0.1/24 and answers on 198.18.0.2 (198.18.0.0/15 is
// reserved for network testing, RFC 2544):
//
//	go run ./cmd/tund
//	curl http://198.18.0.2/
//
// With -netns NAME everything happens inside that network namespace,
// created if missing and deleted on exit if tund created it.
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/tund-project/tund/retransmit"
	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// options are the parsed command-line flags.
type options struct {
	tunName string
	addr    netip.Addr // the zero Addr: no IPv4
	host    netip.Prefix
	addr6   netip.Addr // the zero Addr: no IPv6
	host6   netip.Prefix
	mtu     int
	netns   string
	trace   bool
	// traceJSON is a file for JSON lines of transitions and samples.
	traceJSON      string
	sampleInterval time.Duration
	logLevel       slog.Level
	backlog        int
	msl            time.Duration
	// finTimeout reclaims orphaned FIN-WAIT-2 connections.
	finTimeout    time.Duration
	synAckRetries int
	synCookies    bool
	control       string // control socket path ("" when -control=none)
	rcvBuf        int    // 0: autotuned
	rcvBufMax     int
	sndBuf        int
	noDelay       bool
	cc            string
	rtoInitial    time.Duration
	rtoMin        time.Duration
	rtoMax        time.Duration
	noSACK        bool
	lossDetection string // tcp.LossRACK or tcp.LossRFC6675
	prrBound      string // "ssrb" or "crb"
	noTimestamps  bool
	impair        tun.ImpairConfig
	pcap          string // -pcap file ("": no capture)
	offload       bool   // -offload: TUN segmentation and checksum offload
	queues        int    // -queues: TUN queues, each with a reader
	apps          appList
	forwards      forwardList
	forwardsOut   forwardOutList
	forwardWait   time.Duration // -forward-timeout
	// Resource limits (stack.Config and tcp.Config; 0: the default).
	maxConns, maxOrphans, maxTimeWait int
	orphanRetries                     int
	memLimit                          int64
	minPMTU                           int
	metrics                           string // -metrics listen address ("": off)
	cpuProfile                        string // -cpuprofile file ("": off)
	// shutdownGrace is how long SIGTERM/SIGINT waits for connections to
	// close after their FIN before resetting the rest.
	shutdownGrace time.Duration
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "ss" {
		if err := ssCommand(os.Args[2:], os.Stdout, os.Stderr); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				os.Exit(0)
			}
			fmt.Fprintf(os.Stderr, "tund: %v\n", err)
			os.Exit(1)
		}
		return
	}
	if len(os.Args) > 1 && os.Args[1] == "stats" {
		os.Exit(runSubcommand(statsCommand, os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "dial" {
		os.Exit(runSubcommand(dialCommand, os.Args[2:]))
	}
	if len(os.Args) > 1 && os.Args[1] == "drill" {
		os.Exit(runSubcommand(drillCommand, os.Args[2:]))
	}
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintf(os.Stderr, "tund: %v\n", err)
		os.Exit(2)
	}
	if err := run(opts); err != nil {
		fmt.Fprintf(os.Stderr, "tund: %v\n", err)
		os.Exit(1)
	}
}

// parseFlags parses and validates the command line. Every bad value is a
// one-line error naming the flag and the value.
func parseFlags(args []string, out io.Writer) (options, error) {
	fs := flag.NewFlagSet("tund", flag.ContinueOnError)
	fs.SetOutput(out)
	tunName := fs.String("tun", "tund0", "TUN device `name`: attach if it exists (persistent), else create it and remove it on exit")
	addr := fs.String("addr", "198.18.0.2", "the stack's own IPv4 `address` (\"\": no IPv4)")
	host := fs.String("host", "198.18.0.1/24", "kernel-side IPv4 `address/prefix` given to a device tund creates")
	addr6 := fs.String("addr6", "fd00:7:5eed::2", "the stack's own IPv6 `address` (\"\": no IPv6)")
	host6 := fs.String("host6", "fd00:7:5eed::1/64", "kernel-side IPv6 `address/prefix` given to a device tund creates")
	mtu := fs.Int("mtu", 1500, "device `MTU` in bytes (68..65535)")
	netns := fs.String("netns", "", "run inside this network `namespace` (created if missing, deleted on exit if created)")
	trace := fs.Bool("trace", false, "log every TCP state transition with its trigger")
	traceJSON := fs.String("trace-json", "", "write transitions and per-connection samples (cwnd, srtt, rto, in flight) as JSON lines to `file`; scripts/plot draws them")
	sampleInterval := fs.Duration("sample-interval", 10*time.Millisecond, "how often -trace-json samples each connection")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	backlog := fs.Int("backlog", stack.DefaultBacklog, "default listen `backlog`: the most unaccepted connections, and the most half-open ones, a listener holds")
	msl := fs.Duration("msl", tcp.DefaultConfig().MSL, "maximum segment lifetime; TIME-WAIT lasts 2*MSL")
	finTimeout := fs.Duration("fin-timeout", tcp.DefaultConfig().FinTimeout, "reclaim a connection the application closed that sits this long in FIN-WAIT-2")
	synAckRetries := fs.Int("synack-retries", tcp.DefaultConfig().SynAckRetries, "SYN+ACK retransmissions before a half-open connection is dropped")
	synCookies := fs.Bool("syncookies", true, "answer SYNs with SYN cookies (RFC 4987) when a listener's SYN queue is full, as Linux's tcp_syncookies=1; -syncookies=false recycles the oldest stale half-open connection or drops the SYN")
	rcvBuf := fs.String("rcvbuf", "auto", "receive buffer `size` per connection (e.g. 64K, 1M), or auto: start at 128K and autotune up to -rcvbuf-max")
	rcvBufMax := fs.String("rcvbuf-max", "6M", "receive buffer autotuning cap (`size`)")
	sndBuf := fs.String("sndbuf", "1M", "send buffer `size` per connection")
	noDelay := fs.Bool("nodelay", false, "turn Nagle's algorithm off for every connection")
	cc := fs.String("cc", "newreno", "congestion control `algorithm`: newreno or cubic")
	def := tcp.DefaultConfig()
	rtoInitial := fs.Duration("rto-initial", def.InitialRTO, "initial retransmission timeout (RFC 6298 §2.1)")
	rtoMin := fs.Duration("rto-min", def.MinRTO, "lower bound of the retransmission timeout (Linux: 200ms); under 200 ms a lone segment still waits for a delayed ACK and give-ups last as from 200 ms")
	rtoMax := fs.Duration("rto-max", def.MaxRTO, "upper bound of the retransmission timeout (and of its backoff)")
	noSACK := fs.Bool("no-sack", false, "do not offer selective acknowledgments (RFC 2018)")
	lossDetection := fs.String("loss-detection", tcp.LossRACK, "loss `detector`: rack (RFC 8985, by send time) or rfc6675 (three SACKed segments above a hole), to compare the two")
	prrBound := fs.String("prr-bound", "ssrb", "PRR's `bound` below ssthresh (RFC 6937): ssrb (slow start reduction bound) or crb (conservative, strict packet conservation)")
	noTimestamps := fs.Bool("no-timestamps", false, "do not offer TCP timestamps (RFC 7323)")
	impairIn := fs.String("impair-in", "", "impair packets from the kernel to the stack, e.g. `loss=1%,dup=0.5%,reorder=2%,delay=10ms,jitter=2ms,corrupt=0.1%,rate=100mbit`")
	impairOut := fs.String("impair-out", "", "impair packets from the stack to the kernel (same syntax as -impair-in)")
	impairSeed := fs.Uint64("impair-seed", 1, "seed of the impairment's random decisions (same seed, same losses)")
	var forwards forwardList
	fs.Var(&forwards, "forward", "`LISTEN=TARGET`: forward connections to tund's port LISTEN to TARGET (HOST:PORT), dialed from the kernel side (inside -netns when given): a real application behind tund's TCP (repeatable), e.g. -forward 22=127.0.0.1:22")
	var forwardsOut forwardOutList
	fs.Var(&forwardsOut, "forward-out", "`LISTEN=TARGET`: listen on LISTEN (HOST:PORT on the host, port 0: any, logged) and have tund dial each connection through its stack to TARGET, a server on the kernel side: a real client on tund's active-open path (repeatable), e.g. -forward-out 127.0.0.1:2222=198.18.0.1:22")
	forwardTimeout := fs.Duration("forward-timeout", defaultForwardTimeout, "with -forward or -forward-out: a kernel-side peer that answers nothing, not even keepalive probes, for this long in the middle of a connection is given up and the other side reset (TCP_USER_TIMEOUT and keepalive on its socket)")
	var apps appList
	fs.Var(&apps, "app", "`PORT=KIND[,backlog=N][,rate=SIZE]`: a misbehaving application on PORT, for labs (repeatable): never-close (CLOSE-WAIT leak), never-accept (full accept and SYN queues), slow-read (rate=2K: zero windows, persist probes), reset (SO_LINGER 0: RST instead of FIN), half-close (FIN first, then reads to EOF)")
	queues := fs.Int("queues", defaultQueues(), "TUN queues (IFF_MULTI_QUEUE), each read by its own goroutine, flows spread over them by 4-tuple; default: the number of CPUs, at most 8; -pcap and -impair-* use one")
	offload := fs.Bool("offload", true, "open the TUN device with segmentation and checksum offload (IFF_VNET_HDR, TSO and GRO both ways: TCP super-segments of up to 64 KiB per read and write); falls back by itself, with a log line, where the kernel refuses")
	pcap := fs.String("pcap", "", "write every packet in and out to `file` in pcap format (readable by tcpdump -r, tshark, Wireshark); with -impair-*, what the stack sees")
	control := fs.String("control", "", "control socket `path` for tund ss and tund stats (default /run/tund/TUN.sock; \"none\" disables it)")
	shutdownGrace := fs.Duration("shutdown-grace", 3*time.Second, "on SIGTERM or SIGINT, send a FIN on every connection and wait this long for them to close before resetting the rest (a second signal resets at once)")
	metrics := fs.String("metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics, e.g. 127.0.0.1:9464 (port 0: any, logged), and Go's profiler at /debug/pprof/; it listens on the host side, not in -netns")
	cpuProfile := fs.String("cpuprofile", "", "write a CPU profile of the whole run to `file` (go tool pprof FILE)")
	maxConns := fs.Int("max-connections", 65536, "most connections at once (TIME-WAIT apart); past it a dial fails and a SYN is dropped")
	maxOrphans := fs.Int("max-orphans", 16384, "most connections closed by their application and still finishing; past it a closing connection is reset")
	orphanRetries := fs.Int("orphan-retries", tcp.DefaultConfig().OrphanRetries, "timeouts or window probes without progress before a closed connection the peer holds open is reset")
	maxTimeWait := fs.Int("max-time-wait", 262144, "most TIME-WAIT entries; past it a connection closes without TIME-WAIT")
	memLimit := fs.String("mem-limit", "1G", "budget for every connection's send and receive buffers together (`size`); from 3/4 of it buffers stop growing")
	minPMTU := fs.Int("min-pmtu", 552, "floor of path MTU discovery: an ICMP fragmentation-needed reporting less is taken as this")
	// Unknown flags and malformed numbers are reported by the flag package
	// on one line; keep its usage text out of the error path.
	fs.Usage = func() {
		fmt.Fprintf(out, "usage: tund [flags]\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	if *forwardTimeout < time.Second {
		return options{}, fmt.Errorf("-forward-timeout %v: must be at least 1s (keepalive probes count in seconds)", *forwardTimeout)
	}
	if *sampleInterval <= 0 {
		return options{}, fmt.Errorf("-sample-interval %v: must be positive", *sampleInterval)
	}
	o := options{traceJSON: *traceJSON, sampleInterval: *sampleInterval, tunName: *tunName, mtu: *mtu, netns: *netns, trace: *trace, backlog: *backlog, msl: *msl,
		finTimeout: *finTimeout, synAckRetries: *synAckRetries, synCookies: *synCookies, control: *control,
		noDelay: *noDelay, cc: *cc, rtoInitial: *rtoInitial, rtoMin: *rtoMin, rtoMax: *rtoMax,
		noSACK: *noSACK, lossDetection: *lossDetection, prrBound: *prrBound, noTimestamps: *noTimestamps, offload: *offload, queues: *queues, apps: apps, forwards: forwards, forwardsOut: forwardsOut, forwardWait: *forwardTimeout}
	var err error
	if *addr != "" {
		if o.addr, err = netip.ParseAddr(*addr); err != nil || !o.addr.Is4() {
			return o, fmt.Errorf("-addr %q: not an IPv4 address", *addr)
		}
		if o.host, err = netip.ParsePrefix(*host); err != nil || !o.host.Addr().Is4() {
			return o, fmt.Errorf("-host %q: not an IPv4 address/prefix such as 198.18.0.1/24", *host)
		}
		if o.host.Addr() == o.addr {
			return o, fmt.Errorf("-host %q: the kernel side cannot have the stack's own address %s", *host, o.addr)
		}
	}
	if *addr6 != "" {
		if o.addr6, err = netip.ParseAddr(*addr6); err != nil || !o.addr6.Is6() || o.addr6.Is4In6() || o.addr6.Zone() != "" ||
			!o.addr6.IsGlobalUnicast() {
			return o, fmt.Errorf("-addr6 %q: not a unicast IPv6 address such as fd00:7:5eed::2", *addr6)
		}
		if o.host6, err = netip.ParsePrefix(*host6); err != nil || !o.host6.Addr().Is6() || o.host6.Addr().Is4In6() {
			return o, fmt.Errorf("-host6 %q: not an IPv6 address/prefix such as fd00:7:5eed::1/64", *host6)
		}
		if o.host6.Addr() == o.addr6 {
			return o, fmt.Errorf("-host6 %q: the kernel side cannot have the stack's own address %s", *host6, o.addr6)
		}
	}
	if !o.addr.IsValid() && !o.addr6.IsValid() {
		return o, errors.New(`-addr "" and -addr6 "": the stack needs an address in at least one family`)
	}
	if o.queues < 1 || o.queues > tun.MaxQueues {
		return o, fmt.Errorf("-queues %d: must be between 1 and %d", o.queues, tun.MaxQueues)
	}
	if *mtu < 68 || *mtu > 65535 {
		return o, fmt.Errorf("-mtu %d: must be between 68 and 65535", *mtu)
	}
	if o.addr6.IsValid() && *mtu < 1280 {
		return o, fmt.Errorf("-mtu %d: IPv6 needs at least 1280 (RFC 8200 §5); run with -addr6 \"\" for IPv4 alone", *mtu)
	}
	if len(o.tunName) == 0 || len(o.tunName) > 15 {
		return o, fmt.Errorf("-tun %q: an interface name has 1 to 15 characters", o.tunName)
	}
	if err := o.logLevel.UnmarshalText([]byte(*logLevel)); err != nil {
		return o, fmt.Errorf("-log-level %q: want debug, info, warn or error", *logLevel)
	}
	if o.backlog < 1 {
		return o, fmt.Errorf("-backlog %d: must be at least 1", o.backlog)
	}
	if o.msl <= 0 {
		return o, fmt.Errorf("-msl %v: must be positive", o.msl)
	}
	if o.finTimeout <= 0 {
		return o, fmt.Errorf("-fin-timeout %v: must be positive", o.finTimeout)
	}
	if o.synAckRetries < 1 || o.synAckRetries > 30 {
		return o, fmt.Errorf("-synack-retries %d: must be between 1 and 30", o.synAckRetries)
	}
	if o.impair.In, err = tun.ParseImpairment(*impairIn); err != nil {
		return o, fmt.Errorf("-impair-in: %v", err)
	}
	if o.impair.Out, err = tun.ParseImpairment(*impairOut); err != nil {
		return o, fmt.Errorf("-impair-out: %v", err)
	}
	o.impair.Seed = *impairSeed
	o.pcap = *pcap
	if _, err := retransmit.New(o.cc, 1460); err != nil {
		return o, fmt.Errorf("-cc %q: want newreno or cubic", o.cc)
	}
	if o.lossDetection != tcp.LossRACK && o.lossDetection != tcp.LossRFC6675 {
		return o, fmt.Errorf("-loss-detection %q: want rack or rfc6675", o.lossDetection)
	}
	if o.prrBound != "ssrb" && o.prrBound != "crb" {
		return o, fmt.Errorf("-prr-bound %q: want ssrb or crb", o.prrBound)
	}
	if o.rtoMin <= 0 || o.rtoMin > o.rtoMax {
		return o, fmt.Errorf("-rto-min %v: must be positive and at most -rto-max %v", o.rtoMin, o.rtoMax)
	}
	if o.rtoInitial < o.rtoMin || o.rtoInitial > o.rtoMax {
		return o, fmt.Errorf("-rto-initial %v: must lie between -rto-min %v and -rto-max %v", o.rtoInitial, o.rtoMin, o.rtoMax)
	}
	if *rcvBuf != "auto" {
		if o.rcvBuf, err = parseSize(*rcvBuf); err != nil {
			return o, fmt.Errorf("-rcvbuf %q: %v", *rcvBuf, err)
		}
	}
	if o.rcvBufMax, err = parseSize(*rcvBufMax); err != nil {
		return o, fmt.Errorf("-rcvbuf-max %q: %v", *rcvBufMax, err)
	}
	if o.sndBuf, err = parseSize(*sndBuf); err != nil {
		return o, fmt.Errorf("-sndbuf %q: %v", *sndBuf, err)
	}
	for _, l := range []struct {
		name     string
		v        int
		min, max int
		dst      *int
	}{
		{"-max-connections", *maxConns, 1, 1 << 24, &o.maxConns},
		{"-max-orphans", *maxOrphans, 1, 1 << 24, &o.maxOrphans},
		{"-orphan-retries", *orphanRetries, 1, 30, &o.orphanRetries},
		{"-max-time-wait", *maxTimeWait, 1, 1 << 24, &o.maxTimeWait},
		{"-min-pmtu", *minPMTU, 68, o.mtu, &o.minPMTU},
	} {
		if l.v < l.min || l.v > l.max {
			return o, fmt.Errorf("%s %d: must be between %d and %d", l.name, l.v, l.min, l.max)
		}
		*l.dst = l.v
	}
	if o.memLimit, err = parseBigSize(*memLimit); err != nil {
		return o, fmt.Errorf("-mem-limit %q: %v", *memLimit, err)
	}
	switch o.control {
	case "":
		o.control = defaultControl(o.tunName)
	case "none":
		o.control = ""
	}
	if o.shutdownGrace = *shutdownGrace; o.shutdownGrace < 0 {
		return o, fmt.Errorf("-shutdown-grace %v: must not be negative", o.shutdownGrace)
	}
	o.cpuProfile = *cpuProfile
	if o.metrics = *metrics; o.metrics != "" {
		if err := checkMetricsAddr(o.metrics); err != nil {
			return o, err
		}
	}
	return o, nil
}

// defaultQueues is -queues' default: a reader per CPU, up to 8 (past
// that the readers mostly wait for the connections' locks).
func defaultQueues() int { return min(runtime.NumCPU(), 8) }

// linkQueues is how many queues to open: -queues, but one when -pcap or
// -impair-* sit between the device and the stack, since they read and
// write a single queue and the others would go unread.
func (o options) linkQueues() int {
	if o.pcap != "" || o.impair.In != (tun.Impairment{}) || o.impair.Out != (tun.Impairment{}) {
		return 1
	}
	return o.queues
}

func run(o options) error {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: o.logLevel}))
	slog.SetDefault(log)
	if o.cpuProfile != "" {
		f, err := os.Create(o.cpuProfile)
		if err != nil {
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return fmt.Errorf("-cpuprofile: %w", err)
		}
		defer func() {
			pprof.StopCPUProfile()
			f.Close()
			log.Info("CPU profile written", "file", o.cpuProfile)
		}()
	}

	// -pcap's file is created first, so a bad path fails before any
	// namespace or device exists. It is closed last, after st.Close has
	// flushed the capture.
	var pcapFile *os.File
	if o.pcap != "" {
		f, err := os.Create(o.pcap)
		if err != nil {
			return fmt.Errorf("-pcap %q: %w", o.pcap, err)
		}
		defer func() {
			if err := f.Close(); err != nil {
				log.Error("packet capture", "file", o.pcap, "err", err)
			}
		}()
		pcapFile = f
	}

	if o.netns != "" && !tun.NetNSExists(o.netns) {
		if err := tun.CreateNetNS(o.netns); err != nil {
			return fmt.Errorf("create network namespace %q: %w", o.netns, err)
		}
		log.Info("created network namespace", "netns", o.netns)
		defer func() {
			if err := tun.DeleteNetNS(o.netns); err != nil {
				log.Error("delete network namespace", "netns", o.netns, "err", err)
			} else {
				log.Info("deleted network namespace", "netns", o.netns)
			}
		}()
	}

	var dev *tun.TUN
	err := tun.InNetNS(o.netns, func() error {
		var err error
		dev, err = tun.Open(tun.Config{Name: o.tunName, MTU: o.mtu, Host: o.host, Host6: o.host6, Offload: o.offload, Queues: o.linkQueues()})
		return err
	})
	if err != nil {
		return fmt.Errorf("open TUN device %q: %w", o.tunName, err)
	}
	if dev.Created() && o.addr.IsValid() && !o.host.Contains(o.addr) {
		dev.Close()
		return fmt.Errorf("-addr %s is outside -host %s: the kernel would not route to it", o.addr, o.host)
	}
	if dev.Created() && o.addr6.IsValid() && !o.host6.Contains(o.addr6) {
		dev.Close()
		return fmt.Errorf("-addr6 %s is outside -host6 %s: the kernel would not route to it", o.addr6, o.host6)
	}
	if err := dev.OffloadErr(); err != nil {
		log.Warn("TUN offloads refused; running without them", "dev", dev.Name(), "err", err)
	}
	if err := dev.QueuesErr(); err != nil {
		log.Warn("TUN queues refused; running with one", "dev", dev.Name(), "err", err)
	}
	log.Info("TUN device ready", "dev", dev.Name(), "created", dev.Created(), "mtu", dev.MTU(),
		"offload", dev.MaxOffload() > 0, "queues", dev.Queues(), "host", o.host, "addr", o.addr, "host6", o.host6, "addr6", o.addr6, "netns", o.netns)

	cfg := stack.Config{
		Addr:  o.addr,
		Addr6: o.addr6,
		TCP: tcp.Config{MSL: o.msl, FinTimeout: o.finTimeout, SynAckRetries: o.synAckRetries,
			RcvBuf: o.rcvBuf, NoAutoTune: o.rcvBuf != 0, RcvBufMax: o.rcvBufMax, SndBuf: o.sndBuf, NoDelay: o.noDelay,
			CongestionControl: o.cc, InitialRTO: o.rtoInitial, MinRTO: o.rtoMin, MaxRTO: o.rtoMax,
			NoSACK: o.noSACK, NoTimestamps: o.noTimestamps, OrphanRetries: o.orphanRetries,
			LossDetection: o.lossDetection, PRRConservative: o.prrBound == "crb"},
		Backlog:        o.backlog,
		MaxConnections: o.maxConns,
		MaxOrphans:     o.maxOrphans,
		MaxTimeWait:    o.maxTimeWait,
		MemLimit:       o.memLimit,
		MinPathMTU:     o.minPMTU,
		Logger:         log,
		NoSynCookies:   !o.synCookies,
	}
	if o.traceJSON != "" {
		f, err := os.Create(o.traceJSON)
		if err != nil {
			return fmt.Errorf("-trace-json %q: %w", o.traceJSON, err)
		}
		jt := newJSONTrace(f)
		defer jt.Close()
		cfg.Sampler = stack.Sampler{Interval: o.sampleInterval, Func: jt.sample}
		cfg.Trace = jt.transition
	}
	if o.trace {
		// One plain line per transition on stderr, with the time since
		// start, so a learner can read a connection's life top to bottom.
		var mu sync.Mutex
		also := cfg.Trace // -trace-json, if given
		cfg.Trace = func(ev stack.TraceEvent) {
			mu.Lock()
			fmt.Fprintf(os.Stderr, "trace %10.6f %s\n", ev.Time.Seconds(), ev)
			mu.Unlock()
			if also != nil {
				also(ev)
			}
		}
	}
	var hub *diagramHub // the live diagram beside -metrics
	if o.metrics != "" {
		hub = newDiagramHub(nil)
		also := cfg.Trace
		cfg.Trace = func(ev stack.TraceEvent) {
			hub.publish(ev)
			if also != nil {
				also(ev)
			}
		}
	}
	var link tun.Device = dev
	if o.impair.In != (tun.Impairment{}) || o.impair.Out != (tun.Impairment{}) {
		imp, err := tun.Impair(dev, o.impair)
		if err != nil {
			dev.Close()
			return err
		}
		link = imp
		log.Info("impairing the link", "in", o.impair.In.String(), "out", o.impair.Out.String(), "seed", o.impair.Seed)
	}
	if o.pcap != "" {
		// The capture sits between Impair and the stack, so the file shows
		// what the stack sees: packets it sent that -impair-out then loses
		// are in it, packets -impair-in lost are not. The deferred report
		// runs after st.Close, which flushes the capture.
		capt, err := tun.Capture(link, pcapFile)
		if err != nil {
			link.Close()
			return fmt.Errorf("-pcap %q: %w", o.pcap, err)
		}
		defer func() {
			if err := capt.Err(); err != nil {
				log.Error("packet capture incomplete", "file", o.pcap, "err", err, "missed", capt.Stats().Missed)
			}
			log.Info("packet capture written", "file", o.pcap, "packets", capt.Stats().Packets)
		}()
		link = capt
		log.Info("capturing packets", "file", o.pcap)
	}
	st, err := stack.New(link, cfg)
	if err != nil {
		link.Close()
		return err
	}
	defer st.Close()

	if o.control != "" {
		if err := os.MkdirAll(filepath.Dir(o.control), 0o755); err != nil {
			return fmt.Errorf("-control %q: %w", o.control, err)
		}
		cl, err := stack.ListenControl(o.control)
		if err != nil {
			return fmt.Errorf("-control %q: %w", o.control, err)
		}
		defer cl.Close()                                 // removes the socket and its lock file
		st.HandleControl("dial", serveDial(st))          // tund dial
		st.HandleControl("forwards", serveForwardCounts) // tund stats, with -forward
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() {
			if err := st.ServeControl(ctx, cl); err != nil {
				log.Error("control socket stopped", "err", err)
			}
		}()
		log.Info("control socket ready", "path", o.control, "try", "tund ss -control "+o.control)
	}
	if o.metrics != "" {
		hub.st = st
		stop, err := serveMetrics(o.metrics, st, log, hub) // tund runs in the host's namespace: host side
		if err != nil {
			return err
		}
		defer stop()
	}

	for _, svc := range []struct {
		name  string
		port  int
		start func(*stack.Conn)
	}{{"echo", 7, inBursts(echo)}, {"discard", 9, inBursts(discard)}, {"chargen", 19, onGoroutine(chargen)}} {
		l, err := st.Listen("tcp", fmt.Sprintf(":%d", svc.port))
		if err != nil {
			return err
		}
		go serve(l, svc.name, log, svc.start)
	}
	for _, f := range o.forwards {
		if err := startForward(st, f, o.netns, o.backlog, o.forwardWait, log); err != nil {
			return err
		}
		log.Info("forwarding", "from", o.where(f.port), "to", f.target, "dialed_in", cmp.Or(o.netns, "the host's namespace"))
	}
	for _, f := range o.forwardsOut {
		if err := startForwardOut(st, f, o.forwardWait, log); err != nil {
			return err
		}
	}
	for _, a := range o.apps {
		if err := startApp(st, a, o.backlog, log); err != nil {
			return err
		}
		log.Info("misbehaving application", "app", a.String(), "does", appKinds[a.kind], "addr", o.where(a.port))
	}
	hl, err := st.Listen("tcp", ":80")
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: httpHandler(st), ReadHeaderTimeout: 10 * time.Second,
		ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	go func() {
		if err := srv.Serve(hl); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Error("http server stopped", "err", err)
		}
	}()
	log.Info("serving", "echo", o.where(7), "discard", o.where(9), "chargen", o.where(19), "http", o.urls())

	sig := make(chan os.Signal, 2)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	select {
	case <-st.Done(): // the device failed: nothing more to serve
		return deviceFailed(o, dev.Name(), st.Err())
	case got := <-sig:
		log.Info("shutting down", "signal", got.String(), "grace", o.shutdownGrace)
	}
	return shutdown(st, o, dev.Name(), sig, log)
}

// shutdown ends the connections gracefully (stack.Shutdown: listeners
// closed, a FIN on every connection) and waits up to -shutdown-grace for
// them to close; then, or at a second signal, the rest are reset. The
// deferred Close then removes a device tund created.
func shutdown(st *stack.Stack, o options, devName string, sig <-chan os.Signal, log *slog.Logger) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.shutdownGrace)
	defer cancel()
	go func() {
		select {
		case got := <-sig:
			log.Warn("second signal: resetting the connections left", "signal", got.String())
			cancel()
		case <-ctx.Done():
		}
	}()
	switch err := st.Shutdown(ctx); {
	case err == nil:
		log.Info("every connection closed gracefully")
	case errors.Is(err, net.ErrClosed): // the device failed meanwhile
		return deviceFailed(o, devName, err)
	default:
		log.Warn("grace period over", "err", err)
	}
	return nil
}

// deviceFailed is the one-line error tund exits with when its device
// stops working, most likely because someone deleted it.
func deviceFailed(o options, name string, err error) error {
	where := ""
	if o.netns != "" {
		where = " in network namespace " + o.netns
	}
	if cause := errors.Unwrap(err); cause != nil {
		err = cause // the device's own error, without the stack's prefix
	}
	if errors.Is(err, syscall.EBADFD) {
		return fmt.Errorf("TUN device %s%s was deleted: %w", name, where, err)
	}
	return fmt.Errorf("TUN device %s%s failed: %w", name, where, err)
}

// parseSize parses a buffer size: a byte count with an optional K, M or
// G suffix (powers of two), between 1 KiB and 1 GiB.
func parseSize(s string) (int, error) {
	v, err := parseBytes(s, 1<<10, 1<<30, "65536, 64K or 4M", "1K and 1G")
	return int(v), err
}

// parseBigSize parses a budget rather than a buffer: a byte count with an
// optional K, M, G or T suffix, between 1 MiB and 1 TiB.
func parseBigSize(s string) (int64, error) {
	return parseBytes(s, 1<<20, 1<<40, "512M or 2G", "1M and 1T")
}

// parseBytes parses a byte count with an optional K, M, G or T suffix
// (powers of two) between lo and hi; example and bounds word the errors.
func parseBytes(s string, lo, hi int64, example, bounds string) (int64, error) {
	mult := int64(1)
	num := strings.TrimSpace(s)
	if n := len(num); n > 0 {
		if i := strings.IndexByte("kmgt", num[n-1]|0x20); i >= 0 {
			mult, num = 1<<(10*(i+1)), num[:n-1]
		}
	}
	v, err := strconv.ParseInt(num, 10, 64)
	if err != nil || v < 0 {
		return 0, fmt.Errorf("not a size such as %s", example)
	}
	if v > hi/mult || v*mult < lo {
		return 0, fmt.Errorf("must be between %s", bounds)
	}
	return v * mult, nil
}

// where names port on each of the stack's addresses, as a user would
// type them: "198.18.0.2:7 [fd00:7:5eed::2]:7".
func (o options) where(port int) string {
	var out []string
	for _, a := range []netip.Addr{o.addr, o.addr6} {
		if a.IsValid() {
			out = append(out, netip.AddrPortFrom(a, uint16(port)).String())
		}
	}
	return strings.Join(out, " ")
}

// urls is the built-in web server's address on each family.
func (o options) urls() string {
	var out []string
	for _, a := range []netip.Addr{o.addr, o.addr6} {
		if a.IsValid() {
			out = append(out, "http://"+netip.AddrPortFrom(a, 80).String()+"/")
		}
	}
	return strings.Join(out, " ")
}
