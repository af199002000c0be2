// Command load puts a running tund under load through its real TUN
// device. It runs inside the network namespace tund's device lives in
// (ip netns exec NS load MODE ...): real clients are kernel sockets, the
// flood's spoofed SYNs go out through a raw socket, and tund's memory and
// counters are read from /proc/PID/status and its control socket. Every
// loop is bounded in count and in time. scripts/load.sh runs the full
// sizes; the integration tests run the same modes at CI sizes.
//
//	load conns -n 10000 -dialers 32   N connections open at once, each moving verified bytes through echo
//	load churn -n 100000              N short HTTP connections at full speed, then the wait for TIME-WAIT
//	load flood -n 100000              spoofed SYNs while a real client keeps connecting
//
// With -json the result is one JSON object on stdout (the integration
// tests read it); otherwise a few lines for people.
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tund-project/tund/stack"
)

func main() {
	if len(os.Args) < 2 {
		usage()
	}
	var err error
	switch os.Args[1] {
	case "conns":
		err = runConns(os.Args[2:])
	case "churn":
		err = runChurn(os.Args[2:])
	case "flood":
		err = runFlood(os.Args[2:])
	default:
		usage()
	}
	if err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintf(os.Stderr, "load: %v\n", err)
		os.Exit(1)
	}
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: load conns|churn|flood [flags]   (load MODE -h for the flags)")
	os.Exit(2)
}

// common are the flags every mode has.
type common struct {
	pid     int
	control string
	dev     string
	asJSON  bool
	limit   time.Duration
}

// newFlags is the flag set of one mode, with the common flags on it.
func (c *common) newFlags(mode string, limit time.Duration) *flag.FlagSet {
	fs := flag.NewFlagSet("load "+mode, flag.ContinueOnError)
	fs.IntVar(&c.pid, "pid", 0, "tund's process `id`, to read its RSS from /proc (0: not reported)")
	fs.StringVar(&c.control, "control", "", "tund's control socket `path`, for its counters, heap and goroutines (\"\": not reported)")
	fs.StringVar(&c.dev, "dev", "tund0", "tund's TUN `device`, whose queue drops are reported")
	fs.BoolVar(&c.asJSON, "json", false, "print the result as one JSON object")
	fs.DurationVar(&c.limit, "limit", limit, "give up after this long, whatever is left")
	return fs
}

// inRange checks the value of flag -name.
func inRange(name string, v, lo, hi int) error {
	if v < lo || v > hi {
		return fmt.Errorf("-%s %d: must be %d..%d", name, v, lo, hi)
	}
	return nil
}

// tundSample is what tund looks like at one moment.
type tundSample struct {
	RSS        uint64 `json:"rss_bytes,omitempty"`  // VmRSS of the tund process
	Heap       uint64 `json:"heap_bytes,omitempty"` // live heap objects, from tund stats
	Goroutines int    `json:"goroutines,omitempty"`
	// From tund's counters.
	BacklogFull    uint64         `json:"backlog_full"`
	SynQueueFull   uint64         `json:"syn_queue_full"`
	SynCookiesSent uint64         `json:"syn_cookies_sent"`
	SynCookiesOK   uint64         `json:"syn_cookies_valid"`
	HalfOpenEvict  uint64         `json:"half_open_evicted"`
	PassiveOpens   uint64         `json:"passive_opens"`
	TimeWait       uint64         `json:"time_wait"`
	TimeWaitReused uint64         `json:"time_wait_reused"`
	States         map[string]int `json:"states,omitempty"`
}

// sample reads tund's figures; what cannot be read stays zero. With gc,
// tund first collects garbage and returns free memory to the OS, so heap
// and RSS show what is live (tund's control command "gc").
func (c *common) sample(gc bool) (tundSample, error) {
	var s tundSample
	if c.control != "" {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		var st stack.Stats
		cmd := "stats"
		if gc {
			cmd = "gc"
		}
		if err := stack.QueryControl(ctx, c.control, cmd, &st); err != nil {
			return s, err
		}
		if err := stack.QueryControl(ctx, c.control, "states", &s.States); err != nil {
			return s, err
		}
		s.Heap, s.Goroutines = st.HeapBytes, st.Goroutines
		s.BacklogFull, s.SynQueueFull = st.Drops["backlog_full"], st.Drops["syn_queue_full"]
		s.SynCookiesSent, s.SynCookiesOK = st.SynCookiesSent, st.SynCookiesValid
		s.HalfOpenEvict = st.HalfOpenEvicted
		s.PassiveOpens = st.PassiveOpens
		s.TimeWait, s.TimeWaitReused = st.TimeWait, st.TimeWaitReused
	}
	if c.pid != 0 { // after a "gc", so that it counts
		rss, err := procRSS(c.pid)
		if err != nil {
			return s, err
		}
		s.RSS = rss
	}
	return s, nil
}

