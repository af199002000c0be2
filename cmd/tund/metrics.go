package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tund-project/tund/stack"
	"github.com/tund-project/tund/tcp"
)

// The Prometheus endpoint (-metrics). The collector reads the stack's
// counters on every scrape: nothing runs between scrapes.

// stackCounter is one plain counter of stack.Stats.
type stackCounter struct {
	desc *prometheus.Desc
	get  func(*stack.Stats) uint64
}

// stackCollector is a prometheus.Collector for a stack.
type stackCollector struct {
	st       *stack.Stack
	counters []stackCounter
	packets  *prometheus.Desc // {direction}
	segments *prometheus.Desc // {direction}
	supers   *prometheus.Desc // {direction}
	queueIn  *prometheus.Desc // {queue}
	drops    *prometheus.Desc // {reason}
	conns    *prometheus.Desc // {state}
	timeWait *prometheus.Desc
	// The resource limits, each labelled {limit}.
	limitHits, limitUse, limitCap *prometheus.Desc
	pressure                      *prometheus.Desc
}

func newStackCollector(st *stack.Stack) *stackCollector {
	counter := func(name, help string, get func(*stack.Stats) uint64) stackCounter {
		return stackCounter{prometheus.NewDesc("tund_"+name, help, nil, nil), get}
	}
	return &stackCollector{
		st: st,
		counters: []stackCounter{
			counter("retransmitted_segments_total", "TCP segments sent again, for any reason (timeout, fast retransmit, SACK recovery, tail loss probe).",
				func(s *stack.Stats) uint64 { return s.Retransmits }),
			counter("retransmission_timeouts_total", "Retransmission timer expirations (RFC 6298).",
				func(s *stack.Stats) uint64 { return s.Timeouts }),
			counter("fast_recoveries_total", "Fast recoveries entered (RFC 6582 NewReno or RFC 6675 SACK).",
				func(s *stack.Stats) uint64 { return s.Recoveries }),
			counter("tail_loss_probes_total", "Tail loss probes sent (RFC 8985).",
				func(s *stack.Stats) uint64 { return s.Probes }),
			counter("dsacks_received_total", "D-SACK blocks received (RFC 2883): segments the peer got twice, most often sent again needlessly.",
				func(s *stack.Stats) uint64 { return s.DSACKs }),
			counter("spurious_recoveries_undone_total", "Loss episodes whose window reduction was undone: every resend D-SACKed (RFC 2883), or timestamps showed the originals arrived (RFC 3522).",
				func(s *stack.Stats) uint64 { return s.Spurious }),
			counter("resets_sent_total", "RSTs sent for segments no connection wanted (RFC 9293 §3.10.7.1).",
				func(s *stack.Stats) uint64 { return s.ResetsSent }),
			counter("echo_replies_total", "ICMP and ICMPv6 echo replies sent.",
				func(s *stack.Stats) uint64 { return s.EchoReplies }),
			counter("icmp_errors_sent_total", "ICMPv6 Parameter Problems sent about packets whose extension headers or next header the stack refused (RFC 8200 §4).",
				func(s *stack.Stats) uint64 { return s.ICMPErrorsSent }),
			counter("icmp_errors_rate_limited_total", "ICMP errors not sent because of the rate limit (RFC 4443 §2.4 (f)).",
				func(s *stack.Stats) uint64 { return s.ICMPErrorsLimited }),
			counter("active_opens_total", "Connections the stack opened (Dial).",
				func(s *stack.Stats) uint64 { return s.ActiveOpens }),
			counter("passive_opens_total", "Connections opened by a peer's SYN to a listener.",
				func(s *stack.Stats) uint64 { return s.PassiveOpens }),
			counter("device_write_errors_total", "Packets the device failed to write.",
				func(s *stack.Stats) uint64 { return s.WriteErrors }),
			counter("syn_cookies_sent_total", "SYN+ACKs sent with a SYN cookie (RFC 4987) because a backlog was full.",
				func(s *stack.Stats) uint64 { return s.SynCookiesSent }),
			counter("syn_cookies_valid_total", "Connections made from a returned valid SYN cookie.",
				func(s *stack.Stats) uint64 { return s.SynCookiesValid }),
			counter("half_open_evicted_total", "Half-open connections a listener with a full SYN queue and SYN cookies off gave up to admit a new SYN (RFC 4987 §3.4).",
				func(s *stack.Stats) uint64 { return s.HalfOpenEvicted }),
			counter("time_wait_expired_total", "TIME-WAIT entries that lived their full 2MSL.",
				func(s *stack.Stats) uint64 { return s.TimeWaitExpired }),
			counter("time_wait_reused_total", "TIME-WAIT tuples reopened early by a safe SYN.",
				func(s *stack.Stats) uint64 { return s.TimeWaitReused }),
			counter("icmp_errors_total", "ICMP errors about our TCP segments, handed to their connections (RFC 1122 §4.2.3.9).",
				func(s *stack.Stats) uint64 { return s.ICMPErrors }),
			counter("acks_rate_limited_total", "ACKs held back by a rate limit: answers to unacceptable segments (RFC 5961 §7) and challenge ACKs past their cap.",
				func(s *stack.Stats) uint64 { return s.AcksRateLimited }),
			counter("memory_pressure_events_total", "Times the ring memory budget went under pressure (three quarters of -mem-limit).",
				func(s *stack.Stats) uint64 { return s.MemoryPressureEvents }),
		},
		limitHits: prometheus.NewDesc("tund_limit_hits_total",
			"Times a resource limit was hit: connections (dial refused or SYN dropped), orphans (reset at close), time_wait (closed without TIME-WAIT), memory (ring growth refused).",
			[]string{"limit"}, nil),
		limitUse: prometheus.NewDesc("tund_limit_used",
			"What each limited resource holds now: connections, orphans, time_wait (entries), memory (ring bytes).", []string{"limit"}, nil),
		limitCap: prometheus.NewDesc("tund_limit_max",
			"The cap of each limited resource (-max-connections, -max-orphans, -max-time-wait, -mem-limit).", []string{"limit"}, nil),
		pressure: prometheus.NewDesc("tund_memory_pressure",
			"Ring memory pressure now: 0 normal, 1 pressure (no growth, windows shrink), 2 exhausted (growth refused).", nil, nil),
		packets: prometheus.NewDesc("tund_packets_total",
			"IP packets (IPv4 and IPv6) read from (in) and written to (out) the device.", []string{"direction"}, nil),
		segments: prometheus.NewDesc("tund_segments_total",
			"TCP segments received (in, after the IP and TCP checks) and sent (out).", []string{"direction"}, nil),
		supers: prometheus.NewDesc("tund_super_segments_total",
			"TCP super-segments among the packets (a device with offloads: one packet, many segments on the wire).", []string{"direction"}, nil),
		queueIn: prometheus.NewDesc("tund_queue_packets_in_total",
			"Packets read from each queue of the device (-queues), each by its own reader.", []string{"queue"}, nil),
		drops: prometheus.NewDesc("tund_drops_total",
			"Inbound packets and segments dropped, by reason (checksum, tcp_checksum, out_of_window, no_listener, backlog_full, syn_queue_full, ...).",
			[]string{"reason"}, nil),
		conns: prometheus.NewDesc("tund_connections",
			"Connections per RFC 9293 state now; listeners count as LISTEN, TIME-WAIT table entries as TIME-WAIT.",
			[]string{"state"}, nil),
		timeWait: prometheus.NewDesc("tund_time_wait_entries",
			"Entries in the TIME-WAIT table now.", nil, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *stackCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, k := range c.counters {
		ch <- k.desc
	}
	ch <- c.packets
	ch <- c.segments
	ch <- c.supers
	ch <- c.queueIn
	ch <- c.drops
	ch <- c.conns
	ch <- c.timeWait
	ch <- c.limitHits
	ch <- c.limitUse
	ch <- c.limitCap
	ch <- c.pressure
}

// Collect implements prometheus.Collector: one look at the stack's
// counters per scrape.
func (c *stackCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.st.Stats()
	counts := c.st.StateCounts()
	for _, k := range c.counters {
		ch <- prometheus.MustNewConstMetric(k.desc, prometheus.CounterValue, float64(k.get(&s)))
	}
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(s.PacketsIn), "in")
	ch <- prometheus.MustNewConstMetric(c.packets, prometheus.CounterValue, float64(s.PacketsOut), "out")
	ch <- prometheus.MustNewConstMetric(c.segments, prometheus.CounterValue, float64(s.SegmentsIn), "in")
	ch <- prometheus.MustNewConstMetric(c.segments, prometheus.CounterValue, float64(s.SegmentsOut), "out")
	ch <- prometheus.MustNewConstMetric(c.supers, prometheus.CounterValue, float64(s.SuperSegmentsIn), "in")
	ch <- prometheus.MustNewConstMetric(c.supers, prometheus.CounterValue, float64(s.SuperSegmentsOut), "out")
	for i, n := range s.QueuePacketsIn {
		ch <- prometheus.MustNewConstMetric(c.queueIn, prometheus.CounterValue, float64(n), strconv.Itoa(i))
	}
	for reason, n := range s.Drops {
		ch <- prometheus.MustNewConstMetric(c.drops, prometheus.CounterValue, float64(n), reason)
	}
	// Every state, zeros included, so that no series comes and goes.
	for state := tcp.Closed; state <= tcp.TimeWait; state++ {
		ch <- prometheus.MustNewConstMetric(c.conns, prometheus.GaugeValue, float64(counts[state]), state.String())
	}
	ch <- prometheus.MustNewConstMetric(c.timeWait, prometheus.GaugeValue, float64(s.TimeWait))
	for _, l := range []struct {
		name          string
		hits          uint64
		used, maximum float64
	}{
		{"connections", s.ConnLimitHit, float64(s.Connections), float64(s.Limits.MaxConnections)},
		{"orphans", s.OrphanOverflow, float64(s.Orphans), float64(s.Limits.MaxOrphans)},
		{"time_wait", s.TimeWaitOverflow, float64(s.TimeWait), float64(s.Limits.MaxTimeWait)},
		{"memory", s.MemoryRefused, float64(s.MemoryUsed), float64(s.Limits.MemLimit)},
	} {
		ch <- prometheus.MustNewConstMetric(c.limitHits, prometheus.CounterValue, float64(l.hits), l.name)
		ch <- prometheus.MustNewConstMetric(c.limitUse, prometheus.GaugeValue, l.used, l.name)
		ch <- prometheus.MustNewConstMetric(c.limitCap, prometheus.GaugeValue, l.maximum, l.name)
	}
	level := map[string]float64{"pressure": 1, "exhausted": 2}[s.MemoryPressure]
	ch <- prometheus.MustNewConstMetric(c.pressure, prometheus.GaugeValue, level)
}

// newMetricsRegistry is the registry -metrics serves: the stack's
// metrics plus the Go runtime's and the process's.
func newMetricsRegistry(st *stack.Stack) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(newStackCollector(st), forwardCollector{},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// checkMetricsAddr validates a -metrics address: host:port, the host
// optional (all addresses), port 0 meaning any free port.
func checkMetricsAddr(addr string) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("-metrics %q: not a host:port address such as 127.0.0.1:9464", addr)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || (p == 0 && port != "0") {
		return fmt.Errorf("-metrics %q: port %q is not a number 0..65535", addr, port)
	}
	return nil
}

// serveMetrics listens on addr (in the network namespace tund runs in,
// the host's, not -netns) and serves the registry at /metrics. It logs
// the address bound ("metrics ready", useful with port 0); stop shuts the
// server down.
func serveMetrics(addr string, st *stack.Stack, log *slog.Logger, hub *diagramHub) (stop func(), err error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-metrics %q: %w", addr, err)
	}
	errLog := slog.NewLogLogger(log.Handler(), slog.LevelWarn)
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(newMetricsRegistry(st), promhttp.HandlerOpts{ErrorLog: errLog}))
	// Go's profiler beside the metrics, host side as well: `go tool pprof
	// http://ADDR/debug/pprof/profile?seconds=10` (docs/performance.md).
	mux.HandleFunc("GET /debug/pprof/", pprof.Index)
	mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	if hub != nil {
		hub.routes(mux) // the live state diagram, /diagram
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: errLog}
	go func() {
		if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("metrics server stopped", "err", err)
		}
	}()
	log.Info("metrics ready", "addr", l.Addr().String(), "url", "http://"+l.Addr().String()+"/metrics")
	if hub != nil {
		log.Info("live state diagram", "url", "http://"+l.Addr().String()+"/diagram")
	}
	return func() {
		if hub != nil {
			hub.close() // ends the diagram's event streams, which Shutdown would wait for
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_ = srv.Shutdown(ctx)
	}, nil
}

