package stack

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/retransmit"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
	"github.com/tund-project/tund/window"
)

// Config configures a Stack.
type Config struct {
	// Addr is the stack's own IPv4 address. Required.
	Addr netip.Addr
	// TCP holds the per-connection knobs; zero fields take tcp.DefaultConfig
	// values, and the MSS defaults to the device MTU minus 40.
	TCP tcp.Config
	// Backlog is the listen backlog used when Listen is not given one:
	// the most connections a listener holds in its accept queue, and the
	// most in its SYN queue (default DefaultBacklog).
	Backlog int
	// Logger receives the stack's logs (default slog.Default()).
	Logger *slog.Logger
	// Trace, if set, is called on every state transition of every
	// connection and listener (tund -trace prints TraceEvent.String). It
	// runs on the stack's goroutines with the connection locked: it must
	// be quick and must not call back into the stack.
	Trace func(TraceEvent)
	// Clock supplies the time and timers of the protocol (default: the
	// wall clock). Tests use a ManualClock.
	Clock Clock
	// Sampler, if its Func is set, receives periodic per-connection
	// samples of cwnd, RTT and in-flight data.
	Sampler Sampler
	// NoSynCookies turns SYN cookies off. By default a listener whose
	// SYN queue is full answers further SYNs with RFC 4987 SYN cookies,
	// as Linux does with tcp_syncookies=1; with them off it recycles the
	// oldest stale half-open connection or drops the SYN (see
	// docs/ARCHITECTURE.md).
	NoSynCookies bool
	// MaxTimeWait caps the TIME-WAIT table (Linux tcp_max_tw_buckets;
	// default 262144). Past it a connection closes without TIME-WAIT and
	// Stats.TimeWaitOverflow counts it.
	MaxTimeWait int
	// MinPathMTU is the floor of path MTU discovery: an ICMP
	// "fragmentation needed" reporting less is taken as this much
	// (default 552, Linux's min_pmtu), so a forged report of the IPv4
	// minimum, 68, cannot shrink segments to 28 bytes.
	MinPathMTU int
	// MaxConnections caps the connections in the table (TIME-WAIT entries
	// apart; default 65536). Past it a dial fails with ENOBUFS and a SYN
	// is dropped (drop reason conn_limit); the client retries.
	MaxConnections int
	// MaxOrphans caps the connections the application has closed that
	// still wait for the peer (Linux tcp_max_orphans; default 16384).
	// Past it a closing connection is reset at once.
	MaxOrphans int
	// MemLimit is the budget in bytes for every connection's send and
	// receive rings together (default 1 GiB), with Linux tcp_mem's
	// pressure behaviour (window.Memory): from three quarters of it,
	// buffers stop growing and windows shrink to what is allocated; at
	// it, growth is refused and what does not fit is dropped for the
	// peer to resend.
	MemLimit int64
	// Seed, if not zero, fixes the keys of the ISN generator and the SYN
	// cookies, so the same run gives the same sequence numbers (tund
	// drill uses it). On a network the keys must be secret and random:
	// leave it zero.
	Seed uint64
}

// DefaultBacklog is the listen backlog when Config.Backlog is zero. The
// accept queue has to absorb the time the application's Accept loop is
// not running: on a busy two-core machine a Go program's acceptor was
// measured stalling long enough for 250 handshakes to complete (a garbage
// collection holding one processor, the kernel scheduler the other), and
// 128, the classic SOMAXCONN, dropped SYNs on a burst of connections.
// Linux has used 4096 since 5.4 (and Go's net.Listen asks for it); 1024
// leaves four times the measured need while a SYN flood with cookies off
// pins at most 1024 half-open connections (about 6.5 KiB each) per
// listener.
const DefaultBacklog = 1024

// Ephemeral port range, as Linux's default ip_local_port_range.
const (
	ephemeralFirst = 32768
	ephemeralLast  = 60999
)

const numShards = 16

// tuple identifies a connection from our side: the local address is
// always the stack's own.
type tuple struct {
	raddr        [4]byte
	rport, lport uint16
}

