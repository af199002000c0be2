package integration

import (
	"errors"
	"io"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tundSS runs `tund ss` against the control socket ctl and returns its
// lines.
func tundSS(t *testing.T, ctl string, args ...string) []string {
	t.Helper()
	out, err := exec.Command(tundBin, append([]string{"ss", "-control", ctl}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("tund ss: %v\n%s", err, out)
	}
	return strings.Split(strings.TrimRight(string(out), "\n"), "\n")
}

// ssLine waits up to 10 s for a `tund ss` line matching re and returns it.
func ssLine(t *testing.T, ctl, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	var last []string
	if waitFor(10*time.Second, func() bool {
		last = tundSS(t, ctl)
		for _, l := range last {
			if rx.MatchString(l) {
				return true
			}
		}
		return false
	}) {
		for _, l := range last {
			if rx.MatchString(l) {
				return l
			}
		}
	}
	t.Fatalf("no tund ss line matches %s:\n%s", re, strings.Join(last, "\n"))
	return ""
}

// TestMisbehavingApps: each -app kind makes its lesson's state happen,
// seen from kernel clients in the namespace and in tund ss and -trace.
func TestMisbehavingApps(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	proc := startTund(t, ns, "-control", ctl, "-trace",
		"-app", "8001=never-close", "-app", "8002=never-accept,backlog=2", "-app", "8003=slow-read,rate=1K",
		"-app", "8004=reset", "-app", "8005=half-close")
	for _, want := range []string{`app=8001=never-close`, `app=8002=never-accept,backlog=2`, `app=8003=slow-read,rate=1024`} {
		want = `app="` + strings.TrimPrefix(want, "app=") + `"` // slog quotes a value with "=" in it
		if !strings.Contains(proc.log(), want) {
			t.Errorf("tund did not log %s:\n%s", want, proc.log())
		}
	}

	t.Run("never-close leaves CLOSE-WAIT", func(t *testing.T) {
		c, err := nsDial(t, ns, stackAddr+":8001", 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Write([]byte("hello")); err != nil {
			t.Fatal(err)
		}
		c.Close()
		ssLine(t, ctl, `^CLOSE-WAIT\s+5\s+0\s+198\.18\.0\.2:8001\s`)
		// The kernel's side waits in FIN-WAIT-2 for a FIN that never comes.
		if !waitFor(5*time.Second, func() bool { return len(kernelSS(t, ns, "state", "fin-wait-2", "dport", "= :8001")) == 1 }) {
			t.Errorf("kernel side not in FIN-WAIT-2: %q", kernelSS(t, ns, "dport", "= :8001"))
		}
	})

	t.Run("never-accept fills the accept queue", func(t *testing.T) {
		var conns []io.Closer
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for range 2 {
			c, err := nsDial(t, ns, stackAddr+":8002", 0)
			if err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		ssLine(t, ctl, `^LISTEN\s+2\s+2\s+\[::\]:8002\s+\*:\*\s+syn-queue 0/2$`)
		// The third finds the accept queue full: its SYN is dropped, and
		// it sits in SYN-SENT retrying.
		third := make(chan error, 1)
		go func() {
			c, err := nsDialOpts(ns, stackAddr+":8002", dialOpts{timeout: 3 * time.Second})
			if err == nil {
				c.Close()
			}
			third <- err
		}()
		if !waitFor(5*time.Second, func() bool { return len(kernelSS(t, ns, "state", "syn-sent", "dport", "= :8002")) == 1 }) {
			t.Errorf("the third client is not in SYN-SENT: %q", kernelSS(t, ns, "dport", "= :8002"))
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(proc.log(), "accept queue full: drop the SYN") }) {
			t.Errorf("no trace line for the dropped SYN:\n%s", proc.log())
		}
		if err := <-third; err == nil {
			t.Errorf("the third client got in past a full accept queue")
		}
	})

	t.Run("slow-read shuts the window", func(t *testing.T) {
		c, err := nsDial(t, ns, stackAddr+":8003", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		// More than the receive buffer: the write cannot finish, and the
		// kernel's send queue holds what the shut window refuses.
		go func() { _, _ = c.Write(make([]byte, 16<<20)) }()
		if !waitFor(10*time.Second, func() bool {
			for _, l := range kernelSS(t, ns, "dport", "= :8003") {
				if f := strings.Fields(l); len(f) > 2 && f[2] != "0" {
					return true
				}
			}
			return false
		}) {
			t.Errorf("the kernel's send queue never filled: %q", kernelSS(t, ns, "dport", "= :8003"))
		}
		line := ssLine(t, ctl, `^ESTABLISHED\s+\d{5,}\s+0\s+198\.18\.0\.2:8003\s`)
		t.Logf("tund ss: %s", line)
	})

	t.Run("reset sends RST", func(t *testing.T) {
		// The RST may come before the kernel's connect returns, or after:
		// either way the client sees ECONNRESET, never EOF.
		c, err := nsDial(t, ns, stackAddr+":8004", 0)
		if err == nil {
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = c.Read(make([]byte, 10))
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("dial or read: %v, want ECONNRESET", err)
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(proc.log(), "ESTABLISHED → CLOSED on app abort (send RST)") }) {
			t.Errorf("no abort in the trace:\n%s", proc.log())
		}
	})

	t.Run("half-close sends FIN first, still reads", func(t *testing.T) {
		c, err := nsDial(t, ns, stackAddr+":8005", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		got, err := io.ReadAll(c) // the line, then EOF: the server's FIN
		if err != nil || !strings.HasPrefix(string(got), "bye for now") {
			t.Fatalf("read %q, %v", got, err)
		}
		ssLine(t, ctl, `^FIN-WAIT-2\s+0\s+0\s+198\.18\.0\.2:8005\s`)
		if _, err := c.Write([]byte("still listening?")); err != nil {
			t.Fatalf("write after the server's FIN: %v", err)
		}
		c.CloseWrite()
		// The server sent its FIN first, so it holds TIME-WAIT once ours
		// arrives; the client, closing second, is gone.
		ssLine(t, ctl, `^TIME-WAIT\s+0\s+0\s+198\.18\.0\.2:8005\s`)
	})
}
