package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
)

// blPrefixServer accepts on l until it is closed; each connection gets
// one line back with prefix in front, then is closed.
func blPrefixServer(l net.Listener, prefix string) {
	for {
		c, err := l.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(30 * time.Second))
			line, err := bufio.NewReader(c).ReadString('\n')
			if err != nil {
				return
			}
			_, _ = io.WriteString(c, prefix+line)
		}()
	}
}

// blExchange sends line on c and checks the prefixed answer.
func blExchange(c net.Conn, prefix, line string) error {
	_ = c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, line+"\n"); err != nil {
		return fmt.Errorf("write: %w", err)
	}
	got, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read: %w (got %q)", err, got)
	}
	if want := prefix + line + "\n"; got != want {
		return fmt.Errorf("reply %q, want %q", got, want)
	}
	return nil
}

// TestSmallBacklogNeverAccepting: a backlog of 2 that nobody accepts
// from holds exactly 2 kernel clients in its accept queue (their connect
// completes on the SYN+ACK); the SYNs of 3 more, which find the accept
// queue full, are dropped silently, again on every retransmission, until
// the application starts accepting. Then all 5 get in and talk. SYN
// cookies are off: this is the plain backlog (and with cookies on, a
// full accept queue drops SYNs all the same).
func TestSmallBacklogNeverAccepting(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStackCfg(t, ns, stack.Config{NoSynCookies: true}, nil)
	l, err := st.ListenBacklog("tcp", ":8000", 2)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()

	const n = 5
	const prefix = "backlog says: "
	type result struct {
		i       int
		err     error
		elapsed time.Duration
	}
	var dialed atomic.Int32
	results := make(chan result, n)
	start := time.Now()
	client := func(i int) {
		c, err := nsDial(t, ns, stackAddr+":8000", 0) // 20 s timeout
		if err != nil {
			results <- result{i, fmt.Errorf("dial: %w", err), time.Since(start)}
			return
		}
		defer c.Close()
		dialed.Add(1)
		err = blExchange(c, prefix, fmt.Sprintf("client %d of %d", i, n))
		results <- result{i, err, time.Since(start)}
	}
	// Two fill the accept queue; the other three come after.
	go client(0)
	go client(1)
	if !waitFor(10*time.Second, func() bool { return dialed.Load() == 2 && st.StateCounts()[tcp.Established] == 2 }) {
		t.Fatalf("the first 2 clients did not get in: %d dials done, stack states %v", dialed.Load(), st.StateCounts())
	}
	for i := 2; i < n; i++ {
		go client(i)
	}

	backlogFull := func() uint64 { return st.Stats().Drops["backlog_full"] }
	var synSent []string
	ok := waitFor(10*time.Second, func() bool {
		if dialed.Load() != 2 || backlogFull() < 3 || st.StateCounts()[tcp.Established] != 2 {
			return false
		}
		synSent = kernelSS(t, ns, "state", "syn-sent")
		return len(synSent) == 3
	})
	if !ok {
		t.Fatalf("want 2 dials done, 3 kernel sockets in SYN-SENT, backlog_full >= 3, 2 ESTABLISHED on the stack; "+
			"got %d dials, kernel SYN-SENT %q, backlog_full %d, stack states %v",
			dialed.Load(), kernelSS(t, ns, "state", "syn-sent"), backlogFull(), st.StateCounts())
	}
	first := backlogFull()
	t.Logf("after %v: 2 queued, 3 in SYN-SENT, backlog_full=%d", time.Since(start).Round(time.Millisecond), first)

	// Hold: the kernel retransmits its SYNs at ~1 s; they must be dropped
	// again, and no more than 2 get in.
	time.Sleep(1500 * time.Millisecond)
	if !waitFor(5*time.Second, func() bool { return backlogFull() >= first+3 }) {
		t.Errorf("backlog_full stayed at %d (was %d): the kernel's SYN retransmissions were not dropped as backlog_full",
			backlogFull(), first)
	}
	if d := dialed.Load(); d != 2 {
		t.Fatalf("%d dials completed while nobody accepted on a backlog of 2, want 2", d)
	}
	if got := st.StateCounts(); got[tcp.Established] != 2 || got[tcp.SynReceived] != 0 {
		t.Fatalf("stack states while held: %v, want ESTABLISHED 2 and no SYN-RECEIVED", got)
	}
	if ss := kernelSS(t, ns, "state", "syn-sent"); len(ss) != 3 {
		t.Fatalf("kernel SYN-SENT while held: %q, want 3 lines", ss)
	}
	t.Logf("after %v: still 2 in, backlog_full=%d", time.Since(start).Round(time.Millisecond), backlogFull())

	acceptAt := time.Since(start)
	go blPrefixServer(l, prefix)
	var last time.Duration
	deadline := time.After(40 * time.Second)
	for i := 0; i < n; i++ {
		select {
		case r := <-results:
			if r.err != nil {
				t.Errorf("client %d after %v: %v", r.i, r.elapsed.Round(time.Millisecond), r.err)
			}
			last = max(last, r.elapsed)
		case <-deadline:
			t.Fatalf("only %d of %d clients finished", i, n)
		}
	}
	t.Logf("accepting from %v; the last of %d clients finished %v after the dials began; backlog_full=%d in all",
		acceptAt.Round(time.Millisecond), n, last.Round(time.Millisecond), backlogFull())
}

