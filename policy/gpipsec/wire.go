package gpipsec

import (
	"encoding/binary"
	"fmt"
	"unicode/utf16"
)

// BlobError is a malformed ipsecData blob: where in the blob the fault is
// and what it is. Object wraps it with the object's DN.
type BlobError struct {
	// Kind names the blob type ("ipsecNFA").
	Kind string
	// Offset is the byte offset of the faulty field.
	Offset int
	// Msg says what is wrong.
	Msg string
}

func (e *BlobError) Error() string {
	return fmt.Sprintf("ipsecData of %s, byte %d: %s", e.Kind, e.Offset, e.Msg)
}

// reader walks a blob little-endian, failing at the first fault; after a
// fault every read returns zero values and err stays the first fault.
type reader struct {
	kind string
	b    []byte
	off  int
	err  *BlobError
}

func (r *reader) fail(at int, format string, args ...any) {
	if r.err == nil {
		r.err = &BlobError{Kind: r.kind, Offset: at, Msg: fmt.Sprintf(format, args...)}
	}
}

func (r *reader) take(n int, what string) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || len(r.b)-r.off < n {
		r.fail(r.off, "%s: needs %d bytes, %d left", what, n, len(r.b)-r.off)
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) u8(what string) uint8 {
	if p := r.take(1, what); p != nil {
		return p[0]
	}
	return 0
}

func (r *reader) u16(what string) uint16 {
	if p := r.take(2, what); p != nil {
		return binary.LittleEndian.Uint16(p)
	}
	return 0
}

func (r *reader) u32(what string) uint32 {
	if p := r.take(4, what); p != nil {
		return binary.LittleEndian.Uint32(p)
	}
	return 0
}

func (r *reader) guid(what string) GUID {
	var g GUID
	if p := r.take(16, what); p != nil {
		copy(g[:], p)
	}
	return g
}

// expectGUID reads the blob's type identifier.
func (r *reader) expectGUID(want GUID, what string) {
	at := r.off
	if g := r.guid(what); r.err == nil && g != want {
		r.fail(at, "%s is %s, want %s (not a %s blob, or an unknown version)", what, g, want, r.kind)
	}
}

// bool32 reads a 4-byte 0 or 1.
func (r *reader) bool32(what string) bool {
	at := r.off
	switch v := r.u32(what); v {
	case 0:
		return false
	case 1:
		return true
	default:
		r.fail(at, "%s is %#x, want 0 or 1", what, v)
		return false
	}
}

// count reads a 4-byte count and checks that count items of at least
// minSize bytes fit in what is left, so that a forged count cannot make
// the decoder allocate or loop beyond the blob.
func (r *reader) count(what string, minSize int) int {
	at := r.off
	n := r.u32(what)
	if r.err != nil {
		return 0
	}
	if minSize > 0 && uint64(n)*uint64(minSize) > uint64(len(r.b)-r.off) {
		r.fail(at, "%s %d does not fit in the %d bytes left", what, n, len(r.b)-r.off)
		return 0
	}
	return int(n)
}

// str reads a 4-byte byte length and that many bytes of UTF-16LE text,
// NUL-terminated when not empty.
func (r *reader) str(what string) string {
	at := r.off
	n := r.u32(what + " length")
	if r.err != nil {
		return ""
	}
	if n%2 != 0 {
		r.fail(at, "%s length %d is odd (UTF-16 text)", what, n)
		return ""
	}
	p := r.take(int(min(n, 1<<20)), what)
	if r.err != nil {
		return ""
	}
	return decodeUTF16(r, at+4, p, what)
}

func decodeUTF16(r *reader, at int, p []byte, what string) string {
	if len(p) == 0 {
		return ""
	}
	u := make([]uint16, len(p)/2)
	for i := range u {
		u[i] = binary.LittleEndian.Uint16(p[2*i:])
	}
	if u[len(u)-1] != 0 {
		r.fail(at, "%s is not NUL-terminated", what)
		return ""
	}
	u = u[:len(u)-1]
	for i, c := range u {
		if c == 0 {
			r.fail(at+2*i, "%s has a NUL inside", what)
			return ""
		}
	}
	return string(utf16.Decode(u))
}

// section reads a Data-Length field and returns a reader over the data it
// covers. The spec's Data-Length is "always 1 byte less than the size of
// the following data": every blob Windows writes ends with one 0x00 byte
// that no length counts. pad reports whether it is there; it is
// optional here, and must be zero when present.
func (r *reader) section(what string) *reader {
	at := r.off
	n := r.u32(what)
	if r.err != nil {
		return &reader{kind: r.kind, err: r.err}
	}
	if uint64(n) > uint64(len(r.b)-r.off) {
		r.fail(at, "%s %d is beyond the blob's end (%d bytes left)", what, n, len(r.b)-r.off)
		return &reader{kind: r.kind, err: r.err}
	}
	sub := &reader{kind: r.kind, b: r.b[:r.off+int(n)], off: r.off}
	r.off += int(n)
	return sub
}

// end checks that a section was read exactly.
func (r *reader) end(parent *reader, what string) {
	if r.err != nil {
		parent.fail(r.err.Offset, "%s", r.err.Msg)
		return
	}
	if r.off != len(r.b) {
		parent.fail(r.off, "%s: %d bytes left over that no field accounts for", what, len(r.b)-r.off)
	}
}

// pad reads the optional trailing 0x00.
func (r *reader) pad() {
	if r.err != nil || r.off == len(r.b) {
		return
	}
	if r.b[r.off] != 0 {
		return
	}
	r.off++
}

// done checks that the whole blob was read.
func (r *reader) done() error {
	if r.err == nil && r.off != len(r.b) {
		r.fail(r.off, "%d bytes after the last field", len(r.b)-r.off)
	}
	if r.err != nil {
		return r.err
	}
	return nil
}

// writer builds a blob little-endian.
type writer struct{ b []byte }

func (w *writer) u8(v uint8)   { w.b = append(w.b, v) }
func (w *writer) u16(v uint16) { w.b = binary.LittleEndian.AppendUint16(w.b, v) }
func (w *writer) u32(v uint32) { w.b = binary.LittleEndian.AppendUint32(w.b, v) }
func (w *writer) guid(g GUID)  { w.b = append(w.b, g[:]...) }
func (w *writer) zero(n int)   { w.b = append(w.b, make([]byte, n)...) }
func (w *writer) bool32(v bool) {
	if v {
		w.u32(1)
	} else {
		w.u32(0)
	}
}

// str writes a byte length and NUL-terminated UTF-16LE text; the empty
// string is written as a lone NUL, as Windows does.
func (w *writer) str(s string) {
	u := append(utf16.Encode([]rune(s)), 0)
	w.u32(uint32(2 * len(u)))
	for _, c := range u {
		w.u16(c)
	}
}

// section writes a Data-Length and the data body writes, then the pad
// byte Windows writes after every section.
func (w *writer) section(body func(*writer)) {
	var s writer
	body(&s)
	w.u32(uint32(len(s.b)))
	w.b = append(w.b, s.b...)
	w.u8(0)
}
