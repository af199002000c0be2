package stack

import (
	"net/netip"
	"runtime"
	"runtime/metrics"
	"sort"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/tcp"
	"github.com/tund-project/tund/window"
)

// ConnInfo describes one connection at a moment, for display.
type ConnInfo struct {
	Local, Remote netip.AddrPort
	tcp.Info
	// SynQueue is, for a listener, its SYN queue now: the connections
	// still in their handshake (SYN-RECEIVED), bounded by the backlog as
	// the accept queue is.
	SynQueue int
	// Note is what the application set with Conn.SetNote.
	Note string
}

// Connections returns a snapshot of every connection, listeners included
// (as LISTEN entries with a zero remote address, their accept queue's
// length as RecvQ and their backlog as SendQ), sorted by local then
// remote address.
func (s *Stack) Connections() []ConnInfo {
	var out []ConnInfo
	s.lmu.Lock()
	for k, l := range s.listeners {
		if l.keys[0] != k {
			continue // a listener of both families: shown once
		}
		// As ss shows a listener: Recv-Q is its accept queue now,
		// Send-Q its backlog. Its address is the one it is bound to:
		// the stack's own in its one family, [::] for both.
		l.mu.Lock()
		queued, half := len(l.queue), l.synq.len()
		l.mu.Unlock()
		out = append(out, ConnInfo{
			Local:    netip.AddrPortFrom(l.local, k.port),
			Info:     tcp.Info{State: tcp.Listen, RecvQ: queued, SendQ: l.backlog},
			SynQueue: half,
		})
	}
	s.lmu.Unlock()
	now := s.now()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		for key, rec := range sh.tw {
			out = append(out, ConnInfo{
				Local: s.localOf(key), Remote: key.remote(),
				Info: tcp.Info{
					State: tcp.TimeWait, SndNxt: rec.SndNxt, SndUna: rec.SndNxt, RcvNxt: rec.RcvNxt,
					Timer: "timewait", TimerAt: rec.Expires - now,
				},
			})
		}
		sh.mu.RUnlock()
	}
	for _, c := range s.allConns() {
		c.lock()
		if c.tcb != nil {
			ci := ConnInfo{
				Local:  s.localOf(c.key),
				Remote: c.key.remote(),
				Info:   c.tcb.Info(),
				Note:   c.note,
			}
			if ci.TimerAt != 0 {
				ci.TimerAt -= s.now() // report as time remaining
			}
			out = append(out, ci)
		}
		c.unlock()
	}
	sort.Slice(out, func(i, j int) bool {
		if c := out[i].Local.Compare(out[j].Local); c != 0 {
			return c < 0
		}
		return out[i].Remote.Compare(out[j].Remote) < 0
	})
	return out
}

// StateCounts returns how many connections are in each state (listeners
// count as LISTEN, TIME-WAIT table entries as TIME-WAIT). It is cheap
// enough to call with a hundred thousand TIME-WAIT entries.
func (s *Stack) StateCounts() map[tcp.State]int {
	counts := map[tcp.State]int{}
	s.lmu.Lock()
	for k, l := range s.listeners {
		if l.keys[0] == k { // once per listener, whatever its families
			counts[tcp.Listen]++
		}
	}
	s.lmu.Unlock()
	// Each shard's connections and TIME-WAIT entries are taken under its
	// lock in one go: a connection moves from one to the other under that
	// lock, so it is counted once (by its state, if it moves later), never
	// missed between a count of the table and a scan of the connections.
	var conns []*Conn
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.RLock()
		if n := len(sh.tw); n > 0 {
			counts[tcp.TimeWait] += n
		}
		for _, c := range sh.conns {
			conns = append(conns, c)
		}
		sh.mu.RUnlock()
	}
	for _, c := range conns {
		c.lock()
		if c.tcb != nil {
			counts[c.tcb.State()]++
		}
		c.unlock()
	}
	return counts
}

