package drill

import (
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/tund-project/tund/ip"
	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
)

// Options control a run.
type Options struct {
	// Lenient does not compare what is one implementation's policy rather
	// than the protocol: advertised windows, the window-scale shift, TS
	// val, PSH, option order and padding, and buffer sizes read back
	// with getsockopt. What it ignored is listed in Result.Ignored.
	Lenient bool
	// Tolerance overrides the script's --tolerance_usecs (0: the
	// script's, or packetdrill's default of 4 ms).
	Tolerance time.Duration
}

// Status is how a script ended.
type Status uint8

// The statuses.
const (
	Pass Status = iota
	Fail
	Unsupported
)

func (s Status) String() string {
	return [...]string{"PASS", "FAIL", "UNSUPPORTED"}[s]
}

// Result is the outcome of running one script.
type Result struct {
	Path   string
	Status Status
	Line   int    // the line that failed, or made the script unsupported
	Reason string // one line: what failed, or what is not supported
	// Detail is the failure told in full: the script line, the packet
	// expected, the packet seen (or none) and when, and the trace of
	// state transitions up to there.
	Detail string
	// Ignored lists what lenient mode did not compare, and shell
	// commands the runner could not map onto the stack, once each.
	Ignored []string
	// Virtual is how much virtual time the script took.
	Virtual time.Duration
}

// The addresses and ports of a run, packetdrill's defaults.
var (
	localAddr  = netip.MustParseAddr("192.168.0.1") // the stack
	remoteAddr = netip.MustParseAddr("192.0.2.1")   // the script's side
)

const (
	localPort  = 8080  // what bind() gives the stack's socket
	remotePort = 40000 // the script's port for a passive open
	connectTo  = 8080  // the script's port for an active open
	// remoteISN is the script side's initial sequence number: inbound
	// sequence numbers are offset by it (the scripts write them
	// relative to 0).
	remoteISN = 0x2bc00000
	firstFD   = 3
)

// failure ends a run; it carries the line and what went wrong.
type failure struct {
	status Status
	line   int
	reason string
	detail string
}

func (f *failure) Error() string { return fmt.Sprintf("%d: %s", f.line, f.reason) }

// Run runs a parsed script against a fresh stack and reports the result.
func Run(s *Script, opts Options) Result {
	res := Result{Path: s.Path}
	if s.Unsupported != "" {
		res.Status, res.Reason = Unsupported, s.Unsupported
		return res
	}
	r := newRunner(s, opts)
	defer r.close()
	err := r.run()
	res.Virtual = r.now()
	res.Ignored = r.ignoredList()
	if err != nil {
		f, ok := err.(*failure)
		if !ok {
			f = &failure{status: Fail, reason: err.Error()}
		}
		res.Status, res.Line, res.Reason, res.Detail = f.status, f.line, f.reason, f.detail
	}
	return res
}

// runner is the state of one run.
type runner struct {
	script *Script
	opts   Options
	tol    time.Duration

	clock *stack.ManualClock
	dev   *device
	st    *stack.Stack
	cfg   stack.Config
	trace []string

	fds map[int]*socket

	// The connection the packets are about.
	lport, rport uint16
	localOff     uint32 // script → live for the stack's sequence numbers
	localKnown   bool
	tsMap        map[uint32]uint32 // script TS val → live, of outbound packets
	tsFirst      [2]uint32         // first script and live outbound TS val
	tsSeen       bool
	queued       []sent // packets sent and not yet matched

	ev        *Event
	lastTime  time.Duration // script time of the previous event
	lastIn    bool          // the previous event was an inbound packet
	pending   *pendingCall
	ignored   map[string]bool
	ignoreOrd []string
}

func newRunner(s *Script, opts Options) *runner {
	r := &runner{script: s, opts: opts, fds: map[int]*socket{},
		tsMap: map[uint32]uint32{}, ignored: map[string]bool{}}
	r.tol = 4 * time.Millisecond // packetdrill's default
	if v, err := strconv.Atoi(s.Options["tolerance_usecs"]); err == nil && v >= 0 {
		r.tol = time.Duration(v) * time.Microsecond
	}
	if opts.Tolerance > 0 {
		r.tol = opts.Tolerance
	}
	r.clock = stack.NewManualClock()
	r.cfg = stack.Config{
		Addr:   localAddr,
		Clock:  r.clock,
		Seed:   1, // the same ISNs every run: a failure reproduces
		Logger: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Trace: func(ev stack.TraceEvent) {
			r.trace = append(r.trace, fmt.Sprintf("%10.6f %s", ev.Time.Seconds(), ev))
		},
	}
	return r
}

func (r *runner) now() time.Duration { return r.clock.Now() }

func (r *runner) close() {
	if r.st != nil {
		r.st.Close()
	}
}

// ignore notes, once, something lenient mode or the runner let pass.
func (r *runner) ignore(what string) {
	if !r.ignored[what] {
		r.ignored[what] = true
		r.ignoreOrd = append(r.ignoreOrd, what)
	}
}

func (r *runner) ignoredList() []string { return r.ignoreOrd }

