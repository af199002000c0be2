package stack

import (
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// gateDev holds every packet one local port writes until the gate opens,
// so an application call sending on that connection stays inside the
// stack, holding the connection, for as long as the test likes.
type gateDev struct {
	tun.Device
	port uint16
	once sync.Once
	held chan struct{} // closed when the first packet is held
	open chan struct{} // closed to let packets through
	pkt  []byte        // a copy of the first packet held
}

func (d *gateDev) Write(p []byte) (int, error) {
	var seg tcp.Segment
	if len(p) > 20 && tcp.Parse(p[20:], &seg) == nil && seg.SrcPort == d.port && len(seg.Payload) > 0 {
		d.once.Do(func() {
			d.pkt = append([]byte(nil), p...)
			close(d.held)
		})
		<-d.open
	}
	return d.Device.Write(p)
}

// TestReaderNeverWaitsForAWriter: an application Write that holds its
// connection while it sends (here: stuck in a slow device write) must not
// stall input for the other connections: the reader queues that
// connection's segments (its backlog) and goes on.
func TestReaderNeverWaitsForAWriter(t *testing.T) {
	gate := &gateDev{held: make(chan struct{}), open: make(chan struct{})}
	a, b := pipePairWrap(t, Config{}, Config{}, func(d tun.Device) tun.Device {
		gate.Device = d
		return gate
	})
	defer func() {
		select {
		case <-gate.open:
		default:
			close(gate.open)
		}
	}()
	l, err := b.Listen("tcp", ":80")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan net.Conn, 2)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepted <- c
		}
	}()
	slow, err := a.Dial("tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	slowPeer := <-accepted
	other, err := a.Dial("tcp", "10.9.0.2:80")
	if err != nil {
		t.Fatal(err)
	}
	otherPeer := <-accepted
	gate.port = uint16(slow.LocalAddr().(*net.TCPAddr).Port)

	go slow.Write(make([]byte, 256<<10)) // stuck in the device, holding its conn
	<-gate.held
	// Input for the stuck connection, then for the other one.
	if _, err := slowPeer.Write([]byte("to the busy one")); err != nil {
		t.Fatal(err)
	}
	if _, err := otherPeer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 5)
	other.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(other, got); err != nil || string(got) != "hello" {
		t.Fatalf("the other connection read %q, %v while one writer held its own: input stalled", got, err)
	}
	// An ICMP error about the busy connection waits in its backlog too,
	// while the reader goes on.
	b.dev.Write(fragNeeded(t, gate.pkt, 1000))
	waitFor(t, func() bool { return a.stats.icmpErrors.Load() == 1 }) // (Stats would wait for the busy connection)
	// Once the writer lets go, the busy connection gets what was queued.
	close(gate.open)
	waitFor(t, func() bool { return tcbInfo(slow.(*Conn)).MSS == 1000-40-12 })
	buf := make([]byte, 15)
	slow.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(slow, buf); err != nil || string(buf) != "to the busy one" {
		t.Fatalf("the busy connection read %q, %v", buf, err)
	}
}
