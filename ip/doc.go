// Package ip is tund's IPv4 layer: it validates inbound packets and counts
// every drop by reason, builds outbound headers, computes checksums
// (including the TCP pseudo-header), and answers ICMP echo requests.
//
// It covers RFC 791 (the header), the RFC 1122 §3.2.1 checks a host MUST
// make on input, and RFC 792 / RFC 1122 §3.2.2.6 echo. It does not
// reassemble fragments (they are dropped and counted), route, or send
// anything itself: the stack writes what it builds. Nothing here allocates
// per packet; byte layouts come from gvisor.dev/gvisor/pkg/tcpip/header.
package ip
