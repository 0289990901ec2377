// Command ikectl controls a running iked through its control socket.
//
//	ikectl [--socket PATH] COMMAND [ARGS]
//
// Commands: sas, list-conns, list-certs, stats, status, initiate CONN,
// terminate CONN|SA-ID [SPI], rekey [--child] CONN|SA-ID [SPI], reload,
// log [--level L], monitor, policy, peers [ADDR]; --json for scripts.
// Options may come before or after the command. See docs/ikectl.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/iked/iked/control"
	"github.com/iked/iked/internal/buildinfo"
)

const usage = `usage: ikectl [--socket PATH] COMMAND [ARGS]

Commands:
  sas [--json]            list IKE SAs and their Child SAs
  list-conns [--json] [CONN]  configured connections with their state
  list-certs [--json] [CONN]  loaded certificates, their expiry and users
  stats [--json]          counters, uptime and workers
  initiate [--new] CONN   bring connection CONN up (an established one is
                          reported as it is; --new makes another IKE SA)
  terminate CONN|SA-ID [SPI]  delete the IKE SAs of connection CONN, or one
                          IKE SA; with SPI only that Child SA of it
  rekey CONN|SA-ID [SPI]  rekey an IKE SA (or every established one of CONN),
                          or the Child SA with inbound SPI
  rekey --child CONN|SA-ID  rekey every Child SA of it
  status [--json]         show the daemon's status and connections
  log [--level L] [--json]  stream the daemon's log live (debug, info, warn,
                          error; Ctrl-C ends)
  monitor [--json]        stream SA up, down and rekey events live
  reload [--json]         reload the configuration and show what changed;
                          on errors the running configuration stays
  policy [--json]         show the assigned IPsec policy and its rules
  policy --source [--json]  where the policy came from (the directory or its cache), when read
  policy export --ldif [--base-dn DN]  the policy as MS-GPIPSEC objects to import
  peers [ADDR] [--protocol P] [--port N] [--json]
                          is traffic with ADDR (or every known peer) secured,
                          in clear (by permit, fallback, no rule) or blocked?
  help                    show this help

Options (before or after the command):
  --socket PATH   control socket (default $IKED_SOCKET, else ` + control.DefaultSocket + `)
  --json          print JSON for scripts instead of text
  --version       print ikectl's version and exit
`

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// How long a query and a reload may take. Commands that run exchanges
// with a peer (initiate, terminate, rekey) have no deadline here: the
// daemon bounds them by its retransmission budget and answers with what
// happened.
const (
	queryTimeout  = 15 * time.Second
	reloadTimeout = 90 * time.Second
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr, os.Getenv)
	stop()
	os.Exit(code)
}

// usageError is a command line mistake: reported with exit code 2.
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// run executes ikectl with args (without the program name) and returns the
// exit code.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, getenv func(string) string) int {
	err := runErr(ctx, args, stdout, getenv)
	if err == nil {
		return exitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		fmt.Fprint(stdout, usage)
		return exitOK
	}
	var refused refusedError
	if errors.As(err, &refused) {
		// The configuration's errors, one "file:line: message" a line.
		fmt.Fprintf(stderr, "ikectl: %s\n", strings.TrimRight(refused.msg, "\n"))
		return exitError
	}
	// One line, whatever the error says.
	msg := strings.Join(strings.Fields(err.Error()), " ")
	fmt.Fprintf(stderr, "ikectl: %s\n", msg)
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintln(stderr, "Run 'ikectl --help' for usage.")
		return exitUsage
	}
	return exitError
}

