package tcp

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"
)

// A fixed key makes the tests deterministic: with a random one, each
// "must reject" check would fail once in 2^20 runs by chance.
var (
	cookieKeyA = [16]byte{0: 0xa1, 7: 0x5e, 15: 0x42}
	cookieKeyB = [16]byte{0: 0xb2, 7: 0x17, 15: 0x99}
)

var (
	cookieLocal  = netip.AddrFrom4([4]byte{10, 0, 0, 1})
	cookieRemote = netip.AddrFrom4([4]byte{192, 0, 2, 7})
)

// cookieSyn is a SYN from cookieRemote:40000 to cookieLocal:80 with ISN
// isn and window shift ws (-1: no window scale option).
func cookieSyn(isn Seq, ws int) *Segment {
	s := &Segment{SrcPort: 40000, DstPort: 80, Seq: isn, Flags: FlagSYN, Window: 65535}
	s.Options.MSS = 1460
	if ws >= 0 {
		s.Options.HasWScale, s.Options.WScale = true, int8(ws)
	}
	return s
}

// cookieAck is the peer's answer to our SYN+ACK carrying cookie: the
// handshake's final ACK, which comes from the same side as the SYN.
func cookieAck(syn *Segment, cookie Seq) *Segment {
	return &Segment{
		SrcPort: syn.SrcPort, DstPort: syn.DstPort,
		Seq: syn.Seq + 1, Ack: cookie + 1, Flags: FlagACK, Window: 1024,
	}
}

// The reference vectors of the SipHash paper (key 00 01 .. 0f, message
// 00 01 .. of the given length), so a typo in a rotation cannot hide.
func TestSipHash24Vectors(t *testing.T) {
	var key, msg [16]byte
	for i := range key {
		key[i], msg[i] = byte(i), byte(i)
	}
	sc := newSynCookies(key)
	for _, tc := range []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{8, 0x93f5f5799a932462},
		{15, 0xa129ca6149be45e5}, // the worked example of the paper, Appendix A
	} {
		if got := siphash24(sc.k0, sc.k1, msg[:tc.n]); got != tc.want {
			t.Errorf("SipHash-2-4 of %d bytes = %#x, want %#x", tc.n, got, tc.want)
		}
	}
}

func TestSynCookieRoundTrip(t *testing.T) {
	sc := newSynCookies(cookieKeyA)
	now := 1000 * time.Second
	for _, mss := range cookieMSS {
		for ws := -1; ws <= 15; ws++ {
			syn := cookieSyn(Seq(0xfffffff0+uint32(ws)), ws) // ISNs around the wrap
			cookie := sc.Make(cookieLocal, cookieRemote, syn, mss, now)
			got, ok := sc.Check(cookieLocal, cookieRemote, cookieAck(syn, cookie), now)
			want := CookieOptions{MSS: mss, WScale: min(ws, 14)} // RFC 7323 §2.3
			if !ok || got != want {
				t.Errorf("mss %d wscale %d: Check = %+v, %v; want %+v, true", mss, ws, got, ok, want)
			}
		}
	}
}

// A cookie connection may not send more than the peer asked for, so the MSS
// rounds down; but nothing goes below the 536 every host accepts.
func TestSynCookieMSSRoundsDown(t *testing.T) {
	sc := newSynCookies(cookieKeyA)
	for _, tc := range []struct{ in, want int }{
		{0, 536}, {100, 536}, {535, 536}, {536, 536}, {1239, 536},
		{1240, 1240}, {1400, 1380}, {1450, 1440}, {1459, 1452},
		{1460, 1460}, {1500, 1460}, {8959, 1460}, {9000, 8960}, {65535, 8960},
	} {
		syn := cookieSyn(1234, 7)
		cookie := sc.Make(cookieLocal, cookieRemote, syn, tc.in, 0)
		got, ok := sc.Check(cookieLocal, cookieRemote, cookieAck(syn, cookie), 0)
		if !ok || got.MSS != tc.want {
			t.Errorf("mss %d: Check = %+v, %v; want MSS %d", tc.in, got, ok, tc.want)
		}
	}
}

