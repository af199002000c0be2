package stack

import (
	"sync"
	"time"

	"github.com/tund-project/tund/tcp"
)

// The TIME-WAIT table. When a connection enters TIME-WAIT the stack keeps
// only its tcp.TimeWaitEntry (32 bytes) in the shard's tw map and lets the
// full Conn go: its buffers, timer and congestion state are garbage as soon
// as the application drops it. One runtime timer serves the whole table,
// driven by a min-heap of expiries holding exactly one item per entry: a
// retransmitted FIN that restarts an entry's 2MSL only moves the entry's
// Expires, and when the stale item comes up it is pushed again for the
// new time. However many FINs a peer sends, nothing grows. The table holds
// at most Config.MaxTimeWait entries; past that a connection closes
// without TIME-WAIT (Linux tcp_max_tw_buckets) and a counter says so.

// twExpiry is one queued expiry.
type twExpiry struct {
	key tuple
	at  time.Duration
}

type twQueue struct {
	mu      sync.Mutex
	items   []twExpiry // a min-heap on at
	timer   Timer
	armed   time.Duration // when timer fires; 0 if stopped
	stopped bool          // the stack closed: never arm again
}

// push adds it to the heap.
func (q *twQueue) push(it twExpiry) {
	q.items = append(q.items, it)
	i := len(q.items) - 1
	for i > 0 {
		parent := (i - 1) / 2
		if q.items[parent].at <= q.items[i].at {
			break
		}
		q.items[parent], q.items[i] = q.items[i], q.items[parent]
		i = parent
	}
}

// pop removes and returns the earliest item; the heap must not be empty.
func (q *twQueue) pop() twExpiry {
	it := q.items[0]
	last := len(q.items) - 1
	q.items[0] = q.items[last]
	q.items[last] = twExpiry{}
	q.items = q.items[:last]
	for i := 0; ; {
		l, r, least := 2*i+1, 2*i+2, i
		if l < last && q.items[l].at < q.items[least].at {
			least = l
		}
		if r < last && q.items[r].at < q.items[least].at {
			least = r
		}
		if least == i {
			break
		}
		q.items[i], q.items[least] = q.items[least], q.items[i]
		i = least
	}
	return it
}

// enterTimeWait moves c, which just entered TIME-WAIT, from the
// connection table into the TIME-WAIT table. Called with c.mu held.
func (s *Stack) enterTimeWait(c *Conn) {
	rec, ok := c.tcb.TimeWaitInfo()
	if !ok {
		return
	}
	c.removed, c.inTimeWait = true, true
	s.retire(c)
	c.timer.Stop()
	if !s.addTimeWait(c.key, c, rec) {
		// The table is full: the connection closes without TIME-WAIT,
		// as Linux does past tcp_max_tw_buckets. The application's handle
		// then reports CLOSED (inTimeWait with no entry).
		s.remove(c)
	}
}

// addTimeWait puts rec in the table under key, replacing c (if not nil)
// in the connection table, and queues its expiry. It reports false,
// adding nothing, when the table already holds MaxTimeWait entries, and
// once the stack is stopping (nobody would expire the entry); the caller
// then takes c out itself.
func (s *Stack) addTimeWait(key tuple, c *Conn, rec tcp.TimeWaitEntry) bool {
	if s.twEntries.Load() >= int64(s.cfg.MaxTimeWait) {
		s.stats.timeWaitOverflow.Add(1)
		s.limitHit(limitTimeWait, "max", s.cfg.MaxTimeWait)
		return false
	}
	sh := &s.shards[key.shard()]
	sh.mu.Lock()
	if s.closing.Load() { // under sh.mu, as twStop's clearing
		sh.mu.Unlock()
		return false
	}
	if c != nil && sh.conns[key] == c {
		delete(sh.conns, key)
		s.nConns.Add(-1)
	}
	if _, dup := sh.tw[key]; !dup {
		s.twEntries.Add(1)
	}
	sh.tw[key] = rec
	sh.mu.Unlock()
	notify(s.connGone)
	s.twPush(key, rec.Expires)
	return true
}

// twPush queues an expiry and makes sure the timer will fire for it.
func (s *Stack) twPush(key tuple, at time.Duration) {
	q := &s.twq
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.push(twExpiry{key, at})
	if q.armed == 0 || at < q.armed {
		q.armed = at
		q.timer.Reset(at - s.now())
	}
}

