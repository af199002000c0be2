// Command tsgraph draws a time-sequence graph of one TCP flow from a pcap
// file (tund -pcap, tcpdump -w), the picture in which loss recovery can
// be read at a glance: every data segment the sender sent as a vertical
// bar from its first to its last sequence number at the time it left
// (blue the first time, red when it is sent again), the receiver's
// cumulative ACK as a green staircase beneath them, its SACK blocks as
// purple bars, and its receive window's right edge as a grey line above.
// A flat stretch of the blue bars is the sender waiting; red bars where
// the green line is stuck are the recovery.
//
// It also prints what it found: the flow, its bytes and goodput, the
// segments and bytes sent again, and every stall (no new data for longer
// than -stall) with how long it lasted, which is where a retransmission
// timeout shows.
//
//	go run ./scripts/tsgraph -o flow.svg capture.pcap
//	go run ./scripts/tsgraph -o zoom.svg -zoom 300ms capture.pcap   # around the first retransmission
//
// The flow drawn is the direction that carried the most payload, unless
// -flow names one as SRC:PORT (the sender's address).
package main

import (
	"bufio"
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"html"
	"io"
	"math"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
)

func main() {
	out := flag.String("o", "tsgraph.svg", "output SVG `file`")
	flow := flag.String("flow", "", "the sender as `ADDR:PORT` (default: the direction that carried the most payload)")
	from := flag.Duration("from", 0, "draw from this far into the flow")
	to := flag.Duration("to", 0, "draw up to this far into the flow (0: its end)")
	zoom := flag.Duration("zoom", 0, "draw this much time around the first retransmission (overrides -from and -to)")
	stall := flag.Duration("stall", 50*time.Millisecond, "report gaps without new data longer than this")
	title := flag.String("title", "", "chart title (default: the flow)")
	flag.Usage = func() {
		fmt.Fprintf(os.Stderr, "usage: tsgraph [-o out.svg] [-flow ADDR:PORT] [-zoom D | -from D -to D] capture.pcap\n")
		flag.PrintDefaults()
	}
	flag.Parse()
	if flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(os.Stdout, flag.Arg(0), *out, *flow, *title, *from, *to, *zoom, *stall); err != nil {
		fmt.Fprintf(os.Stderr, "tsgraph: %v\n", err)
		os.Exit(1)
	}
}

// packet is one TCP segment from the capture.
type packet struct {
	t        time.Duration // since the capture's first packet
	src, dst netip.AddrPort
	seq, ack tcp.Seq
	flags    tcp.Flags
	win      uint16
	wscale   int8 // on a SYN with the option, else -1
	sack     []tcp.SACKBlock
	len      int
}

