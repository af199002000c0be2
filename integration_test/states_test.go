package integration

import (
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// acceptOne starts a listener on port and returns a channel with the
// first connection it accepts.
func acceptOne(t *testing.T, st *stack.Stack, port string) <-chan net.Conn {
	t.Helper()
	l, err := st.Listen("tcp", ":"+port)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	ch := make(chan net.Conn, 1)
	go func() {
		if c, err := l.Accept(); err == nil {
			ch <- c
		}
	}()
	return ch
}

// wantTrace checks that lines contain each of want, in that order.
func wantTrace(t *testing.T, lines []string, want ...string) {
	t.Helper()
	i := 0
	for _, l := range lines {
		if i < len(want) && strings.Contains(l, want[i]) {
			i++
		}
	}
	if i < len(want) {
		t.Errorf("trace lacks %q (in order); got:\n%s", want[i], strings.Join(lines, "\n"))
	}
}

// TestStackClosesFirst: the stack is the active closer (FIN-WAIT-1,
// FIN-WAIT-2, TIME-WAIT) and holds the TIME-WAIT entry; the kernel closes
// passively (CLOSE-WAIT, LAST-ACK) and keeps nothing.
func TestStackClosesFirst(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	tr := &tracer{}
	st := startLibraryStackCfg(t, ns, stack.Config{Trace: tr.trace}, nil)
	accepted := acceptOne(t, st, "8001")
	kc, err := nsDial(t, ns, stackAddr+":8001", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	sc := <-accepted
	payload := randomBytes(100000, 11)
	go func() {
		sc.Write(payload)
		sc.Close() // the stack closes first
	}()
	kc.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(kc)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("kernel read %d bytes (%v), want %d identical", len(got), err, len(payload))
	}
	// The kernel is now in CLOSE-WAIT and we in FIN-WAIT-2.
	if !waitFor(5*time.Second, func() bool { return sc.(*stack.Conn).State() == tcp.FinWait2 }) {
		t.Fatalf("stack side %v, want FIN-WAIT-2", sc.(*stack.Conn).State())
	}
	if lines := kernelSS(t, ns, "state", "close-wait"); len(lines) != 1 {
		t.Errorf("kernel CLOSE-WAIT sockets: %q, want 1", lines)
	}
	kc.Close()
	if !waitFor(5*time.Second, func() bool { return st.StateCounts()[tcp.TimeWait] == 1 }) {
		t.Fatalf("stack states %v, want one TIME-WAIT", st.StateCounts())
	}
	if lines := kernelSS(t, ns, "state", "all", "dport", "= :8001"); len(lines) != 0 {
		t.Errorf("kernel still holds %q after closing second", lines)
	}
	peer := kc.LocalAddr().String()
	wantTrace(t, tr.of(peer),
		"LISTEN → SYN-RECEIVED on rcv SYN",
		"SYN-RECEIVED → ESTABLISHED on rcv ACK of SYN",
		"ESTABLISHED → FIN-WAIT-1 on app close",
		"FIN-WAIT-1 → FIN-WAIT-2 on rcv ACK of FIN",
		"FIN-WAIT-2 → TIME-WAIT on rcv FIN")
}

// TestKernelClosesFirst: the kernel is the active closer and ends in its
// own TIME-WAIT; the stack walks CLOSE-WAIT → LAST-ACK → CLOSED.
func TestKernelClosesFirst(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	tr := &tracer{}
	st := startLibraryStackCfg(t, ns, stack.Config{Trace: tr.trace}, nil)
	accepted := acceptOne(t, st, "8002")
	kc, err := nsDial(t, ns, stackAddr+":8002", 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := (<-accepted).(*stack.Conn)
	payload := randomBytes(200000, 12)
	go func() {
		kc.Write(payload)
		kc.Close() // the kernel closes first
	}()
	sc.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(sc)
	if err != nil || !bytes.Equal(got, payload) {
		t.Fatalf("stack read %d bytes (%v), want %d identical", len(got), err, len(payload))
	}
	if s := sc.State(); s != tcp.CloseWait {
		t.Fatalf("after EOF the stack side is %v, want CLOSE-WAIT", s)
	}
	// Half-close: in CLOSE-WAIT we may still send, and the kernel (in
	// FIN-WAIT-2) still receives... but the kernel socket is closed, so
	// it answers data with RST. Just close.
	sc.Close()
	if !waitFor(5*time.Second, func() bool { return sc.State() == tcp.Closed }) {
		t.Fatalf("stack side %v, want CLOSED", sc.State())
	}
	if n := st.StateCounts()[tcp.TimeWait]; n != 0 {
		t.Errorf("stack holds %d TIME-WAIT entries as the passive closer", n)
	}
	if lines := kernelSS(t, ns, "state", "time-wait"); len(lines) != 1 || !strings.Contains(lines[0], stackAddr+":8002") {
		t.Errorf("kernel TIME-WAIT sockets %q, want the one to %s:8002", lines, stackAddr)
	}
	wantTrace(t, tr.of(kc.LocalAddr().String()),
		"SYN-RECEIVED → ESTABLISHED on rcv ACK of SYN",
		"ESTABLISHED → CLOSE-WAIT on rcv FIN",
		"CLOSE-WAIT → LAST-ACK on app close",
		"LAST-ACK → CLOSED on rcv ACK of FIN")
}

// TestHalfCloseBothWays: after CloseWrite each side keeps receiving —
// the stack in FIN-WAIT-2, and the kernel while the stack sits in
// CLOSE-WAIT.
func TestHalfCloseBothWays(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	st := startLibraryStack(t, ns)
	accepted := acceptOne(t, st, "8003")
	kc, err := nsDial(t, ns, stackAddr+":8003", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kc.Close()
	sc := (<-accepted).(*stack.Conn)
	// The stack half-closes first and keeps reading in FIN-WAIT-2.
	if err := sc.CloseWrite(); err != nil {
		t.Fatal(err)
	}
	kc.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(kc); err != nil || len(b) != 0 {
		t.Fatalf("kernel read %q %v, want EOF", b, err)
	}
	waitFor(5*time.Second, func() bool { return sc.State() == tcp.FinWait2 })
	data := randomBytes(3<<20, 13)
	go func() { kc.Write(data); kc.CloseWrite() }()
	sc.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err := io.ReadAll(sc)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("in FIN-WAIT-2 the stack read %d bytes (%v), want %d identical", len(got), err, len(data))
	}
	if s := sc.State(); s != tcp.TimeWait {
		t.Errorf("stack side %v, want TIME-WAIT", s)
	}

	// The other way round: the kernel half-closes, the stack in
	// CLOSE-WAIT keeps sending.
	accepted = acceptOne(t, st, "8004")
	kc2, err := nsDial(t, ns, stackAddr+":8004", 0)
	if err != nil {
		t.Fatal(err)
	}
	defer kc2.Close()
	sc2 := (<-accepted).(*stack.Conn)
	kc2.CloseWrite()
	sc2.SetReadDeadline(time.Now().Add(10 * time.Second))
	if b, err := io.ReadAll(sc2); err != nil || len(b) != 0 {
		t.Fatalf("stack read %q %v, want EOF", b, err)
	}
	if s := sc2.State(); s != tcp.CloseWait {
		t.Fatalf("stack side %v, want CLOSE-WAIT", s)
	}
	go func() { sc2.Write(data); sc2.Close() }()
	kc2.SetReadDeadline(time.Now().Add(20 * time.Second))
	got, err = io.ReadAll(kc2)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("from CLOSE-WAIT the kernel read %d bytes (%v), want %d identical", len(got), err, len(data))
	}
}

// finGate holds the kernel's FIN on its way into the stack until the
// stack has sent its own FIN, so the two FINs cross on the wire: a
// simultaneous close, every time.
type finGate struct {
	tun.Device
	mu       sync.Mutex
	armed    bool
	held     chan struct{} // closed when the kernel's FIN is held
	released chan struct{} // closed when the stack's FIN has gone out
}

func newFinGate(d tun.Device) *finGate {
	return &finGate{Device: d, held: make(chan struct{}), released: make(chan struct{})}
}

func isFin(p []byte) bool {
	var seg tcp.Segment
	return len(p) > 20 && p[9] == 6 && tcp.Parse(p[20:], &seg) == nil && seg.Flags.Has(tcp.FlagFIN)
}

func (g *finGate) Read(p []byte) (int, error) {
	n, err := g.Device.Read(p)
	if err == nil && isFin(p[:n]) {
		g.mu.Lock()
		hold := g.armed
		g.armed = false
		g.mu.Unlock()
		if hold {
			close(g.held)
			<-g.released
		}
	}
	return n, err
}

func (g *finGate) Write(p []byte) (int, error) {
	n, err := g.Device.Write(p)
	if isFin(p) {
		select {
		case <-g.held:
			select {
			case <-g.released:
			default:
				close(g.released)
			}
		default:
		}
	}
	return n, err
}

// TestSimultaneousCloseWithKernel: both ends close at once; each receives
// the other's FIN in FIN-WAIT-1, goes to CLOSING, and then to TIME-WAIT
// when its own FIN is acknowledged.
func TestSimultaneousCloseWithKernel(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	tr := &tracer{}
	var gate *finGate
	st := startLibraryStackCfg(t, ns, stack.Config{Trace: tr.trace}, func(d tun.Device) tun.Device {
		gate = newFinGate(d)
		return gate
	})
	accepted := acceptOne(t, st, "8005")
	kc, err := nsDial(t, ns, stackAddr+":8005", 0)
	if err != nil {
		t.Fatal(err)
	}
	sc := (<-accepted).(*stack.Conn)
	gate.mu.Lock()
	gate.armed = true
	gate.mu.Unlock()
	kc.Close() // the kernel's FIN leaves; the gate holds it
	select {
	case <-gate.held:
	case <-time.After(5 * time.Second):
		t.Fatal("the kernel's FIN never arrived")
	}
	sc.Close() // our FIN crosses it
	if !waitFor(5*time.Second, func() bool { return st.StateCounts()[tcp.TimeWait] == 1 }) {
		t.Fatalf("stack states %v, want one TIME-WAIT", st.StateCounts())
	}
	t.Logf("trace:\n%s", strings.Join(tr.of(kc.LocalAddr().String()), "\n"))
	wantTrace(t, tr.of(kc.LocalAddr().String()),
		"ESTABLISHED → FIN-WAIT-1 on app close",
		"FIN-WAIT-1 → CLOSING on rcv FIN",
		"CLOSING → TIME-WAIT on rcv ACK of FIN")
	// The kernel went through CLOSING too and holds its own TIME-WAIT.
	if !waitFor(5*time.Second, func() bool { return len(kernelSS(t, ns, "state", "time-wait")) == 1 }) {
		t.Errorf("kernel sockets %q, want one in TIME-WAIT", kernelSS(t, ns, "state", "all"))
	}
}

// TestTimeWaitAccumulatesAndExpires: a server that closes first on many
// short connections piles up TIME-WAIT entries; tund ss counts them, and
// they expire after 2MSL.
func TestTimeWaitAccumulatesAndExpires(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	startTund(t, ns, "-msl", "2s", "-control", ctl)
	const n = 200
	var ports []int // the client side of each connection
	client := &http.Client{Transport: &http.Transport{
		DisableKeepAlives: true, // "Connection: close": the server closes first
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := nsDial(t, ns, addr, 0)
			if err == nil {
				ports = append(ports, c.LocalAddr().(*net.TCPAddr).Port)
			}
			return c, err
		},
	}, Timeout: 10 * time.Second}
	start := time.Now()
	for i := 0; i < n; i++ {
		resp, err := client.Get("http://" + stackAddr + "/bytes/1000")
		if err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || len(b) != 1000 {
			t.Fatalf("request %d: %d bytes, %v", i, len(b), err)
		}
	}
	elapsed := time.Since(start)
	ss := func(args ...string) string {
		out, err := exec.Command(tundBin, append([]string{"ss", "-control", ctl}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("tund ss: %v\n%s", err, out)
		}
		return string(out)
	}
	// Whoever closes first holds TIME-WAIT. The server closes first, but
	// now and then the client, having read the whole response, closes
	// before the server's FIN reaches it: then the kernel holds it, or
	// both do if the FINs crossed (a simultaneous close). So every
	// connection leaves a TIME-WAIT entry on at least one side.
	var conns []stack.ControlConn
	held := map[int]string{}
	waitFor(2*time.Second, func() bool {
		if err := stack.QueryControl(context.Background(), ctl, "connections", &conns); err != nil {
			t.Fatal(err)
		}
		for _, c := range conns {
			if c.State == "TIME-WAIT" {
				held[portOf(c.Remote)] += "tund "
			}
		}
		for _, l := range kernelSS(t, ns, "state", "time-wait") {
			// ss -tanH state time-wait: Recv-Q Send-Q Local Peer
			if f := strings.Fields(l); len(f) >= 4 {
				held[portOf(f[2])] += "kernel "
			}
		}
		for _, p := range ports {
			if held[p] == "" {
				return false
			}
		}
		return true
	})
	out := ss("-s")
	both, kernelOnly := 0, 0
	for _, p := range ports {
		switch held[p] {
		case "":
			t.Errorf("connection from port %d left no TIME-WAIT on either side", p)
		case "tund kernel ":
			both++
		case "kernel ":
			kernelOnly++
		}
	}
	t.Logf("%d requests in %v; tund ss -s: %s; kernel alone holds %d, both (simultaneous close) %d",
		n, elapsed.Round(time.Millisecond), strings.TrimSpace(out), kernelOnly, both)
	if kernelOnly > n/2 {
		t.Errorf("the kernel alone holds %d of %d TIME-WAITs though the server closes first", kernelOnly, n)
	}
	lines := strings.Count(ss("-state", "time-wait"), "\nTIME-WAIT ")
	if lines == 0 {
		t.Errorf("tund ss -state time-wait lists no entry")
	}
	if !waitFor(8*time.Second, func() bool { return !strings.Contains(ss("-s"), "TIME-WAIT") }) {
		t.Errorf("TIME-WAIT entries still there after 2MSL: %s", ss("-s"))
	}
}

// TestTimeWaitTupleReusedBySafeSyn: a kernel client reconnects from the
// same port again and again to a stack that closes first. Every new SYN
// meets the stack's TIME-WAIT entry for that four-tuple; since the
// kernel's new ISN lies beyond the old connection, the entry gives way
// (RFC 9293 §3.10.7.4, RFC 6191) and every connection succeeds at once.
func TestTimeWaitTupleReusedBySafeSyn(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	tr := &tracer{}
	st := startLibraryStackCfg(t, ns, stack.Config{Trace: tr.trace}, nil)
	l, err := st.Listen("tcp", ":8006")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("hello"))
			c.Close()
		}
	}()
	const n = 20
	for i := 0; i < n; i++ {
		start := time.Now()
		kc, err := nsDial(t, ns, stackAddr+":8006", 40999)
		if err != nil {
			t.Fatalf("connection %d from port 40999: %v", i, err)
		}
		kc.SetReadDeadline(time.Now().Add(10 * time.Second))
		b, err := io.ReadAll(kc)
		kc.Close()
		if err != nil || string(b) != "hello" {
			t.Fatalf("connection %d read %q %v", i, b, err)
		}
		if d := time.Since(start); d > 900*time.Millisecond {
			// A refused SYN would have cost the kernel a 1 s retransmission.
			t.Errorf("connection %d took %v: its SYN was not accepted at once", i, d)
		}
		if !waitFor(5*time.Second, func() bool { return st.StateCounts()[tcp.TimeWait] == 1 }) {
			t.Fatalf("after connection %d: states %v", i, st.StateCounts())
		}
	}
	if got := st.Stats().TimeWaitReused; got != n-1 {
		t.Errorf("TIME-WAIT reused %d times, want %d", got, n-1)
	}
	// The trace names the edge as the table does: the SYN ended TIME-WAIT,
	// not the 2MSL timer.
	reused, expired := 0, 0
	for _, line := range tr.of(hostAddr + ":40999") {
		switch {
		case strings.Contains(line, "TIME-WAIT → CLOSED on rcv SYN"):
			reused++
		case strings.Contains(line, "TIME-WAIT → CLOSED on 2MSL timeout"):
			expired++
		}
	}
	if reused != n-1 || expired != 0 {
		t.Errorf("trace: %d TIME-WAIT entries ended by a SYN, %d by the timer; want %d and 0", reused, expired, n-1)
	}
}

