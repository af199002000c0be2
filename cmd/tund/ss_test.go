package main

import (
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
