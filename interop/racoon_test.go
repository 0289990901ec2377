package interop

import (
	"bufio"
	"cmp"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// racoon (ipsec-tools 0.9.1, from ../shared/vendor/racoon) as an IKEv1
// peer. This kernel has no PF_KEY, so racoon and setkey run with the
// vendor's PF_KEY stand-in (fakepfkey.so, LD_PRELOAD): policies live in a
// file, SA installs "succeed" (FAKEPFKEY_SA=ok) and are logged with their
// keys (FAKEPFKEY_LOGKEYS=1), which is how a test reads racoon's IPsec SAs.
//
// The build (≈ 70 s) is cached: IKED_RACOON_PREFIX, or the user cache
// directory's iked/racoon-0.9.1. The sources are found through
// IKED_VENDOR_DIR, default ../../shared/vendor from the interop package.

var racoonBuild struct {
	once   sync.Once
	prefix string
	err    error
}

// racoonVendorDir is where the racoon build recipe lives.
func racoonVendorDir() string {
	if d := os.Getenv("IKED_VENDOR_DIR"); d != "" {
		return d
	}
	abs, _ := filepath.Abs("../../shared/vendor")
	return abs
}

// requireRacoon returns the prefix of a built racoon, building it once
// when it is not cached. Under CI=true a failed build fails the test.
func requireRacoon(t *testing.T) string {
	t.Helper()
	requireRoot(t)
	racoonBuild.once.Do(func() {
		prefix := os.Getenv("IKED_RACOON_PREFIX")
		if prefix == "" {
			cache, err := os.UserCacheDir()
			if err != nil {
				racoonBuild.err = err
				return
			}
			prefix = filepath.Join(cache, "iked", "racoon-0.9.1")
		}
		racoonBuild.prefix = prefix
		if racoonBuilt(prefix) {
			return
		}
		script := filepath.Join(racoonVendorDir(), "racoon", "build.sh")
		if _, err := os.Stat(script); err != nil {
			racoonBuild.err = fmt.Errorf("racoon sources not found (%v); set IKED_VENDOR_DIR", err)
			return
		}
		work, err := os.MkdirTemp("", "iked-racoon-build")
		if err != nil {
			racoonBuild.err = err
			return
		}
		defer os.RemoveAll(work)
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, "bash", script)
		cmd.Env = append(os.Environ(), "WORK="+work, "PREFIX="+prefix)
		out, err := cmd.CombinedOutput()
		if err != nil || !racoonBuilt(prefix) {
			racoonBuild.err = fmt.Errorf("building racoon: %v\n%s", err, out)
		}
	})
	if racoonBuild.err != nil {
		missing(t, "racoon: %v", racoonBuild.err)
	}
	return racoonBuild.prefix
}

func racoonBuilt(prefix string) bool {
	for _, f := range []string{"sbin/racoon", "sbin/setkey", "bin/racoonctl", "lib/fakepfkey.so"} {
		if _, err := os.Stat(filepath.Join(prefix, f)); err != nil {
			return false
		}
	}
	return true
}

// racoonOptions configure racoon with one remote (iked) and one sainfo.
type racoonOptions struct {
	LocalAddr, RemoteAddr string
	// LocalID and RemoteID in iked's notation ("fqdn:racoon.example").
	LocalID, RemoteID string
	PSK               string
	// Phase 1: encryption ("aes 256", "3des"), hash ("sha256", "sha1"),
	// DH group number, authentication method ("pre_shared_key",
	// "rsasig").
	Encr, Hash, Auth string
	DH               int
	// Lifetime1 and Lifetime2 are racoon's "lifetime time" values for
	// phase 1 and phase 2, e.g. "8 hour", "30 sec".
	Lifetime1, Lifetime2 string
	// Phase 2: encryption ("aes 256"), authentication ("hmac_sha256"),
	// PFS group (0: none).
	ESPEncr, ESPAuth string
	PFS              int
	// LocalTS and RemoteTS are the sainfo's subnets; empty: anonymous
	// (transport mode between the hosts).
	LocalTS, RemoteTS string
	NATT              bool
	DPDDelay          int // seconds; 0 off
	// Cert, Key and CA are file names in racoon's directory for rsasig.
	Cert, Key, CA string
	// Files are written into racoon's directory.
	Files map[string][]byte
	// Policies are setkey lines (spdadd ...) loaded before racoon starts,
	// for racoon as initiator; a responder generates its own.
	Policies []string
	// GSSID is racoon's gss_id (its own principal, name@REALM) for
	// authentication_method gssapi_krb; Env is added to racoon's
	// environment (KRB5_CONFIG, KRB5_KTNAME, …).
	GSSID string
	Env   []string
}

// racoon is a running racoon inside a namespace.
type racoon struct {
	t       *testing.T
	ns      *netns
	prefix  string
	dir     string
	conf    string
	sock    string
	logPath string
	pfkey   string // the PF_KEY stand-in's log
	extEnv  []string
	outPath string
	cmd     *exec.Cmd
	done    chan error
	exited  bool
}

