package retransmit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tund-project/tund/tcp/seqnum"
)

func (s *Scoreboard) String() string {
	var b strings.Builder
	s.Ranges(func(a, e seqnum.Seq) { fmt.Fprintf(&b, "[%d,%d)", a, e) })
	return b.String()
}

func TestScoreboardUpdates(t *testing.T) {
	const una, max = 1000, 20000
	var s Scoreboard
	steps := []struct {
		start, end seqnum.Seq
		new        bool
		want       string
	}{
		{3000, 4000, true, "[3000,4000)"},
		{3000, 4000, false, "[3000,4000)"},              // duplicate
		{5000, 6000, true, "[3000,4000)[5000,6000)"},    // second hole
		{4000, 5000, true, "[3000,6000)"},               // fills between: merge all three
		{500, 1500, true, "[1000,1500)[3000,6000)"},     // clipped at SND.UNA
		{100, 900, false, "[1000,1500)[3000,6000)"},     // entirely old
		{19000, 21000, false, "[1000,1500)[3000,6000)"}, // beyond SND.MAX: bogus
		{7000, 7000, false, "[1000,1500)[3000,6000)"},   // empty
		{2000, 3500, true, "[1000,1500)[2000,6000)"},    // overlaps one
	}
	for _, st := range steps {
		if got := s.Add(st.start, st.end, una, max); got != st.new {
			t.Errorf("Add(%d,%d) new=%v, want %v", st.start, st.end, got, st.new)
		}
		if s.String() != st.want {
			t.Fatalf("after Add(%d,%d): %s, want %s", st.start, st.end, s.String(), st.want)
		}
	}
	if got := s.SackedAbove(1000); got != 500+4000 {
		t.Errorf("SackedAbove = %d", got)
	}
	if got := s.HoleBytes(1000, 6000); got != 500 {
		t.Errorf("HoleBytes = %d, want 500 (1500..2000)", got)
	}
	if a, e, ok := s.NextHole(1000, s.Highest(1000)); !ok || a != 1500 || e != 2000 {
		t.Errorf("NextHole = %d,%d,%v", a, e, ok)
	}
	if _, _, ok := s.NextHole(2000, s.Highest(1000)); ok {
		t.Error("hole found inside a SACKed range up to the highest")
	}
	s.Ack(2500)
	if s.String() != "[2500,6000)" {
		t.Errorf("after Ack(2500): %s", s.String())
	}
	s.Ack(6000)
	if !s.Empty() || s.Highest(6000) != 6000 {
		t.Errorf("after Ack(6000): %s", s.String())
	}
}

func TestScoreboardIsLost(t *testing.T) {
	const mss = 1000
	var s Scoreboard
	s.Add(2000, 3000, 1000, 1<<20)
	if s.IsLost(1000, mss, DupThresh) {
		t.Error("one SACKed segment marks the hole lost")
	}
	s.Add(3000, 4000, 1000, 1<<20)
	if s.IsLost(1000, mss, DupThresh) {
		t.Error("two segments' worth marks the hole lost")
	}
	s.Add(4000, 4001, 1000, 1<<20)
	if !s.IsLost(1000, mss, DupThresh) {
		t.Error("more than (DupThresh-1)*MSS SACKed above does not mark it lost")
	}
	var d Scoreboard
	d.Add(2000, 2100, 1000, 1<<20)
	d.Add(3000, 3100, 1000, 1<<20)
	d.Add(4000, 4100, 1000, 1<<20)
	if !d.IsLost(1000, mss, DupThresh) {
		t.Error("three discontiguous SACKed ranges above do not mark it lost")
	}
}

func TestScoreboardWraparoundAndCapacity(t *testing.T) {
	var s Scoreboard
	una := seqnum.Seq(0xfffff000)
	s.Add(una+0x800, una+0x1800, una, una+0x10000) // crosses 2^32
	if s.SackedAbove(una) != 0x1000 || s.Highest(una) != una+0x1800 {
		t.Errorf("wrapped range: %s", s.String())
	}
	var f Scoreboard
	for i := 0; i < MaxRanges+10; i++ {
		start := seqnum.Seq(10000).Add(i * 100)
		f.Add(start, start.Add(50), 0, 1<<20)
	}
	if f.n != MaxRanges {
		t.Errorf("%d ranges kept, want the cap %d", f.n, MaxRanges)
	}
	if allocs := testing.AllocsPerRun(100, func() { f.Add(1, 2, 0, 1<<20); f.Ack(3) }); allocs != 0 {
		t.Errorf("%v allocations per update", allocs)
	}
}

func TestScoreboardEarlyRetransmitThreshold(t *testing.T) {
	var s Scoreboard
	s.Add(2000, 3000, 1000, 3000)
	if s.IsLost(1000, 1000, DupThresh) || !s.IsLost(1000, 1000, 1) {
		t.Error("one SACKed segment: lost only with threshold 1")
	}
}
