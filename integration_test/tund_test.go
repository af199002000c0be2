package integration

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// tundBody is what tund's GET /bytes/N serves: "tund " repeated, cut at N.
func tundBodySHA(n int) string {
	h := sha256.New()
	chunk := bytes.Repeat([]byte("tund "), 64<<10/5)
	for n > 0 {
		k := min(n, len(chunk))
		h.Write(chunk[:k])
		n -= k
	}
	return hex.EncodeToString(h.Sum(nil))
}

// curl -4 and curl -6 download 100 MiB from one tund, byte for byte.
func TestCurlDownload100MiB(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			const size = 100 << 20
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			body := newHashingWriter()
			var stderr bytes.Buffer
			cmd := inNS(ctx, ns, "curl", f.flag, "--fail", "-sS", "--max-time", "170", f.url("/bytes/104857600"))
			cmd.Stdout, cmd.Stderr = body, &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				t.Fatalf("curl: %v: %s", err, stderr.String())
			}
			elapsed := time.Since(start)
			if body.n != size {
				t.Fatalf("downloaded %d bytes, want %d", body.n, size)
			}
			if got, want := body.sum(), tundBodySHA(size); got != want {
				t.Fatalf("body sha256 %s, want %s", got, want)
			}
			t.Logf("100 MiB in %v (%.2f Gbit/s)", elapsed.Round(time.Millisecond), float64(size*8)/elapsed.Seconds()/1e9)
		})
	}
}

// nc -4 and nc -6 have 10 MiB echoed by one tund.
func TestNcEcho10MiB(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	path, want := randomFile(t, 10<<20, 42)
	for _, f := range families {
		t.Run(f.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := ncEchoFamily(ctx, ns, f, path, 10<<20, want); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestNcDiscardAndStats(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	const size = 5<<20 + 123
	path, _ := randomFile(t, size, 9)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	in, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	cmd := inNS(ctx, ns, "nc", "-N", stackAddr, "9")
	cmd.Stdin = in
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nc to discard: %v: %s", err, out)
	}
	// The discard service counts what it swallowed once the connection
	// ends; poll briefly for the FIN to be processed.
	deadline := time.Now().Add(5 * time.Second)
	for {
		out, err := inNS(ctx, ns, "curl", "--fail", "-sS", "http://"+stackAddr+"/stats").Output()
		if err != nil {
			t.Fatalf("curl /stats: %v", err)
		}
		if strings.Contains(string(out), fmt.Sprintf("discard_bytes %d\n", size)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("discard did not count %d bytes:\n%s", size, out)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ping -4 and ping -6 get every echo answered, small and large; the
// IPv6 replies come from the stack (ICMPv6 echo, RFC 4443 §4.2).
func TestPing(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range families {
		for _, size := range []string{"56", "1400"} {
			out, err := inNS(ctx, ns, "ping", f.flag, "-c", "3", "-i", "0.2", "-W", "2", "-s", size, f.stack).CombinedOutput()
			if err != nil {
				t.Fatalf("ping %s -s %s: %v\n%s", f.flag, size, err, out)
			}
			if !strings.Contains(string(out), "3 received") {
				t.Fatalf("ping %s -s %s:\n%s", f.flag, size, out)
			}
		}
	}
	stats, err := inNS(ctx, ns, "curl", "--fail", "-sS", families[0].url("/stats")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(stats), "echo_replies 12\n") {
		t.Errorf("stats do not count 12 echo replies (6 per family):\n%s", stats)
	}
}

func TestHTTPIndexListsConnections(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range families {
		out, err := inNS(ctx, ns, "curl", f.flag, "--fail", "-sS", f.url("/")).Output()
		if err != nil {
			t.Fatalf("curl %s /: %v", f.flag, err)
		}
		page := string(out)
		// Our own request is a live connection from the kernel's
		// address; an IPv6 one in brackets, as ss shows it.
		for _, want := range []string{"LISTEN", f.stackAt(80), "ESTABLISHED", f.hostAt(0)[:len(f.hostAt(0))-1]} {
			if !strings.Contains(page, want) {
				t.Fatalf("index page lacks %q:\n%s", want, page)
			}
		}
	}
}

func TestClosedPortIsRefused(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, f := range families {
		out, err := inNS(ctx, ns, "curl", f.flag, "-sS", "--max-time", "5", "http://"+f.stackAt(81)+"/").CombinedOutput()
		// curl's exit status 7 is "failed to connect"; a dropped SYN would be
		// 28 (timeout) instead.
		var exit *exec.ExitError
		if !errors.As(err, &exit) || exit.ExitCode() != 7 {
			t.Fatalf("curl %s to a closed port: %v, want exit status 7 (refused)\n%s", f.flag, err, out)
		}
	}
	stats, err := inNS(ctx, ns, "curl", "--fail", "-sS", "http://"+stackAddr+"/stats").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"resets_sent 2\n", `drops{reason="no_listener"} 2` + "\n"} {
		if !strings.Contains(string(stats), want) {
			t.Fatalf("stats lack %q:\n%s", want, stats)
		}
	}
}

func TestBadFlagIsOneLineError(t *testing.T) {
	if tundBin == "" {
		need(t)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-mtu", "10"}, "-mtu 10"},
		{[]string{"-addr", "300.1.1.1"}, `-addr "300.1.1.1"`},
		{[]string{"-host", "banana"}, `-host "banana"`},
	} {
		cmd := exec.Command(tundBin, tc.args...)
		out, err := cmd.CombinedOutput()
		if err == nil {
			t.Fatalf("tund %v succeeded", tc.args)
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Fatalf("tund %v printed %q, want one line naming %s", tc.args, out, tc.want)
		}
	}
}