// mustSample is sample for the moments a mode cannot do without.
func (c *common) mustSample(gc bool) tundSample {
	s, err := c.sample(gc)
	if err != nil {
		fmt.Fprintf(os.Stderr, "load: reading tund's figures: %v\n", err)
		os.Exit(1)
	}
	return s
}

// procRSS is VmRSS of process pid, in bytes.
func procRSS(pid int) (uint64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseUint(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status: VmRSS %q: %v", pid, v, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}

// kernelSynRetrans is the kernel's TcpExt TCPSynRetrans counter in this
// namespace: SYNs our kernel clients sent again because no SYN+ACK came
// within the timeout (1 s for the first).
func kernelSynRetrans() uint64 {
	b, err := os.ReadFile("/proc/net/netstat")
	if err != nil {
		return 0
	}
	lines := strings.Split(string(b), "\n")
	for i := 0; i+1 < len(lines); i++ {
		if !strings.HasPrefix(lines[i], "TcpExt:") || !strings.HasPrefix(lines[i+1], "TcpExt:") {
			continue
		}
		names, values := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		for j, n := range names {
			if n == "TCPSynRetrans" && j < len(values) {
				v, _ := strconv.ParseUint(values[j], 10, 64)
				return v
			}
		}
	}
	return 0
}

// tunDrops is how many packets the kernel dropped on their way to tund
// because the TUN device's queue was full (tund not reading fast enough):
// tx_dropped of the device, as this namespace's sysfs shows it.
func tunDrops(dev string) uint64 {
	b, err := os.ReadFile("/sys/class/net/" + dev + "/statistics/tx_dropped")
	if err != nil {
		return 0
	}
	v, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return v
}

// latencies summarizes durations.
type latencies struct {
	P50 time.Duration `json:"p50_ns"`
	P99 time.Duration `json:"p99_ns"`
	Max time.Duration `json:"max_ns"`
	// Over1s counts the ones that took a second or more: with a kernel
	// client, a SYN that went unanswered and was sent again.
	Over1s int `json:"over_1s"`
}

func summarize(d []time.Duration) latencies {
	if len(d) == 0 {
		return latencies{}
	}
	d = slices.Clone(d)
	slices.Sort(d)
	l := latencies{P50: d[len(d)/2], P99: d[len(d)*99/100], Max: d[len(d)-1]}
	for _, x := range d {
		if x >= time.Second {
			l.Over1s++
		}
	}
	return l
}

func (l latencies) String() string {
	return fmt.Sprintf("p50 %v  p99 %v  max %v  (%d took ≥ 1 s)",
		l.P50.Round(time.Microsecond), l.P99.Round(time.Microsecond), l.Max.Round(time.Microsecond), l.Over1s)
}

// errorTally counts errors by message, keeping the first few messages.
type errorTally struct {
	Count int            `json:"count"`
	Kinds map[string]int `json:"kinds,omitempty"`
}

func (e *errorTally) add(err error) {
	e.Count++
	if e.Kinds == nil {
		e.Kinds = map[string]int{}
	}
	msg := err.Error()
	if _, ok := e.Kinds[msg]; ok || len(e.Kinds) < 8 {
		e.Kinds[msg]++
	} else {
		e.Kinds["(other)"]++
	}
}

// emit prints v as JSON or as text (text(w) prints it for people).
func emit(asJSON bool, v any, text func(w io.Writer)) error {
	if asJSON {
		return json.NewEncoder(os.Stdout).Encode(v)
	}
	text(os.Stdout)
	return nil
}

// mib formats bytes as MiB.
func mib(b uint64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// perConn is (after - before) / n, in bytes (0 if it went down).
func perConn(before, after uint64, n int) float64 {
	if n == 0 || after < before {
		return 0
	}
	return float64(after-before) / float64(n)
}
