// Package adsource reads the assigned IPsec policy from Active Directory:
// the MS-GPIPSEC objects under CN=IP Security,CN=System of the domain, over
// LDAP bound with the machine's own Kerberos credentials (SASL GSSAPI with
// the integrity layer a domain controller requires), from domain
// controllers given by address or found by DNS SRV lookup. It polls for
// changes (the objects' uSNChanged, and their number), and keeps the last
// good read in a cache file so that a host whose domain controller is
// unreachable at boot keeps its policy.
//
// Decoding and mapping the objects is package gpipsec's job; applying the
// policy is the daemon's.
package adsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/go-ldap/ldap/v3"
	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/messages"

	"github.com/iked/iked/policy/gpipsec"
)

// DefaultLDAPPort is LDAP's port.
const DefaultLDAPPort = 389

// Config says where and how to read.
type Config struct {
	// DCs are the domain controllers, "host" or "host:port", tried in
	// order. Empty: looked up as _ldap._tcp.dc._msdcs.<Domain> (SRV).
	DCs []string
	// Domain is the DNS domain (for the SRV lookup, and the base DN when
	// BaseDN is empty).
	Domain string
	// BaseDN is the domain's naming context; default DC=… of Domain.
	BaseDN string
	// GPO, when set, is a Group Policy object ("{GUID}" or its DN) whose
	// IPSEC object names the assigned policy (ipsecOwnersReference,
	// [MS-GPIPSEC] §2.2.2): Snapshot.Assigned is that policy's DN.
	GPO string
	// SPN is the domain controllers' LDAP service principal; default
	// ldap/<host> (host/<host> is tried when the KDC does not know it, as
	// Samba's KDC does not map ldap/ to a DC's host/ principal).
	SPN string
	// Kerberos returns a client with the machine's credentials.
	Kerberos func() (*client.Client, error)
	// Timeout bounds one read (connect, bind, searches); default 15s.
	Timeout time.Duration
	// LookupSRV and LookupHost are net.DefaultResolver's unless a test
	// sets them.
	LookupSRV  func(ctx context.Context, service, proto, name string) (string, []*net.SRV, error)
	LookupHost func(ctx context.Context, host string) ([]netip.Addr, error)
}

// Container is the DN of CN=IP Security under base.
func Container(base string) string { return "CN=IP Security,CN=System," + base }

// BaseDNOf turns "ad.example.test" into "DC=ad,DC=example,DC=test".
func BaseDNOf(domain string) string {
	var parts []string
	for _, l := range strings.Split(strings.Trim(domain, "."), ".") {
		parts = append(parts, "DC="+l)
	}
	return strings.Join(parts, ",")
}

// Snapshot is one read of the container.
type Snapshot struct {
	// DC is the domain controller read from ("host:port").
	DC string `json:"dc"`
	// ReadAt is when.
	ReadAt time.Time `json:"read_at"`
	// Stamp is the change stamp: the highest uSNChanged and the number of
	// objects.
	Stamp Stamp `json:"stamp"`
	// Objects are every IPsec object of the container.
	Objects []*gpipsec.Object `json:"objects"`
	// Assigned is the DN of the policy the GPO assigns (Config.GPO).
	Assigned string `json:"assigned,omitempty"`
}

// Stamp identifies a state of the container: an object added or changed
// raises the highest uSNChanged, one deleted lowers the count.
type Stamp struct {
	HighestUSN uint64 `json:"highest_usn"`
	Count      int    `json:"count"`
}

func (s Stamp) String() string { return fmt.Sprintf("usn %d, %d objects", s.HighestUSN, s.Count) }

// Reader reads snapshots.
type Reader struct {
	cfg Config

	mu    sync.Mutex     // guards krb and found
	krb   *client.Client // the machine's Kerberos client, kept between reads (it renews its TGT itself)
	found []netip.Addr   // the addresses of the DCs the last SRV lookup found
}

// kerberos returns the client, made on first use.
func (r *Reader) kerberos() (*client.Client, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.krb == nil {
		c, err := r.cfg.Kerberos()
		if err != nil {
			return nil, err
		}
		r.krb = c
	}
	return r.krb, nil
}

// dropKerberos forgets the client after a Kerberos failure, so that the
// next read starts afresh (a rotated keytab, a KDC that forgot us).
func (r *Reader) dropKerberos(c *client.Client) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.krb == c && c != nil {
		c.Destroy()
		r.krb = nil
	}
}

// Close ends the Kerberos client's renewals.
func (r *Reader) Close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.krb != nil {
		r.krb.Destroy()
		r.krb = nil
	}
}