// portOf returns the port of an "ip:port" string, or -1.
func portOf(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return -1
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		return -1
	}
	return n
}

// TestTundTraceAndSS: tund -trace prints each transition of a curl
// request's connection as a line a learner can read, and tund ss shows
// the listeners of the built-in services.
func TestTundTraceAndSS(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	ctl := filepath.Join(t.TempDir(), "ctl.sock")
	proc := startTund(t, ns, "-trace", "-control", ctl)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := inNS(ctx, ns, "curl", "-sS", "-o", "/dev/null", "-w", "%{local_port}", "http://"+stackAddr+"/bytes/5000").Output()
	if err != nil {
		t.Fatalf("curl: %v", err)
	}
	peer := hostAddr + ":" + strings.TrimSpace(string(out))
	want := []string{
		peer + " LISTEN → SYN-RECEIVED on rcv SYN seq=",
		peer + " SYN-RECEIVED → ESTABLISHED on rcv ACK of SYN seq=",
		peer + " ESTABLISHED → CLOSE-WAIT on rcv FIN seq=",
		peer + " CLOSE-WAIT → LAST-ACK on app close (send FIN)",
		peer + " LAST-ACK → CLOSED on rcv ACK of FIN seq=",
	}
	ok := waitFor(5*time.Second, func() bool { return strings.Contains(proc.log(), want[len(want)-1]) })
	var lines []string
	for _, l := range strings.Split(proc.log(), "\n") {
		if strings.HasPrefix(l, "trace ") {
			lines = append(lines, l)
		}
	}
	if !ok {
		t.Errorf("trace never showed the close:\n%s", strings.Join(lines, "\n"))
	}
	wantTrace(t, lines, want...)
	wantTrace(t, lines, "[::]:80 CLOSED → LISTEN on app listen") // tund's services listen on both families

	ssOut, err := exec.Command(tundBin, "ss", "-control", ctl).CombinedOutput()
	if err != nil {
		t.Fatalf("tund ss: %v\n%s", err, ssOut)
	}
	for _, port := range []string{"7", "9", "19", "80"} {
		if !regexpLine(string(ssOut), `^LISTEN\s+0\s+1024\s+`+regexp.QuoteMeta("[::]:"+port)+`\s+\*:\*`) {
			t.Errorf("tund ss lacks the listener on port %s:\n%s", port, ssOut)
		}
	}
	if !strings.Contains(string(ssOut), "Total: 4 (LISTEN 4)") {
		t.Errorf("tund ss summary:\n%s", ssOut)
	}
}

