// Package ip is tund's IPv4 layer. It owns:
//
//   - validation and parsing of inbound packets ([Parse]), with every drop
//     classified by a [DropReason] and counted in [Stats];
//   - building the 20-byte header of every outbound packet ([BuildHeader]);
//   - checksums: the IPv4 header checksum, the TCP checksum over the
//     pseudo-header ([TCPChecksum], [PseudoHeaderChecksum]) and the ICMP
//     checksum;
//   - ICMP: echo replies ([EchoReply]) and destination-unreachable errors
//     ([DestUnreachable]).
//
// The RFC text implemented here: RFC 791 §3.1 (the header format, total
// length, fragmentation fields), the host input checks of RFC 1122 §3.2.1
// (§3.2.1.1 version, §3.2.1.2 header checksum, §3.2.1.3 addressing,
// §3.2.1.8 options ignored), RFC 792 and RFC 1122 §3.2.2 / §3.2.2.6 (echo
// and when an ICMP error may be sent), and the TCP pseudo-header checksum
// of RFC 9293 §3.1.
//
// What it does not do: reassemble fragments (they are dropped and counted
// as [DropFragment]), process IP options (they are skipped, as RFC 1122
// §3.2.1.8 allows for those a host does not implement), route, or write to
// the device: the stack sends what this package builds.
//
// Everything here is on the per-packet path and allocates nothing; byte
// layouts come from gvisor.dev/gvisor/pkg/tcpip/header and sums from
// gvisor.dev/gvisor/pkg/tcpip/checksum.
package ip
