package drill

import (
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
)

// ports returns the connection's ports, the defaults of a passive open
// until a connection has told otherwise.
func (r *runner) ports() (lport, rport uint16) {
	if r.lport == 0 {
		return localPort, remotePort
	}
	return r.lport, r.rport
}

// inject sends a script packet into the stack, its numbers made live.
func (r *runner) inject(p *Packet) error {
	if !p.HasWin {
		return r.fail("an inbound packet needs a window (win N)")
	}
	lport, rport := r.ports()
	seg := tcp.Segment{
		SrcPort: rport, DstPort: lport,
		Seq: tcp.Seq(p.Seq + remoteISN), Flags: p.Flags, Window: p.Win,
		Payload: make([]byte, p.Len),
	}
	if p.HasAck {
		seg.Ack = tcp.Seq(p.Ack + r.localOff)
	}
	for k := range seg.Payload {
		seg.Payload[k] = byte(p.Seq + uint32(k))
	}
	for _, o := range p.Options {
		switch o.Kind {
		case "mss":
			seg.Options.MSS = uint16(o.Val)
		case "wscale":
			seg.Options.HasWScale, seg.Options.WScale = true, int8(o.Val)
		case "sackOK":
			seg.Options.SACKPermitted = true
		case "TS":
			seg.Options.HasTS, seg.Options.TSVal = true, o.Val
			seg.Options.TSEcr = r.liveEcr(o.Ecr)
		case "sack":
			for _, b := range o.SACK {
				if seg.Options.NumSACK < tcp.MaxSACKBlocks {
					seg.Options.SACK[seg.Options.NumSACK] = tcp.SACKBlock{
						Start: b.Start.Add(int(r.localOff)), End: b.End.Add(int(r.localOff))}
					seg.Options.NumSACK++
				}
			}
		}
	}
	if p.Flags&(tcp.FlagSYN|tcp.FlagACK) == tcp.FlagSYN {
		// A new SYN from the script's side: the SYN+ACK that answers it
		// may open a new connection, with a new ISN to learn (as
		// packetdrill learns one for every passive open).
		r.localKnown = false
	}
	if p.HasOptions && !sameLayout(p.Options, seg.Options) {
		// The stack does not care how options are laid out; the wire
		// format here is tcp.Segment's own. Say so once.
		r.ignore("inbound option layout (nop/eol padding is the marshaller's own)")
	}
	return r.injectRaw(wire(&seg))
}

// injectRaw hands a packet to the stack.
func (r *runner) injectRaw(pkt []byte) error {
	if err := r.dev.inject(pkt); err != nil {
		return r.fail("%v", err)
	}
	return nil
}

// sameLayout reports whether options written as ops would come out of
// the marshaller the same (ignoring padding).
func sameLayout(ops []Option, _ tcp.Options) bool {
	for _, o := range ops {
		if o.Kind == "eol" {
			return false
		}
	}
	return true
}

// liveEcr maps a script TS ecr (which names one of our outbound TS vals
// in script space) to the live value.
func (r *runner) liveEcr(script uint32) uint32 {
	if v, ok := r.tsMap[script]; ok {
		return v
	}
	if r.tsSeen {
		return script - r.tsFirst[0] + r.tsFirst[1]
	}
	return script
}

