package drill

import (
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/tund-project/tund/tcp"
)

// Script is a parsed packetdrill script.
type Script struct {
	Path    string
	Options map[string]string // --name=value lines (tolerance_usecs, ip_version, ...)
	Events  []*Event
	// Unsupported, if set, is why the runner cannot run this script at
	// all (an IPv6 script, say); the parse still succeeded.
	Unsupported string
}

// TimeKind is how an event's time is given.
type TimeKind uint8

// The kinds of event time.
const (
	TimeAbsolute TimeKind = iota // 1.5
	TimeRelative                 // +0.1 (from the previous event)
	TimeAny                      // *: whenever it happens
)

// Event is one line of a script.
type Event struct {
	Line     int
	Text     string // the line as written, for messages
	TimeKind TimeKind
	Time     time.Duration // start (absolute, or the offset for relative)
	// End is the end of a blocking call's window (0.1...0.3) or of a
	// time range (0.1~0.3); HasEnd says it was given.
	End      time.Duration
	EndRel   bool // End is relative (+0.3)
	HasEnd   bool
	Blocking bool // start...end: a call that may block until End

	Packet *Packet
	Call   *Call
	Shell  string // `command`
	Code   bool   // a %{ python }% block: skipped
}

// Packet is an expected or injected TCP segment, numbers as written
// (relative sequence numbers).
type Packet struct {
	Inbound     bool
	Flags       tcp.Flags
	ECE, CWR    bool
	Seq, End    uint32
	Len         int
	HasAck      bool
	Ack         uint32
	HasWin      bool
	Win         uint16
	HasUrg      bool
	AnyOptions  bool // <...>: options not compared
	Options     []Option
	HasOptions  bool // an option list was given (possibly empty: <>)
	Unsupported string
}

// Option is one TCP option of a packet line.
type Option struct {
	Kind     string // mss, wscale, sackOK, sack, TS, nop, eol
	Val      uint32 // mss, wscale, TS val
	Ecr      uint32 // TS ecr
	SACK     []tcp.SACKBlock
	HasValue bool // a value was given (mss N, wscale N)
}

// Call is a socket call line: name(args) = ret [ERRNO] [(note)].
type Call struct {
	Name        string
	Args        []Expr
	Ret         Expr
	Errno       string
	Unsupported string // why the runner cannot read or make this call
}

// ParseFile reads and parses a script.
func ParseFile(path string) (*Script, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	s, err := Parse(string(b))
	if err != nil {
		return nil, fmt.Errorf("%s:%w", path, err)
	}
	s.Path = path
	return s, nil
}

// Parse parses a script's text. Errors name the line: "12: ...".
func Parse(text string) (*Script, error) {
	s := &Script{Options: map[string]string{}}
	stmts, err := statements(text)
	if err != nil {
		return nil, err
	}
	for _, st := range stmts {
		line := strings.TrimSpace(st.text)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "--") {
			name, val, _ := strings.Cut(strings.TrimPrefix(line, "--"), "=")
			s.Options[strings.TrimSpace(name)] = strings.TrimSpace(val)
			continue
		}
		if strings.HasPrefix(line, "`") && strings.HasSuffix(line, "`") && len(line) > 1 {
			// A shell line with no time runs at the start (packetdrill's
			// `../common/defaults.sh` idiom).
			s.Events = append(s.Events, &Event{Line: st.line, Text: line, TimeKind: TimeRelative,
				Shell: strings.Trim(line, "`")})
			continue
		}
		if strings.HasPrefix(line, "%{") {
			s.Events = append(s.Events, &Event{Line: st.line, Text: firstLine(line), Code: true, TimeKind: TimeRelative})
			continue
		}
		ev, err := parseEvent(line)
		if err != nil {
			return nil, fmt.Errorf("%d: %v: %s", st.line, err, firstLine(line))
		}
		ev.Line = st.line
		ev.Text = line
		s.Events = append(s.Events, ev)
	}
	if v, ok := s.Options["ip_version"]; ok && v != "ipv4" {
		s.Unsupported = "--ip_version=" + v + ": only IPv4"
	}
	return s, nil
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return l
}

// statement is one statement's text and the line it starts on.
type statement struct {
	line int
	text string
}

