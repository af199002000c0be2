package integration

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/tun"
)

// waitExit waits up to d for tund to exit and returns its exit code.
func (p *tundProc) waitExit(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.exited:
	case <-time.After(d):
		t.Fatalf("tund still running after %v:\n%s", d, p.log())
	}
	return p.cmd.ProcessState.ExitCode()
}

// estabResets is the kernel's TCP EstabResets counter in ns: connections
// that went straight to CLOSED from ESTABLISHED or CLOSE-WAIT, that is,
// kernel sockets that received a reset.
func estabResets(t *testing.T, ns string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "cat", "/proc/net/snmp").Output()
	if err != nil {
		t.Fatalf("read /proc/net/snmp in %s: %v", ns, err)
	}
	var names []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if names == nil {
			names = f
			continue
		}
		for i, name := range names {
			if name == "EstabResets" && i < len(f) {
				n, err := strconv.Atoi(f[i])
				if err != nil {
					t.Fatalf("EstabResets %q", f[i])
				}
				return n
			}
		}
	}
	t.Fatalf("no Tcp EstabResets in /proc/net/snmp:\n%s", out)
	return 0
}

// deviceExists reports whether ns has a link named tund0.
func deviceExists(t *testing.T, ns string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	return inNS(ctx, ns, "ip", "link", "show", "tund0").Run() == nil
}

// zeros is an endless stream of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// countingWriter counts what is written to it.
type countingWriter struct{ n atomic.Int64 }

func (w *countingWriter) Write(p []byte) (int, error) { w.n.Add(int64(len(p))); return len(p), nil }

// TestDeviceDeletedEndsTund: deleting the TUN device under a running tund
// (in the middle of an nc transfer, with another client waiting on the
// echo service) ends tund within seconds with one clear line naming the
// device and the namespace and a non-zero exit; tund still deletes a
// namespace it created. Both for a device tund created and for a
// persistent one it attached to.
func TestDeviceDeletedEndsTund(t *testing.T) {
	need(t)
	t.Run("created", func(t *testing.T) {
		ns := fmt.Sprintf("tund-it-%d-%d", os.Getpid(), nsSeq.Add(1)) // tund creates it
		t.Cleanup(func() {
			if tun.NetNSExists(ns) {
				t.Errorf("tund left namespace %s behind", ns)
				tun.DeleteNetNS(ns)
			}
		})
		p := startTund(t, ns)
		if !tun.NetNSExists(ns) {
			t.Fatalf("tund did not create namespace %s", ns)
		}
		deleteDeviceUnderTund(t, ns, p)
		if tun.NetNSExists(ns) {
			t.Errorf("namespace %s still exists after tund exited", ns)
		}
	})
	t.Run("persistent", func(t *testing.T) {
		ns := newNetNS(t)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		for _, args := range [][]string{
			{"ip", "tuntap", "add", "dev", "tund0", "mode", "tun"},
			{"ip", "addr", "add", hostCIDR, "dev", "tund0"},
			{"ip", "link", "set", "tund0", "up"},
		} {
			if out, err := inNS(ctx, ns, args[0], args[1:]...).CombinedOutput(); err != nil {
				t.Fatalf("%v: %v: %s", args, err, out)
			}
		}
		p := startTund(t, ns)
		if !strings.Contains(p.log(), "created=false") {
			t.Fatalf("tund did not attach to the persistent device:\n%s", p.log())
		}
		deleteDeviceUnderTund(t, ns, p)
	})
}

