package kernel

import (
	"context"
	"testing"
	"time"

	"github.com/iked/iked/internal/vmtest"
)

// TestKernelDataPlane boots one guest with Debian 12's kernel and runs
// every case of this package in it (each a subtest, reported on the host
// as it ran in the guest). go test -run 'TestKernelDataPlane/iked/tunnel'
// boots the guest for the selected cases only.
func TestKernelDataPlane(t *testing.T) {
	if vmtest.InGuest() {
		guestCases(t)
		return
	}
	img := vmtest.Require(t)
	env := map[string]string{binEnv: vmtest.GuestPath(binDir)}
	if dir, err := unpackLibreswan(t); err != nil {
		env[libreswanErrEnv] = err.Error()
	} else {
		env[libreswanEnv] = vmtest.GuestPath(dir)
	}
	if prefix, err := prepareRacoon(t); err != nil {
		env[racoonErrEnv] = err.Error()
	} else {
		env[racoonEnv] = vmtest.GuestPath(prefix)
	}
	start := time.Now()
	// Well inside go test's own -timeout (30m in scripts/test.sh), so that
	// a hung guest is reported with its output.
	vmtest.RunTests(t, img, vmtest.TestRun{Env: env, Timeout: 25 * time.Minute})
	t.Logf("the guest group took %v", time.Since(start).Round(time.Second))
}

// guestCases are the cases, run inside the guest.
func guestCases(t *testing.T) {
	t.Run("iked", func(t *testing.T) {
		t.Run("tunnel-aes-gcm", testTunnelGCM)
		t.Run("transport-aes-cbc-sha256", testTransportCBC)
		t.Run("tunnel-chacha20poly1305", testChaCha)
		t.Run("ipv6", testIPv6)
		t.Run("anti-replay", testReplay(false))
		t.Run("esn-anti-replay", testReplay(true))
		t.Run("rekey-bytes", testRekeyBytes)
		t.Run("life-bytes", testLifeBytes)
		t.Run("rekey-time", testRekeyTime)
		t.Run("nat-t", testNATT)
		t.Run("policy-acquire", testPolicyAcquire)
		t.Run("key-log", testKeyLog)
		t.Run("xfrm-interfaces", testXfrmInterface)
	})
	t.Run("charon", testCharon)
	t.Run("libreswan", testLibreswan)
	t.Run("racoon-pfkey", testRacoonPFKey)
}

// unpackLibreswan downloads Debian's libreswan package into the cache and
// unpacks it (once): it conflicts with strongSwan's packages, so it is
// never installed; the guest copies it into its own root.
func unpackLibreswan(t *testing.T) (string, error) {
	cache, err := vmtest.CacheDir()
	if err != nil {
		return "", err
	}
	unlock, err := vmtest.Lock(cache)
	if err != nil {
		return "", err
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	return vmtest.UnpackPackage(ctx, cache, "libreswan")
}