// Stats are the stack's counters.
type Stats struct {
	PacketsIn, PacketsOut   uint64
	SegmentsIn, SegmentsOut uint64
	// SuperSegmentsIn and SuperSegmentsOut count the TCP super-segments
	// among the packets, with a device with offloads (tun.Offloader):
	// each is one packet, and as many segments as it carries on the wire
	// (Linux counts InSegs and OutSegs so).
	SuperSegmentsIn, SuperSegmentsOut uint64
	// QueuePacketsIn counts the packets read from each of the device's
	// queues (tun.Multiqueue), in queue order; one entry for a device
	// with one queue. How evenly they spread is how well the readers
	// share the work.
	QueuePacketsIn            []uint64
	ResetsSent                uint64
	EchoReplies               uint64
	ICMPErrorsSent            uint64 // ICMPv6 Parameter Problems sent (RFC 8200 §4)
	ICMPErrorsLimited         uint64 // ICMP errors not sent: over the rate limit (RFC 4443 §2.4 (f))
	ActiveOpens, PassiveOpens uint64
	WriteErrors               uint64
	TimeWait                  uint64 // entries in the TIME-WAIT table now
	TimeWaitExpired           uint64 // entries that lived their full 2MSL
	TimeWaitReused            uint64 // tuples reopened early by a safe SYN
	SynCookiesSent            uint64
	SynCookiesValid           uint64 // connections made from a returned cookie
	ICMPErrors                uint64 // ICMP errors about our TCP segments (RFC 1122 §4.2.3.9)
	// Limits and what they hold now (docs/ARCHITECTURE.md "Limits").
	Connections      uint64 // in the connection table now (MaxConnections)
	ConnLimitHit     uint64 // dials refused and SYNs dropped at MaxConnections
	Orphans          uint64 // closed by the application, still finishing (MaxOrphans)
	OrphanOverflow   uint64 // reset at close because MaxOrphans was reached
	TimeWaitOverflow uint64 // connections closed without TIME-WAIT: the table was full (MaxTimeWait)
	Limits           Limits // the caps in force
	// Ring memory against MemLimit: allocated now, the limit, the
	// pressure level ("normal", "pressure", "exhausted"), how often
	// pressure began, and how often a ring was kept from growing.
	MemoryUsed           int64
	MemoryLimit          int64
	MemoryPressure       string
	MemoryPressureEvents uint64
	MemoryRefused        uint64
	// AcksRateLimited counts ACKs held back by a rate limit: answers to
	// unacceptable segments (tcp.Config.InvalidAckInterval, TIME-WAIT
	// included) and RFC 5961 challenge ACKs beyond their per-second cap.
	AcksRateLimited uint64
	// HalfOpenEvicted counts half-open connections a listener with a
	// full backlog gave up to make room for a new SYN (RFC 4987 §3.4).
	HalfOpenEvicted uint64
	// BacklogQueued counts segments (and ICMP errors) the reader queued
	// for a connection an application call held, instead of waiting.
	BacklogQueued uint64
	// The process the stack runs in, so that a look from outside (tund
	// stats -json) shows what connections cost: live heap objects in
	// bytes, and goroutines.
	HeapBytes  uint64
	Goroutines int
	// The tcp core's per-connection counters, summed over every
	// connection the stack has had, live or gone.
	Retransmits uint64 // segments sent again, for any reason
	Timeouts    uint64 // retransmission timeouts
	Recoveries  uint64 // fast recoveries entered
	Probes      uint64 // tail loss probes sent
	DSACKs      uint64 // D-SACKs received: segments the peer got twice (RFC 2883)
	Spurious    uint64 // loss episodes undone: every resend D-SACKed, or timestamps showed the originals arrived
	// Drops by reason: the IP layer's reasons by their names, plus
	// "tcp_options", "no_listener", "backlog_full" (a SYN, or a cookie's
	// ACK, that found the accept queue full), "syn_queue_full" (a SYN
	// that found the SYN queue full with cookies off and nothing old
	// enough to evict), "bad_syn_cookie", "out_of_window" (segments
	// failing a connection's sequence number test, old duplicates
	// included), "conn_backlog" (a busy connection's backlog was full),
	// "conn_limit" (SYNs at MaxConnections) and "rcv_no_room" (received
	// data the ring could not grow for: memory budget, or out-of-order
	// data landing too far ahead).
	Drops map[string]uint64
}

