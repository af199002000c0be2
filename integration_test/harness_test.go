package integration

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tun"
)

// Addresses inside every test namespace: IPv4 from the RFC 2544
// benchmarking range, IPv6 from a unique local prefix (tund's defaults).
const (
	hostAddr   = "198.18.0.1"
	stackAddr  = "198.18.0.2"
	hostCIDR   = "198.18.0.1/24"
	hostAddr6  = "fd00:7:5eed::1"
	stackAddr6 = "fd00:7:5eed::2"
	hostCIDR6  = "fd00:7:5eed::1/64"
)

// ipFamily is one address family as the tools are told it: every test of
// curl, nc, ping and kernel sockets runs once for each, in one namespace.
type ipFamily struct {
	name        string // "IPv4", "IPv6": the subtest's name
	flag        string // "-4" or "-6", for curl, nc and ping
	stack, host string // the stack's and the kernel side's address
}

var families = []ipFamily{
	{"IPv4", "-4", stackAddr, hostAddr},
	{"IPv6", "-6", stackAddr6, hostAddr6},
}

// stackAt is the stack's address with port, as a dialer writes it
// ("198.18.0.2:7", "[fd00:7:5eed::2]:7").
func (f ipFamily) stackAt(port int) string { return net.JoinHostPort(f.stack, fmt.Sprint(port)) }

// hostAt is the kernel side's address with port.
func (f ipFamily) hostAt(port int) string { return net.JoinHostPort(f.host, fmt.Sprint(port)) }

// url is the URL of path on the stack's web server.
func (f ipFamily) url(path string) string { return "http://" + f.stackAt(80) + path }

var (
	tundBin string // built once by TestMain
	nsSeq   atomic.Int32
)

func TestMain(m *testing.M) {
	code := func() int {
		if reason := unavailable(); reason == "" {
			dir, err := os.MkdirTemp("", "tund-it-")
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				return 1
			}
			defer os.RemoveAll(dir)
			tundBin = filepath.Join(dir, "tund")
			out, err := exec.Command("go", "build", "-o", tundBin, "../cmd/tund").CombinedOutput()
			if err != nil {
				fmt.Fprintf(os.Stderr, "build tund: %v\n%s", err, out)
				return 1
			}
		}
		code := m.Run()
		// Without -v a skip is silent ("ok"): say here what was skipped
		// and why, once per reason.
		if n := len(skipped.list()); n > 0 {
			fmt.Fprintf(os.Stderr, "integration: %d tests skipped:\n", n)
			for _, reason := range skipped.reasons() {
				fmt.Fprintf(os.Stderr, "  %s\n", reason)
			}
		}
		return code
	}()
	os.Exit(code)
}

// skipLog records the tests need and needTool skipped, for TestMain's
// summary.
type skipLog struct {
	mu    sync.Mutex
	tests []string
	why   map[string][]string // reason → tests
}

var skipped skipLog

func (l *skipLog) add(test, reason string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.why == nil {
		l.why = map[string][]string{}
	}
	l.tests = append(l.tests, test)
	l.why[reason] = append(l.why[reason], test)
}

func (l *skipLog) list() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.tests
}

// reasons are "REASON: TEST, TEST…" lines, sorted.
func (l *skipLog) reasons() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for why, tests := range l.why {
		out = append(out, fmt.Sprintf("%s: %s", why, strings.Join(tests, ", ")))
	}
	sort.Strings(out)
	return out
}

// unavailable says why integration tests cannot run here ("" if they can).
func unavailable() string {
	if os.Geteuid() != 0 {
		return "integration tests need root (network namespaces and TUN devices)"
	}
	if _, err := os.Stat("/dev/net/tun"); err != nil {
		return "integration tests need /dev/net/tun: " + err.Error()
	}
	for _, tool := range []string{"ip", "curl", "nc", "ping"} {
		if _, err := exec.LookPath(tool); err != nil {
			return "integration tests need " + tool + " on PATH"
		}
	}
	return ""
}