func runErr(ctx context.Context, args []string, stdout io.Writer, getenv func(string) string) error {
	socket := getenv("IKED_SOCKET")
	if socket == "" {
		socket = control.DefaultSocket
	}
	g, err := globalFlags(args)
	if err != nil {
		return err
	}
	if g.socket != "" {
		socket = g.socket
	}
	if g.version {
		fmt.Fprintln(stdout, "ikectl", buildinfo.Get())
		return nil
	}
	args = g.rest
	if len(args) > 0 && (args[0] == "-h" || args[0] == "-help" || args[0] == "--help") {
		return flag.ErrHelp
	}
	if len(args) > 0 && strings.HasPrefix(args[0], "-") && args[0] != "--json" {
		return usageError{fmt.Sprintf("flag provided but not defined: %s", args[0])}
	}
	// --json may come before the command too.
	if len(args) > 1 && args[0] == "--json" {
		args = append([]string{args[1], "--json"}, args[2:]...)
	}
	if len(args) == 0 {
		return usageError{"missing command"}
	}
	cmd, args := args[0], args[1:]

	switch cmd {
	case "help":
		return flag.ErrHelp
	case "reload":
		return runReload(ctx, socket, args, stdout)
	case "sas", "status":
		fs := newFlagSet(cmd)
		asJSON := fs.Bool("json", false, "print JSON")
		if err := parse(fs, args); err != nil {
			return err
		}
		if fs.NArg() != 0 {
			return usageError{fmt.Sprintf("%s: unexpected argument %q", cmd, fs.Arg(0))}
		}
		ctx, cancel := context.WithTimeout(ctx, queryTimeout)
		defer cancel()
		resp, err := control.Do(ctx, socket, control.Request{Command: cmd})
		if err != nil {
			return err
		}
		if cmd == "sas" {
			if *asJSON {
				return writeSAsJSON(stdout, resp.SAs)
			}
			return writeSAs(stdout, resp.SAs, time.Now())
		}
		if resp.Status == nil {
			return errors.New("iked sent no status")
		}
		if *asJSON {
			return writeJSON(stdout, resp.Status)
		}
		return writeStatus(stdout, resp.Status, time.Now())
	case "initiate", "terminate":
		if len(args) == 1 && (args[0] == "-h" || args[0] == "--help") {
			return flag.ErrHelp
		}
		fresh := false
		if cmd == "initiate" {
			// --new: a new IKE SA even when the connection is up.
			var rest []string
			for _, a := range args {
				if a == "--new" || a == "-new" {
					fresh = true
					continue
				}
				rest = append(rest, a)
			}
			args = rest
		}
		if cmd == "terminate" && len(args) == 2 && args[0] != "" {
			resp, err := control.Do(ctx, socket, control.Request{Command: cmd, Target: args[0], Child: args[1]})
			if err != nil {
				return daemonError("terminate", args[0], resp, err)
			}
			fmt.Fprintf(stdout, "terminated Child SA %s of %s\n", args[1], resp.TerminatedChild)
			return nil
		}
		if len(args) != 1 || args[0] == "" {
			what := "connection name"
			if cmd == "terminate" {
				what = "connection name or SA ID, and optionally a Child SA's inbound SPI"
			}
			return usageError{fmt.Sprintf("%s takes one argument, a %s", cmd, what)}
		}
		// No deadline of our own: the daemon answers within its
		// retransmission budget and says what happened (Ctrl-C stops waiting).
		if cmd == "initiate" {
			resp, err := control.Do(ctx, socket, control.Request{Command: cmd, Connection: args[0], New: fresh})
			if err != nil {
				return daemonError("initiate", args[0], resp, err)
			}
			fmt.Fprintf(stdout, "initiated %s\n", args[0])
			if len(resp.SAs) == 0 {
				return nil
			}
			return writeSAs(stdout, resp.SAs, time.Now())
		}
		resp, err := control.Do(ctx, socket, control.Request{Command: cmd, Target: args[0]})
		if err != nil {
			return daemonError("terminate", args[0], resp, err)
		}
		if resp.Terminated == 0 {
			return fmt.Errorf("terminate %s: no IKE SA matches", args[0])
		}
		fmt.Fprintf(stdout, "terminated %s\n", plural(resp.Terminated, "IKE SA"))
		return nil
	case "list-conns", "list-certs", "stats":
		return runReadSide(ctx, socket, cmd, args, stdout)
	case "log", "monitor":
		return runStream(ctx, socket, cmd, args, stdout)
	case "policy":
		return runPolicy(ctx, socket, args, stdout)
	case "peers":
		return runPeers(ctx, socket, args, stdout)
	case "rekey":
		children := false
		var rest []string
		for _, a := range args {
			if a == "--child" || a == "-child" {
				children = true
				continue
			}
			rest = append(rest, a)
		}
		args = rest
		if len(args) < 1 || len(args) > 2 || args[0] == "" || (children && len(args) != 1) {
			return usageError{"rekey takes an IKE SA ID or connection name, and optionally a Child SA's inbound SPI (or --child for all)"}
		}
		req := control.Request{Command: cmd, Target: args[0], Children: children}
		if len(args) == 2 {
			req.Child = args[1]
		}
		resp, err := control.Do(ctx, socket, req)
		if err != nil {
			return daemonError("rekey", args[0], resp, err)
		}
		if children {
			fmt.Fprintf(stdout, "rekeyed %s of %s: now %s\n", plural(len(resp.RekeyedChildren), "Child SA"), args[0], strings.Join(resp.RekeyedChildren, ", "))
			return nil
		}
		if req.Child != "" {
			fmt.Fprintf(stdout, "rekeyed Child SA %s of %s\n", req.Child, resp.Rekeyed)
		} else {
			fmt.Fprintf(stdout, "rekeyed %s: now %s\n", args[0], resp.Rekeyed)
		}
		return nil
	default:
		return usageError{fmt.Sprintf("unknown command %q", cmd)}
	}
}

// daemonError prefixes an error the daemon answered with the command and
// its argument; errors reaching the daemon are clear enough on their own.
func daemonError(cmd, arg string, resp *control.Response, err error) error {
	if resp == nil {
		return err
	}
	return fmt.Errorf("%s %s: %w", cmd, arg, err)
}

// newFlagSet returns a flag set that reports errors to run, not to stderr.
func newFlagSet(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	return fs
}

// parse parses args, turning flag errors into usage errors.
func parse(fs *flag.FlagSet, args []string) error {
	err := fs.Parse(args)
	if err == nil || errors.Is(err, flag.ErrHelp) {
		return err
	}
	return usageError{err.Error()}
}