// racoonIdentifier renders an identity in racoon's my_identifier syntax.
func racoonIdentifier(id string) string {
	switch {
	case strings.HasPrefix(id, "fqdn:"):
		return `fqdn "` + strings.TrimPrefix(id, "fqdn:") + `"`
	case strings.HasPrefix(id, "dn:"):
		return `asn1dn "` + strings.TrimPrefix(id, "dn:") + `"`
	case strings.HasPrefix(id, "ip:"):
		return `address ` + strings.TrimPrefix(id, "ip:")
	}
	return `asn1dn`
}

// racoonConf renders racoon.conf for a racoon whose files live in dir.
func racoonConf(dir string, o racoonOptions) string {
	def := func(v, d string) string {
		if v == "" {
			return d
		}
		return v
	}
	var b strings.Builder
	fmt.Fprintf(&b, "path pre_shared_key %q;\npath certificate %q;\npath pidfile %q;\n", filepath.Join(dir, "psk.txt"), dir, filepath.Join(dir, "racoon.pid"))
	fmt.Fprintf(&b, "listen {\n\tisakmp %s [500];\n", o.LocalAddr)
	if o.NATT {
		fmt.Fprintf(&b, "\tisakmp_natt %s [4500];\n", o.LocalAddr)
	}
	fmt.Fprintf(&b, "\tadminsock %q \"root\" \"root\" 0600;\n}\n", filepath.Join(dir, "racoon.sock"))
	b.WriteString("timer {\n\tcounter 3;\n\tinterval 1 sec;\n\tpersend 1;\n\tphase1 20 sec;\n\tphase2 15 sec;\n\tnatt_keepalive 20 sec;\n}\n")
	natt := "off"
	if o.NATT {
		natt = "on"
	}
	fmt.Fprintf(&b, "remote %s {\n\texchange_mode main;\n\tmy_identifier %s;\n\tpeers_identifier %s;\n\tverify_identifier on;\n", o.RemoteAddr, racoonIdentifier(o.LocalID), racoonIdentifier(o.RemoteID))
	fmt.Fprintf(&b, "\tnat_traversal %s;\n\tproposal_check obey;\n\tgenerate_policy on;\n\tpassive off;\n\tdpd_delay %d;\n\tlifetime time %s;\n", natt, o.DPDDelay, def(o.Lifetime1, "8 hour"))
	if o.Cert != "" {
		fmt.Fprintf(&b, "\tcertificate_type x509 %q %q;\n\tca_type x509 %q;\n\tsend_cert on;\n\tsend_cr on;\n\tverify_cert on;\n", o.Cert, o.Key, o.CA)
	}
	gssID := ""
	if o.GSSID != "" {
		gssID = fmt.Sprintf("\t\tgss_id %q;\n", o.GSSID)
	}
	fmt.Fprintf(&b, "\tproposal {\n\t\tencryption_algorithm %s;\n\t\thash_algorithm %s;\n\t\tauthentication_method %s;\n%s\t\tdh_group %d;\n\t}\n}\n",
		def(o.Encr, "aes 256"), def(o.Hash, "sha256"), def(o.Auth, "pre_shared_key"), gssID, cmp.Or(o.DH, 14))
	if o.LocalTS == "" {
		b.WriteString("sainfo anonymous {\n")
	} else {
		fmt.Fprintf(&b, "sainfo address %s any address %s any {\n", o.LocalTS, o.RemoteTS)
	}
	if o.PFS != 0 {
		fmt.Fprintf(&b, "\tpfs_group %d;\n", o.PFS)
	}
	fmt.Fprintf(&b, "\tlifetime time %s;\n\tencryption_algorithm %s;\n\tauthentication_algorithm %s;\n\tcompression_algorithm deflate;\n}\n",
		def(o.Lifetime2, "1 hour"), def(o.ESPEncr, "aes 256"), def(o.ESPAuth, "hmac_sha256"))
	return b.String()
}

