package tcp

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
	"time"
)

// wire carries segments from one side's Sender into a queue, marshalled
// and re-parsed so the wire format is exercised too.
type wire struct {
	name  string
	queue [][]byte
	log   *[]string
	drop  func(seg *Segment) bool // optional loss
	owner **Conn                  // the sending connection, for invariants
	edge  Seq                     // furthest right window edge advertised
	t     *testing.T
}

func (w *wire) SendSegment(seg *Segment) {
	b := make([]byte, seg.HeaderLen()+len(seg.Payload))
	seg.Marshal(b)
	*w.log = append(*w.log, w.name+" "+seg.String())
	// RFC 9293 §3.8.6: the right edge of the advertised window must never
	// move backwards.
	if w.owner != nil && *w.owner != nil && seg.Flags.Has(FlagACK) && !seg.Flags.Has(FlagSYN) && !seg.Flags.Has(FlagRST) {
		// The field counts whole scale units, so the edge it expresses
		// may retract by less than one unit (RFC 7323 §2.4), never more.
		unit := 1 << (*w.owner).rcvWScale
		edge := seg.Ack.Add(int(seg.Window) * unit)
		if w.edge != 0 && edge.Add(unit-1).LessThan(w.edge) {
			w.t.Errorf("%s shrank its window: right edge %d after %d (%s)", w.name, uint32(edge), uint32(w.edge), seg.String())
		}
		w.edge = w.edge.Max(edge)
		if w.edge == 0 {
			w.edge = edge
		}
	}
	if w.drop != nil && w.drop(seg) {
		*w.log = append(*w.log, "   (dropped)")
		return
	}
	w.queue = append(w.queue, b)
}

// pair is two connections wired back to back on a virtual clock.
type pair struct {
	t          *testing.T
	now        time.Duration
	a, b       *Conn
	aOut, bOut *wire
	log        []string
}

func newPair(t *testing.T, cfg Config) *pair {
	p := &pair{t: t}
	p.aOut = &wire{name: "a>", log: &p.log, owner: &p.a, t: t}
	p.bOut = &wire{name: "b>", log: &p.log, owner: &p.b, t: t}
	p.a = NewActive(cfg, p.aOut, 40000, 80, 1000, p.now)
	// Deliver the SYN to a "listener" that creates b.
	syn := p.take(p.aOut)
	if OnListen(&syn) != ListenAccept {
		t.Fatalf("listener refused %v", syn.String())
	}
	p.b = NewPassive(cfg, p.bOut, &syn, 5000, p.now)
	p.run()
	return p
}

func (p *pair) take(w *wire) Segment {
	p.t.Helper()
	if len(w.queue) == 0 {
		p.t.Fatalf("no segment queued on %s\n%s", w.name, p.dump())
	}
	var seg Segment
	if err := Parse(w.queue[0], &seg); err != nil {
		p.t.Fatal(err)
	}
	w.queue = w.queue[1:]
	return seg
}

// run delivers queued segments both ways until the wire is quiet.
func (p *pair) run() {
	for i := 0; i < 100000; i++ {
		switch {
		case len(p.aOut.queue) > 0:
			seg := p.take(p.aOut)
			p.b.Handle(&seg, p.now)
		case len(p.bOut.queue) > 0:
			seg := p.take(p.bOut)
			p.a.Handle(&seg, p.now)
		default:
			return
		}
	}
	p.t.Fatalf("wire never went quiet\n%s", p.dump())
}

// advance moves virtual time forward in steps, firing timers.
func (p *pair) advance(d time.Duration) {
	p.run() // segments in flight arrive first, so their timers count
	end := p.now + d
	for {
		next := end
		for _, c := range []*Conn{p.a, p.b} {
			if at := c.NextTimer(); at != 0 && at < next {
				next = at
			}
		}
		p.now = max(p.now, next)
		p.a.Tick(p.now)
		p.b.Tick(p.now)
		p.run()
		if p.now >= end {
			return
		}
	}
}

