//go:build linux

package xfrm

import (
	"testing"
	"time"

	"github.com/iked/iked/internal/vmtest"
)

// TestLiveInGuest runs the live tests again in a QEMU guest with Debian
// 12's kernel (internal/vmtest), which has ESP: there TestLiveSA installs
// SAs of every kind, reads their counters and sees the kernel's soft and
// hard time expires, and the probe finds ESP.
func TestLiveInGuest(t *testing.T) {
	if vmtest.InGuest() {
		t.Run("Probe", TestLiveProbe)
		t.Run("Policies", TestLivePolicies)
		t.Run("Acquire", TestLiveAcquire)
		t.Run("SA", TestLiveSA)
		t.Run("SocketHelpers", TestLiveSocketHelpers)
		return
	}
	vmtest.RunTests(t, vmtest.Require(t), vmtest.TestRun{Timeout: 10 * time.Minute})
}