// Limits are the stack's resource caps in force (Config, defaults
// applied), reported with Stats so a reader can set usage against them.
type Limits struct {
	MaxConnections int
	MaxOrphans     int
	MaxTimeWait    int
	MemLimit       int64
	OrphanRetries  int
	MinPathMTU     int
}

// coreCounters are the tcp core's per-connection counters, summed.
type coreCounters struct {
	retransmits, timeouts, recoveries, probes, outOfWindow, acksLimited uint64
	dsacks, spurious                                                    uint64
	rcvNoRoom                                                           uint64
}

// add adds one connection's counters.
func (cc *coreCounters) add(t *tcp.Conn) {
	cc.retransmits += t.Retransmits
	cc.timeouts += t.Timeouts
	cc.recoveries += t.Recoveries
	cc.probes += t.Probes
	cc.dsacks += t.DSACKs
	cc.spurious += t.SpuriousUndone
	cc.outOfWindow += t.OutOfWindow
	cc.acksLimited += t.AcksLimited
	cc.rcvNoRoom += t.RcvNoRoom()
}

// retire adds the counters of c, which is leaving the connection table,
// to the stack's totals of gone connections. Called with c.mu held,
// right after c.removed is set.
func (s *Stack) retire(c *Conn) {
	var cc coreCounters
	cc.add(c.tcb)
	s.retiredMu.Lock()
	s.retiredSum.retransmits += cc.retransmits
	s.retiredSum.timeouts += cc.timeouts
	s.retiredSum.recoveries += cc.recoveries
	s.retiredSum.probes += cc.probes
	s.retiredSum.dsacks += cc.dsacks
	s.retiredSum.spurious += cc.spurious
	s.retiredSum.outOfWindow += cc.outOfWindow
	s.retiredSum.acksLimited += cc.acksLimited
	s.retiredSum.rcvNoRoom += cc.rcvNoRoom
	s.retiredGen++
	s.retiredMu.Unlock()
}

// connCounters sums the tcp core's counters over gone and live
// connections. A connection retired during the sum would be counted
// twice or not at all, so the sum is retried (a few times) until no
// connection retired meanwhile: the totals then never go backwards.
func (s *Stack) connCounters() coreCounters {
	for try := 0; ; try++ {
		s.retiredMu.Lock()
		sum, gen := s.retiredSum, s.retiredGen
		s.retiredMu.Unlock()
		for _, c := range s.allConns() {
			c.lock()
			if c.tcb != nil && !c.removed {
				sum.add(c.tcb)
			}
			c.unlock()
		}
		s.retiredMu.Lock()
		same := s.retiredGen == gen
		s.retiredMu.Unlock()
		if same || try == 3 {
			return sum
		}
	}
}

func (s *Stack) queuePacketsIn() []uint64 {
	n := make([]uint64, len(s.queues))
	for i, q := range s.queues {
		n[i] = q.in.Load()
	}
	return n
}

