// Package kerberos authenticates IKEv2 peers with Kerberos machine
// credentials (keytabs) through a KDC, MIT or Active Directory, using
// github.com/jcmturner/gokrb5/v8. The wire format is iked's own, written
// down in docs/kerberos.md: the initiator sends a KRB-AP-REQ for the
// responder's service principal in a CERT payload (encoding 6, "Kerberos
// Token"); both AUTH payloads are shared-key MICs (RFC 7296 §2.15) keyed
// from the subkey of that AP-REQ, which only the holder of the service key
// can learn, so authentication is mutual.
package kerberos

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
)

// Defaults.
const (
	DefaultMaxSkew    = 5 * time.Minute
	DefaultKDCRetries = 2
	DefaultKDCBackoff = 500 * time.Millisecond
)

// Options is the configuration section of the "kerberos" method.
type Options struct {
	// Realm is the Kerberos realm; default the default_realm of KRB5Conf.
	Realm string `yaml:"realm"`
	// KDCs are the realm's KDCs as "host" or "host:port" (TCP); when set
	// they replace the realm's kdc lines of KRB5Conf.
	KDCs []string `yaml:"kdcs"`
	// KRB5Conf is a krb5.conf to read (realms, KDCs, enctypes); optional
	// when Realm and KDCs are given.
	KRB5Conf string `yaml:"krb5_conf"`
	// Keytab holds this host's keys: those of Principal (to get tickets
	// as initiator) and of LocalService (to accept tickets as responder).
	// Required. Read again when the file changes.
	Keytab string `yaml:"keytab"`
	// Principal is the client principal this host initiates as; default
	// host/<local FQDN>.
	Principal string `yaml:"principal"`
	// Service is the peer's service principal, asked for when initiating,
	// e.g. host/peer.example.test. Required to initiate.
	Service string `yaml:"service"`
	// LocalService lists the service principals whose tickets this host
	// accepts as responder; default Principal.
	LocalService []string `yaml:"local_service"`
	// Allowed lists the client principals accepted as responder:
	// "name@REALM", "name" (in Realm) or "@REALM" (the whole realm).
	// Required.
	Allowed []string `yaml:"allowed"`
	// MaxSkew is the clock skew accepted; default 5m.
	MaxSkew time.Duration `yaml:"max_skew"`
	// CheckAddresses refuses tickets whose address list (if any) does not
	// hold the peer's address.
	CheckAddresses bool `yaml:"check_addresses"`
	// ClockResync lets an initiator refused with KRB_AP_ERR_SKEW adopt the
	// responder's clock for one retry; default true.
	ClockResync *bool `yaml:"clock_resync"`
	// DisablePAFXFAST stops gokrb5 from asking for an encrypted PA-REP
	// (PA-REQ-ENC-PA-REP, part of FAST) in AS requests. gokrb5 does not
	// implement FAST; its documentation says to set it for Active
	// Directory. Default true.
	DisablePAFXFAST *bool `yaml:"disable_pa_fx_fast"`
	// KDCRetries is how many times a KDC exchange that got no answer is
	// retried, with KDCBackoff doubling between tries; defaults 2, 500ms.
	KDCRetries *int          `yaml:"kdc_retries"`
	KDCBackoff time.Duration `yaml:"kdc_backoff"`
}

func init() {
	auth.Register("kerberos", func(decode func(any) error, baseDir string) (auth.Method, error) {
		var o Options
		if err := decode(&o); err != nil {
			return nil, err
		}
		return New(o, baseDir)
	})
}

// Method is a configured kerberos method.
type Method struct {
	realm         string
	principal     Principal
	service       Principal // zero when this side cannot initiate
	localServices []Principal
	allowed       Allowed
	maxSkew       time.Duration
	checkAddrs    bool
	resync        bool
	keytab        *keytabFile
	creds         *creds
	replays       *ReplayCache
	now           func() time.Time
	clockShift    atomic.Int64 // test hook: added to now, in nanoseconds
	kdcAddrs      []netip.Addr // the realm's KDCs given as IP addresses
}

