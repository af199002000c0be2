package tcp

import (
	"io"
	"syscall"
	"time"

	"github.com/tund-project/tund/retransmit"
	"github.com/tund-project/tund/window"
)

// Config holds the knobs of one connection. Zero fields take the values of
// DefaultConfig.
type Config struct {
	MSS int // largest segment payload we accept; from the MTU
	// RcvBuf is the receive buffer a connection starts with; its free
	// space is the window we advertise. Autotuning grows it toward the
	// bandwidth-delay product, up to RcvBufMax.
	RcvBuf int
	// RcvBufMax caps receive-buffer autotuning; the window scale offered
	// on the SYN is chosen so this much can be advertised.
	RcvBufMax int
	// NoAutoTune keeps the receive buffer at RcvBuf (SetReadBuffer on a
	// connection does the same, as SO_RCVBUF does on Linux).
	NoAutoTune bool
	SndBuf     int  // send buffer size
	NoDelay    bool // turn Nagle's algorithm off (SetNoDelay on a connection)
	// GSOMax, when larger than a segment, lets output hand the Sender
	// TCP super-segments of up to GSOMax payload bytes, a whole number of
	// segments each (Segment.GSOSize says how big a segment): the link
	// cuts them up (TCP segmentation offload), so one call and one
	// header carry dozens of segments. The stack sets it from a device
	// with offloads; 0 sends one segment per call. Only new data goes
	// this way: retransmissions and probes stay one segment.
	GSOMax     int
	InitialRTO time.Duration // RFC 6298 §2.1
	// MinRTO is the retransmission timeout's floor: 5 ms by default,
	// where Linux fixes 200 ms. On a TUN link whose round trip is a few
	// hundred microseconds a 200 ms floor makes every timeout cost a
	// thousand round trips, and decides goodput under loss. What makes a
	// low floor safe (recovery.go): a lone in-order segment still waits
	// SRTT + 200 ms for a delayed ACK (delayedAckWait); every give-up
	// lasts as long as from a 200 ms floor (lastedAsFrom200ms), so R2
	// stays RFC 9293's 100 s; a timeout that proves spurious is undone
	// (D-SACK, timestamps); the RTO is still SRTT + 4·RTTVAR with
	// exponential backoff, so a slower or jittery path gets a longer
	// one. RFC 6298 §2.4's 1 s minimum is a SHOULD, and RFC 8961 §4 asks
	// only that the RTO follow measured feedback and back off.
	MinRTO     time.Duration
	MaxRTO     time.Duration
	SynRetries int // SYN retransmissions before an active open fails
	// SynAckRetries is how often a passive open resends its SYN+ACK before
	// the half-open connection is dropped (Linux tcp_synack_retries).
	SynAckRetries int
	MaxRetries    int // data retransmissions before ETIMEDOUT
	// OrphanRetries bounds how long a peer can keep a connection the
	// application has closed (an orphan) from finishing: after this many
	// retransmission timeouts or window probes without progress, counted
	// even when the peer answers the probes, the orphan is reset (Linux
	// tcp_orphan_retries, 8 by default). Negative: treat orphans like any
	// other connection (MaxRetries; answered probes never give up).
	OrphanRetries int
	MSL           time.Duration // TIME-WAIT lasts 2*MSL
	// FinTimeout reclaims an orphaned connection (closed by the
	// application) stuck in FIN-WAIT-2 because the peer never sends its
	// FIN (Linux tcp_fin_timeout). Negative: wait forever.
	FinTimeout time.Duration
	DelayedAck time.Duration // longest an ACK is held back; negative: never delay
	// PMTUExpire is how long a segment size lowered by an ICMP
	// "fragmentation needed" holds before the full size is tried again
	// (RFC 1191 §6.3 suggests 10 minutes). Negative: never.
	PMTUExpire time.Duration
	NoWScale   bool // do not offer window scaling (RFC 7323)
	// NoTimestamps and NoSACK turn off offering the RFC 7323 timestamp
	// option and RFC 2018 selective acknowledgments (both on by default).
	NoTimestamps bool
	NoSACK       bool
	// CongestionControl names the algorithm: "newreno" (default) or any
	// other name retransmit.New knows.
	CongestionControl string
	// LossDetection names the loss detector: "rack" (RFC 8985, by send
	// time; the default) or "rfc6675" (three SACKed segments above a
	// hole), kept to compare the two.
	LossDetection string
	// PRRConservative makes Proportional Rate Reduction use its
	// Conservative Reduction Bound (strict packet conservation) rather
	// than the Slow Start Reduction Bound RFC 6937 recommends.
	PRRConservative bool
	// KeepAlive, if positive, turns TCP keepalives on (RFC 1122
	// §4.2.3.6): after this long without hearing from the peer, probe it
	// every KeepAlive; after KeepAliveProbes unanswered probes the
	// connection fails with ETIMEDOUT. Off by default, as RFC 1122 asks.
	KeepAlive       time.Duration
	KeepAliveProbes int // default 9, as Linux's tcp_keepalive_probes
	// ChallengeACKLimit bounds the RFC 5961 challenge ACKs one connection
	// sends per second (RFC 5961 §7), so a blind attacker cannot use it as
	// an amplifier. Negative: no limit.
	ChallengeACKLimit int
	// InWindowRST and InWindowSYN turn RFC 5961's blind-attack checks
	// off, for experiments that compare with RFC 793 (FreeBSD's
	// net.inet.tcp.insecure_rst and insecure_syn): any RST inside the
	// window resets the connection, where RFC 5961 §3.2 wants an exact
	// match with RCV.NXT and a challenge ACK otherwise; a SYN inside the
	// window resets it (RFC 793 §3.9), where RFC 5961 §4.2 answers any
	// SYN with a challenge ACK. Off by default, as they must be on a
	// network.
	InWindowRST bool
	InWindowSYN bool
	// InvalidAckInterval is the least time between two ACKs sent in
	// reply to unacceptable segments — out of the window, old
	// duplicates, anything reaching TIME-WAIT — so that a storm of them,
	// or two stacks stuck in an ACK loop, cannot draw one ACK each (RFC
	// 5961 §7; Linux tcp_invalid_ratelimit, 500 ms). A window probe at
	// RCV.NXT is always answered. Negative: no limit.
	InvalidAckInterval time.Duration

	// Memory, if set, is the budget every ring of the connection is
	// charged to, shared with the others (window.Memory: under pressure
	// buffers stop growing and windows shrink to the rings allocated).
	Memory *window.Memory

	// Trace, if set, is called on every state transition with the segment
	// that caused it (nil for application calls and timers).
	Trace func(t Transition, seg *Segment)
}