// forwardCollector exports -forward's counters.
type forwardCollector struct{}

var (
	fwdConnsDesc = prometheus.NewDesc("tund_forward_connections_total",
		"Connections -forward joined to their target.", nil, nil)
	fwdActiveDesc = prometheus.NewDesc("tund_forward_connections",
		"Forwarded connections open now.", nil, nil)
	fwdBytesDesc = prometheus.NewDesc("tund_forward_bytes_total",
		"Bytes forwarded, to the targets (to_target) and back to the clients (to_client).", []string{"direction"}, nil)
	fwdFailDesc = prometheus.NewDesc("tund_forward_failures_total",
		"Forwarded connections reset: the target refused or could not be reached in time (refused, unreachable), a reset carried across (reset), a peer gone silent mid-connection (lost).", []string{"reason"}, nil)
)

func (forwardCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- fwdConnsDesc
	ch <- fwdActiveDesc
	ch <- fwdBytesDesc
	ch <- fwdFailDesc
}

func (forwardCollector) Collect(ch chan<- prometheus.Metric) {
	s := &fwdStats
	ch <- prometheus.MustNewConstMetric(fwdConnsDesc, prometheus.CounterValue, float64(s.conns.Load()))
	ch <- prometheus.MustNewConstMetric(fwdActiveDesc, prometheus.GaugeValue, float64(s.active.Load()))
	ch <- prometheus.MustNewConstMetric(fwdBytesDesc, prometheus.CounterValue, float64(s.toTarget.Load()), "to_target")
	ch <- prometheus.MustNewConstMetric(fwdBytesDesc, prometheus.CounterValue, float64(s.toClient.Load()), "to_client")
	ch <- prometheus.MustNewConstMetric(fwdFailDesc, prometheus.CounterValue, float64(s.refused.Load()), "refused")
	ch <- prometheus.MustNewConstMetric(fwdFailDesc, prometheus.CounterValue, float64(s.failed.Load()), "unreachable")
	ch <- prometheus.MustNewConstMetric(fwdFailDesc, prometheus.CounterValue, float64(s.resets.Load()), "reset")
	ch <- prometheus.MustNewConstMetric(fwdFailDesc, prometheus.CounterValue, float64(s.lost.Load()), "lost")
}