// fail builds a failure at the current event.
func (r *runner) fail(format string, args ...any) error {
	f := &failure{status: Fail, reason: fmt.Sprintf(format, args...)}
	if r.ev != nil {
		f.line = r.ev.Line
	}
	f.detail = r.story(f.reason)
	return f
}

// unsupported ends the run as unsupported at the current event.
func (r *runner) unsupported(format string, args ...any) error {
	f := &failure{status: Unsupported, reason: fmt.Sprintf(format, args...)}
	if r.ev != nil {
		f.line = r.ev.Line
	}
	return f
}

// story tells a failure in full for a person: where, what, and the
// connection's transitions so far.
func (r *runner) story(reason string) string {
	var b strings.Builder
	if r.ev != nil {
		fmt.Fprintf(&b, "%s:%d: %s\n", r.script.Path, r.ev.Line, firstLine(r.ev.Text))
	}
	fmt.Fprintf(&b, "  at %.6f s (virtual): %s\n", r.now().Seconds(), reason)
	if len(r.trace) > 0 {
		b.WriteString("  state transitions so far:\n")
		for _, t := range r.trace {
			b.WriteString("    " + t + "\n")
		}
	}
	return b.String()
}

// start creates the stack, with the knobs the script's shell lines set
// so far, the first time an event needs it.
func (r *runner) start() error {
	if r.st != nil {
		return nil
	}
	r.dev = newDevice(r.clock, 1500)
	st, err := stack.New(r.dev, r.cfg)
	if err != nil {
		return err
	}
	r.st = st
	return r.dev.started()
}

// run plays the events in order.
func (r *runner) run() error {
	for _, ev := range r.script.Events {
		r.ev = ev
		if ev.Code {
			return r.unsupported("%%{ }%% code blocks")
		}
		if ev.Shell != "" && r.st == nil {
			// Set-up before anything else: sysctls become the stack's
			// configuration.
			if err := r.shell(ev.Shell); err != nil {
				return err
			}
			continue
		}
		if err := r.start(); err != nil {
			return err
		}
		at, err := r.eventTime(ev)
		if err != nil {
			return err
		}
		switch {
		case ev.Packet != nil && ev.Packet.Unsupported != "":
			return r.unsupported("%s", ev.Packet.Unsupported)
		case ev.Packet != nil && ev.Packet.Inbound:
			if err := r.advanceTo(at); err != nil {
				return err
			}
			if err := r.inject(ev.Packet); err != nil {
				return err
			}
		case ev.Packet != nil:
			if err := r.expect(ev, at); err != nil {
				return err
			}
		case ev.Call != nil:
			if ev.Call.Unsupported != "" {
				return r.unsupported("%s", ev.Call.Unsupported)
			}
			if err := r.advanceTo(at); err != nil {
				return err
			}
			if err := r.call(ev, at); err != nil {
				return err
			}
		case ev.Shell != "":
			if err := r.advanceTo(at); err != nil {
				return err
			}
			if err := r.shell(ev.Shell); err != nil {
				return err
			}
		}
		r.lastTime = at
		if ev.TimeKind == TimeAny {
			r.lastTime = r.now()
		}
		r.lastIn = ev.Packet != nil && ev.Packet.Inbound
		if err := r.checkPending(); err != nil {
			return err
		}
	}
	r.ev = nil
	if r.pending != nil {
		r.ev = r.pending.ev
		return r.fail("%s never returned", r.pending.ev.Call.Name)
	}
	return nil
}

// eventTime is when an event is due, in virtual time. Relative times
// count from now (the previous event's end), except that consecutive
// inbound packets count from the previous one's script time, as in
// packetdrill, so that their spacing is exact.
func (r *runner) eventTime(ev *Event) (time.Duration, error) {
	var at time.Duration
	switch ev.TimeKind {
	case TimeAny:
		return r.now(), nil
	case TimeAbsolute:
		at = ev.Time
	case TimeRelative:
		base := r.now()
		if r.lastIn && ev.Packet != nil && ev.Packet.Inbound {
			base = r.lastTime
		}
		at = base + ev.Time
	}
	if at < r.now()-r.tol {
		return 0, r.fail("the script's time %.6f is %v in the past", at.Seconds(), r.now()-at)
	}
	return max(at, r.now()), nil
}

// advanceTo moves virtual time to at, timer by timer, retrying a pending
// blocking call after each.
func (r *runner) advanceTo(at time.Duration) error {
	for {
		next, ok := r.clock.NextTimer()
		if !ok || next > at {
			break
		}
		r.clock.Advance(next - r.now())
		if err := r.checkPending(); err != nil {
			return err
		}
	}
	if at > r.now() {
		r.clock.Advance(at - r.now())
	}
	return r.checkPending()
}

// sortedKeys is the map's keys in order, for stable messages.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// wire builds the IPv4 packet for a segment from the script's side.
func wire(seg *tcp.Segment) []byte {
	b := make([]byte, ip.IPv4HeaderLen+seg.HeaderLen()+len(seg.Payload))
	_, n := ip.BuildTCP(scriptNet, b, localAddr, 0, seg, false)
	return b[:n]
}

// scriptNet is the network layer of the script's side.
var scriptNet = ip.NewIPv4(remoteAddr)