// DefaultConfig returns the defaults a user gets (DESIGN.md "Defaults").
func DefaultConfig() Config {
	return Config{
		MSS:           1460,
		RcvBuf:        128 << 10, // Linux's tcp_rmem default
		RcvBufMax:     6 << 20,   // Linux's tcp_rmem maximum
		SndBuf:        1 << 20,
		InitialRTO:    time.Second,
		MinRTO:        5 * time.Millisecond, // adaptive: see Config.MinRTO
		MaxRTO:        60 * time.Second,
		SynRetries:    7, // 183 s: RFC 9293 §3.8.3 (MUST-23) wants 3 minutes
		SynAckRetries: 5,
		MaxRetries:    15,
		// About 100 s of backoff from the 200 ms minimum RTO.
		OrphanRetries: 8,
		MSL:           30 * time.Second,
		FinTimeout:    60 * time.Second,
		DelayedAck:    40 * time.Millisecond,
		PMTUExpire:    10 * time.Minute,
		// Linux's historical tcp_challenge_ack_limit, here per connection.
		ChallengeACKLimit:  1000,
		InvalidAckInterval: 500 * time.Millisecond,
	}
}

// WithDefaults returns c with every zero field set to its default, as a
// connection made with c would use it.
func (c Config) WithDefaults() Config { return c.withDefaults() }

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MSS <= 0 {
		c.MSS = d.MSS
	}
	if c.RcvBuf <= 0 {
		c.RcvBuf = d.RcvBuf
	}
	if c.RcvBufMax <= 0 {
		c.RcvBufMax = d.RcvBufMax
	}
	c.RcvBufMax = max(c.RcvBufMax, c.RcvBuf)
	if c.SndBuf <= 0 {
		c.SndBuf = d.SndBuf
	}
	if c.InitialRTO <= 0 {
		c.InitialRTO = d.InitialRTO
	}
	if c.MinRTO <= 0 {
		c.MinRTO = d.MinRTO
	}
	if c.MaxRTO <= 0 {
		c.MaxRTO = d.MaxRTO
	}
	if c.SynRetries <= 0 {
		c.SynRetries = d.SynRetries
	}
	if c.SynAckRetries <= 0 {
		c.SynAckRetries = d.SynAckRetries
	}
	if c.FinTimeout == 0 {
		c.FinTimeout = d.FinTimeout
	}
	if c.KeepAliveProbes <= 0 {
		c.KeepAliveProbes = 9
	}
	if c.ChallengeACKLimit == 0 {
		c.ChallengeACKLimit = d.ChallengeACKLimit
	}
	if c.InvalidAckInterval == 0 {
		c.InvalidAckInterval = d.InvalidAckInterval
	}
	if c.MaxRetries <= 0 {
		c.MaxRetries = d.MaxRetries
	}
	if c.OrphanRetries == 0 {
		c.OrphanRetries = d.OrphanRetries
	}
	if c.MSL <= 0 {
		c.MSL = d.MSL
	}
	if c.DelayedAck == 0 {
		c.DelayedAck = d.DelayedAck
	}
	if c.PMTUExpire == 0 {
		c.PMTUExpire = d.PMTUExpire
	}
	return c
}

// Sender carries the segments a Conn emits. SendSegment must serialize the
// segment before it returns: the payload aliases the send buffer.
type Sender interface {
	SendSegment(seg *Segment)
}

// Events are the changes a Conn reports to whoever drives it.
type Events uint8

// The events.
const (
	EvReadable Events = 1 << iota // data, EOF or an error is ready for Read
	EvWritable                    // send buffer space freed, or an error
	EvState                       // the state changed
)

