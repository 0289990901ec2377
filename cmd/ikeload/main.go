// Command ikeload is an IKEv2 initiator load generator: it runs IKE_SA_INIT
// and IKE_AUTH handshakes against any responder (iked, strongSwan,
// libreswan, ...) with a pre-shared key or a certificate, childless (RFC
// 6023) or with a Child SA, at a target rate or as fast as the responder
// answers, and reports completed and failed handshakes, the rate, latency
// percentiles and its own CPU time per handshake.
//
// It is its own lean initiator on ike/wire and ike/transform rather than
// the iked engine: per handshake it keeps only what the exchange needs, and
// by default reuses one Diffie-Hellman key per group, so that one core of
// ikeload saturates one core of a responder.
//
// Usage:
//
//	ikeload --target 192.0.2.1 --psk SECRET [--childless] [--concurrency 64]
//	        [--rate 1000] [--duration 30s | --count 100000] [--source ADDR]...
//	        [--keep] [--json]
//
// See docs/performance.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/cert"
	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/transform"
)

// listFlag is a repeatable flag; each value may also hold a comma list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error {
	for _, v := range strings.Split(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(cli(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// cli is main without the process: it parses args, runs the load and
// writes the report; it returns the exit status.
func cli(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("ikeload", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		target      = fs.String("target", "", "responder `host[:port]` (port 500 when none is given)")
		pskSecret   = fs.String("psk", "", "pre-shared `secret`")
		pskFile     = fs.String("psk-file", "", "read the pre-shared secret from `file`")
		certFile    = fs.String("cert", "", "certificate auth: our certificate (PEM)")
		keyFile     = fs.String("key", "", "certificate auth: our private key (PEM)")
		id          = fs.String("id", "", "our identity (IDi), e.g. fqdn:load.example; %d is replaced by a per-handshake number (one identity per SA); default the source address")
		idStart     = fs.Uint64("id-start", 1, "number of the first handshake for %d in --id")
		remoteID    = fs.String("remote-id", "", "the responder's identity: sent as IDr and checked")
		esp         = fs.String("esp", "aes256gcm16", "ESP proposal of the Child SA (without --childless)")
		childless   = fs.Bool("childless", false, "childless IKE SAs (RFC 6023): no SA, TSi, TSr in IKE_AUTH")
		concurrency = fs.Int("concurrency", 16, "handshakes in flight")
		rate        = fs.Float64("rate", 0, "target handshakes started per `second`; 0: as fast as possible")
		duration    = fs.Duration("duration", 0, "run this long")
		count       = fs.Uint64("count", 0, "run this many handshakes (default 1 when no --duration)")
		keep        = fs.Bool("keep", false, "keep the IKE SAs; by default each is deleted once established")
		freshDH     = fs.Bool("fresh-dh", false, "a new Diffie-Hellman key per handshake (default: one per group, reused)")
		rt          = fs.Duration("retransmit", time.Second, "first retransmission timeout (doubled each time)")
		tries       = fs.Int("tries", 3, "retransmissions before a handshake fails with timeout")
		jsonOut     = fs.Bool("json", false, "print the result as JSON")
		progress    = fs.Duration("progress", time.Second, "progress line interval on stderr; 0: none")
		cpuProfile  = fs.String("cpuprofile", "", "write a CPU profile of the run to `file`")
		proposals   listFlag
		sources     listFlag
		cas         listFlag
	)
	fs.Var(&proposals, "proposal", "IKE proposal in strongSwan syntax (repeatable; default aes256gcm16-prfsha256-x25519)")
	fs.Var(&sources, "source", "local `address` to send from (repeatable; workers take them in turn)")
	fs.Var(&cas, "ca", "certificate auth: a CA certificate file the responder's chain must reach (repeatable)")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	fail := func(format string, a ...any) int {
		fmt.Fprintf(stderr, "ikeload: "+format+"\n", a...)
		return 2
	}
	if fs.NArg() > 0 {
		return fail("unexpected argument %q", fs.Arg(0))
	}
	o := Options{
		Childless: *childless, Concurrency: *concurrency, Rate: *rate, Duration: *duration, Count: *count,
		Keep: *keep, FreshDH: *freshDH, RetransmitTimeout: *rt, RetransmitTries: *tries, LocalID: *id,
		IDStart: *idStart,
	}
	var err error
	if o.Target, err = parseTarget(*target); err != nil {
		return fail("--target: %v", err)
	}
	for _, s := range sources {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return fail("--source: %v", err)
		}
		o.Sources = append(o.Sources, a.Unmap())
	}
	if len(proposals) == 0 {
		proposals = listFlag{"aes256gcm16-prfsha256-x25519"}
	}
	for _, s := range proposals {
		p, err := transform.ParseIKEProposal(s)
		if err != nil {
			return fail("--proposal: %v", err)
		}
		o.IKEProposals = append(o.IKEProposals, p)
	}
	o.ProposalText = proposals.String()
	if !o.Childless {
		p, err := transform.ParseESPProposal(*esp)
		if err != nil {
			return fail("--esp: %v", err)
		}
		o.ESPProposals = []transform.Proposal{p}
	}
	if *remoteID != "" {
		if o.RemoteID, err = ike.ParseIdentity(*remoteID); err != nil {
			return fail("--remote-id: %v", err)
		}
	}
	if o.Auth, o.AuthName, err = authMethod(*pskSecret, *pskFile, *certFile, *keyFile, cas); err != nil {
		return fail("%v", err)
	}
	if *progress > 0 {
		o.Progress, o.ProgressEvery = stderr, *progress
	}
	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return fail("%v", err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return fail("%v", err)
		}
		defer pprof.StopCPUProfile()
	}
	res, err := Run(ctx, o)
	if err != nil {
		return fail("%v", err)
	}
	if *jsonOut {
		err = res.WriteJSON(stdout)
	} else {
		err = res.WriteText(stdout)
	}
	if err != nil {
		return fail("%v", err)
	}
	if res.Completed == 0 {
		return 1
	}
	return 0
}

// parseTarget reads host[:port]; the port defaults to 500.
func parseTarget(s string) (netip.AddrPort, error) {
	if s == "" {
		return netip.AddrPort{}, errors.New("required")
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap, nil
	}
	if a, err := netip.ParseAddr(strings.Trim(s, "[]")); err == nil {
		return netip.AddrPortFrom(a, 500), nil
	}
	host, port := s, "500"
	if h, p, err := net.SplitHostPort(s); err == nil {
		host, port = h, p
	}
	pn, err := strconv.ParseUint(port, 10, 16)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("bad port %q", port)
	}
	addrs, err := net.DefaultResolver.LookupNetIP(context.Background(), "ip", host)
	if err != nil || len(addrs) == 0 {
		return netip.AddrPort{}, fmt.Errorf("cannot resolve %q: %v", host, err)
	}
	return netip.AddrPortFrom(addrs[0].Unmap(), uint16(pn)), nil
}

// authMethod builds the PSK or certificate method from the flags.
func authMethod(secret, secretFile, certFile, keyFile string, cas []string) (auth.Method, string, error) {
	switch {
	case certFile != "" || keyFile != "":
		if secret != "" || secretFile != "" {
			return nil, "", errors.New("give either --psk/--psk-file or --cert/--key, not both")
		}
		if certFile == "" || keyFile == "" || len(cas) == 0 {
			return nil, "", errors.New("certificate auth needs --cert, --key and --ca")
		}
		m, err := cert.FromOptions(cert.Options{Cert: certFile, Key: keyFile, CA: cas}, ".")
		if err != nil {
			return nil, "", err
		}
		return m, "cert", nil
	case secret != "" || secretFile != "":
		m, err := psk.FromOptions(psk.Options{Secret: secret, File: secretFile}, ".")
		if err != nil {
			return nil, "", err
		}
		return m, "psk", nil
	}
	return nil, "", errors.New("no authentication: give --psk SECRET (or --psk-file), or --cert, --key and --ca")
}
