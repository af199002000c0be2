package integration

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// patternReader yields n bytes of a fixed, non-repeating-looking pattern.
type patternReader struct{ off, n int64 }

func (p *patternReader) Read(b []byte) (int, error) {
	if p.off >= p.n {
		return 0, io.EOF
	}
	k := int(min(int64(len(b)), p.n-p.off))
	for i := range k {
		x := uint64(p.off + int64(i))
		b[i] = byte(x*2654435761>>13) ^ byte(x)
	}
	p.off += int64(k)
	return k, nil
}

func patternSum(n int64) string {
	h := sha256.New()
	io.Copy(h, &patternReader{n: n})
	return hex.EncodeToString(h.Sum(nil))
}

// TestForwardHTTP: a real web server (the distribution's nginx, sendfile
// from a file, in the namespace) behind tund -forward: curl fetches 100
// MiB through tund's TCP byte-exact, with and without loss on tund's link
// (tun.Impair); tund ss shows the forwarded connection with its target.
func TestForwardHTTP(t *testing.T) {
	need(t)
	const size = 100 << 20
	want := patternSum(size)
	for _, tc := range []struct {
		name  string
		flags []string
	}{{"clean", nil}, {"loss", []string{"-impair-in", "loss=1%", "-impair-out", "loss=1%"}}} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetNS(t)
			ctl := filepath.Join(t.TempDir(), "ctl.sock")
			proc := startTund(t, ns, append([]string{"-control", ctl, "-forward", "8080=" + hostAddr + ":8081"}, tc.flags...)...)
			if !strings.Contains(proc.log(), `msg=forwarding from="198.18.0.2:8080 [fd00:7:5eed::2]:8080" to=198.18.0.1:8081`) {
				t.Fatalf("tund did not log the forward:\n%s", proc.log())
			}
			web := startNginx(t, ns, hostAddr+":8081")
			writePattern(t, filepath.Join(web.root, "big"), size)
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := inNS(ctx, ns, "curl", "-sS", "--fail", "--max-time", "110", "http://"+stackAddr+":8080/big")
			out := newHashingWriter()
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = out, &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				t.Fatalf("curl through the forward: %v: %s\nnginx: %s", err, stderr.String(), web)
			}
			el := time.Since(start)
			if out.n != size || out.sum() != want {
				t.Fatalf("got %d bytes sha256 %s, want %d bytes %s", out.n, out.sum(), size, want)
			}
			t.Logf("%s: 100 MiB from nginx through -forward in %v (%.2f Gbit/s)", tc.name, el.Round(time.Millisecond), float64(size)*8/el.Seconds()/1e9)

			// A connection held open (nginx waits for its request) shows
			// its target in tund ss.
			c, err := nsDial(t, ns, stackAddr+":8080", 0)
			if err != nil {
				t.Fatal(err)
			}
			ssLine(t, ctl, `^ESTABLISHED\s.*198\.18\.0\.2:8080\s+198\.18\.0\.1:\d+\s+→ 198\.18\.0\.1:8081`)
			c.Close()
		})
	}
}

