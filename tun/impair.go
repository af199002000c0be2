package tun

import (
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultImpairLimit is how many packets one impaired direction holds at
// once when Impairment.Limit is 0: enough for a bandwidth-delay product of
// about 50 Mbit/s × 1 s at 1500 bytes, small enough that a runaway sender
// cannot exhaust memory.
const DefaultImpairLimit = 4096

// reorderHold is how long a held-back packet waits, after it was due, for
// ReorderGap later packets to overtake it. Without it the last packet of a
// burst would be stuck until the next burst; with it that packet is
// delivered late but in order. 10 ms is long next to the packet spacing of
// a bulk transfer and short next to any RTO, so a timed-out hold looks like
// a little extra delay, never like a loss.
const reorderHold = 10 * time.Millisecond

// Limits on the configuration, so a typo cannot overflow the scheduler's
// nanosecond arithmetic or allocate without bound.
const (
	maxImpairDelay = time.Hour
	maxReorderGap  = 1024
	maxImpairLimit = 1 << 20
	maxImpairRate  = 1e12 // bytes/s, 8 Tbit/s
)

// PCG stream constants: each direction has a generator of its own, so the
// decisions for the packets going one way do not depend on how many went
// the other way.
const (
	streamIn  = 0x74756e642d696e // "tund-in"
	streamOut = 0x74756e642d6f7574
)

var errImpairClosed = fmt.Errorf("tun: impair: %w", net.ErrClosed)

// Impairment describes what happens to the packets of one direction, in the
// spirit of Linux netem but reproducible: every random decision comes from
// a PCG generator seeded by ImpairConfig.Seed, and every packet consumes
// the same number of draws whatever happens to it. So with one seed the
// same packets are lost in every run, and turning on jitter, duplication or
// corruption does not change which packets are lost.
//
// A packet goes through the knobs in this order: Loss, Limit, Duplicate,
// Corrupt, then Rate, Delay and Jitter decide when it is due, then Reorder
// may hold it back. The zero Impairment does nothing, and a direction
// with nothing to do is a direct pass-through that costs nothing.
type Impairment struct {
	// Loss is the probability (0..1) that a packet is dropped. Random loss
	// exercises retransmission: the RTO, fast retransmit and SACK
	// recovery.
	Loss float64
	// Duplicate is the probability (0..1) that a packet is delivered
	// twice, the copy right after the original. Duplicates exercise the
	// receiver's handling of old segments and the sender's of duplicate
	// ACKs.
	Duplicate float64
	// Reorder is the probability (0..1) that a packet is held back until
	// ReorderGap later packets have overtaken it. Reordering exercises the
	// reassembly queue and shows how easily reordering fakes a loss.
	Reorder float64
	// ReorderGap is how many later packets overtake a held one; 0 means 1.
	// It is fixed rather than random so an experiment can aim: a gap of 3
	// or more makes the receiver send 3 duplicate ACKs, a spurious fast
	// retransmit, and a gap of 1 or 2 must not. Lost packets and held
	// packets do not count as overtaking; a duplicate counts once. A held
	// packet that has not been overtaken ReorderGap times 10 ms after it
	// was due is released anyway, late but in order.
	ReorderGap int
	// Delay is a fixed one-way delay added to every packet. With the other
	// direction's it sets the base RTT the estimator should converge to.
	Delay time.Duration
	// Jitter adds a uniformly random extra delay in [0, Jitter) to each
	// packet. It never reorders: a packet is not delivered before one
	// offered earlier, as on a FIFO link whose latency varies, so (unlike
	// netem) a packet that draws less delay than its predecessor waits for
	// it, and closely spaced packets are skewed towards the larger delays.
	// Reordering is Reorder's job alone, so the two can be studied apart.
	// Jitter exercises RTTVAR and the RTO's margin over SRTT.
	Jitter time.Duration
	// Corrupt is the probability (0..1) that one random bit of a packet is
	// flipped, in the wrapper's copy, never in the caller's buffer. The
	// Internet checksum always catches a single flipped bit, so corruption
	// exercises the receivers' checksums: tund drops such packets and
	// counts them by reason, and to TCP they are losses. In an IPv6
	// packet, whose header has no checksum, the bit is never one of the
	// 36 that no checksum covers (Traffic Class, Flow Label, Hop Limit),
	// so there too every corrupted packet is one the receiver drops.
	Corrupt float64
	// Rate limits the direction to Rate bytes per second; 0 means no
	// limit. Each packet occupies the link for its length divided by Rate
	// after the packet before it, and packets offered faster wait, up to
	// Limit of them, like at a bottleneck router; Delay and Jitter are
	// added after that serialisation. Rate exercises congestion control;
	// with a large Limit it shows bufferbloat, with a small one loss.
	Rate int64
	// Limit is the most packets the direction holds at once (waiting for
	// their delay, for the rate limit or for reordering, or being
	// delivered); beyond it packets are dropped and counted as Overflow.
	// 0 means DefaultImpairLimit. With Rate it is the bottleneck's buffer.
	Limit int
}

// active reports whether m does anything to packets. Limit and ReorderGap
// alone change nothing.
func (m Impairment) active() bool {
	return m.Loss != 0 || m.Duplicate != 0 || m.Reorder != 0 || m.Corrupt != 0 ||
		m.Delay != 0 || m.Jitter != 0 || m.Rate != 0
}

// problem reports the first out-of-range field of m: its Go name, its
// ParseImpairment key, its value and what would be accepted.
func (m Impairment) problem() (field, key string, value any, want string, bad bool) {
	probs := []struct {
		field, key string
		v          float64
	}{{"Loss", "loss", m.Loss}, {"Duplicate", "dup", m.Duplicate}, {"Reorder", "reorder", m.Reorder}, {"Corrupt", "corrupt", m.Corrupt}}
	for _, p := range probs {
		if !(p.v >= 0 && p.v <= 1) { // also catches NaN
			return p.field, p.key, p.v, "0..1 (0%..100%)", true
		}
	}
	if m.ReorderGap < 0 || m.ReorderGap > maxReorderGap {
		return "ReorderGap", "gap", m.ReorderGap, fmt.Sprintf("0..%d", maxReorderGap), true
	}
	if m.Delay < 0 || m.Delay > maxImpairDelay {
		return "Delay", "delay", m.Delay, "0..1h", true
	}
	if m.Jitter < 0 || m.Jitter > maxImpairDelay {
		return "Jitter", "jitter", m.Jitter, "0..1h", true
	}
	if m.Rate < 0 || m.Rate > maxImpairRate {
		return "Rate", "rate", m.Rate, "0..1e12 bytes/s (0: no limit)", true
	}
	if m.Limit < 0 || m.Limit > maxImpairLimit {
		return "Limit", "limit", m.Limit, fmt.Sprintf("0..%d packets (0: %d)", maxImpairLimit, DefaultImpairLimit), true
	}
	return "", "", nil, "", false
}

// ImpairConfig configures Impair.
type ImpairConfig struct {
	// Seed seeds the random decisions. The same seed, configuration and
	// sequence of packets give the same losses, duplicates, held-back
	// packets and flipped bits in every run. When a delayed packet is
	// actually delivered depends on the Go scheduler and is not
	// reproducible to the microsecond.
	Seed uint64
	// In impairs the packets Read from the device, on their way to the
	// stack; Out impairs the packets Written to it, on their way to the
	// network. Impairing both halves the RTT Delay that adds up to.
	In, Out Impairment
}

// ImpairCounts counts what one direction of an Impaired did. Once the
// direction is idle, Packets - Lost - Overflow + Duplicated equals
// Delivered + Errors.
type ImpairCounts struct {
	Packets    uint64 // offered: Written (Out) or read from the device (In)
	Delivered  uint64 // written to the device (Out) or returned by Read (In); a duplicated packet counts twice
	Lost       uint64 // dropped by Loss
	Overflow   uint64 // dropped because Limit packets were already held
	Duplicated uint64 // delivered twice
	Reordered  uint64 // held back by Reorder
	// HoldTimeouts counts held packets released because ReorderGap later
	// packets did not overtake them in time (late, but in order): a
	// delay no reordering window shorter than the hold can tell from a
	// loss.
	HoldTimeouts uint64
	Corrupted    uint64 // had one bit flipped
	Errors       uint64 // Out only: delayed writes the device refused, too late to tell the caller
}

// ImpairStats is what Impaired.Stats reports. A direction without
// impairment is a direct pass-through and counts nothing.
type ImpairStats struct {
	In, Out ImpairCounts
}

// Impaired is a Device that impairs the packets of another; make one with
// Impair.
type Impaired struct {
	dev   Device
	mtu   int
	epoch time.Time  // lane times are nanoseconds since epoch, on the monotonic clock
	in    *direction // nil: Read passes straight through
	out   *direction // nil: Write passes straight through

	closed    atomic.Bool
	done      chan struct{}
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	readMu    sync.Mutex  // one Read waits on the In lane at a time
	readTimer *time.Timer // owned by the Read holding readMu
}

// direction is one impaired direction: its lane and the goroutine hand-off.
type direction struct {
	mu   sync.Mutex
	lane *lane
	wake chan struct{} // capacity 1: the lane's earliest due time moved up, or the device failed
	err  error         // In: the device's Read error that stopped the reader
}

// Impair wraps dev so that the packets read from it and written to it are
// impaired as cfg says. An impaired direction runs one goroutine: for Out
// it delivers queued packets to dev when they fall due, so Write never
// waits for a delay; for In it reads dev into the queue, from which Read
// takes packets when they fall due. Close closes dev and stops both.
// Impair returns an error naming the first out-of-range field.
func Impair(dev Device, cfg ImpairConfig) (*Impaired, error) {
	if dev == nil {
		return nil, errors.New("tun: impair: nil device")
	}
	for _, d := range []struct {
		name string
		m    Impairment
	}{{"In", cfg.In}, {"Out", cfg.Out}} {
		if field, _, v, want, bad := d.m.problem(); bad {
			return nil, fmt.Errorf("tun: impair: %s.%s = %v, want %s", d.name, field, v, want)
		}
	}
	mtu := dev.MTU()
	if mtu <= 0 {
		return nil, fmt.Errorf("tun: impair: device MTU %d", mtu)
	}
	d := &Impaired{dev: dev, mtu: mtu, epoch: time.Now(), done: make(chan struct{})}
	if cfg.In.active() {
		d.in = &direction{lane: newLane(cfg.In, mtu, cfg.Seed, streamIn), wake: make(chan struct{}, 1)}
		d.readTimer = time.NewTimer(time.Hour)
		d.readTimer.Stop()
		d.wg.Add(1)
		go d.ingest()
	}
	if cfg.Out.active() {
		d.out = &direction{lane: newLane(cfg.Out, mtu, cfg.Seed, streamOut), wake: make(chan struct{}, 1)}
		d.wg.Add(1)
		go d.deliver()
	}
	return d, nil
}

// now is the lanes' clock.
func (d *Impaired) now() int64 { return int64(time.Since(d.epoch)) }

// signal wakes the direction's waiter without blocking; a wake-up already
// pending is enough.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}

// Read implements Device: it returns the next In packet once it is due,
// truncated to len(p). After Close it returns an error wrapping
// net.ErrClosed; if the device's Read fails, Read returns that error once
// the packets already queued are delivered.
func (d *Impaired) Read(p []byte) (int, error) {
	if d.in == nil {
		return d.dev.Read(p)
	}
	d.readMu.Lock()
	defer d.readMu.Unlock()
	dir := d.in
	for {
		if d.closed.Load() {
			return 0, errImpairClosed
		}
		dir.mu.Lock()
		i, ok, wait := dir.lane.next(d.now())
		if ok {
			s := &dir.lane.slots[i]
			n := copy(p, s.buf[:s.n])
			dir.lane.take(i)
			dir.mu.Unlock()
			return n, nil
		}
		err := dir.err
		dir.mu.Unlock()
		if err != nil && wait < 0 {
			return 0, err
		}
		if wait >= 0 {
			d.readTimer.Reset(time.Duration(wait))
		}
		select {
		case <-dir.wake:
		case <-d.readTimer.C:
		case <-d.done:
		}
	}
}

// Write implements Device. On an impaired direction it queues a copy of p
// and returns at once, without waiting for any delay: a packet lost,
// dropped or refused later by the device is still reported as written, as
// on a real link.
func (d *Impaired) Write(p []byte) (int, error) {
	if d.out == nil {
		return d.dev.Write(p)
	}
	if len(p) > d.mtu {
		return 0, ErrTooBig
	}
	if d.closed.Load() {
		return 0, errImpairClosed
	}
	now := d.now()
	dir := d.out
	dir.mu.Lock()
	before := dir.lane.earliest()
	dir.lane.submit(p, now)
	after := dir.lane.earliest()
	dir.mu.Unlock()
	if after >= 0 && (before < 0 || after < before) {
		signal(dir.wake)
	}
	return len(p), nil
}

// MTU implements Device: it is the wrapped device's.
func (d *Impaired) MTU() int { return d.mtu }

// Close implements Device: it closes the wrapped device, discards the
// packets still queued, stops the goroutines and waits for them. A
// pending Read returns an error wrapping net.ErrClosed.
func (d *Impaired) Close() error {
	d.closeOnce.Do(func() {
		d.closed.Store(true)
		close(d.done)
		d.closeErr = d.dev.Close() // unblocks ingest's Read
		d.wg.Wait()
	})
	return d.closeErr
}

// Stats returns the counts so far, per direction.
func (d *Impaired) Stats() ImpairStats {
	var s ImpairStats
	for _, x := range []struct {
		dir *direction
		c   *ImpairCounts
	}{{d.in, &s.In}, {d.out, &s.Out}} {
		if x.dir != nil {
			x.dir.mu.Lock()
			*x.c = x.dir.lane.st
			x.dir.mu.Unlock()
		}
	}
	return s
}

// ingest is the In goroutine: it reads packets from the device into the In
// lane as fast as they come, so their delay runs from when they arrived.
func (d *Impaired) ingest() {
	defer d.wg.Done()
	dir := d.in
	buf := make([]byte, d.mtu)
	for {
		n, err := d.dev.Read(buf)
		if err != nil {
			dir.mu.Lock()
			dir.err = err
			dir.mu.Unlock()
			signal(dir.wake)
			return
		}
		now := d.now()
		dir.mu.Lock()
		before := dir.lane.earliest()
		dir.lane.submit(buf[:n], now)
		after := dir.lane.earliest()
		dir.mu.Unlock()
		if after >= 0 && (before < 0 || after < before) {
			signal(dir.wake)
		}
	}
}

// deliver is the Out goroutine: it writes each queued packet to the device
// when it falls due, outside the lock so Write is never held up by the
// device.
func (d *Impaired) deliver() {
	defer d.wg.Done()
	dir := d.out
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	for {
		select {
		case <-d.done:
			return
		default:
		}
		dir.mu.Lock()
		i, ok, wait := dir.lane.next(d.now())
		var pkt []byte
		var copies int
		if ok {
			s := &dir.lane.slots[i]
			pkt, copies = s.buf[:s.n], s.copies
			dir.lane.dequeue() // the slot stays ours until release
		}
		dir.mu.Unlock()
		if ok {
			var delivered, failed uint64
			for range copies {
				if _, err := d.dev.Write(pkt); err != nil {
					failed++
				} else {
					delivered++
				}
			}
			dir.mu.Lock()
			dir.lane.release(i)
			dir.lane.st.Delivered += delivered
			dir.lane.st.Errors += failed
			dir.mu.Unlock()
			continue
		}
		if wait >= 0 {
			timer.Reset(time.Duration(wait))
		}
		select {
		case <-dir.wake:
		case <-timer.C:
		case <-d.done:
			return
		}
	}
}

// slot is one queued packet in a lane's preallocated storage.
type slot struct {
	buf    []byte // MTU bytes, reused
	n      int
	copies int    // deliveries left: 2 for a duplicated packet
	at     int64  // when it is due, in ns on the lane's clock
	seq    uint64 // order in which it was queued, to break ties in at
	passes uint64 // held packets only: lane.passes when it was held back
}

// corruptBit chooses, for the draw u, the bit of the packet p that
// Corrupt flips, numbered as bit%8 of byte bit/8 (least significant
// first): any bit of an IPv4 packet, whose header checksum covers its
// header, or of anything else. In an IPv6 packet (version 6, 40 bytes or
// more) it skips the fixed header's bits that neither a header checksum
// (there is none, RFC 8200 §3) nor the upper-layer pseudo-header (RFC 8200
// §8.1: addresses, length, next header) covers: Traffic Class and Flow
// Label (the low nibble of byte 0 and bytes 1 to 3) and Hop Limit (byte
// 7). A flip there would reach the receiver's TCP unnoticed. The Version
// nibble (byte 0's high bits, here bits 4 to 7) stays eligible: a packet
// of the wrong version is dropped too.
func corruptBit(p []byte, u uint64) uint64 {
	n := uint64(len(p)) * 8
	if len(p) < 40 || p[0]>>4 != 6 {
		return u % n
	}
	const unchecked = 4 + 24 + 8
	b := u % (n - unchecked)
	switch {
	case b < 4:
		return 4 + b // Version
	case b < 4+24:
		return 32 + (b - 4) // Payload Length, Next Header
	default:
		return 64 + (b - 4 - 24) // the addresses and all after them
	}
}

// lane is the impairment of one direction as a pure function of the
// packets offered and the time: submit takes a packet and decides its
// fate, next says which packet is due now or how long until one is. It
// owns no goroutine and reads no clock, so it can be tested with made-up
// times. Slots are allocated on first need, up to the limit, and reused
// through the free list, so the steady state allocates nothing.
type lane struct {
	imp   Impairment
	gap   uint64
	limit int
	mtu   int
	rng   rand.PCG

	slots []slot
	free  []int32
	used  int     // slots not on the free list
	queue []int32 // min-heap on (at, seq): packets waiting to fall due
	held  []int32 // ring of packets held back by Reorder, oldest first
	hHead int
	hN    int

	seq    uint64 // next slot.seq
	passes uint64 // packets queued without being held: each overtakes every held packet
	busy   int64  // Rate: when the link finishes sending what it has
	last   int64  // latest due time so far: jitter never reorders
	st     ImpairCounts
}

func newLane(m Impairment, mtu int, seed, stream uint64) *lane {
	l := &lane{imp: m, gap: uint64(max(m.ReorderGap, 1)), limit: m.Limit, mtu: mtu}
	if l.limit == 0 {
		l.limit = DefaultImpairLimit
	}
	l.rng.Seed(seed, stream)
	if m.Reorder > 0 {
		l.held = make([]int32, l.limit) // held ≤ used ≤ limit
	}
	return l
}

// chance turns a uniform draw into a decision with probability p.
func chance(u uint64, p float64) bool {
	return float64(u>>11)*(1.0/(1<<53)) < p
}

// submit offers packet p to the lane at time now.
func (l *lane) submit(p []byte, now int64) {
	l.st.Packets++
	// A fixed number of draws per packet, whatever happens to it, so the
	// fate of packet k depends only on the seed and k, not on the other
	// knobs or on what happened to earlier packets.
	var u [6]uint64
	for k := range u {
		u[k] = l.rng.Uint64()
	}
	if chance(u[0], l.imp.Loss) {
		l.st.Lost++
		return
	}
	i, ok := l.alloc()
	if !ok {
		l.st.Overflow++
		return
	}
	s := &l.slots[i]
	s.n = copy(s.buf, p)
	s.copies = 1
	if chance(u[1], l.imp.Duplicate) {
		s.copies = 2
		l.st.Duplicated++
	}
	if chance(u[2], l.imp.Corrupt) && s.n > 0 {
		bit := corruptBit(s.buf[:s.n], u[3])
		s.buf[bit/8] ^= 1 << (bit % 8)
		l.st.Corrupted++
	}
	t := now
	if l.imp.Rate > 0 {
		// Serialisation: the packet starts when the link is free and
		// occupies it for n/Rate.
		t = max(t, l.busy) + int64(s.n)*int64(time.Second)/l.imp.Rate
		l.busy = t
	}
	t += int64(l.imp.Delay)
	if l.imp.Jitter > 0 {
		t += int64(u[4] % uint64(l.imp.Jitter))
	}
	t = max(t, l.last) // FIFO: jitter alone never reorders
	l.last = t
	s.at = t
	if chance(u[5], l.imp.Reorder) {
		s.passes = l.passes
		l.held[(l.hHead+l.hN)%len(l.held)] = i
		l.hN++
		l.st.Reordered++
		return
	}
	l.push(i)
	l.passes++
	// The gap is the same for every held packet and they were held in
	// order, so they are released in order: only the oldest need be
	// checked. A released packet goes right behind the one that completed
	// its gap.
	for l.hN > 0 {
		j := l.held[l.hHead]
		if l.passes-l.slots[j].passes < l.gap {
			break
		}
		l.unhold()
		l.slots[j].at = t
		l.push(j)
	}
}

// next returns the packet due at now, if any, leaving it queued; otherwise
// it returns how many ns until one may be due, or -1 if the lane is empty.
// Held packets whose hold has timed out are released first.
func (l *lane) next(now int64) (i int32, ok bool, wait int64) {
	for l.hN > 0 {
		j := l.held[l.hHead]
		deadline := l.slots[j].at + int64(reorderHold)
		if deadline > now {
			break
		}
		l.unhold()
		l.st.HoldTimeouts++
		l.slots[j].at = deadline
		l.push(j)
	}
	if len(l.queue) > 0 && l.slots[l.queue[0]].at <= now {
		return l.queue[0], true, 0
	}
	e := l.earliest()
	if e < 0 {
		return 0, false, -1
	}
	return 0, false, max(e-now, 0)
}

// earliest is when the lane next needs attention: the first queued packet
// falls due or the oldest hold times out; -1 if it holds nothing.
func (l *lane) earliest() int64 {
	e := int64(-1)
	if len(l.queue) > 0 {
		e = l.slots[l.queue[0]].at
	}
	if l.hN > 0 {
		if d := l.slots[l.held[l.hHead]].at + int64(reorderHold); e < 0 || d < e {
			e = d
		}
	}
	return e
}

// take delivers one copy of packet i, which next returned: the last copy
// frees it.
func (l *lane) take(i int32) {
	l.st.Delivered++
	s := &l.slots[i]
	if s.copies--; s.copies == 0 {
		l.dequeue()
		l.release(i)
	}
}

func (l *lane) alloc() (int32, bool) {
	if l.used == l.limit {
		return 0, false
	}
	l.used++
	if n := len(l.free); n > 0 {
		i := l.free[n-1]
		l.free = l.free[:n-1]
		return i, true
	}
	l.slots = append(l.slots, slot{buf: make([]byte, l.mtu)})
	return int32(len(l.slots) - 1), true
}

func (l *lane) release(i int32) {
	l.free = append(l.free, i)
	l.used--
}

func (l *lane) unhold() {
	l.hHead = (l.hHead + 1) % len(l.held)
	l.hN--
}

func (l *lane) less(a, b int32) bool {
	x, y := &l.slots[a], &l.slots[b]
	return x.at < y.at || x.at == y.at && x.seq < y.seq
}

// push queues slot i by its due time.
func (l *lane) push(i int32) {
	l.slots[i].seq = l.seq
	l.seq++
	l.queue = append(l.queue, i)
	for c := len(l.queue) - 1; c > 0; {
		p := (c - 1) / 2
		if !l.less(l.queue[c], l.queue[p]) {
			break
		}
		l.queue[c], l.queue[p] = l.queue[p], l.queue[c]
		c = p
	}
}

// dequeue removes the earliest packet from the queue (its slot is not
// freed).
func (l *lane) dequeue() {
	q := l.queue
	last := len(q) - 1
	q[0] = q[last]
	q = q[:last]
	for p := 0; ; {
		c := 2*p + 1
		if c >= len(q) {
			break
		}
		if c+1 < len(q) && l.less(q[c+1], q[c]) {
			c++
		}
		if !l.less(q[c], q[p]) {
			break
		}
		q[c], q[p] = q[p], q[c]
		p = c
	}
	l.queue = q
}

// impairKeys lists ParseImpairment's keys, in String's order.
const impairKeys = "loss, dup, reorder, gap, delay, jitter, corrupt, rate, limit"

// ParseImpairment parses an impairment as given to tund's flags: comma-
// separated key=value pairs, e.g.
//
//	loss=1%,dup=0.5%,reorder=2%,gap=3,delay=10ms,jitter=2ms,corrupt=0.1%,rate=100mbit,limit=1000
//
// Probabilities (loss, dup, reorder, corrupt) are a percentage ("1%") or a
// fraction ("0.01"); delay and jitter are Go durations; rate is bytes per
// second, or bits per second with a kbit, mbit or gbit suffix; gap and
// limit are whole numbers. The empty string and "none" mean no impairment.
// An error is one line naming the bad key and value. Impairment.String is
// the inverse.
func ParseImpairment(s string) (Impairment, error) {
	var m Impairment
	s = strings.TrimSpace(s)
	if s == "" || s == "none" {
		return m, nil
	}
	raw := make(map[string]string)
	for item := range strings.SplitSeq(s, ",") {
		item = strings.TrimSpace(item)
		if item == "" {
			continue
		}
		key, val, ok := strings.Cut(item, "=")
		key, val = strings.TrimSpace(key), strings.TrimSpace(val)
		if !ok {
			return Impairment{}, fmt.Errorf("tun: impairment %q: want key=value with key one of %s", item, impairKeys)
		}
		var err error
		switch key {
		case "loss":
			m.Loss, err = parseProb(val)
		case "dup":
			m.Duplicate, err = parseProb(val)
		case "reorder":
			m.Reorder, err = parseProb(val)
		case "corrupt":
			m.Corrupt, err = parseProb(val)
		case "gap":
			m.ReorderGap, err = parseCount(val)
		case "limit":
			m.Limit, err = parseCount(val)
		case "delay":
			m.Delay, err = parseDuration(val)
		case "jitter":
			m.Jitter, err = parseDuration(val)
		case "rate":
			m.Rate, err = parseRate(val)
		default:
			return Impairment{}, fmt.Errorf("tun: impairment: unknown key %q, want one of %s", key, impairKeys)
		}
		if _, dup := raw[key]; dup {
			return Impairment{}, fmt.Errorf("tun: impairment: %s given twice", key)
		}
		raw[key] = val
		if err != nil {
			return Impairment{}, fmt.Errorf("tun: impairment %s=%q: %v", key, val, err)
		}
	}
	if _, key, _, want, bad := m.problem(); bad {
		return Impairment{}, fmt.Errorf("tun: impairment %s=%q: want %s", key, raw[key], want)
	}
	return m, nil
}

// parseProb parses "1.5%" or "0.015". A percentage is parsed as the
// decimal it is ("1.5e-2"), not as 1.5/100, so "0.1%" is exactly 0.001.
func parseProb(v string) (float64, error) {
	const want = "want a probability such as 1% or 0.01"
	pct, ok := strings.CutSuffix(v, "%")
	if !ok {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return 0, errors.New(want)
		}
		return f, nil
	}
	if strings.ContainsAny(pct, "eE") {
		f, err := strconv.ParseFloat(pct, 64)
		if err != nil {
			return 0, errors.New(want)
		}
		return f / 100, nil
	}
	f, err := strconv.ParseFloat(pct+"e-2", 64)
	if err != nil {
		return 0, errors.New(want)
	}
	return f, nil
}

