// Package ikeauto is the key module "auto", for configured connections
// (version: auto) and policy rules (key_module: auto) alike: initiate
// IKEv2 first and fall back to IKEv1 when the peer does not speak IKEv2,
// as Windows 11 24H2 does. One place decides when the fallback happens, so
// that the daemon and the policy agent behave the same.
package ikeauto

import (
	"context"
	"errors"
	"time"

	"github.com/iked/iked/ike"
)

// Wait is how long auto waits for an IKEv2 answer before it tries IKEv1:
// the first transmission and one retransmission (with the engine's
// retransmission timeout and backoff base), and half a timeout more.
func Wait(retransmitTimeout time.Duration, base float64) time.Duration {
	t := retransmitTimeout
	return t + time.Duration(float64(t)*base) + t/2
}

// FallsBack tells whether an IKEv2 initiation's failure lets auto try
// IKEv1, and why: the peer did not answer within the wait ("timeout"), or
// answered that it does not speak IKEv2 (INVALID_MAJOR_VERSION, or
// NO_PROPOSAL_CHOSEN from a peer with only an IKEv1 configuration for us,
// as charon answers). An authentication failure is an answer and is not
// retried, nor is anything when ctx (the caller's, not the wait's) ended.
func FallsBack(ctx context.Context, err error) (reason string, ok bool) {
	if err == nil || ctx.Err() != nil {
		return "", false
	}
	reason = ike.FailureReason(err)
	if reason == "authentication_failed" || reason == "auth_mismatch" {
		return reason, false
	}
	if errors.Is(err, context.DeadlineExceeded) {
		reason = "timeout"
	}
	return reason, true
}

// Initiate runs v2 bounded by wait and, when FallsBack allows it, v1
// (unless v1 is nil: no IKEv1 engine). fellBack, when not nil, hears the
// reason and the IKEv2 error before IKEv1 starts.
func Initiate[T any](ctx context.Context, wait time.Duration, v2, v1 func(context.Context) (T, error), fellBack func(reason string, err error)) (T, error) {
	v2ctx, cancel := context.WithTimeout(ctx, wait)
	res, err := v2(v2ctx)
	cancel()
	if err == nil || v1 == nil {
		return res, err
	}
	reason, ok := FallsBack(ctx, err)
	if !ok {
		return res, err
	}
	if fellBack != nil {
		fellBack(reason, err)
	}
	return v1(ctx)
}
