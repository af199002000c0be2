// Package retransmit owns loss recovery and congestion control for the tcp
// core: the retransmission timeout estimator (RFC 6298), its exponential
// backoff, and the congestion controller that bounds how much may be in
// flight (RFC 5681 slow start and congestion avoidance, fast retransmit and
// fast recovery, RFC 6928 initial window).
//
// It knows nothing about segments, goroutines or clocks: callers pass byte
// counts, durations and, to the SACK scoreboard, sequence numbers of the
// shared type seqnum.Seq, so every rule here can be tested with plain
// numbers. It does not decide what to send (that is the tcp core) nor how
// large the peer's window is (package window).
package retransmit