// TestForwardEnds: half-close carried both ways, a refusing target
// resets the client, a reset from the client resets the target, and
// 1,000 concurrent forwarded connections leave nothing open.
func TestForwardEnds(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	startTund(t, ns, "-control", ctl, "-forward", "8080="+hostAddr+":9080", "-forward", "8082="+hostAddr+":1",
		"-forward", "8083="+hostAddr+":9083")

	t.Run("the client half-closes", func(t *testing.T) {
		l := nsListen(t, ns, hostAddr+":9080")
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			b, _ := io.ReadAll(c) // to the client's FIN, carried as CloseWrite
			fmt.Fprintf(c, "got %d bytes", len(b))
		}()
		c, err := nsDial(t, ns, stackAddr+":8080", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		c.Write(make([]byte, 100000))
		c.CloseWrite()
		reply, err := io.ReadAll(c)
		if err != nil || string(reply) != "got 100000 bytes" {
			t.Fatalf("reply %q, %v", reply, err)
		}
		l.Close()
	})

	t.Run("the server half-closes", func(t *testing.T) {
		l := nsListen(t, ns, hostAddr+":9080")
		got := make(chan string, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			c.Write([]byte("hello"))
			c.(*net.TCPConn).CloseWrite()
			b, _ := io.ReadAll(c)
			got <- string(b)
		}()
		c, err := nsDial(t, ns, stackAddr+":8080", 0)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(c) // "hello", then the server's FIN
		if err != nil || string(b) != "hello" {
			t.Fatalf("read %q, %v", b, err)
		}
		c.Write([]byte("still here")) // our side is still open
		c.CloseWrite()
		select {
		case s := <-got:
			if s != "still here" {
				t.Errorf("the server read %q after its half-close", s)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("the server never saw the client's FIN")
		}
		l.Close()
	})

	t.Run("a refusing target resets the client", func(t *testing.T) {
		c, err := nsDial(t, ns, stackAddr+":8082", 0)
		if err == nil {
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = c.Read(make([]byte, 1))
		}
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("dial or read: %v, want ECONNRESET", err)
		}
	})

	t.Run("a client's reset resets the target", func(t *testing.T) {
		l := nsListen(t, ns, hostAddr+":9080")
		result := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				result <- err
				return
			}
			defer c.Close()
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = io.ReadAll(c)
			result <- err
		}()
		c, err := nsDial(t, ns, stackAddr+":8080", 0)
		if err != nil {
			t.Fatal(err)
		}
		c.Write([]byte("x"))
		time.Sleep(100 * time.Millisecond)
		c.SetLinger(0)
		c.Close()
		if err := <-result; !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("the target read: %v, want ECONNRESET", err)
		}
		l.Close()
	})

	t.Run("1000 concurrent", func(t *testing.T) {
		l := nsListen(t, ns, hostAddr+":9083")
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func() { defer c.Close(); io.Copy(c, c) }()
			}
		}()
		const n = 1000
		conns := make([]net.Conn, 0, n)
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for i := range n {
			c, err := nsDial(t, ns, stackAddr+":8083", 0)
			if err != nil {
				t.Fatalf("connection %d: %v", i, err)
			}
			conns = append(conns, c)
		}
		var wg sync.WaitGroup
		errs := make(chan error, n)
		for i, c := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				msg := fmt.Sprintf("connection %d", i)
				c.Write([]byte(msg))
				b := make([]byte, len(msg))
				if _, err := io.ReadFull(c, b); err != nil || string(b) != msg {
					errs <- fmt.Errorf("%s: echoed %q, %v", msg, b, err)
				}
			}()
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Error(err)
		}
		for _, c := range conns {
			c.Close()
		}
		conns = nil
		// Every forwarded connection ends: nothing on 8083 but the listener.
		var left []string
		if !waitFor(20*time.Second, func() bool {
			left = nil
			for _, line := range tundSS(t, ctl) {
				if strings.Contains(line, "198.18.0.2:8083 ") && !strings.HasPrefix(line, "LISTEN") && !strings.HasPrefix(line, "TIME-WAIT") {
					left = append(left, line)
				}
			}
			return len(left) == 0
		}) {
			t.Errorf("%d forwarded connections left open, e.g. %q", len(left), left[0])
		}
		l.Close()
	})

	// tund stats has the forwarder's counters.
	out, err := exec.Command(tundBin, "stats", "-control", ctl).CombinedOutput()
	if err != nil {
		t.Fatalf("tund stats: %v\n%s", err, out)
	}
	for _, re := range []string{`(?m)^  connections joined\s+10\d\d$`, `(?m)^  open now\s+0$`, `(?m)^  targets refused\s+1$`, `(?m)^  resets carried\s+[1-9]\d*$`} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("tund stats lacks %s:\n%s", re, out)
		}
	}
}

