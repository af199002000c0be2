// Package drill runs packetdrill scripts against a tund stack in virtual
// time.
//
// A packetdrill script (github.com/google/packetdrill) describes a TCP
// exchange as timed lines of three kinds: socket calls made by the
// application (`+0 accept(3, ..., ...) = 4`), packets injected into the
// stack (`< S 0:0(0) win 65535 <mss 1460>`) and packets the stack must
// send (`> S. 0:0(0) ack 1 <...>`). Sequence numbers are relative to each
// side's initial sequence number; times are in seconds, absolute or
// relative to the previous line.
//
// Here the stack runs on a stack.ManualClock over an in-memory device:
// injected packets are handed to its reader, packets it writes are
// stamped with the virtual time they left, and the clock moves only from
// one script event (or stack timer) to the next. A script that waits out
// 60 s of TIME-WAIT costs no wall time, and every run is deterministic.
//
// Two ways to compare the packets the stack sends: strict, as packetdrill
// does (every field, options byte for byte in order), and lenient, which
// does not compare what is one implementation's policy rather than the
// protocol: the advertised window, the window-scale shift, TS val, the
// order and padding of options, and socket-buffer sizes read back with
// getsockopt. A lenient run says which of these it ignored.
//
// Socket calls map onto the stack's API (socket, bind, listen, accept,
// connect, read/recv (MSG_PEEK too), write/send, close, shutdown, fcntl
// O_NONBLOCK, getsockopt/setsockopt for SO_ERROR, SO_LINGER, TCP_NODELAY,
// SO_RCVBUF/SO_SNDBUF, SO_KEEPALIVE, SO_REUSEADDR), with errno results as
// a kernel gives them. Shell lines in backticks set the stack's knobs where
// a sysctl has one (window scaling and timestamps, SACK, buffer sizes, the
// initial RTO, the delayed-ACK time), answer `sockstat | grep -c STATE`
// checks from the stack's own table, and are otherwise reported as
// ignored. What the runner cannot do (IPv6, UDP, ICMP injection, epoll,
// python blocks) makes the script unsupported, with the reason.
package drill
