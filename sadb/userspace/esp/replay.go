package esp

// DefaultReplayWindow is the anti-replay window, in packets, of an SA that
// asks for none. RFC 4303 §3.4.3 prefers 64 as a default but recommends a
// larger window for high-speed links, where a batch of packets crossing
// several queues arrives reordered by more than 64; 1024 is what Linux
// gateways commonly configure.
const DefaultReplayWindow = 1024

// MaxReplayWindow bounds the configurable window.
const MaxReplayWindow = 1 << 20

// Replay is the receiver's anti-replay window of RFC 4303 §3.4.3, with the
// extended sequence number inference of Appendix A2. It is a ring bitmap
// (RFC 6479): sliding the window clears whole words, never shifts. The
// zero value is unusable; call Init. It is not safe for concurrent use.
type Replay struct {
	w    uint64 // window size in packets
	top  uint64 // highest sequence number accepted (0: none yet)
	esn  bool
	bits []uint64
}

// Init sets the window to w packets (0: DefaultReplayWindow) and clears it;
// esn selects 64-bit sequence numbers of which only the low 32 bits are on
// the wire.
func (r *Replay) Init(w uint32, esn bool) {
	if w == 0 {
		w = DefaultReplayWindow
	}
	if w > MaxReplayWindow {
		w = MaxReplayWindow
	}
	r.w, r.top, r.esn = uint64(w), 0, esn
	// One word more than the window needs, so that the word holding top
	// never shares its bits with the bottom of the window.
	r.bits = make([]uint64, (w+63)/64+1)
}

// Window returns the window size in packets.
func (r *Replay) Window() uint32 { return uint32(r.w) }

// Top returns the highest sequence number accepted so far.
func (r *Replay) Top() uint64 { return r.top }

// Check infers the full sequence number of a packet whose header carries
// seql and says whether the packet may be processed: neither a duplicate
// nor left of the window. It changes nothing; call Accept once the packet's
// integrity is verified (RFC 4303 §3.4.3 orders it so that forged packets
// cannot move the window).
func (r *Replay) Check(seql uint32) (uint64, bool) {
	seq := uint64(seql)
	if r.esn {
		// RFC 4303 Appendix A2.2.
		th, tl := uint32(r.top>>32), uint32(r.top)
		wm1 := uint32(r.w - 1)
		seqh := th
		if tl >= wm1 {
			// Case A: the window lies within one sequence subspace.
			if seql < tl-wm1 {
				seqh = th + 1
			}
		} else if seql >= tl-wm1 { // Case B: it spans two subspaces.
			if th == 0 {
				return 0, false // before the first subspace: nothing to accept
			}
			seqh = th - 1
		}
		seq = uint64(seqh)<<32 | uint64(seql)
	}
	if seq == 0 {
		return 0, false
	}
	if seq > r.top {
		return seq, true
	}
	if r.top-seq >= r.w {
		return seq, false
	}
	return seq, r.bits[(seq/64)%uint64(len(r.bits))]&(1<<(seq%64)) == 0
}

// Accept records seq as received, sliding the window when seq is new; it
// returns false (recording nothing) for a duplicate or a too old number.
func (r *Replay) Accept(seq uint64) bool {
	if seq == 0 {
		return false
	}
	n := uint64(len(r.bits))
	if seq > r.top {
		oldw, neww := r.top/64, seq/64
		if neww-oldw >= n {
			clear(r.bits)
		} else {
			for i := oldw + 1; i <= neww; i++ {
				r.bits[i%n] = 0
			}
		}
		r.top = seq
	} else if r.top-seq >= r.w {
		return false
	}
	word, bit := &r.bits[(seq/64)%n], uint64(1)<<(seq%64)
	if *word&bit != 0 {
		return false
	}
	*word |= bit
	return true
}
