package stack

import (
	"net"
	"os"
	"syscall"

	"github.com/tund-project/tund/tcp"
)

// The non-blocking calls, for a program that drives a stack itself in
// virtual time (tund drill runs packetdrill scripts with them on a
// ManualClock): each returns at once, failing with syscall.EAGAIN where
// the blocking call would wait, as a socket with O_NONBLOCK does.

// DialNonblock sends the SYN of an active open to address ("ip:port")
// and returns the connection at once, in SYN-SENT, as connect(2) on a
// non-blocking socket does (EINPROGRESS). Established and Err tell how
// the handshake ends.
func (s *Stack) DialNonblock(network, address string) (*Conn, error) {
	return s.startDial(network, address)
}

// AcceptNonblock returns the next established connection waiting on the
// listener, or fails with EAGAIN when there is none.
func (l *Listener) AcceptNonblock() (*Conn, error) {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: l.s.closedErr()}
	}
	if len(l.queue) == 0 {
		l.mu.Unlock()
		return nil, &net.OpError{Op: "accept", Net: "tcp", Addr: l.addr, Err: os.NewSyscallError("accept", syscall.EAGAIN)}
	}
	c := l.queue[0]
	l.queue[0] = nil
	l.queue = l.queue[1:]
	l.mu.Unlock()
	c.lock()
	c.lst = nil
	c.unlock()
	return c, nil
}

// ReadNonblock reads what is ready into p, or fails with EAGAIN when
// nothing is; with peek the bytes stay queued (MSG_PEEK). It returns
// io.EOF after the peer's FIN and the error that ended the connection.
func (c *Conn) ReadNonblock(p []byte, peek bool) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	c.lock()
	defer c.unlock()
	if c.closed {
		return 0, c.opErr("read", net.ErrClosed)
	}
	var n int
	var err error
	if peek {
		n, err = c.tcb.Peek(p)
	} else {
		n, err = c.tcb.Read(p, c.s.now())
		c.after()
	}
	if n, err = c.readResult(n, err); err == errWouldBlock {
		return 0, c.opErr("read", syscall.EAGAIN)
	}
	return n, err
}

// WriteNonblock queues as much of p as fits in the send buffer and
// returns how much that was; it fails with EAGAIN when nothing fits.
func (c *Conn) WriteNonblock(p []byte) (int, error) {
	c.lock()
	defer c.unlock()
	if c.closed {
		return 0, c.opErr("write", net.ErrClosed)
	}
	n, err := c.tcb.Write(p, c.s.now())
	c.after()
	if err != nil {
		return n, c.opErr("write", err)
	}
	if n == 0 && len(p) > 0 {
		return 0, c.opErr("write", syscall.EAGAIN)
	}
	return n, nil
}

// Established reports whether the handshake has completed.
func (c *Conn) Established() bool {
	c.lock()
	defer c.unlock()
	return c.tcb.Established()
}

// Err is the error that ended the connection or its opening (ECONNREFUSED,
// ECONNRESET, ETIMEDOUT, ...), as SO_ERROR reports it; nil while it is
// open or opening.
func (c *Conn) Err() error {
	c.lock()
	defer c.unlock()
	if err := c.tcb.Err(); err != nil {
		return c.opErr("connect", err)
	}
	return nil
}

// Info is a snapshot of the connection's control block: windows,
// buffers, congestion state, timers (on the stack's clock).
func (c *Conn) Info() tcp.Info {
	c.lock()
	defer c.unlock()
	in := c.tcb.Info()
	if in.TimerAt != 0 {
		in.TimerAt -= c.s.now()
	}
	return in
}
