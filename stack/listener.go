package stack

import (
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/tund-project/tund/tcp"
)

// Listener is a passive TCP socket. It implements net.Listener. As in BSD,
// connections still in the handshake (SYN-RECEIVED) plus completed ones
// waiting for Accept never exceed the backlog; a SYN beyond it is dropped
// silently so the client's retransmission tries again later.
type Listener struct {
	s       *Stack
	port    uint16
	addr    *net.TCPAddr
	backlog int

	mu       sync.Mutex
	tl       *tcp.Listening // the LISTEN state and its trace
	halfOpen int
	queue    []*Conn
	closed   bool
	ready_   chan struct{} // cap-1 wake-up for Accept
	closedCh chan struct{}
}

// Listen announces on address (":port", "ip:port" with the stack's own
// address or 0.0.0.0; port 0 picks an ephemeral port) with the stack's
// default backlog.
func (s *Stack) Listen(network, address string) (net.Listener, error) {
	return s.ListenBacklog(network, address, s.cfg.Backlog)
}

// ListenBacklog is Listen with an explicit backlog.
func (s *Stack) ListenBacklog(network, address string, backlog int) (*Listener, error) {
	opErr := func(err error) error {
		return &net.OpError{Op: "listen", Net: network, Err: err}
	}
	if network != "tcp" && network != "tcp4" {
		return nil, opErr(net.UnknownNetworkError(network))
	}
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		return nil, opErr(err)
	}
	if host != "" {
		a, err := netip.ParseAddr(host)
		if err != nil || (a.Unmap() != s.cfg.Addr && !a.IsUnspecified()) {
			return nil, opErr(os.NewSyscallError("bind", syscall.EADDRNOTAVAIL))
		}
	}
	port, err := portOf(address)
	if err != nil {
		return nil, opErr(err)
	}
	if backlog <= 0 {
		backlog = s.cfg.Backlog
	}
	if s.refusing() {
		return nil, opErr(s.closedErr())
	}
	s.at("listen")
	l := &Listener{
		s: s, backlog: backlog,
		ready_:   make(chan struct{}, 1),
		closedCh: make(chan struct{}),
	}
	s.lmu.Lock()
	defer s.lmu.Unlock()
	// Checked again under lmu, which stop's snapshot of the listeners
	// takes: a Listen racing with Close is in the snapshot or fails here.
	if s.refusing() {
		return nil, opErr(s.closedErr())
	}
	if port == 0 {
		span := ephemeralLast - ephemeralFirst + 1
		start := rand.IntN(span)
		for i := 0; i < span; i++ {
			p := uint16(ephemeralFirst + (start+i)%span)
			if _, ok := s.listeners[p]; !ok {
				port = p
				break
			}
		}
		if port == 0 {
			return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
		}
	}
	if _, ok := s.listeners[port]; ok {
		return nil, opErr(os.NewSyscallError("bind", syscall.EADDRINUSE))
	}
	l.port = port
	l.addr = &net.TCPAddr{IP: s.cfg.Addr.AsSlice(), Port: int(port)}
	l.tl = tcp.NewListening(tcp.Config{Trace: s.tracer(netip.AddrPortFrom(s.cfg.Addr, port), netip.AddrPort{})})
	s.listeners[port] = l
	return l, nil
}

// classify says what the listener does with a segment that found no
// connection (tcp.Listening.Classify).
func (l *Listener) classify(seg *tcp.Segment) tcp.ListenAction {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tl.Classify(seg)
}

// onSyn is called by the reader for a SYN to the listening port: admit it
// if the backlog has room, creating the connection in SYN-RECEIVED. When
// the SYN reopens a TIME-WAIT tuple, old is the old incarnation, whose
// sequence space the new ISS must clear. out is the reader's packet
// buffer, for a SYN cookie answer.
func (l *Listener) onSyn(key tuple, syn *tcp.Segment, reopen bool, old *tcp.TimeWaitEntry, out []byte) {
	s := l.s
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	if l.halfOpen+len(l.queue) >= l.backlog {
		// BSD semantics: the backlog bounds half-open plus unaccepted
		// connections. A SYN beyond it is dropped without an answer; the
		// client retransmits it later. With SYN cookies on, a backlog full
		// of half-open connections (a SYN flood, most likely) is answered
		// statelessly instead, as long as the accept queue has room.
		cookie := s.cfg.SynCookies && len(l.queue) < l.backlog
		l.mu.Unlock()
		if cookie {
			s.sendCookie(key, syn, out)
			return
		}
		s.stats.backlogFull.Add(1)
		return
	}
	l.halfOpen++
	l.mu.Unlock()
	l.admit(key, func(c *Conn, now time.Duration) *tcp.Conn {
		iss := s.isn.ISN(s.addr, key.raddr, key.lport, key.rport, now)
		if reopen {
			iss = old.ReopenISS(iss)
		}
		return tcp.NewPassive(c.tcpConfig(), c, syn, iss, now)
	})
}

