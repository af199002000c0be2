package integration

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLabs runs every lab script (scripts/labs, the commands of
// docs/labs) with the tund binary under test and checks the lines each
// lab's page says to expect, so the labs never rot. Each script makes
// and deletes its own namespace.
func TestLabs(t *testing.T) {
	need(t)
	needTool(t, "nft")
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	labs := []struct {
		script string
		args   []string
		want   map[string]int // regexp → how many lines match (0: at least one)
	}{
		{"close-wait.sh", nil, map[string]int{
			`^CLOSE-WAIT\s+8\s+0\s+198\.18\.0\.2:8001\s`:          3,
			`^0\s+0\s+198\.18\.0\.1:\d+\s+198\.18\.0\.2:8001`:     3, // the kernel's FIN-WAIT-2 lines
			`ESTABLISHED → CLOSE-WAIT on rcv FIN .*\(send ACK\)$`: 3,
		}},
		{"accept-queue.sh", nil, map[string]int{
			`^LISTEN\s+2\s+2\s+\[::\]:8002\s+\*:\*\s+syn-queue 0/2$`:           1,
			`^SYN-SENT\s.*198\.18\.0\.2:8002`:                                  2,
			`LISTEN → LISTEN on rcv SYN .*\(accept queue full: drop the SYN\)`: 0,
		}},
		{"syn-queue.sh", nil, map[string]int{
			`^LISTEN\s+0\s+2\s+\[::\]:8003\s+\*:\*\s+syn-queue 2/2$`: 1,
			`^SYN-RECEIVED\s.*198\.18\.0\.2:8003`:                    2,
			`\(SYN queue full: send SYN\+ACK with a cookie\)`:        0,
		}},
		{"syn-queue.sh", []string{"-syncookies=false"}, map[string]int{
			`\(SYN queue full: drop the SYN\)`: 0,
		}},
		{"client-path.sh", nil, map[string]int{
			`CLOSED → SYN-SENT on app connect`:                                        1,
			`SYN-SENT → ESTABLISHED on rcv SYN\+ACK`:                                  1,
			`ESTABLISHED → FIN-WAIT-1 on app close`:                                   1,
			`FIN-WAIT-1 → FIN-WAIT-2 on rcv ACK of FIN`:                               1,
			`FIN-WAIT-2 → TIME-WAIT on rcv FIN`:                                       1,
			`^FIN-WAIT-2\s+0\s+0\s+198\.18\.0\.2:\d+\s+198\.18\.0\.1:8080\s+finwait2`: 1,
			`^TIME-WAIT\s+0\s+0\s+198\.18\.0\.2:\d+\s+198\.18\.0\.1:8080\s+timewait`:  1,
			`TIME-WAIT → CLOSED on 2MSL timeout`:                                      1,
		}},
		{"client-path.sh", []string{"second"}, map[string]int{
			`ESTABLISHED → CLOSE-WAIT on rcv FIN`: 1,
			`CLOSE-WAIT → LAST-ACK on app close`:  1,
			`LAST-ACK → CLOSED on rcv ACK of FIN`: 1,
		}},
		{"server-path.sh", nil, map[string]int{
			`LISTEN → SYN-RECEIVED on rcv SYN`:               1,
			`ESTABLISHED → FIN-WAIT-1 on app close`:          1,
			`→ TIME-WAIT on rcv FIN`:                         1,
			`^Total: 10[56] \(LISTEN 5, TIME-WAIT 10[01]\)$`: 1,
			`^Total: 5 \(LISTEN 5\)$`:                        1,
		}},
		{"simultaneous-close.sh", nil, map[string]int{
			`FIN-WAIT-1 → CLOSING on rcv FIN`:       1,
			`CLOSING → TIME-WAIT on rcv ACK of FIN`: 1,
		}},
		{"time-wait.sh", nil, map[string]int{
			`TIME-WAIT → TIME-WAIT on rcv FIN .*\(send ACK, restart 2MSL\)$`: 1,
		}},
		{"zero-window.sh", nil, map[string]int{
			`ESTABLISHED → ESTABLISHED on persist timeout \(send window probe\)$`: 0,
			`snd_wnd:0 `: 1,
			`^ESTABLISHED\s+\d{5,}\s+0\s+198\.18\.0\.2:8003\s`: 1,
		}},
	}
	for _, lab := range labs {
		name := strings.TrimSuffix(lab.script, ".sh")
		if len(lab.args) > 0 {
			name += " " + strings.Join(lab.args, " ")
		}
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", append([]string{filepath.Join(root, "scripts/labs", lab.script)}, lab.args...)...)
			cmd.Env = append(os.Environ(), "TUND_BIN="+tundBin)
			cmd.Dir = root
			// On timeout, TERM: the script's trap then stops tund and
			// deletes its namespace. KILL only if that takes too long.
			cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
			cmd.WaitDelay = 15 * time.Second
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%s: %v\n%s", lab.script, err, out)
			}
			lines := strings.Split(string(out), "\n")
			for re, want := range lab.want {
				rx := regexp.MustCompile(re)
				n := 0
				for _, l := range lines {
					if rx.MatchString(l) {
						n++
					}
				}
				if (want == 0 && n == 0) || (want > 0 && n != want) {
					t.Errorf("%d lines match %s, want %d", n, re, want)
				}
			}
			if t.Failed() {
				t.Logf("output:\n%s", out)
			}
		})
	}
}