// startRacoon writes the configuration and starts racoon in ns, waiting
// for its admin socket. t.Cleanup stops it and logs its log on failure.
func startRacoon(t *testing.T, ns *netns, o racoonOptions) *racoon {
	t.Helper()
	prefix := requireRacoon(t)
	dir := t.TempDir()
	r := &racoon{t: t, ns: ns, prefix: prefix, dir: dir, conf: filepath.Join(dir, "racoon.conf"), extEnv: o.Env,
		sock: filepath.Join(dir, "racoon.sock"), logPath: filepath.Join(dir, "racoon.log"),
		pfkey: filepath.Join(dir, "pfkey.log"), outPath: filepath.Join(dir, "racoon.out"), done: make(chan error, 1)}
	psk := ""
	if o.PSK != "" {
		psk = fmt.Sprintf("%s %s\n%s %s\n", o.RemoteAddr, o.PSK, strings.TrimPrefix(o.RemoteID, "fqdn:"), o.PSK)
	}
	files := map[string][]byte{"psk.txt": []byte(psk), "racoon.conf": []byte(racoonConf(dir, o))}
	for k, v := range o.Files {
		files[k] = v
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if len(o.Policies) > 0 {
		spd := filepath.Join(dir, "setkey.conf")
		if err := os.WriteFile(spd, []byte(strings.Join(o.Policies, "\n")+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		cmd := ns.command(context.Background(), filepath.Join(prefix, "sbin/setkey"), "-f", spd)
		cmd.Env = r.env()
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("setkey: %v\n%s", err, out)
		}
	}
	f, err := os.Create(r.outPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	r.cmd = ns.command(context.Background(), filepath.Join(prefix, "sbin/racoon"), "-F", "-d", "-f", r.conf, "-l", r.logPath)
	r.cmd.Env = r.env()
	r.cmd.Stdout, r.cmd.Stderr = f, f
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("starting racoon: %v", err)
	}
	go func() { r.done <- r.cmd.Wait() }()
	t.Cleanup(r.stop)
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(r.sock); err == nil {
			return r
		}
		select {
		case err := <-r.done:
			r.exited = true
			t.Fatalf("racoon exited: %v\n%s\n%s", err, r.output(), r.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("racoon: no admin socket after 10s\n%s", r.Log())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (r *racoon) env() []string {
	return append(append(os.Environ(), "LD_PRELOAD="+filepath.Join(r.prefix, "lib/fakepfkey.so"),
		"FAKEPFKEY_SPD="+filepath.Join(r.dir, "spd"), "FAKEPFKEY_LOG="+r.pfkey, "FAKEPFKEY_LOGKEYS=1", "FAKEPFKEY_SA=ok"), r.extEnv...)
}

func (r *racoon) stop() {
	if !r.exited {
		_ = r.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-r.done:
		case <-time.After(5 * time.Second):
			_ = r.cmd.Process.Kill()
			<-r.done
		}
		r.exited = true
	}
	if r.t.Failed() || verbose() {
		r.t.Logf("racoon log (%s):\n%s\nstdout/stderr:\n%s\nPF_KEY log:\n%s", r.logPath, r.Log(), r.output(), r.PFKeyLog())
	}
}

func (r *racoon) output() string { b, _ := os.ReadFile(r.outPath); return string(b) }

// Log returns racoon's log so far.
func (r *racoon) Log() string { b, _ := os.ReadFile(r.logPath); return string(b) }

// PFKeyLog returns the PF_KEY stand-in's log.
func (r *racoon) PFKeyLog() string { b, _ := os.ReadFile(r.pfkey); return string(b) }

// ctl runs racoonctl against this racoon.
func (r *racoon) ctl(timeout time.Duration, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(r.prefix, "bin/racoonctl"), append([]string{"-s", r.sock}, args...)...)
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = fmt.Errorf("racoonctl %s: timed out", strings.Join(args, " "))
	}
	return string(out), err
}

// racoonISAKMP is one phase 1 SA from racoonctl show-sa isakmp.
type racoonISAKMP struct {
	Peer, ICookie, RCookie string
}

var racoonCookies = regexp.MustCompile(`^(\S+)\s+([0-9a-f]{16}):([0-9a-f]{16})`)

// ISAKMPSAs lists racoon's established phase 1 SAs.
func (r *racoon) ISAKMPSAs() ([]racoonISAKMP, error) {
	out, err := r.ctl(10*time.Second, "show-sa", "isakmp")
	if err != nil {
		return nil, fmt.Errorf("%v\n%s", err, out)
	}
	var sas []racoonISAKMP
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		if m := racoonCookies.FindStringSubmatch(sc.Text()); m != nil && m[3] != "0000000000000000" {
			sas = append(sas, racoonISAKMP{Peer: m[1], ICookie: m[2], RCookie: m[3]})
		}
	}
	return sas, nil
}

// racoonSA is an IPsec SA racoon installed (through the PF_KEY
// stand-in): its SPI, direction, algorithms and keys.
type racoonSA struct {
	Src, Dst        string
	SPI             string // 8 hex digits
	Auth, Enc       string // PF_KEY algorithm numbers
	AuthKey, EncKey string // hex
}

var racoonSALine = regexp.MustCompile(`(?:UPDATE|ADD) satype 3 (\S+) -> (\S+) spi 0x([0-9a-f]{8}) auth (\d+) enc (\d+)(?: authkey ([0-9a-f]+))?(?: enckey ([0-9a-f]+))?`)

// IPsecSAs returns the ESP SAs racoon installed, in order.
func (r *racoon) IPsecSAs() []racoonSA {
	var out []racoonSA
	for _, l := range strings.Split(r.PFKeyLog(), "\n") {
		if m := racoonSALine.FindStringSubmatch(l); m != nil {
			out = append(out, racoonSA{Src: m[1], Dst: m[2], SPI: m[3], Auth: m[4], Enc: m[5], AuthKey: m[6], EncKey: m[7]})
		}
	}
	return out
}
