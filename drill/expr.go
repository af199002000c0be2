package drill

import (
	"fmt"
	"strconv"
	"strings"
)

// Expr is a socket-call argument or result as written in a script.
type Expr interface{ String() string }

// The kinds of Expr.
type (
	// Ellipsis is "...": any value (an argument the runner supplies).
	Ellipsis struct{}
	// Int is a number (decimal, hex or negative).
	Int int64
	// Ident is a symbolic constant (SOCK_STREAM, O_NONBLOCK, ECONNRESET).
	Ident string
	// Str is a quoted string.
	Str string
	// List is [a, b]: a pointer argument (an int option value, say).
	List []Expr
	// Struct is {name=expr, ...} (a struct linger, say).
	Struct []Field
	// Or is a | b (flags).
	Or [2]Expr
	// Fn is a function-like expression: htons(8080), inet_addr("...").
	Fn struct {
		Name string
		Args []Expr
	}
)

// Field is one member of a Struct.
type Field struct {
	Name  string
	Value Expr
}

func (Ellipsis) String() string { return "..." }
func (v Int) String() string    { return strconv.FormatInt(int64(v), 10) }
func (v Ident) String() string  { return string(v) }
func (v Str) String() string    { return strconv.Quote(string(v)) }
func (v List) String() string   { return "[" + joinExprs(v) + "]" }
func (v Or) String() string     { return v[0].String() + "|" + v[1].String() }
func (v Fn) String() string     { return v.Name + "(" + joinExprs(v.Args) + ")" }
func (v Struct) String() string {
	parts := make([]string, len(v))
	for i, f := range v {
		parts[i] = f.Name + "=" + f.Value.String()
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func joinExprs(xs []Expr) string {
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = x.String()
	}
	return strings.Join(parts, ", ")
}

// exprLexer parses expressions from s, starting at i.
type exprLexer struct {
	s string
	i int
}

func (x *exprLexer) skip() {
	for x.i < len(x.s) && (x.s[x.i] == ' ' || x.s[x.i] == '\t' || x.s[x.i] == '\n') {
		x.i++
	}
}

func (x *exprLexer) peek() byte {
	x.skip()
	if x.i >= len(x.s) {
		return 0
	}
	return x.s[x.i]
}

// list parses open expr, expr, ... close.
func (x *exprLexer) list(open, close byte) ([]Expr, error) {
	if x.peek() != open {
		return nil, fmt.Errorf("want %q", open)
	}
	x.i++
	var out []Expr
	if x.peek() == close {
		x.i++
		return out, nil
	}
	for {
		e, err := x.expr()
		if err != nil {
			return nil, err
		}
		out = append(out, e)
		switch x.peek() {
		case ',':
			x.i++
		case close:
			x.i++
			return out, nil
		default:
			return nil, fmt.Errorf("want , or %q at %q", close, x.s[x.i:])
		}
	}
}

// expr parses a term, or terms joined by |.
func (x *exprLexer) expr() (Expr, error) {
	e, err := x.term()
	if err != nil {
		return nil, err
	}
	for x.peek() == '|' {
		x.i++
		r, err := x.term()
		if err != nil {
			return nil, err
		}
		e = Or{e, r}
	}
	return e, nil
}

func (x *exprLexer) term() (Expr, error) {
	switch c := x.peek(); {
	case c == 0:
		return nil, fmt.Errorf("expression expected")
	case strings.HasPrefix(x.s[x.i:], "..."):
		x.i += 3
		return Ellipsis{}, nil
	case c == '[':
		l, err := x.list('[', ']')
		return List(l), err
	case c == '{':
		return x.structLit()
	case c == '"':
		j := x.i + 1
		for j < len(x.s) && x.s[j] != '"' {
			if x.s[j] == '\\' {
				j++
			}
			j++
		}
		if j >= len(x.s) {
			return nil, fmt.Errorf("unclosed string")
		}
		v, err := strconv.Unquote(x.s[x.i : j+1])
		if err != nil {
			v = x.s[x.i+1 : j]
		}
		x.i = j + 1
		return Str(v), nil
	case c == '-' || c >= '0' && c <= '9':
		j := x.i + 1
		for j < len(x.s) && isWordChar(x.s[j]) {
			j++
		}
		v, err := strconv.ParseInt(x.s[x.i:j], 0, 64)
		if err != nil {
			return nil, fmt.Errorf("bad number %q", x.s[x.i:j])
		}
		x.i = j
		return Int(v), nil
	case isWordChar(c):
		j := x.i
		for j < len(x.s) && (isWordChar(x.s[j]) || x.s[j] == '.') {
			j++
		}
		name := x.s[x.i:j]
		x.i = j
		if x.peek() == '(' {
			args, err := x.list('(', ')')
			return Fn{name, args}, err
		}
		return Ident(name), nil
	}
	return nil, fmt.Errorf("unexpected %q", x.s[x.i:])
}

// structLit parses {name=expr, ...} (or {expr, ...}, names left empty).
func (x *exprLexer) structLit() (Expr, error) {
	x.i++ // {
	var out Struct
	for {
		if x.peek() == '}' {
			x.i++
			return out, nil
		}
		var f Field
		save := x.i
		j := x.i
		for j < len(x.s) && isWordChar(x.s[j]) {
			j++
		}
		x.i = j
		if j > save && x.peek() == '=' {
			f.Name = x.s[save:j]
			x.i++
		} else {
			x.i = save
		}
		v, err := x.expr()
		if err != nil {
			return nil, err
		}
		f.Value = v
		out = append(out, f)
		switch x.peek() {
		case ',':
			x.i++
		case '}':
		default:
			return nil, fmt.Errorf("want , or } in a struct")
		}
	}
}

func isWordChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
