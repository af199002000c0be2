package tcp

import (
	"crypto/rand"
	"encoding/binary"
	"math/bits"
	"net/netip"
	"time"
)

// SYN cookies (RFC 4987 §3.6).
//
// A listener normally remembers every SYN it answers (a SYN-RECEIVED
// connection) until the ACK of its SYN+ACK comes back. A SYN flood fills
// that backlog with SYNs from forged addresses whose ACKs never come. With
// cookies, a listener whose backlog is full keeps nothing: it packs what it
// must remember into the ISS of its SYN+ACK, and a genuine peer hands that
// back, plus one, in the acknowledgment number of the handshake's final ACK.
// Only a host that received the SYN+ACK can do that, so forged sources
// cannot open connections either.
//
// The cookie, the 32-bit ISS:
//
//	 31       27 26  24 23    20 19                                  0
//	+-----------+------+--------+-------------------------------------+
//	|   slot    | mss  | wscale |                 mac                 |
//	| (5 bits)  | (3)  |  (4)   |              (20 bits)              |
//	+-----------+------+--------+-------------------------------------+
//
//   - slot: the time slot counter, now/64s mod 32. Check accepts only the
//     current and the previous slot, so a cookie lives 64 to 128 s: long
//     enough for the peer's ACK to arrive across any real path, short
//     enough that a cookie someone overheard soon goes stale.
//   - mss: an index into cookieMSS, the MSS we will send with (3 bits, as
//     in Bernstein's original scheme, which RFC 4987 §3.6 describes).
//   - wscale: the peer's window shift plus one, 0 when the peer sent no
//     window scale option (RFC 7323 §2).
//   - mac: 20 bits of SipHash-2-4, keyed with a secret chosen at random by
//     NewSynCookies, over the 4-tuple, the peer's ISN, the full (not mod
//     32) slot number and the mss and wscale fields. Without the key nobody
//     can compute it, so an ACK that carries it proves the sender saw our
//     SYN+ACK; and because every other bit of the cookie and of the
//     connection is under the mac, changing any of them breaks it.
//
// What cookies cost: the SYN's other options (SACK-permitted, timestamps)
// do not fit and are forgotten, so a cookie connection runs without them;
// the MSS is rounded down to a table value; the peer's ISN is taken from
// the sequence number of the first segment to arrive, so if the final ACK
// and the first data segment are both lost, later segments fail the check
// until the peer retransmits its first; and if the final ACK is lost and
// the peer waits for us to speak first, the connection stalls, since we
// never learnt it exists and do not retransmit the SYN+ACK. That is why
// cookies are for a full backlog only.

// cookieSlot is the lifetime unit of a cookie: the 64-second tick of the
// time counter in Bernstein's original scheme.
const cookieSlot = 64 * time.Second

// Bit layout of a cookie; see the diagram above.
const (
	cookieSlotShift = 27
	cookieMSSShift  = 24
	cookieWSShift   = 20
	cookieMACMask   = 1<<cookieWSShift - 1
	cookieMetaMask  = 1<<(cookieSlotShift-cookieWSShift) - 1 // mss and wscale
)

// cookieMSS is the MSS a cookie can carry over IPv4, sorted. A cookie has
// room for 3 bits, so a peer's MSS is rounded down to the nearest entry:
// the values are the ones real paths produce (MTU minus 40 bytes of IPv4
// and TCP header), so a typical peer loses nothing.
var cookieMSS = [8]int{
	536,  // RFC 9293 §3.7.1 default MSS, also the floor (see mssIndex)
	1240, // 1280-byte MTU (the IPv6 minimum, which many VPNs use)
	1300, // a common conservative MSS clamp on tunnels
	1380, // WireGuard's default 1420-byte MTU
	1440, // 1480-byte MTU: IP-in-IP, 6in4 and GRE-over-Ethernet tunnels
	1452, // PPPoE, 1492-byte MTU
	1460, // Ethernet, 1500-byte MTU
	8960, // jumbo frames, 9000-byte MTU
}

// cookieMSS6 is cookieMSS for IPv6, whose header is 20 bytes longer: the
// same paths, each MTU minus 60. Its floor is 1220, the MSS of IPv6's
// minimum MTU (RFC 8200 §5), which every IPv6 path carries.
var cookieMSS6 = [8]int{
	1220, // 1280-byte MTU, the IPv6 minimum
	1280, // a common conservative MSS clamp on tunnels
	1360, // WireGuard's default 1420-byte MTU
	1400, // 1460-byte MTU: IPv6-in-IPv6 over Ethernet
	1420, // 1480-byte MTU: 6in4 and GRE-over-Ethernet tunnels
	1432, // PPPoE, 1492-byte MTU
	1440, // Ethernet, 1500-byte MTU
	8940, // jumbo frames, 9000-byte MTU
}

