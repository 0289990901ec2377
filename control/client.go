package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"syscall"
	"time"
)

// maxResponseSize bounds the response a client reads; a listing of many
// thousands of SAs stays well below it.
const maxResponseSize = 256 << 20

// Do sends req to the daemon listening on the control socket at path and
// returns its response. The exchange is bounded by ctx.
//
// If the daemon cannot be reached, the error's message is a single line
// meant to be shown to the user as is, e.g. "iked is not running (no
// control socket at /run/iked/iked.sock)". If the daemon answers with an
// error, Do returns the response together with an error carrying the
// daemon's message.
func Do(ctx context.Context, path string, req Request) (*Response, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", path)
	if err != nil {
		return nil, dialError(path, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() {
		// Unblock a read or write in progress.
		_ = conn.SetDeadline(time.Unix(1, 0))
	})
	defer stop()

	b, err := json.Marshal(req)
	if err != nil {
		return nil, fmt.Errorf("encoding request: %w", err)
	}
	_, werr := conn.Write(append(b, '\n'))
	// Even if the write failed (the daemon may have refused an oversized
	// request and stopped reading), its answer may be waiting: read it.
	line, rerr := readLine(conn, maxResponseSize)
	if rerr != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("no answer from iked: %w", context.Cause(ctx))
		}
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			// ctx's deadline, which the connection's expired a hair
			// before ctx's own timer fired.
			return nil, fmt.Errorf("no answer from iked: %w", context.DeadlineExceeded)
		}
		if werr != nil {
			rerr = werr
		}
		if errors.Is(rerr, io.EOF) {
			return nil, errors.New("iked closed the control connection without answering")
		}
		return nil, fmt.Errorf("control socket %s: %w", path, rerr)
	}
	var resp Response
	if err := json.Unmarshal(line, &resp); err != nil {
		return nil, fmt.Errorf("malformed answer from iked: %w", err)
	}
	if resp.Error != "" {
		return &resp, errors.New(resp.Error)
	}
	return &resp, nil
}

// dialError turns a failure to connect into a one-line message.
func dialError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("iked is not running (no control socket at %s)", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("iked is not running (nothing listens on control socket %s)", path)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("permission denied on control socket %s (run as root, or as a member of the group iked's control_socket_group names)", path)
	case errors.Is(err, syscall.ENOTSOCK), errors.Is(err, syscall.ENOTDIR):
		return fmt.Errorf("%s is not a control socket", path)
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return fmt.Errorf("connecting to control socket %s: %w", path, err)
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		err = op.Err // drop Go's "dial unix PATH:" prefix, we say it below
	}
	return fmt.Errorf("cannot connect to control socket %s: %v", path, err)
}
