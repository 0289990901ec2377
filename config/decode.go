package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// durationType is decoded from Go duration strings.
var durationType = reflect.TypeOf(time.Duration(0))

// decodeStrict decodes the mapping n into the struct that into points to,
// the way an auth.Factory's decode function promises: keys are matched to
// the fields' yaml tags (or lower-cased field names, as yaml.v3 does);
// unknown and duplicate keys and values of the wrong type are errors.
// Error messages carry file:line and never quote a string value, which
// may be a secret. name prefixes messages ("auth"). The keys in skip are
// allowed in n but not decoded (the auth section's "method").
func (w *walker) decodeStrict(n *yaml.Node, name string, into any, skip []string) error {
	v := reflect.ValueOf(into)
	if v.Kind() != reflect.Pointer || v.IsNil() {
		return fmt.Errorf("config: decode needs a non-nil pointer, got %T", into)
	}
	sub := &walker{file: w.file}
	if v.Elem().Kind() == reflect.Struct {
		sub.decodeStruct(n, name, v.Elem(), skip)
	} else {
		sub.decodeValue(n, name, v.Elem())
	}
	if len(sub.errs) == 1 {
		return sub.errs[0]
	}
	return errors.Join(sub.errs...)
}

// decodeValue decodes n into v, recording errors.
func (w *walker) decodeValue(n *yaml.Node, name string, v reflect.Value) {
	n = deref(n)
	if v.Type() == durationType {
		if d, ok := w.duration(n, name); ok {
			v.SetInt(int64(d))
		}
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if n.Kind == yaml.ScalarNode && n.Tag == tagNull {
			v.SetZero()
			return
		}
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		w.decodeValue(n, name, v.Elem())
	case reflect.Struct:
		w.decodeStruct(n, name, v, nil)
	case reflect.String:
		if s, ok := w.str(n, name); ok {
			v.SetString(s)
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != tagBool {
			w.errorf(n, "%s: expected true or false, got %s", name, describe(n))
			return
		}
		var b bool
		if err := n.Decode(&b); err != nil {
			w.errorf(n, "%s: expected true or false", name)
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		bits := v.Type().Bits()
		lo, hi := int64(-1)<<(bits-1), int64(1)<<(bits-1)-1
		if bits == 64 {
			lo, hi = math.MinInt64, math.MaxInt64
		}
		if i, ok := w.integer(n, name, lo, hi); ok {
			v.SetInt(i)
		}
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		hi := int64(math.MaxInt64)
		if bits := v.Type().Bits(); bits < 64 {
			hi = int64(1)<<bits - 1
		}
		if i, ok := w.integer(n, name, 0, hi); ok {
			v.SetUint(uint64(i))
		}
	case reflect.Float32, reflect.Float64:
		if f, ok := w.number(n, name, -math.MaxFloat64, math.MaxFloat64); ok {
			v.SetFloat(f)
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			w.errorf(n, "%s: expected a list, got %s", name, describe(n))
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, e := range n.Content {
			w.decodeValue(e, fmt.Sprintf("%s[%d]", name, i), s.Index(i))
		}
		v.Set(s)
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			w.errorf(n, "%s: cannot decode into %s", name, v.Type())
			return
		}
		pairs, ok := w.mapping(n, name, "in "+name, nil, true)
		if !ok {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(pairs))
		for _, p := range pairs {
			e := reflect.New(v.Type().Elem()).Elem()
			w.decodeValue(p.vNode, name+"."+p.key, e)
			m.SetMapIndex(reflect.ValueOf(p.key).Convert(v.Type().Key()), e)
		}
		v.Set(m)
	default:
		// Interfaces and other kinds: leave it to yaml.v3, but do not
		// pass on its messages, which quote values.
		if err := n.Decode(v.Addr().Interface()); err != nil {
			w.errorf(n, "%s: %s does not fit %s", name, describe(n), v.Type())
		}
	}
}

// decodeStruct decodes mapping n into struct v, refusing keys that match
// no field; keys in skip are allowed and ignored.
func (w *walker) decodeStruct(n *yaml.Node, name string, v reflect.Value, skip []string) {
	t := v.Type()
	fields := make(map[string]int)
	keys := append([]string{}, skip...)
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("yaml")
		key, _, _ := strings.Cut(tag, ",")
		if key == "-" {
			continue
		}
		if key == "" {
			key = strings.ToLower(f.Name)
		}
		fields[key] = i
		keys = append(keys, key)
	}
	pairs, ok := w.mapping(n, name, "in "+name, keys, true)
	if !ok {
		return
	}
	for _, p := range pairs {
		if contains(skip, p.key) {
			continue
		}
		w.decodeValue(p.vNode, name+"."+p.key, v.Field(fields[p.key]))
	}
}