// expect takes the next packet the stack sends, waiting in virtual time
// up to the event's time plus the tolerance, and compares it with the
// script's.
func (r *runner) expect(ev *Event, at time.Duration) error {
	deadline := at + r.tol
	if ev.TimeKind == TimeAny {
		deadline = r.now() + 10*time.Minute
	}
	got, ok, err := r.nextSent(deadline)
	if err != nil {
		return err
	}
	if !ok {
		return r.fail("expected %s at %.6f, the stack sent nothing (waited to %.6f)",
			describe(ev.Packet), at.Seconds(), deadline.Seconds())
	}
	pkt, seg, err := r.parseSent(ev, got)
	if err != nil {
		return err
	}
	// The stack's first SYN or SYN+ACK fixes its ISN and the ports.
	if ev.Packet.Flags.Has(tcp.FlagSYN) && seg.Flags.Has(tcp.FlagSYN) && !r.localKnown {
		r.localOff = uint32(seg.Seq) - ev.Packet.Seq
		r.localKnown = true
		r.lport, r.rport = seg.SrcPort, seg.DstPort
	}
	if ev.TimeKind != TimeAny && (got.at < at-r.tol || got.at > at+r.tol) {
		return r.fail("%s sent at %.6f, the script expects it at %.6f (tolerance %v)",
			r.describeLive(&seg, got.pkt), got.at.Seconds(), at.Seconds(), r.tol)
	}
	// A script written for a sender with TSO expects one large segment
	// where tund sends several of at most an MSS: as packetdrill does,
	// take consecutive segments until they cover it.
	for len(seg.Payload) > 0 && len(seg.Payload) < ev.Packet.Len {
		more, ok, err := r.nextSent(deadline)
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		_, next, err := r.parseSent(ev, more)
		if err != nil {
			return err
		}
		if next.Seq != seg.Seq.Add(len(seg.Payload)) || len(next.Payload) == 0 || next.Flags&^(tcp.FlagPSH|tcp.FlagFIN) != seg.Flags&^(tcp.FlagPSH|tcp.FlagFIN) {
			r.queued = append([]sent{more}, r.queued...)
			break
		}
		seg.Payload = append(seg.Payload[:len(seg.Payload):len(seg.Payload)], next.Payload...)
		seg.Flags |= next.Flags & (tcp.FlagPSH | tcp.FlagFIN)
		seg.Ack = next.Ack
	}
	if diff := r.compare(ev.Packet, &seg, &pkt); diff != "" {
		return r.fail("expected %s\n  got      %s\n  %s", describe(ev.Packet), r.describeLive(&seg, got.pkt), diff)
	}
	return nil
}

// nextSent returns the next packet the stack sends, moving virtual time
// from timer to timer up to deadline; ok is false if none came.
func (r *runner) nextSent(deadline time.Duration) (sent, bool, error) {
	for len(r.queued) == 0 {
		r.queued = append(r.queued, r.dev.take()...)
		if len(r.queued) > 0 {
			break
		}
		next, ok := r.clock.NextTimer()
		if !ok || next > deadline {
			if deadline > r.now() {
				r.clock.Advance(deadline - r.now())
			}
			if r.queued = append(r.queued, r.dev.take()...); len(r.queued) > 0 {
				break
			}
			return sent{}, false, nil
		}
		r.clock.Advance(next - r.now())
		if err := r.checkPending(); err != nil {
			return sent{}, false, err
		}
	}
	got := r.queued[0]
	r.queued = r.queued[1:]
	return got, true, nil
}

// parseSent reads a packet the stack sent as a TCP segment.
func (r *runner) parseSent(ev *Event, got sent) (ip.Packet, tcp.Segment, error) {
	var seg tcp.Segment
	pkt, reason := ip.Parse(got.pkt, netip.Addr{})
	if reason != ip.DropNone {
		return pkt, seg, r.fail("the stack sent a malformed packet (%v)", reason)
	}
	if pkt.Protocol != ip.ProtoTCP {
		return pkt, seg, r.fail("expected %s, the stack sent a non-TCP packet (protocol %d)", describe(ev.Packet), pkt.Protocol)
	}
	if err := tcp.Parse(pkt.Payload, &seg); err != nil {
		return pkt, seg, r.fail("the stack sent a malformed segment: %v", err)
	}
	return pkt, seg, nil
}

// compare checks a live segment against the script's packet and returns
// what differs ("" if nothing that counts).
func (r *runner) compare(p *Packet, seg *tcp.Segment, pkt *ip.Packet) string {
	var diffs []string
	lport, rport := r.ports()
	if seg.SrcPort != lport || seg.DstPort != rport || pkt.Dst != remoteAddr {
		diffs = append(diffs, fmt.Sprintf("ports %d > %d, want %d > %d", seg.SrcPort, seg.DstPort, lport, rport))
	}
	want, got := p.Flags, seg.Flags
	if r.opts.Lenient && want&tcp.FlagPSH != got&tcp.FlagPSH {
		r.ignore("PSH")
		want, got = want&^tcp.FlagPSH, got&^tcp.FlagPSH
	}
	if want != got {
		diffs = append(diffs, fmt.Sprintf("flags %s, want %s", flagString(got), flagString(want)))
	}
	if s := uint32(seg.Seq) - r.localOff; s != p.Seq {
		diffs = append(diffs, fmt.Sprintf("seq %d, want %d", s, p.Seq))
	}
	if len(seg.Payload) != p.Len {
		diffs = append(diffs, fmt.Sprintf("%d data bytes, want %d", len(seg.Payload), p.Len))
	}
	if p.Flags.Has(tcp.FlagACK) && seg.Flags.Has(tcp.FlagACK) {
		if a := uint32(seg.Ack) - remoteISN; a != p.Ack {
			diffs = append(diffs, fmt.Sprintf("ack %d, want %d", a, p.Ack))
		}
	}
	if p.HasWin && seg.Window != p.Win {
		if r.opts.Lenient {
			r.ignore("advertised window")
		} else {
			diffs = append(diffs, fmt.Sprintf("window %d, want %d", seg.Window, p.Win))
		}
	}
	if !p.AnyOptions {
		if d := r.compareOptions(p, seg, pkt); d != "" {
			diffs = append(diffs, d)
		}
	}
	return strings.Join(diffs, "; ")
}

