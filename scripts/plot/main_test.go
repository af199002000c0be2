package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestPlotDrawsTheBusiestConnection(t *testing.T) {
	dir := t.TempDir()
	trace := filepath.Join(dir, "t.jsonl")
	var b strings.Builder
	b.WriteString(`{"t":0,"kind":"transition","local":"a","remote":"b","from":"LISTEN","to":"SYN-RECEIVED"}` + "\n")
	for i := 0; i < 50; i++ {
		fmt.Fprintf(&b, `{"t":%g,"kind":"sample","local":"a","remote":"b","cwnd":%d,"inflight":100,"srtt_us":300,"rto_us":200000}`+"\n", float64(i)/100, 1024*(i+1))
	}
	b.WriteString(`{"t":0.1,"kind":"sample","local":"a","remote":"c","cwnd":99999999}` + "\n")
	os.WriteFile(trace, []byte(b.String()), 0o600)
	out := filepath.Join(dir, "p.svg")
	if err := run(out, "cwnd", "", []string{"newreno=" + trace}); err != nil {
		t.Fatal(err)
	}
	svg, _ := os.ReadFile(out)
	s := string(svg)
	if !strings.HasPrefix(s, "<svg") || !strings.Contains(s, "newreno") || strings.Count(s, "<polyline") != 1 {
		t.Fatalf("svg:\n%s", s)
	}
	// 50 points of the busiest connection, none of the other one.
	pts := s[strings.Index(s, `points="`)+8:]
	pts = pts[:strings.Index(pts, `"`)]
	if n := len(strings.Fields(pts)); n != 50 {
		t.Errorf("%d points, want 50", n)
	}
	if err := run(out, "bogus", "", []string{trace}); err == nil || !strings.Contains(err.Error(), `"bogus"`) {
		t.Errorf("bad metric: %v", err)
	}
	empty := filepath.Join(dir, "e.jsonl")
	os.WriteFile(empty, nil, 0o600)
	if err := run(out, "cwnd", "", []string{empty}); err == nil {
		t.Error("empty trace accepted")
	}
}
