package main

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/tund-project/tund/stack"
)

// TestSSListenLine: a listener's line shows its accept queue and backlog
// as Recv-Q and Send-Q, as Linux ss does, and its SYN queue against the
// same backlog.
func TestSSListenLine(t *testing.T) {
	var out strings.Builder
	printConns(&out, []stack.ControlConn{
		{State: "LISTEN", Local: "198.18.0.2:80", Remote: "*:*", RecvQ: 3, SendQ: 8, SynQueue: 5},
		{State: "ESTABLISHED", Local: "198.18.0.2:80", Remote: "198.18.0.1:40000", RecvQ: 10, SendQ: 20},
	}, false)
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if len(lines) != 3 {
		t.Fatalf("want a header and 2 lines:\n%s", out.String())
	}
	if !regexp.MustCompile(`^LISTEN\s+3\s+8\s+198\.18\.0\.2:80\s+\*:\*\s+syn-queue 5/8$`).MatchString(lines[1]) {
		t.Errorf("listener line %q", lines[1])
	}
	if strings.Contains(lines[2], "syn-queue") {
		t.Errorf("a connection line shows a SYN queue: %q", lines[2])
	}
}

// TestSSInfoShowsLossRecovery: ss -i shows RACK's and PRR's state, as
// the JSON of the control socket carries it.
func TestSSInfoShowsLossRecovery(t *testing.T) {
	var out bytes.Buffer
	printConns(&out, []stack.ControlConn{{
		State: "ESTABLISHED", Local: "198.18.0.2:80", Remote: "198.18.0.1:40000", MSS: 1448, Cwnd: 14480,
		LossState: "recovery", ReoWndMicros: 25, RACKRTTMicros: 310, MinRTTMicros: 100,
		PRRDelivered: 4344, PRROut: 2896, SACKed: 2896, Lost: 1448, SpuriousUndone: 2, RTOMinMicros: 10000,
	}}, true)
	want := "loss:recovery reo_wnd:25µs rack_rtt:310µs min_rtt:100µs prr:4344/2896 sacked:2896 lost:1448 undone:2 rto_min:10ms"
	if !strings.Contains(out.String(), want) {
		t.Errorf("ss -i line lacks %q:\n%s", want, out.String())
	}
}
