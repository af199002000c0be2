package ip

import (
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// fullTCP is a 1500-byte IPv4 packet holding a TCP segment with 1460
// bytes of data, as a peer with MSS 1460 sends.
func fullTCP() []byte {
	data := make([]byte, 1460)
	for i := range data {
		data[i] = byte(i)
	}
	return tcpPacket(peer, us, data)
}

var sinkN int

func TestNoAllocs(t *testing.T) {
	tcp := fullTCP()
	echo := icmpPacket(peer, us, header.ICMPv4Echo, make([]byte, 56))
	echoPkt, _ := Parse(echo, us)
	tcpPkt, _ := Parse(tcp, us)
	out := make([]byte, 2048)
	seg := append([]byte{}, tcp[20:]...)
	header.TCP(seg).SetChecksum(0)
	var s Stats
	for name, f := range map[string]func(){
		"Parse TCP":  func() { _, r := Parse(tcp, us); sinkN += int(r) },
		"Parse ICMP": func() { _, r := Parse(echo, us); sinkN += int(r) },
		"Parse bad":  func() { _, r := Parse(tcp[:10], us); sinkN += int(r) },
		"BuildHeader": func() {
			sinkN += BuildIPv4(out, us, peer, ProtoTCP, 1, 1480)
		},
		"TCPChecksum": func() { sinkN += int(TCPChecksum(us, peer, seg)) },
		"PseudoHeaderChecksum": func() {
			sinkN += int(PseudoHeaderChecksum(us, peer, ProtoTCP, 1480))
		},
		"EchoReply":       func() { sinkN += EchoReply(out, &echoPkt, 9) },
		"DestUnreachable": func() { sinkN += DestUnreachable(out, us, &tcpPkt, 3, 9) },
		"Stats":           func() { s.Drop(DropChecksum); sinkN += int(s.Snapshot()[DropChecksum]) },
	} {
		if a := testing.AllocsPerRun(200, f); a != 0 {
			t.Errorf("%s: %v allocations per run", name, a)
		}
	}
}

func BenchmarkParseTCP1500(b *testing.B) {
	pkt := fullTCP()
	b.SetBytes(int64(len(pkt)))
	b.ReportAllocs()
	for b.Loop() {
		if _, r := Parse(pkt, us); r != DropNone {
			b.Fatal(r)
		}
	}
}

func BenchmarkTCPChecksum1500(b *testing.B) {
	seg := fullTCP()[IPv4HeaderLen:]
	header.TCP(seg).SetChecksum(0)
	b.SetBytes(int64(len(seg)))
	b.ReportAllocs()
	for b.Loop() {
		sinkN += int(TCPChecksum(us, peer, seg))
	}
}

func BenchmarkBuildIPv4(b *testing.B) {
	out := make([]byte, IPv4HeaderLen)
	b.ReportAllocs()
	for b.Loop() {
		sinkN += BuildIPv4(out, us, peer, ProtoTCP, 1, 1480)
	}
}

func BenchmarkEchoReply(b *testing.B) {
	req := icmpPacket(peer, us, header.ICMPv4Echo, make([]byte, 56)) // ping's default
	pkt, _ := Parse(req, us)
	out := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		sinkN += EchoReply(out, &pkt, 1)
	}
}