// compareOptions compares option lists: in order, byte for byte (but TS
// val), as packetdrill does; or, lenient, as sets of meanings with the
// window-scale shift and padding left out. It records the outbound TS
// val mapping either way.
func (r *runner) compareOptions(p *Packet, seg *tcp.Segment, pkt *ip.Packet) string {
	live := liveOptions(pkt.Payload)
	var want []Option
	for _, o := range p.Options {
		o.SACK = append([]tcp.SACKBlock(nil), o.SACK...)
		want = append(want, o)
	}
	// TS val is the stack's clock: remember which live value the script
	// called what, so inbound TS ecr can be mapped.
	for _, o := range want {
		if o.Kind == "TS" && seg.Options.HasTS {
			r.tsMap[o.Val] = seg.Options.TSVal
			if !r.tsSeen {
				r.tsSeen, r.tsFirst = true, [2]uint32{o.Val, seg.Options.TSVal}
			}
		}
	}
	if !r.opts.Lenient {
		if len(live) != len(want) {
			return fmt.Sprintf("options <%s>, want <%s>", optString(live), optString(want))
		}
		for i := range live {
			if !r.sameOption(live[i], want[i], false) {
				return fmt.Sprintf("options <%s>, want <%s>", optString(live), optString(want))
			}
		}
		return ""
	}
	strip := func(os []Option) []Option {
		var out []Option
		for _, o := range os {
			if o.Kind != "nop" && o.Kind != "eol" {
				out = append(out, o)
			}
		}
		return out
	}
	l, w := strip(live), strip(want)
	if len(l) != len(w) {
		return fmt.Sprintf("options <%s>, want <%s>", optString(live), optString(want))
	}
	ordered := true
	for i := range l {
		if l[i].Kind != w[i].Kind {
			ordered = false
		}
	}
	for _, wo := range w {
		found := false
		for _, lo := range l {
			if lo.Kind == wo.Kind && r.sameOption(lo, wo, true) {
				found = true
				break
			}
		}
		if !found {
			return fmt.Sprintf("options <%s>, want <%s>", optString(live), optString(want))
		}
	}
	if !ordered || len(live) != len(want) {
		r.ignore("option order and padding")
	}
	return ""
}

// sameOption compares a live option with the script's (in script space).
func (r *runner) sameOption(live, want Option, lenient bool) bool {
	if live.Kind != want.Kind {
		return false
	}
	switch live.Kind {
	case "mss":
		return live.Val == want.Val
	case "wscale":
		if live.Val != want.Val && lenient {
			r.ignore("window-scale shift")
			return true
		}
		return live.Val == want.Val
	case "TS":
		if lenient {
			r.ignore("TS val")
		}
		// TS val is the stack's clock (packetdrill does not compare it
		// either); ecr must echo the peer's latest TS val.
		return live.Ecr == want.Ecr
	case "sack":
		if len(live.SACK) != len(want.SACK) {
			return false
		}
		for i := range live.SACK {
			a := live.SACK[i]
			b := want.SACK[i]
			if uint32(a.Start)-remoteISN != uint32(b.Start) || uint32(a.End)-remoteISN != uint32(b.End) {
				return false
			}
		}
	}
	return true
}

