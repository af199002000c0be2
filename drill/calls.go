package drill

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tund-project/tund/stack"
)

// socket is one file descriptor of the script.
type socket struct {
	fd       int
	nonblock bool
	bound    bool
	l        *stack.Listener
	c        *stack.Conn
	// Options set before there was a connection to set them on, and
	// inherited by accepted connections (as on Linux).
	rcvbuf, sndbuf int
	nodelay        bool
	keepalive      bool
	linger         *int
	errReported    bool // SO_ERROR has returned the connection's error
}

// pendingCall is a blocking call that has not returned yet.
type pendingCall struct {
	ev    *Event
	start time.Duration
	end   time.Duration // when the script expects it to return
	try   func() (ret int64, errno string, done bool)
}

// Errno names, as scripts write them.
var errnoNames = map[syscall.Errno]string{
	syscall.EAGAIN: "EAGAIN", syscall.EINPROGRESS: "EINPROGRESS", syscall.ECONNREFUSED: "ECONNREFUSED",
	syscall.ECONNRESET: "ECONNRESET", syscall.ETIMEDOUT: "ETIMEDOUT", syscall.EPIPE: "EPIPE",
	syscall.ENOTCONN: "ENOTCONN", syscall.EINVAL: "EINVAL", syscall.EBADF: "EBADF",
	syscall.EALREADY: "EALREADY", syscall.EISCONN: "EISCONN", syscall.ECONNABORTED: "ECONNABORTED",
	syscall.EADDRINUSE: "EADDRINUSE", syscall.EHOSTUNREACH: "EHOSTUNREACH", syscall.ENETUNREACH: "ENETUNREACH",
	syscall.ENOBUFS: "ENOBUFS", syscall.EOPNOTSUPP: "EOPNOTSUPP", syscall.ENOPROTOOPT: "ENOPROTOOPT",
	syscall.EPROTO: "EPROTO", syscall.EADDRNOTAVAIL: "EADDRNOTAVAIL",
}

// errnoOf names the errno an error from the stack carries ("" for nil).
func errnoOf(err error) string {
	if err == nil {
		return ""
	}
	var e syscall.Errno
	if errors.As(err, &e) {
		if n, ok := errnoNames[e]; ok {
			return n
		}
		return "errno" + strconv.Itoa(int(e))
	}
	if errors.Is(err, net.ErrClosed) {
		return "EBADF"
	}
	return "EIO"
}

// sameErrno treats EAGAIN and EWOULDBLOCK as one, as Linux and BSD do.
func sameErrno(a, b string) bool {
	norm := func(s string) string {
		if s == "EWOULDBLOCK" {
			return "EAGAIN"
		}
		return s
	}
	return norm(a) == norm(b)
}

// Constants scripts use (Linux values where the ABI differs).
var constants = map[string]int64{
	"AF_INET": 2, "AF_INET6": 10, "SOCK_STREAM": 1, "IPPROTO_TCP": 6, "IPPROTO_IP": 0,
	"SOL_SOCKET": 1, "SOL_TCP": 6,
	"SO_REUSEADDR": 2, "SO_ERROR": 4, "SO_SNDBUF": 7, "SO_RCVBUF": 8, "SO_KEEPALIVE": 9, "SO_LINGER": 13,
	"SO_REUSEPORT": 15,
	"TCP_NODELAY":  1, "TCP_MAXSEG": 2, "TCP_KEEPIDLE": 4, "TCP_KEEPINTVL": 5, "TCP_KEEPCNT": 6,
	"F_GETFL": 3, "F_SETFL": 4, "O_RDWR": 2, "O_NONBLOCK": 0o4000,
	"SHUT_RD": 0, "SHUT_WR": 1, "SHUT_RDWR": 2,
	"MSG_PEEK": 2, "MSG_DONTWAIT": 0x40, "MSG_WAITALL": 0x100, "MSG_NOSIGNAL": 0x4000,
}

