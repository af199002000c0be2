package tcp

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite docs/state-diagram.dot and docs/state-diagram.md from tcp.Transitions, and the fuzz seeds under testdata/fuzz")

// diagramRegenerate is what a reader must run when the checked-in diagram is stale.
const diagramRegenerate = "go test ./tcp -run TestDiagram -update"

// diagramPage is the whole of docs/state-diagram.md. It lives here, not in
// diagram.go, because only the test writes it; generating all of it (not
// just the Mermaid block) lets TestDiagramUpToDate compare byte for byte.
func diagramPage() string {
	var b strings.Builder
	fmt.Fprintf(&b, "<!-- %s -->\n\n", strings.Join(diagramHeader, " "))
	b.WriteString("# TCP state diagram\n\n")
	b.WriteString("The connection states of RFC 9293 §3.3.2 as tund implements them, drawn from\n" +
		"the table `tcp.Transitions` in [tcp/transitions.go](../tcp/transitions.go), the same\n" +
		"table the code consults to change state. Each arrow is labelled\n" +
		"\"trigger / action\" (the action is what goes on the wire); the abort, reset and\n" +
		"timeout arrows are listed after the main path. This page is generated: after\n" +
		"changing the table, run `" + diagramRegenerate + "` from the\n" +
		"repository root, which rewrites this file and `state-diagram.dot`\n" +
		"(`TestDiagramUpToDate` fails until you do).\n\n")
	b.WriteString("```mermaid\n")
	b.WriteString(DiagramMermaid())
	b.WriteString("```\n\n")
	b.WriteString("The same diagram for Graphviz, with the abort, reset and timeout arrows dashed\n" +
		"and grey, is [state-diagram.dot](state-diagram.dot); render it with\n" +
		"`dot -Tsvg docs/state-diagram.dot > state.svg`.\n")
	return b.String()
}

// TestDiagramUpToDate keeps docs/ honest: the checked-in diagrams must be
// exactly what the generator makes of today's table. With -update it
// rewrites them instead.
func TestDiagramUpToDate(t *testing.T) {
	files := []struct{ path, want string }{
		{"../docs/state-diagram.dot", DiagramDOT()},
		{"../docs/state-diagram.md", diagramPage()},
	}
	for _, f := range files {
		if *update {
			if err := os.WriteFile(f.path, []byte(f.want), 0o644); err != nil {
				t.Fatal(err)
			}
			t.Logf("wrote %s", f.path)
			continue
		}
		got, err := os.ReadFile(f.path)
		if err != nil {
			t.Errorf("%v\ngenerate it from the repository root with:\n\n\t%s\n", err, diagramRegenerate)
			continue
		}
		if string(got) != f.want {
			t.Errorf("%s is out of date with tcp.Transitions (%s).\n"+
				"Do not edit it by hand; regenerate it from the repository root with:\n\n\t%s\n",
				strings.TrimPrefix(f.path, "../"), diagramFirstDiff(string(got), f.want), diagramRegenerate)
		}
	}
}

// diagramFirstDiff describes the first line where got and want part, so the
// failure says what changed without dumping both files.
func diagramFirstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var gl, wl string
		if i < len(g) {
			gl = g[i]
		}
		if i < len(w) {
			wl = w[i]
		}
		if gl != wl || i >= len(g) || i >= len(w) {
			return fmt.Sprintf("line %d is %q, the table makes it %q", i+1, gl, wl)
		}
	}
	return "they differ"
}

// diagramDrawn is one transition as read back from a diagram.
type diagramDrawn struct {
	t      Transition
	dashed bool
}

