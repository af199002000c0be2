package stack

import (
	"encoding/binary"

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
// The backlog costs nothing when the lock is free (the segment is
// handled in place, as before) and one copy per segment when it is not;
// it holds at most backlogLimit bytes, beyond which segments are dropped
// and counted (drop reason "conn_backlog"): the peer resends them.

// backlogLimit bounds the bytes queued for one busy connection.
const backlogLimit = 256 << 10

// lock takes the connection, waiting for it.
func (c *Conn) lock() { c.mu.Lock() }

// unlock runs the segments the reader queued while c.mu was held, then
// lets the connection go.
func (c *Conn) unlock() {
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
	if !c.mu.TryLock() {
		c.enqueue(raw)
		// The holder may have let go before seeing it: then run it here.
		if !c.mu.TryLock() {
			return
		}
	} else {
		// Earlier queued segments go first: order matters to TCP.
		if c.blN.Load() != 0 {
			c.runBacklog()
		}
		if c.tcb != nil {
			c.tcb.Handle(seg, c.s.now())
			c.after()
		}
	}
	c.unlock()
}

// enqueue copies raw into the backlog, or drops it if the backlog is full.
func (c *Conn) enqueue(raw []byte) {
	c.blMu.Lock()
	defer c.blMu.Unlock()
	if len(c.bl)+4+len(raw) > backlogLimit {
		c.s.stats.backlogDrops.Add(1)
		return
	}
	c.bl = binary.BigEndian.AppendUint32(c.bl, uint32(len(raw)))
	c.bl = append(c.bl, raw...)
	c.blN.Add(1)
}

// runBacklog handles every queued segment. Called with c.mu held.
func (c *Conn) runBacklog() {
	c.blMu.Lock()
	q := c.bl
	c.bl, c.blSpare = c.blSpare[:0], nil
	c.blN.Store(0)
	c.blMu.Unlock()
	var seg tcp.Segment
	for b := q; len(b) >= 4; {
		n := int(binary.BigEndian.Uint32(b))
		raw := b[4 : 4+n]
		b = b[4+n:]
		if c.tcb == nil || tcp.Parse(raw, &seg) != nil {
			continue
		}
		c.tcb.Handle(&seg, c.s.now())
		c.after()
	}
	// Keep the buffer for the next time the connection is busy, unless
	// a burst made it large.
	if cap(q) <= 64<<10 {
		c.blMu.Lock()
		if c.blSpare == nil {
			c.blSpare = q[:0]
		}
		c.blMu.Unlock()
	}
}