// kdcAddresses returns the KDC entries ("host", "host:port", "[v6]:port")
// that are IP addresses; names are left out (they would need DNS).
func kdcAddresses(kdcs []string) []netip.Addr {
	var out []netip.Addr
	for _, k := range kdcs {
		host := k
		if h, _, err := net.SplitHostPort(k); err == nil {
			host = h
		}
		if a, err := netip.ParseAddr(strings.Trim(host, "[]")); err == nil && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// NewClient returns a gokrb5 client with this host's credentials (its
// principal and keytab, the realm's KDCs), for other Kerberos uses of the
// machine account such as binding to a domain controller's LDAP.
func (m *Method) NewClient() (*client.Client, error) { return m.creds.client() }

// KDCAddresses returns the realm's KDCs that are configured as IP
// addresses: an IPsec policy exempts traffic to them, because Kerberos
// must reach its KDC before any SA exists.
func (m *Method) KDCAddresses() []netip.Addr { return slices.Clone(m.kdcAddrs) }

// Format implements fmt.Formatter: a Method prints without its keys.
func (m *Method) Format(f fmt.State, _ rune) {
	_, _ = fmt.Fprintf(f, "kerberos.Method{%s}", m.principal)
}

var logPtr atomic.Pointer[slog.Logger]

// SetLogger directs the package's own log lines (keytab reloads, KDC
// retries, refusals seen by an initiator); default slog.Default().
func SetLogger(l *slog.Logger) { logPtr.Store(l) }

func logger() *slog.Logger {
	if l := logPtr.Load(); l != nil {
		return l
	}
	return slog.Default()
}

// New builds a Method from its options; relative paths are taken from
// baseDir. It reads the keytab (which must exist) but does not contact
// the KDC.
func New(o Options, baseDir string) (*Method, error) {
	abs := func(p string) string {
		if p == "" || filepath.IsAbs(p) {
			return p
		}
		return filepath.Join(baseDir, p)
	}
	var cfg *config.Config
	if o.KRB5Conf != "" {
		c, err := config.Load(abs(o.KRB5Conf))
		if err != nil {
			return nil, fmt.Errorf("kerberos: krb5_conf: %v", err)
		}
		cfg = c
	} else {
		cfg = config.New()
		cfg.LibDefaults.DNSLookupKDC = false
		cfg.LibDefaults.DNSLookupRealm = false
		cfg.LibDefaults.UDPPreferenceLimit = 1 // TCP: clear errors, no fragmentation
	}
	realm := o.Realm
	if realm == "" {
		realm = cfg.LibDefaults.DefaultRealm
	}
	if realm == "" {
		return nil, errors.New("kerberos: realm is required (or a krb5_conf with default_realm)")
	}
	cfg.LibDefaults.DefaultRealm = realm
	if len(o.KDCs) > 0 {
		kdcs := make([]string, len(o.KDCs))
		for i, k := range o.KDCs {
			if k == "" {
				return nil, errors.New("kerberos: kdcs: empty address")
			}
			kdcs[i] = k
		}
		found := false
		for i := range cfg.Realms {
			if cfg.Realms[i].Realm == realm {
				cfg.Realms[i].KDC, found = kdcs, true
			}
		}
		if !found {
			cfg.Realms = append(cfg.Realms, config.Realm{Realm: realm, KDC: kdcs})
		}
	} else if !hasKDC(cfg, realm) {
		return nil, fmt.Errorf("kerberos: no KDC for realm %s: give kdcs or a krb5_conf that lists them", realm)
	}
	if o.Keytab == "" {
		return nil, errors.New("kerberos: keytab is required")
	}
	kt, err := newKeytabFile(abs(o.Keytab))
	if err != nil {
		return nil, err
	}
	m := &Method{realm: realm, keytab: kt, maxSkew: DefaultMaxSkew, checkAddrs: o.CheckAddresses, resync: true, replays: replays, now: time.Now}
	for _, r := range cfg.Realms {
		if r.Realm == realm {
			m.kdcAddrs = kdcAddresses(r.KDC)
		}
	}
	if o.MaxSkew < 0 {
		return nil, errors.New("kerberos: max_skew must be positive")
	} else if o.MaxSkew > 0 {
		m.maxSkew = o.MaxSkew
	}
	cfg.LibDefaults.Clockskew = m.maxSkew
	if o.ClockResync != nil {
		m.resync = *o.ClockResync
	}
	principal := o.Principal
	if principal == "" {
		h, err := localFQDN()
		if err != nil {
			return nil, fmt.Errorf("kerberos: principal not given and %v", err)
		}
		principal = "host/" + h
	}
	if m.principal, err = ParsePrincipal(principal, realm); err != nil {
		return nil, fmt.Errorf("kerberos: principal: %w", err)
	}
	if o.Service != "" {
		if m.service, err = ParsePrincipal(o.Service, realm); err != nil {
			return nil, fmt.Errorf("kerberos: service: %w", err)
		}
		if m.service.Realm != realm {
			return nil, fmt.Errorf("kerberos: service %s is not in realm %s (cross-realm is not supported)", m.service, realm)
		}
	}
	locals := o.LocalService
	if len(locals) == 0 {
		locals = []string{m.principal.String()}
	}
	for _, s := range locals {
		p, err := ParsePrincipal(s, realm)
		if err != nil {
			return nil, fmt.Errorf("kerberos: local_service: %w", err)
		}
		m.localServices = append(m.localServices, p)
	}
	if m.allowed, err = ParseAllowed(o.Allowed, realm); err != nil {
		return nil, fmt.Errorf("kerberos: %w", err)
	}
	noFAST := true
	if o.DisablePAFXFAST != nil {
		noFAST = *o.DisablePAFXFAST
	}
	retries := DefaultKDCRetries
	if o.KDCRetries != nil {
		if *o.KDCRetries < 0 || *o.KDCRetries > 10 {
			return nil, errors.New("kerberos: kdc_retries must be 0 to 10")
		}
		retries = *o.KDCRetries
	}
	backoff := DefaultKDCBackoff
	if o.KDCBackoff < 0 {
		return nil, errors.New("kerberos: kdc_backoff must be positive")
	} else if o.KDCBackoff > 0 {
		backoff = o.KDCBackoff
	}
	m.creds = &creds{principal: m.principal, keytab: kt, krb5: cfg, noFAST: noFAST, retries: retries, backoff: backoff,
		now: m.clock, tickets: map[string]*ticket{}, offsets: map[string]time.Duration{}}
	return m, nil
}

func hasKDC(cfg *config.Config, realm string) bool {
	for _, r := range cfg.Realms {
		if r.Realm == realm && len(r.KDC) > 0 {
			return true
		}
	}
	return cfg.LibDefaults.DNSLookupKDC
}

// localFQDN is the host name, as MIT's host/<fqdn> default uses it.
func localFQDN() (string, error) {
	h, err := os.Hostname()
	if err != nil {
		return "", err
	}
	return strings.ToLower(strings.TrimSuffix(h, ".")), nil
}

// clock is the method's time, shifted in tests.
func (m *Method) clock() time.Time {
	return m.now().Add(time.Duration(m.clockShift.Load())).UTC()
}

// Name implements auth.Method.
func (*Method) Name() string { return "kerberos" }

// Accepts implements auth.Method.
func (*Method) Accepts(a wire.AuthMethod) bool { return a == AuthMethod }

// Principal is the client principal this method initiates as.
func (m *Method) Principal() Principal { return m.principal }

// Service is the peer service principal this method asks tickets for; zero
// when none is configured.
func (m *Method) Service() Principal { return m.service }

// PrincipalIdentity implements auth.PrincipalIdentity: the IKE identity
// that names this host's principal, as the peer checks it: "fqdn:HOST" for
// host/HOST, else "keyid:NAME@REALM". Connections made by a policy agent
// use it, since an IP identity names no principal.
func (m *Method) PrincipalIdentity() string {
	if host, ok := strings.CutPrefix(m.principal.Name, "host/"); ok && !strings.Contains(host, "/") {
		return "fqdn:" + host
	}
	return "keyid:" + m.principal.String()
}

// CanInitiate reports whether this method has what an initiator needs: a
// service principal for the peer. A policy rule that lists Kerberos first
// falls through to its next method when it cannot.
func (m *Method) CanInitiate() error {
	if m.service == (Principal{}) {
		return errors.New("no service principal configured for the peer (option service)")
	}
	return nil
}

// FlushTickets forgets the cached TGT and service tickets, so that the
// next handshake goes to the KDC.
func (m *Method) FlushTickets() {
	m.creds.mu.Lock()
	m.creds.tgt = nil
	m.creds.tickets = map[string]*ticket{}
	m.creds.mu.Unlock()
}

// NewSession implements auth.Method. An initiator's session gets its
// service ticket here, before IKE_SA_INIT, so that a KDC problem ends the
// attempt before any packet is sent to the peer.
func (m *Method) NewSession(p *auth.Params) (auth.Session, error) {
	s := &session{m: m, params: p}
	if !p.Initiator {
		return s, nil
	}
	if m.service == (Principal{}) {
		return nil, errors.New("kerberos: no service principal configured for the peer (option service)")
	}
	t, err := m.creds.get(m.service)
	if err != nil {
		reason := "kdc_error"
		if errors.Is(err, errKDCUnreachable) {
			reason = "kdc_unreachable"
		}
		stats.auth("initiator", reason)
		return nil, err
	}
	s.tkt = t
	return s, nil
}
