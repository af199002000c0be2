package main

import (
	"bytes"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
)

// serve accepts connections on l and hands each to start, which owns it
// from then on, until the listener closes.
func serve(l net.Listener, name string, log *slog.Logger, start func(*stack.Conn)) {
	for {
		c, err := l.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Error("accept failed", "service", name, "err", err)
			}
			return
		}
		start(c.(*stack.Conn)) // the stack's listeners return its connections
	}
}

// onGoroutine serves each connection with handle on a goroutine of its
// own, and closes it when handle returns.
func onGoroutine(handle func(net.Conn)) func(*stack.Conn) {
	return func(c *stack.Conn) {
		go func() {
			defer c.Close()
			handle(c)
		}()
	}
}

// inBursts serves each connection in bursts, for a service that only
// answers what it reads: handle gets the bytes as they come, and ends the
// connection by returning an error. A goroutine runs only while bytes
// wait to be read; in between, the connection waits for the next with
// no goroutine, so no goroutine stack, and no buffer
// (stack.Conn.NotifyReadable): an idle connection costs the stack's
// bookkeeping alone. The buffers are shared by every connection. At the
// peer's FIN, or an error, the connection is closed.
func inBursts(handle func(c *stack.Conn, p []byte) error) func(*stack.Conn) {
	return func(c *stack.Conn) {
		b := &burster{c: c, handle: handle}
		b.wake = func() { go b.run() }
		c.NotifyReadable(b.wake)
	}
}

// burster is what a connection served in bursts keeps between them.
type burster struct {
	c      *stack.Conn
	handle func(c *stack.Conn, p []byte) error
	wake   func() // starts a burst (made once: a method value would allocate at every NotifyReadable)
}

// copyBufs are the bursts' read buffers, shared by every connection.
var copyBufs = sync.Pool{New: func() any {
	b := make([]byte, 32<<10)
	return &b
}}

// run reads and handles what is ready, then waits for more with no
// goroutine, or closes the connection.
func (b *burster) run() {
	bp := copyBufs.Get().(*[]byte)
	defer copyBufs.Put(bp)
	for {
		n, err := b.c.ReadNonblock(*bp, false)
		if n > 0 {
			if err = b.handle(b.c, (*bp)[:n]); err == nil {
				continue
			}
		}
		if errors.Is(err, syscall.EAGAIN) {
			b.c.NotifyReadable(b.wake)
			return
		}
		b.c.Close()
		return
	}
}

// echo (RFC 862) sends back everything it receives; it closes after the
// peer's FIN.
func echo(c *stack.Conn, p []byte) error {
	_, err := c.Write(p)
	return err
}

// discarded counts the bytes the discard service has thrown away, for
// GET /stats.
var discarded atomic.Int64

// discard (RFC 863) reads and throws away everything.
func discard(_ *stack.Conn, p []byte) error {
	discarded.Add(int64(len(p)))
	return nil
}

// chargenBlock is the RFC 864 pattern: 95 lines of 72 printable
// characters, each starting one character further along.
var chargenBlock = func() []byte {
	const chars = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~"
	var b bytes.Buffer
	for i := 0; i < len(chars); i++ {
		for j := 0; j < 72; j++ {
			b.WriteByte(chars[(i+j)%len(chars)])
		}
		b.WriteString("\r\n")
	}
	return b.Bytes()
}()

// chargen (RFC 864) sends the character pattern until the peer goes away.
func chargen(c net.Conn) {
	go func() { _, _ = io.Copy(io.Discard, c) }() // RFC 864: data received is thrown away
	for {
		if _, err := c.Write(chargenBlock); err != nil {
			return
		}
	}
}

// maxBytes caps GET /bytes/N.
const maxBytes = 1 << 36

