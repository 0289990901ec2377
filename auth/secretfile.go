package auth

import (
	"fmt"
	"os"
	"syscall"
)

// CheckSecretFile refuses a file holding a secret (a private key, a PSK, a
// keytab) that others than its owner may reach. One exception, how a
// packaged service keeps its secrets: when the daemon runs under a group
// of its own (not root's), a file of that group it may read (not write) —
// root:iked 0640, read by iked running as user iked — since the file then
// stays root's and only the daemon reads it. The error says what to run.
func CheckSecretFile(what, path string, fi os.FileInfo) error {
	mode := fi.Mode().Perm()
	if mode&0o077 == 0 {
		return nil
	}
	if mode&0o037 == 0 && daemonsGroup(fi) {
		return nil // group-readable by the daemon's own group only
	}
	return fmt.Errorf("%s %s is accessible by group or others (mode %04o); run chmod 600 %s (or chmod 640 with the daemon's group, as the package installs it)", what, path, mode, path)
}

// daemonsGroup reports whether the file belongs to the group the daemon
// runs with.
func daemonsGroup(fi os.FileInfo) bool {
	st, ok := fi.Sys().(*syscall.Stat_t)
	gid := os.Getegid()
	return ok && gid != 0 && int(st.Gid) == gid
}
