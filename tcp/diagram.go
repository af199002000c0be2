package tcp

import (
	"fmt"
	"strings"
)

// The diagram is derived from Transitions and nothing else: no edge, state
// or label is written here by hand, so a trigger added to the table shows up
// in docs/ the next time the diagram is regenerated (and TestDiagramUpToDate
// fails until it is).

// diagramHeader is the warning both outputs open with. It names the command
// because the checked-in copies in docs/ are compared byte for byte with the
// generator's output; a hand edit would only make that test fail.
var diagramHeader = []string{
	"Generated from tcp.Transitions by `go test ./tcp -run TestDiagram -update`.",
	"Do not edit by hand: change the table in tcp/transitions.go and regenerate.",
}

// OffMainPath reports whether edges taken on trigger leave the normal life
// of a connection (open, transfer, either close order, TIME-WAIT) to tear it
// down abruptly. The rule is by trigger, not by edge, so that a new table
// entry on one of these triggers is styled without touching this file:
// the app's ABORT, an acceptable RST, giving up on retransmission and
// reclaiming an orphaned FIN-WAIT-2 all end the connection without the
// FIN exchange the main path teaches.
func OffMainPath(on Trigger) bool {
	switch on {
	case AppAbort, RcvRst, TimeoutRetransmit, TimeoutFinWait2:
		return true
	}
	return false
}

// diagramEdge is one arrow of the drawing: every transition of Transitions
// that shares its From, To and styling, in table order. Merging keeps the
// fan of RST, abort and timeout edges into CLOSED to one arrow per state.
type diagramEdge struct {
	from, to State
	off      bool // drawn dashed: see OffMainPath
	labels   []string
}

// edgeLabel is the text of one transition on its arrow: "trigger / action",
// or just the trigger when nothing is sent.
func edgeLabel(t Transition) string {
	if t.Action == "" {
		return t.On.String()
	}
	return t.On.String() + " / " + t.Action
}

// diagramEdges merges Transitions into arrows. Main-path arrows come first
// and off-path ones after, each group in the order its first transition has
// in the table: the output is deterministic, and Graphviz, which ranks nodes
// in the order it meets edges, lays out the main path before the fans.
func diagramEdges() []diagramEdge {
	type key struct {
		from, to State
		off      bool
	}
	var edges []diagramEdge
	at := map[key]int{}
	for _, t := range Transitions {
		k := key{t.From, t.To, OffMainPath(t.On)}
		i, ok := at[k]
		if !ok {
			i = len(edges)
			at[k] = i
			edges = append(edges, diagramEdge{from: t.From, to: t.To, off: k.off})
		}
		edges[i].labels = append(edges[i].labels, edgeLabel(t))
	}
	sorted := make([]diagramEdge, 0, len(edges))
	for _, off := range []bool{false, true} {
		for _, e := range edges {
			if e.off == off {
				sorted = append(sorted, e)
			}
		}
	}
	return sorted
}

