package seqnum

import "testing"

func TestSeqWraparound(t *testing.T) {
	a := Seq(0xfffffff0)
	b := a.Add(0x20) // wraps to 0x10
	if b != 0x10 {
		t.Fatalf("Add across the wrap: %#x, want 0x10", uint32(b))
	}
	if !a.LessThan(b) || b.LessThan(a) || b.Sub(a) != 0x20 || a.Sub(b) != -0x20 {
		t.Fatalf("wrap compare broken: %d %d", a, b)
	}
	if !a.LessThanEq(b) || !a.LessThanEq(a) || b.LessThanEq(a) {
		t.Fatal("LessThanEq across the wrap")
	}
	if !b.GreaterThan(a) || a.GreaterThan(b) || !b.GreaterThanEq(a) || !b.GreaterThanEq(b) || a.GreaterThanEq(b) {
		t.Fatal("GreaterThan/GreaterThanEq across the wrap")
	}
	if !Seq(5).InWindow(a, 0x20) || Seq(0x10).InWindow(a, 0x20) {
		t.Fatal("InWindow across wrap")
	}
	if got := b.Add(-0x20); got != a {
		t.Fatalf("negative Add back across the wrap: %#x, want %#x", uint32(got), uint32(a))
	}
}

func TestMaxMinAcrossWrap(t *testing.T) {
	for _, tc := range []struct {
		s, o, max, min Seq
	}{
		{0xfffffff0, 0x10, 0x10, 0xfffffff0},             // 0x10 is 0x20 after 0xfffffff0
		{0x10, 0xfffffff0, 0x10, 0xfffffff0},             // either order
		{0xffffffff, 0, 0, 0xffffffff},                   // adjacent at the wrap point
		{0x7fffffff, 0x80000000, 0x80000000, 0x7fffffff}, // adjacent at the half-way point
		{100, 200, 200, 100},                             // no wrap
		{0xdeadbeef, 0xdeadbeef, 0xdeadbeef, 0xdeadbeef},
	} {
		if got := tc.s.Max(tc.o); got != tc.max {
			t.Errorf("Seq(%#x).Max(%#x) = %#x, want %#x", uint32(tc.s), uint32(tc.o), uint32(got), uint32(tc.max))
		}
		if got := tc.s.Min(tc.o); got != tc.min {
			t.Errorf("Seq(%#x).Min(%#x) = %#x, want %#x", uint32(tc.s), uint32(tc.o), uint32(got), uint32(tc.min))
		}
	}
}

func TestInWindowAcrossWrap(t *testing.T) {
	for _, tc := range []struct {
		s, start Seq
		size     int
		want     bool
	}{
		{0xfffffff0, 0xfffffff0, 0x20, true},  // the left edge is inside
		{0xffffffff, 0xfffffff0, 0x20, true},  // the last number before the wrap
		{0, 0xfffffff0, 0x20, true},           // the first after it
		{0xf, 0xfffffff0, 0x20, true},         // the last in the window
		{0x10, 0xfffffff0, 0x20, false},       // the right edge is outside
		{0xffffffef, 0xfffffff0, 0x20, false}, // just before the left edge
		{0, 0, 0, false},                      // an empty window holds nothing
		{0, 0xffffffff, 1, false},             // a one-byte window at the wrap point
		{0xffffffff, 0xffffffff, 1, true},
		{5, 0xfffffff0, -1, false}, // a negative size holds nothing
	} {
		if got := tc.s.InWindow(tc.start, tc.size); got != tc.want {
			t.Errorf("Seq(%#x).InWindow(%#x, %d) = %v, want %v", uint32(tc.s), uint32(tc.start), tc.size, got, tc.want)
		}
	}
}