// deleteDeviceUnderTund starts a transfer and an idle client against the
// tund p serving in ns, deletes tund0 and checks how tund ends.
func deleteDeviceUnderTund(t *testing.T, ns string, p *tundProc) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// A transfer in progress: nc uploads zeros to the discard service
	// (at most 4 GiB; it is killed long before).
	sent := &countingWriter{}
	nc := inNS(ctx, ns, "nc", stackAddr, "9")
	nc.Stdin = io.TeeReader(io.LimitReader(zeros{}, 4<<30), sent)
	if err := nc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		nc.Process.Kill()
		nc.Wait()
	}()
	// A client whose request the echo service is waiting on.
	idle, err := nsDial(t, ns, stackAddr+":7", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	if !waitFor(10*time.Second, func() bool { return sent.n.Load() > 8<<20 }) {
		t.Fatalf("the nc transfer did not get going (%d bytes)", sent.n.Load())
	}

	if out, err := inNS(ctx, ns, "ip", "link", "del", "tund0").CombinedOutput(); err != nil {
		t.Fatalf("ip link del tund0: %v: %s", err, out)
	}
	code := p.waitExit(t, 5*time.Second)
	log := p.log()
	if code == 0 {
		t.Fatalf("tund exited 0 after its device was deleted:\n%s", log)
	}
	lines := strings.Split(strings.TrimSpace(log), "\n")
	last := lines[len(lines)-1]
	if !strings.HasPrefix(last, "tund: ") || !strings.Contains(last, "tund0") || !strings.Contains(last, ns) ||
		!strings.Contains(last, "was deleted") {
		t.Fatalf("last line %q: want tund's one-line error naming tund0 and %s; log:\n%s", last, ns, log)
	}
	if n := strings.Count(log, "device failed"); n != 1 {
		t.Errorf("the stack reported its device's failure %d times, want once:\n%s", n, log)
	}
	t.Logf("exit %d: %s", code, last)
}