func parseCount(v string) (int, error) {
	n, err := strconv.Atoi(v)
	if err != nil {
		return 0, errors.New("want a whole number")
	}
	return n, nil
}

func parseDuration(v string) (time.Duration, error) {
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, errors.New("want a duration such as 10ms")
	}
	return d, nil
}

// rateUnits are the bit-rate suffixes ParseImpairment accepts, largest
// first, as tc(8) spells them.
var rateUnits = []struct {
	suffix string
	bits   int64
}{{"gbit", 1e9}, {"mbit", 1e6}, {"kbit", 1e3}}

func parseRate(v string) (int64, error) {
	const want = "want bytes/s such as 125000, or bits/s such as 1mbit"
	num, scale := v, 1.0
	for _, u := range rateUnits {
		if n, ok := strings.CutSuffix(strings.ToLower(v), u.suffix); ok {
			num, scale = n, float64(u.bits)/8
			break
		}
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, errors.New(want)
	}
	r := math.Round(f * scale)
	switch {
	case math.IsNaN(r) || r < math.MinInt64 || r > math.MaxInt64:
		return 0, errors.New(want)
	case f > 0 && r < 1:
		return 0, errors.New("want at least 1 byte/s")
	}
	return int64(r), nil
}

// String formats m as ParseImpairment reads it, omitting zero fields:
// "none" for the zero Impairment. For every valid m,
// ParseImpairment(m.String()) returns m.
func (m Impairment) String() string {
	var b []string
	add := func(key, val string) { b = append(b, key+"="+val) }
	for _, p := range []struct {
		key string
		v   float64
	}{{"loss", m.Loss}, {"dup", m.Duplicate}, {"reorder", m.Reorder}} {
		if p.v != 0 {
			add(p.key, formatProb(p.v))
		}
	}
	if m.ReorderGap != 0 {
		add("gap", strconv.Itoa(m.ReorderGap))
	}
	if m.Delay != 0 {
		add("delay", m.Delay.String())
	}
	if m.Jitter != 0 {
		add("jitter", m.Jitter.String())
	}
	if m.Corrupt != 0 {
		add("corrupt", formatProb(m.Corrupt))
	}
	if m.Rate != 0 {
		add("rate", formatRate(m.Rate))
	}
	if m.Limit != 0 {
		add("limit", strconv.Itoa(m.Limit))
	}
	if len(b) == 0 {
		return "none"
	}
	return strings.Join(b, ",")
}

