package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/iked/iked/control"
)

// refusedError is a reload the daemon refused: its message holds the
// configuration's errors, one per line, which are printed as they are.
type refusedError struct{ msg string }

func (e refusedError) Error() string { return e.msg }

// runReload asks the daemon to reload its configuration and shows what
// changed, or why it refused.
func runReload(ctx context.Context, socket string, args []string, stdout io.Writer) error {
	fs := newFlagSet("reload")
	asJSON := fs.Bool("json", false, "print JSON")
	if err := parse(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		return usageError{fmt.Sprintf("reload: unexpected argument %q", fs.Arg(0))}
	}
	ctx, cancel := context.WithTimeout(ctx, reloadTimeout)
	defer cancel()
	resp, err := control.Do(ctx, socket, control.Request{Command: control.CommandReload})
	if err != nil {
		if resp != nil {
			return refusedError{"reload refused; the running configuration stays:\n" + err.Error()}
		}
		return err
	}
	if resp.Reload == nil {
		return errors.New("iked sent no reload result")
	}
	if *asJSON {
		return writeJSON(stdout, resp.Reload)
	}
	return writeReload(stdout, resp.Reload)
}

// writeReload writes a reload's answer for people.
func writeReload(w io.Writer, r *control.ReloadResult) error {
	bw := bufio.NewWriter(w)
	fmt.Fprintf(bw, "reloaded %s\n", r.ConfigFile)
	list := func(what string, names []string) {
		if len(names) > 0 {
			fmt.Fprintf(bw, "  %-10s %s\n", what+":", strings.Join(names, ", "))
		}
	}
	fmt.Fprintf(bw, "connections: %d added, %d changed, %d updated, %d removed, %d unchanged\n",
		len(r.Added), len(r.Changed), len(r.Updated), len(r.Removed), len(r.Unchanged))
	list("added", r.Added)
	list("changed", r.Changed)
	list("updated", r.Updated)
	list("removed", r.Removed)
	fmt.Fprintf(bw, "IKE SAs: %d kept, %d terminated\n", len(r.Kept), len(r.Terminated))
	for _, sa := range r.Terminated {
		fmt.Fprintf(bw, "  terminated %s (%s): %s\n", sa.ID, dash(sa.Connection), sa.Reason)
	}
	for _, sa := range r.Kept {
		fmt.Fprintf(bw, "  kept %s (%s): %s\n", sa.ID, dash(sa.Connection), sa.Reason)
	}
	for _, a := range r.Applied {
		fmt.Fprintf(bw, "applied: %s\n", a)
	}
	for _, s := range r.RestartNeeded {
		fmt.Fprintf(bw, "needs a restart (the running value stays): %s\n", s)
	}
	return bw.Flush()
}
