// Package window owns flow control for the tcp core: the send buffer that
// holds unacknowledged and unsent bytes, the receive buffer whose free space
// becomes the advertised window, and the reassembly of out-of-order data
// inside that window (RFC 9293 §3.8.6, §3.10.7.4).
//
// Both buffers are byte rings that grow on demand up to a limit, taken
// from process-wide pools when bytes arrive and given back the moment
// they are empty (ringpool.go), so an idle connection holds no ring and a
// busy one copies each byte exactly once in and once out. The buffers know
// nothing about sequence numbers, segments or clocks: the tcp core converts
// sequence numbers to offsets. Only the send-window update rule compares
// sequence numbers, as seqnum.Seq, the type the tcp core uses.
package window