// TestLibraryDeviceDeletedWakesBlockedCalls: a program using the stack
// library whose TUN device is deleted sees Done closed and every blocked
// call (Read, Write, Accept, Dial) return an error wrapping the device's
// EBADFD, instead of hanging.
func TestLibraryDeviceDeletedWakesBlockedCalls(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	l, err := st.Listen("tcp", ":8080")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	var clients []net.Conn
	for i := 0; i < 2; i++ { // the kernel clients neither send nor read
		c, err := nsDial(t, ns, stackAddr+":8080", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		clients = append(clients, c)
	}
	reader, writer := <-accepted, <-accepted
	l2, err := st.Listen("tcp", ":8081")
	if err != nil {
		t.Fatal(err)
	}
	results := make(chan error, 4)
	for _, call := range []func() error{
		func() error { _, err := reader.Read(make([]byte, 1)); return err },
		func() error { _, err := writer.Write(make([]byte, 64<<20)); return err }, // more than the kernel buffers
		func() error { _, err := l2.Accept(); return err },
		// Nobody has 198.18.0.77: the SYN goes unanswered.
		func() error { _, err := st.Dial("tcp", "198.18.0.77:80"); return err },
	} {
		go func() { results <- call() }()
	}
	// Let the writer fill the kernel's receive buffer and block.
	if !waitFor(10*time.Second, func() bool { return kernelRecvQ(t, ns, "8080") > 0 }) {
		t.Fatal("the stack's writes never reached the kernel client")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if out, err := inNS(ctx, ns, "ip", "link", "del", "tund0").CombinedOutput(); err != nil {
		t.Fatalf("ip link del tund0: %v: %s", err, out)
	}
	select {
	case <-st.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the stack did not stop within 5 s of its device's deletion")
	}
	if err := st.Err(); !errors.Is(err, syscall.EBADFD) || !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Err() = %v, want one wrapping EBADFD and net.ErrClosed", err)
	}
	for i := 0; i < 4; i++ {
		select {
		case err := <-results:
			if !errors.Is(err, syscall.EBADFD) {
				t.Errorf("a blocked call returned %v, want an error wrapping EBADFD", err)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("a blocked call still hangs 5 s after the device was deleted")
		}
	}
}

// kernelRecvQ is the Recv-Q of the kernel's socket connected to the
// stack's port (0 if there is none).
func kernelRecvQ(t *testing.T, ns, port string) int {
	t.Helper()
	best := 0
	for _, line := range kernelSS(t, ns, "dport", "=", ":"+port) {
		f := strings.Fields(line)
		if len(f) >= 2 {
			if n, err := strconv.Atoi(f[1]); err == nil && n > best {
				best = n
			}
		}
	}
	return best
}

// TestSigtermClosesGracefully: on SIGTERM tund sends a FIN on every
// connection, built-in services included (echo, discard, an idle HTTP
// keep-alive connection); kernel clients read EOF, not a reset, close in
// turn, and tund exits 0 well before the grace period is over, removing
// the device it created.
func TestSigtermClosesGracefully(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	p := startTund(t, ns, "-shutdown-grace", "30s")
	resetsBefore := estabResets(t, ns)
	var conns []*net.TCPConn
	for _, port := range []string{"7", "9", "80"} {
		c, err := nsDial(t, ns, stackAddr+":"+port, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Use each once, so each service is inside its handler.
	echo, discard, web := conns[0], conns[1], conns[2]
	if _, err := echo.Write([]byte("ping\n")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 5)
	if _, err := io.ReadFull(echo, buf); err != nil || string(buf) != "ping\n" {
		t.Fatalf("echo: %q %v", buf, err)
	}
	if _, err := discard.Write([]byte("gone\n")); err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(web, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", stackAddr)
	br := bufio.NewReader(web)
	resp, err := readHTTPResponse(br)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(resp, "HTTP/1.1 200") {
		t.Fatalf("GET /: %q", resp)
	}

	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	readers := []io.Reader{echo, discard, br}
	for i, c := range conns {
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := io.Copy(io.Discard, readers[i])
		if err != nil {
			t.Fatalf("connection to port %s: %v after %d bytes, want EOF (a FIN)", c.RemoteAddr(), err, n)
		}
		c.Close()
	}
	code := p.waitExit(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("tund exited %d after SIGTERM:\n%s", code, p.log())
	}
	if d := time.Since(start); d > 20*time.Second {
		t.Errorf("tund waited %v: it should not wait for the 30 s grace once every connection closed", d)
	}
	if n := estabResets(t, ns) - resetsBefore; n != 0 {
		t.Errorf("%d kernel connections were reset, want none", n)
	}
	if !strings.Contains(p.log(), "every connection closed gracefully") {
		t.Errorf("log does not say the close was graceful:\n%s", p.log())
	}
	if deviceExists(t, ns) {
		t.Error("tund0 still exists after tund exited")
	}
}

// readHTTPResponse reads one response with a Content-Length body.
func readHTTPResponse(br *bufio.Reader) (string, error) {
	var head strings.Builder
	length := 0
	for {
		line, err := br.ReadString('\n')
		if err != nil {
			return head.String(), err
		}
		head.WriteString(line)
		if v, ok := strings.CutPrefix(strings.ToLower(line), "content-length:"); ok {
			length, _ = strconv.Atoi(strings.TrimSpace(v))
		}
		if line == "\r\n" {
			break
		}
	}
	_, err := io.CopyN(io.Discard, br, int64(length))
	return head.String(), err
}

// TestSigtermResetsAfterGrace: a kernel client that never closes gets
// tund's FIN at SIGTERM (it reads EOF), and a reset once the grace
// period is over; tund then exits 0 and removes its device.
func TestSigtermResetsAfterGrace(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	p := startTund(t, ns, "-shutdown-grace", "1s")
	resetsBefore := estabResets(t, ns)
	c, err := nsDial(t, ns, stackAddr+":7", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// The echo coming back shows tund accepted the connection: a queued,
	// unaccepted one would be reset when the listener closes.
	if _, err := c.Write([]byte("hello\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(c, make([]byte, 6)); err != nil {
		t.Fatalf("echo: %v", err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if n, err := io.Copy(io.Discard, c); err != nil || n != 0 {
		t.Fatalf("read %d bytes, %v: want EOF (a FIN)", n, err)
	}
	// The client never closes; tund resets it after the grace period.
	code := p.waitExit(t, 10*time.Second)
	if code != 0 {
		t.Fatalf("tund exited %d after SIGTERM:\n%s", code, p.log())
	}
	if n := estabResets(t, ns) - resetsBefore; n != 1 {
		t.Errorf("%d kernel connections reset, want 1", n)
	}
	if !strings.Contains(p.log(), "grace period over") || !strings.Contains(p.log(), "reset 1 connections") {
		t.Errorf("log does not report the reset:\n%s", p.log())
	}
	if deviceExists(t, ns) {
		t.Error("tund0 still exists after tund exited")
	}
	if lines := kernelSS(t, ns, "dport", "=", ":7"); len(lines) != 0 {
		t.Errorf("the kernel still has the connection: %q", lines)
	}
}
