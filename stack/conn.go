package stack

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tund-project/tund/tcp"
)

// Conn is a TCP connection of the stack. It implements net.Conn, and
// CloseWrite like *net.TCPConn.
type Conn struct {
	s   *Stack
	key tuple
	fam *family // the network layer of key's family
	// flow is the IPv6 flow label of every packet the connection sends
	// (RFC 6437), 0 over IPv4; set with the key.
	flow uint32

	mu      sync.Mutex // guards tcb and everything below; released with unlock (connlock.go)
	tcb     *tcp.Conn
	timer   Timer
	timerAt time.Duration
	lst     *Listener // while half-open or waiting in the accept queue
	estDone bool
	removed bool
	closed  bool   // Close was called
	orphan  bool   // closed, still finishing: counted in Stack.orphans
	note    string // SetNote: what the application says of the connection (tund ss)
	// Socket options kept for Close and SetKeepAlive.
	linger      int           // SetLinger: < 0 default, 0 reset on Close
	keepAlive   bool          // SetKeepAlive
	keepAlivePd time.Duration // SetKeepAlivePeriod (default 15 s, as Go's net)
	// inTimeWait: the connection entered TIME-WAIT and was handed to the
	// stack's TIME-WAIT table; only the table knows when it ends.
	inTimeWait bool

	// The backlog: segments the reader queued while mu was held.
	blMu  sync.Mutex
	bl    []byte  // length-prefixed TCP segments (and ICMP notes)
	blBuf *[]byte // where bl came from (backlogBufs)
	blN   atomic.Int32
	// blLimit is the backlog's bound in bytes, kept by lock holders for
	// the reader (which cannot read the control block): see backlogCap.
	blLimit atomic.Int32

	// est is closed when a dial's handshake completes or fails (nil for
	// a passive open: nobody waits on it).
	est chan struct{}
	// rd and wr are cap-1 wake-ups for a blocked Read and Write: for
	// new bytes or room, and for Close, which a woken call that finds
	// the connection closed passes on to the next waiter.
	rd, wr chan struct{}
	// dl holds the read and write deadlines, made by the first
	// Set*Deadline: most connections never set one.
	dl atomic.Pointer[deadlines]
	// onReadable is called once when a Read would next not block
	// (NotifyReadable).
	onReadable func()
}

// An idle connection costs what newConn allocates and the control block:
// two channels, one runtime timer; its rings, deadlines, addresses and
// copy buffers come when used.
func (s *Stack) newConn(f *family, key tuple, active bool) *Conn {
	c := &Conn{
		s:      s,
		key:    key,
		fam:    f,
		flow:   s.flowLabel(key),
		rd:     make(chan struct{}, 1),
		wr:     make(chan struct{}, 1),
		linger: -1,
	}
	if active {
		c.est = make(chan struct{})
	}
	c.timer = s.clock.AfterFunc(time.Hour, c.onTimer)
	c.timer.Stop()
	return c
}

// laddr and raddr are the connection's addresses, made when asked for.
func (c *Conn) laddr() *net.TCPAddr {
	return &net.TCPAddr{IP: c.fam.net.Addr().AsSlice(), Port: int(c.key.lport)}
}

func (c *Conn) raddr() *net.TCPAddr {
	return &net.TCPAddr{IP: c.key.addr().AsSlice(), Port: int(c.key.rport)}
}

// tcpConfig returns the core's knobs for this connection, with the trace
// hook bound to its addresses.
func (c *Conn) tcpConfig() tcp.Config {
	cfg := c.fam.tcp
	cfg.Trace = c.s.tracer(c.s.localOf(c.key), c.key.remote())
	if c.s.offRefused.Load() {
		cfg.GSOMax = 0
	}
	return cfg
}

// SendSegment implements tcp.Sender: build the packet in a buffer borrowed
// for the write and write it. Called with c.mu held.
func (c *Conn) SendSegment(seg *tcp.Segment) {
	bp := c.s.pkts.Get().(*[]byte)
	c.s.writeSegment(*bp, c.fam, c.key, c.flow, seg)
	c.s.pkts.Put(bp)
}

