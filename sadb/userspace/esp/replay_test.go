package esp

import "testing"

// recv runs Check then Accept, as Open does around a verified packet.
func recv(r *Replay, seql uint32) (uint64, bool) {
	seq, ok := r.Check(seql)
	if !ok {
		return seq, false
	}
	return seq, r.Accept(seq)
}

func TestReplayWindow(t *testing.T) {
	var r Replay
	r.Init(64, false)
	steps := []struct {
		seq  uint32
		want bool
		why  string
	}{
		{0, false, "zero is never sent"},
		{1, true, "first"},
		{2, true, "in order"},
		{5, true, "gap"},
		{4, true, "out of order within the window"},
		{4, false, "duplicate"},
		{3, true, "late, within the window"},
		{100, true, "slide"},
		{37, true, "exactly at the bottom edge (100-63)"},
		{36, false, "just left of the window"},
		{5, false, "too old"},
		{99, true, "inside after the slide"},
		{100, false, "duplicate of top"},
		{1000, true, "far jump clears the bitmap"},
		{999, true, "just below the new top"},
		{937, true, "bottom edge"},
		{936, false, "too old"},
	}
	for _, s := range steps {
		if _, got := recv(&r, s.seq); got != s.want {
			t.Fatalf("seq %d (%s): accepted %v, want %v", s.seq, s.why, got, s.want)
		}
	}
}

// TestReplayBitmapReuse: after sliding, words reused by the ring hold no
// stale bits.
func TestReplayBitmapReuse(t *testing.T) {
	var r Replay
	r.Init(128, false)
	for s := uint32(1); s < 10000; s += 3 {
		if _, ok := recv(&r, s); !ok {
			t.Fatalf("seq %d refused", s)
		}
		if s > 2 {
			if _, ok := recv(&r, s-1); !ok {
				t.Fatalf("late seq %d refused", s-1)
			}
			if _, ok := r.Check(s - 1); ok {
				t.Fatalf("duplicate %d accepted", s-1)
			}
		}
	}
}

func TestReplayESNWrap(t *testing.T) {
	var r Replay
	r.Init(64, true)
	r.Accept(1<<32 - 10)
	for _, s := range []struct {
		seql uint32
		want uint64
		ok   bool
	}{
		{0xfffffff8, 1<<32 - 8, true},
		{0xffffffff, 1<<32 - 1, true},
		{0, 1 << 32, true},            // crosses into the next subspace
		{3, 1<<32 + 3, true},          // top is now in subspace 1, window spans two (case B)
		{0xfffffffe, 1<<32 - 2, true}, // late packet of subspace 0
		{0xfffffff8, 1<<32 - 8, false},
		{0xffffffc4, 1<<32 - 60, true}, // bottom edge: top-63
		{2, 1<<32 + 2, true},
		{2, 1<<32 + 2, false},
		{100, 1<<32 + 100, true}, // back to case A
		{37, 1<<32 + 37, true},   // bottom edge: top-63
		{0x30, 1<<32 + 0x30, true},
	} {
		seq, ok := recv(&r, s.seql)
		if ok != s.ok || (ok && seq != s.want) {
			t.Fatalf("seql %#x: got %#x %v, want %#x %v", s.seql, seq, ok, s.want, s.ok)
		}
	}
	// Just left of a window that spans two subspaces, RFC 4303 A2.2 infers
	// the current subspace: far ahead, and the ICV (over other high bits
	// than the sender's) refuses the packet.
	if seq, ok := r.Check(0xffffff00); !ok || seq != 1<<32|0xffffff00 {
		t.Fatalf("case B below the window: %#x %v", seq, ok)
	}
	// Case A inferring the next subspace: far below the window means wrapped.
	r.Init(64, true)
	r.Accept(0xfffffff0)
	if seq, ok := recv(&r, 5); !ok || seq != 1<<32+5 {
		t.Fatalf("wrap from case A: %#x %v", seq, ok)
	}
	// Nothing precedes subspace 0.
	r.Init(64, true)
	r.Accept(5)
	if _, ok := r.Check(0xfffffff0); ok {
		t.Fatal("a number before the first subspace was accepted")
	}
}

func TestReplayNoESNTop(t *testing.T) {
	var r Replay
	r.Init(0, false)
	if r.Window() != DefaultReplayWindow {
		t.Fatalf("default window %d", r.Window())
	}
	if seq, ok := recv(&r, 0xffffffff); !ok || seq != 0xffffffff {
		t.Fatal("last 32-bit number refused")
	}
	if _, ok := recv(&r, 0xffffffff-DefaultReplayWindow); ok {
		t.Fatal("too old accepted")
	}
	if _, ok := recv(&r, 0xffffffff-DefaultReplayWindow+1); !ok {
		t.Fatal("bottom edge refused")
	}
}