func regexpLine(text, re string) bool {
	return regexp.MustCompile("(?m)" + re).MatchString(text)
}

// TestClientPath: the stack as the client — CLOSED → SYN-SENT →
// ESTABLISHED, then the active close FIN-WAIT-1 → FIN-WAIT-2 → TIME-WAIT
// against a kernel listener that closes when it reads EOF. The trace is
// logged (go test -v) for docs/life-of-a-connection.md.
func TestClientPath(t *testing.T) {
	need(t)
	ns := newNetNS(t)
	tr := &tracer{}
	st := startLibraryStackCfg(t, ns, stack.Config{Trace: tr.trace}, nil)
	kl := nsListen(t, ns, hostAddr+":9000")
	done := make(chan []byte, 1)
	closeNow := make(chan struct{})
	go func() {
		c, err := kl.Accept()
		if err != nil {
			done <- nil
			return
		}
		b, _ := io.ReadAll(c) // until the stack's FIN
		done <- b
		// Hold our side open until the stack sits in FIN-WAIT-2, or our
		// FIN could carry the ACK of its FIN (FIN-WAIT-1 → TIME-WAIT).
		<-closeNow
		c.Close()
	}()
	c, err := st.Dial("tcp", hostAddr+":9000")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("hello from the stack\n")
	c.Write(msg)
	c.(*stack.Conn).CloseWrite()
	if b := <-done; !bytes.Equal(b, msg) {
		t.Fatalf("kernel listener read %q", b)
	}
	if !waitFor(5*time.Second, func() bool { return c.(*stack.Conn).State() == tcp.FinWait2 }) {
		t.Fatalf("state %v, want FIN-WAIT-2 once the kernel ACKed our FIN", c.(*stack.Conn).State())
	}
	close(closeNow)
	if n, err := c.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after the kernel's FIN: %d %v, want EOF", n, err)
	}
	c.Close()
	lines := tr.of(hostAddr + ":9000")
	t.Logf("trace:\n%s", strings.Join(lines, "\n"))
	wantTrace(t, lines,
		"CLOSED → SYN-SENT on app connect",
		"SYN-SENT → ESTABLISHED on rcv SYN+ACK",
		"ESTABLISHED → FIN-WAIT-1 on app close",
		"FIN-WAIT-1 → FIN-WAIT-2 on rcv ACK of FIN",
		"FIN-WAIT-2 → TIME-WAIT on rcv FIN")
	if n := st.StateCounts()[tcp.TimeWait]; n != 1 {
		t.Errorf("TIME-WAIT entries %d, want 1", n)
	}
}
