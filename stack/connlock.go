package stack

import (
	"encoding/binary"
	"sync"
	"syscall"

	"github.com/tund-project/tund/tcp"
)

// The connection lock and its backlog, after Linux's socket backlog.
//
// Every call into a connection's control block holds c.mu. Application
// calls and timers wait for it; the reader goroutine never does, since
// one Write sending a whole congestion window would otherwise stall the
// input of every connection behind it. When the reader finds c.mu taken
// it copies the segment into the connection's backlog and moves on to
// the next packet; whoever holds c.mu runs the backlog before it lets go
// (unlock), in arrival order. So every holder must let go with unlock,
// never c.mu.Unlock, or a queued segment could wait for the next holder.
//
// ICMP errors for the connection take the same way. The backlog costs
// nothing when the lock is free (the segment is
// handled in place, as before) and one copy per segment when it is not;
// it holds at most what the connection's buffers do (backlogCap), beyond
// which segments are dropped and counted (drop reason "conn_backlog"):
// the peer resends them.

// backlogLimit is the least the backlog of one busy connection may hold.
const backlogLimit = 256 << 10

// backlogCap is the backlog's bound for a connection whose buffers are
// rcvBuf and sndBuf bytes: what the two buffers hold, as Linux bounds its
// socket backlog (sk_rcvbuf + sk_sndbuf), and at least backlogLimit. A
// smaller bound than the receive window drops, at a receiver whose
// application holds the lock while a window's worth arrives, segments
// the window let in: a loss the stack inflicted on itself, which the
// sender takes for congestion.
func backlogCap(rcvBuf, sndBuf int) int32 {
	return int32(min(max(backlogLimit, rcvBuf+sndBuf), 1<<30))
}

// lock takes the connection, waiting for it.
func (c *Conn) lock() { c.mu.Lock() }

// unlock runs the segments the reader queued while c.mu was held, then
// lets the connection go.
func (c *Conn) unlock() {
	if c.tcb != nil {
		if limit := backlogCap(c.tcb.RcvBuf(), c.tcb.SndBuf()); c.blLimit.Load() != limit {
			c.blLimit.Store(limit)
		}
	}
	for {
		if c.blN.Load() != 0 {
			c.runBacklog()
			continue
		}
		c.mu.Unlock()
		// A segment queued between the check and the Unlock is ours to
		// run if nobody else has taken the lock meanwhile; if somebody
		// has, their unlock runs it.
		if c.blN.Load() == 0 || !c.mu.TryLock() {
			return
		}
	}
}

// handle delivers an inbound segment (raw is its TCP bytes, which seg
// aliases); it is called only by the reader goroutine.
func (c *Conn) handle(seg *tcp.Segment, raw []byte) {
	c.fromReader(func() { c.enqueue(raw, nil) }, func() { c.input(seg) })
}

// input hands seg to the control block, unless it is the ACK that would
// complete a handshake while the listener's accept queue is full: that
// one is dropped, as Linux drops it, and the connection stays in the SYN
// queue resending its SYN+ACK (tcp.LoopAcceptQueueFullAck). Called with
// c.mu held.
func (c *Conn) input(seg *tcp.Segment) {
	if l := c.lst; l != nil && c.tcb.CompletesHandshake(seg) && l.acceptFull() {
		c.s.stats.backlogFull.Add(1)
		c.s.traceLoop(c.key, tcp.LoopAcceptQueueFullAck, seg)
		return
	}
	c.tcb.Handle(seg, c.s.now())
}

// handleICMP delivers an ICMP error about one of the connection's
// segments (Stack.icmpError); like handle, it never waits for the lock.
func (c *Conn) handleICMP(e icmpNote) {
	c.fromReader(func() { c.enqueue(nil, &e) }, func() { e.apply(c) })
}

// fromReader runs apply on the control block if the lock is free, else
// queues the input with enqueue for the holder to run.
func (c *Conn) fromReader(enqueue, apply func()) {
	if !c.mu.TryLock() {
		enqueue()
		// The holder may have let go before seeing it: then run it here.
		if !c.mu.TryLock() {
			return
		}
	} else {
		// Earlier queued input goes first: order matters to TCP.
		if c.blN.Load() != 0 {
			c.runBacklog()
		}
		if c.tcb != nil {
			apply()
			c.after()
		}
	}
	c.unlock()
}

