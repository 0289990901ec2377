package ike

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"

	"github.com/iked/iked/sadb"
)

// Observer hears of what a policy layer acts on: traffic that needs an SA,
// the data-plane policies of Child SAs as they come and go, and failed
// handshakes. Its methods are called from the engine's goroutines and must
// not call back into the engine synchronously. PoliciesAdded and
// PoliciesRemoved are called in order, before the engine answers the
// peer, with an IKE SA's lock and the engine's policy lock held, and may
// block briefly to steer the SA's traffic; HandshakeFailed may be called
// with an IKE SA's lock held; none of them may block for long or take a
// lock that is held while calling into the engine.
type Observer interface {
	// Acquire: traffic matched a protect policy without an SA.
	Acquire(ev sadb.Event)
	// PoliciesAdded: the policies of a Child SA are installed.
	PoliciesAdded(ps []*sadb.Policy)
	// PoliciesRemoved: no Child SA uses these policies any more.
	PoliciesRemoved(ids []sadb.PolicyID)
	// HandshakeFailed: a handshake with peer failed; reason is a failure
	// label ("auth_mismatch", "authentication_failed", "timeout", ...).
	HandshakeFailed(peer netip.Addr, initiator bool, reason string)
}

// authMismatchError is IKE_AUTH refused because no connection accepts the
// peer's authentication method: the two sides have no method in common.
type authMismatchError struct {
	peer     string // the method the peer used
	accepted []string
}

func (e *authMismatchError) Error() string {
	return fmt.Sprintf("authentication mismatch: the peer authenticates with %s, and this side accepts only %v", e.peer, e.accepted)
}

// InitiateOptions tune one initiation of InitiateWith.
type InitiateOptions struct {
	// OnAnswer is called once, as soon as the peer answers IKE_SA_INIT
	// with anything (a COOKIE or an error included): the peer speaks
	// IKE. A policy layer falls back to clear only for peers that never
	// answer.
	OnAnswer func()
}

// InitiateWith establishes an IKE SA and its first Child SA for c, a
// connection that need not be among the configured ones (a policy layer
// makes one per peer). It returns the SA's snapshot.
func (e *Engine) InitiateWith(ctx context.Context, c *Connection, o InitiateOptions) (SAInfo, error) {
	if err := validateConnection(c); err != nil {
		return SAInfo{}, err
	}
	var once sync.Once
	answered := func() {
		if o.OnAnswer != nil {
			once.Do(o.OnAnswer)
		}
	}
	sa, err := e.initiateNotify(ctx, c, false, answered)
	if err != nil {
		return SAInfo{}, err
	}
	return sa.info(), nil
}

// FailureReason classifies a handshake error as the failure metrics do:
// "authentication_failed" (the peer refused our AUTH, or we refused its),
// "no_proposal_chosen", "timeout", ...
func FailureReason(err error) string {
	var m *authMismatchError
	if errors.As(err, &m) {
		return "auth_mismatch"
	}
	return (&initiator{}).failureLabel(err)
}

func (e *Engine) observeFailure(peer netip.Addr, initiator bool, reason string) {
	if o := e.cfg.Observer; o != nil {
		o.HandshakeFailed(peer, initiator, reason)
	}
}