func (t tuple) shard() int {
	return int((uint32(t.rport)*31 + uint32(t.lport) + uint32(t.raddr[3])) % numShards)
}

type shard struct {
	mu    sync.RWMutex
	conns map[tuple]*Conn
	tw    map[tuple]tcp.TimeWaitEntry // the TIME-WAIT table (timewait.go)
}

// Stack is a userspace TCP/IPv4 stack running on one device.
type Stack struct {
	dev     tun.Device
	cfg     Config
	tcpCfg  tcp.Config
	addr    [4]byte
	log     *slog.Logger
	clock   Clock
	isn     *tcp.ISNGenerator
	cookies *tcp.SynCookies
	mtu     int
	// off is the device, when it carries TCP super-segments and leaves
	// checksums to the kernel (tun.Offloader with offloads on at New).
	off        tun.Offloader
	offRefused atomic.Bool // the device stopped offering offloads; logged
	// queues are the device's queues (one, unless it is a
	// tun.Multiqueue): each has a reader of its own, and each flow is
	// written to one of them, chosen by its 4-tuple (queueFor), so the
	// device hands the flow's packets to that queue's reader.
	queues []devQueue
	// portSeed and portNext choose ephemeral ports (dialPort, RFC 6056
	// Algorithm 3): the secret, and the counter every attempt advances.
	portSeed   maphash.Seed
	portNext   atomic.Uint32
	readers    atomic.Int32 // readers still running; the last closes done
	readFailed atomic.Bool  // a reader met the device's end: it alone logs and stops
	// pkts are the buffers packets are built in: the headers, and with no
	// offloads the whole packet (sync.Pool, so a send borrows one for
	// the time of a write, and an idle connection holds none).
	pkts sync.Pool

	shards    [numShards]shard
	twq       twQueue
	twEntries atomic.Int64 // entries in the TIME-WAIT table
	nConns    atomic.Int64 // entries in the connection table
	orphans   atomic.Int64 // connections closed by the application, still finishing
	mem       *window.Memory
	limits    limitLog

	lmu       sync.Mutex
	listeners map[uint16]*Listener

	ctlMu   sync.Mutex
	ctlCmds map[string]ControlCommand // HandleControl's commands

	ipID    atomic.Uint32
	ipStats ip.Stats
	stats   counters
	// The tcp core's per-connection counters summed over the connections
	// already gone (retire in snapshot.go); Stats adds the live ones.
	retiredMu  sync.Mutex
	retiredSum coreCounters
	retiredGen uint64 // connections retired so far

	// Stopping. closing and draining are checked again under the lock
	// stop's (and Shutdown's) snapshot takes, by insert and by Listen, so
	// a dial, listen or passive open racing with them is either in the
	// snapshot or refused.
	closing  atomic.Bool // stop has begun: refuse everything
	draining atomic.Bool // Shutdown has begun: refuse new connections
	stopOnce sync.Once
	stopErr  atomic.Pointer[stopError] // why the stack stopped; nil while running
	stopped  chan struct{}             // closed once stop has finished
	devErr   error                     // dev.Close's error, set by stop
	connGone chan struct{}             // cap-1: a connection left the table (Shutdown waits on it)
	done     chan struct{}             // closed when the reader has returned

	// testHook, set only by tests, is called at the named points where
	// the stack can race with Close ("dial", "listen", "admit",
	// "aborted"), so a test can run Close exactly there.
	testHook atomic.Pointer[func(point string)]
}

// at calls the test hook, if any, at a named point.
func (s *Stack) at(point string) {
	if h := s.testHook.Load(); h != nil {
		(*h)(point)
	}
}