// DiagramDOT returns the state diagram of Transitions in Graphviz DOT, for
// `dot -Tsvg`. Each arrow is labelled "trigger / action", one line per
// transition it stands for. Arrows of the normal life of a connection are
// solid; abort, reset and timeout arrows are dashed and grey, and do not
// constrain the layout, so the main path keeps the shape of RFC 9293's
// figure instead of being pulled towards CLOSED.
func DiagramDOT() string {
	var b strings.Builder
	for _, line := range diagramHeader {
		fmt.Fprintf(&b, "// %s\n", line)
	}
	b.WriteString("digraph tcp_states {\n")
	b.WriteString("\tgraph [label=\"TCP connection states (RFC 9293 §3.3.2)\", labelloc=t, fontname=\"Helvetica\"];\n")
	b.WriteString("\tnode [shape=box, style=rounded, fontname=\"Helvetica\"];\n")
	b.WriteString("\tedge [fontname=\"Helvetica\", fontsize=10];\n\n")
	// Every state is declared, in RFC order, so that one the table forgets
	// still appears (as an island a reader will notice).
	for _, s := range States() {
		fmt.Fprintf(&b, "\t%s;\n", dotQuote(s.String()))
	}
	b.WriteString("\n\t// Main path: open, transfer, both close orders, TIME-WAIT.\n")
	offStarted := false
	for _, e := range diagramEdges() {
		if e.off && !offStarted {
			offStarted = true
			b.WriteString("\n\t// Abort, reset and timeout edges.\n")
		}
		quoted := make([]string, len(e.labels))
		for i, l := range e.labels {
			quoted[i] = dotEscape(l)
		}
		// \n is DOT's centred line break inside a label.
		attrs := `label="` + strings.Join(quoted, `\n`) + `"`
		if e.off {
			attrs += ", style=dashed, color=grey50, fontcolor=grey40, constraint=false"
		}
		fmt.Fprintf(&b, "\t%s -> %s [%s];\n", dotQuote(e.from.String()), dotQuote(e.to.String()), attrs)
	}
	b.WriteString("}\n")
	return b.String()
}

// dotQuote makes s a DOT quoted ID.
func dotQuote(s string) string { return `"` + dotEscape(s) + `"` }

// dotEscape escapes s for use inside a DOT quoted string. Backslash is
// escaped too, because Graphviz gives \n, \l, \N and friends a meaning in
// labels.
func dotEscape(s string) string {
	return strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(s)
}

// DiagramMermaid returns the state diagram of Transitions as a Mermaid
// stateDiagram-v2, which GitHub renders inline in Markdown. States carry
// their RFC spellings through `state "FIN-WAIT-1" as FinWait1`, since
// Mermaid ids cannot hold dashes. Arrows are labelled like DiagramDOT's,
// joined with <br>. Mermaid cannot dash a transition, so the abort, reset
// and timeout arrows are instead listed last, under a comment.
func DiagramMermaid() string {
	var b strings.Builder
	// The header goes after the diagram type: some Mermaid versions look
	// for the type on the first line.
	b.WriteString("stateDiagram-v2\n")
	for _, line := range diagramHeader {
		fmt.Fprintf(&b, "    %%%% %s\n", line)
	}
	b.WriteString("\n")
	for _, s := range States() {
		fmt.Fprintf(&b, "    state \"%s\" as %s\n", s, mermaidID(s))
	}
	b.WriteString("\n    %% Main path: open, transfer, both close orders, TIME-WAIT.\n")
	offStarted := false
	for _, e := range diagramEdges() {
		if e.off && !offStarted {
			offStarted = true
			b.WriteString("\n    %% Abort, reset and timeout edges.\n")
		}
		escaped := make([]string, len(e.labels))
		for i, l := range e.labels {
			escaped[i] = mermaidEscape(l)
		}
		fmt.Fprintf(&b, "    %s --> %s : %s\n", mermaidID(e.from), mermaidID(e.to), strings.Join(escaped, "<br>"))
	}
	return b.String()
}

// mermaidID turns an RFC state name into a Mermaid id: "FIN-WAIT-1"
// becomes "FinWait1", the same spelling as the Go constant.
func mermaidID(s State) string {
	var b strings.Builder
	for _, part := range strings.Split(s.String(), "-") {
		if part == "" {
			continue
		}
		b.WriteString(part[:1])
		b.WriteString(strings.ToLower(part[1:]))
	}
	return b.String()
}

// mermaidEscape protects the characters that would end or reshape a
// Mermaid transition label (";" ends a statement, ":" and "#" are syntax,
// "<" and ">" are HTML), using Mermaid's #code; entities. None occurs in
// today's table; this keeps a future action such as "send <RST>" intact.
func mermaidEscape(s string) string {
	return mermaidEscaper.Replace(s)
}

var mermaidEscaper = strings.NewReplacer(
	"#", "#35;", ";", "#59;", ":", "#58;", "<", "#lt;", ">", "#gt;",
)