// after reacts to what the core reported: wake waiters, follow state
// changes, re-arm the timer. Called with c.mu held after every core call.
func (c *Conn) after() {
	ev := c.tcb.TakeEvents()
	if ev&tcp.EvReadable != 0 {
		notify(c.rd)
		if f := c.onReadable; f != nil {
			c.onReadable = nil
			f()
		}
	}
	if ev&tcp.EvWritable != 0 {
		notify(c.wr)
	}
	if ev&tcp.EvState != 0 {
		c.stateChanged()
	}
	if c.removed {
		return
	}
	// One runtime timer per connection, re-armed lazily: only when the
	// next deadline moves earlier. An early firing just re-arms.
	if at := c.tcb.NextTimer(); at != 0 && (c.timerAt == 0 || at < c.timerAt) {
		c.timerAt = at
		c.timer.Reset(at - c.s.now())
	}
}

func (c *Conn) stateChanged() {
	if !c.estDone && (c.tcb.Established() || c.tcb.State() == tcp.Closed) {
		c.estDone = true
		if c.est != nil {
			close(c.est)
		}
		if l := c.lst; l != nil {
			if c.tcb.Established() {
				l.ready(c)
			} else {
				l.halfOpenGone(c)
				c.lst = nil
			}
		}
	}
	if st := c.tcb.State(); c.orphan && (st == tcp.TimeWait || st == tcp.Closed) {
		c.orphan = false
		c.s.orphans.Add(-1)
	}
	if c.tcb.State() == tcp.TimeWait && !c.removed {
		c.s.enterTimeWait(c)
		notify(c.rd)
		notify(c.wr)
	}
	if c.tcb.State() == tcp.Closed && !c.removed {
		c.removed = true
		c.s.retire(c)
		c.timer.Stop()
		c.s.remove(c)
		notify(c.rd)
		notify(c.wr)
	}
}

func (c *Conn) onTimer() {
	c.lock()
	defer c.unlock()
	if c.removed || c.tcb == nil {
		return
	}
	c.timerAt = 0
	c.tcb.Tick(c.s.now())
	c.after()
}

// abort resets the connection (stack shutdown, listener close).
func (c *Conn) abort() {
	c.lock()
	defer c.unlock()
	if c.tcb != nil {
		c.tcb.Abort(c.s.now())
		c.after()
	}
}

// finish is Stack.Shutdown's close of one connection: a FIN after what
// is queued, as CloseWrite; the application may still read until the
// peer's FIN, and a Write waiting for room fails with EPIPE. A dial
// still in SYN-SENT has nothing to finish and is aborted.
func (c *Conn) finish() {
	c.lock()
	defer c.unlock()
	if c.tcb == nil {
		return
	}
	if now := c.s.now(); c.tcb.State() == tcp.SynSent {
		c.tcb.Abort(now)
	} else {
		c.tcb.CloseWrite(now)
	}
	c.after()
	notify(c.wr)
}

// Read implements net.Conn. It returns io.EOF after the peer's FIN.
func (c *Conn) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if n, err := c.tryRead(p); err != errWouldBlock {
			return n, err
		}
		if err := c.waitRead(); err != nil {
			return 0, err
		}
	}
}

// errWouldBlock: tryRead found nothing to read yet.
var errWouldBlock = errors.New("would block")

// tryRead reads what is ready into p (not empty), failing with
// errWouldBlock when the caller has to wait.
func (c *Conn) tryRead(p []byte) (int, error) {
	c.lock()
	if c.closed {
		c.unlock()
		notify(c.rd) // the next reader waiting learns it too
		return 0, c.opErr("read", net.ErrClosed)
	}
	// A deadline in the past fails the call even if it could proceed,
	// as the kernel's sockets do.
	if c.rdl().expired() {
		c.unlock()
		return 0, c.opErr("read", os.ErrDeadlineExceeded)
	}
	n, err := c.tcb.Read(p, c.s.now())
	c.after()
	c.unlock()
	return c.readResult(n, err)
}

// readResult is what a read returns for the core's (n, err):
// errWouldBlock when nothing is ready yet.
func (c *Conn) readResult(n int, err error) (int, error) {
	switch {
	case n > 0:
		return n, nil
	case err == io.EOF:
		return 0, io.EOF
	case err != nil:
		return 0, c.opErr("read", err)
	}
	return 0, errWouldBlock
}

// waitRead waits for the connection to become readable (or closed), or
// fails when the read deadline passes. Without a deadline it is a plain
// receive: the smallest frame for a goroutine that idles here.
func (c *Conn) waitRead() error {
	d := c.rdl()
	if d == nil {
		<-c.rd
		return nil
	}
	select {
	case <-c.rd:
	case <-d.wait():
		return c.opErr("read", os.ErrDeadlineExceeded)
	}
	return nil
}