// Conn is one TCP connection's control block (RFC 9293 §3.3.1) and its
// state machine. It is not safe for concurrent use: the caller serializes
// every call, passing the current time.
type Conn struct {
	cfg   Config
	out   Sender
	state State

	LocalPort, RemotePort uint16

	// Send sequence space (RFC 9293 §3.3.1).
	iss       Seq
	sndUna    Seq
	sndNxt    Seq
	sndMax    Seq // highest sequence number sent; sndNxt rewinds on RTO
	sndWnd    int // peer's window, scaled
	maxSndWnd int // largest window the peer offered (RFC 5961 §5.2)
	sndWL1    Seq
	sndWL2    Seq
	sndWScale uint8
	sndMSS    int // the segment size now: synMSS, or less after an ICMP (RFC 1191)
	synMSS    int // the segment size the handshake agreed on
	snd       window.SendBuffer
	sndBufSeq Seq  // sequence number of the first byte in snd
	finQueued bool // the application closed its sending side
	synAcked  bool
	noDelay   bool // Nagle off

	// Receive sequence space.
	irs        Seq
	rcvNxt     Seq
	rcvWScale  uint8
	wscaleOK   bool // both sides sent the window scale option
	rcvAdvEdge Seq  // furthest right edge we offered: never moves left
	// rcvShownEdge is the edge our last window field expressed, up to one
	// scale unit short of rcvAdvEdge (the field counts whole units).
	rcvShownEdge Seq
	rcv          window.RecvBuffer
	rcvBufSize   int              // the receive buffer as configured (the ring adds scale slack)
	tuner        window.Autotuner // Max 0: autotuning off
	// Receiver-side RTT estimate for autotuning when we send no data to
	// time (Linux's rcv_rtt_est): how long a whole window takes to arrive.
	rcvRTTMeasuring bool
	rcvRTTMark      Seq
	rcvRTTStart     time.Duration
	rcvRTT          time.Duration
	finRcvd         bool // the peer's FIN was processed (EOF after buffered data)
	oooFin          bool // a FIN arrived beyond a gap
	oooFinSeq       Seq
	readClosed      bool
	readShut        bool // CloseRead: discard what arrives

	// ACK scheduling.
	ackNow     bool
	ackPending int // in-order data bytes not yet acknowledged
	ackSegs    int // in-order data segments not yet acknowledged
	quickAcks  int // in-order segments still to acknowledge at once after a gap

	// Loss recovery.
	rto     retransmit.RTO
	cc      retransmit.Controller
	retries int
	// firstTimeoutAt is when the current run of timeouts began (retries
	// went from 0 to 1); lastDataAt when new data last left. With a low
	// RTO floor they time the give-up and the delayed-ACK allowance.
	firstTimeoutAt, lastDataAt time.Duration
	firstProbeAt               time.Duration // the first window probe of the current run (persistN 0 → 1)
	firstUnansweredAt          time.Duration // the first of the probes left unanswered since the last ACK
	rttTiming                  bool
	rttSeq                     Seq
	rttStart                   time.Duration

	// timers holds every timer of the connection, indexed by timerID
	// (timers.go), as absolute times; 0 means not armed.
	timers   timerSet
	persistN int // window probes sent since the window closed (their backoff)
	// probesUnanswered counts window probes since the peer last sent an
	// acceptable segment; too many and the peer is gone.
	probesUnanswered int

	// TIME-WAIT: the compact record the owner may take over (TimeWaitInfo).
	tw TimeWaitEntry

	// RFC 5961 §7 challenge ACK rate limit: count within the current second.
	challengeSecond time.Duration
	challengeCount  int
	// nextInvalidAck is the earliest time an ACK may answer another
	// unacceptable segment (Config.InvalidAckInterval).
	nextInvalidAck time.Duration

	// RFC 7323 timestamps: negotiated, our clock's offset, the peer's
	// newest timestamp to echo (TS.Recent), and RCV.NXT in our last ACK.
	tsOK        bool
	tsOffset    uint32
	tsRecent    uint32
	lastAckSent Seq
	// readSinceAck is how much the application has read since we last
	// sent a window: what its reads have opened (windowUpdateAfterRead).
	readSinceAck int
	// RFC 2018 / RFC 6675 selective acknowledgment.
	sackOK bool
	sb     retransmit.Scoreboard // what the peer holds beyond SND.UNA (RFC 6675's detector, the delayed-ACK rule)
	// Loss detection and recovery (recovery.go).
	recovery
	// Keepalive: probes sent unanswered (the timer is timers[tKeepAlive]).
	kaProbes int
	lastOOO  Seq // start of the latest out-of-order segment (first SACK block)
	// The SACK blocks reported last (RFC 2018 §4 repeats them), and a
	// duplicate range to report once as a D-SACK block (RFC 2883).
	sackRecent   [MaxSACKBlocks]SACKBlock
	nSackRecent  int
	dsack        SACKBlock
	dsackPending bool

	clock time.Duration // the now of the current call, for timestamps
	// softErr is the latest soft ICMP error (RFC 1122 §4.2.3.9); a
	// connection that times out reports it instead of ETIMEDOUT.
	softErr error
	err     error
	events  Events
	outSeg  Segment // scratch for send, so segments do not escape to the heap

	// Counters for display.
	Retransmits uint64 // segments sent again, for any reason
	Timeouts    uint64 // retransmission timeouts
	Recoveries  uint64 // fast recoveries entered
	Probes      uint64 // tail loss probes sent
	// DSACKs counts D-SACK blocks received (RFC 2883): the peer got a
	// segment twice, most often because we sent it again needlessly (a
	// spurious timeout or fast retransmit), or the network duplicated it.
	DSACKs uint64
	// SpuriousUndone counts loss episodes whose window reduction was
	// undone: every resend was D-SACKed, or a timestamp showed the
	// original had arrived (recovery.go).
	SpuriousUndone uint64
	// FRTOs counts the timeouts F-RTO found premature (RFC 5682): an ACK
	// after them delivered data they had presumed lost (also counted in
	// SpuriousUndone).
	FRTOs uint64
	// OutOfWindow counts segments dropped by the RFC 9293 §3.10.7.4
	// sequence number test (each answered with an ACK unless a reset).
	OutOfWindow uint64
	// AcksLimited counts ACKs not sent because a rate limit held them
	// back (InvalidAckInterval, ChallengeACKLimit).
	AcksLimited uint64
}

