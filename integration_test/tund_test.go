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

func TestCurlDownload100MiB(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	const size = 100 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	body := newHashingWriter()
	var stderr bytes.Buffer
	cmd := inNS(ctx, ns, "curl", "--fail", "-sS", "--max-time", "170", "http://"+stackAddr+"/bytes/104857600")
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
}

func TestNcEcho10MiB(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	path, want := randomFile(t, 10<<20, 42)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := ncEcho(ctx, ns, path, 10<<20, want); err != nil {
		t.Fatal(err)
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

func TestPing(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, size := range []string{"56", "1400"} {
		out, err := inNS(ctx, ns, "ping", "-c", "3", "-i", "0.2", "-W", "2", "-s", size, stackAddr).CombinedOutput()
		if err != nil {
			t.Fatalf("ping -s %s: %v\n%s", size, err, out)
		}
		if !strings.Contains(string(out), "3 received") {
			t.Fatalf("ping -s %s:\n%s", size, out)
		}
	}
}

func TestHTTPIndexListsConnections(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "curl", "--fail", "-sS", "http://"+stackAddr+"/").Output()
	if err != nil {
		t.Fatalf("curl /: %v", err)
	}
	page := string(out)
	// Our own request is a live connection from the kernel's address.
	for _, want := range []string{"LISTEN", "198.18.0.2:80", "ESTABLISHED", hostAddr + ":"} {
		if !strings.Contains(page, want) {
			t.Fatalf("index page lacks %q:\n%s", want, page)
		}
	}
}

func TestClosedPortIsRefused(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	startTund(t, ns)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "curl", "-sS", "--max-time", "5", "http://"+stackAddr+":81/").CombinedOutput()
	// curl's exit status 7 is "failed to connect"; a dropped SYN would be
	// 28 (timeout) instead.
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 7 {
		t.Fatalf("curl to a closed port: %v, want exit status 7 (refused)\n%s", err, out)
	}
	stats, err := inNS(ctx, ns, "curl", "--fail", "-sS", "http://"+stackAddr+"/stats").Output()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"resets_sent 1\n", `drops{reason="no_listener"} 1` + "\n"} {
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