// value evaluates an expression to a number: a literal, a constant, or
// constants or-ed together.
func value(e Expr) (int64, bool) {
	switch v := e.(type) {
	case Int:
		return int64(v), true
	case Ident:
		n, ok := constants[string(v)]
		return n, ok
	case Or:
		a, ok1 := value(v[0])
		b, ok2 := value(v[1])
		return a | b, ok1 && ok2
	case List:
		if len(v) == 1 {
			return value(v[0])
		}
	}
	return 0, false
}

// call makes a socket call and checks its result.
func (r *runner) call(ev *Event, at time.Duration) error {
	c := ev.Call
	try, err := r.prepare(c)
	if err != nil {
		return err
	}
	ret, errno, done := try()
	if done {
		return r.checkResult(ev, ret, errno, r.now())
	}
	// It would block. A call written start...end may; one written with a
	// single time must return within the tolerance.
	end := at + r.tol
	if ev.Blocking {
		// packetdrill: with a relative start, the end counts from the same
		// base as the start ("+0...0.1": 0.1 s after the previous event).
		end = ev.End
		if ev.TimeKind == TimeRelative || ev.EndRel {
			end = at - ev.Time + ev.End
		}
	}
	if r.pending != nil {
		return r.fail("%s would block while %s (line %d) is still blocked", c.Name, r.pending.ev.Call.Name, r.pending.ev.Line)
	}
	r.pending = &pendingCall{ev: ev, start: at, end: end, try: try}
	if !ev.Blocking {
		// Give it its tolerance in virtual time, then it must be done.
		if err := r.advanceTo(end); err != nil {
			return err
		}
		if r.pending != nil {
			r.pending = nil
			return r.fail("%s blocked; the script expects it to return at once (write start...end for a blocking call)", c.Name)
		}
	}
	return nil
}

// checkPending retries a blocked call and checks it when it returns.
func (r *runner) checkPending() error {
	p := r.pending
	if p == nil {
		return nil
	}
	ret, errno, done := p.try()
	if !done {
		if r.now() > p.end+r.tol {
			r.ev, r.pending = p.ev, nil
			return r.fail("%s still blocked at %.6f; the script expects it to return at %.6f", p.ev.Call.Name, r.now().Seconds(), p.end.Seconds())
		}
		return nil
	}
	r.pending = nil
	saved := r.ev
	r.ev = p.ev
	if r.now() < p.end-r.tol && p.ev.Blocking {
		return r.fail("%s returned at %.6f; the script expects it at %.6f", p.ev.Call.Name, r.now().Seconds(), p.end.Seconds())
	}
	err := r.checkResult(p.ev, ret, errno, r.now())
	r.ev = saved
	return err
}

// checkResult compares a call's outcome with the script's "= ret ERRNO".
func (r *runner) checkResult(ev *Event, ret int64, errno string, at time.Duration) error {
	c := ev.Call
	want, ok := value(c.Ret)
	if _, any := c.Ret.(Ellipsis); any {
		return nil
	}
	if !ok {
		return r.unsupported("result %s", c.Ret)
	}
	if errno != "" {
		if want != -1 || !sameErrno(errno, c.Errno) {
			return r.fail("%s returned -1 %s, the script expects %d %s", c.Name, errno, want, c.Errno)
		}
		return nil
	}
	if ret != want {
		return r.fail("%s returned %d, the script expects %d %s", c.Name, ret, want, c.Errno)
	}
	return nil
}