func newConn(cfg Config, out Sender, lport, rport uint16) *Conn {
	cfg = cfg.withDefaults()
	c := &Conn{
		cfg:        cfg,
		out:        out,
		LocalPort:  lport,
		RemotePort: rport,
		snd:        window.NewSendBuffer(cfg.SndBuf),
		rcv:        window.NewRecvBuffer(cfg.RcvBuf),
		rto:        retransmit.NewRTO(cfg.InitialRTO, cfg.MinRTO, cfg.MaxRTO),
		sndMSS:     536, // RFC 9293 §3.7.1: default send MSS without the option
		noDelay:    cfg.NoDelay,
	}
	c.prr.Conservative = cfg.PRRConservative
	c.snd.SetMemory(cfg.Memory)
	c.rcv.SetMemory(cfg.Memory)
	if !cfg.NoAutoTune {
		c.tuner.Max = cfg.RcvBufMax
	}
	if !cfg.NoWScale {
		c.rcvWScale = rcvShift(cfg)
	}
	c.setRcvLimit(cfg.RcvBuf)
	return c
}

// rcvShift is the window scale we offer: RFC 7323 §2.2, the smallest
// shift that lets the largest receive buffer we may grow to be advertised.
func rcvShift(cfg Config) uint8 {
	size := cfg.RcvBuf
	if !cfg.NoAutoTune {
		size = max(size, cfg.RcvBufMax)
	}
	var shift uint8
	for shift < 14 && size>>shift > 0xffff {
		shift++
	}
	return shift
}

// NewActive starts an active open (RFC 9293 §3.10.1, OPEN call in CLOSED
// state with active mode): it chooses iss, sends a SYN and enters SYN-SENT.
func NewActive(cfg Config, out Sender, lport, rport uint16, iss Seq, now time.Duration) *Conn {
	c := newConn(cfg, out, lport, rport)
	c.clock = now
	c.iss, c.sndUna, c.sndNxt, c.sndMax = iss, iss, iss, iss
	c.sndBufSeq = iss + 1
	c.tsOffset = uint32(iss) * 2654435761 // RFC 7323 §5.4: a per-connection random offset
	c.transition(AppConnect, nil)
	c.sendSyn(now)
	return c
}

// NewPassive creates the connection a listener makes for an arriving SYN
// (RFC 9293 §3.10.7.2, LISTEN state, "third, check for a SYN"): it records
// the peer's ISN and options, sends SYN+ACK and enters SYN-RECEIVED.
func NewPassive(cfg Config, out Sender, syn *Segment, iss Seq, now time.Duration) *Conn {
	c := newConn(cfg, out, syn.DstPort, syn.SrcPort)
	c.clock = now
	c.state = Listen
	c.iss, c.sndUna, c.sndNxt, c.sndMax = iss, iss, iss, iss
	c.sndBufSeq = iss + 1
	c.irs = syn.Seq
	c.rcvNxt = syn.Seq + 1
	c.rcvAdvEdge, c.rcvShownEdge = c.rcvNxt, c.rcvNxt
	c.tsOffset = uint32(iss) * 2654435761 // RFC 7323 §5.4: a per-connection random offset
	c.takeSynOptions(syn)
	// The window of a SYN is never scaled (RFC 7323 §2.2).
	c.sndWnd = int(syn.Window)
	c.maxSndWnd = c.sndWnd
	c.sndWL1, c.sndWL2 = syn.Seq, iss
	c.transition(RcvSyn, syn)
	c.sendSyn(now)
	return c
}