// statements splits a script into statements: comments removed, a
// statement continued over lines while its parentheses, brackets or
// braces are open, %{ }% blocks kept whole.
func statements(text string) ([]statement, error) {
	var out []statement
	var cur strings.Builder
	start, depth := 0, 0
	inCode, inComment, inTick := false, false, false
	// #ifdef blocks (NPLab's packetdrill): the runner defines STANDARD,
	// the branch for a standards-following stack, and no operating system.
	var skip []bool // per open #if: this branch is skipped
	skipping := func() bool {
		for _, s := range skip {
			if s {
				return true
			}
		}
		return false
	}
	for i, raw := range strings.Split(text, "\n") {
		lineNo := i + 1
		line := raw
		if t := strings.TrimSpace(line); strings.HasPrefix(t, "#") && cur.Len() == 0 && !inCode && !inComment {
			f := strings.Fields(t)
			switch f[0] {
			case "#ifdef", "#ifndef":
				defined := len(f) > 1 && f[1] == "STANDARD"
				skip = append(skip, defined == (f[0] == "#ifndef"))
				continue
			case "#else":
				if len(skip) > 0 {
					skip[len(skip)-1] = !skip[len(skip)-1]
				}
				continue
			case "#endif":
				if len(skip) > 0 {
					skip = skip[:len(skip)-1]
				}
				continue
			}
		}
		if skipping() {
			continue
		}
		if inCode {
			cur.WriteString("\n" + line)
			if strings.Contains(line, "}%") {
				inCode = false
				out = append(out, statement{start, cur.String()})
				cur.Reset()
			}
			continue
		}
		// Strip comments outside backquotes and string literals.
		var b strings.Builder
		inStr := false
		for j := 0; j < len(line); j++ {
			ch := line[j]
			if inComment {
				if ch == '*' && j+1 < len(line) && line[j+1] == '/' {
					inComment = false
					j++
				}
				continue
			}
			if !inTick && !inStr && ch == '/' && j+1 < len(line) {
				if line[j+1] == '/' {
					break
				}
				if line[j+1] == '*' {
					inComment = true
					j++
					continue
				}
			}
			switch {
			case ch == '`' && !inStr:
				inTick = !inTick
			case ch == '"' && !inTick:
				inStr = !inStr
			case !inTick && !inStr && (ch == '(' || ch == '[' || ch == '{'):
				depth++
			case !inTick && !inStr && (ch == ')' || ch == ']' || ch == '}'):
				depth--
			}
			b.WriteByte(ch)
		}
		line = b.String()
		if cur.Len() == 0 {
			if strings.TrimSpace(line) == "" && !inTick {
				depth = 0
				continue
			}
			start = lineNo
			if strings.HasPrefix(strings.TrimSpace(line), "%{") {
				cur.WriteString(line)
				if !strings.Contains(line, "}%") {
					inCode = true
				} else {
					out = append(out, statement{start, cur.String()})
					cur.Reset()
				}
				depth = 0
				continue
			}
		} else {
			cur.WriteString("\n")
		}
		cur.WriteString(line)
		if depth <= 0 && !inTick {
			depth = 0
			out = append(out, statement{start, cur.String()})
			cur.Reset()
		}
	}
	if cur.Len() > 0 {
		return nil, fmt.Errorf("%d: statement never closed", start)
	}
	return out, nil
}

// parseEvent parses a timed line.
func parseEvent(line string) (*Event, error) {
	ev := &Event{}
	m := timeRE.FindStringSubmatch(line)
	if m == nil {
		return nil, fmt.Errorf("no time at the start of the line")
	}
	rest := line[len(m[0]):]
	if strings.TrimSpace(rest) == "" {
		return nil, fmt.Errorf("no event after the time")
	}
	timeTok := strings.Join(strings.Fields(m[1]+m[2]+m[3]), "")
	if err := parseTime(ev, timeTok); err != nil {
		return nil, err
	}
	rest = strings.TrimSpace(rest)
	switch {
	case strings.HasPrefix(rest, "<") || strings.HasPrefix(rest, ">"):
		p, err := parsePacket(rest)
		if err != nil {
			return nil, err
		}
		ev.Packet = p
	case strings.HasPrefix(rest, "`"):
		ev.Shell = strings.Trim(rest, "` ")
	case strings.HasPrefix(rest, "%{"):
		ev.Code = true
	default:
		c, err := parseCall(rest)
		if err != nil {
			if c == nil {
				return nil, err
			}
			// A call whose arguments this runner cannot read (sendmsg's
			// msghdr, say) makes the script unsupported, not malformed.
			c.Unsupported = err.Error()
		}
		ev.Call = c
	}
	return ev, nil
}

// timeRE matches the time that starts an event line, spaces allowed
// ("+ 0.00", "+.002 ... 0.004"): the start, the separator, the end.
var timeRE = regexp.MustCompile(`^\s*(\*|\+?\s*[0-9]*\.?[0-9]+)(?:\s*(\.\.\.|~)\s*(\+?\s*[0-9]*\.?[0-9]+))?\s`)

