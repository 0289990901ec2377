package kerberos

import (
	"crypto/sha256"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/keytab"
)

// keytabFile is a keytab read from disk and read again whenever the file
// changes (size, modification time or inode), so that a key version
// rollover written by ktadd or ktpass is picked up without a restart.
type keytabFile struct {
	path string

	mu   sync.Mutex
	kt   *keytab.Keytab
	seen os.FileInfo
	sum  [sha256.Size]byte
}

func newKeytabFile(path string) (*keytabFile, error) {
	k := &keytabFile{path: path}
	if _, err := k.get(); err != nil {
		return nil, err
	}
	return k, nil
}

// get returns the current keytab, reloading it when the file changed. When
// a reload fails (a half-written file), the previous keytab stays in use.
func (k *keytabFile) get() (*keytab.Keytab, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.path)
	if err != nil {
		if k.kt != nil {
			return k.kt, nil
		}
		return nil, fmt.Errorf("kerberos: keytab: %w", err)
	}
	if k.kt != nil && os.SameFile(fi, k.seen) && fi.Size() == k.seen.Size() && fi.ModTime().Equal(k.seen.ModTime()) {
		return k.kt, nil
	}
	return k.loadLocked(fi)
}

// reload reads the file even if it looks unchanged (a rewrite within the
// file system's timestamp granularity and of the same size).
func (k *keytabFile) reload() (*keytab.Keytab, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	fi, err := os.Stat(k.path)
	if err != nil {
		return nil, fmt.Errorf("kerberos: keytab: %w", err)
	}
	return k.loadLocked(fi)
}

func (k *keytabFile) loadLocked(fi os.FileInfo) (*keytab.Keytab, error) {
	b, err := os.ReadFile(k.path)
	if err != nil {
		if k.kt != nil {
			return k.kt, nil
		}
		return nil, fmt.Errorf("kerberos: keytab: %w", err)
	}
	defer clear(b)
	sum := sha256.Sum256(b)
	if k.kt != nil && sum == k.sum {
		k.seen = fi
		return k.kt, nil
	}
	kt := keytab.New()
	if err := kt.Unmarshal(b); err != nil {
		if k.kt != nil {
			return k.kt, nil
		}
		return nil, fmt.Errorf("kerberos: keytab %s: %w", k.path, err)
	}
	if k.kt != nil {
		stats.keytabReloads.Add(1)
		logger().Info("kerberos: keytab reloaded", "path", k.path, "entries", len(kt.Entries), "at", time.Now().UTC().Format(time.RFC3339))
	}
	k.kt, k.seen, k.sum = kt, fi, sum
	return kt, nil
}
