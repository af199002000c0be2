package main

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
)

// pipeStacks starts a client and a server stack joined by tun.Pipe, with
// the server listening on port 7 (echo), and makes one connection that
// echoes a message and stays open.
func pipeStacks(t *testing.T) (client, server *stack.Stack) {
	t.Helper()
	da, db := tun.Pipe(1500)
	client, err := stack.New(da, stack.Config{Addr: netip.MustParseAddr("10.9.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	server, err = stack.New(db, stack.Config{Addr: netip.MustParseAddr("10.9.0.2")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	l, err := server.Listen("tcp", ":7")
	if err != nil {
		t.Fatal(err)
	}
	go serve(l, "echo", slog.New(slog.DiscardHandler), inBursts(echo))
	c, err := client.Dial("tcp", "10.9.0.2:7")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	msg := []byte("hello, metrics\n")
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, len(msg))
	if _, err := io.ReadFull(c, got); err != nil || !bytes.Equal(got, msg) {
		t.Fatalf("echo: %q %v", got, err)
	}
	return client, server
}

// metricValue finds the value of the metric name with the given labels
// (all of them) in what reg gathers; ok is false if there is none.
func metricValue(t *testing.T, mfs []*dto.MetricFamily, name string, labels map[string]string) (v float64, ok bool) {
	t.Helper()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			have := map[string]string{}
			for _, lp := range m.GetLabel() {
				have[lp.GetName()] = lp.GetValue()
			}
			for k, want := range labels {
				if have[k] != want {
					continue next
				}
			}
			switch {
			case m.Counter != nil:
				return m.Counter.GetValue(), true
			case m.Gauge != nil:
				return m.Gauge.GetValue(), true
			}
		}
	}
	return 0, false
}

func TestMetricsCollector(t *testing.T) {
	client, server := pipeStacks(t)
	reg := newMetricsRegistry(server)
	// The collector must pass the client library's own consistency
	// checks (names, help, label sets) and the linter.
	if problems, err := testutil.GatherAndLint(reg, "tund_packets_total", "tund_connections", "tund_drops_total"); err != nil || len(problems) > 0 {
		t.Fatalf("lint: %v %v", problems, err)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	st := server.Stats()
	for _, tc := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"tund_segments_total", map[string]string{"direction": "in"}, 3},  // SYN, ACK, data (its ACK may be delayed)
		{"tund_segments_total", map[string]string{"direction": "out"}, 2}, // SYN+ACK, data
		{"tund_packets_total", map[string]string{"direction": "in"}, 3},
		{"tund_passive_opens_total", nil, 1},
		{"tund_connections", map[string]string{"state": "LISTEN"}, 1},
		{"tund_connections", map[string]string{"state": "ESTABLISHED"}, 1},
	} {
		v, ok := metricValue(t, mfs, tc.name, tc.labels)
		if !ok || v < tc.min {
			t.Errorf("%s%v = %v (present %v), want at least %v", tc.name, tc.labels, v, ok, tc.min)
		}
	}
	for _, tc := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"tund_connections", map[string]string{"state": "TIME-WAIT"}, 0},
		{"tund_connections", map[string]string{"state": "SYN-SENT"}, 0},
		{"tund_time_wait_entries", nil, 0},
		{"tund_drops_total", map[string]string{"reason": "tcp_checksum"}, 0},
		{"tund_drops_total", map[string]string{"reason": "no_listener"}, 0},
		{"tund_drops_total", map[string]string{"reason": "out_of_window"}, 0},
		{"tund_drops_total", map[string]string{"reason": "backlog_full"}, 0},
		{"tund_retransmitted_segments_total", nil, 0},
		{"tund_retransmission_timeouts_total", nil, 0},
		{"tund_fast_recoveries_total", nil, 0},
		{"tund_tail_loss_probes_total", nil, 0},
		{"tund_resets_sent_total", nil, 0},
		{"tund_syn_cookies_sent_total", nil, 0},
		{"tund_syn_cookies_valid_total", nil, 0},
		{"tund_half_open_evicted_total", nil, 0},
		{"tund_drops_total", map[string]string{"reason": "syn_queue_full"}, 0},
		{"tund_passive_opens_total", nil, float64(st.PassiveOpens)},
	} {
		if v, ok := metricValue(t, mfs, tc.name, tc.labels); !ok || v != tc.want {
			t.Errorf("%s%v = %v (present %v), want %v", tc.name, tc.labels, v, ok, tc.want)
		}
	}
	if _, ok := metricValue(t, mfs, "go_goroutines", nil); !ok {
		t.Error("the Go collector is missing")
	}

	// A segment to a port nobody listens on is counted and reset.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := client.DialContext(ctx, "tcp", "10.9.0.2:9")
	if err == nil {
		c.Close()
		t.Fatal("dial to a closed port succeeded")
	}
	mfs, _ = reg.Gather()
	if v, _ := metricValue(t, mfs, "tund_drops_total", map[string]string{"reason": "no_listener"}); v < 1 {
		t.Errorf("no_listener drops %v after a SYN to a closed port", v)
	}
	if v, _ := metricValue(t, mfs, "tund_resets_sent_total", nil); v < 1 {
		t.Errorf("resets sent %v after a SYN to a closed port", v)
	}
}

