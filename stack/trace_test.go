package stack

import (
	"strings"
	"sync"
	"testing"
	"time"
)

// traceLog collects a stack's trace lines for a test.
type traceLog struct {
	mu    sync.Mutex
	lines []string
}

// add is a Config.Trace.
func (l *traceLog) add(ev TraceEvent) {
	l.mu.Lock()
	l.lines = append(l.lines, ev.String())
	l.mu.Unlock()
}

// count is how many lines contain s.
func (l *traceLog) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// want waits up to 5 s for n lines containing s (the trace may come from
// the reader goroutine a moment after what the test waited for).
func (l *traceLog) want(t *testing.T, s string, n int) {
	t.Helper()
	for deadline := time.Now().Add(5 * time.Second); l.count(s) < n && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	if got := l.count(s); got != n {
		l.mu.Lock()
		defer l.mu.Unlock()
		t.Errorf("%d trace lines with %q, want %d:\n%s", got, s, n, strings.Join(l.lines, "\n"))
	}
}
