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

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/retransmit"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
	"github.com/tund-project/tund/window"
)

// Config configures a Stack.
type Config struct {
	// Addr is the stack's own IPv4 address, and Addr6 its IPv6 address.
	// At least one is required; a stack without one speaks only the
	// other family, and drops the packets of the missing one (counted as
	// drop reason "version").
	Addr  netip.Addr
	Addr6 netip.Addr
	// TCP holds the per-connection knobs; zero fields take tcp.DefaultConfig
	// values, and the MSS defaults to what the device MTU leaves after the
	// network and TCP headers: MTU-40 over IPv4, MTU-60 over IPv6. A
	// larger MSS is cut to that, per family.
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
	// minimum, 68, cannot shrink segments to 28 bytes. Over IPv6 the
	// floor is at least 1280, the IPv6 minimum MTU (RFC 8201 §4: a node
	// MUST NOT reduce its estimate below it).
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
// the stack's own in the remote address's family. It is made from a
// netip.Addr (keyOf) and gives one back (addr), but holds the address as
// its 16 bytes, an IPv4 address v4-mapped: a netip.Addr carries a
// pointer (its zone), which would make the garbage collector scan every
// connection and TIME-WAIT table, and a 16-byte array keeps a TIME-WAIT
// entry small (TestTimeWaitTableMemory).
type tuple struct {
	raddr        [16]byte
	rport, lport uint16
}

// keyOf is the tuple of a connection with the peer raddr:rport on our
// port lport.
func keyOf(raddr netip.Addr, rport, lport uint16) tuple {
	return tuple{raddr: raddr.As16(), rport: rport, lport: lport}
}

// addr is the remote address, unmapped: an IPv4 address for an IPv4
// connection.
func (t tuple) addr() netip.Addr { return netip.AddrFrom16(t.raddr).Unmap() }

func (t tuple) shard() int {
	return int((uint32(t.rport)*31 + uint32(t.lport) + uint32(t.raddr[15])) % numShards)
}

// family is the stack's side of one IP version: its network layer and
// the TCP knobs that depend on the version's header size.
type family struct {
	net ip.Network
	// tcp is the stack's TCP configuration with this family's MSS (what
	// the device MTU leaves after the network and TCP headers) and
	// super-segment size: the core is told segment sizes, never the MTU.
	tcp tcp.Config
	// minPMTU is the floor of path MTU discovery: MinPathMTU, and for
	// IPv6 at least 1280.
	minPMTU int
}

// lkey is a listener's place in the listener table: its port and family.
// A listener on both families has two.
type lkey struct {
	port uint16
	v6   bool
}

type shard struct {
	mu    sync.RWMutex
	conns map[tuple]*Conn
	tw    map[tuple]tcp.TimeWaitEntry // the TIME-WAIT table (timewait.go)
}

// Stack is a userspace TCP/IP stack, IPv4 and IPv6, running on one device.
type Stack struct {
	dev    tun.Device
	cfg    Config
	tcpCfg tcp.Config
	// v4 and v6 are the families the stack speaks, nil for one it has no
	// address in.
	v4, v6  *family
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
	flowSeed   maphash.Seed // IPv6 flow labels (flowLabel, RFC 6437)
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
	listeners map[lkey]*Listener

	ctlMu   sync.Mutex
	ctlCmds map[string]ControlCommand // HandleControl's commands

	ipStats   ip.Stats
	stats     counters
	icmpLimit errorBucket // the rate of the ICMP errors the stack sends
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
	icmpErrorsSent            atomic.Uint64 // ICMPv6 Parameter Problems sent
	icmpErrorsLimited         atomic.Uint64 // ... held back by the rate limit
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
	if cfg.Addr.IsValid() && !cfg.Addr.Is4() {
		return nil, fmt.Errorf("stack: address %q is not an IPv4 address", cfg.Addr)
	}
	if cfg.Addr6.IsValid() && (!cfg.Addr6.Is6() || cfg.Addr6.Is4In6() || cfg.Addr6.Zone() != "") {
		return nil, fmt.Errorf("stack: IPv6 address %q is not a plain IPv6 address", cfg.Addr6)
	}
	if !cfg.Addr.IsValid() && !cfg.Addr6.IsValid() {
		return nil, errors.New("stack: no address: an IPv4 address, an IPv6 address or both are required")
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
	if mtu < ip.IPv4MinMTU {
		return nil, fmt.Errorf("stack: device MTU %d is below the IPv4 minimum 68", mtu)
	}
	if cfg.Addr6.IsValid() && mtu < ip.IPv6MinMTU {
		return nil, fmt.Errorf("stack: device MTU %d is below the IPv6 minimum 1280 (RFC 8200 §5)", mtu)
	}
	s := &Stack{
		portSeed:  maphash.MakeSeed(),
		flowSeed:  maphash.MakeSeed(),
		dev:       dev,
		cfg:       cfg,
		log:       cfg.Logger,
		clock:     cfg.Clock,
		isn:       tcp.NewISNGenerator(),
		cookies:   tcp.NewSynCookies(),
		mtu:       mtu,
		listeners: make(map[lkey]*Listener),
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
	if off, ok := dev.(tun.Offloader); ok && off.MaxOffload() > 0 {
		s.off = off
	}
	if cfg.Addr.IsValid() {
		s.v4 = s.newFamily(ip.NewIPv4(cfg.Addr), mtu)
	}
	if cfg.Addr6.IsValid() {
		s.v6 = s.newFamily(ip.NewIPv6(cfg.Addr6), mtu)
	}
	// The stack's own copy keeps the larger family's MSS (IPv4's when it
	// has one): what a cookie or a listener's defaults start from.
	if s.v4 != nil {
		s.tcpCfg = s.v4.tcp
	} else {
		s.tcpCfg = s.v6.tcp
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
	pktLen := max(mtu, ip.IPv6HeaderLen+tcp.MaxHeaderLen)
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

// newFamily sets up the family of the network layer n on a device of
// MTU mtu: the segment sizes its header leaves.
func (s *Stack) newFamily(n ip.Network, mtu int) *family {
	f := &family{net: n, tcp: s.tcpCfg, minPMTU: max(s.cfg.MinPathMTU, n.MinMTU())}
	most := mtu - n.HeaderLen() - tcp.HeaderLen
	if s.cfg.TCP.MSS <= 0 || f.tcp.MSS > most {
		f.tcp.MSS = most
	}
	if s.off != nil {
		// Segmentation offload: the core may hand over super-segments as
		// big as the device takes, headers included. A negative GSOMax in
		// the config keeps it off.
		gso := s.off.MaxOffload() - n.HeaderLen() - tcp.MaxHeaderLen
		if s.cfg.TCP.GSOMax != 0 {
			gso = min(gso, s.cfg.TCP.GSOMax)
		}
		f.tcp.GSOMax = max(gso, 0)
	} else {
		f.tcp.GSOMax = 0
	}
	return f
}

// familyOf is the family of the address a, nil if the stack has no
// address in it.
func (s *Stack) familyOf(a netip.Addr) *family {
	if a.Is4() {
		return s.v4
	}
	return s.v6
}

// Addr is the stack's own IPv4 address (the zero Addr if it has none).
func (s *Stack) Addr() netip.Addr { return s.cfg.Addr }

// Addr6 is the stack's own IPv6 address (the zero Addr if it has none).
func (s *Stack) Addr6() netip.Addr { return s.cfg.Addr6 }

// flowLabel is the IPv6 flow label of the connection key (RFC 6437 §3):
// a keyed hash of its addresses and ports, so it is the same for every
// packet of the flow, differs between flows, and cannot be predicted by
// anyone who does not know the secret (RFC 6437 §6). Never zero, which
// means "no flow label".
func (s *Stack) flowLabel(key tuple) uint32 {
	if key.addr().Is4() {
		return 0
	}
	h := uint32(maphash.Comparable(s.flowSeed, key)) & 0xfffff
	if h == 0 {
		h = 1
	}
	return h
}

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
	for k, l := range s.listeners {
		if l.keys[0] == k { // a listener of both families is there twice
			ls = append(ls, l)
		}
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
func (s *Stack) queueFor(key tuple, lport, rport uint16) *devQueue {
	if len(s.queues) == 1 {
		return &s.queues[0]
	}
	a := &key.raddr
	h := (binary.BigEndian.Uint32(a[12:]) ^ binary.BigEndian.Uint32(a[8:]) ^ uint32(lport)<<16 ^ uint32(rport)) * 0x9e3779b1
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
	out := make([]byte, max(s.mtu, ip.IPv6HeaderLen+tcp.MaxHeaderLen))
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
	var f *family
	switch ip.Version(b) {
	case 4:
		f = s.v4
	case 6:
		f = s.v6
	}
	if f == nil {
		if len(b) < ip.IPv4HeaderLen {
			s.ipStats.Drop(ip.DropShort)
		} else {
			s.ipStats.Drop(ip.DropVersion)
		}
		return
	}
	pkt, reason := f.net.Parse(b, trusted)
	if reason != ip.DropNone {
		s.ipStats.Drop(reason)
		if f == s.v6 && (reason == ip.DropExtension || reason == ip.DropProtocol) {
			s.paramProblem(f, b, out)
		}
		return
	}
	if pkt.Protocol != ip.ProtoTCP {
		// ICMP or ICMPv6: what Parse lets through besides TCP. The
		// interface call makes its argument escape: a copy made here
		// keeps the TCP path's packet on the stack (no allocation per
		// segment).
		m := pkt
		n, e, isErr := f.net.ICMP(&m, out)
		switch {
		case n > 0:
			// An echo reply, or (IPv6) a neighbour advertisement.
			if t := m.Payload[0]; t == ip.ICMPv4Echo && m.Version == 4 || t == ip.ICMPv6EchoRequest && m.Version == 6 {
				s.stats.echoReplies.Add(1)
			}
			s.write(out[:n])
		case isErr:
			s.icmpError(f, &e)
		default:
			s.ipStats.Drop(ip.DropICMP)
		}
		return
	}
	// The network layer checked the checksum (its pseudo-header); the
	// TCP header's structure is checked here, once, by tcp.Parse.
	if err := tcp.Parse(pkt.Payload, seg); err != nil {
		if errors.Is(err, tcp.ErrShortSegment) {
			s.ipStats.Drop(ip.DropTCPShort)
		} else {
			s.stats.badTCPOptions.Add(1)
		}
		return
	}
	s.stats.segmentsIn.Add(uint64(pieces(len(seg.Payload), gso)))
	s.demux(&pkt, seg, out)
}

// paramProblem tells the source of b, an IPv6 packet dropped for its
// extension headers or next header, what was wrong with it when RFC 8200
// §4 asks for that (an ICMPv6 Parameter Problem, ip.ParamProblem6), within
// the rate limit RFC 4443 §2.4 (f) says a node MUST apply.
func (s *Stack) paramProblem(f *family, b, out []byte) {
	n := ip.ParamProblem6(out, f.net.Addr(), b)
	if n == 0 {
		return
	}
	if !s.icmpLimit.allow(s.now()) {
		s.stats.icmpErrorsLimited.Add(1)
		return
	}
	s.stats.icmpErrorsSent.Add(1)
	s.write(out[:n])
}

// errorBucket is the token bucket that limits the ICMP errors the stack
// sends (RFC 4443 §2.4 (f): a MUST, with a token bucket as the suggested
// way): errorBurst at once, then errorRate a second, as Linux's
// icmp_msgs_burst and icmp_msgs_per_sec (50 and 1000) allow.
type errorBucket struct {
	mu     sync.Mutex
	tokens float64
	last   time.Duration
	primed bool
}

const (
	errorBurst = 50
	errorRate  = 1000 // per second
)

// allow takes a token at now, if there is one.
func (e *errorBucket) allow(now time.Duration) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if !e.primed {
		e.tokens, e.primed = errorBurst, true
	} else if now > e.last {
		e.tokens = min(errorBurst, e.tokens+(now-e.last).Seconds()*errorRate)
	}
	e.last = max(e.last, now)
	if e.tokens < 1 {
		return false
	}
	e.tokens--
	return true
}

// icmpError hands an ICMP error about one of our segments to its
// connection (RFC 1122 §4.2.3.9), mapped to the errno Linux reports.
// Source quench is ignored (RFC 6633).
func (s *Stack) icmpError(f *family, e *ip.ICMPError) {
	s.stats.icmpErrors.Add(1)
	c := s.lookup(keyOf(e.Peer, e.DstPort, e.SrcPort))
	if c == nil || e.Kind == ip.ErrorIgnored {
		return
	}
	// The network layer classified the message (ip.ErrorKind, with the
	// errno Linux reports); TCP acts on the kind.
	kind := tcp.ICMPSoft
	switch e.Kind {
	case ip.ErrorHard:
		kind = tcp.ICMPHard
	case ip.ErrorTooBig:
		kind = tcp.ICMPFragNeeded
	}
	mss := 0
	if e.MTU != 0 && kind == tcp.ICMPFragNeeded {
		// RFC 1191 §3, RFC 8201 §4: the reported MTU, not below the
		// family's floor, not above our own link's.
		mss = min(max(e.MTU, f.minPMTU), s.mtu) - f.net.HeaderLen() - tcp.HeaderLen
	}
	c.handleICMP(icmpNote{kind: kind, seq: tcp.Seq(e.Seq), mss: uint32(mss), errno: e.Errno})
}

// demux finds the owner of a segment: a connection, else a listener, else
// no one (RFC 9293 §3.10.7.1: reset).
func (s *Stack) demux(pkt *ip.Packet, seg *tcp.Segment, out []byte) {
	key := keyOf(pkt.Src, seg.SrcPort, seg.DstPort)
	if c := s.lookup(key); c != nil {
		c.handle(seg, pkt.Payload)
		return
	}
	handled, reopen, old := s.handleTimeWait(key, seg, out)
	if handled && !reopen {
		return
	}
	s.lmu.Lock()
	l := s.listeners[lkey{port: seg.DstPort, v6: pkt.Version == 6}]
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
	s.sendReset(key, seg, out)
}

// sendReset answers seg, which came from the connection key, with the
// RFC 9293 §3.10.7.1 reset.
func (s *Stack) sendReset(key tuple, in *tcp.Segment, out []byte) {
	rst, ok := tcp.ResetFor(in)
	if !ok {
		return
	}
	s.stats.resetsSent.Add(1)
	s.writeSegment(out, s.familyOf(key.addr()), key, s.flowLabel(key), &rst)
}

// writeSegment builds the packet for seg, sent on the connection key of
// the family f (with flow label flow, for IPv6), in buf and writes it. buf holds the
// headers, and, on a device without offloads, the whole packet (an MTU).
// On a device with offloads only the headers are built: the payload goes
// from the send ring to the device as it is (WriteOffload's second
// slice), and the TCP checksum is left to the device, which for a
// super-segment computes one per piece. ip.BuildTCP makes every TCP
// packet; the stack only chooses where it goes.
func (s *Stack) writeSegment(buf []byte, f *family, key tuple, flow uint32, seg *tcp.Segment) {
	dst := key.addr()
	// Segments count as on the wire, a super-segment as its pieces, as
	// Linux counts OutSegs.
	s.stats.segmentsOut.Add(uint64(pieces(len(seg.Payload), seg.GSOSize)))
	q := s.queueFor(key, seg.SrcPort, seg.DstPort)
	if q.off != nil {
		hdr, _ := ip.BuildTCP(f.net, buf, dst, flow, seg, true)
		o := tun.Offload{CsumPartial: true}
		if seg.GSOSize > 0 {
			o.GSOSize = uint16(seg.GSOSize)
			s.stats.superOut.Add(1)
		}
		s.wrote(q.off.WriteOffload(buf[:hdr], seg.Payload, o))
		if o.GSOSize > 0 && q.off.MaxOffload() == 0 && !s.offRefused.Swap(true) {
			var why error
			if e, ok := q.off.(interface{ OffloadErr() error }); ok {
				why = e.OffloadErr()
			}
			s.log.Warn("the device refused a TCP super-segment; segmentation offload is off for new connections, the rest are cut in software", "err", why)
		}
		return
	}
	_, n := ip.BuildTCP(f.net, buf, dst, flow, seg, false)
	_, err := q.dev.Write(buf[:n])
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
func (s *Stack) dialPort(raddr netip.Addr, rport uint16, c *Conn) (tuple, error) {
	span := uint32(ephemeralLast - ephemeralFirst + 1)
	offset := uint32(maphash.Comparable(s.portSeed, struct {
		addr netip.Addr
		port uint16
	}{raddr, rport}))
	for i := uint32(0); i < span; i++ {
		next := s.portNext.Add(1)
		p := uint16(ephemeralFirst + (offset+next)%span)
		s.lmu.Lock()
		_, listening := s.listeners[lkey{port: p, v6: raddr.Is6()}]
		s.lmu.Unlock()
		if listening {
			continue
		}
		key := keyOf(raddr, rport, p)
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