// mssTable is the cookie MSS table of local's family.
func mssTable(local netip.Addr) *[8]int {
	if local.Is4() {
		return &cookieMSS
	}
	return &cookieMSS6
}

// CookieOptions is what a cookie carries: what the listener would otherwise
// have remembered from the SYN.
type CookieOptions struct {
	MSS    int // the MSS to send with, one of the cookie table's values
	WScale int // the peer's window shift (0..14), -1 when the peer sent none
}

// SynCookies makes and checks SYN cookies: a listener whose backlog is full
// answers a SYN with a SYN+ACK whose ISS encodes what it must remember, and
// keeps no state until the ACK returns it. It never changes after
// NewSynCookies, so any number of goroutines may share one.
type SynCookies struct {
	k0, k1 uint64 // the SipHash key
}

// NewSynCookies returns a cookie maker with a fresh random 128-bit key.
// Cookies made by one SynCookies are rejected by every other.
func NewSynCookies() *SynCookies {
	var key [16]byte
	_, _ = rand.Read(key[:]) // crypto/rand.Read never fails (Go 1.24+)
	return newSynCookies(key)
}

// NewSynCookiesKey returns a cookie maker with the given key, for
// reproducible test runs; a stack on a network needs a secret, random one
// (NewSynCookies).
func NewSynCookiesKey(key [16]byte) *SynCookies { return newSynCookies(key) }

// newSynCookies builds a SynCookies with a given key, so tests can be
// deterministic.
func newSynCookies(key [16]byte) *SynCookies {
	return &SynCookies{
		k0: binary.LittleEndian.Uint64(key[0:]),
		k1: binary.LittleEndian.Uint64(key[8:]),
	}
}

// Make returns the ISS for the SYN+ACK answering syn, which arrived from
// remote to local (the ports are in syn), at time now (monotonic). mss is
// the MSS we will use towards the peer: the smaller of the peer's option
// (536 if absent) and ours. It is rounded down to a table value, and the
// peer's window scale option is encoded too.
func (sc *SynCookies) Make(local, remote netip.Addr, syn *Segment, mss int, now time.Duration) Seq {
	slot := slotOf(now)
	meta := uint32(mssIndex(mssTable(local), mss))<<(cookieMSSShift-cookieWSShift) | wscaleField(&syn.Options)
	mac := sc.mac(local, remote, syn.DstPort, syn.SrcPort, syn.Seq, slot, meta)
	return Seq(uint32(slot)<<cookieSlotShift | meta<<cookieWSShift | mac)
}

// Check validates the segment completing a cookie handshake: an ACK
// without SYN or RST from remote to local. The ACK acknowledges our SYN,
// so the cookie is ack.Ack-1; it is the first segment after the peer's
// SYN, so the peer's ISN is ack.Seq-1. Check accepts a cookie made in the
// current or the previous 64-second slot and returns what Make encoded.
func (sc *SynCookies) Check(local, remote netip.Addr, ack *Segment, now time.Duration) (CookieOptions, bool) {
	if ack.Flags&(FlagSYN|FlagRST|FlagACK) != FlagACK {
		return CookieOptions{}, false
	}
	cookie := uint32(ack.Ack - 1)
	// The cookie holds only the slot counter mod 32. Of the two slots we
	// accept, at most one has that counter; the mac covers the full slot
	// number, so a cookie from 32 slots ago does not pass as a current one.
	slot := slotOf(now)
	if uint32(slot)&31 != cookie>>cookieSlotShift {
		slot--
		if uint32(slot)&31 != cookie>>cookieSlotShift {
			return CookieOptions{}, false
		}
	}
	meta := cookie >> cookieWSShift & cookieMetaMask
	mac := sc.mac(local, remote, ack.DstPort, ack.SrcPort, ack.Seq-1, slot, meta)
	if mac != cookie&cookieMACMask {
		return CookieOptions{}, false
	}
	return CookieOptions{
		MSS:    mssTable(local)[meta>>(cookieMSSShift-cookieWSShift)],
		WScale: int(meta&0xf) - 1,
	}, true
}

// slotOf is the number of the 64-second slot now falls in.
func slotOf(now time.Duration) int64 { return int64(now / cookieSlot) }