// need skips (or, with TUND_REQUIRE_INTEGRATION=1, fails) when the
// machine cannot run integration tests.
func need(t *testing.T) {
	t.Helper()
	if reason := unavailable(); reason != "" {
		if os.Getenv("TUND_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("TUND_REQUIRE_INTEGRATION=1 but %s", reason)
		}
		skipped.add(t.Name(), reason)
		t.Skip(reason)
	}
}

// needTool skips (or, under TUND_REQUIRE_INTEGRATION=1, fails) a test
// whose external tool is missing.
func needTool(t *testing.T, name string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		if os.Getenv("TUND_REQUIRE_INTEGRATION") == "1" {
			t.Fatalf("TUND_REQUIRE_INTEGRATION=1 but %s is not installed", name)
		}
		skipped.add(t.Name(), "needs "+name)
		t.Skipf("needs %s", name)
	}
}

// nftLoss makes the kernel drop pct percent of the TCP packets crossing
// the TUN device in ns, in both directions, at random: an input chain for
// packets from the stack, an output chain for packets to it. (This kernel
// has no netem; nftables' numgen gives the same effect.) The namespace's
// deletion removes the rules.
func nftLoss(t *testing.T, ns string, pct int) {
	t.Helper()
	needTool(t, "nft")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	rules := fmt.Sprintf(`table inet tundloss {
	chain in {
		type filter hook input priority 0;
		iifname "tund0" meta l4proto tcp numgen random mod 100 < %d counter drop
	}
	chain out {
		type filter hook output priority 0;
		oifname "tund0" meta l4proto tcp numgen random mod 100 < %d counter drop
	}
}
`, pct, pct)
	cmd := inNS(ctx, ns, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s", err, out)
	}
}

// nftDropped reports how many packets the nftLoss rules dropped.
func nftDropped(t *testing.T, ns string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "nft", "list", "table", "inet", "tundloss").Output()
	if err != nil {
		t.Fatalf("nft list: %v", err)
	}
	total := 0
	for _, f := range strings.Split(string(out), "counter packets ")[1:] {
		var n int
		fmt.Sscanf(f, "%d", &n)
		total += n
	}
	return total
}

// newNetNS creates a namespace for this test and deletes it afterwards,
// also when the test fails.
func newNetNS(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("tund-it-%d-%d", os.Getpid(), nsSeq.Add(1))
	if err := tun.CreateNetNS(name); err != nil {
		t.Fatalf("create netns: %v", err)
	}
	t.Cleanup(func() {
		if err := tun.DeleteNetNS(name); err != nil {
			t.Errorf("delete netns %s: %v", name, err)
		}
	})
	return name
}

// inNS builds a command that runs inside the namespace, bounded by ctx.
func inNS(ctx context.Context, ns string, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns, name}, args...)...)
}

// tundProc is a running tund; log returns what it has printed to stderr
// so far (the first 256 KiB).
type tundProc struct {
	mu     sync.Mutex
	buf    strings.Builder
	cmd    *exec.Cmd
	exited chan struct{} // closed once tund has exited
}

// stop interrupts tund and waits for it to exit, as Ctrl-C would; it
// fails the test if tund takes more than 5 s.
func (p *tundProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("tund did not exit on SIGINT:\n%s", p.log())
	}
}

func (p *tundProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.buf.String()
}

// offloadOn reports whether the tests run with TUN offloads, tund's
// default: TUND_TEST_OFFLOAD=0 runs the whole suite without (CI does both).
func offloadOn() bool { return os.Getenv("TUND_TEST_OFFLOAD") != "0" }

