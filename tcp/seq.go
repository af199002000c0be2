package tcp

import "github.com/tund-project/tund/tcp/seqnum"

// Seq is a TCP sequence number: seqnum.Seq, the one type tcp, window and
// retransmit all compare sequence numbers with (modulo 2^32, RFC 1982).
type Seq = seqnum.Seq
