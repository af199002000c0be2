package drill

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
)

// TestScripts runs every script in testdata strictly: each pins down one
// rule of the state machine, TIME-WAIT, RFC 5961, flow control or loss
// recovery, and must pass with every field compared.
func TestScripts(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.pkt")
	if err != nil {
		t.Fatal(err)
	}
	if len(paths) < 15 {
		t.Fatalf("only %d scripts in testdata", len(paths))
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".pkt"), func(t *testing.T) {
			t.Parallel()
			s, err := ParseFile(path)
			if err != nil {
				t.Fatal(err)
			}
			res := Run(s, Options{})
			if res.Status != Pass {
				t.Fatalf("%s %s at line %d: %s\n%s", path, res.Status, res.Line, res.Reason, res.Detail)
			}
			for _, ig := range res.Ignored {
				// Strict mode compares everything; only the inbound option
				// layout note (the marshaller pads as it likes) may appear.
				if !strings.HasPrefix(ig, "inbound option layout") {
					t.Errorf("strict run ignored %q", ig)
				}
			}
		})
	}
}

// TestScriptsStartWithTheirRule: each script opens with a comment saying
// what rule it pins down, citing the RFC section.
func TestScriptsStartWithTheirRule(t *testing.T) {
	paths, _ := filepath.Glob("testdata/*.pkt")
	for _, path := range paths {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		var head []string
		for _, l := range strings.Split(string(b), "\n") {
			if !strings.HasPrefix(l, "//") {
				break
			}
			head = append(head, l)
		}
		text := strings.Join(head, "\n")
		if len(head) < 3 || !strings.Contains(text, "RFC ") || !strings.Contains(text, "§") {
			t.Errorf("%s: no opening comment citing an RFC section", path)
		}
	}
}

func mustParse(t *testing.T, text string) *Script {
	t.Helper()
	s, err := Parse(text)
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, text)
	}
	return s
}