// New checks cfg and returns a Reader.
func New(cfg Config) (*Reader, error) {
	if cfg.Kerberos == nil {
		return nil, errors.New("adsource: no Kerberos credentials")
	}
	if len(cfg.DCs) == 0 && cfg.Domain == "" {
		return nil, errors.New("adsource: no domain controllers and no domain to look them up in")
	}
	if cfg.BaseDN == "" {
		if cfg.Domain == "" {
			return nil, errors.New("adsource: no base DN and no domain to derive it from")
		}
		cfg.BaseDN = BaseDNOf(cfg.Domain)
	}
	for _, dc := range cfg.DCs {
		host, _ := splitHostPort(dc)
		if _, err := netip.ParseAddr(host); err == nil && cfg.SPN == "" {
			return nil, fmt.Errorf("adsource: domain controller %s is an address: its service principal (ldap/NAME) must be given", dc)
		}
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.LookupSRV == nil {
		cfg.LookupSRV = net.DefaultResolver.LookupSRV
	}
	if cfg.LookupHost == nil {
		cfg.LookupHost = func(ctx context.Context, host string) ([]netip.Addr, error) {
			return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
		}
	}
	return &Reader{cfg: cfg}, nil
}

// BaseDN is the base DN read under.
func (r *Reader) BaseDN() string { return r.cfg.BaseDN }

// GPOIPsecDN is the DN of a GPO's IPSEC object: gpo is the GPO's "{GUID}"
// or its DN.
func GPOIPsecDN(gpo, base string) string {
	if strings.HasPrefix(gpo, "{") {
		gpo = "CN=" + gpo + ",CN=Policies,CN=System," + base
	}
	return "CN=IPSEC,CN=Windows,CN=Microsoft,CN=Machine," + gpo
}

// assignment reads the policy DN the GPO's IPSEC object names, and the
// object's uSNChanged (a new assignment moves the change stamp).
func (r *Reader) assignment(c *ldap.Conn) (string, uint64, error) {
	dn := GPOIPsecDN(r.cfg.GPO, r.cfg.BaseDN)
	res, err := c.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"ipsecOwnersReference", "uSNChanged"}, nil))
	if err != nil {
		if ldap.IsErrorWithCode(err, ldap.LDAPResultNoSuchObject) {
			return "", 0, fmt.Errorf("the GPO %s assigns no IPsec policy (no %s)", r.cfg.GPO, dn)
		}
		return "", 0, err
	}
	if len(res.Entries) != 1 {
		return "", 0, fmt.Errorf("the GPO %s assigns no IPsec policy", r.cfg.GPO)
	}
	e := res.Entries[0]
	owner := e.GetAttributeValue("ipsecOwnersReference")
	if owner == "" {
		return "", 0, fmt.Errorf("%s: no ipsecOwnersReference (the GPO assigns no IPsec policy)", dn)
	}
	usn, _ := strconv.ParseUint(e.GetAttributeValue("uSNChanged"), 10, 64)
	return owner, usn, nil
}

func splitHostPort(s string) (string, int) {
	if h, p, err := net.SplitHostPort(s); err == nil {
		if n, err := strconv.Atoi(p); err == nil {
			return strings.Trim(h, "[]"), n
		}
	}
	return strings.Trim(s, "[]"), DefaultLDAPPort
}

// controllers returns the DCs to try, in order.
func (r *Reader) controllers(ctx context.Context) ([]string, error) {
	if len(r.cfg.DCs) > 0 {
		return r.cfg.DCs, nil
	}
	_, srvs, err := r.cfg.LookupSRV(ctx, "ldap", "tcp", "dc._msdcs."+r.cfg.Domain)
	if err != nil {
		return nil, fmt.Errorf("looking up the domain controllers of %s: %w", r.cfg.Domain, err)
	}
	// LookupSRV sorts by priority and randomises by weight.
	var out []string
	var found []netip.Addr
	for _, s := range srvs {
		host := strings.TrimSuffix(s.Target, ".")
		out = append(out, net.JoinHostPort(host, strconv.Itoa(int(s.Port))))
		if r.cfg.LookupHost != nil {
			addrs, _ := r.cfg.LookupHost(ctx, host)
			for _, a := range addrs {
				if !slices.Contains(found, a.Unmap()) {
					found = append(found, a.Unmap())
				}
			}
		}
	}
	r.mu.Lock()
	r.found = found
	r.mu.Unlock()
	return out, nil
}

// Addresses returns the domain controllers' addresses: those given as
// addresses, and those of the DCs the last SRV lookup found. A policy
// exempts traffic to them, as it does its KDCs, because the host must
// reach them before any SA exists.
func (r *Reader) Addresses() []netip.Addr {
	r.mu.Lock()
	out := slices.Clone(r.found)
	r.mu.Unlock()
	for _, dc := range r.cfg.DCs {
		host, _ := splitHostPort(dc)
		if a, err := netip.ParseAddr(host); err == nil && !slices.Contains(out, a.Unmap()) {
			out = append(out, a.Unmap())
		}
	}
	return out
}