// liveOptions lists a live segment's options in wire order.
func liveOptions(seg []byte) []Option {
	off := int(seg[12]>>4) * 4
	opts := seg[20:min(off, len(seg))]
	var out []Option
	for i := 0; i < len(opts); {
		kind := opts[i]
		switch kind {
		case 0:
			out = append(out, Option{Kind: "eol"})
			i++
			continue
		case 1:
			out = append(out, Option{Kind: "nop"})
			i++
			continue
		}
		if i+1 >= len(opts) || int(opts[i+1]) < 2 || i+int(opts[i+1]) > len(opts) {
			return append(out, Option{Kind: fmt.Sprintf("bad(%d)", kind)})
		}
		body := opts[i+2 : i+int(opts[i+1])]
		o := Option{}
		switch kind {
		case 2:
			o.Kind = "mss"
			if len(body) == 2 {
				o.Val = uint32(body[0])<<8 | uint32(body[1])
			}
		case 3:
			o.Kind = "wscale"
			if len(body) == 1 {
				o.Val = uint32(body[0])
			}
		case 4:
			o.Kind = "sackOK"
		case 5:
			o.Kind = "sack"
			for j := 0; j+8 <= len(body); j += 8 {
				o.SACK = append(o.SACK, tcp.SACKBlock{Start: tcp.Seq(be32(body[j:])), End: tcp.Seq(be32(body[j+4:]))})
			}
		case 8:
			o.Kind = "TS"
			if len(body) == 8 {
				o.Val, o.Ecr = be32(body), be32(body[4:])
			}
		default:
			o.Kind = fmt.Sprintf("kind%d", kind)
		}
		out = append(out, o)
		i += int(opts[i+1])
	}
	return out
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

// describe prints a script packet as the script writes it.
func describe(p *Packet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %d:%d(%d)", flagString(p.Flags), p.Seq, p.End, p.Len)
	if p.HasAck {
		fmt.Fprintf(&b, " ack %d", p.Ack)
	}
	if p.HasWin {
		fmt.Fprintf(&b, " win %d", p.Win)
	}
	switch {
	case p.AnyOptions:
		b.WriteString(" <...>")
	case len(p.Options) > 0:
		fmt.Fprintf(&b, " <%s>", optString(p.Options))
	}
	return b.String()
}

// describeLive prints a live segment in script space.
func (r *runner) describeLive(seg *tcp.Segment, pkt []byte) string {
	var b strings.Builder
	s := uint32(seg.Seq) - r.localOff
	fmt.Fprintf(&b, "%s %d:%d(%d)", flagString(seg.Flags), s, s+uint32(len(seg.Payload)), len(seg.Payload))
	if seg.Flags.Has(tcp.FlagACK) {
		fmt.Fprintf(&b, " ack %d", uint32(seg.Ack)-remoteISN)
	}
	fmt.Fprintf(&b, " win %d", seg.Window)
	if opts := liveOptions(pkt[ip.IPv4HeaderLen:]); len(opts) > 0 {
		for i := range opts {
			for j := range opts[i].SACK {
				opts[i].SACK[j].Start -= remoteISN
				opts[i].SACK[j].End -= remoteISN
			}
		}
		fmt.Fprintf(&b, " <%s>", optString(opts))
	}
	return b.String()
}

// flagString prints flags as packetdrill does: S, S., F., P., R, ., ...
func flagString(f tcp.Flags) string {
	var b strings.Builder
	for _, x := range []struct {
		f tcp.Flags
		c byte
	}{{tcp.FlagFIN, 'F'}, {tcp.FlagSYN, 'S'}, {tcp.FlagRST, 'R'}, {tcp.FlagPSH, 'P'}, {tcp.FlagURG, 'U'}, {tcp.FlagACK, '.'}} {
		if f&x.f != 0 {
			b.WriteByte(x.c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

func optString(os []Option) string {
	parts := make([]string, len(os))
	for i, o := range os {
		switch o.Kind {
		case "mss", "wscale":
			parts[i] = fmt.Sprintf("%s %d", o.Kind, o.Val)
		case "TS":
			parts[i] = fmt.Sprintf("TS val %d ecr %d", o.Val, o.Ecr)
		case "sack":
			s := "sack"
			for _, b := range o.SACK {
				s += fmt.Sprintf(" %d:%d", uint32(b.Start), uint32(b.End))
			}
			parts[i] = s
		default:
			parts[i] = o.Kind
		}
	}
	return strings.Join(parts, ",")
}