// startTund runs the tund binary in ns and waits until it serves. Unless
// extra names one, tund's control socket goes in the test's temporary
// directory: the default under /run is host state, shared with any other
// tund on the machine. Without offloads (offloadOn), it runs with
// -offload=false unless extra says otherwise.
func startTund(t *testing.T, ns string, extra ...string) *tundProc {
	t.Helper()
	args := append([]string{"-netns", ns, "-tun", "tund0", "-addr", stackAddr, "-host", hostCIDR,
		"-addr6", stackAddr6, "-host6", hostCIDR6}, extra...)
	if !offloadOn() && !slices.ContainsFunc(extra, func(a string) bool { return strings.HasPrefix(a, "-offload") }) {
		args = append(args, "-offload=false")
	}
	if !slices.Contains(extra, "-control") {
		args = append(args, "-control", filepath.Join(t.TempDir(), "ctl.sock"))
	}
	cmd := exec.Command(tundBin, args...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			t.Errorf("tund did not exit on SIGINT")
		}
	})
	ready := make(chan struct{})
	proc := &tundProc{cmd: cmd, exited: exited}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			proc.mu.Lock()
			if proc.buf.Len() < 256<<10 {
				proc.buf.WriteString(line + "\n")
			}
			proc.mu.Unlock()
			if strings.Contains(line, "msg=serving") {
				close(ready)
			}
		}
		_ = cmd.Wait()
		close(exited)
	}()
	select {
	case <-ready:
	case <-time.After(10 * time.Second):
		t.Fatalf("tund did not start serving:\n%s", proc.log())
	}
	return proc
}

// startLibraryStack opens a TUN device inside ns and runs the stack
// library on it, as a program embedding tund would.
func startLibraryStack(t *testing.T, ns string) *stack.Stack {
	t.Helper()
	return startLibraryStackCfg(t, ns, stack.Config{}, nil)
}

// startLibraryStackCfg is startLibraryStack with a config (Addr is set
// here) and an optional wrapper around the device, for tests that need to
// watch or hold packets.
func startLibraryStackCfg(t *testing.T, ns string, cfg stack.Config, wrap func(tun.Device) tun.Device) *stack.Stack {
	t.Helper()
	var dev *tun.TUN
	err := tun.InNetNS(ns, func() error {
		var err error
		dev, err = tun.Open(tun.Config{Name: "tund0", MTU: 1500, Host: netip.MustParsePrefix(hostCIDR),
			Host6: netip.MustParsePrefix(hostCIDR6), Offload: offloadOn()})
		return err
	})
	if err != nil {
		t.Fatalf("open TUN in %s: %v", ns, err)
	}
	var d tun.Device = dev
	if wrap != nil {
		d = wrap(dev)
	}
	cfg.Addr, cfg.Addr6 = netip.MustParseAddr(stackAddr), netip.MustParseAddr(stackAddr6)
	st, err := stack.New(d, cfg)
	if err != nil {
		dev.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// dialOpts shape a kernel connection made by nsDialOpts.
type dialOpts struct {
	srcIP   string        // local address ("": the kernel chooses)
	srcPort int           // local port, bound with SO_REUSEADDR (0: ephemeral)
	timeout time.Duration // 0: 20 s
}

// nsDialOpts makes a kernel TCP connection from inside ns. With a source
// port, successive connections can reuse one four-tuple.
func nsDialOpts(ns, addr string, o dialOpts) (*net.TCPConn, error) {
	var c net.Conn
	err := tun.InNetNS(ns, func() error {
		d := net.Dialer{Timeout: o.timeout}
		if d.Timeout == 0 {
			d.Timeout = 20 * time.Second
		}
		if o.srcIP != "" || o.srcPort != 0 {
			d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(o.srcIP), Port: o.srcPort}
		}
		if o.srcPort != 0 {
			d.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				err := rc.Control(func(fd uintptr) {
					serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_REUSEADDR, 1)
				})
				if err != nil {
					return err
				}
				return serr
			}
		}
		var err error
		c, err = d.Dial("tcp", addr)
		return err
	})
	if err != nil {
		return nil, err
	}
	return c.(*net.TCPConn), nil
}