// Over IPv6 the table is IPv6's (each path's MTU minus 60), with 1220, the
// MSS of IPv6's minimum MTU, as the floor, and a cookie is bound to the
// IPv6 addresses as to IPv4 ones.
func TestSynCookieIPv6(t *testing.T) {
	sc := newSynCookies(cookieKeyA)
	local, remote := netip.MustParseAddr("fd00:7:5eed::2"), netip.MustParseAddr("fd00:7:5eed::1")
	for _, tc := range []struct{ in, want int }{
		{536, 1220}, {1219, 1220}, {1220, 1220}, {1380, 1360}, {1440, 1440},
		{1460, 1440}, {8940, 8940}, {65535, 8940},
	} {
		syn := cookieSyn(1234, 7)
		cookie := sc.Make(local, remote, syn, tc.in, 0)
		got, ok := sc.Check(local, remote, cookieAck(syn, cookie), 0)
		if !ok || got.MSS != tc.want {
			t.Errorf("mss %d: Check = %+v, %v; want MSS %d", tc.in, got, ok, tc.want)
		}
		other := remote.As16()
		other[15] ^= 1
		if _, ok := sc.Check(local, netip.AddrFrom16(other), cookieAck(syn, cookie), 0); ok {
			t.Errorf("mss %d: a cookie for %v passed for another address", tc.in, remote)
		}
	}
}

// A cookie is good in the slot it was made in and the next one, whatever
// the position in the slot it was made at, and never again.
func TestSynCookieLifetime(t *testing.T) {
	sc := newSynCookies(cookieKeyA)
	syn := cookieSyn(777, 2)
	// Slot 31 checks the wrap of the 5-bit counter from 31 to 0.
	for _, slot := range []time.Duration{0, 5, 31, 1000} {
		start := slot * cookieSlot
		for _, made := range []time.Duration{start, start + cookieSlot/2, start + cookieSlot - 1} {
			cookie := sc.Make(cookieLocal, cookieRemote, syn, 1460, made)
			ack := cookieAck(syn, cookie)
			for _, tc := range []struct {
				at   time.Duration
				want bool
				why  string
			}{
				{made, true, "at once"},
				{start + cookieSlot - 1, true, "end of its slot"},
				{start + cookieSlot, true, "start of the next slot"},
				{start + 2*cookieSlot - 1, true, "end of the next slot"},
				{start + 2*cookieSlot, false, "two slots later"},
				{start + 32*cookieSlot, false, "32 slots later (same counter)"},
				{start - 1, false, "before it was made"},
			} {
				if tc.at < 0 {
					continue
				}
				if _, ok := sc.Check(cookieLocal, cookieRemote, ack, tc.at); ok != tc.want {
					t.Errorf("made at %v, checked at %v (%s): ok = %v, want %v", made, tc.at, tc.why, ok, tc.want)
				}
			}
		}
	}
}

