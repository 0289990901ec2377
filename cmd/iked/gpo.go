package main

import (
	"bytes"
	"context"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"sync"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/config"
	"github.com/iked/iked/control"
	"github.com/iked/iked/policy/adsource"
	"github.com/iked/iked/policy/gpipsec"
	"github.com/jcmturner/gokrb5/v8/client"
)

// directory is the daemon's policy source when policy.source is ldap: the
// reader, the poller and the snapshot the running policy was built from.
type directory struct {
	reader *adsource.Reader
	source *adsource.Source

	mu     sync.Mutex // guards snap and notes
	snap   *adsource.Snapshot
	notes  []gpipsec.Note
	cancel context.CancelFunc
}

// krbClient is what the LDAP bind needs of a kerberos method.
type krbClient interface {
	NewClient() (*client.Client, error)
}

// newDirectory reads the directory's policy (or the cache) and completes
// cfg with it: cfg.Policy and the PSK methods its rules carry.
func newDirectory(ctx context.Context, cfg *config.Config, d *daemon) (*directory, error) {
	ps := cfg.PolicySource
	k, ok := ps.LDAP.Kerberos.(krbClient)
	if !ok {
		return nil, fmt.Errorf("policy.ldap: authentication method %s cannot bind to LDAP", ps.LDAP.AuthName)
	}
	r, err := adsource.New(adsource.Config{DCs: ps.LDAP.DCs, Domain: ps.LDAP.Domain, BaseDN: ps.LDAP.BaseDN, SPN: ps.LDAP.SPN, GPO: ps.LDAP.GPO,
		Kerberos: k.NewClient, Timeout: ps.LDAP.Timeout})
	if err != nil {
		return nil, err
	}
	dir := &directory{reader: r}
	interval := ps.LDAP.Interval
	var built *builtPolicy
	build := func(s *adsource.Snapshot) error {
		b, err := dir.build(cfg, s)
		if err == nil {
			built = b
		}
		return err
	}
	// The interval is known once the policy is: 0 means the policy's own.
	dir.source = adsource.NewSource(r, policyRef(ps), ps.LDAP.Cache, time.Hour, d.log)
	snap, err := dir.source.Initial(ctx, build)
	if err != nil {
		return nil, err
	}
	if interval == 0 {
		interval = built.mapped.PollingInterval
	}
	dir.source.SetInterval(interval)
	dir.adopt(snap, built, cfg)
	for _, n := range built.mapped.Notes {
		d.log.Info("directory policy: not applied as written", "object", n.DN, "note", n.Msg)
	}
	return dir, nil
}

// builtPolicy is a snapshot's policy in iked's model, with the
// authentication methods its rules name.
type builtPolicy struct {
	mapped  *gpipsec.Mapped
	methods map[string]auth.Method
}