// mssIndex returns the index of the largest table value not above mss.
// An MSS below the smallest entry still gets 536, as Linux does: RFC 9293
// §3.7.1 makes 536 the MSS every host must accept without the option, so a
// peer asking for less is broken or hostile, and it is not worth a bit.
func mssIndex(table *[8]int, mss int) int {
	i := len(table) - 1
	for i > 0 && table[i] > mss {
		i--
	}
	return i
}

// wscaleField encodes the peer's window scale option as shift+1, 0 for
// none. RFC 7323 §2.3: a shift above 14 is treated as 14.
func wscaleField(o *Options) uint32 {
	if !o.HasWScale {
		return 0
	}
	return uint32(min(max(o.WScale, 0), 14)) + 1
}

// mac is the 20-bit keyed hash of a cookie. Every field has a fixed width,
// so two different inputs can never be laid out as the same bytes; the
// buffer lives on the stack, so there is no allocation.
//
// Why SipHash rather than hash/maphash (which isn.go uses): an attacker
// chooses the inputs (his own SYNs) and sees the outputs (our SYN+ACKs), as
// many as he likes, then tries to forge a cookie for a tuple he cannot
// receive on. That is the setting a MAC is built for, and SipHash-2-4 is a
// keyed pseudorandom function designed for short inputs like this one
// (Aumasson and Bernstein, 2012; Linux keys its SYN cookies with it), while
// maphash's documentation disclaims cryptographic strength. HMAC-SHA256
// would also do, but it is slower and allocates, on the very path a flood
// hammers.
func (sc *SynCookies) mac(local, remote netip.Addr, lport, rport uint16, irs Seq, slot int64, meta uint32) uint32 {
	// Addresses of both families are laid out as 16 bytes (IPv4 as
	// v4-mapped), so the layout stays fixed-width.
	var m [49]byte
	l, r := local.As16(), remote.As16()
	copy(m[0:16], l[:])
	copy(m[16:32], r[:])
	binary.BigEndian.PutUint16(m[32:], lport)
	binary.BigEndian.PutUint16(m[34:], rport)
	binary.BigEndian.PutUint32(m[36:], uint32(irs))
	binary.BigEndian.PutUint64(m[40:], uint64(slot))
	m[48] = byte(meta)
	return uint32(siphash24(sc.k0, sc.k1, m[:])) & cookieMACMask
}

// siphash24 is SipHash-2-4 (Aumasson and Bernstein, "SipHash: a fast
// short-input PRF", 2012) with the key k0||k1 (each read little-endian from
// the 16 key bytes) over msg: two rounds per 8-byte word, four to finish.
func siphash24(k0, k1 uint64, msg []byte) uint64 {
	// The constants spell "somepseudorandomlygeneratedbytes".
	v0 := k0 ^ 0x736f6d6570736575
	v1 := k1 ^ 0x646f72616e646f6d
	v2 := k0 ^ 0x6c7967656e657261
	v3 := k1 ^ 0x7465646279746573

	n := len(msg)
	for ; len(msg) >= 8; msg = msg[8:] {
		m := binary.LittleEndian.Uint64(msg)
		v3 ^= m
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
		v0 ^= m
	}
	// The last word holds the leftover bytes and, in its top byte, the
	// message length mod 256, so messages differing only in trailing zero
	// bytes still hash differently.
	last := uint64(n) << 56
	for i, b := range msg {
		last |= uint64(b) << (8 * i)
	}
	v3 ^= last
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	v0 ^= last

	v2 ^= 0xff
	for range 4 {
		v0, v1, v2, v3 = sipRound(v0, v1, v2, v3)
	}
	return v0 ^ v1 ^ v2 ^ v3
}

// sipRound is SipHash's ARX round: additions, rotations and xors that mix
// the four state words into each other.
func sipRound(v0, v1, v2, v3 uint64) (uint64, uint64, uint64, uint64) {
	v0 += v1
	v1 = bits.RotateLeft64(v1, 13)
	v1 ^= v0
	v0 = bits.RotateLeft64(v0, 32)
	v2 += v3
	v3 = bits.RotateLeft64(v3, 16)
	v3 ^= v2
	v0 += v3
	v3 = bits.RotateLeft64(v3, 21)
	v3 ^= v0
	v2 += v1
	v1 = bits.RotateLeft64(v1, 17)
	v1 ^= v2
	v2 = bits.RotateLeft64(v2, 32)
	return v0, v1, v2, v3
}
