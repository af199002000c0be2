package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A passive open, one segment of data, and the close, in strict mode.
const drillPass = `// A learner's first script: a handshake, 10 bytes in, the peer closes.
--tolerance_usecs=1000
0   socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0  bind(3, ..., ...) = 0
+0  listen(3, 1) = 0
+0  < S 0:0(0) win 65535 <mss 1460>
+0  > S. 0:0(0) ack 1 win 65535 <mss 1460>
+.1 < . 1:1(0) ack 1 win 65535
+0  accept(3, ..., ...) = 4
+0  < P. 1:11(10) ack 1 win 65535
+0  read(4, ..., 100) = 10
+.04 > . 1:1(0) ack 11
+0  < F. 11:11(0) ack 1 win 65535
+0  > . 1:1(0) ack 12
`

func TestDrillCommand(t *testing.T) {
	dir := t.TempDir()
	pass := filepath.Join(dir, "pass.pkt")
	fail := filepath.Join(dir, "fail.pkt")
	os.WriteFile(pass, []byte(drillPass), 0o644)
	// The same with the ACK of the data expected at once: tund delays it.
	os.WriteFile(fail, []byte(strings.Replace(drillPass, "+.04 > . 1:1(0) ack 11", "+0 > . 1:1(0) ack 11", 1)), 0o644)

	var out bytes.Buffer
	if err := drillCommand([]string{pass}, &out, &out); err != nil {
		t.Fatalf("passing script: %v\n%s", err, out.String())
	}
	if !strings.HasPrefix(out.String(), "PASS "+pass) || !strings.Contains(out.String(), "1 passed, 0 failed") {
		t.Fatalf("output:\n%s", out.String())
	}
	out.Reset()
	err := drillCommand([]string{"-v", pass, fail}, &out, &out)
	if err == nil {
		t.Fatalf("a failing script gave no error:\n%s", out.String())
	}
	s := out.String()
	for _, want := range []string{"FAIL " + fail + ":12:", "expected . 1:1(0) ack 11", "state transitions so far", "1 passed, 1 failed"} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if err := drillCommand(nil, &out, &out); err == nil || !strings.Contains(err.Error(), "no script") {
		t.Errorf("no arguments: %v", err)
	}
}
