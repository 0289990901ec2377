package main

import (
	"crypto/x509"
	"net/http"
	"slices"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/config"
	"github.com/iked/iked/metrics"
	"github.com/iked/iked/policy/adsource"
	"github.com/iked/iked/sadb"
)

// metricsHandler serves /metrics: the engine's counters, the tunnels, the
// certificates, the limits, and what the data plane, the policy and the
// directory have to say.
func (d *daemon) metricsHandler() http.Handler {
	var more []prometheus.Collector
	if r, ok := d.dp.backend.(sadb.StatsReporter); ok {
		more = append(more, metrics.NewDataPlaneCollector(r))
	}
	if d.agent != nil {
		more = append(more, metrics.NewPolicyCollector(d.agent))
	}
	if d.dir != nil {
		more = append(more, adsource.NewCollector(d.dir.source))
	}
	more = append(more, buildInfoGauge(),
		metrics.NewTunnelCollector(d.engine, d.totals, metrics.TunnelOptions{PerSALimit: func() int { return d.config().MetricsPerSALimit }}),
		metrics.NewCertificateCollector(d.certificates),
		metrics.NewLimitCollector(d.limits),
		metrics.KerberosCollectorWhen(d.kerberosConfigured))
	return metrics.VersionedHandler(d.metricSources(), more...)
}

// config returns the running configuration.
func (d *daemon) config() *config.Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// limits are the configured limits SA counts run into (iked_limit).
func (d *daemon) limits() map[string]int {
	cfg := d.config()
	return map[string]int{
		metrics.LimitCookieThreshold: cfg.IKE.CookieThreshold,
		metrics.LimitHalfOpenPerPeer: cfg.IKE.HalfOpenPerPeer,
		metrics.LimitAuthFailures:    cfg.IKE.AuthFailureLimit,
		metrics.LimitPerSAIKESAs:     cfg.MetricsPerSALimit,
	}
}

// methods returns the auth methods in use, each with the connections that
// use it: the IKEv2 engine's connections (the file's, the policy's,
// VICI's), the file's (IKEv1's too) and the configuration's named methods
// (a policy's, before its first connection).
func (d *daemon) methods() []usedMethod {
	var out []usedMethod
	add := func(m auth.Method, conn string) {
		if m == nil {
			return
		}
		for i := range out {
			if out[i].method == m {
				if conn != "" && !slices.Contains(out[i].conns, conn) {
					out[i].conns = append(out[i].conns, conn)
				}
				return
			}
		}
		u := usedMethod{method: m}
		if conn != "" {
			u.conns = []string{conn}
		}
		out = append(out, u)
	}
	for _, c := range d.engine.Connections() {
		add(c.Auth, c.Name)
	}
	cfg := d.config()
	// The file's connections again: those of the IKEv1 engine are not
	// the IKEv2 engine's.
	for _, c := range cfg.Connections {
		add(c.Auth, c.Name)
	}
	for _, name := range cfg.AuthenticationNames {
		add(cfg.Authentication[name], "")
	}
	return out
}

// usedMethod is an auth method and the connections that use it.
type usedMethod struct {
	method auth.Method
	conns  []string
}

// kerberosConfigured reports whether any connection or policy
// authenticates with Kerberos: only then are its metrics served.
func (d *daemon) kerberosConfigured() bool {
	for _, u := range d.methods() {
		if u.method.Name() == "kerberos" {
			return true
		}
	}
	return false
}

// The certificate methods' accessors (auth/cert.Method).
type (
	ownCertificate interface{ Certificate() *x509.Certificate }
	intermediates  interface{ Intermediates() []*x509.Certificate }
	trustAnchors   interface{ TrustAnchors() []*x509.Certificate }
)

// certificates lists every loaded certificate: each method's own, its
// intermediates and its CAs, with the connections that use them. A
// certificate several methods load is listed once, with all their
// connections.
func (d *daemon) certificates() []metrics.Certificate {
	var out []metrics.Certificate
	add := func(c *x509.Certificate, kind string, conns []string) {
		if c == nil {
			return
		}
		for i := range out {
			if out[i].Cert.Equal(c) {
				for _, n := range conns {
					if !slices.Contains(out[i].Connections, n) {
						out[i].Connections = append(out[i].Connections, n)
					}
				}
				return
			}
		}
		out = append(out, metrics.Certificate{Cert: c, Kind: kind, Connections: slices.Clone(conns)})
	}
	for _, u := range d.methods() {
		if m, ok := u.method.(ownCertificate); ok {
			add(m.Certificate(), metrics.CertEndEntity, u.conns)
		}
		if m, ok := u.method.(intermediates); ok {
			for _, c := range m.Intermediates() {
				add(c, metrics.CertIntermediate, u.conns)
			}
		}
		if m, ok := u.method.(trustAnchors); ok {
			for _, c := range m.TrustAnchors() {
				add(c, metrics.CertCA, u.conns)
			}
		}
	}
	return out
}