func run(w io.Writer, path, out, flowArg, title string, from, to, zoom, stall time.Duration) error {
	pkts, err := readPcap(path)
	if err != nil {
		return err
	}
	sender, err := pickFlow(pkts, flowArg)
	if err != nil {
		return err
	}
	g := analyse(pkts, sender)
	if len(g.sent) == 0 {
		return fmt.Errorf("%s: %v sent no data", path, sender)
	}
	g.report(w, stall)
	if zoom > 0 {
		if len(g.resent) == 0 {
			return errors.New("-zoom: the flow has no retransmission to zoom on")
		}
		from = max(0, g.resent[0].t-zoom/5)
		to = from + zoom
	}
	if to == 0 {
		to = g.end
	}
	if to <= from {
		return fmt.Errorf("-from %v -to %v: an empty stretch of time", from, to)
	}
	if title == "" {
		title = fmt.Sprintf("%v → %v", g.sender, g.receiver)
	}
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := g.svg(f, title, from, to); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// readPcap reads every IPv4 TCP packet of a classic pcap file (either
// byte order, micro- or nanosecond timestamps, raw IP or Ethernet link).
func readPcap(path string) ([]packet, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReaderSize(f, 1<<20)
	var gh [24]byte
	if _, err := io.ReadFull(r, gh[:]); err != nil {
		return nil, fmt.Errorf("%s: not a pcap file: %v", path, err)
	}
	var bo binary.ByteOrder = binary.LittleEndian
	nanos := false
	switch binary.LittleEndian.Uint32(gh[:]) {
	case 0xa1b2c3d4:
	case 0xa1b23c4d:
		nanos = true
	case 0xd4c3b2a1:
		bo = binary.BigEndian
	case 0x4d3cb2a1:
		bo, nanos = binary.BigEndian, true
	default:
		return nil, fmt.Errorf("%s: not a pcap file (pcapng is not read: convert with tshark -F pcap)", path)
	}
	link := bo.Uint32(gh[20:])
	var skip int
	switch link {
	case 101, 228: // LINKTYPE_RAW, LINKTYPE_IPV4
	case 1: // LINKTYPE_ETHERNET
		skip = 14
	default:
		return nil, fmt.Errorf("%s: link type %d: only raw IP and Ethernet are read", path, link)
	}
	var pkts []packet
	var first time.Duration
	var rh [16]byte
	buf := make([]byte, 1<<16)
	for i := 0; ; i++ {
		if _, err := io.ReadFull(r, rh[:]); err != nil {
			if err == io.EOF {
				return pkts, nil
			}
			return nil, fmt.Errorf("%s: record %d: %v", path, i, err)
		}
		incl := int(bo.Uint32(rh[8:]))
		if incl > len(buf) {
			return nil, fmt.Errorf("%s: record %d: %d bytes, more than a packet", path, i, incl)
		}
		b := buf[:incl]
		if _, err := io.ReadFull(r, b); err != nil {
			return nil, fmt.Errorf("%s: record %d: %v", path, i, err)
		}
		frac := time.Duration(bo.Uint32(rh[4:]))
		if !nanos {
			frac *= time.Microsecond
		}
		at := time.Duration(bo.Uint32(rh[:]))*time.Second + frac
		if i == 0 {
			first = at
		}
		if len(b) < skip {
			continue
		}
		if p, ok := parse(b[skip:]); ok {
			p.t = at - first
			pkts = append(pkts, p)
		}
	}
}

// parse decodes a TCP packet of either IP version. Its TCP checksum is not checked: a
// capture of offloaded segments holds them before the device fills it.
func parse(b []byte) (packet, bool) {
	pkt, reason := ip.ParseTrusted(b, netip.Addr{})
	if reason != ip.DropNone || pkt.Protocol != ip.ProtoTCP {
		return packet{}, false
	}
	var seg tcp.Segment
	if tcp.Parse(pkt.Payload, &seg) != nil {
		return packet{}, false
	}
	p := packet{
		src:    netip.AddrPortFrom(pkt.Src, seg.SrcPort),
		dst:    netip.AddrPortFrom(pkt.Dst, seg.DstPort),
		seq:    seg.Seq,
		ack:    seg.Ack,
		flags:  seg.Flags,
		win:    seg.Window,
		wscale: -1,
		len:    len(seg.Payload),
	}
	if seg.Flags.Has(tcp.FlagSYN) && seg.Options.HasWScale {
		p.wscale = seg.Options.WScale
	}
	p.sack = append(p.sack, seg.Options.SACK[:seg.Options.NumSACK]...)
	return p, true
}

// pickFlow returns the sender named by arg, or the one that sent the
// most payload.
func pickFlow(pkts []packet, arg string) (netip.AddrPort, error) {
	if arg != "" {
		ap, err := netip.ParseAddrPort(arg)
		if err != nil {
			return ap, fmt.Errorf("-flow %q: want ADDR:PORT", arg)
		}
		return ap, nil
	}
	bytes := map[[2]netip.AddrPort]int{}
	for _, p := range pkts {
		bytes[[2]netip.AddrPort{p.src, p.dst}] += p.len
	}
	var best [2]netip.AddrPort
	for k, n := range bytes {
		if n > bytes[best] {
			best = k
		}
	}
	if bytes[best] == 0 {
		return netip.AddrPort{}, errors.New("no TCP payload in the capture")
	}
	return best[0], nil
}

// mark is one bar or step of the graph, in bytes from the sender's ISN+1.
type mark struct {
	t          time.Duration
	start, end int64
}

type graph struct {
	sender, receiver netip.AddrPort
	begin, end       time.Duration // the flow's first and last packet
	sent, resent     []mark        // data segments: first transmissions, retransmissions
	acks             []mark        // the receiver's cumulative ACK (start) and window edge (end)
	sacks            []mark
	bytes            int64 // highest byte sent
	hasWin           bool
}

// analyse picks out one direction's data and the other's ACKs, with
// sequence numbers made relative to the sender's ISN (the first sequence
// number seen, if the SYN was not captured), unwrapped to int64.
func analyse(pkts []packet, sender netip.AddrPort) *graph {
	g := &graph{sender: sender}
	var isn tcp.Seq
	known, scale := false, -1
	rel := func(s tcp.Seq) int64 { return int64(s.Sub(isn)) }
	var highest int64
	first := true
	for _, p := range pkts {
		switch {
		case p.src == sender:
			if !known {
				isn, known = p.seq, true
				if p.flags.Has(tcp.FlagSYN) {
					isn++
				}
			}
			if p.flags.Has(tcp.FlagSYN) {
				isn = p.seq + 1
			}
			if g.receiver == (netip.AddrPort{}) {
				g.receiver = p.dst
			}
		case p.dst == sender && (g.receiver == (netip.AddrPort{}) || p.src == g.receiver):
			g.receiver = p.src
			if p.flags.Has(tcp.FlagSYN) && p.wscale >= 0 {
				scale = int(p.wscale)
			}
		default:
			continue
		}
		if first {
			g.begin, first = p.t, false
		}
		g.end = p.t
		t := p.t - g.begin
		if p.src == sender {
			if p.len == 0 || !known {
				continue
			}
			m := mark{t, rel(p.seq), rel(p.seq) + int64(p.len)}
			if m.end <= highest {
				g.resent = append(g.resent, m)
			} else {
				g.sent = append(g.sent, m)
				highest = m.end
			}
			continue
		}
		if !known || !p.flags.Has(tcp.FlagACK) {
			continue
		}
		a := mark{t: t, start: rel(p.ack)}
		if scale >= 0 {
			a.end, g.hasWin = a.start+int64(p.win)<<scale, true
		}
		g.acks = append(g.acks, a)
		for _, s := range p.sack {
			g.sacks = append(g.sacks, mark{t, rel(s.Start), rel(s.End)})
		}
	}
	g.end -= g.begin
	g.bytes = highest
	return g
}

// report prints the flow's summary and its stalls.
func (g *graph) report(w io.Writer, stall time.Duration) {
	var resentBytes int64
	for _, m := range g.resent {
		resentBytes += m.end - m.start
	}
	secs := g.end.Seconds()
	fmt.Fprintf(w, "flow %v → %v: %d bytes in %.3f s (%.1f Mbit/s)\n", g.sender, g.receiver, g.bytes, secs, float64(g.bytes)*8/math.Max(secs, 1e-9)/1e6)
	fmt.Fprintf(w, "data segments %d, sent again %d (%d bytes, %.2f%% of the bytes)\n",
		len(g.sent)+len(g.resent), len(g.resent), resentBytes, 100*float64(resentBytes)/math.Max(float64(g.bytes), 1))
	var stalls []string
	var stalled time.Duration
	for i := 1; i < len(g.sent); i++ {
		if gap := g.sent[i].t - g.sent[i-1].t; gap > stall {
			stalled += gap
			stalls = append(stalls, fmt.Sprintf("  at %.3f s, no new data for %v", g.sent[i-1].t.Seconds(), gap.Round(time.Millisecond)))
		}
	}
	fmt.Fprintf(w, "stalls longer than %v: %d, %v in all (%.0f%% of the time)\n", stall, len(stalls), stalled.Round(time.Millisecond), 100*stalled.Seconds()/math.Max(secs, 1e-9))
	for _, s := range stalls {
		fmt.Fprintln(w, s)
	}
}

// svg draws the graph between from and to.
func (g *graph) svg(w io.Writer, title string, from, to time.Duration) error {
	const W, H, left, right, top, bottom = 900.0, 520.0, 80.0, 20.0, 40.0, 50.0
	in := func(t time.Duration) bool { return t >= from && t <= to }
	lo, hi := int64(math.MaxInt64), int64(0)
	for _, set := range [][]mark{g.sent, g.resent} {
		for _, m := range set {
			if in(m.t) {
				lo, hi = min(lo, m.start), max(hi, m.end)
			}
		}
	}
	if hi == 0 {
		return fmt.Errorf("no data sent between %v and %v", from, to)
	}
	for i, a := range g.acks {
		if in(a.t) || (a.t < from && (i+1 == len(g.acks) || g.acks[i+1].t >= from)) {
			lo = min(lo, a.start)
		}
	}
	unit, uname := 1.0, "bytes"
	switch span := float64(hi - lo); {
	case span >= 4<<20:
		unit, uname = 1<<20, "MiB"
	case span >= 4<<10:
		unit, uname = 1<<10, "KiB"
	}
	y0, y1 := float64(lo)/unit, float64(hi)/unit
	x0, x1 := from.Seconds(), to.Seconds()
	px := func(t time.Duration) float64 { return left + (t.Seconds()-x0)/(x1-x0)*(W-left-right) }
	py := func(b int64) float64 {
		y := (float64(b)/unit - y0) / math.Max(y1-y0, 1e-9)
		return H - bottom - math.Min(math.Max(y, -0.02), 1.02)*(H-top-bottom)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%g" height="%g" font-family="sans-serif" font-size="12">`+"\n", W, H)
	b.WriteString(`<rect width="100%" height="100%" fill="white"/>` + "\n")
	fmt.Fprintf(&b, `<text x="%g" y="24" font-size="16">%s</text>`+"\n", left, html.EscapeString(title))
	for _, v := range ticks(y0, y1) {
		y := int64(v * unit)
		fmt.Fprintf(&b, `<line x1="%.1f" y1="%.1f" x2="%.1f" y2="%.1f" stroke="#eee"/>`+"\n", left, py(y), W-right, py(y))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="end">%.6g</text>`+"\n", left-6, py(y)+4, v)
	}
	for _, v := range ticks(x0, x1) {
		t := time.Duration(v * float64(time.Second))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">%.6g</text>`+"\n", px(t), H-bottom+18, v)
	}
	fmt.Fprintf(&b, `<text x="%.1f" y="%.1f" text-anchor="middle">time (s)</text>`+"\n", (left+W-right)/2, H-10)
	fmt.Fprintf(&b, `<text transform="translate(18,%.1f) rotate(-90)" text-anchor="middle">sequence number (%s from the first byte)</text>`+"\n", (top+H-bottom)/2, uname)
	// The ACK staircase and the window edge, drawn first, under the bars.
	staircase := func(color string, y func(mark) int64) {
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.2" points="`, color)
		var prev float64
		n := 0
		for i, a := range g.acks {
			// The last ACK before the stretch drawn starts the line at
			// its left edge: an ACK stuck through a stall shows as one.
			if a.t < from && (i+1 == len(g.acks) || g.acks[i+1].t >= from) {
				a.t = from
			}
			if !in(a.t) {
				continue
			}
			x, v := px(a.t), py(y(a))
			if n > 0 {
				fmt.Fprintf(&b, "%.1f,%.1f ", x, prev)
			}
			fmt.Fprintf(&b, "%.1f,%.1f ", x, v)
			prev = v
			n++
		}
		b.WriteString("\"/>\n")
	}
	if g.hasWin {
		staircase("#999", func(a mark) int64 { return a.end })
	}
	staircase("#2ca02c", func(a mark) int64 { return a.start })
	// Bars at least minH pixels tall, so a segment shows at any scale.
	bars := func(set []mark, color string, width, minH float64) {
		fmt.Fprintf(&b, `<path stroke="%s" stroke-width="%g" d="`, color, width)
		for _, m := range set {
			if in(m.t) {
				x := px(m.t)
				fmt.Fprintf(&b, "M%.1f %.1fV%.1f", x, py(m.start), math.Min(py(m.end), py(m.start)-minH))
			}
		}
		b.WriteString("\"/>\n")
	}
	bars(g.sacks, "#9467bd", 1, 2)
	bars(g.sent, "#1f77b4", 1.5, 1)
	bars(g.resent, "#d62728", 2, 2)
	for i, l := range []struct{ color, name string }{
		{"#1f77b4", "data sent"}, {"#d62728", "data sent again"}, {"#2ca02c", "ACK"},
		{"#9467bd", "SACK blocks"}, {"#999", "receive window's edge"},
	} {
		if l.color == "#999" && !g.hasWin {
			continue
		}
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="14" height="3" fill="%s"/>`, left+12, top+8+float64(i)*18, l.color)
		fmt.Fprintf(&b, `<text x="%.1f" y="%.1f">%s</text>`+"\n", left+32, top+13+float64(i)*18, l.name)
	}
	b.WriteString("</svg>\n")
	_, err := io.WriteString(w, b.String())
	return err
}

// ticks returns the round values (1, 2 or 5 times a power of ten apart)
// between lo and hi, four to ten of them.
func ticks(lo, hi float64) []float64 {
	span := hi - lo
	if span <= 0 {
		return []float64{lo}
	}
	p := math.Pow(10, math.Floor(math.Log10(span/4)))
	step := p
	for _, m := range []float64{1, 2, 5, 10} {
		if span/(m*p) <= 10 {
			step = m * p
			break
		}
	}
	var vs []float64
	for v := math.Ceil(lo/step) * step; v <= hi+step*1e-9; v += step {
		vs = append(vs, math.Round(v/step)*step)
	}
	return vs
}