// TestForwardOut: tund -forward-out listens on the host's loopback and
// dials each connection through its stack to a server on the kernel side
// of the TUN: a client program's bytes arrive intact, both ways, and
// tund's trace shows its active open; a target nobody serves resets the
// client.
func TestForwardOut(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	proc := startTund(t, ns, "-trace", "-forward-out", "127.0.0.1:0="+hostAddr+":9090", "-forward-out", "127.0.0.1:0="+hostAddr+":9091")
	addrs := regexp.MustCompile(`msg="forwarding out" listen=(127\.0\.0\.1:\d+) to=198\.18\.0\.1:(909[01])`).FindAllStringSubmatch(proc.log(), -1)
	if len(addrs) != 2 {
		t.Fatalf("tund did not log two forward-out listeners:\n%s", proc.log())
	}
	listen := map[string]string{addrs[0][2]: addrs[0][1], addrs[1][2]: addrs[1][1]}

	l := nsListen(t, ns, hostAddr+":9090")
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		h := sha256.New()
		n, _ := io.Copy(h, c) // to the client's FIN
		fmt.Fprintf(c, "%d %x", n, h.Sum(nil))
	}()
	const size = 10 << 20
	c, err := net.Dial("tcp", listen["9090"]) // host loopback, tund's own side
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	if _, err := io.Copy(c, &patternReader{n: size}); err != nil {
		t.Fatal(err)
	}
	c.(*net.TCPConn).CloseWrite()
	reply, err := io.ReadAll(c)
	if want := fmt.Sprintf("%d %s", size, patternSum(size)); err != nil || string(reply) != want {
		t.Fatalf("the server saw %q, %v; want %q", reply, err, want)
	}
	if !waitFor(5*time.Second, func() bool {
		return strings.Contains(proc.log(), "198.18.0.1:9090 CLOSED → SYN-SENT on app connect")
	}) {
		t.Errorf("no active open to 198.18.0.1:9090 in tund's trace:\n%s", proc.log())
	}

	// Nobody serves 9091: the kernel resets tund's SYN, tund resets the client.
	// (The reset may come before the kernel's connect returns, or after.)
	c2, err := net.Dial("tcp", listen["9091"])
	if err == nil {
		defer c2.Close()
		c2.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = c2.Read(make([]byte, 1))
	}
	if !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("dial or read through a forward-out to a closed port: %v, want ECONNRESET", err)
	}
}