// admit creates the connection for key, already counted in halfOpen, with
// the control block open makes; it reaches the accept queue once
// established (Listener.ready).
func (l *Listener) admit(key tuple, open func(c *Conn, now time.Duration) *tcp.Conn) {
	s := l.s
	s.at("admit")
	c := s.newConn(key)
	c.setAddrs()
	c.lst = l
	c.lock()
	defer c.unlock()
	if !s.connRoom() || s.insert(key, c) != nil { // full, taken, or the stack is stopping
		l.halfOpenGone()
		return
	}
	s.stats.passiveOpens.Add(1)
	c.tcb = open(c, s.now())
	c.after()
}

// sendCookie answers syn with a SYN+ACK whose ISS is a SYN cookie
// (RFC 4987 §3.6), keeping no state.
func (s *Stack) sendCookie(key tuple, syn *tcp.Segment, out []byte) {
	mss := 536 // RFC 9293 §3.7.1: without the option, assume 536
	if syn.Options.MSS != 0 {
		mss = int(syn.Options.MSS)
	}
	mss = min(mss, s.tcpCfg.MSS)
	iss := s.cookies.Make(s.addr, key.raddr, syn, mss, s.now())
	synack := tcp.CookieSynAck(s.tcpCfg, syn, iss)
	s.stats.synCookiesSent.Add(1)
	s.writeSegment(out, key.raddr, &synack)
}

// onCookieAck tries seg, an ACK that found no connection, as the end of
// a SYN cookie handshake. It reports whether it took the segment; if not,
// the caller resets it as usual.
func (l *Listener) onCookieAck(key tuple, seg *tcp.Segment) bool {
	s := l.s
	if !s.cfg.SynCookies || seg.Flags.Has(tcp.FlagSYN) || seg.Flags.Has(tcp.FlagRST) {
		return false
	}
	now := s.now()
	opts, ok := s.cookies.Check(s.addr, key.raddr, seg, now)
	if !ok {
		s.stats.synCookiesBad.Add(1)
		return false
	}
	l.mu.Lock()
	if l.closed || len(l.queue) >= l.backlog {
		// No room to queue it: drop the ACK, as Linux does; the client's
		// data retransmission or a later SYN tries again.
		l.mu.Unlock()
		s.stats.backlogFull.Add(1)
		return true
	}
	l.halfOpen++ // ready() moves it to the queue
	l.mu.Unlock()
	s.stats.synCookiesOK.Add(1)
	l.admit(key, func(c *Conn, now time.Duration) *tcp.Conn {
		return tcp.NewPassiveCookie(c.tcpConfig(), c, seg, opts, now)
	})
	return true
}

// Accept implements net.Listener: it waits for the next completed
// connection.
func (l *Listener) Accept() (net.Conn, error) {
	for {
		l.mu.Lock()
		if l.closed {
			l.mu.Unlock()
			return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: l.s.closedErr()}
		}
		if len(l.queue) > 0 {
			c := l.queue[0]
			l.queue[0] = nil
			l.queue = l.queue[1:]
			l.mu.Unlock()
			c.lock()
			c.lst = nil
			c.unlock()
			return c, nil
		}
		l.mu.Unlock()
		select {
		case <-l.ready_:
		case <-l.closedCh:
		}
	}
}

// ready moves a connection that finished its handshake to the accept
// queue. Called with c.mu held.
func (l *Listener) ready(c *Conn) {
	l.mu.Lock()
	l.halfOpen--
	if l.closed {
		l.mu.Unlock()
		c.lst = nil
		c.tcb.Abort(c.s.now())
		return
	}
	l.queue = append(l.queue, c)
	l.mu.Unlock()
	notify(l.ready_)
}

// halfOpenGone forgets a connection that died in SYN-RECEIVED.
func (l *Listener) halfOpenGone() {
	l.mu.Lock()
	l.halfOpen--
	l.mu.Unlock()
}

// Close implements net.Listener: stop listening, reset the connections
// nobody accepted, and unblock Accept.
func (l *Listener) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return &net.OpError{Op: "close", Net: "tcp", Addr: l.addr, Err: net.ErrClosed}
	}
	l.closed = true
	l.tl.Close()
	queue := l.queue
	l.queue = nil
	close(l.closedCh)
	l.mu.Unlock()

	l.s.lmu.Lock()
	if l.s.listeners[l.port] == l {
		delete(l.s.listeners, l.port)
	}
	l.s.lmu.Unlock()
	for _, c := range queue {
		c.abort()
	}
	return nil
}

// Addr implements net.Listener; it is a *net.TCPAddr.
func (l *Listener) Addr() net.Addr { return l.addr }

// String describes the listener.
func (l *Listener) String() string { return fmt.Sprintf("listener %v backlog %d", l.addr, l.backlog) }