// counters are the stack's own statistics, all atomic.
type counters struct {
	packetsIn, packetsOut     atomic.Uint64
	segmentsIn, segmentsOut   atomic.Uint64
	superIn, superOut         atomic.Uint64 // super-segments, with offloads
	resetsSent                atomic.Uint64
	echoReplies               atomic.Uint64
	badTCPOptions             atomic.Uint64
	noListener                atomic.Uint64
	backlogFull               atomic.Uint64
	writeErrors               atomic.Uint64
	activeOpens, passiveOpens atomic.Uint64
	timeWaitExpired           atomic.Uint64
	icmpErrors                atomic.Uint64
	timeWaitReused            atomic.Uint64
	synCookiesSent            atomic.Uint64
	synCookiesOK              atomic.Uint64
	synCookiesBad             atomic.Uint64
	timeWaitOverflow          atomic.Uint64
	backlogDrops              atomic.Uint64 // segments a busy connection's backlog had no room for
	backlogQueued             atomic.Uint64 // segments and ICMP errors queued for a busy connection
	connLimit                 atomic.Uint64 // dials refused and SYNs dropped at MaxConnections
	orphanOverflow            atomic.Uint64 // connections reset at close past MaxOrphans
	acksLimited               atomic.Uint64 // TIME-WAIT ACKs held back (connections count their own)
	halfOpenEvicted           atomic.Uint64
	synQueueFull              atomic.Uint64
}

