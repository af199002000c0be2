package stack

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"runtime/debug"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tund-project/tund/tcp"
)

// The control socket lets a separate process look inside a running stack:
// `tund ss` and `tund stats` connect to it. It is a unix stream socket
// (so it works across network namespaces: it lives in the filesystem),
// one request per connection: the client writes a command word and a
// newline, the server answers with one JSON document and closes.
//
//	connections  → []ControlConn, every connection and TIME-WAIT entry
//	states       → map of RFC state name to count
//	stats        → Stats
//	gc           → Stats, after a garbage collection that also returns
//	               free memory to the OS, so HeapBytes and the process's
//	               RSS show what is live (for load tests)
//
// A program adds commands of its own with HandleControl (tund's "dial");
// theirs answer in lines, streamed as they come.

// ControlConn is one line of `tund ss`, as the control socket sends it.
type ControlConn struct {
	State       string `json:"state"` // RFC 9293 name, e.g. "TIME-WAIT"
	Local       string `json:"local"`
	Remote      string `json:"remote"` // "*:*" for a listener
	SendQ       int    `json:"send_q"`
	RecvQ       int    `json:"recv_q"`
	Timer       string `json:"timer,omitempty"`    // retransmit, delack, persist, timewait, finwait2
	TimerLeftMs int64  `json:"timer_ms,omitempty"` // until it fires
	MSS         int    `json:"mss,omitempty"`
	Cwnd        int    `json:"cwnd,omitempty"`
	SSThresh    int    `json:"ssthresh,omitempty"`
	SndWnd      int    `json:"snd_wnd,omitempty"`
	RcvWnd      int    `json:"rcv_wnd,omitempty"`
	RcvBuf      int    `json:"rcv_buf,omitempty"`
	CC          string `json:"cc,omitempty"`
	SACK        bool   `json:"sack,omitempty"`
	TS          bool   `json:"ts,omitempty"`
	SndBuf      int    `json:"snd_buf,omitempty"`
	SRTTMicros  int64  `json:"srtt_us,omitempty"`
	RTOMicros   int64  `json:"rto_us,omitempty"`
	Retransmits uint64 `json:"retransmits,omitempty"`
	Timeouts    uint64 `json:"timeouts,omitempty"`
	Recoveries  uint64 `json:"recoveries,omitempty"`
	Probes      uint64 `json:"probes,omitempty"`
	DSACKs      uint64 `json:"dsacks,omitempty"`
	// Loss recovery: state ("open", "recovery", "loss"), RACK's
	// reordering window, RTT and min RTT, PRR's delivered and sent
	// bytes, bytes SACKed and judged lost, episodes undone as spurious.
	LossState      string `json:"loss,omitempty"`
	ReoWndMicros   int64  `json:"reo_wnd_us,omitempty"`
	RACKRTTMicros  int64  `json:"rack_rtt_us,omitempty"`
	MinRTTMicros   int64  `json:"min_rtt_us,omitempty"`
	PRRDelivered   int    `json:"prr_delivered,omitempty"`
	PRROut         int    `json:"prr_out,omitempty"`
	SACKed         int    `json:"sacked,omitempty"`
	Lost           int    `json:"lost,omitempty"`
	SpuriousUndone uint64 `json:"spurious_undone,omitempty"`
	RTOMinMicros   int64  `json:"rto_min_us,omitempty"` // the RTO's floor
	BytesInFlight  int    `json:"in_flight,omitempty"`
	SynQueue       int    `json:"syn_q,omitempty"` // a listener's half-open connections
	Note           string `json:"note,omitempty"`  // Conn.SetNote
}

// ListenControl opens the control socket at path. For as long as the
// listener is open it holds an exclusive lock (flock) on PATH.lock, so a
// second stack asked to serve the same path fails at once with an error
// naming it, however slow the first is to answer; the kernel drops the
// lock when its holder dies, so whoever gets the lock knows a socket
// file left at path is stale and replaces it (unless some process that
// does not take the lock answers on it). Closing the listener removes
// the socket and the lock file.
func ListenControl(path string) (net.Listener, error) {
	lockPath := path + ".lock"
	lock, err := lockControl(lockPath)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	l, err := listenControlLocked(path)
	if err != nil {
		unlockControl(lock, lockPath)
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return &controlListener{Listener: l, lock: lock, lockPath: lockPath}, nil
}

// listenControlLocked listens on path once the lock is held.
func listenControlLocked(path string) (net.Listener, error) {
	if fi, err := os.Lstat(path); err == nil {
		if fi.Mode().Type() != os.ModeSocket {
			return nil, errors.New("exists and is not a socket; not touching it")
		}
		// Stale for every stack that takes the lock; a process that
		// does not (an older tund, something else) may still serve it.
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, errors.New("another process is serving it")
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
	}
	return net.Listen("unix", path)
}

// lockControl takes the exclusive lock on lockPath without waiting. A
// holder removes the file as it lets go, so the lock taken must be on
// the file that is at lockPath now, not on one just unlinked: checked,
// and tried again if not.
func lockControl(lockPath string) (*os.File, error) {
	for try := 0; ; try++ {
		f, err := os.OpenFile(lockPath, os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return nil, err
		}
		if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
			f.Close()
			if errors.Is(err, unix.EWOULDBLOCK) {
				return nil, fmt.Errorf("another process holds %s (another tund serving the same path?)", lockPath)
			}
			return nil, fmt.Errorf("lock %s: %w", lockPath, err)
		}
		held, err1 := f.Stat()
		now, err2 := os.Stat(lockPath)
		if err1 == nil && err2 == nil && os.SameFile(held, now) {
			return f, nil
		}
		f.Close()
		if try == 3 {
			return nil, fmt.Errorf("lock %s: the file keeps changing under us", lockPath)
		}
	}
}