// Stats returns a snapshot of the counters.
func (s *Stack) Stats() Stats {
	st := Stats{
		PacketsIn: s.stats.packetsIn.Load(), PacketsOut: s.stats.packetsOut.Load(),
		SegmentsIn: s.stats.segmentsIn.Load(), SegmentsOut: s.stats.segmentsOut.Load(),
		SuperSegmentsIn: s.stats.superIn.Load(), SuperSegmentsOut: s.stats.superOut.Load(),
		QueuePacketsIn: s.queuePacketsIn(),
		ResetsSent:     s.stats.resetsSent.Load(), EchoReplies: s.stats.echoReplies.Load(),
		ICMPErrorsSent: s.stats.icmpErrorsSent.Load(), ICMPErrorsLimited: s.stats.icmpErrorsLimited.Load(),
		ActiveOpens: s.stats.activeOpens.Load(), PassiveOpens: s.stats.passiveOpens.Load(),
		WriteErrors: s.stats.writeErrors.Load(),
		TimeWait:    uint64(s.timeWaitCount()), TimeWaitExpired: s.stats.timeWaitExpired.Load(),
		TimeWaitReused: s.stats.timeWaitReused.Load(),
		SynCookiesSent: s.stats.synCookiesSent.Load(), SynCookiesValid: s.stats.synCookiesOK.Load(),
		ICMPErrors:           s.stats.icmpErrors.Load(),
		TimeWaitOverflow:     s.stats.timeWaitOverflow.Load(),
		Connections:          uint64(s.nConns.Load()),
		Orphans:              uint64(max(0, s.orphans.Load())),
		ConnLimitHit:         s.stats.connLimit.Load(),
		OrphanOverflow:       s.stats.orphanOverflow.Load(),
		MemoryUsed:           s.mem.Used(),
		MemoryLimit:          s.mem.Limit(),
		MemoryPressure:       memoryLevelName(s.mem.Level()),
		MemoryPressureEvents: s.mem.PressureEvents(),
		MemoryRefused:        s.mem.Refused(),
		Limits: Limits{
			MaxConnections: s.cfg.MaxConnections, MaxOrphans: s.cfg.MaxOrphans,
			MaxTimeWait: s.cfg.MaxTimeWait, MemLimit: s.cfg.MemLimit,
			OrphanRetries: s.tcpCfg.OrphanRetries, MinPathMTU: s.cfg.MinPathMTU,
		},
		HalfOpenEvicted: s.stats.halfOpenEvicted.Load(),
		BacklogQueued:   s.stats.backlogQueued.Load(),
		HeapBytes:       heapBytes(), Goroutines: runtime.NumGoroutine(),
		Drops: map[string]uint64{
			"tcp_options":    s.stats.badTCPOptions.Load(),
			"no_listener":    s.stats.noListener.Load(),
			"backlog_full":   s.stats.backlogFull.Load(),
			"syn_queue_full": s.stats.synQueueFull.Load(),
			"bad_syn_cookie": s.stats.synCookiesBad.Load(),
			"conn_backlog":   s.stats.backlogDrops.Load(),
			"conn_limit":     s.stats.connLimit.Load(),
		},
	}
	cc := s.connCounters()
	st.Retransmits, st.Timeouts, st.Recoveries, st.Probes = cc.retransmits, cc.timeouts, cc.recoveries, cc.probes
	st.DSACKs, st.Spurious = cc.dsacks, cc.spurious
	st.AcksRateLimited = cc.acksLimited + s.stats.acksLimited.Load()
	st.Drops["out_of_window"] = cc.outOfWindow
	st.Drops["rcv_no_room"] = cc.rcvNoRoom
	for r, n := range s.ipStats.Snapshot() {
		if ip.DropReason(r) != ip.DropNone {
			st.Drops[ip.DropReason(r).String()] = n
		}
	}
	return st
}

// memoryLevelName names a window.Memory level for Stats.
func memoryLevelName(l window.Level) string {
	switch l {
	case window.Pressure:
		return "pressure"
	case window.Exhausted:
		return "exhausted"
	}
	return "normal"
}

// heapBytes is the process's live heap (runtime/metrics, which unlike
// runtime.ReadMemStats does not stop the world).
func heapBytes() uint64 {
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(m)
	if m[0].Value.Kind() != metrics.KindUint64 {
		return 0
	}
	return m[0].Value.Uint64()
}