// Write implements net.Conn: it blocks until all of p is queued.
func (c *Conn) Write(p []byte) (int, error) {
	total := 0
	for {
		c.lock()
		if c.closed {
			c.unlock()
			notify(c.wr) // the next writer waiting learns it too
			return total, c.opErr("write", net.ErrClosed)
		}
		// A deadline in the past fails the call even if it could proceed,
		// as the kernel's sockets do.
		if c.wdl().expired() {
			c.unlock()
			return total, c.opErr("write", os.ErrDeadlineExceeded)
		}
		n, err := c.tcb.Write(p, c.s.now())
		c.after()
		c.unlock()
		total += n
		p = p[n:]
		if err != nil {
			return total, c.opErr("write", err)
		}
		if len(p) == 0 {
			return total, nil
		}
		if n == 0 {
			select {
			case <-c.wr:
			case <-c.wdl().wait():
				return total, c.opErr("write", os.ErrDeadlineExceeded)
			}
		}
	}
}

// Close implements net.Conn: a FIN follows the queued data, or a reset if
// received data was never read.
func (c *Conn) Close() error {
	c.lock()
	defer c.unlock()
	if c.closed {
		return c.opErr("close", net.ErrClosed)
	}
	c.closed = true
	c.onReadable = nil
	notify(c.rd) // blocked calls fail with net.ErrClosed
	notify(c.wr)
	if d := c.dl.Load(); d != nil {
		d.rd.shut()
		d.wr.shut()
	}
	if c.linger == 0 {
		c.tcb.Abort(c.s.now()) // SO_LINGER 0: reset, discard what is queued
	} else {
		c.tcb.Close(c.s.now())
		c.countOrphan()
	}
	c.after()
	return nil
}

// countOrphan counts a connection the application just closed that still
// needs the peer to finish (FIN-WAIT-1/2, CLOSING, LAST-ACK): an orphan.
// Past MaxOrphans it is reset at once instead, as Linux does past
// tcp_max_orphans ("too many orphaned sockets"). Called with c.mu held.
func (c *Conn) countOrphan() {
	switch c.tcb.State() {
	case tcp.FinWait1, tcp.FinWait2, tcp.Closing, tcp.LastAck:
	default:
		return
	}
	if c.s.orphans.Add(1) > int64(c.s.cfg.MaxOrphans) {
		c.s.orphans.Add(-1)
		c.s.stats.orphanOverflow.Add(1)
		c.s.limitHit(limitOrphans, "max", c.s.cfg.MaxOrphans)
		c.tcb.Abort(c.s.now())
		return
	}
	c.orphan = true
}

// CloseRead shuts down the reading side, as (*net.TCPConn).CloseRead:
// Read returns io.EOF, and data that still arrives is acknowledged and
// dropped.
func (c *Conn) CloseRead() error {
	return c.setOption(1, func(time.Duration) {
		c.tcb.CloseRead()
		notify(c.rd)
	})
}

// SetLinger sets what Close does with unsent data, as
// (*net.TCPConn).SetLinger: sec < 0 (the default) or > 0 sends it in the
// background and closes with a FIN (Close does not wait); sec == 0 resets
// the connection at once, discarding it.
func (c *Conn) SetLinger(sec int) error {
	return c.setOption(1, func(time.Duration) { c.linger = sec })
}

// SetKeepAlive turns TCP keepalive probes on or off (RFC 1122 §4.2.3.6),
// as (*net.TCPConn).SetKeepAlive. A connection whose probes go
// unanswered fails with ETIMEDOUT.
func (c *Conn) SetKeepAlive(keepalive bool) error {
	return c.setOption(1, func(now time.Duration) {
		c.keepAlive = keepalive
		c.tcb.SetKeepAlive(c.keepAlivePeriod(), now)
	})
}

// SetKeepAlivePeriod sets the idle time before the first keepalive probe
// and between probes, as (*net.TCPConn).SetKeepAlivePeriod.
func (c *Conn) SetKeepAlivePeriod(d time.Duration) error {
	return c.setOption(max(int(d), 0), func(now time.Duration) {
		c.keepAlivePd = d
		c.tcb.SetKeepAlive(c.keepAlivePeriod(), now)
	})
}

// keepAlivePeriod is the probe period in force, 0 when keepalives are off.
func (c *Conn) keepAlivePeriod() time.Duration {
	if !c.keepAlive {
		return 0
	}
	if c.keepAlivePd > 0 {
		return c.keepAlivePd
	}
	return 15 * time.Second
}

