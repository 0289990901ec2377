package interop

import (
	"os"
	"os/exec"
	"time"
)

// signalAndWait ends a process the tests started: it sends sig to cmd's
// process and waits for its exit on done (which receives cmd.Wait's
// result); after grace it kills the process and waits for that. It
// returns the exit error.
func signalAndWait(cmd *exec.Cmd, done <-chan error, sig os.Signal, grace time.Duration) error {
	_ = cmd.Process.Signal(sig)
	select {
	case err := <-done:
		return err
	case <-time.After(grace):
		_ = cmd.Process.Kill()
		return <-done
	}
}
