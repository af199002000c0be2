package main

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
)

// The spoofed SYN must pass every check tund's input path makes (header
// and TCP checksums included), or a flood would only measure the drop
// counters.
func TestBuildSYNPassesTundsChecks(t *testing.T) {
	src, dst := [4]byte{198, 18, 0, 77}, [4]byte{198, 18, 0, 2}
	p := make([]byte, 44)
	buildSYN(p, src, dst, 40001, 7, 0xdeadbeef, 9)
	pkt, reason := ip.Parse(p, netip.AddrFrom4(dst))
	if reason != ip.DropNone {
		t.Fatalf("ip.Parse: %v", reason)
	}
	if pkt.Src != netip.AddrFrom4(src) {
		t.Errorf("source %v, want %v", pkt.Src, src)
	}
	var seg tcp.Segment
	if err := tcp.Parse(pkt.Payload, &seg); err != nil {
		t.Fatal(err)
	}
	if seg.SrcPort != 40001 || seg.DstPort != 7 || seg.Seq != 0xdeadbeef || seg.Flags != tcp.FlagSYN ||
		seg.Options.MSS != 1460 || len(seg.Payload) != 0 {
		t.Errorf("segment %v, options %+v", &seg, seg.Options)
	}
	p[43] ^= 1 // the TCP checksum covers the options
	if _, reason := ip.Parse(p, netip.AddrFrom4(dst)); reason == ip.DropNone {
		t.Error("a corrupted SYN passed the checksum")
	}
}

// Spoofed sources stay inside the prefix and are never its network or
// broadcast address, the host's or the stack's.
func TestSpoofedAddrAvoidsRealOnes(t *testing.T) {
	pfx := netip.MustParsePrefix("198.18.0.0/29") // .1 to .6
	host, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("198.18.0.2")
	rng := rand.New(rand.NewPCG(1, 2))
	seen := map[netip.Addr]bool{}
	for range 1000 {
		a := netip.AddrFrom4(spoofedAddr(rng, pfx, host, dst))
		if !pfx.Contains(a) || a == host || a == dst || a == pfx.Addr() || a == netip.MustParseAddr("198.18.0.7") {
			t.Fatalf("spoofed %v", a)
		}
		seen[a] = true
	}
	if len(seen) != 4 {
		t.Errorf("spoofed %d distinct addresses, want all 4 of .3 to .6", len(seen))
	}
}

func TestSummarize(t *testing.T) {
	d := []time.Duration{3 * time.Second, time.Millisecond, 2 * time.Millisecond, time.Second}
	l := summarize(d)
	if l.P50 != time.Second || l.Max != 3*time.Second || l.Over1s != 2 {
		t.Errorf("summarize(%v) = %+v", d, l)
	}
	if d[0] != 3*time.Second {
		t.Error("summarize sorted its argument in place")
	}
}
