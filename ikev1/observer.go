package ikev1

import (
	"context"
	"errors"
	"net/netip"
	"sync"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/sadb"
)

// Observer hears what a policy layer acts on, in the shape of the IKEv2
// engine's Observer: the data-plane policies of IPsec SAs as they come and
// go, and failed Main Modes. It has no Acquire: the IKEv1 engine does not
// read the data plane's events (the IKEv2 engine does, and hands acquires
// to the policy layer, which chooses the version).
//
// Its methods are called from the engine's goroutines, never with an SA's
// lock held: PoliciesAdded and PoliciesRemoved with the engine's policy
// lock held (policyMu, a leaf), in order, right after the data plane took
// the policies and before the initiator answers the peer's Quick Mode;
// HandshakeFailed with no lock at all. They must not call back into the
// engine synchronously, nor block for long.
type Observer interface {
	// PoliciesAdded: the policies of an IPsec SA pair are installed.
	PoliciesAdded(ps []*sadb.Policy)
	// PoliciesRemoved: no IPsec SA uses these policies any more.
	PoliciesRemoved(ids []sadb.PolicyID)
	// HandshakeFailed: a Main Mode with peer failed; reason is a failure
	// label ("auth_mismatch", "authentication_failed", "timeout",
	// "no_proposal_chosen", "peer_no_proposal_chosen", ...: FailureReason's
	// and the handshake failure metric's labels).
	HandshakeFailed(peer netip.Addr, initiator bool, reason string)
}

// InitiateOptions tune one initiation of InitiateWith.
type InitiateOptions struct {
	// OnAnswer is called once, as soon as the peer answers Main Mode's
	// first message with anything (its choice, or a notification that
	// refuses it): the peer speaks IKEv1. A policy layer falls back to
	// clear only for peers that never answer. It is also called at once
	// when an established ISAKMP SA of the connection carries the Quick
	// Mode. It runs on the engine's goroutines with no lock held.
	OnAnswer func()
}

// InitiateWith establishes c, a connection that need not be among the
// configured ones (a policy layer makes one per peer): a Main Mode unless
// an ISAKMP SA of c is established, and a Quick Mode. It returns the SA's
// snapshot.
func (e *Engine) InitiateWith(ctx context.Context, c *Connection, o InitiateOptions) (SAInfo, error) {
	if err := ValidateConnection(c); err != nil {
		return SAInfo{}, err
	}
	var once sync.Once
	answered := func() {
		if o.OnAnswer != nil {
			once.Do(o.OnAnswer)
		}
	}
	sa, err := e.mainModeNotify(ctx, c, answered)
	if err != nil {
		return SAInfo{}, err
	}
	answered() // an established SA: the peer answered long ago
	if err := sa.quickModeWait(ctx, nil); err != nil {
		return sa.info(), err
	}
	return sa.info(), nil
}

// FailureReason classifies an initiation's error as the handshake failure
// metric does: "authentication_failed" (the peer refused our proof, or we
// refused its), "timeout" (no answer), "no_proposal_chosen" (we chose
// none of the peer's), "peer_" and the notification's name for a peer's
// refusal ("peer_no_proposal_chosen": it accepts none of our main mode
// proposals with our authentication method), "canceled", "internal".
func FailureReason(err error) string {
	var a *authFailure
	var n *notifyError
	var p *peerError
	switch {
	case err == nil:
		return ""
	case errors.As(err, &a):
		return "authentication_failed"
	case errors.As(err, &p):
		if p.code == isakmp.AuthenticationFailed || p.code == isakmp.InvalidHashInformation || p.code == isakmp.InvalidSignature {
			return "authentication_failed"
		}
		return "peer_" + labelOf(p.code)
	case errors.As(err, &n):
		return n.label
	case errors.Is(err, errTimeout), errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled), errors.Is(err, errClosed):
		return "canceled"
	}
	return "internal"
}

// observeFailure tells the Observer of a failed Main Mode. Called without
// locks (queued with isakmpSA.later by fail).
func (e *Engine) observeFailure(peer netip.Addr, initiator bool, reason string) {
	if o := e.cfg.Observer; o != nil {
		o.HandshakeFailed(peer, initiator, reason)
	}
}