// CloseWrite shuts down the sending side (a FIN follows the queued data);
// reading continues until the peer's FIN.
func (c *Conn) CloseWrite() error {
	c.lock()
	defer c.unlock()
	if c.closed {
		return c.opErr("close", net.ErrClosed)
	}
	c.tcb.CloseWrite(c.s.now())
	c.after()
	return nil
}

// SetNoDelay controls Nagle's algorithm, as (*net.TCPConn).SetNoDelay
// does: with noDelay true, small writes go out at once instead of waiting
// for the previous segment's ACK. Nagle is on by default (Config.TCP.NoDelay
// changes the default).
func (c *Conn) SetNoDelay(noDelay bool) error {
	return c.setOption(1, func(now time.Duration) { c.tcb.SetNoDelay(noDelay, now) })
}

// SetReadBuffer sets the receive buffer (the most the connection
// advertises) to bytes and turns its autotuning off, as SO_RCVBUF does.
func (c *Conn) SetReadBuffer(bytes int) error {
	return c.setOption(bytes, func(now time.Duration) { c.tcb.SetRcvBuf(bytes, now) })
}

// SetWriteBuffer sets the send buffer to bytes, as SO_SNDBUF does.
func (c *Conn) SetWriteBuffer(bytes int) error {
	return c.setOption(bytes, func(time.Duration) { c.tcb.SetSndBuf(bytes) })
}

// SetCongestionControl chooses this connection's congestion control
// algorithm ("newreno" or "cubic"), like Linux's TCP_CONGESTION option.
func (c *Conn) SetCongestionControl(name string) error {
	var err error
	serr := c.setOption(1, func(time.Duration) { err = c.tcb.SetCongestionControl(name) })
	if serr != nil {
		return serr
	}
	if err != nil {
		return c.opErr("set", fmt.Errorf("%w: %v", syscall.ENOENT, err))
	}
	return nil
}

// setOption applies a socket option to the control block: net.ErrClosed
// after Close, EINVAL for a size that is not positive.
func (c *Conn) setOption(size int, apply func(now time.Duration)) error {
	c.lock()
	defer c.unlock()
	if c.closed {
		return c.opErr("set", net.ErrClosed)
	}
	if size <= 0 {
		return c.opErr("set", os.NewSyscallError("setsockopt", syscall.EINVAL))
	}
	apply(c.s.now())
	c.after()
	return nil
}

// LocalAddr implements net.Conn; it is a *net.TCPAddr.
func (c *Conn) LocalAddr() net.Addr { return c.laddr() }

// RemoteAddr implements net.Conn; it is a *net.TCPAddr.
func (c *Conn) RemoteAddr() net.Addr { return c.raddr() }

// SetDeadline implements net.Conn. After Close it fails with
// net.ErrClosed.
func (c *Conn) SetDeadline(t time.Time) error {
	d := c.deadlines()
	if d == nil || !d.rd.set(t) || !d.wr.set(t) {
		return c.opErr("set", net.ErrClosed)
	}
	return nil
}

// SetReadDeadline implements net.Conn.
func (c *Conn) SetReadDeadline(t time.Time) error {
	d := c.deadlines()
	if d == nil || !d.rd.set(t) {
		return c.opErr("set", net.ErrClosed)
	}
	return nil
}

// SetWriteDeadline implements net.Conn.
func (c *Conn) SetWriteDeadline(t time.Time) error {
	d := c.deadlines()
	if d == nil || !d.wr.set(t) {
		return c.opErr("set", net.ErrClosed)
	}
	return nil
}

// deadlines is a connection's read and write deadlines.
type deadlines struct{ rd, wr deadline }

// rdl and wdl are the read and write deadlines, nil while none was ever
// set (the deadline methods take a nil one as "no deadline").
func (c *Conn) rdl() *deadline {
	if d := c.dl.Load(); d != nil {
		return &d.rd
	}
	return nil
}

func (c *Conn) wdl() *deadline {
	if d := c.dl.Load(); d != nil {
		return &d.wr
	}
	return nil
}

