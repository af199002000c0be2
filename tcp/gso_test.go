package tcp

import (
	"bytes"
	"strconv"
	"strings"
	"testing"
)

// TestGSOSendsSuperSegments: with Config.GSOMax the first flight goes as
// one super-segment of whole segments, its ACK grows cwnd by what it
// acknowledged (Ack.SlowStartLimit: the receiver acknowledged a
// super-segment at once), and a whole transfer arrives intact.
func TestGSOSendsSuperSegments(t *testing.T) {
	p := newPair(t, Config{GSOMax: 60000})
	mss := p.a.segMSS()
	cwnd0 := p.a.cc.Window()
	p.a.Write(pattern(100*mss), p.now)
	if n := len(p.aOut.queue); n != 1 {
		t.Fatalf("%d segments for the first flight, want one super-segment\n%s", n, p.dump())
	}
	first := p.take(p.aOut)
	if want := cwnd0 / mss * mss; len(first.Payload) != want {
		t.Fatalf("super-segment of %d bytes, want the whole initial window in segments, %d", len(first.Payload), want)
	}
	if last := p.log[len(p.log)-1]; !strings.Contains(last, " gso="+strconv.Itoa(mss)) {
		t.Fatalf("the super-segment did not say its segment size: %s", last)
	}
	p.b.Handle(&first, p.now)
	if len(p.bOut.queue) != 1 {
		t.Fatalf("the receiver did not acknowledge the super-segment at once\n%s", p.dump())
	}
	ack := p.take(p.bOut)
	p.a.Handle(&ack, p.now)
	if grew := p.a.cc.Window() - cwnd0; grew != len(first.Payload) {
		t.Fatalf("cwnd grew by %d on the ACK of a %d-byte super-segment, want all of it (slow start per segment acknowledged)", grew, len(first.Payload))
	}
	// Every segment that follows is whole segments, at most GSOMax.
	for _, b := range p.aOut.queue {
		var seg Segment
		if err := Parse(b, &seg); err != nil {
			t.Fatal(err)
		}
		if n := len(seg.Payload); n%mss != 0 || n > 60000 {
			t.Fatalf("segment of %d bytes: not whole segments of %d within GSOMax", n, mss)
		}
	}

	q := newPair(t, Config{GSOMax: 60000})
	data := pattern(3 << 20)
	if got := q.transfer(q.a, q.b, data); !bytes.Equal(got, data) {
		t.Fatalf("transfer with GSO: got %d bytes, want %d intact", len(got), len(data))
	}
}

// TestGSORetransmitsSingleSegments: a lost super-segment is recovered one
// segment at a time (only new data goes out whole), and the data arrives
// intact.
func TestGSORetransmitsSingleSegments(t *testing.T) {
	p := newPair(t, Config{GSOMax: 60000})
	mss := p.a.segMSS()
	dropped := false
	p.aOut.drop = func(seg *Segment) bool {
		if !dropped && len(seg.Payload) > mss && seg.Seq != p.a.iss+1 {
			dropped = true // the second super-segment
			return true
		}
		return false
	}
	data := pattern(1 << 20)
	if got := p.transfer(p.a, p.b, data); !bytes.Equal(got, data) {
		t.Fatalf("got %d bytes, want %d intact\n%s", len(got), len(data), p.dump())
	}
	if !dropped || p.a.Retransmits == 0 {
		t.Fatalf("dropped %v, %d retransmissions: the loss was not exercised", dropped, p.a.Retransmits)
	}
	// A sequence number sent a second time is a retransmission: never a
	// super-segment.
	seen := map[string]int{}
	for _, line := range p.log {
		if !strings.HasPrefix(line, "a> ") || fieldOf(line, "len=") == "0" {
			continue
		}
		seq := fieldOf(line, "seq=")
		seen[seq]++
		if seen[seq] > 1 && strings.Contains(line, " gso=") {
			t.Fatalf("a retransmission went as a super-segment: %s", line)
		}
	}
}

// fieldOf returns the value after key in a segment's String form.
func fieldOf(line, key string) string {
	i := strings.Index(line, key)
	if i < 0 {
		return ""
	}
	rest := line[i+len(key):]
	if j := strings.IndexByte(rest, ' '); j >= 0 {
		rest = rest[:j]
	}
	return rest
}