// prepare turns a call into a function that tries it once: done is
// false if it would block (and the socket is a blocking one).
func (r *runner) prepare(c *Call) (func() (int64, string, bool), error) {
	arg := func(i int) Expr {
		if i < len(c.Args) {
			return c.Args[i]
		}
		return Ellipsis{}
	}
	sock := func() (*socket, error) {
		fd, ok := value(arg(0))
		if !ok {
			return nil, r.unsupported("%s: file descriptor %s", c.Name, arg(0))
		}
		s := r.fds[int(fd)]
		if s == nil {
			return nil, r.fail("%s: file descriptor %d is not open", c.Name, fd)
		}
		return s, nil
	}
	now := func(ret int64, errno string) func() (int64, string, bool) {
		return func() (int64, string, bool) { return ret, errno, true }
	}
	switch c.Name {
	case "socket":
		if v, _ := value(arg(1)); v != 1 {
			return nil, r.unsupported("socket type %s", arg(1))
		}
		fd := r.lowestFD()
		r.fds[fd] = &socket{fd: fd}
		return now(int64(fd), ""), nil
	case "bind":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		s.bound = true
		return now(0, ""), nil
	case "listen":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		backlog, _ := value(arg(1))
		l, lerr := r.st.ListenBacklog("tcp", fmt.Sprintf(":%d", localPort), int(max(backlog, 1)))
		if lerr != nil {
			return now(-1, errnoOf(lerr)), nil
		}
		s.l = l
		return now(0, ""), nil
	case "accept", "accept4":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		if s.l == nil {
			return now(-1, "EINVAL"), nil
		}
		return func() (int64, string, bool) {
			conn, aerr := s.l.AcceptNonblock()
			if aerr != nil {
				if errnoOf(aerr) == "EAGAIN" && !s.nonblock {
					return 0, "", false
				}
				return -1, errnoOf(aerr), true
			}
			fd := r.lowestFD()
			ns := &socket{fd: fd, c: conn, rcvbuf: s.rcvbuf, sndbuf: s.sndbuf, nodelay: s.nodelay, keepalive: s.keepalive, linger: s.linger}
			r.applyOptions(ns)
			r.fds[fd] = ns
			return int64(fd), "", true
		}, nil
	case "connect":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		if s.c != nil {
			if s.c.Established() {
				return now(-1, "EISCONN"), nil
			}
			return now(-1, "EALREADY"), nil
		}
		conn, derr := r.st.DialNonblock("tcp", fmt.Sprintf("%s:%d", remoteAddr, connectTo))
		if derr != nil {
			return now(-1, errnoOf(derr)), nil
		}
		s.c = conn
		r.applyOptions(s)
		if s.nonblock {
			return now(-1, "EINPROGRESS"), nil
		}
		return func() (int64, string, bool) {
			if err := conn.Err(); err != nil {
				s.errReported = true
				return -1, errnoOf(err), true
			}
			if conn.Established() {
				return 0, "", true
			}
			return 0, "", false
		}, nil
	case "read", "recv", "recvfrom":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		n, ok := value(arg(2))
		if !ok {
			return nil, r.unsupported("%s length %s", c.Name, arg(2))
		}
		flags := int64(0)
		if c.Name != "read" {
			flags, _ = value(arg(3))
		}
		peek := flags&constants["MSG_PEEK"] != 0
		dontwait := flags&constants["MSG_DONTWAIT"] != 0
		buf := make([]byte, n)
		return func() (int64, string, bool) {
			if s.c == nil {
				return -1, "ENOTCONN", true
			}
			k, rerr := s.c.ReadNonblock(buf, peek)
			switch {
			case rerr == io.EOF:
				return 0, "", true
			case rerr != nil && errnoOf(rerr) == "EAGAIN" && !s.nonblock && !dontwait:
				return 0, "", false
			case rerr != nil && errnoOf(rerr) != "EAGAIN" && s.errReported:
				// A kernel reports a connection's error once (and clears
				// it); reads after that see the end of the stream.
				return 0, "", true
			case rerr != nil:
				if errnoOf(rerr) != "EAGAIN" {
					s.errReported = true
				}
				return -1, errnoOf(rerr), true
			}
			return int64(k), "", true
		}, nil
	case "write", "send", "sendto":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		n, ok := value(arg(2))
		if !ok {
			return nil, r.unsupported("%s length %s", c.Name, arg(2))
		}
		if c.Name != "write" {
			if f, ok := arg(3).(Ident); ok && f == "MSG_FASTOPEN" || strings.Contains(arg(3).String(), "MSG_FASTOPEN") {
				return nil, r.unsupported("TCP Fast Open (MSG_FASTOPEN)")
			}
		}
		data := make([]byte, n)
		written := 0
		return func() (int64, string, bool) {
			if s.c == nil {
				return -1, "EPIPE", true
			}
			k, werr := s.c.WriteNonblock(data[written:])
			written += k
			switch {
			case werr != nil && errnoOf(werr) == "EAGAIN":
				if s.nonblock {
					if written > 0 {
						return int64(written), "", true
					}
					return -1, "EAGAIN", true
				}
				return 0, "", false
			case werr != nil:
				if written > 0 {
					return int64(written), "", true
				}
				if s.errReported {
					// The error was reported already (and cleared, as a
					// kernel does): what is left is a shut-down socket.
					return -1, "EPIPE", true
				}
				s.errReported = true
				return -1, errnoOf(werr), true
			case written < len(data) && !s.nonblock:
				return 0, "", false
			}
			return int64(written), "", true
		}, nil
	case "close":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		delete(r.fds, s.fd)
		if s.l != nil {
			s.l.Close()
		}
		if s.c != nil {
			s.c.Close()
		}
		return now(0, ""), nil
	case "shutdown":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		how, _ := value(arg(1))
		if s.c == nil {
			return now(-1, "ENOTCONN"), nil
		}
		if how == 0 || how == 2 {
			s.c.CloseRead()
		}
		if how == 1 || how == 2 {
			s.c.CloseWrite()
		}
		return now(0, ""), nil
	case "fcntl":
		s, err := sock()
		if err != nil {
			return nil, err
		}
		cmd, _ := value(arg(1))
		switch cmd {
		case constants["F_GETFL"]:
			flags := constants["O_RDWR"]
			if s.nonblock {
				flags |= constants["O_NONBLOCK"]
			}
			return now(flags, ""), nil
		case constants["F_SETFL"]:
			flags, ok := value(arg(2))
			if !ok {
				return nil, r.unsupported("fcntl flags %s", arg(2))
			}
			s.nonblock = flags&constants["O_NONBLOCK"] != 0
			return now(0, ""), nil
		}
		return nil, r.unsupported("fcntl %s", arg(1))
	case "setsockopt":
		return r.setsockopt(c, arg)
	case "getsockopt":
		return r.getsockopt(c, arg)
	}
	return nil, r.unsupported("the %s call", c.Name)
}