// TestClientGetsInWhenSynQueueIsFullOfHalfOpen: two kernel clients from
// 198.18.0.9 whose final handshake ACK an nftables rule drops leave the
// stack with a SYN queue (backlog 2) full of SYN-RECEIVED. With SYN
// cookies on (the default), a third client from 198.18.0.1 gets in at
// once, statelessly. With them off, its first SYN is dropped (the
// half-open entries are younger than a retransmission timeout), and its
// retransmission a second later takes the place of the oldest of them,
// whose SYN+ACK has gone unanswered for a whole timeout by then (RFC 4987
// §3.4); before that recycling, the SYN queue stayed full for the 63 s of
// SYN+ACK retries and the dial timed out.
func TestClientGetsInWhenSynQueueIsFullOfHalfOpen(t *testing.T) {
	need(t)
	needTool(t, "nft")
	for _, cookies := range []bool{true, false} {
		t.Run(fmt.Sprintf("SynCookies=%v", cookies), func(t *testing.T) {
			ns := newNetNS(t)
			st := startLibraryStackCfg(t, ns, stack.Config{NoSynCookies: !cookies}, nil)
			l, err := st.ListenBacklog("tcp", ":8001", 2)
			if err != nil {
				t.Fatal(err)
			}
			defer l.Close()
			const prefix = "cookie says: "
			go blPrefixServer(l, prefix)

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			const halfOpenAddr = "198.18.0.9"
			if out, err := inNS(ctx, ns, "ip", "addr", "add", halfOpenAddr+"/24", "dev", "tund0").CombinedOutput(); err != nil {
				t.Fatalf("ip addr add: %v\n%s", err, out)
			}
			nft := inNS(ctx, ns, "nft", "-f", "-")
			nft.Stdin = strings.NewReader(`table ip tundbl {
	chain out {
		type filter hook output priority 0;
		ip saddr ` + halfOpenAddr + ` tcp flags & (syn|ack|fin|rst) == ack counter drop
	}
}
`)
			if out, err := nft.CombinedOutput(); err != nil {
				t.Fatalf("nft: %v\n%s", err, out)
			}

			for i := 0; i < 2; i++ {
				c, err := nsDialOpts(ns, stackAddr+":8001", dialOpts{srcIP: halfOpenAddr, timeout: 5 * time.Second})
				if err != nil {
					t.Fatalf("half-open dial %d from %s: %v", i, halfOpenAddr, err)
				}
				defer c.Close()
			}
			if !waitFor(5*time.Second, func() bool { return st.StateCounts()[tcp.SynReceived] == 2 }) {
				t.Fatalf("stack states %v, want SYN-RECEIVED 2 (the final ACKs from %s should be dropped)",
					st.StateCounts(), halfOpenAddr)
			}

			before := st.Stats()
			t0 := time.Now()
			c, err := nsDialOpts(ns, stackAddr+":8001", dialOpts{timeout: 10 * time.Second})
			took := time.Since(t0)
			after := st.Stats()
			states := st.StateCounts()
			if !cookies {
				if err != nil {
					t.Fatalf("without SYN cookies, dial with the SYN queue full of stale half-open connections: %v (stats %+v, states %v)", err, after, states)
				}
				defer c.Close()
				if err := blExchange(c, prefix, "let me in"); err != nil {
					t.Fatal(err)
				}
				after = st.Stats()
				if after.Drops["syn_queue_full"] < 1 {
					t.Errorf("syn_queue_full = %d: the first SYN, with the half-open entries younger than an RTO, should have been dropped",
						after.Drops["syn_queue_full"])
				}
				if after.HalfOpenEvicted != 1 {
					t.Errorf("HalfOpenEvicted = %d, want 1 (the oldest half-open entry)", after.HalfOpenEvicted)
				}
				if after.SynCookiesSent != 0 {
					t.Errorf("SynCookiesSent = %d with SYN cookies off", after.SynCookiesSent)
				}
				if got := st.StateCounts()[tcp.SynReceived]; got != 1 {
					t.Errorf("SYN-RECEIVED %d after the recycling, want the younger half-open entry still there", got)
				}
				t.Logf("client connected in %v after its SYN was dropped (syn_queue_full %d) and a stale half-open entry was evicted (%d)",
					took.Round(time.Millisecond), after.Drops["syn_queue_full"], after.HalfOpenEvicted)
				return
			}
			if err != nil {
				t.Fatalf("dial with the SYN queue full of half-open connections and SYN cookies on: %v (stats %+v, states %v)", err, after, states)
			}
			defer c.Close()
			if err := blExchange(c, prefix, "let me in"); err != nil {
				t.Fatal(err)
			}
			after = st.Stats()
			if after.SynCookiesSent < 1 || after.SynCookiesValid < 1 {
				t.Errorf("SynCookiesSent %d, SynCookiesValid %d, want both >= 1", after.SynCookiesSent, after.SynCookiesValid)
			}
			if got := st.StateCounts()[tcp.SynReceived]; got != 2 {
				t.Errorf("SYN-RECEIVED %d after the cookie client, want the 2 half-open ones still there", got)
			}
			t.Logf("cookie client connected in %v; SynCookiesSent %d→%d, SynCookiesValid %d→%d, bad_syn_cookie %d, backlog_full %d",
				took.Round(time.Millisecond), before.SynCookiesSent, after.SynCookiesSent,
				before.SynCookiesValid, after.SynCookiesValid, after.Drops["bad_syn_cookie"], after.Drops["backlog_full"])
		})
	}
}