// TestForwardSSH: OpenSSH through tund. sshd runs in the test's namespace
// on its loopback (with a private /run for its privilege-separation
// directory: nothing of the host's is touched), tund forwards its port
// 22 to it, and the distribution's ssh and scp, in the namespace, run a
// command and copy 50 MiB up and back down through tund's TCP, byte-exact.
func TestForwardSSH(t *testing.T) {
	need(t)
	needTool(t, "ssh")
	needTool(t, "scp")
	needTool(t, "ssh-keygen")
	const sshd = "/usr/sbin/sshd"
	needDaemon(t, sshd, "openssh-server")
	ns := newNetNS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if out, err := inNS(ctx, ns, "ip", "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up: %v %s", err, out)
	}
	dir := t.TempDir()
	for _, k := range []string{"host", "user"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", filepath.Join(dir, k)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	pub, err := os.ReadFile(filepath.Join(dir, "user.pub"))
	if err != nil {
		t.Fatal(err)
	}
	conf := fmt.Sprintf(`Port 2222
ListenAddress 127.0.0.1
HostKey %[1]s/host
AuthorizedKeysFile %[1]s/authorized_keys
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
StrictModes no
PidFile %[1]s/sshd.pid
UsePAM no
Subsystem sftp internal-sftp
`, dir)
	for name, body := range map[string][]byte{"authorized_keys": pub, "sshd_config": []byte(conf)} {
		if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// ip netns exec gives the command a mount namespace of its own (slave
	// to the host's): the tmpfs on /run is sshd's alone.
	server := exec.Command("ip", "netns", "exec", ns, "sh", "-c",
		"mount -t tmpfs tmpfs /run && mkdir -p /run/sshd && exec "+sshd+" -D -e -f "+filepath.Join(dir, "sshd_config"))
	var serverLog strings.Builder
	server.Stderr = &serverLog
	if err := server.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { server.Process.Kill(); server.Wait() }()

	ctl := filepath.Join(dir, "ctl.sock")
	startTund(t, ns, "-control", ctl, "-forward", "22=127.0.0.1:2222")
	sshOpts := []string{"-i", filepath.Join(dir, "user"), "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null",
		"-o", "BatchMode=yes", "-o", "ConnectTimeout=20", "-o", "LogLevel=ERROR"}
	var out []byte
	if !waitFor(10*time.Second, func() bool {
		out, err = inNS(ctx, ns, "ssh", append(sshOpts, "-p", "22", "root@"+stackAddr, "echo hello through tund; uname -s")...).CombinedOutput()
		return err == nil
	}) {
		t.Fatalf("ssh through tund: %v\n%s\nsshd:\n%s", err, out, serverLog.String())
	}
	if string(out) != "hello through tund\nLinux\n" {
		t.Fatalf("ssh ran the command and printed %q", out)
	}

	const size = 50 << 20
	src, want := randomFile(t, size, 50)
	up, down := filepath.Join(dir, "up"), filepath.Join(dir, "down")
	if out, err := inNS(ctx, ns, "scp", append(sshOpts, "-P", "22", src, "root@"+stackAddr+":"+up)...).CombinedOutput(); err != nil {
		t.Fatalf("scp up: %v\n%s", err, out)
	}
	if out, err := inNS(ctx, ns, "scp", append(sshOpts, "-P", "22", "root@"+stackAddr+":"+up, down)...).CombinedOutput(); err != nil {
		t.Fatalf("scp down: %v\n%s", err, out)
	}
	for _, p := range []string{up, down} {
		f, err := os.Open(p)
		if err != nil {
			t.Fatal(err)
		}
		h := newHashingWriter()
		io.Copy(h, f)
		f.Close()
		if h.n != size || h.sum() != want {
			t.Errorf("%s: %d bytes sha256 %s, want %d bytes %s", filepath.Base(p), h.n, h.sum(), size, want)
		}
	}
	// Every session through the forward has ended.
	if !waitFor(10*time.Second, func() bool {
		for _, line := range tundSS(t, ctl) {
			if strings.Contains(line, "198.18.0.2:22 ") && strings.HasPrefix(line, "ESTABLISHED") {
				return false
			}
		}
		return true
	}) {
		t.Errorf("ssh connections left open: %q", tundSS(t, ctl))
	}
}

// progressWriter is a hashingWriter whose count can be read while curl
// writes to it.
type progressWriter struct {
	mu sync.Mutex
	w  *hashingWriter
}

func (p *progressWriter) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.Write(b)
}

func (p *progressWriter) n() int64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.w.n
}