// takeSynOptions applies the options of the peer's SYN or SYN+ACK.
func (c *Conn) takeSynOptions(syn *Segment) {
	if syn.Options.MSS != 0 {
		c.sndMSS = int(syn.Options.MSS)
	}
	c.sndMSS = max(min(c.sndMSS, c.cfg.MSS), 64)
	c.synMSS = c.sndMSS
	if syn.Options.HasWScale && !c.cfg.NoWScale {
		c.wscaleOK = true
		c.sndWScale = uint8(syn.Options.WScale)
	} else {
		// Without scaling no window beyond 64 KiB can be offered: a
		// bigger buffer would be dead weight.
		c.wscaleOK = false
		c.sndWScale, c.rcvWScale = 0, 0
		c.tuner.Max = min(c.tuner.Max, 0xffff)
		c.setRcvLimit(min(c.rcvBufSize, 0xffff))
	}
	// RFC 2018 §2 and RFC 7323 §3.2: SACK and timestamps are used only
	// when both SYNs carried them.
	c.sackOK = syn.Options.SACKPermitted && !c.cfg.NoSACK
	c.tsOK = syn.Options.HasTS && !c.cfg.NoTimestamps
	if c.tsOK {
		c.tsRecent = syn.Options.TSVal
	}
	cc, err := retransmit.New(c.cfg.CongestionControl, c.sndMSS)
	if err != nil {
		cc = retransmit.NewNewReno(c.sndMSS) // the stack validated the name already
	}
	c.cc = cc
}

// tsVal is our timestamp clock: milliseconds plus the connection's offset
// (RFC 7323 §5.4: 1 ms to 1 s per tick).
func (c *Conn) tsVal(now time.Duration) uint32 {
	return uint32(now/time.Millisecond) + c.tsOffset
}

// rcvMSS is the largest payload the peer sends us: our MSS less the
// options on every segment.
func (c *Conn) rcvMSS() int {
	if c.tsOK {
		return c.cfg.MSS - 12
	}
	return c.cfg.MSS
}

// segMSS is the most payload one segment carries: the peer's MSS less
// the options every segment carries (RFC 6691: the MSS option counts
// data only, so the sender makes room for its options).
func (c *Conn) segMSS() int {
	if c.tsOK {
		return c.sndMSS - 12 // NOP NOP + 10-byte timestamp option
	}
	return c.sndMSS
}

// State is the current RFC 9293 state.
func (c *Conn) State() State { return c.state }

// CompletesHandshake reports whether seg, arriving now, would take the
// connection from SYN-RECEIVED to ESTABLISHED: an ACK, without SYN or
// RST, acknowledging our SYN (RFC 9293 §3.10.7.4: SND.UNA < SEG.ACK =<
// SND.NXT). A listener whose accept queue is full drops such a segment
// before the core sees it, as Linux does, so the handshake completes
// later, when the client's retransmission finds room.
func (c *Conn) CompletesHandshake(seg *Segment) bool {
	return c.state == SynReceived && seg.Flags.Has(FlagACK) &&
		!seg.Flags.Has(FlagSYN) && !seg.Flags.Has(FlagRST) &&
		c.sndUna.LessThan(seg.Ack) && seg.Ack.LessThanEq(c.sndNxt)
}

// Err is the error that ended the connection (ECONNRESET, ECONNREFUSED,
// ETIMEDOUT), or nil.
func (c *Conn) Err() error { return c.err }

// TakeEvents returns the events since the last call and clears them.
func (c *Conn) TakeEvents() Events {
	e := c.events
	c.events = 0
	return e
}

// SendQueue is the number of bytes written but not yet acknowledged.
func (c *Conn) SendQueue() int { return c.snd.Len() }

// RcvNoRoom counts received segments dropped, wholly or in part, because
// the receive ring could not grow to hold them (the memory budget, or
// out-of-order data landing far beyond what is held).
func (c *Conn) RcvNoRoom() uint64 { return c.rcv.Refused }

// RecvQueue is the number of received bytes not yet read.
func (c *Conn) RecvQueue() int { return c.rcv.Len() }

// Info is a snapshot of a connection's internals for display.
type Info struct {
	State          State
	SndUna, SndNxt Seq
	RcvNxt         Seq
	SndWnd, RcvWnd int
	RcvBuf, SndBuf int    // buffer sizes now (the receive buffer grows with autotuning)
	CC             string // congestion control algorithm
	SACK, TS       bool   // selective acknowledgments and timestamps in use
	SendQ, RecvQ   int
	MSS            int
	Cwnd, SSThresh int
	SRTT, RTO      time.Duration
	Retransmits    uint64
	Timeouts       uint64
	Recoveries     uint64
	Probes         uint64
	DSACKs         uint64
	// Loss recovery (recovery.go): where the sender stands ("open",
	// "recovery", "loss"), RACK's reordering window, RTT and smallest RTT
	// (RFC 8985), PRR's counters in the current or last recovery (RFC
	// 6937), the bytes SACKed and judged lost, and the loss episodes
	// undone as spurious.
	LossState       string
	ReoWnd          time.Duration
	RACKRTT, MinRTT time.Duration
	PRRDelivered    int
	PRROut          int
	SACKed, Lost    int
	ReorderingSeen  bool
	SpuriousUndone  uint64
	RTOMin          time.Duration // the RTO's floor
	Timer           string        // the timer that fires next ("" if none)
	TimerAt         time.Duration // when, on the caller's clock
}