// deadlines returns the connection's deadlines, making them at the first
// call; nil after Close. A Read or Write already blocked without one is
// woken to wait again with it.
func (c *Conn) deadlines() *deadlines {
	if d := c.dl.Load(); d != nil {
		return d
	}
	c.lock()
	defer c.unlock()
	if d := c.dl.Load(); d != nil || c.closed {
		return d
	}
	d := &deadlines{rd: deadline{ch: make(chan struct{})}, wr: deadline{ch: make(chan struct{})}}
	c.dl.Store(d)
	notify(c.rd)
	notify(c.wr)
	return d
}

// State is the connection's RFC 9293 state.
func (c *Conn) State() tcp.State {
	c.lock()
	defer c.unlock()
	if c.inTimeWait && !c.s.inTimeWait(c.key) {
		return tcp.Closed // the TIME-WAIT table let it go
	}
	return c.tcb.State()
}

func (c *Conn) opErr(op string, err error) error {
	if err == nil {
		return nil
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		err = os.NewSyscallError(op, errno)
		// A connection the stack aborted because it is stopping (or
		// shutting down) says why: the error matches net.ErrClosed, and
		// wraps the device's error after a device failure.
		if errno == syscall.ECONNABORTED && c.s.refusing() {
			err = fmt.Errorf("%w (%w)", err, c.s.closedErr())
		}
	}
	return &net.OpError{Op: op, Net: "tcp", Source: c.laddr(), Addr: c.raddr(), Err: err}
}

// DialContext opens a connection to address ("ip:port") from the stack's
// address. It honours ctx until the handshake completes. Errors wrap
// syscall.ECONNREFUSED or syscall.ETIMEDOUT as the kernel's would.
func (s *Stack) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := s.startDial(network, address)
	if err != nil {
		return nil, err
	}
	select {
	case <-c.est:
	case <-ctx.Done():
		c.abort()
		return nil, &net.OpError{Op: "dial", Net: network, Source: c.laddr(), Addr: c.raddr(), Err: ctx.Err()}
	}
	c.lock()
	err = c.tcb.Err()
	c.unlock()
	if err != nil {
		e := c.opErr("connect", err).(*net.OpError)
		e.Op = "dial"
		return nil, e
	}
	return c, nil
}

// startDial sends the SYN of an active open to address and returns the
// connection in SYN-SENT.
func (s *Stack) startDial(network, address string) (*Conn, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "dial", Net: network, Err: err}
	}
	if network != "tcp" && network != "tcp4" && network != "tcp6" {
		return nil, opErr(net.UnknownNetworkError(network))
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return nil, opErr(fmt.Errorf("address %q is not an IP address and port (\"192.0.2.1:80\", \"[2001:db8::1]:80\")", address))
	}
	raddr := ap.Addr().Unmap()
	if network == "tcp4" && !raddr.Is4() || network == "tcp6" && !raddr.Is6() {
		return nil, opErr(&net.AddrError{Err: "address of the wrong family for " + network, Addr: address})
	}
	f := s.familyOf(raddr)
	if f == nil {
		// No address of ours in that family: like a kernel without a
		// route to it.
		return nil, opErr(os.NewSyscallError("connect", syscall.ENETUNREACH))
	}
	if s.refusing() {
		return nil, opErr(s.closedErr())
	}
	if !s.connRoom() {
		return nil, opErr(os.NewSyscallError("connect", syscall.ENOBUFS))
	}
	s.at("dial")
	c := s.newConn(f, tuple{}, true)
	c.lock()
	key, err := s.dialPort(raddr, ap.Port(), c)
	if err != nil {
		c.unlock()
		return nil, opErr(err)
	}
	c.key, c.flow = key, s.flowLabel(key)
	now := s.now()
	s.stats.activeOpens.Add(1)
	c.tcb = tcp.NewActive(c.tcpConfig(), c, key.lport, key.rport,
		s.isn.ISN(f.net.Addr(), raddr, key.lport, key.rport, now), now)
	c.after()
	c.unlock()
	return c, nil
}

// Dial is DialContext with a background context.
func (s *Stack) Dial(network, address string) (net.Conn, error) {
	return s.DialContext(context.Background(), network, address)
}

// portOf parses the port part of a listen address.
func portOf(address string) (uint16, error) {
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return 0, err
	}
	_ = host
	p, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return 0, fmt.Errorf("bad port %q", port)
	}
	return uint16(p), nil
}

// SetNote attaches a short text to the connection that Connections (and
// so `tund ss`) shows beside it, e.g. where a forwarded connection goes.
func (c *Conn) SetNote(note string) {
	c.lock()
	c.note = note
	c.unlock()
}