// httpHandler serves the built-in web pages.
func httpHandler(st *stack.Stack) http.Handler {
	mux := http.NewServeMux()
	pattern := bytes.Repeat([]byte("tund "), 64<<10/5)
	mux.HandleFunc("GET /bytes/{n}", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.PathValue("n"), 10, 64)
		if err != nil || n < 0 || n > maxBytes {
			http.Error(w, fmt.Sprintf("bad byte count %q (0..%d)", r.PathValue("n"), int64(maxBytes)), http.StatusBadRequest)
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
	mux.HandleFunc("GET /stats", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		s := st.Stats()
		fmt.Fprintf(w, "packets_in %d\npackets_out %d\nsegments_in %d\nsegments_out %d\n",
			s.PacketsIn, s.PacketsOut, s.SegmentsIn, s.SegmentsOut)
		fmt.Fprintf(w, "resets_sent %d\necho_replies %d\nactive_opens %d\npassive_opens %d\n",
			s.ResetsSent, s.EchoReplies, s.ActiveOpens, s.PassiveOpens)
		fmt.Fprintf(w, "retransmitted_segments %d\nretransmission_timeouts %d\nfast_recoveries %d\ntail_loss_probes %d\ndsacks_received %d\nspurious_recoveries_undone %d\n",
			s.Retransmits, s.Timeouts, s.Recoveries, s.Probes, s.DSACKs, s.Spurious)
		reasons := make([]string, 0, len(s.Drops))
		for r := range s.Drops {
			reasons = append(reasons, r)
		}
		sort.Strings(reasons)
		for _, r := range reasons {
			fmt.Fprintf(w, "drops{reason=%q} %d\n", r, s.Drops[r])
		}
		fmt.Fprintf(w, "time_wait %d\ntime_wait_expired %d\ntime_wait_reused %d\nsyn_cookies_sent %d\nsyn_cookies_valid %d\nhalf_open_evicted %d\nicmp_errors %d\n",
			s.TimeWait, s.TimeWaitExpired, s.TimeWaitReused, s.SynCookiesSent, s.SynCookiesValid, s.HalfOpenEvicted, s.ICMPErrors)
		counts := st.StateCounts()
		for state := tcp.Closed; state <= tcp.TimeWait; state++ {
			if n := counts[state]; n > 0 {
				fmt.Fprintf(w, "connections{state=%q} %d\n", state.String(), n)
			}
		}
		fmt.Fprintf(w, "discard_bytes %d\n", discarded.Load())
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		var b strings.Builder
		var addrs []string
		for _, a := range []netip.Addr{st.Addr(), st.Addr6()} {
			if a.IsValid() {
				addrs = append(addrs, a.String())
			}
		}
		at := html.EscapeString(strings.Join(addrs, " and "))
		fmt.Fprintf(&b, "<!doctype html><title>tund %s</title><h1>tund at %s</h1>\n", at, at)
		b.WriteString("<p>A userspace TCP/IP stack (IPv4 and IPv6). Try <a href=\"/bytes/1048576\">/bytes/1048576</a>.</p>\n")
		b.WriteString("<table border=1 cellpadding=3><tr><th>State</th><th>Local</th><th>Remote</th><th>Send-Q</th><th>Recv-Q</th><th>Timer</th></tr>\n")
		conns := st.Connections()
		const maxRows = 500 // thousands of TIME-WAIT entries make a useless page
		if len(conns) > maxRows {
			fmt.Fprintf(&b, "<p>%d connections; the first %d are listed (tund ss lists all).</p>\n", len(conns), maxRows)
			conns = conns[:maxRows]
		}
		for _, c := range conns {
			remote := "*:*"
			if c.Remote.IsValid() {
				remote = c.Remote.String()
			}
			timer := ""
			if c.Timer != "" {
				timer = fmt.Sprintf("%s (%v)", c.Timer, c.TimerAt.Round(time.Millisecond))
			}
			fmt.Fprintf(&b, "<tr><td>%s</td><td>%s</td><td>%s</td><td>%d</td><td>%d</td><td>%s</td></tr>\n",
				html.EscapeString(c.State.String()), c.Local, html.EscapeString(remote), c.SendQ, c.RecvQ, html.EscapeString(timer))
		}
		b.WriteString("</table>\n")
		_, _ = io.WriteString(w, b.String())
	})
	return mux
}