// TestDiagramCoversTransitions reads both outputs back, label by label, and
// checks each draws every transition of the table exactly once, with its
// action, and nothing else; and that Graphviz accepts the DOT (required
// under TUND_REQUIRE_INTEGRATION=1).
func TestDiagramCoversTransitions(t *testing.T) {
	// The labels are only readable back if these hold; a trigger renamed to
	// break them would make the diagram ambiguous to people too.
	for on := Trigger(0); on < numTriggers; on++ {
		if n := on.String(); strings.Contains(n, " / ") || strings.Contains(n, "\n") || strings.Contains(n, "<br>") {
			t.Fatalf("trigger name %q contains a label separator", n)
		}
	}

	dot := DiagramDOT()
	for name, edges := range map[string][]diagramDrawn{
		"DOT":     diagramParseDOT(t, dot),
		"Mermaid": diagramParseMermaid(t, DiagramMermaid()),
	} {
		diagramCheckDrawn(t, name, edges)
	}

	t.Run("graphviz", func(t *testing.T) { diagramCheckGraphviz(t, dot) })
}

// diagramCheckGraphviz runs Graphviz's dot on the DOT. Without dot it
// skips, or fails when TUND_REQUIRE_INTEGRATION=1 (as CI sets, and CI
// installs graphviz): there a skip would hide that nothing checked it.
func diagramCheckGraphviz(t *testing.T, dot string) {
	path, err := exec.LookPath("dot")
	if err != nil {
		if os.Getenv("TUND_REQUIRE_INTEGRATION") == "1" {
			t.Fatal("TUND_REQUIRE_INTEGRATION=1 but Graphviz dot is not installed (apt-get install graphviz)")
		}
		t.Skip("Graphviz dot is not installed: not checking that it accepts the DOT")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, path, "-Tsvg")
	cmd.Stdin = strings.NewReader(dot)
	cmd.Stdout = io.Discard
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		t.Errorf("dot -Tsvg rejects DiagramDOT(): %v\n%s", err, stderr.String())
	} else if stderr.Len() > 0 {
		t.Logf("dot -Tsvg warnings:\n%s", stderr.String())
	}
}

// diagramCheckDrawn compares the edges read back from one output with the table.
func diagramCheckDrawn(t *testing.T, name string, edges []diagramDrawn) {
	t.Helper()
	drawn := map[Transition]int{}
	for _, e := range edges {
		drawn[e.t]++
		if want := OffMainPath(e.t.On); e.dashed != want {
			t.Errorf("%s: %s --%s--> %s drawn off the main path = %v, want %v",
				name, e.t.From, e.t.On, e.t.To, e.dashed, want)
		}
	}
	inTable := map[Transition]bool{}
	for _, tr := range Transitions {
		inTable[tr] = true
		if n := drawn[tr]; n != 1 {
			t.Errorf("%s: %s --%s--> %s (%q) drawn %d times, want once",
				name, tr.From, tr.On, tr.To, tr.Action, n)
		}
	}
	for tr := range drawn {
		if !inTable[tr] {
			t.Errorf("%s: draws %s --%s--> %s (%q), which is not in tcp.Transitions",
				name, tr.From, tr.On, tr.To, tr.Action)
		}
	}
}

// TestDiagramMainPathIsSolid checks the styling rule against the table:
// following only the solid arrows of the DOT, a learner can get from CLOSED
// to every state and from every state back to CLOSED. Were a trigger the
// normal close needs ever classed as abort/reset/timeout, the main path
// would break here rather than silently turn grey.
func TestDiagramMainPathIsSolid(t *testing.T) {
	fwd, back := map[State][]State{}, map[State][]State{}
	for _, e := range diagramParseDOT(t, DiagramDOT()) {
		if !e.dashed {
			fwd[e.t.From] = append(fwd[e.t.From], e.t.To)
			back[e.t.To] = append(back[e.t.To], e.t.From)
		}
	}
	from, to := diagramReach(fwd, Closed), diagramReach(back, Closed)
	for _, s := range States() {
		if !from[s] {
			t.Errorf("%s cannot be reached from CLOSED along solid arrows", s)
		}
		if !to[s] {
			t.Errorf("%s cannot get back to CLOSED along solid arrows", s)
		}
	}
}

// diagramReach returns the states reachable from start along adj.
func diagramReach(adj map[State][]State, start State) map[State]bool {
	seen := map[State]bool{start: true}
	stack := []State{start}
	for len(stack) > 0 {
		s := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, n := range adj[s] {
			if !seen[n] {
				seen[n] = true
				stack = append(stack, n)
			}
		}
	}
	return seen
}

