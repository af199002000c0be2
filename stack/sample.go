package stack

import (
	"net/netip"
	"time"
)

// Sample is a periodic snapshot of one connection's congestion and timer
// state, for plots of cwnd, RTT and in-flight data over time
// (Config.Sampler).
type Sample struct {
	Time          time.Duration // since the stack started
	Local, Remote netip.AddrPort
	State         string
	Cwnd          int // congestion window, bytes
	SSThresh      int
	InFlight      int // bytes sent and not yet acknowledged
	SndWnd        int // the peer's receive window
	SRTT, RTO     time.Duration
	Retransmits   uint64
	Timeouts      uint64 // retransmission timeouts so far
	DSACKs        uint64 // D-SACKs received so far (RFC 2883)
	// Loss recovery: the state ("open", "recovery", "loss"), RACK's
	// reordering window and RTT (RFC 8985), PRR's delivered and sent
	// bytes (RFC 6937), and loss episodes undone as spurious so far.
	LossState    string
	ReoWnd       time.Duration
	RACKRTT      time.Duration
	PRRDelivered int
	PRROut       int
	Spurious     uint64
}

// Sampler configures periodic per-connection samples: every Interval,
// Func receives one Sample per connection that has sent data. It runs on
// its own goroutine, only when set.
type Sampler struct {
	Interval time.Duration
	Func     func(Sample)
}

// sampleLoop feeds Config.Sampler until the stack closes. It reads the
// connections through the same snapshot Connections uses, so it costs the
// data path nothing but the per-connection lock for a moment.
func (s *Stack) sampleLoop() {
	sp := s.cfg.Sampler
	iv := sp.Interval
	if iv <= 0 {
		iv = 10 * time.Millisecond
	}
	tick := time.NewTicker(iv)
	defer tick.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-tick.C:
		}
		now := s.now()
		for _, c := range s.allConns() {
			c.lock()
			if c.tcb == nil {
				c.unlock()
				continue
			}
			in := c.tcb.Info()
			c.unlock()
			if in.Cwnd == 0 {
				continue
			}
			sp.Func(Sample{
				Time: now, Local: s.localOf(c.key), Remote: c.key.remote(), State: in.State.String(),
				Cwnd: in.Cwnd, SSThresh: in.SSThresh, InFlight: in.SndNxt.Sub(in.SndUna), SndWnd: in.SndWnd,
				SRTT: in.SRTT, RTO: in.RTO, Retransmits: in.Retransmits, Timeouts: in.Timeouts, DSACKs: in.DSACKs,
				LossState: in.LossState, ReoWnd: in.ReoWnd, RACKRTT: in.RACKRTT,
				PRRDelivered: in.PRRDelivered, PRROut: in.PRROut, Spurious: in.SpuriousUndone,
			})
		}
	}
}