// nsDial makes a kernel TCP connection from inside ns, from local port
// lport if it is not 0.
func nsDial(t *testing.T, ns, addr string, lport int) (*net.TCPConn, error) {
	t.Helper()
	return nsDialOpts(ns, addr, dialOpts{srcPort: lport})
}

// nsListen opens a kernel TCP listener inside ns.
func nsListen(t *testing.T, ns, addr string) net.Listener {
	t.Helper()
	var l net.Listener
	err := tun.InNetNS(ns, func() error {
		var err error
		l, err = net.Listen("tcp", addr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// kernelSS runs `ss -tanH` with a filter inside ns and returns its lines:
// the kernel's own view of its side of the connections.
func kernelSS(t *testing.T, ns string, filter ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "ss", append([]string{"-tanH"}, filter...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("ss %v: %v\n%s", filter, err, out)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if l != "" {
			lines = append(lines, l)
		}
	}
	return lines
}

// tracer collects a stack's trace lines.
type tracer struct {
	mu    sync.Mutex
	lines []string
}

func (tr *tracer) trace(ev stack.TraceEvent) {
	tr.mu.Lock()
	tr.lines = append(tr.lines, ev.String())
	tr.mu.Unlock()
}

// of returns the lines about one peer address ("ip:port"), in order.
func (tr *tracer) of(peer string) []string {
	tr.mu.Lock()
	defer tr.mu.Unlock()
	var out []string
	for _, l := range tr.lines {
		if strings.HasPrefix(l, peer+" ") {
			out = append(out, l)
		}
	}
	return out
}

// waitFor polls cond every 10 ms for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	end := time.Now().Add(d)
	for time.Now().Before(end) {
		if cond() {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cond()
}

// randomFile writes n seeded random bytes to a temp file and returns its
// path and SHA-256.
func randomFile(t *testing.T, n int, seed uint64) (string, string) {
	t.Helper()
	b := randomBytes(n, seed)
	p := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(b)
	return p, hex.EncodeToString(sum[:])
}

func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, ^seed))
	b := make([]byte, n)
	for i := 0; i+8 <= n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	for i := n &^ 7; i < n; i++ {
		b[i] = byte(r.Uint32())
	}
	return b
}

// hashingWriter counts and hashes what is written to it.
type hashingWriter struct {
	n int64
	h interface {
		io.Writer
		Sum([]byte) []byte
	}
}

// ncEcho sends the file at path (size bytes, SHA-256 want) through nc to
// tund's echo service in ns and checks every byte comes back. nc -N shuts
// down its sending side at the end of the input, so the echo server sees
// EOF, finishes echoing and closes, which ends nc.
func ncEcho(ctx context.Context, ns, path string, size int64, want string) error {
	return ncEchoFamily(ctx, ns, families[0], path, size, want)
}

// ncEchoFamily is ncEcho over the family f (nc -4 or nc -6).
func ncEchoFamily(ctx context.Context, ns string, f ipFamily, path string, size int64, want string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	out := newHashingWriter()
	var stderr strings.Builder
	cmd := inNS(ctx, ns, "nc", f.flag, "-N", f.stack, "7")
	cmd.Stdin, cmd.Stdout, cmd.Stderr = in, out, &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("nc: %v: %s", err, stderr.String())
	}
	if out.n != size || out.sum() != want {
		return fmt.Errorf("echo returned %d bytes sha256 %s, want %d bytes %s", out.n, out.sum(), size, want)
	}
	return nil
}

func newHashingWriter() *hashingWriter { return &hashingWriter{h: sha256.New()} }

func (w *hashingWriter) Write(p []byte) (int, error) {
	w.n += int64(len(p))
	return w.h.Write(p)
}

func (w *hashingWriter) sum() string { return hex.EncodeToString(w.h.Sum(nil)) }