func TestParseTimes(t *testing.T) {
	s := mustParse(t, `
1.5       close(3) = 0
+0.1      close(3) = 0
+.002     close(3) = 0
*         close(3) = 0
0.1~0.2   close(3) = 0
+0~+0.2   close(3) = 0
0.1...0.3 close(3) = 0
+.01...0.011 close(3) = 0
+ 0.00    close(3) = 0
`)
	ms := time.Millisecond
	want := []struct {
		kind     TimeKind
		t, end   time.Duration
		hasEnd   bool
		endRel   bool
		blocking bool
	}{
		{TimeAbsolute, 1500 * ms, 0, false, false, false},
		{TimeRelative, 100 * ms, 0, false, false, false},
		{TimeRelative, 2 * ms, 0, false, false, false},
		{TimeAny, 0, 0, false, false, false},
		{TimeAbsolute, 100 * ms, 200 * ms, true, false, false},
		{TimeRelative, 0, 200 * ms, true, true, false},
		{TimeAbsolute, 100 * ms, 300 * ms, true, false, true},
		{TimeRelative, 10 * ms, 11 * ms, true, false, true},
		{TimeRelative, 0, 0, false, false, false},
	}
	if len(s.Events) != len(want) {
		t.Fatalf("%d events, want %d", len(s.Events), len(want))
	}
	for i, w := range want {
		e := s.Events[i]
		got := struct {
			kind     TimeKind
			t, end   time.Duration
			hasEnd   bool
			endRel   bool
			blocking bool
		}{e.TimeKind, e.Time, e.End, e.HasEnd, e.EndRel, e.Blocking}
		if got != w {
			t.Errorf("line %d %q: %+v, want %+v", e.Line, e.Text, got, w)
		}
		if e.Call == nil || e.Call.Name != "close" {
			t.Errorf("line %d: the call after the time was not parsed", e.Line)
		}
	}
	for _, bad := range []string{"-1 close(3) = 0", "+0", "close(3) = 0", "1.2.3 close(3) = 0"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParsePackets(t *testing.T) {
	s := mustParse(t, `
0 < S 0:0(0) win 65535 <mss 1460,sackOK,TS val 100 ecr 0,nop,wscale 7>
+0 > S. 0:0(0) ack 1 win 65535 <mss 1460,nop,nop,sackOK,nop,wscale 7>
+0 < . 1:1(0) ack 1 win 257 <nop,nop,sack 1001:2001 3001:4001,eol>
+0 > P. 1:101(100) ack 1 <...>
+0 < FP. 101:111(10) ack 1 win 0 <>
+0 < R 5:5(0) win 0
+0 < SEW 0:0(0) win 100
+0 < [ect0] - 0:0(0) win 1
+0 < U. 1:2(1) ack 1 win 10 urg 1
`)
	p := func(i int) *Packet { return s.Events[i].Packet }
	syn := p(0)
	if !syn.Inbound || syn.Flags != tcp.FlagSYN || !syn.HasWin || syn.Win != 65535 || syn.HasAck {
		t.Errorf("SYN: %+v", syn)
	}
	wantOpts := []Option{
		{Kind: "mss", Val: 1460, HasValue: true},
		{Kind: "sackOK"},
		{Kind: "TS", Val: 100, Ecr: 0},
		{Kind: "nop"},
		{Kind: "wscale", Val: 7, HasValue: true},
	}
	if !reflect.DeepEqual(syn.Options, wantOpts) {
		t.Errorf("SYN options %+v, want %+v", syn.Options, wantOpts)
	}
	if sa := p(1); sa.Inbound || sa.Flags != tcp.FlagSYN|tcp.FlagACK || !sa.HasAck || sa.Ack != 1 || len(sa.Options) != 6 {
		t.Errorf("SYN+ACK: %+v", sa)
	}
	sack := p(2).Options
	if len(sack) != 4 || sack[2].Kind != "sack" || sack[3].Kind != "eol" ||
		!reflect.DeepEqual(sack[2].SACK, []tcp.SACKBlock{{Start: 1001, End: 2001}, {Start: 3001, End: 4001}}) {
		t.Errorf("SACK options %+v", sack)
	}
	if d := p(3); !d.AnyOptions || d.Seq != 1 || d.End != 101 || d.Len != 100 || d.HasWin || d.Flags != tcp.FlagPSH|tcp.FlagACK {
		t.Errorf("data with <...>: %+v", d)
	}
	if f := p(4); f.Flags != tcp.FlagFIN|tcp.FlagPSH|tcp.FlagACK || !f.HasOptions || len(f.Options) != 0 || f.AnyOptions {
		t.Errorf("FIN with <>: %+v", f)
	}
	if r := p(5); r.Flags != tcp.FlagRST || r.Win != 0 || !r.HasWin {
		t.Errorf("RST: %+v", r)
	}
	if e := p(6); !e.ECE || !e.CWR || e.Flags != tcp.FlagSYN {
		t.Errorf("SYN with ECE and CWR: %+v", e)
	}
	if n := p(7); n.Flags != 0 || n.Win != 1 {
		t.Errorf("no flags, after an IP annotation: %+v", n)
	}
	if u := p(8); !u.HasUrg || u.Flags != tcp.FlagURG|tcp.FlagACK {
		t.Errorf("URG: %+v", u)
	}

	// What the runner cannot express is unsupported, not an error.
	for _, line := range []string{
		"0 < S 0:0(0) win 1 <mss 1460,FO abcd>",
		"0 < S 1000000:1000000(0)! win 1",
		"0 < icmp unreachable port",
	} {
		s := mustParse(t, line)
		if s.Events[0].Packet.Unsupported == "" {
			t.Errorf("%q: not marked unsupported", line)
		}
	}
	for _, bad := range []string{
		"0 < S 0:10(0) win 1",        // end is not start + length
		"0 < S 0:0 win 1",            // no length
		"0 < Q 0:0(0) win 1",         // unknown flag
		"0 < S 0:0(0) win 1 <mss>",   // mss without a value
		"0 < S 0:0(0) win 1 <TS 1>",  // TS without val/ecr
		"0 < S 0:0(0) win 1 <mss 1",  // unclosed
		"0 < S 0:0(0) win 1 bogus 3", // unknown field
		"0 < S 0:0(0) win 99999",     // window beyond 16 bits
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

func TestParseCalls(t *testing.T) {
	s := mustParse(t, `
0  connect(3, ..., ...) = -1 EINPROGRESS (Operation now in progress)
+0 fcntl(3, F_GETFL) = 0x2 (flags O_RDWR)
+0 fcntl(3, F_SETFL, O_RDWR|O_NONBLOCK) = 0
+0 getsockopt(3, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0
+0 setsockopt(3, SOL_SOCKET, SO_LINGER, {onoff=1, linger=0}, 8) = 0
+0 read(4, ..., 100) = -1 EAGAIN
+0 accept(3, ..., ...) = ...
+0 sendmsg(4, {msg_name(...)=...}, 0) = 10
`)
	c := func(i int) *Call { return s.Events[i].Call }
	if x := c(0); x.Name != "connect" || x.Ret != Int(-1) || x.Errno != "EINPROGRESS" || len(x.Args) != 3 || x.Args[1] != (Ellipsis{}) {
		t.Errorf("connect: %+v", x)
	}
	if x := c(1); x.Ret != Int(2) || x.Errno != "" {
		t.Errorf("fcntl with a note: %+v", x)
	}
	if x := c(2); !reflect.DeepEqual(x.Args[2], Or{Ident("O_RDWR"), Ident("O_NONBLOCK")}) {
		t.Errorf("flags: %#v", x.Args[2])
	} else if v, ok := value(x.Args[2]); !ok || v != 2|0o4000 {
		t.Errorf("O_RDWR|O_NONBLOCK is %#o", v)
	}
	if x := c(3); !reflect.DeepEqual(x.Args[3], List{Ident("ECONNRESET")}) {
		t.Errorf("getsockopt value: %#v", x.Args[3])
	}
	if x := c(4); !reflect.DeepEqual(x.Args[3], Struct{{"onoff", Int(1)}, {"linger", Int(0)}}) {
		t.Errorf("struct: %#v", x.Args[3])
	}
	if x := c(5); x.Errno != "EAGAIN" || x.Ret != Int(-1) {
		t.Errorf("errno without a note: %+v", x)
	}
	if x := c(6); x.Ret != (Ellipsis{}) {
		t.Errorf("any result: %+v", x)
	}
	if x := c(7); x.Unsupported == "" {
		t.Errorf("sendmsg's msghdr should make the call unsupported: %+v", x)
	}
	for _, bad := range []string{
		"0 close(3)",                 // no result
		"0 close(3) = -1 EBADF junk", // something after the errno
		"0 cl-ose(3) = 0",            // not a name
	} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// TestParseStructure: comments, #ifdef STANDARD, multi-line statements,
// option lines, shell lines and code blocks.
func TestParseStructure(t *testing.T) {
	s := mustParse(t, `// A comment line.
--tolerance_usecs=10000
--ip_version=ipv4
`+"`../common/defaults.sh`"+`
/* A block comment
   over two lines. */
0 socket(..., SOCK_STREAM, IPPROTO_TCP) = 3 // trailing comment
#ifdef STANDARD
+0 bind(3, ..., ...) = 0
#else
+0 bind(3, ..., ...) = -1 EINVAL
#endif
#ifndef STANDARD
+0 listen(3, 999) = 0
#endif
#ifdef Linux
+0 listen(3, 998) = 0
#else
#ifdef STANDARD
+0 listen(3, 1) = 0
#endif
#endif
+0 setsockopt(3, SOL_SOCKET, SO_LINGER,
              {onoff=1,
               linger=0}, 8) = 0
+0 `+"`sysctl -w net.ipv4.tcp_sack=1`"+`
%{
assert tcpi_rto == 1000000
}%
+0 close(3) = 0
`)
	if s.Options["tolerance_usecs"] != "10000" || s.Options["ip_version"] != "ipv4" || s.Unsupported != "" {
		t.Errorf("options %v, unsupported %q", s.Options, s.Unsupported)
	}
	var got []string
	for _, e := range s.Events {
		switch {
		case e.Call != nil:
			got = append(got, e.Call.Name+" "+e.Call.Ret.String()+fmtArgs(e.Call))
		case e.Shell != "":
			got = append(got, "shell "+e.Shell)
		case e.Code:
			got = append(got, "code")
		}
	}
	want := []string{
		"shell ../common/defaults.sh",
		"socket 3",
		"bind 0",
		"listen 0 [1]",
		"setsockopt 0",
		"shell sysctl -w net.ipv4.tcp_sack=1",
		"code",
		"close 0",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("events\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Lines are numbered as written: the multi-line setsockopt starts on
	// line 23, close is on line 30.
	for _, e := range s.Events {
		if e.Call != nil && e.Call.Name == "setsockopt" && e.Line != 23 {
			t.Errorf("setsockopt on line %d, want 23", e.Line)
		}
		if e.Call != nil && e.Call.Name == "close" && e.Line != 30 {
			t.Errorf("close on line %d, want 30", e.Line)
		}
	}

	if _, err := Parse("0 setsockopt(3, SOL_SOCKET, SO_LINGER,\n{onoff=1, linger=0}, 8 = 0\n"); err == nil ||
		!strings.HasPrefix(err.Error(), "1:") {
		t.Errorf("an unclosed statement: %v, want an error naming line 1", err)
	}
	if _, err := Parse("0 close(3) = 0\n\n+0 < S 0:1(0) win 1\n"); err == nil || !strings.HasPrefix(err.Error(), "3:") {
		t.Errorf("an error on line 3 reported as %v", err)
	}
	if s := mustParse(t, "--ip_version=ipv6\n0 close(3) = 0\n"); s.Unsupported == "" {
		t.Errorf("an IPv6 script is not unsupported")
	}
}

func fmtArgs(c *Call) string {
	if c.Name != "listen" {
		return ""
	}
	return " [" + c.Args[1].String() + "]"
}

// passiveOpen is the start of the runner tests' scripts.
const passiveOpen = `
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
+0    bind(3, ..., ...) = 0
+0    listen(3, 1) = 0
+0    < S 0:0(0) win 65535 <mss 1460>
+0    > S. 0:0(0) ack 1 win 65535 <mss 1460>
+.1   < . 1:1(0) ack 1 win 65535
+0    accept(3, ..., ...) = 4
`

func run(t *testing.T, text string, opts Options) Result {
	t.Helper()
	s := mustParse(t, text)
	s.Path = "inline.pkt"
	return Run(s, opts)
}

// TestMismatchIsReported: a script that expects the wrong packet fails at
// that line, and the failure names the line, the packet expected, the
// packet seen and the connection's transitions.
func TestMismatchIsReported(t *testing.T) {
	res := run(t, passiveOpen+`
+.1   < P. 1:101(100) ack 1 win 65535
+.04  > . 1:1(0) ack 100 win 65435
`, Options{})
	if res.Status != Fail || res.Line != 11 {
		t.Fatalf("%s at line %d (%s), want FAIL at line 11", res.Status, res.Line, res.Reason)
	}
	for _, want := range []string{
		"inline.pkt:11: +.04  > . 1:1(0) ack 100 win 65435", // the line
		"expected . 1:1(0) ack 100 win 65435",               // the packet expected
		"got      . 1:1(0) ack 101 win 65435",               // the packet seen
		"ack 101, want 100",                                 // what differs
		"at 0.240000 s (virtual)",                           // when
		"SYN-RECEIVED → ESTABLISHED",                        // the trace
	} {
		if !strings.Contains(res.Detail, want) {
			t.Errorf("detail lacks %q:\n%s", want, res.Detail)
		}
	}

	// Nothing sent at all: the failure says so, and until when it waited.
	res = run(t, passiveOpen+`
+.1   < P. 1:101(100) ack 1 win 65535
+0    > . 1:1(0) ack 101 win 65435
`, Options{})
	if res.Status != Fail || res.Line != 11 || !strings.Contains(res.Detail, "the stack sent nothing (waited to 0.204000)") {
		t.Errorf("%s line %d:\n%s", res.Status, res.Line, res.Detail)
	}

	// A packet sent before its time.
	res = run(t, passiveOpen+`
+.1   < P. 1:101(100) ack 1 win 65535
+.1   > . 1:1(0) ack 101 win 65435
`, Options{})
	if res.Status != Fail || !strings.Contains(res.Reason, "sent at 0.240000, the script expects it at 0.300000") {
		t.Errorf("%s: %s", res.Status, res.Reason)
	}
}

// TestLenientIgnoresWindowNotAck: lenient mode lets an advertised window
// differ (policy) and says so, but not an acknowledgment number
// (protocol).
func TestLenientIgnoresWindowNotAck(t *testing.T) {
	wrongWindow := passiveOpen + `
+.1   < P. 1:101(100) ack 1 win 65535
+.04  > . 1:1(0) ack 101 win 1000
`
	if res := run(t, wrongWindow, Options{}); res.Status != Fail || !strings.Contains(res.Reason, "window 65435, want 1000") {
		t.Errorf("strict: %s %s", res.Status, res.Reason)
	}
	res := run(t, wrongWindow, Options{Lenient: true})
	if res.Status != Pass {
		t.Fatalf("lenient: %s at %d: %s\n%s", res.Status, res.Line, res.Reason, res.Detail)
	}
	if !reflect.DeepEqual(res.Ignored, []string{"advertised window"}) {
		t.Errorf("lenient ignored %q, want the advertised window", res.Ignored)
	}

	wrongAck := passiveOpen + `
+.1   < P. 1:101(100) ack 1 win 65535
+.04  > . 1:1(0) ack 51 win 65435
`
	if res := run(t, wrongAck, Options{Lenient: true}); res.Status != Fail || !strings.Contains(res.Reason, "ack 101, want 51") {
		t.Errorf("lenient with a wrong ack: %s %s", res.Status, res.Reason)
	}
}

// TestTimeWaitCostsNoWallTime: a script that waits out TIME-WAIT's 60 s
// runs on the virtual clock. The wall time is logged, not asserted.
func TestTimeWaitCostsNoWallTime(t *testing.T) {
	s, err := ParseFile("testdata/active-close-time-wait.pkt")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	res := Run(s, Options{})
	wall := time.Since(start)
	if res.Status != Pass {
		t.Fatalf("%s at %d: %s\n%s", res.Status, res.Line, res.Reason, res.Detail)
	}
	if res.Virtual < 60*time.Second {
		t.Fatalf("the script took %v of virtual time, want past TIME-WAIT's 60 s", res.Virtual)
	}
	t.Logf("%v of virtual time in %v of wall time", res.Virtual, wall)
}

// TestDescriptorsAndErrorsAsAKernelGivesThem: a closed descriptor is
// reused by the next socket (the lowest free one), and a connection's
// error is reported once: a read after it sees end of file, a write a
// broken pipe.
func TestDescriptorsAndErrorsAsAKernelGivesThem(t *testing.T) {
	res := run(t, passiveOpen+`
+.1   < R 1:1(0) win 0
+0    read(4, ..., 10) = -1 ECONNRESET (Connection reset by peer)
+0    read(4, ..., 10) = 0
+0    write(4, ..., 10) = -1 EPIPE (Broken pipe)
+0    getsockopt(4, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0    close(4) = 0
+.1   < S 0:0(0) win 65535 <mss 1460>
+0    > S. 0:0(0) ack 1 win 65535 <mss 1460>
+.1   < . 1:1(0) ack 1 win 65535
+0    accept(3, ..., ...) = 4
+0    socket(..., SOCK_STREAM, IPPROTO_TCP) = 5
`, Options{})
	if res.Status != Pass {
		t.Fatalf("%s at %d: %s\n%s", res.Status, res.Line, res.Reason, res.Detail)
	}
	// SO_ERROR reports an error once too, and the write after it fails
	// with EPIPE.
	res = run(t, passiveOpen+`
+.1   < R 1:1(0) win 0
+0    getsockopt(4, SOL_SOCKET, SO_ERROR, [ECONNRESET], [4]) = 0
+0    getsockopt(4, SOL_SOCKET, SO_ERROR, [0], [4]) = 0
+0    write(4, ..., 10) = -1 EPIPE (Broken pipe)
`, Options{})
	if res.Status != Pass {
		t.Fatalf("%s at %d: %s\n%s", res.Status, res.Line, res.Reason, res.Detail)
	}
}

// TestSysctlRmemCapsAutotuning: tcp_rmem's third field is the largest the
// receive buffer may grow to, so it also sets the window scale offered.
func TestSysctlRmemCapsAutotuning(t *testing.T) {
	res := run(t, "`sysctl -q net.ipv4.tcp_rmem=\"4096 8192 8192\"`"+`
0     socket(..., SOCK_STREAM, IPPROTO_TCP) = 3
0...0.1 connect(3, ..., ...) = 0
+0    > S 0:0(0) win 8192 <mss 1460,nop,wscale 0,sackOK,TS val 0 ecr 0>
+.1   < S. 0:0(0) ack 1 win 65535 <mss 1460>
+0    > . 1:1(0) ack 1 win 8192
`, Options{})
	if res.Status != Pass {
		t.Fatalf("%s at %d: %s\n%s", res.Status, res.Line, res.Reason, res.Detail)
	}
}