// icmpNote is an ICMP error for the control block (tcp.Conn.HandleICMP).
type icmpNote struct {
	kind  tcp.ICMPKind
	seq   tcp.Seq
	mss   uint32
	errno syscall.Errno
}

func (e *icmpNote) apply(c *Conn) {
	c.tcb.HandleICMP(e.kind, e.seq, int(e.mss), e.errno, c.s.now())
}

// Backlog records: a 4-byte length and the TCP bytes, or, with the
// length's top bit set, an ICMP note of icmpNoteLen bytes.
const (
	icmpRecord  = 1 << 31
	icmpNoteLen = 1 + 4 + 4 + 4
)

// enqueue copies a segment (raw) or an ICMP note into the backlog, or
// drops it if the backlog is full.
func (c *Conn) enqueue(raw []byte, e *icmpNote) {
	c.blMu.Lock()
	defer c.blMu.Unlock()
	n := len(raw)
	if e != nil {
		n = icmpNoteLen
	}
	if len(c.bl)+4+n > max(int(c.blLimit.Load()), backlogLimit) {
		c.s.stats.backlogDrops.Add(1)
		return
	}
	if c.bl == nil {
		c.blBuf = backlogBufs.Get().(*[]byte)
		c.bl = (*c.blBuf)[:0]
	}
	c.s.stats.backlogQueued.Add(1)
	if e == nil {
		c.bl = binary.BigEndian.AppendUint32(c.bl, uint32(n))
		c.bl = append(c.bl, raw...)
	} else {
		c.bl = binary.BigEndian.AppendUint32(c.bl, icmpRecord)
		c.bl = append(c.bl, byte(e.kind))
		c.bl = binary.BigEndian.AppendUint32(c.bl, uint32(e.seq))
		c.bl = binary.BigEndian.AppendUint32(c.bl, e.mss)
		c.bl = binary.BigEndian.AppendUint32(c.bl, uint32(e.errno))
	}
	c.blN.Add(1)
}

// runBacklog handles every queued segment. Called with c.mu held.
func (c *Conn) runBacklog() {
	c.blMu.Lock()
	q, qBuf := c.bl, c.blBuf
	c.bl, c.blBuf = nil, nil
	c.blN.Store(0)
	c.blMu.Unlock()
	seg := segPool.Get().(*tcp.Segment)
	defer segPool.Put(seg)
	for b := q; len(b) >= 4; {
		word := binary.BigEndian.Uint32(b)
		if word == icmpRecord {
			r := b[4 : 4+icmpNoteLen]
			b = b[4+icmpNoteLen:]
			e := icmpNote{kind: tcp.ICMPKind(r[0]), seq: tcp.Seq(binary.BigEndian.Uint32(r[1:])),
				mss: binary.BigEndian.Uint32(r[5:]), errno: syscall.Errno(binary.BigEndian.Uint32(r[9:]))}
			if c.tcb != nil {
				e.apply(c)
				c.after()
			}
			continue
		}
		raw := b[4 : 4+word]
		b = b[4+word:]
		if c.tcb == nil || tcp.Parse(raw, seg) != nil {
			continue
		}
		c.input(seg)
		c.after()
	}
	// The buffer goes back to the stack-wide pool: a busy connection
	// takes one while it is busy, an idle one holds none.
	if qBuf != nil {
		*qBuf = q[:0]
		backlogBufs.Put(qBuf)
	}
}

// segPool holds the segments runBacklog parses into (the core's Handle
// lets its argument escape, so a local one would be an allocation).
var segPool = sync.Pool{New: func() any { return new(tcp.Segment) }}

// backlogBufs are the backlogs' buffers, shared by every connection.
var backlogBufs = sync.Pool{New: func() any {
	b := make([]byte, 0, 16<<10)
	return &b
}}
