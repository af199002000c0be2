package stack

import (
	"io"
	"testing"
	"time"

	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/tun"
)

// TestStatsKeepCountersOfGoneConnections: the retransmission counters
// of Stats cover live connections and, once they are gone, keep what they
// counted; duplicated segments show up as out-of-window drops.
func TestStatsKeepCountersOfGoneConnections(t *testing.T) {
	m := tun.Impairment{Loss: 0.03, Duplicate: 0.02}
	a, b, _ := impairedPair(t, m, "newreno")
	l, err := b.Listen("tcp", ":7000")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			done <- err
			return
		}
		_, err = io.Copy(io.Discard, c)
		c.Close()
		done <- err
	}()
	c, err := a.Dial("tcp", "10.9.0.2:7000")
	if err != nil {
		t.Fatal(err)
	}
	c.SetWriteDeadline(time.Now().Add(time.Minute))
	if _, err := c.Write(randomBytes(4<<20, 5)); err != nil {
		t.Fatal(err)
	}
	c.(*Conn).CloseWrite()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("transfer did not finish")
	}
	ci := tcbInfo(c.(*Conn))
	if ci.Retransmits == 0 {
		t.Fatalf("no retransmissions through 3%% loss: %+v", ci)
	}
	live := a.Stats()
	if live.Retransmits < ci.Retransmits || live.Timeouts < ci.Timeouts ||
		live.Recoveries < ci.Recoveries || live.Probes < ci.Probes {
		t.Fatalf("live stats %+v below the connection's %+v", live, ci)
	}
	c.Close()
	// Both ends leave the connection table (a for TIME-WAIT, b closed).
	gone := func(s *Stack) bool {
		counts := s.StateCounts()
		return counts[tcp.Established]+counts[tcp.FinWait1]+counts[tcp.FinWait2]+
			counts[tcp.CloseWait]+counts[tcp.LastAck]+counts[tcp.Closing] == 0
	}
	deadline := time.Now().Add(10 * time.Second)
	for !(gone(a) && gone(b)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if len(a.allConns()) != 0 {
		t.Fatalf("connection still in the table: %v", a.StateCounts())
	}
	after := a.Stats()
	if after.Retransmits < live.Retransmits || after.Timeouts < live.Timeouts ||
		after.Recoveries < live.Recoveries || after.Probes < live.Probes {
		t.Fatalf("counters went back after the connection left: %+v then %+v", live, after)
	}
	if oow := b.Stats().Drops["out_of_window"]; oow == 0 {
		t.Errorf("no out-of-window drops at the receiver despite duplicated segments")
	}
	t.Logf("sender: %d retransmits, %d timeouts, %d recoveries, %d probes; receiver: %d out of window",
		after.Retransmits, after.Timeouts, after.Recoveries, after.Probes, b.Stats().Drops["out_of_window"])
}