// Info returns a snapshot of the connection for display.
func (c *Conn) Info() Info {
	in := Info{
		State: c.state, SndUna: c.sndUna, SndNxt: c.sndNxt, RcvNxt: c.rcvNxt,
		SndWnd: c.sndWnd, RcvWnd: c.rcvWindow(), SendQ: c.snd.Len(), RecvQ: c.rcv.Len(),
		RcvBuf: c.rcvBufSize, SndBuf: c.snd.Limit(),
		MSS: c.segMSS(), SRTT: c.rto.SRTT(), RTO: c.rto.Timeout(), Retransmits: c.Retransmits,
		Timeouts: c.Timeouts, Recoveries: c.Recoveries, Probes: c.Probes, DSACKs: c.DSACKs,
	}
	if c.cc != nil {
		in.Cwnd, in.SSThresh, in.CC = c.cc.Window(), c.cc.SSThresh(), c.cc.Name()
	}
	in.SACK, in.TS = c.sackOK, c.tsOK
	in.LossState = c.loss.String()
	in.ReoWnd = c.rack.ReoWnd(c.loss != lossOpen, c.sackedSegs(), c.rto.SRTT())
	in.RACKRTT, in.MinRTT, in.ReorderingSeen = c.rack.RTT, c.rack.MinRTT, c.rack.ReorderingSeen
	in.PRRDelivered, in.PRROut = c.prr.Counters()
	in.SACKed, in.Lost = c.flight.SACKed(), c.flight.Lost()
	in.SpuriousUndone = c.SpuriousUndone
	in.RTOMin = c.rto.Min()
	in.Timer, in.TimerAt = c.nextTimer()
	return in
}

// Readable reports whether Read would return without blocking.
func (c *Conn) Readable() bool {
	return c.rcv.Len() > 0 || c.finRcvd || c.err != nil || c.state == Closed || c.readShut
}

// Writable reports whether Write would accept bytes or fail at once.
func (c *Conn) Writable() bool {
	return c.snd.Free() > 0 || c.err != nil || !c.state.canSendData() || c.finQueued
}

// Established reports whether the handshake has completed (the connection
// is in ESTABLISHED or a later state).
func (c *Conn) Established() bool { return c.state.synchronized() }

// Read copies received bytes into p. It returns (0, nil) when nothing is
// ready yet (the caller waits for EvReadable), io.EOF after the peer's FIN,
// or the error that ended the connection.
func (c *Conn) Read(p []byte, now time.Duration) (int, error) {
	c.clock = now
	if len(p) == 0 {
		return 0, nil
	}
	if c.readShut {
		return 0, io.EOF
	}
	n := c.rcv.Read(p)
	if n > 0 {
		c.readSinceAck += n
		// Autotuning grows the buffer only while memory is plentiful.
		if size := c.tuner.OnRead(n, now, c.rcvRTTEstimate(), c.rcvBufSize); size > 0 && c.cfg.Memory.Level() == window.Normal {
			c.setRcvLimit(size)
		}
		c.windowUpdateAfterRead()
		c.output(now)
		return n, nil
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.finRcvd:
		return 0, io.EOF
	case c.state == Closed:
		return 0, io.EOF
	}
	return 0, nil
}

// Peek is Read without consuming (MSG_PEEK): the bytes stay queued.
func (c *Conn) Peek(p []byte) (int, error) {
	if c.readShut {
		return 0, io.EOF
	}
	if n := c.rcv.Peek(p); n > 0 {
		return n, nil
	}
	switch {
	case c.err != nil:
		return 0, c.err
	case c.finRcvd, c.state == Closed:
		return 0, io.EOF
	}
	return 0, nil
}

// Write queues bytes from p for sending and returns how many fit (0 when
// the send buffer is full: the caller waits for EvWritable). It fails with
// EPIPE after CloseWrite or the error that ended the connection.
func (c *Conn) Write(p []byte, now time.Duration) (int, error) {
	if err := c.canWrite(now); err != nil {
		return 0, err
	}
	n := c.snd.Write(p)
	if n > 0 {
		c.output(now)
	}
	return n, nil
}

// WriteFunc is Write for bytes that fill puts in place, straight into
// the send buffer's free room (window.SendBuffer.WriteFunc): a socket
// read lands in the ring without a copy of its own. fill is called at
// most once, with the connection's state unchanged around it; it returns
// how many bytes it wrote. It fails as Write does.
func (c *Conn) WriteFunc(fill func(room []byte) int, now time.Duration) (int, error) {
	if err := c.canWrite(now); err != nil {
		return 0, err
	}
	n := c.snd.WriteFunc(fill)
	if n > 0 {
		c.output(now)
	}
	return n, nil
}

// canWrite is why the application may not queue bytes now: the error
// that ended the connection, or EPIPE once the sending side is closed.
func (c *Conn) canWrite(now time.Duration) error {
	c.clock = now
	if c.err != nil {
		return c.err
	}
	if !c.state.canSendData() || c.finQueued {
		return syscall.EPIPE
	}
	return nil
}

