// Package ip is tund's network layer, IPv4 and IPv6. Each version is a
// [Network] ([IPv4], [IPv6]) that the stack and the TCP core above use
// without knowing the family. The package owns:
//
//   - validation and parsing of inbound packets of either version
//     ([Parse], dispatching on the version to the checks of [IPv4.Parse]
//     and [IPv6.Parse]), with every drop classified by a [DropReason] and
//     counted in [Stats];
//   - building the header of every outbound packet ([BuildIPv4],
//     [BuildIPv6], [Network.BuildHeader]) and the one place TCP packets
//     are made ([BuildTCP]);
//   - checksums: the IPv4 header checksum, the TCP checksum over either
//     version's pseudo-header ([TCPChecksum], [PseudoHeaderChecksum]),
//     the ICMP and ICMPv6 checksums;
//   - ICMP: echo replies ([EchoReply]), destination-unreachable errors
//     ([DestUnreachable]) and errors about our TCP segments
//     ([ParseICMPError]);
//   - ICMPv6: echo replies ([EchoReply6]), answers to neighbour
//     solicitations for our address ([NeighborAdvert]), errors about our
//     TCP segments ([ParseICMPv6Error], Packet Too Big among them), and
//     the errors we may send or a test may play a router with
//     ([DestUnreachable6], [PacketTooBig]).
//
// The RFC text implemented here, for IPv4: RFC 791 §3.1 (the header
// format, total length, fragmentation fields), the host input checks of
// RFC 1122 §3.2.1 (§3.2.1.1 version, §3.2.1.2 header checksum, §3.2.1.3
// addressing, §3.2.1.8 options ignored), RFC 792 and RFC 1122 §3.2.2 /
// §3.2.2.6 (echo and when an ICMP error may be sent), and the TCP
// pseudo-header checksum of RFC 9293 §3.1. For IPv6: RFC 8200 §3 (the
// fixed header, payload length), §4 (extension headers: hop-by-hop first
// only, options acted on by the two high bits of their type, routing
// headers ignored when no segments are left and refused otherwise) and
// §8.1 (the pseudo-header); the addressing rules of RFC 4291 (§2.5.2,
// §2.5.3, §2.7, the solicited-node group of §2.7.1); RFC 4443 (§2.3 the
// checksum, §2.4 processing rules and when an error may be sent, §3 the
// errors, §4 echo); RFC 4861 §7.1.1 and §7.2.4 (neighbour solicitations
// answered); and RFC 6437 (the flow label carried as given).
//
// What it does not do: reassemble fragments of either version (they are
// dropped and counted as [DropFragment]), process IPv4 options (they are
// skipped, as RFC 1122 §3.2.1.8 allows for those a host does not
// implement), send ICMPv6 Parameter Problems for the extension headers
// it refuses (they are counted as [DropExtension]), take part in
// neighbour discovery beyond answering solicitations for our own address
// (a TUN has no link-layer addresses), speak multicast, route, or write
// to the device: the stack sends what this package builds.
//
// Everything here is on the per-packet path and allocates nothing; byte
// layouts come from gvisor.dev/gvisor/pkg/tcpip/header and sums from
// gvisor.dev/gvisor/pkg/tcpip/checksum.
package ip
