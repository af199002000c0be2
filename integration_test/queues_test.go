package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestQueuesSpreadFlows: tund -queues 4 opens a four-queue TUN with a
// reader per queue; eight nc clients echo 4 MiB each at once, every byte
// comes back, and the packets came in on more than one queue (tund stats
// counts them per queue, and tund logs queues=4).
func TestQueuesSpreadFlows(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	proc := startTund(t, ns, "-queues", "4", "-control", ctl)
	if !strings.Contains(proc.log(), "queues=4") {
		t.Fatalf("tund did not report queues=4:\n%s", proc.log())
	}
	const flows, size = 8, 4 << 20
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, flows)
	for i := range flows {
		path, want := randomFile(t, size, uint64(100+i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := ncEcho(ctx, ns, path, size, want); err != nil {
				errs <- fmt.Errorf("flow %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}

	stats, err := exec.Command(tundBin, "stats", "-control", ctl).CombinedOutput()
	if err != nil {
		t.Fatalf("tund stats: %v\n%s", err, stats)
	}
	m := regexp.MustCompile(`(?m)^packets in by queue\s+(\d+) (\d+) (\d+) (\d+)$`).FindStringSubmatch(string(stats))
	if m == nil {
		t.Fatalf("tund stats lacks four queues' packets in:\n%s", stats)
	}
	busy, total := 0, 0
	for _, s := range m[1:] {
		n, _ := strconv.Atoi(s)
		total += n
		if n > 0 {
			busy++
		}
	}
	if busy < 2 {
		t.Errorf("packets in by queue %v: eight flows all on one queue", m[1:])
	}
	if in := regexp.MustCompile(`(?m)^packets in\s+(\d+)$`).FindStringSubmatch(string(stats)); in == nil || in[1] != strconv.Itoa(total) {
		t.Errorf("packets in by queue sum to %d, packets in is %v", total, in)
	}
	t.Logf("packets in by queue: %v", m[1:])
}
