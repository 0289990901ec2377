package kerberos

import (
	"errors"
	"fmt"
	"net/netip"
)

// The IKEv1 engine's view of this method (ikev1.GSSProvider): Windows'
// "Kerberos V5" authentication runs GSS-API contexts of this package in
// Main Mode (docs/kerberos.md §8). The wire format around them (the
// GSS_ID attribute, payload 129, the vendor IDs, the HASHes) is the
// engine's, in ikev1/gss.go.

// PrepareGSS gets the service ticket an initiator's context will use,
// from the cache or the KDC (with the configured retries): the IKEv1
// engine calls it before Main Mode's first message, without locks.
func (m *Method) PrepareGSS() error {
	if m.service == (Principal{}) {
		return errors.New("kerberos: no service principal configured for the peer (option service)")
	}
	_, err := m.creds.get(m.service)
	if err != nil {
		reason := "kdc_error"
		if errors.Is(err, errKDCUnreachable) {
			reason = "kdc_unreachable"
		}
		stats.auth("initiator", reason)
	}
	return err
}

// NewGSSContext starts a GSS-API context for the IKEv1 engine: an
// initiator's towards the configured service with the ticket PrepareGSS
// put in the cache (it never contacts the KDC: the engine calls it with a
// lock held), or an acceptor's, whose Step reads only the local keytab.
// The result is a *GSSContext.
func (m *Method) NewGSSContext(initiator bool, peer netip.AddrPort) (any, error) {
	if !initiator {
		return m.NewGSSAcceptor(peer), nil
	}
	// Never a KDC round trip here: the engine holds a lock. PrepareGSS
	// filled the cache moments ago.
	t := m.creds.cached(m.service)
	if t == nil {
		return nil, fmt.Errorf("kerberos: no valid ticket for %s in the cache (it is fetched before Main Mode starts)", m.service)
	}
	return &GSSContext{m: m, initiator: true, peerAddr: peer, tkt: t, peer: m.service, oid: oidKRB5}, nil
}

// GSSID is the name this method puts in its GSS_ID attribute: its client
// principal as initiator, its (first) service principal as responder,
// "name@REALM" as racoon's gss_id is written.
func (m *Method) GSSID(initiator bool) string {
	if initiator || len(m.localServices) == 0 {
		return m.principal.String()
	}
	return m.localServices[0].String()
}

// PeerName is the authenticated peer principal, "name@REALM".
func (c *GSSContext) PeerName() string { return c.peer.String() }