// New starts a stack on dev. The stack owns dev from now on and closes it
// in Close.
func New(dev tun.Device, cfg Config) (*Stack, error) {
	if !cfg.Addr.Is4() {
		return nil, fmt.Errorf("stack: address %q is not an IPv4 address", cfg.Addr)
	}
	if cfg.Backlog < 0 {
		return nil, fmt.Errorf("stack: backlog %d is negative", cfg.Backlog)
	}
	if cfg.Backlog == 0 {
		cfg.Backlog = DefaultBacklog
	}
	if err := cfg.setLimitDefaults(); err != nil {
		return nil, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Clock == nil {
		cfg.Clock = wallClock{start: time.Now()}
	}
	if _, err := retransmit.New(cfg.TCP.CongestionControl, 1460); err != nil {
		return nil, fmt.Errorf("stack: %v", err)
	}
	mtu := dev.MTU()
	if mtu < 68 {
		return nil, fmt.Errorf("stack: device MTU %d is below the IPv4 minimum 68", mtu)
	}
	s := &Stack{
		portSeed:  maphash.MakeSeed(),
		dev:       dev,
		cfg:       cfg,
		addr:      cfg.Addr.As4(),
		log:       cfg.Logger,
		clock:     cfg.Clock,
		isn:       tcp.NewISNGenerator(),
		cookies:   tcp.NewSynCookies(),
		mtu:       mtu,
		listeners: make(map[uint16]*Listener),
		stopped:   make(chan struct{}),
		connGone:  make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.portNext.Store(rand.Uint32()) // RFC 6056 Algorithm 3: next_ephemeral starts at random
	if cfg.Seed != 0 {
		var key [16]byte
		binary.LittleEndian.PutUint64(key[0:], cfg.Seed)
		binary.LittleEndian.PutUint64(key[8:], ^cfg.Seed)
		s.isn, s.cookies = tcp.NewISNGeneratorKey(key), tcp.NewSynCookiesKey(key)
	}
	// The stack uses some knobs itself (MSL, InvalidAckInterval for the
	// TIME-WAIT table), so it takes the defaults the core would.
	s.tcpCfg = cfg.TCP.WithDefaults()
	s.mem = window.NewMemory(cfg.MemLimit)
	s.tcpCfg.Memory = s.mem
	if cfg.TCP.MSS <= 0 || s.tcpCfg.MSS > mtu-ip.HeaderLen-tcp.HeaderLen {
		s.tcpCfg.MSS = mtu - ip.HeaderLen - tcp.HeaderLen
	}
	if off, ok := dev.(tun.Offloader); ok && off.MaxOffload() > 0 {
		// Segmentation offload: the core may hand over super-segments as
		// big as the device takes, headers included. A negative GSOMax in
		// the config keeps it off.
		s.off = off
		gso := off.MaxOffload() - ip.HeaderLen - tcp.MaxHeaderLen
		if cfg.TCP.GSOMax != 0 {
			gso = min(gso, cfg.TCP.GSOMax)
		}
		s.tcpCfg.GSOMax = max(gso, 0)
	} else {
		s.tcpCfg.GSOMax = 0
	}
	s.queues = []devQueue{{dev: dev, off: s.off, in: new(paddedCount)}}
	if mq, ok := dev.(tun.Multiqueue); ok && mq.Queues() > 1 {
		s.queues = s.queues[:0]
		for i := range mq.Queues() {
			q := devQueue{dev: mq.Queue(i), in: new(paddedCount)}
			if s.off != nil {
				q.off = mq.Queue(i)
			}
			s.queues = append(s.queues, q)
		}
	}
	pktLen := max(mtu, ip.HeaderLen+tcp.MaxHeaderLen)
	s.pkts.New = func() any { b := make([]byte, pktLen); return &b }
	for i := range s.shards {
		s.shards[i].conns = make(map[tuple]*Conn)
		s.shards[i].tw = make(map[tuple]tcp.TimeWaitEntry)
	}
	s.twq.timer = s.clock.AfterFunc(time.Hour, s.twExpire)
	s.twq.timer.Stop()
	s.readers.Store(int32(len(s.queues)))
	for _, q := range s.queues {
		go s.readLoop(q)
	}
	if cfg.Sampler.Func != nil {
		go s.sampleLoop()
	}
	return s, nil
}

// Addr is the stack's own address.
func (s *Stack) Addr() netip.Addr { return s.cfg.Addr }

// now is the stack's monotonic clock, the time every core call is given.
func (s *Stack) now() time.Duration { return s.clock.Now() }

// Close resets every connection, closes every listener and the device, and
// waits for the reader to stop. Calls that raced with it (a Dial or Listen
// in progress, a SYN being admitted) fail with net.ErrClosed; nothing is
// left running. Close after a device failure just waits for the reader.
func (s *Stack) Close() error {
	s.stop(nil)
	<-s.done
	return s.devErr
}

// Done returns a channel that is closed once the stack has stopped: by
// Close, or because its device failed (Err then says how). A program
// running a stack waits on it together with its signals.
func (s *Stack) Done() <-chan struct{} { return s.stopped }

// Err is nil while the stack runs. Once it has begun to stop it is an
// error matching net.ErrClosed; after a device failure it also wraps the
// device's error (errors.Is(err, syscall.EBADFD) for a TUN device that
// was deleted), and so do the errors every call returns from then on.
func (s *Stack) Err() error {
	if e := s.stopErr.Load(); e != nil {
		return e
	}
	return nil
}

// stopError is why a stack stopped: Close (cause nil) or its device's
// failure. It matches net.ErrClosed either way, so callers that treat
// "closed" as the normal end keep working, and it unwraps to the cause.
type stopError struct{ cause error }

func (e *stopError) Error() string {
	if e.cause == nil {
		return "stack closed"
	}
	return "device failed: " + e.cause.Error()
}

func (e *stopError) Unwrap() error { return e.cause }

func (e *stopError) Is(target error) bool { return target == net.ErrClosed }

// refusing reports whether new connections and listeners are refused.
func (s *Stack) refusing() bool { return s.closing.Load() || s.draining.Load() }

// closedErr is the error for a call refused because the stack is
// stopping or draining: Err once stop has begun, else net.ErrClosed.
func (s *Stack) closedErr() error {
	if err := s.Err(); err != nil {
		return err
	}
	return net.ErrClosed
}

// stop ends the stack once, for Close (cause nil) or a device failure:
// refuse new work, close the listeners, reset every connection, stop the
// TIME-WAIT table and the deadline timers, close the device. It does not
// wait for the reader (a failure stops the stack from the reader itself).
func (s *Stack) stop(cause error) {
	s.stopOnce.Do(func() {
		s.stopErr.Store(&stopError{cause: cause})
		s.closing.Store(true)
		s.closeListeners()
		for _, c := range s.allConns() {
			c.abort()
			c.rdl().stop()
			c.wdl().stop()
		}
		s.at("aborted")
		s.twStop()
		s.devErr = s.dev.Close()
		close(s.stopped)
	})
}

// Shutdown closes the stack's connections gracefully, as a server does
// on SIGTERM: it refuses new connections and listeners, closes every
// listener (resetting connections nobody accepted), sends a FIN on every
// connection after what is queued (CloseWrite: the application may still
// read; a Write fails with EPIPE), and waits until the peers have closed
// too and the table is empty. When ctx ends first it resets the
// connections left and returns an error wrapping ctx.Err(). TIME-WAIT
// entries are not waited for. Close the stack afterwards.
func (s *Stack) Shutdown(ctx context.Context) error {
	s.draining.Store(true)
	s.closeListeners()
	for _, c := range s.allConns() {
		c.finish()
	}
	for s.connCount() > 0 {
		select {
		case <-s.connGone:
		case <-s.stopped:
			return s.Err()
		case <-ctx.Done():
			left := s.allConns()
			for _, c := range left {
				c.abort()
			}
			return fmt.Errorf("stack: shutdown: reset %d connections still open: %w", len(left), ctx.Err())
		}
	}
	return nil
}

// closeListeners closes every listener. The snapshot is taken under
// lmu, where Listen checks closing and draining again.
func (s *Stack) closeListeners() {
	s.lmu.Lock()
	ls := make([]*Listener, 0, len(s.listeners))
	for _, l := range s.listeners {
		ls = append(ls, l)
	}
	s.lmu.Unlock()
	for _, l := range ls {
		l.Close()
	}
}

// devQueue is one queue of the device: read by one reader, written by the
// flows queueFor puts on it. off is the queue as an Offloader when the
// stack uses offloads, else nil.
type devQueue struct {
	dev tun.Device
	off tun.Offloader
	in  *paddedCount // packets its reader read
}

// paddedCount is a counter on a cache line of its own, so readers on
// different cores do not share one.
type paddedCount struct {
	atomic.Uint64
	_ [56]byte
}

// queueFor is the queue the flow with the peer dst and these ports is
// written to: always the same one, so the device steers the flow's
// inbound packets to the same queue, and its reader.
func (s *Stack) queueFor(dst [4]byte, lport, rport uint16) *devQueue {
	if len(s.queues) == 1 {
		return &s.queues[0]
	}
	h := (binary.BigEndian.Uint32(dst[:]) ^ uint32(lport)<<16 ^ uint32(rport)) * 0x9e3779b1
	return &s.queues[(uint64(h)*uint64(len(s.queues)))>>32]
}

// readLoop is the inbound path of one queue: one goroutine, one reused
// buffer. A read error it cannot retry stops the stack (a TUN device
// deleted under us reads EBADFD for ever): blocked calls fail instead of
// hanging. The last reader to return closes done.
func (s *Stack) readLoop(q devQueue) {
	defer func() {
		if s.readers.Add(-1) == 0 {
			close(s.done)
		}
	}()
	buf := make([]byte, max(s.mtu, tun.MaxOffloadSize))
	out := make([]byte, max(s.mtu, ip.HeaderLen+tcp.MaxHeaderLen))
	var seg tcp.Segment
	retries := 0
	for {
		var n int
		var o tun.Offload
		var err error
		if q.off != nil {
			n, o, err = q.off.ReadOffload(buf)
		} else {
			n, err = q.dev.Read(buf)
		}
		if err != nil {
			if s.closing.Load() {
				return
			}
			if temporary(err) && retries < 100 {
				retries++
				time.Sleep(10 * time.Millisecond)
				continue
			}
			if !s.readFailed.CompareAndSwap(false, true) {
				return // another queue's reader saw the end first
			}
			if errors.Is(err, net.ErrClosed) {
				// Closed by its other owner (the far end of a tun.Pipe,
				// say): the link is gone, an end rather than a fault.
				s.log.Info("device closed; stopping the stack", "err", err)
			} else {
				s.log.Error("device failed; stopping the stack", "err", err)
			}
			s.stop(err)
			return
		}
		retries = 0
		s.stats.packetsIn.Add(1)
		q.in.Add(1)
		if o.GSOSize > 0 {
			s.stats.superIn.Add(1)
		}
		s.deliver(buf[:n], o.Trusted(), int(o.GSOSize), &seg, out)
	}
}

// temporary reports whether a device read error may go away by itself
// (a signal, a momentary shortage of memory); anything else is the
// device's end.
func temporary(err error) bool {
	return errors.Is(err, syscall.EINTR) || errors.Is(err, syscall.EAGAIN) ||
		errors.Is(err, syscall.ENOBUFS) || errors.Is(err, syscall.ENOMEM)
}

// deliver processes one inbound packet; trusted means the device vouched
// for its TCP checksum (tun.Offload.Trusted), gso is the size of the
// segments a super-segment was made of (0: an ordinary packet). A super-segment from a
// device with offloads is taken whole, as one segment: the core is
// indifferent to how many segments its payload once was.
func (s *Stack) deliver(b []byte, trusted bool, gso int, seg *tcp.Segment, out []byte) {
	var pkt ip.Packet
	var reason ip.DropReason
	if trusted {
		pkt, reason = ip.ParseTrusted(b, s.addr)
	} else {
		pkt, reason = ip.Parse(b, s.addr)
	}
	if reason != ip.DropNone {
		s.ipStats.Drop(reason)
		return
	}
	switch pkt.Protocol {
	case uint8(header.ICMPv4ProtocolNumber):
		if n := ip.EchoReply(out, &pkt, s.nextID()); n > 0 {
			s.stats.echoReplies.Add(1)
			s.write(out[:n])
		} else if e, ok := ip.ParseICMPError(&pkt, s.addr); ok {
			s.icmpError(&e)
		} else {
			s.ipStats.Drop(ip.DropICMP)
		}
	case uint8(header.TCPProtocolNumber):
		if err := tcp.Parse(pkt.Payload, seg); err != nil {
			s.stats.badTCPOptions.Add(1)
			return
		}
		s.stats.segmentsIn.Add(uint64(pieces(len(seg.Payload), gso)))
		s.demux(&pkt, seg, out)
	}
}

// icmpError hands an ICMP error about one of our segments to its
// connection (RFC 1122 §4.2.3.9), mapped to the errno Linux reports.
// Source quench is ignored (RFC 6633).
func (s *Stack) icmpError(e *ip.ICMPError) {
	s.stats.icmpErrors.Add(1)
	c := s.lookup(tuple{raddr: e.Peer, rport: e.DstPort, lport: e.SrcPort})
	if c == nil || e.Type == ip.ICMPSourceQuench {
		return
	}
	kind, errno := tcp.ICMPSoft, syscall.EHOSTUNREACH
	switch {
	case e.Type == ip.ICMPDestUnreachable && e.Code == ip.ICMPCodePortUnreach:
		kind, errno = tcp.ICMPHard, syscall.ECONNREFUSED
	case e.Type == ip.ICMPDestUnreachable && e.Code == ip.ICMPCodeProtoUnreach:
		kind, errno = tcp.ICMPHard, syscall.ENOPROTOOPT
	case e.Type == ip.ICMPDestUnreachable && e.Code == ip.ICMPCodeFragNeeded:
		kind = tcp.ICMPFragNeeded
	case e.Type == ip.ICMPDestUnreachable && e.Code == 0:
		errno = syscall.ENETUNREACH
	case e.Type == ip.ICMPParamProblem:
		errno = syscall.EPROTO
	}
	mss := 0
	if mtu := int(e.NextHopMTU); mtu != 0 && kind == tcp.ICMPFragNeeded {
		mss = min(max(mtu, s.cfg.MinPathMTU), s.mtu) - ip.HeaderLen - tcp.HeaderLen
	}
	c.handleICMP(icmpNote{kind: kind, seq: tcp.Seq(e.Seq), mss: uint32(mss), errno: errno})
}

// demux finds the owner of a segment: a connection, else a listener, else
// no one (RFC 9293 §3.10.7.1: reset).
func (s *Stack) demux(pkt *ip.Packet, seg *tcp.Segment, out []byte) {
	key := tuple{raddr: pkt.Src, rport: seg.SrcPort, lport: seg.DstPort}
	if c := s.lookup(key); c != nil {
		c.handle(seg, pkt.Payload)
		return
	}
	handled, reopen, old := s.handleTimeWait(key, seg, out)
	if handled && !reopen {
		return
	}
	s.lmu.Lock()
	l := s.listeners[seg.DstPort]
	s.lmu.Unlock()
	if l != nil {
		switch l.classify(seg) {
		case tcp.ListenAccept:
			l.onSyn(key, seg, reopen, &old, out)
			return
		case tcp.ListenDrop:
			return
		case tcp.ListenReset:
			if l.onCookieAck(key, seg) {
				return
			}
		}
	} else {
		s.stats.noListener.Add(1)
	}
	s.sendReset(pkt.Src, seg, out)
}

// sendReset answers seg with the RFC 9293 §3.10.7.1 reset.
func (s *Stack) sendReset(dst [4]byte, in *tcp.Segment, out []byte) {
	rst, ok := tcp.ResetFor(in)
	if !ok {
		return
	}
	s.stats.resetsSent.Add(1)
	s.writeSegment(out, dst, &rst)
}

// writeSegment builds the IPv4 packet for seg in buf and writes it. buf
// holds the headers, and, on a device without offloads, the whole packet
// (an MTU). On a device with offloads only the headers are built: the
// payload goes from the send ring to the device as it is (WriteOffload's
// second slice), and the TCP checksum is left to the device, which for a
// super-segment computes one per piece.
func (s *Stack) writeSegment(buf []byte, dst [4]byte, seg *tcp.Segment) {
	hl := seg.HeaderLen()
	tcpLen := hl + len(seg.Payload)
	n := ip.BuildHeader(buf, s.addr, dst, uint8(header.TCPProtocolNumber), s.nextID(), tcpLen)
	// Segments count as on the wire, a super-segment as its pieces, as
	// Linux counts OutSegs.
	s.stats.segmentsOut.Add(uint64(pieces(len(seg.Payload), seg.GSOSize)))
	q := s.queueFor(dst, seg.SrcPort, seg.DstPort)
	if q.off != nil {
		t := buf[n : n+hl]
		seg.MarshalHeader(t)
		header.TCP(t).SetChecksum(ip.PseudoHeaderChecksum(s.addr, dst, uint8(header.TCPProtocolNumber), tcpLen))
		o := tun.Offload{CsumPartial: true}
		if seg.GSOSize > 0 {
			o.GSOSize = uint16(seg.GSOSize)
			s.stats.superOut.Add(1)
		}
		s.wrote(q.off.WriteOffload(buf[:n+hl], seg.Payload, o))
		if o.GSOSize > 0 && q.off.MaxOffload() == 0 && !s.offRefused.Swap(true) {
			var why error
			if e, ok := q.off.(interface{ OffloadErr() error }); ok {
				why = e.OffloadErr()
			}
			s.log.Warn("the device refused a TCP super-segment; segmentation offload is off for new connections, the rest are cut in software", "err", why)
		}
		return
	}
	t := buf[n : n+tcpLen]
	seg.Marshal(t)
	header.TCP(t).SetChecksum(ip.TCPChecksum(s.addr, dst, t))
	_, err := q.dev.Write(buf[:n+tcpLen])
	s.wrote(err)
}

// pieces is how many segments a payload of n bytes is on the wire when
// cut into segments of gso bytes (0: not cut).
func pieces(n, gso int) int {
	if gso <= 0 || n <= gso {
		return 1
	}
	return (n + gso - 1) / gso
}

func (s *Stack) write(p []byte) {
	_, err := s.dev.Write(p)
	s.wrote(err)
}

// wrote counts the outcome of a device write.
func (s *Stack) wrote(err error) {
	if err != nil {
		s.stats.writeErrors.Add(1)
		if !s.closing.Load() {
			s.log.Debug("device write failed", "err", err)
		}
		return
	}
	s.stats.packetsOut.Add(1)
}

func (s *Stack) nextID() uint16 { return uint16(s.ipID.Add(1)) }

// lookup finds the connection for key.
func (s *Stack) lookup(key tuple) *Conn {
	sh := &s.shards[key.shard()]
	sh.mu.RLock()
	c := sh.conns[key]
	sh.mu.RUnlock()
	return c
}

// errTaken says the four-tuple is in use.
var errTaken = errors.New("tuple in use")

// insert adds c under key: errTaken if the key is in use, closedErr if
// the stack is stopping or draining. The check is made under the shard
// lock that stop's and Shutdown's snapshots take, so a connection racing
// with them is either in the snapshot or refused here.
func (s *Stack) insert(key tuple, c *Conn) error {
	sh := &s.shards[key.shard()]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if s.refusing() {
		return s.closedErr()
	}
	if _, ok := sh.conns[key]; ok {
		return errTaken
	}
	if _, ok := sh.tw[key]; ok {
		return errTaken // a TIME-WAIT tuple is reused only by a safe SYN
	}
	sh.conns[key] = c
	s.nConns.Add(1)
	return nil
}

// connRoom reports whether another connection may be made, counting
// (and logging once) a refusal at MaxConnections.
func (s *Stack) connRoom() bool {
	if s.nConns.Load() < int64(s.cfg.MaxConnections) {
		return true
	}
	s.stats.connLimit.Add(1)
	s.limitHit(limitConns, "max", s.cfg.MaxConnections)
	return false
}

// remove deletes c from the table.
func (s *Stack) remove(c *Conn) {
	sh := &s.shards[c.key.shard()]
	sh.mu.Lock()
	if sh.conns[c.key] == c {
		delete(sh.conns, c.key)
		s.nConns.Add(-1)
	}
	sh.mu.Unlock()
	notify(s.connGone)
}

// connCount is the number of connections in the table (TIME-WAIT entries
// not included).
func (s *Stack) connCount() int { return int(s.nConns.Load()) }

func (s *Stack) allConns() []*Conn {
	var all []*Conn
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for _, c := range sh.conns {
			all = append(all, c)
		}
		sh.mu.RUnlock()
	}
	return all
}

// dialPort picks a free ephemeral port for a connection to raddr:rport
// and inserts c under it. It fails with EADDRNOTAVAIL when every port is
// taken, or with closedErr when the stack is stopping.
//
// The choice is RFC 6056 §3.3.3's Algorithm 3, "simple hash-based port
// selection": an offset hashed from the destination with a secret,
// plus a counter that every attempt advances. Ports stay unpredictable to
// anyone who does not know the secret (RFC 6056 §2), yet successive
// connections to one destination take successive ports, so a port is
// not reused for that destination until the whole range has gone round.
// Picked at random each time (Algorithm 1), one of twenty short
// connections in a row now and then reused an earlier one's port and
// met its own predecessor's TIME-WAIT at the server.
func (s *Stack) dialPort(raddr [4]byte, rport uint16, c *Conn) (tuple, error) {
	span := uint32(ephemeralLast - ephemeralFirst + 1)
	offset := uint32(maphash.Comparable(s.portSeed, struct {
		addr [4]byte
		port uint16
	}{raddr, rport}))
	for i := uint32(0); i < span; i++ {
		next := s.portNext.Add(1)
		p := uint16(ephemeralFirst + (offset+next)%span)
		s.lmu.Lock()
		_, listening := s.listeners[p]
		s.lmu.Unlock()
		if listening {
			continue
		}
		key := tuple{raddr: raddr, rport: rport, lport: p}
		switch err := s.insert(key, c); err {
		case nil:
			return key, nil
		case errTaken:
		default:
			return tuple{}, err
		}
	}
	return tuple{}, os.NewSyscallError("connect", syscall.EADDRNOTAVAIL)
}
