package cert

import (
	"bytes"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/iked/iked/ike/wire"
)

// MatchIdentity reports whether the ID payload id names the holder of c,
// returning why not:
//
//   - ID_FQDN: a dNSName subjectAltName, compared case-insensitively
//     (no wildcards: an IKE peer names itself, it is not a host pattern);
//   - ID_RFC822_ADDR: an rfc822Name subjectAltName or the emailAddress
//     attribute of the subject, the domain case-insensitively;
//   - ID_IPV4_ADDR, ID_IPV6_ADDR: an iPAddress subjectAltName;
//   - ID_DER_ASN1_DN: the subject, byte for byte or attribute by attribute
//     with string values compared case-insensitively.
//
// Other ID types (ID_KEY_ID, ID_DER_ASN1_GN) cannot be bound to a
// certificate and do not match.
func MatchIdentity(id *wire.ID, c *x509.Certificate) error {
	switch id.IDType {
	case wire.IDFQDN:
		name := strings.TrimSuffix(string(id.Data), ".")
		for _, d := range c.DNSNames {
			if strings.EqualFold(strings.TrimSuffix(d, "."), name) {
				return nil
			}
		}
	case wire.IDRFC822Addr:
		addr := string(id.Data)
		for _, e := range c.EmailAddresses {
			if emailEqual(e, addr) {
				return nil
			}
		}
		for _, n := range c.Subject.Names {
			if s, ok := n.Value.(string); ok && n.Type.Equal(oidEmailAddress) && emailEqual(s, addr) {
				return nil
			}
		}
	case wire.IDIPv4Addr, wire.IDIPv6Addr:
		want := 4
		if id.IDType == wire.IDIPv6Addr {
			want = 16
		}
		if len(id.Data) != want {
			return fmt.Errorf("IP address identity of %d octets", len(id.Data))
		}
		for _, ip := range c.IPAddresses {
			if ip.Equal(net.IP(id.Data)) {
				return nil
			}
		}
	case wire.IDDERASN1DN:
		if len(c.RawSubject) > 0 && bytes.Equal(id.Data, c.RawSubject) {
			return nil
		}
		if dnEqual(id.Data, c.RawSubject) {
			return nil
		}
	default:
		return fmt.Errorf("identity %s cannot be bound to a certificate (use an FQDN, email, IP address or DN identity)", IdentityString(id))
	}
	return fmt.Errorf("identity %s is not in certificate %s (subjectAltNames: %s)", IdentityString(id), subjectString(c), sanList(c))
}

func emailEqual(a, b string) bool {
	la, da, ok1 := strings.Cut(a, "@")
	lb, db, ok2 := strings.Cut(b, "@")
	return ok1 && ok2 && la == lb && strings.EqualFold(da, db)
}

// dnEqual compares two DER distinguished names attribute by attribute,
// with string values compared case-insensitively and trimmed, the way
// strongSwan matches DNs written with other string types or case.
func dnEqual(a, b []byte) bool {
	var ra, rb pkix.RDNSequence
	if rest, err := asn1.Unmarshal(a, &ra); err != nil || len(rest) != 0 {
		return false
	}
	if rest, err := asn1.Unmarshal(b, &rb); err != nil || len(rest) != 0 {
		return false
	}
	if len(ra) != len(rb) || len(ra) == 0 {
		return false
	}
	for i := range ra {
		if len(ra[i]) != len(rb[i]) {
			return false
		}
		for j := range ra[i] {
			x, y := ra[i][j], rb[i][j]
			if !x.Type.Equal(y.Type) {
				return false
			}
			xs, ok1 := x.Value.(string)
			ys, ok2 := y.Value.(string)
			if !ok1 || !ok2 || !strings.EqualFold(strings.TrimSpace(xs), strings.TrimSpace(ys)) {
				return false
			}
		}
	}
	return true
}

func sanList(c *x509.Certificate) string {
	var s []string
	for _, d := range c.DNSNames {
		s = append(s, "DNS:"+d)
	}
	for _, e := range c.EmailAddresses {
		s = append(s, "email:"+e)
	}
	for _, ip := range c.IPAddresses {
		s = append(s, "IP:"+ip.String())
	}
	if len(s) == 0 {
		return "none"
	}
	return strings.Join(s, ", ")
}

// IdentityString prints an ID payload for logs: "fqdn:host.example",
// "email:user@example", "ip:192.0.2.1", "dn:CN=host,O=Example".
func IdentityString(id *wire.ID) string {
	switch id.IDType {
	case wire.IDFQDN:
		return "fqdn:" + string(id.Data)
	case wire.IDRFC822Addr:
		return "email:" + string(id.Data)
	case wire.IDIPv4Addr, wire.IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(id.Data); ok {
			return "ip:" + a.String()
		}
	case wire.IDDERASN1DN:
		var rdn pkix.RDNSequence
		if rest, err := asn1.Unmarshal(id.Data, &rdn); err == nil && len(rest) == 0 {
			var n pkix.Name
			n.FillFromRDNSequence(&rdn)
			return "dn:" + n.String()
		}
	case wire.IDKeyID:
		return fmt.Sprintf("keyid:%x", id.Data)
	}
	return fmt.Sprintf("type%d:%x", id.IDType, id.Data)
}

// CertIdentity is the identity a certificate proves by default, which iked
// sends when a cert connection has no local_id: the subject DN, or when
// the subject is empty the first subjectAltName (dNSName, then
// rfc822Name, then iPAddress), as strongSwan does.
func CertIdentity(c *x509.Certificate) (*wire.ID, error) {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(c.RawSubject, &rdn); err == nil && len(rest) == 0 && len(rdn) > 0 {
		return &wire.ID{IDType: wire.IDDERASN1DN, Data: append([]byte(nil), c.RawSubject...)}, nil
	}
	switch {
	case len(c.DNSNames) > 0:
		return &wire.ID{IDType: wire.IDFQDN, Data: []byte(c.DNSNames[0])}, nil
	case len(c.EmailAddresses) > 0:
		return &wire.ID{IDType: wire.IDRFC822Addr, Data: []byte(c.EmailAddresses[0])}, nil
	case len(c.IPAddresses) > 0:
		ip := c.IPAddresses[0]
		if v4 := ip.To4(); v4 != nil {
			return &wire.ID{IDType: wire.IDIPv4Addr, Data: v4}, nil
		}
		return &wire.ID{IDType: wire.IDIPv6Addr, Data: ip.To16()}, nil
	}
	return nil, fmt.Errorf("certificate %s has neither a subject nor a subjectAltName to use as identity", subjectString(c))
}