// lowestFD is the descriptor a new socket gets: the lowest one free, as
// a kernel allocates them (a script that closes 4 and accepts again gets
// 4 back).
func (r *runner) lowestFD() int {
	fd := firstFD
	for r.fds[fd] != nil {
		fd++
	}
	return fd
}

// applyOptions sets remembered options on a socket's new connection.
func (r *runner) applyOptions(s *socket) {
	if s.c == nil {
		return
	}
	if s.rcvbuf > 0 {
		s.c.SetReadBuffer(s.rcvbuf)
	}
	if s.sndbuf > 0 {
		s.c.SetWriteBuffer(s.sndbuf)
	}
	if s.nodelay {
		s.c.SetNoDelay(true)
	}
	if s.keepalive {
		s.c.SetKeepAlive(true)
	}
	if s.linger != nil {
		s.c.SetLinger(*s.linger)
	}
}

func (r *runner) setsockopt(c *Call, arg func(int) Expr) (func() (int64, string, bool), error) {
	fd, _ := value(arg(0))
	s := r.fds[int(fd)]
	if s == nil {
		return nil, r.fail("setsockopt: file descriptor %d is not open", fd)
	}
	opt, ok := arg(2).(Ident)
	if !ok {
		return nil, r.unsupported("setsockopt option %s", arg(2))
	}
	done := func() (int64, string, bool) { return 0, "", true }
	switch opt {
	case "SO_REUSEADDR", "SO_REUSEPORT":
		return done, nil
	case "SO_RCVBUF", "SO_SNDBUF", "TCP_NODELAY", "SO_KEEPALIVE":
		v, ok := value(arg(3))
		if !ok {
			return nil, r.unsupported("setsockopt %s value %s", opt, arg(3))
		}
		switch opt {
		case "SO_RCVBUF":
			s.rcvbuf = int(v)
		case "SO_SNDBUF":
			s.sndbuf = int(v)
		case "TCP_NODELAY":
			s.nodelay = v != 0
		case "SO_KEEPALIVE":
			s.keepalive = v != 0
		}
	case "SO_LINGER":
		st, ok := arg(3).(Struct)
		if !ok || len(st) != 2 {
			return nil, r.unsupported("setsockopt SO_LINGER value %s", arg(3))
		}
		on, _ := value(st[0].Value)
		secs, _ := value(st[1].Value)
		l := -1
		if on != 0 {
			l = int(secs)
		}
		s.linger = &l
	default:
		return nil, r.unsupported("setsockopt %s", opt)
	}
	r.applyOptions(s)
	return done, nil
}

