package ike

import (
	"context"
	"errors"
	"sync"
)

// ErrEngineClosed is returned by Health once the engine is closed.
var ErrEngineClosed = errors.New("ike: engine closed")

// Health takes each of the engine's locks in turn, briefly, and returns
// once it has had them all: the binds, the policy references, the identity
// index, every SA table and timer shard, and every IKE SA. A deadlock
// anywhere in the engine, or an SA whose lock is never released, keeps it
// from returning, which is what a service manager's watchdog needs to see
// (the daemon kicks the watchdog only after Health returns). It returns
// ctx's error if ctx ends first (the check goes on in the background), and
// ErrEngineClosed after Close.
//
// Health never holds two locks at once, so it cannot itself deadlock, and
// costs one lock round trip per IKE SA: fine every few seconds.
func (e *Engine) Health(ctx context.Context) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		roundTrip(e.mu.RLocker())
		roundTrip(&e.policyMu)
		roundTrip(&e.identMu)
		for i := range e.timers.shards {
			roundTrip(&e.timers.shards[i].mu)
		}
		for _, sa := range e.sas.all() { // takes each table shard's lock
			roundTrip(&sa.mu)
		}
	}()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-e.closing:
		return ErrEngineClosed
	default:
		return nil
	}
}

// roundTrip takes l and releases it: it returns only if l comes free.
func roundTrip(l sync.Locker) {
	l.Lock()
	//lint:ignore SA2001 taking the lock is the check
	l.Unlock()
}