// parseTime reads "1.5", "+0.1", "*", "0.1~0.3", "+0~+0.2",
// "0.1...0.3" or "+.01...0.011".
func parseTime(ev *Event, tok string) error {
	if tok == "*" {
		ev.TimeKind = TimeAny
		return nil
	}
	first, second, blocking := tok, "", false
	if a, b, ok := strings.Cut(tok, "..."); ok {
		first, second, blocking = a, b, true
	} else if a, b, ok := strings.Cut(tok, "~"); ok {
		first, second = a, b
	}
	t, rel, err := parseSeconds(first)
	if err != nil {
		return err
	}
	ev.Time = t
	ev.TimeKind = TimeAbsolute
	if rel {
		ev.TimeKind = TimeRelative
	}
	if second != "" {
		end, endRel, err := parseSeconds(second)
		if err != nil {
			return err
		}
		ev.End, ev.EndRel, ev.HasEnd, ev.Blocking = end, endRel, true, blocking
	}
	return nil
}

func parseSeconds(s string) (time.Duration, bool, error) {
	rel := strings.HasPrefix(s, "+")
	f, err := strconv.ParseFloat(strings.TrimPrefix(s, "+"), 64)
	if err != nil || f < 0 {
		return 0, false, fmt.Errorf("bad time %q", s)
	}
	return time.Duration(f*1e6+0.5) * time.Microsecond, rel, nil
}

// parsePacket reads "< S. 0:0(0) ack 1 win 65535 <mss 1460,sackOK>".
func parsePacket(s string) (*Packet, error) {
	p := &Packet{Inbound: s[0] == '<'}
	s = strings.TrimSpace(s[1:])
	// IP-level annotations such as [ect0] or (tos 0x10) are skipped.
	for strings.HasPrefix(s, "[") || strings.HasPrefix(s, "(") {
		close := "]"
		if s[0] == '(' {
			close = ")"
		}
		i := strings.Index(s, close)
		if i < 0 {
			return nil, fmt.Errorf("unclosed %q", s[:1])
		}
		s = strings.TrimSpace(s[i+1:])
	}
	flagTok, s, _ := strings.Cut(s, " ")
	switch flagTok {
	case "icmp", "udp", "udplite", "sctp", "gre", "mpls":
		p.Unsupported = flagTok + " packets"
		return p, nil
	}
	for _, ch := range flagTok {
		switch ch {
		case 'S':
			p.Flags |= tcp.FlagSYN
		case 'F':
			p.Flags |= tcp.FlagFIN
		case 'R':
			p.Flags |= tcp.FlagRST
		case 'P':
			p.Flags |= tcp.FlagPSH
		case '.':
			p.Flags |= tcp.FlagACK
		case 'U':
			p.Flags |= tcp.FlagURG
		case 'E':
			p.ECE = true
		case 'W':
			p.CWR = true
		case '-': // no flags at all
		default:
			return nil, fmt.Errorf("unknown TCP flag %q in %q", ch, flagTok)
		}
	}
	s = strings.TrimSpace(s)
	seqTok, s, _ := strings.Cut(s, " ")
	if strings.HasSuffix(seqTok, "!") {
		p.Unsupported = "absolute sequence numbers (!)"
		return p, nil
	}
	a, rest, ok1 := strings.Cut(seqTok, ":")
	b, n, ok2 := strings.Cut(rest, "(")
	if !ok1 || !ok2 || !strings.HasSuffix(n, ")") {
		return nil, fmt.Errorf("want start:end(length), got %q", seqTok)
	}
	seq, err1 := parseU32(a)
	end, err2 := parseU32(b)
	length, err3 := strconv.Atoi(strings.TrimSuffix(n, ")"))
	if err1 != nil || err2 != nil || err3 != nil || length < 0 {
		return nil, fmt.Errorf("bad sequence numbers %q", seqTok)
	}
	if uint32(int64(seq)+int64(length)) != end {
		return nil, fmt.Errorf("%q: end is not start plus length", seqTok)
	}
	p.Seq, p.End, p.Len = seq, end, length
	for s = strings.TrimSpace(s); s != ""; s = strings.TrimSpace(s) {
		if s[0] == '<' {
			i := strings.Index(s, ">")
			if i < 0 {
				return nil, fmt.Errorf("unclosed option list")
			}
			if err := parseOptions(p, s[1:i]); err != nil {
				return nil, err
			}
			s = s[i+1:]
			continue
		}
		if s[0] == '(' || s[0] == '[' { // trailing annotations
			close := map[byte]string{'(': ")", '[': "]"}[s[0]]
			i := strings.Index(s, close)
			if i < 0 {
				return nil, fmt.Errorf("unclosed %q", s[:1])
			}
			s = s[i+1:]
			continue
		}
		var kw, val string
		kw, s, _ = strings.Cut(s, " ")
		s = strings.TrimSpace(s)
		val, s, _ = strings.Cut(s, " ")
		switch kw {
		case "ack":
			v, err := parseU32(val)
			if err != nil {
				return nil, fmt.Errorf("bad ack %q", val)
			}
			p.HasAck, p.Ack = true, v
		case "win":
			v, err := strconv.ParseUint(val, 0, 16)
			if err != nil {
				return nil, fmt.Errorf("bad window %q", val)
			}
			p.HasWin, p.Win = true, uint16(v)
		case "urg":
			p.HasUrg = true
		default:
			return nil, fmt.Errorf("unknown packet field %q", kw)
		}
	}
	return p, nil
}

