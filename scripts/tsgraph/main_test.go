package main

import (
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
)

// capture writes a pcap (raw IP, nanoseconds) of segs, each sent at its
// time from one end of a flow to the other.
func capture(t *testing.T, recs []rec) string {
	t.Helper()
	var out []byte
	gh := make([]byte, 24)
	binary.LittleEndian.PutUint32(gh, 0xa1b23c4d)
	binary.LittleEndian.PutUint16(gh[4:], 2)
	binary.LittleEndian.PutUint16(gh[6:], 4)
	binary.LittleEndian.PutUint32(gh[16:], 65535)
	binary.LittleEndian.PutUint32(gh[20:], 101)
	out = append(out, gh...)
	a, b := [4]byte{10, 0, 0, 1}, [4]byte{10, 0, 0, 2}
	for _, r := range recs {
		src, dst := a, b
		if !r.fromA {
			src, dst = b, a
		}
		pkt := make([]byte, 20+r.seg.HeaderLen()+len(r.seg.Payload))
		h := ip.BuildIPv4(pkt, netip.AddrFrom4(src), netip.AddrFrom4(dst), ip.ProtoTCP, 1, len(pkt)-20)
		r.seg.Marshal(pkt[h:])
		rh := make([]byte, 16)
		binary.LittleEndian.PutUint32(rh, uint32(r.at/time.Second))
		binary.LittleEndian.PutUint32(rh[4:], uint32(r.at%time.Second))
		binary.LittleEndian.PutUint32(rh[8:], uint32(len(pkt)))
		binary.LittleEndian.PutUint32(rh[12:], uint32(len(pkt)))
		out = append(out, rh...)
		out = append(out, pkt...)
	}
	p := filepath.Join(t.TempDir(), "c.pcap")
	if err := os.WriteFile(p, out, 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

type rec struct {
	at    time.Duration
	fromA bool
	seg   tcp.Segment
}

// TestGraphOfARecovery: a flow whose third segment is lost and sent
// again after a 200 ms stall, with a SACK in between. The report counts
// the segments, the one sent again and the stall; the SVG has the red
// bar, the SACK and the window edge; -zoom centres on the retransmission.
func TestGraphOfARecovery(t *testing.T) {
	const isn, mss = 1000, 1000
	data := func(at time.Duration, i int) rec {
		return rec{at, true, tcp.Segment{SrcPort: 80, DstPort: 5000, Seq: isn + 1 + tcp.Seq(i*mss), Ack: 1,
			Flags: tcp.FlagACK, Window: 100, Payload: make([]byte, mss)}}
	}
	ack := func(at time.Duration, n int, sack ...tcp.SACKBlock) rec {
		s := tcp.Segment{SrcPort: 5000, DstPort: 80, Seq: 1, Ack: isn + 1 + tcp.Seq(n*mss), Flags: tcp.FlagACK, Window: 512}
		s.Options.NumSACK = copy(s.Options.SACK[:], sack)
		return rec{at, false, s}
	}
	syn := tcp.Segment{SrcPort: 5000, DstPort: 80, Seq: 0, Flags: tcp.FlagSYN, Window: 65535}
	syn.Options.HasWScale, syn.Options.WScale = true, 7
	synack := tcp.Segment{SrcPort: 80, DstPort: 5000, Seq: isn, Ack: 1, Flags: tcp.FlagSYN | tcp.FlagACK, Window: 65535}
	ms := time.Millisecond
	recs := []rec{
		{0, false, syn}, {ms, true, synack},
		data(2*ms, 0), data(2*ms, 1), data(2*ms, 2), data(2*ms, 3),
		ack(3*ms, 1), ack(3*ms, 2),
		ack(4*ms, 2, tcp.SACKBlock{Start: isn + 1 + 3*mss, End: isn + 1 + 4*mss}),
		data(204*ms, 2), // the loss repaired after a timeout
		ack(205*ms, 4),
		data(206*ms, 4),
		ack(207*ms, 5),
	}
	p := capture(t, recs)
	dir := t.TempDir()
	var report strings.Builder
	svgPath := filepath.Join(dir, "g.svg")
	if err := run(&report, p, svgPath, "", "", 0, 0, 0, 50*ms); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"flow 10.0.0.1:80 → 10.0.0.2:5000: 5000 bytes in 0.207 s",
		"data segments 6, sent again 1 (1000 bytes, 20.00% of the bytes)",
		"stalls longer than 50ms: 1, 204ms in all",
		"at 0.002 s, no new data for 204ms",
	} {
		if !strings.Contains(report.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, report.String())
		}
	}
	svg, err := os.ReadFile(svgPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`stroke="#d62728" stroke-width="2" d="M`, `stroke="#9467bd" stroke-width="1" d="M`, "receive window's edge", "10.0.0.1:80 → 10.0.0.2:5000"} {
		if !strings.Contains(string(svg), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
	if err := run(&report, p, svgPath, "", "", 0, 0, 100*ms, 50*ms); err != nil {
		t.Fatalf("-zoom: %v", err)
	}
	svg, _ = os.ReadFile(svgPath)
	// From 20 ms before the retransmission (a fifth of the zoom): the
	// first bars at 2 ms are left out, the red one is in.
	if !strings.Contains(string(svg), `>0.19<`) || !strings.Contains(string(svg), `stroke="#d62728" stroke-width="2" d="M`) {
		t.Errorf("zoomed SVG does not run from 0.184 s (a tick at 0.19) with the retransmission:\n%.600s", svg)
	}
	if err := run(&report, p, svgPath, "10.0.0.9:1", "", 0, 0, 0, 50*ms); err == nil || !strings.Contains(err.Error(), "sent no data") {
		t.Errorf("a -flow that sent nothing: %v", err)
	}
}