// Everything the cookie binds is under the mac: change one bit of the
// 4-tuple, the peer's ISN or the cookie itself and Check fails.
func TestSynCookieRejectsAnyChange(t *testing.T) {
	sc := newSynCookies(cookieKeyA)
	now := 500 * time.Second
	syn := cookieSyn(0x12345678, 6)
	cookie := sc.Make(cookieLocal, cookieRemote, syn, 1452, now)
	if _, ok := sc.Check(cookieLocal, cookieRemote, cookieAck(syn, cookie), now); !ok {
		t.Fatal("the unchanged ACK is rejected")
	}

	type change struct {
		name string
		edit func(local, remote *[4]byte, ack *Segment)
	}
	changes := []change{
		{"remote port", func(_, _ *[4]byte, a *Segment) { a.SrcPort++ }},
		{"local port", func(_, _ *[4]byte, a *Segment) { a.DstPort = 8080 }},
		{"remote addr", func(_, r *[4]byte, _ *Segment) { r[3]++ }},
		{"local addr", func(l, _ *[4]byte, _ *Segment) { l[0] = 127 }},
		{"peer ISN", func(_, _ *[4]byte, a *Segment) { a.Seq++ }},
		{"ack number", func(_, _ *[4]byte, a *Segment) { a.Ack++ }},
		{"SYN set", func(_, _ *[4]byte, a *Segment) { a.Flags |= FlagSYN }},
		{"RST set", func(_, _ *[4]byte, a *Segment) { a.Flags |= FlagRST }},
		{"no ACK", func(_, _ *[4]byte, a *Segment) { a.Flags = FlagPSH }},
	}
	for i := range 32 {
		changes = append(changes,
			change{fmt.Sprintf("local addr bit %d", i), func(l, _ *[4]byte, _ *Segment) { l[i/8] ^= 1 << (i % 8) }},
			change{fmt.Sprintf("remote addr bit %d", i), func(_, r *[4]byte, _ *Segment) { r[i/8] ^= 1 << (i % 8) }},
			change{fmt.Sprintf("peer ISN bit %d", i), func(_, _ *[4]byte, a *Segment) { a.Seq ^= 1 << i }},
			// Bits 20-31 are the slot, MSS and wscale fields, 0-19 the mac.
			change{fmt.Sprintf("cookie bit %d", i), func(_, _ *[4]byte, a *Segment) { a.Ack ^= 1 << i }},
		)
		if i < 16 {
			changes = append(changes,
				change{fmt.Sprintf("remote port bit %d", i), func(_, _ *[4]byte, a *Segment) { a.SrcPort ^= 1 << i }},
				change{fmt.Sprintf("local port bit %d", i), func(_, _ *[4]byte, a *Segment) { a.DstPort ^= 1 << i }},
			)
		}
	}
	for _, c := range changes {
		local, remote, ack := cookieLocal.As4(), cookieRemote.As4(), cookieAck(syn, cookie)
		c.edit(&local, &remote, ack)
		if got, ok := sc.Check(netip.AddrFrom4(local), netip.AddrFrom4(remote), ack, now); ok {
			t.Errorf("%s changed: Check accepted it (%+v)", c.name, got)
		}
	}
}

// The segment completing the handshake may already carry data or a FIN.
func TestSynCookieAckWithData(t *testing.T) {
	sc := newSynCookies(cookieKeyA)
	syn := cookieSyn(42, -1)
	cookie := sc.Make(cookieLocal, cookieRemote, syn, 536, 0)
	for _, f := range []Flags{FlagACK | FlagPSH, FlagACK | FlagFIN} {
		ack := cookieAck(syn, cookie)
		ack.Flags, ack.Payload = f, []byte("GET / HTTP/1.0\r\n\r\n")
		if got, ok := sc.Check(cookieLocal, cookieRemote, ack, 0); !ok || got.WScale != -1 {
			t.Errorf("%s: Check = %+v, %v", f, got, ok)
		}
	}
}

// A blind attacker who cannot see our SYN+ACK must guess: 32 bits of
// acknowledgment number, of which the mac's 20 are unguessable. Of the
// rest, only 2 of the 32 slot counters are current, so a random guess
// succeeds with probability 2/32 * 2^-20, about 0.006 in 100k tries.
func TestSynCookieRandomAcks(t *testing.T) {
	sc := newSynCookies(cookieKeyA)
	now := 3 * time.Hour
	syn := cookieSyn(99999, 8)
	cookie := sc.Make(cookieLocal, cookieRemote, syn, 1460, now)
	rng := rand.New(rand.NewPCG(1, 2))
	ack := cookieAck(syn, cookie)
	accepted := 0
	for range 100_000 {
		ack.Ack = Seq(rng.Uint32())
		if ack.Ack == cookie+1 {
			continue
		}
		if _, ok := sc.Check(cookieLocal, cookieRemote, ack, now); ok {
			accepted++
		}
	}
	t.Logf("%d of 100000 random ACKs accepted", accepted)
	if accepted >= 5 {
		t.Errorf("%d of 100000 random ACKs accepted, want < 5", accepted)
	}
}

