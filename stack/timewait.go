package stack

import (
	"sync"
	"time"

	"github.com/tund-project/tund/tcp"
)

// The TIME-WAIT table. When a connection enters TIME-WAIT the stack keeps
// only its tcp.TimeWaitEntry (24 bytes) in the shard's tw map and lets the
// full Conn go: its buffers, timer and congestion state are garbage as soon
// as the application drops it. Because every entry waits the same 2MSL,
// entries expire in the order they were added (or restarted), so a FIFO
// queue and one runtime timer for the whole table are enough: no timer and
// no goroutine per entry.

// twExpiry is one queued expiry. An entry whose timer was restarted (a
// retransmitted FIN) has a newer queue item; the older one is ignored when
// it comes up because the entry's Expires no longer matches.
type twExpiry struct {
	key tuple
	at  time.Duration
}

type twQueue struct {
	mu    sync.Mutex
	items []twExpiry // items[head:] are pending, oldest first
	head  int
	timer Timer
	armed time.Duration // when timer fires; 0 if stopped
	// stopped: the stack has stopped; the timer is never armed again.
	stopped bool
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
	s.addTimeWait(c.key, c, rec)
}

// addTimeWait puts rec in the table under key, replacing c (if not nil)
// in the connection table, and queues its expiry. Once the stack is
// stopping it only takes c out: nobody would expire the entry.
func (s *Stack) addTimeWait(key tuple, c *Conn, rec tcp.TimeWaitEntry) {
	sh := &s.shards[key.shard()]
	sh.mu.Lock()
	if c != nil && sh.conns[key] == c {
		delete(sh.conns, key)
	}
	closing := s.closing.Load() // under sh.mu, as twStop's clearing
	if !closing {
		sh.tw[key] = rec
	}
	sh.mu.Unlock()
	notify(s.connGone)
	if !closing {
		s.twPush(key, rec.Expires)
	}
}

// twPush queues an expiry and makes sure the timer will fire for it.
func (s *Stack) twPush(key tuple, at time.Duration) {
	q := &s.twq
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.items = append(q.items, twExpiry{key, at})
	if q.armed == 0 {
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
	q.timer.Stop()
	q.armed = 0
	q.items, q.head = nil, 0
	q.mu.Unlock()
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		clear(sh.tw)
		sh.mu.Unlock()
	}
}

// twExpire runs on the table's timer: delete every entry whose 2MSL is
// over, then re-arm for the oldest one left.
func (s *Stack) twExpire() {
	now := s.now()
	q := &s.twq
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.stopped {
		return
	}
	q.armed = 0
	for q.head < len(q.items) && q.items[q.head].at <= now {
		it := q.items[q.head]
		q.items[q.head] = twExpiry{}
		q.head++
		sh := &s.shards[it.key.shard()]
		sh.mu.Lock()
		rec, ok := sh.tw[it.key]
		expired := ok && rec.Expires <= now
		if expired {
			delete(sh.tw, it.key)
		}
		sh.mu.Unlock()
		if expired {
			s.stats.timeWaitExpired.Add(1)
			s.traceTW(it.key, tcp.Timeout2MSL, nil)
		}
	}
	// Reuse the slice once the consumed prefix dominates it.
	if q.head > 1024 && q.head*2 > len(q.items) {
		n := copy(q.items, q.items[q.head:])
		clear(q.items[n:])
		q.items, q.head = q.items[:n], 0
	}
	if q.head < len(q.items) {
		q.armed = q.items[q.head].at
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
	now := s.now()
	old := rec.Expires
	v, ack := rec.Handle(seg, now, s.tcpCfg.MSL)
	switch v {
	case tcp.TWReopen:
		delete(sh.tw, key)
	default:
		sh.tw[key] = rec
	}
	sh.mu.Unlock()
	switch v {
	case tcp.TWAck:
		s.writeSegment(out, key.raddr, &ack)
		if rec.Expires != old {
			s.twPush(key, rec.Expires)
		}
	case tcp.TWReopen:
		s.stats.timeWaitReused.Add(1)
		s.traceTW(key, tcp.Timeout2MSL, seg)
		return true, true, rec
	}
	return true, false, rec
}

// timeWaitCount is the number of TIME-WAIT entries.
func (s *Stack) timeWaitCount() int {
	return s.tableCount(func(sh *shard) int { return len(sh.tw) })
}

// inTimeWait reports whether key has a TIME-WAIT entry.
func (s *Stack) inTimeWait(key tuple) bool {
	sh := &s.shards[key.shard()]
	sh.mu.RLock()
	_, ok := sh.tw[key]
	sh.mu.RUnlock()
	return ok
}
