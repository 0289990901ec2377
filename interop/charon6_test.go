package interop

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// strongSwan 6.0.6, the post-quantum peer: RFC 9242 (IKE_INTERMEDIATE),
// RFC 9370 (multiple key exchanges) and ML-KEM in its ml plugin, none of
// which Debian 12's 5.9.8 has. It is built from ../shared/vendor once,
// into a cache directory, by ../scripts/strongswan6.sh (scripts/test.sh
// runs it first and prints how long it took; a test run without it builds
// it here). IKED_STRONGSWAN6_PREFIX names the installation; the default
// is the user cache directory's iked/strongswan-6.0.6. Without it, and
// when it cannot be built, the tests skip, or fail under CI=true.

// charon6Plugins is 6.0.6's plugin list: what the build has (no gmp,
// sha1 or updown), ml for ML-KEM, kernel-libipsec before kernel-netlink as
// for Debian's charon.
const charon6Plugins = "random nonce openssl aes sha2 hmac gcm chapoly curve25519 ml kdf pem pkcs1 pkcs8 x509 pubkey constraints kernel-libipsec kernel-netlink socket-default vici"

var charon6 struct {
	once  sync.Once
	build *charonBuild
	err   error
}

// charon6Prefix is where strongSwan 6.0.6 is installed or to be built.
func charon6Prefix() (string, error) {
	if p := os.Getenv("IKED_STRONGSWAN6_PREFIX"); p != "" {
		return p, nil
	}
	cache, err := os.UserCacheDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(cache, "iked", "strongswan-6.0.6"), nil
}

// requireCharon6 returns the strongSwan 6.0.6 build, building it once
// when the cache lacks it (≈ 3 min on an idle 2-vCPU machine).
func requireCharon6(t *testing.T) *charonBuild {
	t.Helper()
	requireRoot(t)
	charon6.once.Do(func() {
		prefix, err := charon6Prefix()
		if err != nil {
			charon6.err = err
			return
		}
		b := &charonBuild{Version: "6.0.6", Charon: filepath.Join(prefix, "libexec", "ipsec", "charon"),
			Swanctl: filepath.Join(prefix, "sbin", "swanctl"), Plugins: charon6Plugins}
		// The script checks the cache (the build's options included) and
		// builds only when it must.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
		defer cancel()
		start := time.Now()
		cmd := exec.CommandContext(ctx, "bash", "../scripts/strongswan6.sh")
		cmd.Env = append(os.Environ(), "PREFIX="+prefix)
		out, err := cmd.CombinedOutput()
		if err != nil {
			charon6.err = fmt.Errorf("building strongSwan 6.0.6 (%v): %v\n%s", time.Since(start).Round(time.Second), err, out)
			return
		}
		fmt.Fprintf(os.Stderr, "%s", out)
		for _, f := range []string{b.Charon, b.Swanctl, filepath.Join(prefix, "lib", "ipsec", "plugins", "libstrongswan-ml.so")} {
			if _, err := os.Stat(f); err != nil {
				charon6.err = fmt.Errorf("strongSwan 6.0.6 in %s lacks %s", prefix, f)
				return
			}
		}
		charon6.build = b
	})
	if charon6.err != nil {
		missing(t, "strongSwan 6.0.6: %v", charon6.err)
	}
	return charon6.build
}
