package integration

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestTraceJSONAndPlot: tund -trace-json records the transitions and
// periodic cwnd/RTT samples of a real download, and scripts/plot turns
// the file into an SVG chart.
func TestTraceJSONAndPlot(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	dir := t.TempDir()
	trace := filepath.Join(dir, "trace.jsonl")
	proc := startTund(t, ns, "-trace-json", trace, "-sample-interval", "2ms", "-control", "none")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if out, err := inNS(ctx, ns, "curl", "-sS", "-o", "/dev/null", "http://"+stackAddr+"/bytes/67108864").CombinedOutput(); err != nil {
		t.Fatalf("curl: %v %s", err, out)
	}
	proc.stop(t)
	f, err := os.Open(trace)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	kinds := map[string]int{}
	maxCwnd := 0
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var e struct {
			Kind string `json:"kind"`
			To   string `json:"to"`
			Cwnd int    `json:"cwnd"`
		}
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("bad line %q: %v", sc.Text(), err)
		}
		kinds[e.Kind]++
		maxCwnd = max(maxCwnd, e.Cwnd)
	}
	if kinds["transition"] < 5 || kinds["sample"] < 3 || maxCwnd == 0 {
		t.Fatalf("trace has %v, largest cwnd %d: want transitions and samples", kinds, maxCwnd)
	}
	svg := filepath.Join(dir, "cwnd.svg")
	cmd := exec.CommandContext(ctx, "go", "run", "./scripts/plot", "-o", svg, "download="+trace)
	cmd.Dir = ".."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("plot: %v\n%s", err, out)
	}
	b, err := os.ReadFile(svg)
	if err != nil || !strings.Contains(string(b), "<polyline") {
		t.Fatalf("no chart in %s: %v", svg, err)
	}
	t.Logf("%d transitions, %d samples, largest cwnd %d bytes", kinds["transition"], kinds["sample"], maxCwnd)
}
