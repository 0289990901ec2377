package vici

import (
	"errors"
	"fmt"
	"strconv"
)

// Element types of the message encoding (README "Message format").
const (
	elemSectionStart = 1
	elemSectionEnd   = 2
	elemKeyValue     = 3
	elemListStart    = 4
	elemListItem     = 5
	elemListEnd      = 6
)

// maxDepth bounds the nesting of sections a peer may send. strongSwan's
// own messages nest four deep at most (child-rekey); the bound keeps a
// hostile message from costing more than its size.
const maxDepth = 64

// Message is a VICI message: a section of key/values, lists and
// sub-sections, in the order they were added. Values are octet strings
// (strongSwan sends numbers as decimal strings).
type Message struct {
	keys []string
	vals map[string]any // []byte, [][]byte or *Message
}

// NewMessage returns an empty message.
func NewMessage() *Message { return &Message{vals: map[string]any{}} }

func (m *Message) put(k string, v any) {
	if _, dup := m.vals[k]; !dup {
		m.keys = append(m.keys, k)
	}
	m.vals[k] = v
}

// Set adds the key/value k = v.
func (m *Message) Set(k, v string) *Message { m.put(k, []byte(v)); return m }

// SetBytes adds a binary key/value (certificate data).
func (m *Message) SetBytes(k string, v []byte) *Message { m.put(k, v); return m }

// SetInt adds a decimal key/value.
func (m *Message) SetInt(k string, v int64) *Message { return m.Set(k, strconv.FormatInt(v, 10)) }

// SetUint adds a decimal key/value.
func (m *Message) SetUint(k string, v uint64) *Message { return m.Set(k, strconv.FormatUint(v, 10)) }

// SetList adds a list; an empty list is encoded too.
func (m *Message) SetList(k string, items []string) *Message {
	l := make([][]byte, len(items))
	for i, s := range items {
		l[i] = []byte(s)
	}
	m.put(k, l)
	return m
}

// Section returns the sub-section k, adding it if missing.
func (m *Message) Section(k string) *Message {
	if s, ok := m.vals[k].(*Message); ok {
		return s
	}
	s := NewMessage()
	m.put(k, s)
	return s
}

// Keys returns the keys in order.
func (m *Message) Keys() []string { return m.keys }

// Get returns the value of key k as a string ("" when absent or not a
// key/value) and whether it is a key/value.
func (m *Message) Get(k string) (string, bool) {
	b, ok := m.vals[k].([]byte)
	return string(b), ok
}

// Bytes returns the value of key k.
func (m *Message) Bytes(k string) ([]byte, bool) {
	b, ok := m.vals[k].([]byte)
	return b, ok
}

// List returns the list k.
func (m *Message) List(k string) ([]string, bool) {
	l, ok := m.vals[k].([][]byte)
	if !ok {
		return nil, false
	}
	out := make([]string, len(l))
	for i, b := range l {
		out[i] = string(b)
	}
	return out, true
}

// RawList returns the list k as octet strings (certificate data).
func (m *Message) RawList(k string) ([][]byte, bool) {
	l, ok := m.vals[k].([][]byte)
	return l, ok
}

// Sub returns the sub-section k.
func (m *Message) Sub(k string) (*Message, bool) {
	s, ok := m.vals[k].(*Message)
	return s, ok
}

// Value returns whatever k holds: []byte, [][]byte or *Message.
func (m *Message) Value(k string) any { return m.vals[k] }

// Encode appends the message's encoding to b.
func (m *Message) Encode(b []byte) []byte {
	for _, k := range m.keys {
		switch v := m.vals[k].(type) {
		case []byte:
			b = append(b, elemKeyValue)
			b = appendName(b, k)
			b = appendValue(b, v)
		case [][]byte:
			b = append(b, elemListStart)
			b = appendName(b, k)
			for _, it := range v {
				b = append(b, elemListItem)
				b = appendValue(b, it)
			}
			b = append(b, elemListEnd)
		case *Message:
			b = append(b, elemSectionStart)
			b = appendName(b, k)
			b = v.Encode(b)
			b = append(b, elemSectionEnd)
		}
	}
	return b
}

