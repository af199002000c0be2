package stack

import (
	"bytes"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"runtime/pprof"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// What an idle connection costs the library alone: a stack on one end of
// a tun.Pipe with a listener whose application accepts every connection
// and holds it, and on the other end idlePeer, a hand-written client that
// keeps 16 bytes per connection (so that what is measured is the stack,
// not a second stack dialing it). The peer plays a Linux client: its SYN
// carries MSS, SACK-permitted, timestamps and window scale. With echo > 0
// each connection first moves that many bytes through an application
// goroutine that reads them and writes them back, then exits: the
// connection is then idle after use, which is where rings that are not
// released would show.

// idleProfile, if set, names a file for the heap profile of the idle
// connections (every allocation sampled), written before they are closed:
//
//	go test -run X -bench IdleConnMemory/echoed -benchtime 1x ./stack -idleprofile /tmp/idle.pprof
//	go tool pprof -sample_index inuse_space -top /tmp/idle.pprof
var idleProfile = flag.String("idleprofile", "", "write the heap profile of BenchmarkIdleConnMemory's idle connections to this `file`")

// idleResult is what one measurement found, per connection.
type idleResult struct {
	conns      int
	heap       float64 // live heap bytes after a collection
	stack      float64 // goroutine stack bytes
	goroutines float64
}

func (r idleResult) String() string {
	return fmt.Sprintf("%d connections: %.0f B heap + %.0f B goroutine stacks per connection (%.2f goroutines each)",
		r.conns, r.heap, r.stack, r.goroutines)
}

// peerConn is all the peer keeps of one connection.
type peerConn struct {
	sndNxt, rcvNxt tcp.Seq
	tsEcr          uint32
	got            int32 // echoed bytes received
}

// established reports whether the peer has seen the SYN+ACK.
func (pc *peerConn) established() bool { return pc.rcvNxt != 0 }

// idlePeer drives n connections from the raw end of the pipe.
type idlePeer struct {
	dev      tun.Device
	src, dst netip.Addr
	port     uint16 // the listener's
	conns    []peerConn
	payload  []byte // what each connection sends when echoing
	wmu      sync.Mutex
	wbuf     []byte
	sent     atomic.Uint64 // packets written
	acked    atomic.Int64  // handshakes the peer completed
	echoed   atomic.Int64  // connections whose echo came back whole
	bad      atomic.Int64  // unexpected segments (resets, wrong bytes)
	firstErr atomic.Pointer[string]
}

// firstPort is the peer's port for connection 0.
const firstPort = 1024

func (p *idlePeer) fail(format string, args ...any) {
	p.bad.Add(1)
	s := fmt.Sprintf(format, args...)
	p.firstErr.CompareAndSwap(nil, &s)
}

// send writes one segment of connection i.
func (p *idlePeer) send(i int, flags tcp.Flags, payload []byte) {
	pc := &p.conns[i]
	seg := tcp.Segment{SrcPort: uint16(firstPort + i), DstPort: p.port, Seq: pc.sndNxt, Ack: pc.rcvNxt,
		Flags: flags, Window: 0xffff, Payload: payload}
	seg.Options.HasTS, seg.Options.TSVal, seg.Options.TSEcr = true, 1, pc.tsEcr
	if flags == tcp.FlagSYN {
		seg.Ack, seg.Options.TSEcr = 0, 0
		seg.Options.MSS, seg.Options.SACKPermitted = 1460, true
		seg.Options.HasWScale, seg.Options.WScale = true, 7
	}
	pc.sndNxt = pc.sndNxt.Add(len(payload))
	if flags&(tcp.FlagSYN|tcp.FlagFIN) != 0 {
		pc.sndNxt++
	}
	p.wmu.Lock()
	defer p.wmu.Unlock()
	n := seg.HeaderLen() + len(payload)
	h := ip.BuildIPv4(p.wbuf, p.src, p.dst, uint8(header.TCPProtocolNumber), 1, n)
	seg.Marshal(p.wbuf[h : h+n])
	header.TCP(p.wbuf[h:]).SetChecksum(ip.TCPChecksum(p.src, p.dst, p.wbuf[h:h+n]))
	if _, err := p.dev.Write(p.wbuf[:h+n]); err == nil {
		p.sent.Add(1)
	}
}

// readLoop answers the stack: an ACK for each SYN+ACK (and the echo
// payload after it), an ACK for each echoed data segment.
func (p *idlePeer) readLoop() {
	buf := make([]byte, 1500)
	var seg tcp.Segment
	for {
		n, err := p.dev.Read(buf)
		if err != nil {
			return
		}
		if n < ip.IPv4HeaderLen || tcp.Parse(buf[ip.IPv4HeaderLen:n], &seg) != nil {
			continue
		}
		i := int(seg.DstPort) - firstPort
		if i < 0 || i >= len(p.conns) {
			p.fail("segment to port %d", seg.DstPort)
			continue
		}
		pc := &p.conns[i]
		if seg.Options.HasTS {
			pc.tsEcr = seg.Options.TSVal
		}
		switch {
		case seg.Flags.Has(tcp.FlagRST):
			p.fail("connection %d reset", i)
		case seg.Flags == tcp.FlagSYN|tcp.FlagACK && pc.established():
			p.send(i, tcp.FlagACK, nil) // a retransmitted SYN+ACK: our ACK was lost
		case seg.Flags == tcp.FlagSYN|tcp.FlagACK:
			pc.rcvNxt = seg.Seq + 1
			p.send(i, tcp.FlagACK, nil)
			p.acked.Add(1)
			if len(p.payload) > 0 {
				p.send(i, tcp.FlagACK|tcp.FlagPSH, p.payload)
			}
		case len(seg.Payload) > 0:
			if end := seg.Seq.Add(len(seg.Payload)); end.LessThanEq(pc.rcvNxt) {
				p.send(i, tcp.FlagACK, nil) // a retransmission (a tail loss probe, say): ACK again
				continue
			}
			if seg.Seq != pc.rcvNxt {
				p.fail("connection %d: segment at %d, expected %d", i, seg.Seq, pc.rcvNxt)
				continue
			}
			off := int(pc.got)
			if off+len(seg.Payload) > len(p.payload) || !bytes.Equal(seg.Payload, p.payload[off:off+len(seg.Payload)]) {
				p.fail("connection %d: echo differs at %d", i, off)
				continue
			}
			pc.rcvNxt = pc.rcvNxt.Add(len(seg.Payload))
			pc.got += int32(len(seg.Payload))
			p.send(i, tcp.FlagACK, nil)
			if int(pc.got) == len(p.payload) {
				p.echoed.Add(1)
			}
		}
	}
}

// measureIdleConns opens n connections to a fresh stack, echoing echo
// bytes through each first if echo > 0, and returns what the stack holds
// per connection once they are all idle. With serve, each connection's
// goroutine is an echo server as tund's (io.Copy(c, c)) and stays, idle
// in it, counted in the result.
func measureIdleConns(tb testing.TB, n, echo int, serve bool) idleResult {
	tb.Helper()
	da, db := tun.Pipe(1500)
	s, err := New(da, Config{Addr: netip.MustParseAddr("10.9.0.2")})
	if err != nil {
		tb.Fatal(err)
	}
	defer s.Close()
	l, err := s.Listen("tcp", ":7")
	if err != nil {
		tb.Fatal(err)
	}
	p := &idlePeer{dev: db, src: netip.AddrFrom4([4]byte{10, 9, 0, 1}), dst: netip.AddrFrom4([4]byte{10, 9, 0, 2}), port: 7,
		conns: make([]peerConn, n), wbuf: make([]byte, 1500)}
	if echo > 0 {
		p.payload = randomBytes(echo, 7)
	}
	held := make([]net.Conn, 0, n) // the application's: allocated before the baseline
	var progress atomic.Int64      // connections accepted (and echoed, with echo)
	var served sync.WaitGroup
	served.Add(n)
	acceptDone := make(chan struct{})
	go func() {
		defer close(acceptDone)
		for len(held) < n {
			c, err := l.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
			if echo == 0 {
				progress.Add(1)
				served.Done()
				continue
			}
			if serve { // an echo server, as tund's, idle in io.Copy once the bytes are back
				served.Done()
				go io.Copy(c, c)
				continue
			}
			go func() { // read echo bytes, write them back, exit
				defer served.Done()
				defer progress.Add(1)
				b := make([]byte, echo)
				if _, err := readFull(c, b); err == nil {
					c.Write(b)
				}
			}()
		}
	}()
	go p.readLoop()

	if *idleProfile != "" {
		runtime.MemProfileRate = 1
		defer func() { runtime.MemProfileRate = 512 << 10 }()
	}
	before := memNow()
	// Connections in progress at once: their packets must fit the 1024
	// the pipe queues each way, since the peer never retransmits data.
	const window = 128
	for i := 0; i < n; i++ {
		for int64(i)-progress.Load()-p.echoedIf(serve) >= window {
			if p.bad.Load() != 0 {
				tb.Fatalf("peer: %s", *p.firstErr.Load())
			}
			time.Sleep(50 * time.Microsecond)
		}
		p.conns[i].sndNxt = tcp.Seq(uint32(i) * 100003)
		p.send(i, tcp.FlagSYN, nil)
	}
	waitUntilTB(tb, 30*time.Second, "every connection accepted", func() bool {
		select {
		case <-acceptDone:
			return true
		default:
			return p.bad.Load() != 0
		}
	})
	served.Wait()
	if echo > 0 {
		waitUntilTB(tb, 30*time.Second, "every echo back", func() bool { return p.echoed.Load() == int64(n) || p.bad.Load() != 0 })
	}
	// Everything the peer sent has been taken in by the stack.
	waitUntilTB(tb, 10*time.Second, "the stack to read every packet", func() bool { return s.stats.packetsIn.Load() >= p.sent.Load() })
	if p.bad.Load() != 0 {
		tb.Fatalf("peer: %s", *p.firstErr.Load())
	}
	if d := da.(*tun.PipeEnd).Drops() + db.(*tun.PipeEnd).Drops(); d != 0 {
		tb.Fatalf("the pipe dropped %d packets", d)
	}
	if got := s.connCount(); got != n {
		tb.Fatalf("%d connections in the table, want %d", got, n)
	}
	after := memNow()
	if *idleProfile != "" {
		writeHeapProfile(tb, *idleProfile)
	}
	runtime.KeepAlive(held)
	runtime.KeepAlive(p)
	return idleResult{
		conns:      n,
		heap:       float64(int64(after.heap)-int64(before.heap)) / float64(n),
		stack:      float64(int64(after.stack)-int64(before.stack)) / float64(n),
		goroutines: float64(after.goroutines-before.goroutines) / float64(n),
	}
}

// echoedIf is how many connections' echo came back whole, if serve
// (where that is the progress).
func (p *idlePeer) echoedIf(serve bool) int64 {
	if !serve {
		return 0
	}
	return p.echoed.Load()
}

// readFull reads exactly len(b) bytes from c.
func readFull(c net.Conn, b []byte) (int, error) {
	n := 0
	for n < len(b) {
		k, err := c.Read(b[n:])
		n += k
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

type memSample struct {
	heap, stack uint64
	goroutines  int
}

// memNow is the live heap and the goroutine stacks after a collection.
func memNow() memSample {
	runtime.GC()
	runtime.GC() // finalizers and the sweep of the first one's garbage
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return memSample{heap: ms.HeapAlloc, stack: ms.StackInuse, goroutines: runtime.NumGoroutine()}
}

// waitUntilTB polls cond every millisecond for up to limit of wall time.
func waitUntilTB(tb testing.TB, limit time.Duration, what string, cond func() bool) {
	tb.Helper()
	end := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(end) {
			tb.Fatalf("waited %v for %s", limit, what)
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkIdleConnMemory reports the heap and goroutine stack bytes the
// stack holds per idle connection, with 10,000 held: "held" connections
// were only opened; "echoed" ones first moved 1 KiB each way;
// "echo-server" ones did too, through a goroutine per connection that
// stays in io.Copy(c, c), as tund's echo service (its stack counts).
//
//	go test -run X -bench IdleConnMemory -benchtime 1x ./stack
func BenchmarkIdleConnMemory(b *testing.B) {
	for _, bc := range []struct {
		name  string
		echo  int
		serve bool
	}{{"held", 0, false}, {"echoed", 1024, false}, {"echo-server", 1024, true}} {
		b.Run(bc.name, func(b *testing.B) {
			var r idleResult
			for i := 0; i < b.N; i++ {
				r = measureIdleConns(b, 10000, bc.echo, bc.serve)
			}
			b.ReportMetric(r.heap, "heap-B/conn")
			b.ReportMetric(r.stack, "stack-B/conn")
			b.ReportMetric(r.heap+r.stack, "B/conn")
		})
	}
}

func writeHeapProfile(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := pprof.Lookup("heap").WriteTo(f, 0); err != nil {
		tb.Fatal(err)
	}
}
