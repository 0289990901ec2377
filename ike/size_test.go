package ike

import (
	"testing"
	"unsafe"
)

// TestSASizeClass: an established IKE SA stays in the 576-byte size class
// (docs/performance.md counts bytes per held SA); a field added in the
// wrong place, or one too many, shows here before a benchmark does.
func TestSASizeClass(t *testing.T) {
	if n := unsafe.Sizeof(ikeSA{}); n > 576 {
		t.Fatalf("ikeSA is %d bytes, over the 576-byte size class", n)
	}
}
