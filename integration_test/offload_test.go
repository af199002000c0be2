package integration

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestOffloadOnAndOff: tund with TUN offloads (the default) and with
// -offload=false echoes 20 MiB through nc intact both ways; with offloads
// the kernel's data comes in and tund's goes out as super-segments (tund
// stats counts them), without none do, and the -pcap capture shows what
// the wire carried: no packet over the MTU, every checksum valid.
func TestOffloadOnAndOff(t *testing.T) {
	need(t)
	needTool(t, "tshark")
	for _, on := range []bool{true, false} {
		t.Run(fmt.Sprintf("offload=%v", on), func(t *testing.T) {
			ns := newNetNS(t)
			dir := t.TempDir()
			ctl, capture := filepath.Join(dir, "ctl.sock"), filepath.Join(dir, "cap.pcap")
			proc := startTund(t, ns, fmt.Sprintf("-offload=%v", on), "-control", ctl, "-pcap", capture)
			if want := fmt.Sprintf("offload=%v", on); !strings.Contains(proc.log(), want) {
				t.Fatalf("tund did not report %s:\n%s", want, proc.log())
			}
			const size = 20 << 20
			path, want := randomFile(t, size, 12)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := ncEcho(ctx, ns, path, size, want); err != nil {
				t.Fatal(err)
			}

			stats, err := exec.Command(tundBin, "stats", "-control", ctl).CombinedOutput()
			if err != nil {
				t.Fatalf("tund stats: %v\n%s", err, stats)
			}
			count := func(name string) int {
				m := regexp.MustCompile(`(?m)^` + name + `\s+(\d+)$`).FindStringSubmatch(string(stats))
				if m == nil {
					t.Fatalf("tund stats lacks %q:\n%s", name, stats)
				}
				n, _ := strconv.Atoi(m[1])
				return n
			}
			superIn, superOut := count("super-segments in"), count("super-segments out")
			if on && (superIn == 0 || superOut == 0) {
				t.Errorf("with offloads: %d super-segments in, %d out; want some each way", superIn, superOut)
			}
			if !on && (superIn != 0 || superOut != 0) {
				t.Errorf("without offloads: %d super-segments in, %d out; want none", superIn, superOut)
			}
			t.Logf("offload=%v: %d packets in, %d segments in, %d super; %d packets out, %d segments out, %d super",
				on, count("packets in"), count("segments in"), superIn, count("packets out"), count("segments out"), superOut)

			proc.stop(t) // the capture is complete once tund has exited
			bad := tshark(t, capture, "-o", "tcp.check_checksum:TRUE",
				"-Y", badTCPChecksum+" || ip.checksum.status == 0 || frame.len > 1500", "-T", "fields", "-e", "frame.number")
			if strings.TrimSpace(bad) != "" {
				// Say which rule each broke, and where it came from, so a
				// rare failure can be told apart.
				detail := tshark(t, capture, "-o", "tcp.check_checksum:TRUE",
					"-Y", badTCPChecksum+" || ip.checksum.status == 0 || frame.len > 1500",
					"-T", "fields", "-e", "frame.number", "-e", "frame.len", "-e", "ip.src", "-e", "tcp.seq_raw",
					"-e", "tcp.len", "-e", "tcp.checksum.status", "-e", "ip.checksum.status", "-e", "tcp.analysis.retransmission")
				lines := strings.Split(strings.TrimSpace(detail), "\n")
				t.Errorf("frames over the MTU or with a bad checksum in the capture (number, length, source, seq, payload, TCP and IP checksum status, retransmission):\n%s",
					strings.Join(lines[:min(10, len(lines))], "\n"))
			}
			frames := strings.Count(tshark(t, capture, "-Y", "tcp.len > 0", "-T", "fields", "-e", "frame.number"), "\n")
			if frames < 2*size/1460 {
				t.Errorf("%d data frames in the capture for %d bytes each way: not the wire's segments", frames, size)
			}
		})
	}
}