// TestForwardTargetVanishes: the target goes away in the middle of a
// download through -forward. When its process dies, its kernel closes
// the socket and the client sees the end early: fewer bytes, every one of
// them right. When its host goes silent (every packet to and from it
// dropped), -forward-timeout gives it up (TCP_USER_TIMEOUT and keepalive
// on the forward's socket) and the client is reset, where the kernel
// alone would keep the client waiting for a quarter of an hour. Either
// way no connection is left open on either side.
func TestForwardTargetVanishes(t *testing.T) {
	need(t)
	needTool(t, "nft")
	const size = 256 << 20
	for _, tc := range []struct {
		name   string
		vanish func(t *testing.T, ns string, web *nginxServer)
		// what curl must say on its way out
		curlErr string
	}{
		{"the target process dies", func(t *testing.T, ns string, web *nginxServer) { web.kill() },
			"transfer closed with"},
		{"the target's host goes silent", func(t *testing.T, ns string, web *nginxServer) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			cmd := inNS(ctx, ns, "nft", "-f", "-")
			cmd.Stdin = strings.NewReader(`table inet vanish {
	chain out {
		type filter hook output priority 0;
		tcp sport 8081 drop
		tcp dport 8081 drop
	}
}
`)
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Fatalf("nft: %v\n%s", err, out)
			}
		}, "Connection reset by peer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := newNetNS(t)
			ctl := filepath.Join(t.TempDir(), "ctl.sock")
			proc := startTund(t, ns, "-control", ctl, "-forward", "8080="+hostAddr+":8081", "-forward-timeout", "2s")
			web := startNginx(t, ns, hostAddr+":8081")
			writePattern(t, filepath.Join(web.root, "big"), size)

			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			// 32 MiB/s: the download would take 8 s, so the target
			// vanishes in the middle of it.
			cmd := inNS(ctx, ns, "curl", "-sS", "--limit-rate", "32M", "http://"+stackAddr+":8080/big")
			out := &progressWriter{w: newHashingWriter()}
			var stderr strings.Builder
			cmd.Stdout, cmd.Stderr = out, &stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			if !waitFor(20*time.Second, func() bool { return out.n() >= 16<<20 }) {
				t.Fatalf("curl got %d bytes in 20 s", out.n())
			}
			vanished := time.Now()
			tc.vanish(t, ns, web)
			err := cmd.Wait()
			ended := time.Since(vanished)
			n := out.n()
			if err == nil || n >= size || !strings.Contains(stderr.String(), tc.curlErr) {
				t.Fatalf("curl: %v after %d of %d bytes, saying %q; want it to fail early with %q", err, n, size, stderr.String(), tc.curlErr)
			}
			if got, want := out.w.sum(), patternSum(n); got != want {
				t.Fatalf("the %d bytes before the end are not the file's: sha256 %s, want %s", n, got, want)
			}
			t.Logf("curl ended %v after the target vanished, with %d MiB of %d: %s", ended.Round(time.Millisecond), n>>20, size>>20, strings.TrimSpace(stderr.String()))
			// A bound, not a speed: -forward-timeout is 2 s, and curl
			// drains what tund holds in well under a second. Without the
			// bound the kernel would wait for its keepalive (15 s and more)
			// or retransmit for about 15 minutes.
			if ended > 8*time.Second {
				t.Errorf("the client waited %v after the target vanished; -forward-timeout is 2s", ended)
			}
			if strings.Contains(proc.log(), "cannot bound") {
				t.Errorf("tund could not set the target socket's timeout:\n%s", proc.log())
			}

			// Nothing left open: not tund's side, not the forward's
			// kernel socket.
			var left []string
			if !waitFor(20*time.Second, func() bool {
				left = nil
				for _, line := range tundSS(t, ctl) {
					if strings.Contains(line, "198.18.0.2:8080 ") && !strings.HasPrefix(line, "LISTEN") && !strings.HasPrefix(line, "TIME-WAIT") {
						left = append(left, line)
					}
				}
				return len(left) == 0
			}) {
				t.Errorf("tund still has %q", left)
			}
			sctx, scancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer scancel()
			ss, err := inNS(sctx, ns, "ss", "-Htn", "state", "connected", "( sport = :8081 or dport = :8081 )").Output()
			if err != nil {
				t.Fatal(err)
			}
			for _, line := range strings.Split(strings.TrimSpace(string(ss)), "\n") {
				// nginx's own socket, unheard, may still be retransmitting
				// into the silence until the test ends; the forward's
				// socket (to port 8081) must be gone.
				if f := strings.Fields(line); len(f) >= 4 && strings.HasSuffix(f[len(f)-1], ":8081") && !strings.HasPrefix(line, "TIME-WAIT") {
					t.Errorf("the forward's socket to the target is still open: %q", line)
				}
			}
			stats, err := exec.Command(tundBin, "stats", "-control", ctl).CombinedOutput()
			if err != nil {
				t.Fatalf("tund stats: %v\n%s", err, stats)
			}
			if !regexp.MustCompile(`(?m)^  open now\s+0$`).Match(stats) {
				t.Errorf("tund stats: forwarded connections still open:\n%s", stats)
			}
			if tc.curlErr == "Connection reset by peer" && !regexp.MustCompile(`(?m)^  peers gone silent\s+1$`).Match(stats) {
				t.Errorf("tund stats does not count the silent target:\n%s", stats)
			}
		})
	}
}

