package integration

import (
	"context"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestTundMetricsAndStats: tund -metrics 127.0.0.1:0 logs the port it
// bound on the host's loopback (not in the namespace, where the TUN is);
// after a download through the stack, /metrics and `tund stats` show the
// segments and the four listeners; Go's profiler answers beside the
// metrics, and -cpuprofile leaves a profile when tund exits.
func TestTundMetricsAndStats(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	profile := filepath.Join(t.TempDir(), "cpu.pprof")
	proc := startTund(t, ns, "-control", ctl, "-metrics", "127.0.0.1:0", "-cpuprofile", profile)
	m := regexp.MustCompile(`msg="metrics ready" addr=(127\.0\.0\.1:(\d+))`).FindStringSubmatch(proc.log())
	if m == nil {
		t.Fatalf("no metrics address in the log:\n%s", proc.log())
	}
	addr, port := m[1], m[2]

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "curl", "-sS", "-o", "/dev/null", "-w", "%{size_download}", "http://"+stackAddr+"/bytes/1000000").Output()
	if err != nil || strings.TrimSpace(string(out)) != "1000000" {
		t.Fatalf("curl: %v, downloaded %q", err, out)
	}

	// The endpoint is on the host side: here it answers...
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %s\n%s", resp.Status, body)
	}
	metric := func(re string) (float64, bool) {
		m := regexp.MustCompile(`(?m)^` + re + ` (\S+)$`).FindStringSubmatch(string(body))
		if m == nil {
			return 0, false
		}
		v, err := strconv.ParseFloat(m[1], 64)
		return v, err == nil
	}
	// 1 MB in ~1448-byte segments is some 700 segments out.
	if v, ok := metric(`tund_segments_total\{direction="out"\}`); !ok || v < 600 {
		t.Errorf("tund_segments_total{direction=\"out\"} = %v (present %v), want 600 or more", v, ok)
	}
	if v, ok := metric(`tund_segments_total\{direction="in"\}`); !ok || v < 3 {
		t.Errorf("tund_segments_total{direction=\"in\"} = %v (present %v)", v, ok)
	}
	for _, want := range []string{
		`tund_connections{state="LISTEN"} 4`,
		`tund_passive_opens_total 1`,
		`tund_drops_total{reason="tcp_checksum"} 0`,
		"# TYPE tund_retransmitted_segments_total counter",
		"# TYPE tund_connections gauge",
	} {
		if !strings.Contains(string(body), want+"\n") {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// ...and inside the namespace, where curl ran, the port is not there.
	if err := inNS(ctx, ns, "curl", "-sS", "--max-time", "2", "http://127.0.0.1:"+port+"/metrics").Run(); err == nil {
		t.Errorf("the metrics endpoint answered inside the namespace: it should be host-side only")
	}

	statsOut, err := exec.Command(tundBin, "stats", "-control", ctl).CombinedOutput()
	if err != nil {
		t.Fatalf("tund stats: %v\n%s", err, statsOut)
	}
	for _, re := range []string{
		`(?m)^segments out\s+([6-9]\d\d|\d{4,})$`,
		`(?m)^retransmitted segments\s+\d+$`,
		`(?m)^  no_listener\s+\d+$`,
		`(?m)^  LISTEN\s+4$`,
	} {
		if !regexp.MustCompile(re).MatchString(string(statsOut)) {
			t.Errorf("tund stats lacks %s:\n%s", re, statsOut)
		}
	}
	t.Logf("tund stats:\n%s", statsOut)

	resp, err = http.Get("http://" + addr + "/debug/pprof/goroutine?debug=1")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "stack.(*Stack)") {
		t.Errorf("/debug/pprof/goroutine: %s, no stack goroutines:\n%.2000s", resp.Status, body)
	}
	proc.stop(t)
	if !strings.Contains(proc.log(), `msg="CPU profile written"`) {
		t.Errorf("no CPU profile in the log:\n%s", proc.log())
	}
	top, err := exec.Command("go", "tool", "pprof", "-top", tundBin, profile).CombinedOutput()
	if err != nil || !strings.Contains(string(top), "Type: cpu") {
		t.Errorf("go tool pprof -top %s: %v\n%s", profile, err, top)
	}
}