func TestMetricsEndpoint(t *testing.T) {
	_, server := pipeStacks(t)
	stop, err := serveMetrics("127.0.0.1:0", server, slog.New(slog.DiscardHandler), nil)
	if err != nil {
		t.Fatal(err)
	}
	stop()
	var logBuf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logBuf, nil))
	stop, err = serveMetrics("127.0.0.1:0", server, log, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	m := regexp.MustCompile(`msg="metrics ready" addr=(127\.0\.0\.1:\d+)`).FindStringSubmatch(logBuf.String())
	if m == nil {
		t.Fatalf("no bound address in the log: %s", logBuf.String())
	}
	resp, err := http.Get("http://" + m[1] + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		"# TYPE tund_segments_total counter",
		`tund_connections{state="LISTEN"} 1`,
		`tund_connections{state="ESTABLISHED"} 1`,
		`tund_drops_total{reason="checksum"} 0`,
		"process_open_fds",
	} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q:\n%s", want, body)
		}
	}
	// Go's profiler sits beside the metrics: its index lists the
	// profiles, and a heap profile comes back in pprof's format (gzip).
	resp, err = http.Get("http://" + m[1] + "/debug/pprof/")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "goroutine") {
		t.Errorf("/debug/pprof/: %s\n%s", resp.Status, body)
	}
	resp, err = http.Get("http://" + m[1] + "/debug/pprof/heap")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(body) < 2 || body[0] != 0x1f || body[1] != 0x8b {
		t.Errorf("/debug/pprof/heap: %s, %d bytes, not a gzip'd profile", resp.Status, len(body))
	}
	if resp, err := http.Get("http://" + m[1] + "/other"); err != nil || resp.StatusCode != http.StatusNotFound {
		t.Errorf("/other: %v %v", resp.Status, err)
	}
}

func TestMetricsFlag(t *testing.T) {
	if o, err := parseFlags(nil, io.Discard); err != nil || o.metrics != "" {
		t.Fatalf("-metrics default %q %v", o.metrics, err)
	}
	for _, good := range []string{"127.0.0.1:9464", ":9464", "127.0.0.1:0", "[::1]:9464", "localhost:9464"} {
		if o, err := parseFlags([]string{"-metrics", good}, io.Discard); err != nil || o.metrics != good {
			t.Errorf("-metrics %s: %q %v", good, o.metrics, err)
		}
	}
	for _, bad := range []string{"9464", "127.0.0.1", "127.0.0.1:http", "127.0.0.1:70000"} {
		_, err := parseFlags([]string{"-metrics", bad}, io.Discard)
		if err == nil {
			t.Errorf("-metrics %s accepted", bad)
			continue
		}
		if msg := err.Error(); !strings.Contains(msg, `-metrics "`+bad+`"`) || strings.Contains(msg, "\n") {
			t.Errorf("-metrics %s: error %q, want one line naming the flag", bad, msg)
		}
	}
	// An address that cannot be bound is a one-line error naming the flag.
	_, err := serveMetrics("192.0.2.1:9464", nil, slog.New(slog.DiscardHandler), nil)
	if err == nil || !strings.Contains(err.Error(), `-metrics "192.0.2.1:9464"`) || strings.Contains(err.Error(), "\n") {
		t.Errorf("unbindable address: %v", err)
	}
}

func TestStatsCommand(t *testing.T) {
	_, server := pipeStacks(t)
	path := filepath.Join(t.TempDir(), "ctl.sock")
	l, err := stack.ListenControl(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go server.ServeControl(ctx, l)

	var out bytes.Buffer
	if err := statsCommand([]string{"-control", path}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	text := out.String()
	for _, re := range []string{
		`(?m)^segments in\s+[1-9]\d*$`,
		`(?m)^retransmitted segments\s+0$`,
		`(?m)^drops by reason:$`,
		`(?m)^  backlog_full\s+0$`,
		`(?m)^  syn_queue_full\s+0$`,
		`(?m)^half-open evicted\s+0$`,
		`(?m)^heap bytes\s+[1-9]\d*$`,
		`(?m)^goroutines\s+[1-9]\d*$`,
		`(?m)^  out_of_window\s+0$`,
		`(?m)^connections by state:\n  LISTEN\s+1\n  ESTABLISHED\s+1\n  total\s+2$`,
	} {
		if !regexp.MustCompile(re).MatchString(text) {
			t.Errorf("tund stats output lacks %s:\n%s", re, text)
		}
	}
	// Drops are sorted by reason.
	var reasons []string
	in := false
	for _, line := range strings.Split(text, "\n") {
		switch {
		case line == "drops by reason:":
			in = true
		case in && strings.HasPrefix(line, "  ") && !strings.HasPrefix(line, "  total"):
			reasons = append(reasons, strings.Fields(line)[0])
		default:
			in = false
		}
	}
	for i := 1; i < len(reasons); i++ {
		if reasons[i-1] > reasons[i] {
			t.Errorf("drops not sorted: %v", reasons)
		}
	}

	out.Reset()
	if err := statsCommand([]string{"-control", path, "-json"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"stats": {`, `"SegmentsIn":`, `"Retransmits": 0`, `"HeapBytes":`, `"Goroutines":`, `"HalfOpenEvicted": 0`, `"states": {`, `"LISTEN": 1`} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("tund stats -json lacks %s:\n%s", want, out.String())
		}
	}

	out.Reset()
	if err := statsCommand([]string{"-control", path, "-gc"}, &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^heap bytes\s+[1-9]\d*$`).MatchString(out.String()) {
		t.Errorf("tund stats -gc lacks the heap:\n%s", out.String())
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"extra"}, `"extra"`},
		{[]string{"-control", "/nonexistent/tund.sock"}, "/nonexistent/tund.sock"},
	} {
		err := statsCommand(tc.args, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: error %v, want one line naming %s", tc.args, err, tc.want)
		}
	}
}