func (p *pair) dump() string {
	if len(p.log) > 60 {
		return "...\n" + strings.Join(p.log[len(p.log)-60:], "\n")
	}
	return strings.Join(p.log, "\n")
}

func (p *pair) wantState(c *Conn, s State) {
	p.t.Helper()
	if c.State() != s {
		p.t.Fatalf("state %v, want %v\n%s", c.State(), s, p.dump())
	}
}

// transfer writes data on from and reads it all on to.
func (p *pair) transfer(from, to *Conn, data []byte) []byte {
	var got []byte
	buf := make([]byte, 7000)
	rest := data
	for i := 0; i < 100000 && (len(rest) > 0 || len(got) < len(data)); i++ {
		if len(rest) > 0 {
			n, err := from.Write(rest, p.now)
			if err != nil {
				p.t.Fatalf("write: %v", err)
			}
			rest = rest[n:]
		}
		p.run()
		for {
			n, err := to.Read(buf, p.now)
			if err != nil {
				p.t.Fatalf("read: %v", err)
			}
			if n == 0 {
				break
			}
			got = append(got, buf[:n]...)
		}
		p.run()
		if len(rest) > 0 || len(got) < len(data) {
			p.advance(10 * time.Millisecond)
		}
	}
	return got
}

func pattern(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestHandshakeDataAndActiveClose(t *testing.T) {
	p := newPair(t, Config{})
	p.wantState(p.a, Established)
	p.wantState(p.b, Established)

	data := pattern(3 << 20)
	if got := p.transfer(p.a, p.b, data); !bytes.Equal(got, data) {
		t.Fatalf("a->b: got %d bytes, want %d", len(got), len(data))
	}
	back := pattern(1 << 20)[5:]
	if got := p.transfer(p.b, p.a, back); !bytes.Equal(got, back) {
		t.Fatalf("b->a: got %d bytes, want %d", len(got), len(back))
	}

	// Active close by a: FIN-WAIT-1 -> FIN-WAIT-2 -> TIME-WAIT; b: CLOSE-WAIT -> LAST-ACK -> CLOSED.
	p.a.Close(p.now)
	p.wantState(p.a, FinWait1)
	p.run()
	p.wantState(p.a, FinWait2)
	p.wantState(p.b, CloseWait)
	buf := make([]byte, 10)
	if _, err := p.b.Read(buf, p.now); err == nil || err.Error() != "EOF" {
		t.Fatalf("b read after FIN: %v, want EOF", err)
	}
	p.b.Close(p.now)
	p.wantState(p.b, LastAck)
	p.run()
	p.wantState(p.b, Closed)
	p.wantState(p.a, TimeWait)
	p.advance(2*DefaultConfig().MSL - time.Millisecond)
	p.wantState(p.a, TimeWait)
	p.advance(time.Millisecond)
	p.wantState(p.a, Closed)
}

func TestSurvivesLostSegments(t *testing.T) {
	p := newPair(t, Config{})
	n := 0
	p.aOut.drop = func(seg *Segment) bool {
		n++
		return len(seg.Payload) > 0 && (n == 5 || n == 40 || n == 41)
	}
	data := pattern(1 << 20)
	if got := p.transfer(p.a, p.b, data); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d\n%s", len(got), len(data), p.dump())
	}
	if p.a.Retransmits == 0 {
		t.Fatalf("no retransmissions counted")
	}
}

func TestLostFinIsRetransmitted(t *testing.T) {
	p := newPair(t, Config{})
	dropped := false
	p.aOut.drop = func(seg *Segment) bool {
		if seg.Flags.Has(FlagFIN) && !dropped {
			dropped = true
			return true
		}
		return false
	}
	p.a.CloseWrite(p.now)
	p.run()
	p.wantState(p.a, FinWait1)
	p.wantState(p.b, Established)
	p.advance(time.Second + 10*time.Millisecond)
	p.wantState(p.a, FinWait2)
	p.wantState(p.b, CloseWait)
}

func ExampleState_String() {
	fmt.Println(SynReceived, SynReceived.NetstatName())
	// Output: SYN-RECEIVED SYN_RECV
}
