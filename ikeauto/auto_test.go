package ikeauto

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/iked/iked/auth"
)

func TestWaitCoversOneRetransmission(t *testing.T) {
	if got := Wait(time.Second, 1.8); got != 3300*time.Millisecond {
		t.Errorf("Wait(1s, 1.8) = %s, want 1s + 1.8s + 0.5s", got)
	}
}

func TestFallsBackUnlessThePeerAnsweredAuthentication(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		err    error
		reason string
		ok     bool
	}{
		{context.DeadlineExceeded, "timeout", true},
		{errors.New("something unexpected"), "", true},
		{auth.Failf("the peer refused our proof"), "authentication_failed", false},
		{nil, "", false},
	} {
		reason, ok := FallsBack(ctx, c.err)
		if ok != c.ok || c.reason != "" && reason != c.reason {
			t.Errorf("FallsBack(%v) = %q, %v; want %q, %v", c.err, reason, ok, c.reason, c.ok)
		}
	}
	done, cancel := context.WithCancel(ctx)
	cancel()
	if _, ok := FallsBack(done, context.DeadlineExceeded); ok {
		t.Error("fell back after the caller's context ended")
	}
}

func TestInitiateTriesIKEv1OnlyWhenIKEv2GetsNoAnswer(t *testing.T) {
	var order []string
	v2 := func(ctx context.Context) (string, error) {
		order = append(order, "v2")
		<-ctx.Done() // a silent peer: the wait ends it
		return "", ctx.Err()
	}
	v1 := func(context.Context) (string, error) { order = append(order, "v1"); return "isakmp-1", nil }
	var why string
	got, err := Initiate(context.Background(), 10*time.Millisecond, v2, v1, func(reason string, _ error) { why = reason })
	if err != nil || got != "isakmp-1" || why != "timeout" || len(order) != 2 {
		t.Errorf("got %q %v, fell back for %q, calls %v", got, err, why, order)
	}
	order = nil
	refused := func(context.Context) (string, error) { order = append(order, "v2"); return "", auth.Failf("refused") }
	if _, err := Initiate(context.Background(), time.Minute, refused, v1, nil); err == nil || len(order) != 1 {
		t.Errorf("an IKEv2 authentication failure went on to IKEv1: %v %v", err, order)
	}
	if _, err := Initiate(context.Background(), 10*time.Millisecond, v2, nil, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("without IKEv1: %v, want the IKEv2 error", err)
	}
}