// SetNoDelay turns Nagle's algorithm off (true: small writes go out at
// once) or back on.
func (c *Conn) SetNoDelay(noDelay bool, now time.Duration) {
	c.clock = now
	c.noDelay = noDelay
	if noDelay {
		c.output(now)
	}
}

// SetRcvBuf fixes the receive buffer at n bytes and stops autotuning, as
// SO_RCVBUF does. It cannot exceed what the window scale agreed on the SYN
// can advertise, and the window already offered is still honoured.
func (c *Conn) SetRcvBuf(n int, now time.Duration) {
	c.clock = now
	c.tuner.Max = 0
	if c.state != SynSent && c.state != Closed && c.state != Listen {
		n = min(n, 0xffff<<c.rcvWScale)
	}
	// At least two window-scale units (and 256 bytes), or the window,
	// counted in whole units, could never open.
	c.setRcvLimit(max(n, 2<<c.rcvWScale, 256))
	c.maybeWindowUpdate()
	c.output(now)
}

// SetSndBuf sets the send buffer size, as SO_SNDBUF does. Bytes already
// queued stay queued.
func (c *Conn) SetSndBuf(n int) {
	c.snd.SetLimit(max(n, 1))
	if c.snd.Free() > 0 {
		c.events |= EvWritable
	}
}

// SetKeepAlive turns keepalive probing on with the given idle time and
// probe interval (period > 0), or off (period <= 0).
func (c *Conn) SetKeepAlive(period time.Duration, now time.Duration) {
	c.clock = now
	c.cfg.KeepAlive = period
	c.kaProbes = 0
	c.timers.stop(tKeepAlive)
	c.armKeepAlive(now)
}

// SetCongestionControl switches the connection to the named algorithm
// ("newreno", "cubic"). On an established connection the new controller
// starts from its initial window, as after an idle restart.
func (c *Conn) SetCongestionControl(name string) error {
	mss := c.sndMSS
	cc, err := retransmit.New(name, mss)
	if err != nil {
		return err
	}
	c.cfg.CongestionControl = name
	if c.cc != nil {
		c.cc = cc
	}
	return nil
}

// RcvBuf is the current receive buffer size (it grows with autotuning).
func (c *Conn) RcvBuf() int { return c.rcvBufSize }

// SndBuf is the send buffer's size now.
func (c *Conn) SndBuf() int { return c.snd.Limit() }

// CloseWrite closes the sending direction: a FIN follows the queued data
// (RFC 9293 §3.10.4, CLOSE call). Reading continues until the peer's FIN.
func (c *Conn) CloseWrite(now time.Duration) {
	c.clock = now
	if c.finQueued {
		return
	}
	switch c.state {
	case SynSent, Listen:
		// Nothing was sent that needs closing: delete the TCB.
		c.transition(AppClose, nil)
		c.stopTimers()
	case SynReceived, Established, CloseWait:
		c.finQueued = true
		c.transition(AppClose, nil)
		c.output(now)
	}
}

// Close closes both directions. If received data was never read the
// connection is reset instead, so the peer learns it was lost (RFC 2525
// §2.17, as Linux does); otherwise a FIN is sent after the queued data.
func (c *Conn) Close(now time.Duration) {
	c.clock = now
	c.readClosed = true
	if c.rcv.Len() > 0 && c.state.synchronized() && c.state != TimeWait {
		c.Abort(now)
		return
	}
	c.CloseWrite(now)
	c.checkOrphan(now)
	if c.state == Closed || c.state == TimeWait {
		c.rcv.Reset() // nobody will read it now
	}
}

// CloseRead shuts the receiving direction: Read returns io.EOF from now
// on, and data that still arrives is acknowledged and discarded (the peer
// is not told; TCP has no way to say "stop sending" but the window).
func (c *Conn) CloseRead() {
	c.readShut = true
	c.rcv.Discard(c.rcv.Len()) // drop what was never read
	c.maybeWindowUpdate()
	c.events |= EvReadable
}

// Abort resets the connection (RFC 9293 §3.10.5, ABORT call).
func (c *Conn) Abort(now time.Duration) {
	c.clock = now
	switch c.state {
	case Closed:
		return
	case SynReceived, Established, FinWait1, FinWait2, CloseWait:
		c.send(Segment{Seq: c.sndNxt, Flags: FlagRST})
	}
	c.transition(AppAbort, nil)
	c.stopTimers()
	if c.readClosed {
		c.rcv.Reset()
	}
	if c.err == nil {
		c.err = syscall.ECONNABORTED
	}
	c.events |= EvReadable | EvWritable
}

// transition moves the connection along the table edge for trigger.
func (c *Conn) transition(on Trigger, seg *Segment) {
	t, ok := lookupTransition(c.state, on)
	if !ok {
		return
	}
	c.state = t.To
	noteTransition(t)
	c.events |= EvState
	if t.To == Closed || t.To == TimeWait {
		c.events |= EvReadable | EvWritable
		// Nothing will be sent again: the send ring goes back to the
		// budget now. Unread received data stays for the application.
		c.snd.Reset()
		c.rcv.Release()
		c.flight.Clear()
	}
	if c.cfg.Trace != nil {
		c.cfg.Trace(t, seg)
	}
}

