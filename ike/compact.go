package ike

import (
	"slices"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/transform"
)

// Memory of an established IKE SA. A responder may hold 100,000 IKE SAs
// that are mostly idle, so once IKE_AUTH is answered an SA keeps only what
// its later exchanges need (docs/performance.md has the numbers).

// saHandshake is what an IKE SA needs only for its handshake. It is a
// separate allocation, embedded in ikeSA by pointer, so that dropping it
// makes the SA itself smaller (608 rather than 760 bytes). An initiator's
// SA and a rekeyed SA keep theirs: the initiator makes its first Child SA
// from the nonces after establishing, and the simultaneous-rekey tie
// break compares the rekeyed SAs' nonces.
type saHandshake struct {
	candidates    []*Connection // responder: connections that may answer, until IKE_AUTH picks one
	ni, nr        []byte
	msgI, msgR    []byte // the IKE_SA_INIT messages, signed by AUTH (§2.15)
	sessions      []auth.Session
	authParams    *auth.Params // what the sessions know of the handshake
	halfOpenTimer *time.Timer
	// peerIntermediate: the peer announced IKE_INTERMEDIATE (RFC 9242) in
	// IKE_SA_INIT; inter is the exchanges' state once one is due.
	peerIntermediate bool
	inter            *intermediate
}

// releaseHandshake drops what only the handshake needed once a responder's
// IKE SA is established and its IKE_AUTH response sealed: the IKE_SA_INIT
// messages and nonces (signed by AUTH, §2.15, and used for the first Child
// SA's keys, both done by now), the auth sessions and their parameters
// (with the request parsed again), SK_pi and SK_pr, and the half-open
// timer. A retransmitted IKE_AUTH is answered from the response cache. The
// protectors keep only their keys between messages (transform.Protector
// SetCompact). Caller holds mu.
func (sa *ikeSA) releaseHandshake() {
	sa.dropPrevIn()
	if sa.saHandshake != nil {
		for _, s := range sa.sessions {
			s.Close()
		}
		sa.saHandshake = nil
	}
	if sa.keys != nil {
		// SK_d is what rekeying and new Child SAs derive from; the
		// protectors hold their own copies of SK_e and SK_a. The copy
		// shares one allocation with its IKEKeys when it fits: one
		// object less per held SA for the garbage collector to visit.
		kept := &keptKeys{}
		if len(sa.keys.SkD) <= len(kept.skd) {
			kept.IKEKeys.SkD = kept.skd[:len(sa.keys.SkD):len(sa.keys.SkD)]
			copy(kept.IKEKeys.SkD, sa.keys.SkD)
		} else {
			kept.IKEKeys.SkD = slices.Clone(sa.keys.SkD)
		}
		sa.keys.Wipe()
		sa.keys = &kept.IKEKeys
	}
	if sa.out != nil {
		sa.out.SetCompact()
	}
	if sa.in != nil {
		sa.in.SetCompact()
	}
}

// keptKeys is an established SA's IKEKeys with room for SK_d (up to
// SHA2-512's 64 octets) in the same allocation.
type keptKeys struct {
	transform.IKEKeys
	skd [64]byte
}

// wipeProtectors zeroes the protectors' keys when the SA dies. Caller holds
// mu.
func (sa *ikeSA) wipeProtectors() {
	if sa.out != nil {
		sa.out.Wipe()
	}
	if sa.in != nil {
		sa.in.Wipe()
	}
}