// TestCloseWaitLeakVisibleInTundSS: an application that never closes its
// connections leaves them in CLOSE-WAIT once the peers hang up; `tund ss`
// on the control socket shows them with their unread bytes.
func TestCloseWaitLeakVisibleInTundSS(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	tr := &tracer{}
	st := startLibraryStackCfg(t, ns, stack.Config{Trace: tr.trace}, nil)
	ctlPath := filepath.Join(t.TempDir(), "ctl.sock")
	cl, err := stack.ListenControl(ctlPath)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- st.ServeControl(ctx, cl) }()
	t.Cleanup(func() {
		cancel()
		if err := <-served; err != nil {
			t.Errorf("ServeControl: %v", err)
		}
	})

	l, err := st.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var (
		mu     sync.Mutex
		leaked []net.Conn
	)
	closeLeaked := func() {
		mu.Lock()
		defer mu.Unlock()
		for _, c := range leaked {
			c.Close()
		}
		leaked = nil
	}
	defer closeLeaked()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			leaked = append(leaked, c)
			mu.Unlock()
		}
	}()

	const n = 3
	peers := map[string]bool{}
	for i := 0; i < n; i++ {
		c, err := nsDial(t, ns, stackAddr+":8080", 0)
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		peers[c.LocalAddr().String()] = true
		if _, err := io.WriteString(c, "hi"); err != nil {
			t.Fatal(err)
		}
		c.Close()
	}
	if !waitFor(10*time.Second, func() bool { return st.StateCounts()[tcp.CloseWait] == n }) {
		t.Fatalf("stack states %v, want CLOSE-WAIT %d", st.StateCounts(), n)
	}

	runSS := func(args ...string) (string, string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, tundBin, append([]string{"ss"}, args...)...)
		var stdout, stderr strings.Builder
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		err := cmd.Run()
		return stdout.String(), stderr.String(), err
	}
	mustSS := func(args ...string) []string {
		t.Helper()
		out, errOut, err := runSS(args...)
		if err != nil {
			t.Fatalf("tund ss %v: %v\nstdout:\n%s\nstderr:\n%s", args, err, out, errOut)
		}
		return strings.Split(strings.TrimRight(out, "\n"), "\n")
	}
	withPrefix := func(lines []string, p string) []string {
		var out []string
		for _, l := range lines {
			if strings.HasPrefix(l, p) {
				out = append(out, l)
			}
		}
		return out
	}

	// The full table.
	lines := mustSS("-control", ctlPath)
	all := strings.Join(lines, "\n")
	t.Logf("tund ss:\n%s", all)
	cw := withPrefix(lines, "CLOSE-WAIT")
	if len(cw) != n {
		t.Errorf("%d CLOSE-WAIT lines, want %d:\n%s", len(cw), n, all)
	}
	for _, line := range cw {
		f := strings.Fields(line)
		if len(f) < 5 {
			t.Errorf("short line %q", line)
			continue
		}
		if f[1] != "2" {
			t.Errorf("Recv-Q %s in %q, want 2 (the unread \"hi\")", f[1], line)
		}
		if f[3] != stackAddr+":8080" {
			t.Errorf("local %s in %q, want %s:8080", f[3], line, stackAddr)
		}
		if !peers[f[4]] {
			t.Errorf("peer %s in %q is none of the kernel clients %v", f[4], line, peers)
		}
	}
	listen := withPrefix(lines, "LISTEN")
	if len(listen) != 1 || !strings.Contains(listen[0], "[::]:8080") {
		t.Errorf("LISTEN lines %q, want one for [::]:8080 (both families)", listen)
	}
	const total = "Total: 4 (LISTEN 1, CLOSE-WAIT 3)"
	if lines[len(lines)-1] != total {
		t.Errorf("last line %q, want %q", lines[len(lines)-1], total)
	}

	// Filtered by state, netstat spelling.
	lines = mustSS("-control", ctlPath, "-state", "close_wait")
	if got := withPrefix(lines, "CLOSE-WAIT"); len(got) != n || len(lines) != n+2 {
		t.Errorf("-state close_wait: want a header, %d CLOSE-WAIT lines and the total, got:\n%s", n, strings.Join(lines, "\n"))
	}

	// Summary only.
	lines = mustSS("-control", ctlPath, "-s")
	if len(lines) != 1 || lines[0] != total {
		t.Errorf("-s: got %q, want only %q", lines, total)
	}

	// No such control socket: a non-zero exit and a one-line error.
	const missing = "/nonexistent"
	out, errOut, err := runSS("-control", missing)
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Errorf("tund ss -control %s: err %v, want a non-zero exit", missing, err)
	}
	if msg := strings.TrimRight(errOut, "\n"); strings.Contains(msg, "\n") || !strings.Contains(msg, missing) {
		t.Errorf("tund ss -control %s: stderr %q, want one line mentioning the path", missing, errOut)
	}
	if out != "" {
		t.Errorf("tund ss -control %s: stdout %q, want nothing", missing, out)
	}

	// Fix the leak. The application reads what it was sent first: closing
	// with unread data would reset the connection instead (RFC 2525,
	// as Linux does), skipping LAST-ACK.
	mu.Lock()
	conns := append([]net.Conn(nil), leaked...)
	mu.Unlock()
	if len(conns) != n {
		t.Fatalf("accepted %d connections, want %d", len(conns), n)
	}
	for _, c := range conns {
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c)
		if err != nil || string(b) != "hi" {
			t.Errorf("%v: read %q, %v; want \"hi\" then EOF", c.RemoteAddr(), b, err)
		}
	}
	closeLeaked()
	if !waitFor(10*time.Second, func() bool {
		s := st.StateCounts()
		return s[tcp.CloseWait] == 0 && s[tcp.LastAck] == 0
	}) {
		t.Fatalf("stack states %v after closing, want no CLOSE-WAIT or LAST-ACK", st.StateCounts())
	}
	for p := range peers {
		hist := tr.of(p)
		want := []string{"CLOSE-WAIT → LAST-ACK", "LAST-ACK → CLOSED"}
		j := 0
		for _, h := range hist {
			if j < len(want) && strings.Contains(h, want[j]) {
				j++
			}
		}
		if j != len(want) {
			t.Errorf("%s: trace lacks %q in order:\n%s", p, want, strings.Join(hist, "\n"))
		}
	}
	lines = mustSS("-control", ctlPath)
	if got := lines[len(lines)-1]; got != "Total: 1 (LISTEN 1)" {
		t.Errorf("after closing: last line %q, want %q", got, "Total: 1 (LISTEN 1)")
	}
}