// TestForwardRecoveryPlotted: the experiment docs/experiments.md
// describes, end to end. nginx sends 4 MiB through -forward with 2% loss
// on tund's sends, recorded with -pcap; curl's copy is byte-exact;
// scripts/tsgraph finds the flow, counts the segments sent again, and
// agrees with Wireshark's TCP analysis (its retransmissions plus the
// segments it calls out of order or spurious);
// and it draws the red bars.
func TestForwardRecoveryPlotted(t *testing.T) {
	need(t)
	needTool(t, "tshark")
	const size = 4 << 20
	ns := newNetNS(t)
	dir := t.TempDir()
	pcap := filepath.Join(dir, "fwd.pcap")
	proc := startTund(t, ns, "-forward", "8080="+hostAddr+":8081", "-impair-out", "loss=2%", "-pcap", pcap)
	web := startNginx(t, ns, hostAddr+":8081")
	writePattern(t, filepath.Join(web.root, "f"), size)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	out := newHashingWriter()
	cmd := inNS(ctx, ns, "curl", "-sS", "--fail", "--max-time", "60", "http://"+stackAddr+":8080/f")
	var stderr strings.Builder
	cmd.Stdout, cmd.Stderr = out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("curl: %v %s", err, stderr.String())
	}
	if out.n != size || out.sum() != patternSum(size) {
		t.Fatalf("got %d bytes sha256 %s, want %d bytes of the file", out.n, out.sum(), size)
	}
	proc.stop(t) // flushes and closes the capture

	svg := filepath.Join(dir, "g.svg")
	plot := exec.CommandContext(ctx, "go", "run", "./scripts/tsgraph", "-o", svg, pcap)
	plot.Dir = ".."
	report, err := plot.CombinedOutput()
	if err != nil {
		t.Fatalf("tsgraph: %v\n%s", err, report)
	}
	m := regexp.MustCompile(`flow 198\.18\.0\.2:8080 → 198\.18\.0\.1:\d+: (\d+) bytes[^\n]*\ndata segments (\d+), sent again (\d+) `).FindSubmatch(report)
	if m == nil {
		t.Fatalf("tsgraph did not find nginx's flow through tund:\n%s", report)
	}
	flowBytes, _ := strconv.Atoi(string(m[1]))
	resent, _ := strconv.Atoi(string(m[3]))
	if flowBytes < size || resent == 0 {
		t.Fatalf("tsgraph: %d bytes, %d sent again; want the whole file and some retransmissions at 2%% loss:\n%s", flowBytes, resent, report)
	}
	count := func(filter string) int {
		o, err := exec.CommandContext(ctx, "tshark", "-r", pcap, "-Y", "tcp.srcport == 8080 && ("+filter+")").Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", filter, err)
		}
		return strings.Count(string(o), "\n")
	}
	// tshark sorts what was sent again three ways: retransmissions, "out
	// of order" (within a round trip of the original), and "spurious"
	// (already acknowledged where the capture saw it: an ACK the reader
	// took while a timer was resending).
	if ws := count("tcp.analysis.retransmission || tcp.analysis.out_of_order || tcp.analysis.spurious_retransmission"); ws != resent {
		t.Errorf("tsgraph counts %d segments sent again, tshark %d (retransmissions, out of order and spurious)", resent, ws)
	}
	b, err := os.ReadFile(svg)
	if err != nil || !strings.Contains(string(b), `stroke="#d62728" stroke-width="2" d="M`) {
		t.Fatalf("no retransmissions drawn in %s: %v", svg, err)
	}
	t.Logf("%s", report)
}
