package tcp

import "strings"

// Flags holds the TCP control bits (RFC 9293 §3.1).
type Flags uint8

// The control bits, in header order.
const (
	FlagFIN Flags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

// Has reports whether every bit of o is set in f.
func (f Flags) Has(o Flags) bool { return f&o == o }

var flagNames = [...]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// String prints the set bits in a fixed order joined by '|', e.g. "SYN|ACK".
func (f Flags) String() string {
	if f == 0 {
		return "none"
	}
	var b strings.Builder
	// SYN, FIN, RST, PSH first reads better than header order.
	for _, i := range [...]int{1, 0, 2, 3, 4, 5, 6, 7} {
		if f&(1<<i) != 0 {
			if b.Len() > 0 {
				b.WriteByte('|')
			}
			b.WriteString(flagNames[i])
		}
	}
	return b.String()
}
