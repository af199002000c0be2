package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/retransmit"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
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

	shards [numShards]shard
	twq    twQueue

	lmu       sync.Mutex
	listeners map[uint16]*Listener

	ipID    atomic.Uint32
	ipStats ip.Stats
	stats   counters

	closeOnce sync.Once
	closing   atomic.Bool
	done      chan struct{}
}

// counters are the stack's own statistics, all atomic.
type counters struct {
	packetsIn, packetsOut     atomic.Uint64
	segmentsIn, segmentsOut   atomic.Uint64
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
	halfOpenEvicted           atomic.Uint64
	synQueueFull              atomic.Uint64
	// The tcp core's per-connection counters summed over the connections
	// already gone (retire in snapshot.go); Stats adds the live ones.
	retransmits, rtoTimeouts atomic.Uint64
	recoveries, tlProbes     atomic.Uint64
	outOfWindow              atomic.Uint64
	retired                  atomic.Uint64 // connections retired so far
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
		dev:       dev,
		cfg:       cfg,
		addr:      cfg.Addr.As4(),
		log:       cfg.Logger,
		clock:     cfg.Clock,
		isn:       tcp.NewISNGenerator(),
		cookies:   tcp.NewSynCookies(),
		mtu:       mtu,
		listeners: make(map[uint16]*Listener),
		done:      make(chan struct{}),
	}
	s.tcpCfg = cfg.TCP
	if s.tcpCfg.MSS <= 0 || s.tcpCfg.MSS > mtu-ip.HeaderLen-tcp.HeaderLen {
		s.tcpCfg.MSS = mtu - ip.HeaderLen - tcp.HeaderLen
	}
	for i := range s.shards {
		s.shards[i].conns = make(map[tuple]*Conn)
		s.shards[i].tw = make(map[tuple]tcp.TimeWaitEntry)
	}
	s.twq.timer = s.clock.AfterFunc(time.Hour, s.twExpire)
	s.twq.timer.Stop()
	go s.readLoop()
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
// waits for the reader to stop.
func (s *Stack) Close() error {
	var err error
	s.closeOnce.Do(func() {
		s.closing.Store(true)
		s.lmu.Lock()
		ls := make([]*Listener, 0, len(s.listeners))
		for _, l := range s.listeners {
			ls = append(ls, l)
		}
		s.lmu.Unlock()
		for _, l := range ls {
			l.Close()
		}
		for _, c := range s.allConns() {
			c.abort()
		}
		s.twq.timer.Stop()
		err = s.dev.Close()
		<-s.done
	})
	return err
}

// readLoop is the inbound path: one goroutine, one reused buffer.
func (s *Stack) readLoop() {
	defer close(s.done)
	buf := make([]byte, max(s.mtu, 65535))
	out := make([]byte, s.mtu)
	var seg tcp.Segment
	for {
		n, err := s.dev.Read(buf)
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			s.log.Error("device read failed", "err", err)
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.stats.packetsIn.Add(1)
		s.deliver(buf[:n], &seg, out)
	}
}

// deliver processes one inbound packet.
func (s *Stack) deliver(b []byte, seg *tcp.Segment, out []byte) {
	pkt, reason := ip.Parse(b, s.addr)
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
		s.stats.segmentsIn.Add(1)
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
	c.mu.Lock()
	if c.tcb != nil {
		c.tcb.HandleICMP(kind, tcp.Seq(e.Seq), int(e.NextHopMTU), errno, s.now())
		c.after()
	}
	c.mu.Unlock()
}

// demux finds the owner of a segment: a connection, else a listener, else
// no one (RFC 9293 §3.10.7.1: reset).
func (s *Stack) demux(pkt *ip.Packet, seg *tcp.Segment, out []byte) {
	key := tuple{raddr: pkt.Src, rport: seg.SrcPort, lport: seg.DstPort}
	if c := s.lookup(key); c != nil {
		c.handle(seg)
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

// writeSegment builds the IPv4 packet for seg in buf and writes it.
func (s *Stack) writeSegment(buf []byte, dst [4]byte, seg *tcp.Segment) {
	tcpLen := seg.HeaderLen() + len(seg.Payload)
	n := ip.BuildHeader(buf, s.addr, dst, uint8(header.TCPProtocolNumber), s.nextID(), tcpLen)
	t := buf[n : n+tcpLen]
	seg.Marshal(t)
	header.TCP(t).SetChecksum(ip.TCPChecksum(s.addr, dst, t))
	s.stats.segmentsOut.Add(1)
	s.write(buf[:n+tcpLen])
}

func (s *Stack) write(p []byte) {
	if _, err := s.dev.Write(p); err != nil {
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

// insert adds c under key unless the key is taken.
func (s *Stack) insert(key tuple, c *Conn) bool {
	sh := &s.shards[key.shard()]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	if _, ok := sh.conns[key]; ok {
		return false
	}
	if _, ok := sh.tw[key]; ok {
		return false // a TIME-WAIT tuple is reused only by a safe SYN
	}
	sh.conns[key] = c
	return true
}

// remove deletes c from the table.
func (s *Stack) remove(c *Conn) {
	sh := &s.shards[c.key.shard()]
	sh.mu.Lock()
	if sh.conns[c.key] == c {
		delete(sh.conns, c.key)
	}
	sh.mu.Unlock()
}

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
// and inserts c under it.
func (s *Stack) dialPort(raddr [4]byte, rport uint16, c *Conn) (tuple, bool) {
	span := ephemeralLast - ephemeralFirst + 1
	start := rand.IntN(span)
	for i := 0; i < span; i++ {
		p := uint16(ephemeralFirst + (start+i)%span)
		s.lmu.Lock()
		_, listening := s.listeners[p]
		s.lmu.Unlock()
		if listening {
			continue
		}
		key := tuple{raddr: raddr, rport: rport, lport: p}
		if s.insert(key, c) {
			return key, true
		}
	}
	return tuple{}, false
}