// formatProb writes p as a percentage with the shortest digits that parse
// back to p, by moving the decimal point of p's shortest representation
// two places; tiny or odd values fall back to a plain fraction.
func formatProb(p float64) string {
	e := strconv.FormatFloat(p, 'e', -1, 64) // d.ddde±XX
	mant, exp, ok := strings.Cut(e, "e")
	x, err := strconv.Atoi(exp)
	if !ok || err != nil || p < 0 || x+2 < -6 || x+2 > 6 {
		return strconv.FormatFloat(p, 'g', -1, 64)
	}
	digits := strings.Replace(mant, ".", "", 1)
	x += 2 // the percentage is d.ddd × 10^x
	var s string
	switch {
	case x < 0:
		s = "0." + strings.Repeat("0", -x-1) + digits
	case x+1 >= len(digits):
		s = digits + strings.Repeat("0", x+1-len(digits))
	default:
		s = digits[:x+1] + "." + digits[x+1:]
	}
	return s + "%"
}

// formatRate writes r in the largest bit-rate unit that divides it
// exactly, or in bytes/s.
func formatRate(r int64) string {
	if r > 0 && r <= math.MaxInt64/8 {
		for _, u := range rateUnits {
			if r*8%u.bits == 0 {
				return strconv.FormatInt(r*8/u.bits, 10) + u.suffix
			}
		}
	}
	return strconv.FormatInt(r, 10)
}