// build maps the snapshot's policy with cfg's methods.
func (dir *directory) build(cfg *config.Config, s *adsource.Snapshot) (*builtPolicy, error) {
	ps := cfg.PolicySource
	objs, err := gpipsec.NewDirectory(s.Objects)
	if err != nil {
		return nil, err
	}
	ref := ps.LDAP.Policy
	if ps.LDAP.GPO != "" {
		if ref = s.Assigned; ref == "" {
			return nil, fmt.Errorf("the GPO %s assigns no IPsec policy", ps.LDAP.GPO)
		}
	}
	p, err := objs.Resolve(ref)
	if err != nil {
		return nil, err
	}
	var configured []gpipsec.Configured
	for _, name := range ps.Authentication {
		m := cfg.Authentication[name]
		c := gpipsec.Configured{Name: name, Kind: m.Name()}
		if ta, ok := m.(interface{ TrustAnchors() []*x509.Certificate }); ok {
			for _, ca := range ta.TrustAnchors() {
				c.CAs = append(c.CAs, ca.Subject.String())
			}
		}
		configured = append(configured, c)
	}
	mapped, err := gpipsec.Map(p, gpipsec.MapOptions{Auth: configured, SecurityMethods: ps.SecurityMethods})
	if err != nil {
		return nil, err
	}
	pol := mapped.Policy
	if ps.FallbackDelay > 0 {
		for _, r := range pol.Rules {
			r.FallbackDelay = ps.FallbackDelay
		}
	}
	// The domain controllers the policy is read from are exempt, like the
	// KDCs: the host must reach them before any SA exists.
	pol.Exempt = slices.Clone(ps.Exempt)
	for _, a := range dir.reader.Addresses() {
		pol.Exempt = append(pol.Exempt, netip.PrefixFrom(a, a.BitLen()))
	}
	pol.KDCs = slices.Clone(ps.KDCs)
	methods := map[string]auth.Method{}
	for k, v := range cfg.Authentication {
		methods[k] = v
	}
	for _, k := range mapped.PSKs {
		sec, err := psk.NewSecret([]byte(k.Secret))
		if err != nil {
			return nil, fmt.Errorf("policy %q: pre-shared key method %s: %v", p.Object.Name, k.Name, err)
		}
		if _, clash := methods[k.Name]; clash {
			return nil, fmt.Errorf("policy %q: the directory's pre-shared key is named %s, as a configured method", p.Object.Name, k.Name)
		}
		methods[k.Name] = psk.New(sec)
	}
	return &builtPolicy{mapped: mapped, methods: methods}, nil
}

// policyRef names the policy for logs and ikectl: the configured
// reference, or the GPO whose assignment is followed.
func policyRef(ps *config.PolicySource) string {
	if ps.LDAP.GPO != "" {
		return "assigned by GPO " + ps.LDAP.GPO
	}
	return ps.LDAP.Policy
}

// adopt makes b cfg's policy.
func (dir *directory) adopt(s *adsource.Snapshot, b *builtPolicy, cfg *config.Config) {
	cfg.Policy = b.mapped.Policy
	cfg.Authentication = b.methods
	dir.mu.Lock()
	dir.snap, dir.notes = s, b.mapped.Notes
	dir.mu.Unlock()
}

// rebuild maps the running snapshot again for a reloaded configuration.
func (dir *directory) rebuild(cfg *config.Config) error {
	dir.mu.Lock()
	s := dir.snap
	dir.mu.Unlock()
	b, err := dir.build(cfg, s)
	if err != nil {
		return err
	}
	dir.adopt(s, b, cfg)
	return nil
}

// start polls the directory; a changed policy is assigned as a reload is.
func (dir *directory) start(d *daemon) {
	ctx, cancel := context.WithCancel(context.Background())
	dir.cancel = cancel
	dir.source.Apply = func(s *adsource.Snapshot) error { return d.applyDirectory(ctx, s) }
	go dir.source.Run(ctx)
}

func (dir *directory) stop() {
	if dir.cancel != nil {
		dir.cancel()
	}
	dir.reader.Close()
}

// applyDirectory assigns a changed directory policy: the SAs it still
// allows are kept (agent.Assign), the engine gets its connections.
func (d *daemon) applyDirectory(ctx context.Context, s *adsource.Snapshot) error {
	d.connMu.Lock()
	defer d.connMu.Unlock()
	d.mu.Lock()
	cur := *d.cfg
	d.mu.Unlock()
	b, err := d.dir.build(&cur, s)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, shutdownGrace)
	defer cancel()
	next := cur
	d.dir.adopt(s, b, &next)
	if _, err := d.agent.Assign(ctx, next.Policy, next.Authentication); err != nil {
		return err
	}
	if err := d.engine.SetConnections(d.allConnections(&next)); err != nil {
		return err
	}
	if err := d.reloadIKEv1(&next); err != nil {
		return err
	}
	d.mu.Lock()
	d.cfg = &next
	d.mu.Unlock()
	for _, n := range b.mapped.Notes {
		d.log.Info("directory policy: not applied as written", "object", n.DN, "note", n.Msg)
	}
	return nil
}