// Stamp reads only the change stamp, from the first controller that
// answers.
func (r *Reader) Stamp(ctx context.Context) (Stamp, string, error) {
	var st Stamp
	dc, err := r.each(ctx, func(c *ldap.Conn, dc string) error {
		res, err := c.Search(ldap.NewSearchRequest(Container(r.cfg.BaseDN), ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=ipsecBase)", []string{"uSNChanged"}, nil))
		if err != nil {
			return err
		}
		st = stampOf(res.Entries)
		if r.cfg.GPO != "" {
			_, usn, err := r.assignment(c)
			if err != nil {
				return err
			}
			st.HighestUSN = max(st.HighestUSN, usn)
		}
		return nil
	})
	return st, dc, err
}

func stampOf(entries []*ldap.Entry) Stamp {
	st := Stamp{Count: len(entries)}
	for _, e := range entries {
		if n, err := strconv.ParseUint(e.GetAttributeValue("uSNChanged"), 10, 64); err == nil && n > st.HighestUSN {
			st.HighestUSN = n
		}
	}
	return st
}

// Read reads every IPsec object of the container.
func (r *Reader) Read(ctx context.Context) (*Snapshot, error) {
	var snap *Snapshot
	_, err := r.each(ctx, func(c *ldap.Conn, dc string) error {
		res, err := c.Search(ldap.NewSearchRequest(Container(r.cfg.BaseDN), ldap.ScopeSingleLevel, ldap.NeverDerefAliases, 0, 0, false,
			"(objectClass=ipsecBase)", gpipsec.Attributes, nil))
		if err != nil {
			return err
		}
		s := &Snapshot{DC: dc, ReadAt: time.Now(), Stamp: stampOf(res.Entries)}
		if r.cfg.GPO != "" {
			owner, usn, err := r.assignment(c)
			if err != nil {
				return err
			}
			s.Assigned, s.Stamp.HighestUSN = owner, max(s.Stamp.HighestUSN, usn)
		}
		for _, e := range res.Entries {
			o, err := gpipsec.NewObject(e.DN, func(a string) [][]byte { return e.GetEqualFoldRawAttributeValues(a) })
			if err != nil {
				return err
			}
			s.Objects = append(s.Objects, o)
		}
		snap = s
		return nil
	})
	return snap, err
}

// each runs f on a bound connection to the first controller that
// answers; the errors of all that did not are joined.
func (r *Reader) each(ctx context.Context, f func(*ldap.Conn, string) error) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	dcs, err := r.controllers(ctx)
	if err != nil {
		return "", err
	}
	var errs []error
	for _, dc := range dcs {
		host, port := splitHostPort(dc)
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		c, err := r.bind(ctx, host, addr)
		if err == nil {
			err = f(c, addr)
			_ = c.Close()
			if err == nil {
				return addr, nil
			}
		}
		errs = append(errs, fmt.Errorf("%s: %w", addr, err))
		if ctx.Err() != nil {
			break
		}
	}
	return "", errors.Join(errs...)
}

// bind connects and binds with the machine's Kerberos credentials.
func (r *Reader) bind(ctx context.Context, host, addr string) (*ldap.Conn, error) {
	krb, err := r.kerberos()
	if err != nil {
		return nil, fmt.Errorf("kerberos: %w", err)
	}
	spns := []string{r.cfg.SPN}
	if r.cfg.SPN == "" {
		spns = []string{"ldap/" + host, "host/" + host}
	} else if name, ok := strings.CutPrefix(r.cfg.SPN, "ldap/"); ok {
		spns = append(spns, "host/"+name)
	}
	var lastErr error
	krbFailed := false
	for _, spn := range spns {
		var d net.Dialer
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		if dl, ok := ctx.Deadline(); ok {
			_ = nc.SetDeadline(dl)
		}
		lc := &layerConn{Conn: nc}
		c := ldap.NewConn(lc, false)
		c.Start()
		err = c.GSSAPIBind(&gssClient{krb: krb, conn: lc}, spn, "")
		if err == nil {
			return c, nil
		}
		_ = c.Close()
		lastErr = fmt.Errorf("GSSAPI bind as %s for %s: %w", krb.Credentials.CName().PrincipalNameString(), spn, err)
		// gokrb5 wraps its errors in strings: match both ways.
		var kerr messages.KRBError
		isKRB := errors.As(err, &kerr)
		krbFailed = isKRB || strings.Contains(err.Error(), "KDC_Error") || strings.Contains(err.Error(), "Networking_Error")
		unknown := isKRB && kerr.ErrorCode == errorcode.KDC_ERR_S_PRINCIPAL_UNKNOWN || strings.Contains(err.Error(), "KDC_ERR_S_PRINCIPAL_UNKNOWN")
		if !unknown {
			break // only an unknown service principal is worth another name
		}
	}
	if krbFailed {
		r.dropKerberos(krb)
	}
	return nil, lastErr
}
