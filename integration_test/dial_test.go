package integration

import (
	"io"
	"net"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTundDial: `tund dial` has the running tund open a connection
// through its stack to a kernel server in the namespace; the active-open
// and both close orders show in tund's own trace and tund ss.
func TestTundDial(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	proc := startTund(t, ns, "-control", ctl, "-trace", "-msl", "5s")
	l := nsListen(t, ns, hostAddr+":8080")
	dial := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(tundBin, append([]string{"dial", "-control", ctl}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tund dial %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	// server accepts one connection and runs serve on it.
	server := func(serve func(c net.Conn)) chan struct{} {
		done := make(chan struct{})
		go func() {
			defer close(done)
			c, err := l.Accept()
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(10 * time.Second))
			serve(c)
		}()
		return done
	}
	traceOf := func(port string) string {
		var lines []string
		for _, line := range strings.Split(proc.log(), "\n") {
			if strings.Contains(line, "trace ") && strings.Contains(line, hostAddr+":8080") {
				lines = append(lines, line)
			}
		}
		return strings.Join(lines, "\n")
	}

	t.Run("tund closes first and holds TIME-WAIT", func(t *testing.T) {
		got := make(chan int64, 1)
		done := server(func(c net.Conn) {
			n, _ := io.Copy(io.Discard, c) // to tund's FIN
			got <- n
			// A moment before closing, so tund's FIN-WAIT-2 shows (a
			// server that closes at once may send its FIN with the ACK
			// of tund's: FIN-WAIT-1 → TIME-WAIT in one step).
			time.Sleep(300 * time.Millisecond)
		})
		out := dial("-send", "100000", "-close", "first", hostAddr+":8080")
		<-done
		if n := <-got; n != 100000 {
			t.Errorf("the server read %d bytes, want 100000", n)
		}
		for _, want := range []string{"connected", "sent 100000 bytes", "closed first"} {
			if !strings.Contains(out, want) {
				t.Errorf("tund dial printed no %q:\n%s", want, out)
			}
		}
		ssLine(t, ctl, `^TIME-WAIT\s+0\s+0\s+198\.18\.0\.2:\d+\s+198\.18\.0\.1:8080\s+timewait`)
		tr := traceOf("8080")
		for _, want := range []string{"CLOSED → SYN-SENT on app connect", "SYN-SENT → ESTABLISHED on rcv SYN+ACK",
			"ESTABLISHED → FIN-WAIT-1 on app close", "FIN-WAIT-1 → FIN-WAIT-2 on rcv ACK of FIN", "FIN-WAIT-2 → TIME-WAIT on rcv FIN"} {
			if !strings.Contains(tr, want) {
				t.Errorf("trace lacks %q:\n%s", want, tr)
			}
		}
	})

	t.Run("the server closes first: CLOSE-WAIT, LAST-ACK", func(t *testing.T) {
		done := server(func(c net.Conn) {
			c.Write([]byte("hello from the kernel"))
			// Close, so the kernel sends its FIN first.
		})
		out := dial("-close", "second", hostAddr+":8080")
		<-done
		if !strings.Contains(out, "the server closed after 21 bytes") {
			t.Errorf("tund dial output:\n%s", out)
		}
		if !waitFor(5*time.Second, func() bool { return strings.Contains(traceOf("8080"), "LAST-ACK → CLOSED on rcv ACK of FIN") }) {
			t.Errorf("trace lacks the passive close:\n%s", traceOf("8080"))
		}
		if tr := traceOf("8080"); !strings.Contains(tr, "ESTABLISHED → CLOSE-WAIT on rcv FIN") || !strings.Contains(tr, "CLOSE-WAIT → LAST-ACK on app close") {
			t.Errorf("trace lacks CLOSE-WAIT → LAST-ACK:\n%s", tr)
		}
	})

	t.Run("errors", func(t *testing.T) {
		out, err := exec.Command(tundBin, "dial", "-control", ctl, "-close", "sideways", hostAddr+":8080").CombinedOutput()
		if err == nil || !strings.Contains(string(out), `-close "sideways"`) || strings.Count(strings.TrimSpace(string(out)), "\n") != 0 {
			t.Errorf("bad -close: %v\n%s", err, out)
		}
		// Nobody listens on 8081: the kernel answers the SYN with an RST.
		out, err = exec.Command(tundBin, "dial", "-control", ctl, hostAddr+":8081").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "error: ") || !strings.Contains(string(out), "refused") {
			t.Errorf("dial to a closed port: %v\n%s", err, out)
		}
	})
}