var (
	diagramDOTEdge      = regexp.MustCompile(`^\t"((?:[^"\\]|\\.)*)" -> "((?:[^"\\]|\\.)*)" \[label="((?:[^"\\]|\\.)*)"(.*)\];$`)
	diagramMermaidState = regexp.MustCompile(`^    state "([^"]*)" as (\w+)$`)
	diagramMermaidEdge  = regexp.MustCompile(`^    (\w+) --> (\w+) : (.*)$`)
)

// diagramParseDOT reads the edges of DiagramDOT's output back into transitions.
func diagramParseDOT(t *testing.T, dot string) []diagramDrawn {
	t.Helper()
	var edges []diagramDrawn
	for _, line := range strings.Split(dot, "\n") {
		if !strings.Contains(line, " -> ") {
			continue
		}
		m := diagramDOTEdge.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("DOT: cannot read edge line %q", line)
		}
		from := diagramStateNamed(t, "DOT", diagramDOTUnescape(m[1])[0])
		to := diagramStateNamed(t, "DOT", diagramDOTUnescape(m[2])[0])
		dashed := strings.Contains(m[4], "style=dashed")
		for _, l := range diagramDOTUnescape(m[3]) {
			edges = append(edges, diagramDrawn{diagramReadLabel(t, "DOT", from, to, l), dashed})
		}
	}
	return edges
}

// diagramDOTUnescape undoes dotEscape and splits at DOT's \n line breaks.
func diagramDOTUnescape(s string) []string {
	var lines []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
			if s[i] == 'n' {
				lines = append(lines, cur.String())
				cur.Reset()
				continue
			}
		}
		cur.WriteByte(s[i])
	}
	return append(lines, cur.String())
}

var diagramMermaidUnescaper = strings.NewReplacer(
	"#35;", "#", "#59;", ";", "#58;", ":", "#lt;", "<", "#gt;", ">",
)

// diagramParseMermaid reads DiagramMermaid's output back into transitions. An
// arrow counts as drawn off the main path when it comes after the comment
// that opens the abort, reset and timeout arrows.
func diagramParseMermaid(t *testing.T, mmd string) []diagramDrawn {
	t.Helper()
	ids := map[string]State{}
	var edges []diagramDrawn
	off := false
	for _, line := range strings.Split(mmd, "\n") {
		if strings.Contains(line, "%% Abort, reset and timeout edges") {
			off = true
		}
		if m := diagramMermaidState.FindStringSubmatch(line); m != nil {
			ids[m[2]] = diagramStateNamed(t, "Mermaid", m[1])
			continue
		}
		if !strings.Contains(line, " --> ") {
			continue
		}
		m := diagramMermaidEdge.FindStringSubmatch(line)
		if m == nil {
			t.Fatalf("Mermaid: cannot read transition line %q", line)
		}
		from, ok1 := ids[m[1]]
		to, ok2 := ids[m[2]]
		if !ok1 || !ok2 {
			t.Fatalf("Mermaid: transition %q uses an undeclared state id", line)
		}
		for _, l := range strings.Split(m[3], "<br>") {
			edges = append(edges, diagramDrawn{diagramReadLabel(t, "Mermaid", from, to, diagramMermaidUnescaper.Replace(l)), off})
		}
	}
	return edges
}

// diagramStateNamed maps an RFC spelling back to its State.
func diagramStateNamed(t *testing.T, format, name string) State {
	t.Helper()
	for _, s := range States() {
		if s.String() == name {
			return s
		}
	}
	t.Fatalf("%s: unknown state %q", format, name)
	return 0
}

// diagramReadLabel turns one "trigger / action" label back into a transition.
func diagramReadLabel(t *testing.T, format string, from, to State, label string) Transition {
	t.Helper()
	name, action, _ := strings.Cut(label, " / ")
	for on := Trigger(0); on < numTriggers; on++ {
		if on.String() == name {
			return Transition{From: from, On: on, To: to, Action: action}
		}
	}
	t.Fatalf("%s: label %q on %s -> %s names no trigger", format, label, from, to)
	return Transition{}
}