// Each instance has its own key: a cookie is only good where it was made.
func TestSynCookieInstancesDiffer(t *testing.T) {
	a, b := newSynCookies(cookieKeyA), newSynCookies(cookieKeyB)
	for i := range 1000 {
		syn := cookieSyn(Seq(i*7919), i%16-1)
		syn.SrcPort = uint16(30000 + i)
		cookie := a.Make(cookieLocal, cookieRemote, syn, 1460, 0)
		if _, ok := b.Check(cookieLocal, cookieRemote, cookieAck(syn, cookie), 0); ok {
			t.Errorf("SYN %d: b accepted a's cookie", i)
		}
	}

	// Random keys: each accepts its own cookies and (barring a 2^-20
	// coincidence, so allow one) not the other's.
	r1, r2 := NewSynCookies(), NewSynCookies()
	if *r1 == *r2 {
		t.Fatal("two NewSynCookies have the same key")
	}
	crossed := 0
	for i := range 64 {
		syn := cookieSyn(Seq(i), 3)
		c1 := r1.Make(cookieLocal, cookieRemote, syn, 1460, 0)
		if _, ok := r1.Check(cookieLocal, cookieRemote, cookieAck(syn, c1), 0); !ok {
			t.Errorf("SYN %d: an instance rejected its own cookie", i)
		}
		if _, ok := r2.Check(cookieLocal, cookieRemote, cookieAck(syn, c1), 0); ok {
			crossed++
		}
	}
	if crossed > 1 {
		t.Errorf("%d of 64 cookies accepted by the other instance", crossed)
	}
}

// Cookies are for floods, so they must cost no garbage.
func TestSynCookieNoAllocs(t *testing.T) {
	sc := NewSynCookies()
	syn := cookieSyn(1, 7)
	var cookie Seq
	if n := testing.AllocsPerRun(100, func() {
		cookie = sc.Make(cookieLocal, cookieRemote, syn, 1460, time.Minute)
	}); n != 0 {
		t.Errorf("Make: %v allocations, want 0", n)
	}
	ack := cookieAck(syn, cookie)
	if n := testing.AllocsPerRun(100, func() {
		if _, ok := sc.Check(cookieLocal, cookieRemote, ack, time.Minute); !ok {
			panic("cookie rejected")
		}
	}); n != 0 {
		t.Errorf("Check: %v allocations, want 0", n)
	}
}

func BenchmarkSynCookieMake(b *testing.B) {
	sc := NewSynCookies()
	syn := cookieSyn(1, 7)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		syn.Seq = Seq(i)
		sc.Make(cookieLocal, cookieRemote, syn, 1460, time.Minute)
	}
}

func BenchmarkSynCookieCheck(b *testing.B) {
	sc := NewSynCookies()
	syn := cookieSyn(1, 7)
	ack := cookieAck(syn, sc.Make(cookieLocal, cookieRemote, syn, 1460, time.Minute))
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := sc.Check(cookieLocal, cookieRemote, ack, time.Minute); !ok {
			b.Fatal("cookie rejected")
		}
	}
}

// A listener with a full backlog answers a SYN with a cookie, forgets it,
// and rebuilds what it needs when the ACK brings the cookie back.
func ExampleSynCookies() {
	sc := NewSynCookies()
	local, remote := netip.AddrFrom4([4]byte{10, 0, 0, 1}), netip.AddrFrom4([4]byte{192, 0, 2, 7})

	syn := &Segment{SrcPort: 40000, DstPort: 80, Seq: 1000, Flags: FlagSYN}
	syn.Options.MSS, syn.Options.HasWScale, syn.Options.WScale = 1400, true, 7
	ourMSS := 1460
	iss := sc.Make(local, remote, syn, min(int(syn.Options.MSS), ourMSS), 10*time.Second)

	// ... SYN+ACK with seq=iss sent; no state kept; 200 ms later:
	ack := &Segment{SrcPort: 40000, DstPort: 80, Seq: 1001, Ack: iss + 1, Flags: FlagACK}
	opts, ok := sc.Check(local, remote, ack, 10*time.Second+200*time.Millisecond)
	fmt.Println(ok, opts.MSS, opts.WScale)
	// Output: true 1380 7
}
