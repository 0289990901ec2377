package main

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"testing"
	"time"
)

// TestWatchdogStopsWhileHung: the watchdog is kicked after each check
// that returns, and not while a check hangs (a hung engine), so systemd
// would restart the service; once the check returns, kicks resume.
func TestWatchdogStopsWhileHung(t *testing.T) {
	var mu sync.Mutex
	kicks := 0
	n := &notifier{log: slog.New(slog.NewTextHandler(io.Discard, nil)), send: func(state string) (bool, error) {
		if state == "WATCHDOG=1" {
			mu.Lock()
			kicks++
			mu.Unlock()
		}
		return true, nil
	}}
	kicked := func() int {
		mu.Lock()
		defer mu.Unlock()
		return kicks
	}
	var hanging sync.Mutex // guards hang
	var hang chan struct{} // non-nil: checks block until it is closed
	blocked := make(chan struct{}, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go n.watchdog(ctx, 5*time.Millisecond, func(ctx context.Context) error {
		hanging.Lock()
		h := hang
		hanging.Unlock()
		if h != nil {
			blocked <- struct{}{}
			<-h
		}
		return nil
	})
	waitFor(t, "kicks", func() bool { return kicked() >= 3 })
	hanging.Lock()
	hang = make(chan struct{})
	hanging.Unlock()
	// Checks run one at a time: once one blocks, every earlier check's
	// kick has been sent.
	<-blocked
	before := kicked()
	time.Sleep(100 * time.Millisecond) // twenty intervals
	if k := kicked(); k != before {
		t.Fatalf("%d kicks while the check hung", k-before)
	}
	hanging.Lock()
	close(hang)
	hang = nil
	hanging.Unlock()
	waitFor(t, "kicks after the hang", func() bool { return kicked() > before })
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}