func (r *runner) getsockopt(c *Call, arg func(int) Expr) (func() (int64, string, bool), error) {
	fd, _ := value(arg(0))
	s := r.fds[int(fd)]
	if s == nil {
		return nil, r.fail("getsockopt: file descriptor %d is not open", fd)
	}
	opt, ok := arg(2).(Ident)
	if !ok {
		return nil, r.unsupported("getsockopt option %s", arg(2))
	}
	var got int64
	var gotErr string
	switch opt {
	case "SO_ERROR":
		// The error that ended the connection, reported once (reading it
		// clears it, as on Linux and BSD).
		if s.c != nil && !s.errReported {
			if err := s.c.Err(); err != nil {
				gotErr = errnoOf(err)
				s.errReported = true
			}
		}
	case "SO_RCVBUF", "SO_SNDBUF":
		want, _ := value(arg(3))
		if s.c != nil {
			in := s.c.Info()
			got = int64(in.RcvBuf)
			if opt == "SO_SNDBUF" {
				got = int64(in.SndBuf)
			}
		} else {
			got = want
		}
		if got != want {
			if r.opts.Lenient {
				r.ignore("socket buffer sizes (getsockopt " + string(opt) + ")")
				return func() (int64, string, bool) { return 0, "", true }, nil
			}
			return nil, r.fail("getsockopt %s is %d, the script expects %d", opt, got, want)
		}
		return func() (int64, string, bool) { return 0, "", true }, nil
	case "TCP_NODELAY":
		if s.nodelay {
			got = 1
		}
	case "SO_KEEPALIVE":
		if s.keepalive {
			got = 1
		}
	default:
		return nil, r.unsupported("getsockopt %s", opt)
	}
	if opt == "SO_ERROR" {
		want := arg(3)
		if l, ok := want.(List); ok && len(l) == 1 {
			want = l[0]
		}
		name := ""
		switch w := want.(type) {
		case Ident:
			name = string(w)
		case Int:
			if w != 0 {
				name = "errno" + strconv.Itoa(int(w))
			}
		}
		if !sameErrno(name, gotErr) {
			if gotErr == "" {
				gotErr = "0"
			}
			if name == "" {
				name = "0"
			}
			return nil, r.fail("getsockopt SO_ERROR is %s, the script expects %s", gotErr, name)
		}
		return func() (int64, string, bool) { return 0, "", true }, nil
	}
	if want, ok := value(arg(3)); ok && want != got {
		return nil, r.fail("getsockopt %s is %d, the script expects %d", opt, got, want)
	}
	return func() (int64, string, bool) { return 0, "", true }, nil
}