// unlockControl removes the lock file, while still holding the lock so
// no one else can be holding it on the file removed, and lets go.
func unlockControl(f *os.File, lockPath string) {
	os.Remove(lockPath)
	f.Close()
}

// controlListener is the control socket's listener with its lock.
type controlListener struct {
	net.Listener
	lock     *os.File
	lockPath string
	once     sync.Once
}

// Close closes the listener (which removes the socket file) and then
// the lock file.
func (l *controlListener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() { unlockControl(l.lock, l.lockPath) })
	return err
}

// ServeControl answers control requests on l until ctx is done or l is
// closed. Each request is served on its own goroutine.
func (s *Stack) ServeControl(ctx context.Context, l net.Listener) error {
	stop := context.AfterFunc(ctx, func() { l.Close() })
	defer stop()
	for {
		c, err := l.Accept()
		if err != nil {
			if ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return nil
			}
			return err
		}
		go s.serveControlConn(c)
	}
}

// ControlCommand is a control-socket command a program adds with
// HandleControl: it gets the rest of the request line and writes its
// answer to w as it goes (a long one streams: the client prints it as it
// comes). ctx ends when the stack or the client goes away.
type ControlCommand func(ctx context.Context, args string, w io.Writer) error

// HandleControl adds the command name to the control socket, before
// ServeControl is called: a request line "name ARGS" runs cmd, without the
// 10 s limit of the built-in commands, and an error it returns is
// written as a last line "error: ...".
func (s *Stack) HandleControl(name string, cmd ControlCommand) {
	s.ctlMu.Lock()
	defer s.ctlMu.Unlock()
	if s.ctlCmds == nil {
		s.ctlCmds = map[string]ControlCommand{}
	}
	s.ctlCmds[name] = cmd
}

func (s *Stack) serveControlConn(c net.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return
	}
	name, args, _ := strings.Cut(strings.TrimSpace(line), " ")
	s.ctlMu.Lock()
	extra := s.ctlCmds[name]
	s.ctlMu.Unlock()
	if extra != nil {
		_ = c.SetDeadline(time.Time{})
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		go func() { // the stack stops
			select {
			case <-s.stopped:
				cancel()
			case <-ctx.Done():
			}
		}()
		go func() { // the client hangs up (or we close c when done)
			_, _ = io.Copy(io.Discard, c)
			cancel()
		}()
		if err := extra(ctx, args, c); err != nil {
			fmt.Fprintf(c, "error: %v\n", err)
		}
		return
	}
	var v any
	switch cmd := strings.TrimSpace(line); cmd {
	case "connections":
		v = s.controlConnections()
	case "states":
		counts := map[string]int{}
		for st, n := range s.StateCounts() {
			counts[st.String()] = n
		}
		v = counts
	case "stats":
		v = s.Stats()
	case "gc":
		debug.FreeOSMemory() // runs a garbage collection first
		v = s.Stats()
	default:
		v = map[string]string{"error": fmt.Sprintf("unknown command %q", cmd)}
	}
	w := bufio.NewWriter(c)
	_ = json.NewEncoder(w).Encode(v)
	_ = w.Flush()
}

func (s *Stack) controlConnections() []ControlConn {
	infos := s.Connections()
	out := make([]ControlConn, len(infos))
	for i, ci := range infos {
		remote := "*:*"
		if ci.Remote.IsValid() {
			remote = ci.Remote.String()
		}
		out[i] = ControlConn{
			State: ci.State.String(), Local: ci.Local.String(), Remote: remote,
			SendQ: ci.SendQ, RecvQ: ci.RecvQ, Timer: ci.Timer, TimerLeftMs: ci.TimerAt.Milliseconds(),
			MSS: ci.MSS, Cwnd: ci.Cwnd, SSThresh: ci.SSThresh, SndWnd: ci.SndWnd, RcvWnd: ci.RcvWnd,
			RcvBuf: ci.RcvBuf, SndBuf: ci.SndBuf, CC: ci.CC, SACK: ci.SACK, TS: ci.TS,
			SRTTMicros: ci.SRTT.Microseconds(), RTOMicros: ci.RTO.Microseconds(),
			Retransmits: ci.Retransmits, Timeouts: ci.Timeouts, Recoveries: ci.Recoveries, Probes: ci.Probes,
			DSACKs: ci.DSACKs, BytesInFlight: ci.SndNxt.Sub(ci.SndUna), SynQueue: ci.SynQueue, Note: ci.Note,
			LossState: ci.LossState, ReoWndMicros: ci.ReoWnd.Microseconds(), RACKRTTMicros: ci.RACKRTT.Microseconds(),
			MinRTTMicros: ci.MinRTT.Microseconds(), PRRDelivered: ci.PRRDelivered, PRROut: ci.PRROut,
			SACKed: ci.SACKed, Lost: ci.Lost, SpuriousUndone: ci.SpuriousUndone, RTOMinMicros: ci.RTOMin.Microseconds(),
		}
		if ci.State == tcp.TimeWait || ci.State == tcp.Listen {
			out[i].BytesInFlight = 0
		}
	}
	return out
}

// QueryControl sends cmd to the control socket at path and decodes the
// answer into v.
func QueryControl(ctx context.Context, path, cmd string, v any) error {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w (is tund running? see -control)", path, err)
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	if _, err := fmt.Fprintf(c, "%s\n", cmd); err != nil {
		return err
	}
	raw, err := bufio.NewReader(c).ReadBytes(0)
	if err != nil && len(raw) == 0 {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	var e struct {
		Error string `json:"error"`
	}
	if json.Unmarshal(raw, &e) == nil && e.Error != "" {
		return errors.New(e.Error)
	}
	return json.Unmarshal(raw, v)
}