func parseU32(s string) (uint32, error) {
	v, err := strconv.ParseUint(s, 0, 32)
	return uint32(v), err
}

// parseOptions reads the inside of "<mss 1460,sackOK,TS val 1 ecr 0>".
func parseOptions(p *Packet, s string) error {
	p.HasOptions = true
	s = strings.TrimSpace(s)
	if s == "..." {
		p.AnyOptions = true
		return nil
	}
	if s == "" {
		return nil
	}
	for _, item := range strings.Split(s, ",") {
		f := strings.Fields(item)
		if len(f) == 0 {
			return fmt.Errorf("empty option")
		}
		o := Option{Kind: f[0]}
		switch f[0] {
		case "nop", "eol", "sackOK":
		case "mss", "wscale":
			if len(f) != 2 {
				return fmt.Errorf("option %q wants one value", item)
			}
			v, err := strconv.ParseUint(f[1], 0, 16)
			if err != nil {
				return fmt.Errorf("option %q: bad value", item)
			}
			o.Val, o.HasValue = uint32(v), true
		case "sack":
			for _, blk := range f[1:] {
				a, b, ok := strings.Cut(blk, ":")
				x, e1 := parseU32(a)
				y, e2 := parseU32(b)
				if !ok || e1 != nil || e2 != nil {
					return fmt.Errorf("bad SACK block %q", blk)
				}
				o.SACK = append(o.SACK, tcp.SACKBlock{Start: tcp.Seq(x), End: tcp.Seq(y)})
			}
		case "TS":
			if len(f) != 5 || f[1] != "val" || f[3] != "ecr" {
				return fmt.Errorf("want TS val N ecr N, got %q", item)
			}
			v, e1 := parseU32(f[2])
			e, e2 := parseU32(f[4])
			if e1 != nil || e2 != nil {
				return fmt.Errorf("bad timestamp %q", item)
			}
			o.Val, o.Ecr = v, e
		default:
			p.Unsupported = "TCP option " + f[0]
			continue
		}
		p.Options = append(p.Options, o)
	}
	return nil
}

// parseCall reads "accept(3, ..., ...) = 4", "connect(3, ..., ...) = -1
// EINPROGRESS (Operation now in progress)".
func parseCall(s string) (*Call, error) {
	open := strings.IndexByte(s, '(')
	if open <= 0 {
		return nil, fmt.Errorf("not a packet, a call or a shell command")
	}
	c := &Call{Name: strings.TrimSpace(s[:open])}
	for _, ch := range c.Name {
		if !(ch == '_' || ch >= 'a' && ch <= 'z' || ch >= 'A' && ch <= 'Z' || ch >= '0' && ch <= '9') {
			return nil, fmt.Errorf("bad call name %q", c.Name)
		}
	}
	x := &exprLexer{s: s[open:]}
	args, err := x.list('(', ')')
	if err != nil {
		return c, fmt.Errorf("%s arguments: %v", c.Name, err)
	}
	c.Args = args
	rest := strings.TrimSpace(x.s[x.i:])
	if !strings.HasPrefix(rest, "=") {
		return nil, fmt.Errorf("want = after the call")
	}
	x = &exprLexer{s: strings.TrimSpace(rest[1:])}
	ret, err := x.expr()
	if err != nil {
		return nil, err
	}
	c.Ret = ret
	rest = strings.TrimSpace(x.s[x.i:])
	if rest != "" && rest[0] != '(' {
		end := strings.IndexAny(rest, " \t(")
		if end < 0 {
			end = len(rest)
		}
		c.Errno = rest[:end]
		rest = strings.TrimSpace(rest[end:])
	}
	if rest != "" && !(strings.HasPrefix(rest, "(") && strings.HasSuffix(rest, ")")) {
		return nil, fmt.Errorf("unexpected %q after the result", rest)
	}
	return c, nil
}