// PolicySource implements control.PolicySourceHandler.
func (d *daemon) PolicySource() (json.RawMessage, error) {
	if d.dir == nil {
		return nil, errors.New("the policy comes from the configuration file (policy.source is not ldap)")
	}
	type sourceInfo struct {
		adsource.Status
		Notes []string `json:"notes,omitempty"`
	}
	info := sourceInfo{Status: d.dir.source.Status()}
	d.dir.mu.Lock()
	for _, n := range d.dir.notes {
		info.Notes = append(info.Notes, n.String())
	}
	d.dir.mu.Unlock()
	return json.Marshal(info)
}

// PolicyExport implements control.PolicySourceHandler.
func (d *daemon) PolicyExport(baseDN string) (*control.PolicyExport, error) {
	if d.agent == nil {
		return nil, errors.New("no IPsec policy is assigned (see docs/policies.md)")
	}
	if baseDN == "" && d.dir != nil {
		baseDN = d.dir.reader.BaseDN()
	}
	if baseDN == "" {
		return nil, errors.New("policy export: give the domain's base DN (--base-dn DC=corp,DC=example)")
	}
	d.mu.Lock()
	methods := d.cfg.Authentication
	d.mu.Unlock()
	objs, notes := gpipsec.Export(d.agent.Policy(), gpipsec.ExportOptions{DomainDN: baseDN, Auth: func(name string) (gpipsec.AuthMethod, bool) {
		switch m := methods[name]; m.Name() {
		case "kerberos":
			return gpipsec.AuthMethod{Type: gpipsec.AuthKerberos}, true
		case "cert":
			if ta, ok := m.(interface{ TrustAnchors() []*x509.Certificate }); ok && len(ta.TrustAnchors()) > 0 {
				return gpipsec.AuthMethod{Type: gpipsec.AuthCertificate, Value: ta.TrustAnchors()[0].Subject.String()}, true
			}
		}
		return gpipsec.AuthMethod{}, false
	}})
	var buf bytes.Buffer
	if err := gpipsec.WriteLDIF(&buf, objs); err != nil {
		return nil, err
	}
	out := &control.PolicyExport{LDIF: buf.String()}
	for _, n := range notes {
		out.Notes = append(out.Notes, n.String())
	}
	return out, nil
}

var _ control.PolicySourceHandler = (*daemon)(nil)

// checkPolicyLDAP is iked --check-policy-ldap: read the directory's
// policy with the configuration's credentials and show it, the notes and
// where it came from, without running.
func checkPolicyLDAP(path string) int {
	cfg, err := config.Load(path)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	if cfg.PolicySource == nil {
		fmt.Fprintf(os.Stderr, "%s: policy.source is not ldap\n", path)
		return 1
	}
	d := &daemon{log: newLogging(config.Log{Format: "text", Level: "warn"}, os.Stderr, false).logger}
	dir, err := newDirectory(context.Background(), cfg, d)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	st := dir.source.Status()
	from := "read from " + st.DC
	if st.Origin == adsource.FromCache {
		from = "from the cache " + st.CacheFile + " (no domain controller answered: " + st.LastError + ")"
	}
	p := cfg.Policy
	fmt.Fprintf(os.Stdout, "%s: policy %q %s at %s (%s): %d rules, default response rule %s\n", path, p.Name, from,
		st.ReadAt.Format(time.RFC3339), st.Stamp, len(p.Rules), onOff(p.DefaultResponse.Active))
	for _, r := range p.Rules {
		fmt.Fprintf(os.Stdout, "  rule %s: %s %s\n", r.Name, r.Action, r.Filters.Name)
	}
	for _, n := range dir.notes {
		fmt.Fprintf(os.Stdout, "  note: %s\n", n)
	}
	return 0
}

func onOff(b bool) string {
	if b {
		return "on"
	}
	return "off"
}
