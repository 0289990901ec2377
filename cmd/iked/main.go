// Command iked is the IKEv2 daemon: it negotiates IKE and Child SAs with the
// peers of its configuration and hands the keys to a data plane.
//
//	iked --config /etc/iked/iked.yaml
//	iked --check-config /etc/iked/iked.yaml
//	iked --check-policy-ldap /etc/iked/iked.yaml
//
// SIGTERM or SIGINT deletes every IKE SA (telling the peers), removes all
// SAs from the data plane and exits 0. SIGHUP (or `ikectl reload`, which
// waits for the answer) reloads the configuration; a configuration with
// errors is refused and the running one stays. Under systemd it speaks the
// notify protocol (Type=notify, WatchdogSec=) and logs with journal
// priorities.
package main

import (
	"errors"
	"flag"
	"fmt"
	"os"

	"github.com/iked/iked/internal/buildinfo"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	fs := flag.NewFlagSet("iked", flag.ContinueOnError)
	configPath := fs.String("config", "/etc/iked/iked.yaml", "configuration `file`")
	checkPath := fs.String("check-config", "", "validate the configuration `file` and exit")
	checkLDAP := fs.String("check-policy-ldap", "", "read the directory's policy as the configuration `file` says (policy.source: ldap), show it and exit")
	showVersion := fs.Bool("version", false, "print the version and exit")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(os.Stderr, "iked: unexpected argument %q\n", fs.Arg(0))
		return 2
	}
	switch {
	case *showVersion:
		fmt.Println("iked", buildinfo.Get())
		return 0
	case *checkPath != "":
		return checkConfig(*checkPath)
	case *checkLDAP != "":
		return checkPolicyLDAP(*checkLDAP)
	}
	d, err := newDaemon(*configPath)
	if err != nil {
		fmt.Fprintf(os.Stderr, "iked: %v\n", err)
		return 1
	}
	if err := d.serve(); err != nil {
		fmt.Fprintf(os.Stderr, "iked: %v\n", err)
		return 1
	}
	return 0
}
