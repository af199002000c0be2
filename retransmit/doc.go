// Package retransmit is the arithmetic of loss recovery and congestion
// control for the tcp core:
//
//   - the retransmission timeout estimator (RFC 6298) and its backoff;
//   - Flight, the record of every segment in flight with the time it left,
//     and RACK, which reads loss from those times (RFC 8985 §6.2);
//   - PRR, how much may be sent during recovery (RFC 6937);
//   - the SACK scoreboard and RFC 6675's IsLost;
//   - the congestion controllers behind Controller: NewReno (RFC 5681,
//     RFC 6582) and CUBIC (RFC 9438), each able to undo a reduction that
//     proved spurious.
//
// It knows nothing about goroutines or clocks: callers pass byte counts,
// durations and sequence numbers (seqnum.Seq), so every rule here can be
// tested with plain numbers. It decides nothing about when to send: the
// tcp core's recovery.go drives it, and package window owns the peer's
// window.
package retransmit
