// Package tcp is the protocol core of tund: sequence arithmetic, segment
// parsing, options, and the connection state machine of RFC 9293.
//
// The core is pure. A Conn takes segments, application calls and the
// current time as inputs, and produces segments (through its Sender) and
// events (through TakeEvents) as outputs. It owns no goroutine, reads no
// clock, takes no lock and does no I/O, so a test can drive a connection
// through a two-minute TIME-WAIT in microseconds. Package stack supplies
// the concurrency, the clock and the device.
//
// Where the rules live:
//   - seq.go: RFC 9293 §3.4 sequence numbers, with RFC 1982 serial arithmetic.
//   - segment.go, options.go: RFC 9293 §3.1-3.2 header and options (MSS,
//     RFC 7323 window scale and timestamps, RFC 2018 SACK).
//   - state.go, transitions.go: RFC 9293 §3.3.2 states and the transition
//     table the code, the trace and docs/state-diagram are built from.
//   - input.go: RFC 9293 §3.10.7 "SEGMENT ARRIVES", step by step, with the
//     RFC 5961 blind-attack rules.
//   - output.go: what to send now (windows, congestion window, FIN).
//   - timers.go: the connection's timers as one named set (timerID,
//     timerSet) — retransmission (RFC 6298), delayed ACK, persist,
//     TIME-WAIT, FIN-WAIT-2, loss probe, reorder, keepalive, PMTU — and
//     Tick, which runs the expired ones in a fixed order.
//   - isn.go: RFC 6528 initial sequence numbers.
package tcp