// fail ends the connection with err.
func (c *Conn) fail(on Trigger, seg *Segment, err error) {
	if c.softErr != nil && (on == TimeoutRetransmit || on == TimeoutKeepAlive) {
		err = c.softErr // what the network told us beats "timed out"
	}
	c.err = err
	c.transition(on, seg)
	c.state = Closed // every failure edge leads to CLOSED
	c.stopTimers()
	c.events |= EvReadable | EvWritable | EvState
}

func (c *Conn) stopTimers() {
	c.timers.stopAll()
}

// TimeWaitInfo returns the compact TIME-WAIT record of a connection in
// TIME-WAIT, for an owner that keeps a table of them and lets the full
// connection go; ok is false in any other state.
func (c *Conn) TimeWaitInfo() (tw TimeWaitEntry, ok bool) {
	if c.state != TimeWait {
		return TimeWaitEntry{}, false
	}
	return c.tw, true
}

// checkOrphan arms the FIN-WAIT-2 reclaim timer for a connection the
// application has closed: nobody will ever read from it, and a peer that
// never sends its FIN would otherwise hold it forever.
func (c *Conn) checkOrphan(now time.Duration) {
	if c.state == FinWait2 && c.readClosed && !c.timers.armed(tFinWait2) && c.cfg.FinTimeout > 0 {
		c.timers.arm(tFinWait2, now+c.cfg.FinTimeout)
	}
}

// orphaned reports whether the application has closed the connection
// (Close, not just CloseWrite): nobody will read from it or write to it
// again, and only the peer's cooperation can finish it.
func (c *Conn) orphaned() bool { return c.readClosed && c.finQueued }

// orphanGaveUp reports whether an orphan has made no progress through n
// retransmission timeouts or window probes, the first of them at since:
// the most OrphanRetries allows. With a low RTO floor they must also have
// taken as long as from the classic 200 ms floor (Linux counts its orphan
// retries in that time too), or a 5 ms floor would end an orphan in a
// second instead of the minutes a peer may need.
func (c *Conn) orphanGaveUp(n int, since, now time.Duration) bool {
	if !c.orphaned() || c.cfg.OrphanRetries <= 0 || n < c.cfg.OrphanRetries {
		return false
	}
	return c.lastedAsFrom200ms(c.cfg.OrphanRetries, since, now)
}

// endOrphan resets an orphan that the peer keeps from finishing, so the
// peer learns it is gone, and frees it (ETIMEDOUT, as Linux reports).
func (c *Conn) endOrphan() {
	c.send(Segment{Seq: c.sndMax, Flags: FlagRST})
	c.fail(TimeoutOrphan, nil, syscall.ETIMEDOUT)
}

// challengeACK schedules an RFC 5961 challenge ACK unless this second's
// allowance is spent (RFC 5961 §7).
func (c *Conn) challengeACK(now time.Duration) {
	if lim := c.cfg.ChallengeACKLimit; lim > 0 {
		if now-c.challengeSecond >= time.Second {
			c.challengeSecond, c.challengeCount = now, 0
		}
		if c.challengeCount >= lim {
			c.AcksLimited++
			return
		}
		c.challengeCount++
	}
	c.ackNow = true
}

// invalidAck answers an unacceptable segment with an ACK (RFC 9293
// §3.10.7.4), at most once per InvalidAckInterval (RFC 5961 §7; Linux
// tcp_invalid_ratelimit). One ACK carries everything the peer needs to
// know (RCV.NXT and the window), so holding back the rest loses nothing
// but an attacker's amplification and an ACK loop's fuel.
//
// Probes and duplicates are the exception: a segment one below RCV.NXT with at most one
// byte (a keepalive or zero-window probe, RFC 1122 §4.2.3.6 and
// §4.2.2.17) or one at RCV.NXT that a shut window refused asks for an ACK
// by design, and a sender backing off from a 200 ms RTO probes more often
// than the interval. They are answered each time, within the per-second
// allowance challenge ACKs have.
func (c *Conn) invalidAck(seg *Segment, now time.Duration) {
	probe := (seg.Seq == c.rcvNxt.Add(-1) && len(seg.Payload) <= 1 || seg.Seq == c.rcvNxt) &&
		!seg.Flags.Has(FlagSYN) && !seg.Flags.Has(FlagFIN)
	// A retransmission of data we have (it ends at or before RCV.NXT,
	// within a window of it) is answered too: its ACK (with a D-SACK
	// block) is what stops the sender's retransmissions.
	dup := len(seg.Payload) > 0 && seg.Seq.Add(len(seg.Payload)).LessThanEq(c.rcvNxt) &&
		c.rcvNxt.Sub(seg.Seq) <= 0xffff<<c.rcvWScale
	if probe || dup {
		c.challengeACK(now)
		return
	}
	if lim := c.cfg.InvalidAckInterval; lim > 0 {
		if now < c.nextInvalidAck {
			c.AcksLimited++
			return
		}
		c.nextInvalidAck = now + lim
	}
	c.ackNow = true
}