// appendName writes an 8-bit length and the name; names longer than 255
// octets are cut (ours never are).
func appendName(b []byte, s string) []byte {
	if len(s) > 255 {
		s = s[:255]
	}
	return append(append(b, byte(len(s))), s...)
}

// appendValue writes a 16-bit length and the value; values above 65535
// octets are cut (a certificate is a few kilobytes).
func appendValue(b, v []byte) []byte {
	if len(v) > 0xffff {
		v = v[:0xffff]
	}
	return append(append(b, byte(len(v)>>8), byte(len(v))), v...)
}

// errMalformed is the error of a message or packet that breaks the
// encoding rules; the connection that sent it is closed.
var errMalformed = errors.New("malformed")

func malformedf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errMalformed, fmt.Sprintf(format, args...))
}

// DecodeMessage parses a message strictly: balanced sections, lists only
// of items and never nested, printable names, lengths within the data.
func DecodeMessage(b []byte) (*Message, error) {
	root := NewMessage()
	stack := []*Message{root}
	var list [][]byte
	var listName string
	inList := false
	for len(b) > 0 {
		t := b[0]
		b = b[1:]
		cur := stack[len(stack)-1]
		if inList && t != elemListItem && t != elemListEnd {
			return nil, malformedf("element %d inside list %q", t, listName)
		}
		switch t {
		case elemSectionStart, elemKeyValue, elemListStart:
			name, rest, err := readName(b)
			if err != nil {
				return nil, err
			}
			b = rest
			switch t {
			case elemSectionStart:
				if len(stack) > maxDepth {
					return nil, malformedf("sections nested deeper than %d", maxDepth)
				}
				s := NewMessage()
				cur.put(name, s)
				stack = append(stack, s)
			case elemKeyValue:
				v, rest, err := readValue(b)
				if err != nil {
					return nil, err
				}
				b = rest
				cur.put(name, v)
			case elemListStart:
				inList, listName, list = true, name, [][]byte{}
			}
		case elemSectionEnd:
			if len(stack) == 1 {
				return nil, malformedf("section end without a section")
			}
			stack = stack[:len(stack)-1]
		case elemListItem:
			if !inList {
				return nil, malformedf("list item outside a list")
			}
			v, rest, err := readValue(b)
			if err != nil {
				return nil, err
			}
			b = rest
			list = append(list, v)
		case elemListEnd:
			if !inList {
				return nil, malformedf("list end outside a list")
			}
			cur.put(listName, list)
			inList, list = false, nil
		default:
			return nil, malformedf("unknown element type %d", t)
		}
	}
	if inList {
		return nil, malformedf("list %q not closed", listName)
	}
	if len(stack) != 1 {
		return nil, malformedf("%d sections not closed", len(stack)-1)
	}
	return root, nil
}

func readName(b []byte) (string, []byte, error) {
	if len(b) < 1 || len(b) < 1+int(b[0]) {
		return "", nil, malformedf("truncated name")
	}
	n := int(b[0])
	name := b[1 : 1+n]
	if !printable(name) {
		return "", nil, malformedf("name %q is not printable ASCII", name)
	}
	return string(name), b[1+n:], nil
}

func readValue(b []byte) ([]byte, []byte, error) {
	if len(b) < 2 {
		return nil, nil, malformedf("truncated value length")
	}
	n := int(b[0])<<8 | int(b[1])
	if len(b) < 2+n {
		return nil, nil, malformedf("value of %d octets, %d left", n, len(b)-2)
	}
	return append([]byte(nil), b[2:2+n]...), b[2+n:], nil
}

// printable is strongSwan's test for names: ASCII from space to tilde.
func printable(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return true
}