// twStop stops the table for good, as the stack stops: the timer is
// stopped and never re-armed, the queue and the entries are dropped.
func (s *Stack) twStop() {
	q := &s.twq
	q.mu.Lock()
	q.stopped = true
	q.armed = 0
	q.timer.Stop()
	q.items = nil
	q.mu.Unlock()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		s.twEntries.Add(-int64(len(sh.tw)))
		clear(sh.tw)
		sh.mu.Unlock()
	}
}

// twExpire runs on the table's timer: delete every entry whose 2MSL is
// over, requeue those whose wait was restarted, then re-arm for the
// earliest item left.
func (s *Stack) twExpire() {
	now := s.now()
	q := &s.twq
	q.mu.Lock()
	defer q.mu.Unlock()
	q.armed = 0
	if q.stopped {
		return
	}
	for len(q.items) > 0 && q.items[0].at <= now {
		it := q.pop()
		sh := &s.shards[it.key.shard()]
		sh.mu.Lock()
		rec, ok := sh.tw[it.key]
		expired := ok && rec.Expires <= now
		if expired {
			delete(sh.tw, it.key)
			s.twEntries.Add(-1)
		}
		sh.mu.Unlock()
		switch {
		case expired:
			s.stats.timeWaitExpired.Add(1)
			s.traceTW(it.key, tcp.Timeout2MSL, nil)
		case ok && rec.Expires != it.at:
			// Restarted by a retransmitted FIN: this item is the entry's
			// one item, so it goes back in for the new time.
			q.push(twExpiry{it.key, rec.Expires})
		}
	}
	// A table that drained after a burst gives the heap's memory back.
	switch {
	case len(q.items) == 0:
		q.items = nil
	case cap(q.items) > 4096 && cap(q.items) > 4*len(q.items):
		q.items = append(make([]twExpiry, 0, 2*len(q.items)), q.items...)
	}
	if len(q.items) > 0 {
		q.armed = q.items[0].at
		q.timer.Reset(q.armed - now)
	}
}

// handleTimeWait gives a segment to the TIME-WAIT entry for key, if any.
// It reports whether an entry took the segment; reopen is set when the
// segment is a SYN that may start a new connection on the tuple, with the
// initial sequence number that connection must use at least.
func (s *Stack) handleTimeWait(key tuple, seg *tcp.Segment, out []byte) (handled, reopen bool, floor tcp.TimeWaitEntry) {
	sh := &s.shards[key.shard()]
	sh.mu.Lock()
	rec, ok := sh.tw[key]
	if !ok {
		sh.mu.Unlock()
		return false, false, rec
	}
	expires := rec.Expires
	v, ack := rec.Handle(seg, s.now(), s.tcpCfg.MSL, s.tcpCfg.InvalidAckInterval)
	restarted := rec.Expires != expires
	switch v {
	case tcp.TWReopen:
		delete(sh.tw, key)
		s.twEntries.Add(-1)
	default:
		sh.tw[key] = rec
	}
	sh.mu.Unlock()
	switch v {
	case tcp.TWAck:
		s.writeSegment(out, s.familyOf(key.addr()), key, s.flowLabel(key), &ack)
		if restarted {
			s.traceLoop(key, tcp.LoopTimeWaitFin, seg)
		}
	case tcp.TWLimited:
		s.stats.acksLimited.Add(1)
		if restarted {
			t := tcp.LoopTimeWaitFin
			t.Action = "restart 2MSL; ACK held back by the rate limit"
			s.traceLoop(key, t, seg)
		}
	case tcp.TWReopen:
		s.stats.timeWaitReused.Add(1)
		s.traceTW(key, tcp.RcvSyn, seg)
		return true, true, rec
	}
	return true, false, rec
}

// timeWaitCount is the number of TIME-WAIT entries.
func (s *Stack) timeWaitCount() int { return int(s.twEntries.Load()) }

// inTimeWait reports whether key has a TIME-WAIT entry.
func (s *Stack) inTimeWait(key tuple) bool {
	sh := &s.shards[key.shard()]
	sh.mu.RLock()
	_, ok := sh.tw[key]
	sh.mu.RUnlock()
	return ok
}
