package config

import (
	"fmt"
	"math"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// YAML core-schema tags as go.yaml.in/yaml/v3 resolves them.
const (
	tagStr   = "!!str"
	tagInt   = "!!int"
	tagFloat = "!!float"
	tagBool  = "!!bool"
	tagNull  = "!!null"
	tagMerge = "!!merge"
	tagMap   = "!!map"
	tagSeq   = "!!seq"
)

// walker walks YAML nodes and collects positioned errors.
type walker struct {
	file  string
	errs  []error
	warns []Warning // security.go
	// secretLine is the line of the first inline PSK (security.go).
	secretLine int
	// proposalNodes remembers where security methods and main mode
	// methods were written, for checks made once the whole policy is read
	// (config/keyexchange.go).
	proposalNodes map[string]*yaml.Node
}

// errorf records an error at n's line.
func (w *walker) errorf(n *yaml.Node, format string, args ...any) {
	w.errs = append(w.errs, w.newError(n, fmt.Sprintf(format, args...)))
}

func (w *walker) newError(n *yaml.Node, msg string) *Error {
	line := 0
	if n != nil {
		line = n.Line
	}
	return &Error{File: w.file, Line: line, Msg: msg}
}

// deref follows aliases to the node they stand for.
func deref(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// describe names what a node is, for "expected X, got Y" messages. It
// never includes a scalar's value, which may be a secret.
func describe(n *yaml.Node) string {
	n = deref(n)
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		switch n.Tag {
		case tagStr:
			return "a string"
		case tagInt:
			return "an integer"
		case tagFloat:
			return "a number"
		case tagBool:
			return "a boolean"
		case tagNull:
			return "nothing (null)"
		}
		return "a value tagged " + n.Tag
	case yaml.DocumentNode:
		return "a document"
	}
	return "an unknown YAML node"
}

// pair is one key and value of a mapping.
type pair struct {
	key   string
	kNode *yaml.Node
	vNode *yaml.Node
}

// mapping returns the pairs of mapping node n (context names it in
// messages, e.g. `connection "a"`), refusing non-scalar, merge and
// duplicate keys and, when allowed is not nil, keys not in allowed. ok is
// false when n is not a mapping at all. A null value is an empty mapping
// when nullOK.
func (w *walker) mapping(n *yaml.Node, name, context string, allowed []string, nullOK bool) (pairs []pair, ok bool) {
	n = deref(n)
	if nullOK && n.Kind == yaml.ScalarNode && n.Tag == tagNull {
		return nil, true
	}
	if n.Kind != yaml.MappingNode {
		w.errorf(n, "%s: expected a mapping, got %s", name, describe(n))
		return nil, false
	}
	seen := make(map[string]int)
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := deref(n.Content[i]), n.Content[i+1]
		if k.Kind != yaml.ScalarNode || k.Tag == tagNull {
			w.errorf(k, "%s: keys must be strings, got %s", name, describe(k))
			continue
		}
		if k.Tag == tagMerge {
			w.errorf(k, "merge keys (<<) are not supported%s", in(context))
			continue
		}
		if first, dup := seen[k.Value]; dup {
			w.errorf(k, "duplicate key %q%s (first defined at line %d)", k.Value, in(context), first)
			continue
		}
		seen[k.Value] = k.Line
		if allowed != nil && !contains(allowed, k.Value) {
			if len(allowed) == 0 {
				w.errorf(k, "unknown key %q%s (it takes no keys)", k.Value, in(context))
			} else {
				w.errorf(k, "unknown key %q%s (expected one of: %s)", k.Value, in(context), strings.Join(allowed, ", "))
			}
			continue
		}
		pairs = append(pairs, pair{key: k.Value, kNode: k, vNode: deref(v)})
	}
	return pairs, true
}

