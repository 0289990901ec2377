package vici

import (
	"context"
	"log/slog"
	"sync"
	"testing"
)

// TestLogTapWatch: a watcher gets the records of its level and above,
// with the logger's attributes first, whatever the daemon's own level;
// the tap enables debug only while someone watches it; cancel ends it.
func TestLogTapWatch(t *testing.T) {
	tap := NewLogTap(slog.NewTextHandler(discard{}, &slog.HandlerOptions{Level: slog.LevelError}))
	log := slog.New(tap.Handler()).With("sa", "ike-1")
	ctx := context.Background()
	if log.Enabled(ctx, slog.LevelDebug) || log.Enabled(ctx, slog.LevelInfo) {
		t.Fatal("debug and info enabled with nobody watching")
	}
	var mu sync.Mutex
	var got []LogLine
	cancel := tap.Watch(slog.LevelDebug, func(l LogLine) { mu.Lock(); got = append(got, l); mu.Unlock() })
	var infos []string
	cancelInfo := tap.Watch(slog.LevelInfo, func(l LogLine) { mu.Lock(); infos = append(infos, l.Message); mu.Unlock() })
	if !log.Enabled(ctx, slog.LevelDebug) {
		t.Fatal("debug not enabled for a debug watcher")
	}
	log.Debug("generating IKE_AUTH request 1 [ IDi AUTH ]", "peer", "192.0.2.2:500")
	log.Info("IKE SA established")
	mu.Lock()
	if len(got) != 2 || got[0].Message != "generating IKE_AUTH request 1 [ IDi AUTH ]" || got[0].Level != slog.LevelDebug ||
		len(got[0].Attrs) != 2 || got[0].Attrs[0] != (LogAttr{"sa", "ike-1"}) || got[0].Attrs[1] != (LogAttr{"peer", "192.0.2.2:500"}) {
		t.Fatalf("debug watcher got %+v", got)
	}
	if len(infos) != 1 || infos[0] != "IKE SA established" {
		t.Fatalf("info watcher got %v", infos)
	}
	mu.Unlock()
	cancel()
	if log.Enabled(ctx, slog.LevelDebug) || !log.Enabled(ctx, slog.LevelInfo) {
		t.Fatal("levels after the debug watcher left")
	}
	cancelInfo()
	if log.Enabled(ctx, slog.LevelInfo) {
		t.Fatal("info enabled after every watcher left")
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }
