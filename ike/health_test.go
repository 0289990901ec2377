package ike

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
)

// TestHealthWaitsForStuckLocks: Health returns while the engine's locks
// come free, and does not while one is held (a hung engine), returning
// once it is released.
func TestHealthWaitsForStuckLocks(t *testing.T) {
	e, err := New(Config{SADB: sadb.New(memory.New())})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	if err := e.Health(context.Background()); err != nil {
		t.Fatalf("idle engine: %v", err)
	}
	sa := &ikeSA{eng: e, spii: 0x1122334455667788, initiator: true}
	e.register(sa)
	for name, lock := range map[string]func() func(){
		"SA":     func() func() { sa.mu.Lock(); return sa.mu.Unlock },
		"policy": func() func() { e.policyMu.Lock(); return e.policyMu.Unlock },
		"binds":  func() func() { e.mu.Lock(); return e.mu.Unlock },
		"timers": func() func() { s := &e.timers.shards[3]; s.mu.Lock(); return s.mu.Unlock },
	} {
		unlock := lock()
		ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
		err := e.Health(ctx)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			unlock()
			t.Fatalf("%s lock held: Health = %v, want the deadline", name, err)
		}
		unlock()
		if err := e.Health(context.Background()); err != nil {
			t.Fatalf("%s lock released: %v", name, err)
		}
	}
	e.Close()
	if err := e.Health(context.Background()); !errors.Is(err, ErrEngineClosed) {
		t.Fatalf("closed engine: %v", err)
	}
}