// in formats a mapping's context for a message: "" or " in connection …".
func in(context string) string {
	if context == "" {
		return ""
	}
	return " " + context
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// str returns the text of a scalar. Strings, numbers and booleans are
// accepted as written; null, lists and mappings are not.
func (w *walker) str(n *yaml.Node, name string) (string, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode {
		w.errorf(n, "%s: expected a string, got %s", name, describe(n))
		return "", false
	}
	switch n.Tag {
	case tagStr, tagInt, tagFloat, tagBool:
		return n.Value, true
	case tagNull:
		w.errorf(n, "%s: missing value (expected a string)", name)
	default:
		w.errorf(n, "%s: expected a string, got %s", name, describe(n))
	}
	return "", false
}

// strList returns the elements of a list of strings, with their nodes.
func (w *walker) strList(n *yaml.Node, name string) ([]string, []*yaml.Node, bool) {
	n = deref(n)
	if n.Kind != yaml.SequenceNode {
		what := describe(n)
		if n.Kind == yaml.ScalarNode && n.Tag == tagNull {
			what = "nothing"
		}
		w.errorf(n, "%s: expected a list of strings, got %s (write [\"…\"] for a single element)", name, what)
		return nil, nil, false
	}
	ok := true
	var out []string
	var nodes []*yaml.Node
	for _, e := range n.Content {
		e = deref(e)
		s, good := w.str(e, name)
		if !good {
			ok = false
			continue
		}
		out = append(out, s)
		nodes = append(nodes, e)
	}
	return out, nodes, ok
}

// integer returns the value of an integer scalar within [lo, hi].
func (w *walker) integer(n *yaml.Node, name string, lo, hi int64) (int64, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || n.Tag != tagInt {
		w.errorf(n, "%s: expected an integer, got %s", name, describe(n))
		return 0, false
	}
	var v int64
	if err := n.Decode(&v); err != nil {
		w.errorf(n, "%s: integer %s out of range (expected %d to %d)", name, n.Value, lo, hi)
		return 0, false
	}
	if v < lo || v > hi {
		w.errorf(n, "%s: %d out of range (expected %d to %d)", name, v, lo, hi)
		return 0, false
	}
	return v, true
}

// number returns the value of a numeric scalar within [lo, hi].
func (w *walker) number(n *yaml.Node, name string, lo, hi float64) (float64, bool) {
	n = deref(n)
	if n.Kind != yaml.ScalarNode || (n.Tag != tagInt && n.Tag != tagFloat) {
		w.errorf(n, "%s: expected a number, got %s", name, describe(n))
		return 0, false
	}
	var v float64
	if err := n.Decode(&v); err != nil || math.IsNaN(v) || math.IsInf(v, 0) {
		w.errorf(n, "%s: invalid number %q", name, n.Value)
		return 0, false
	}
	if v < lo || v > hi {
		w.errorf(n, "%s: %v out of range (expected %v to %v)", name, v, lo, hi)
		return 0, false
	}
	return v, true
}

// duration returns the value of a Go duration scalar ("4s", "1m30s"),
// which must be positive.
func (w *walker) duration(n *yaml.Node, name string) (time.Duration, bool) {
	s, ok := w.str(n, name)
	if !ok {
		return 0, false
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		w.errorf(n, "%s: invalid duration %q (expected a Go duration such as \"4s\", \"500ms\" or \"1m30s\")", name, s)
		return 0, false
	}
	if d <= 0 {
		w.errorf(n, "%s: duration %q must be positive", name, s)
		return 0, false
	}
	return d, true
}

// durationOrZero is duration where "0s" means "off" or "never".
func (w *walker) durationOrZero(n *yaml.Node, name string) (time.Duration, bool) {
	if s, ok := w.str(n, name); ok {
		if d, err := time.ParseDuration(s); err == nil && d == 0 {
			return 0, true
		}
	}
	return w.duration(n, name)
}

// oneOf returns a scalar that must be one of choices.
func (w *walker) oneOf(n *yaml.Node, name string, choices ...string) (string, bool) {
	s, ok := w.str(n, name)
	if !ok {
		return "", false
	}
	if !contains(choices, s) {
		w.errorf(n, "%s: unknown value %q (expected one of: %s)", name, s, strings.Join(choices, ", "))
		return "", false
	}
	return s, true
}
