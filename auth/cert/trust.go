package cert

import (
	"bytes"
	"crypto/sha1" // #nosec G505 -- CERTREQ hashes, defined as SHA-1 by RFC 7296 section 3.7
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/ike/wire"
)

// CertEncodingX509Sig is the Cert Encoding of an X.509 certificate that
// holds a signature key, in CERT and CERTREQ payloads (RFC 7296 §3.6).
const CertEncodingX509Sig = 4

// oidIPsecIKE is the id-kp-ipsecIKE extended key usage (RFC 4945 §5.1.3.12).
var oidIPsecIKE = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 3, 17}

// oidEmailAddress is the PKCS#9 emailAddress attribute of a subject DN.
var oidEmailAddress = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}

// loadCertificates reads every certificate of a PEM file (or one DER
// certificate).
func loadCertificates(path string) ([]*x509.Certificate, error) {
	b, err := os.ReadFile(path) // #nosec G304 -- a configured certificate, CA or CRL file
	if err != nil {
		return nil, err
	}
	var out []*x509.Certificate
	rest := b
	for {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		out = append(out, c)
	}
	if len(out) == 0 {
		c, err := x509.ParseCertificate(b)
		if err != nil {
			return nil, fmt.Errorf("%s: no PEM CERTIFICATE block and not a DER certificate", path)
		}
		out = append(out, c)
	}
	return out, nil
}

// CertReqHash is the SHA-1 hash of a CA's SubjectPublicKeyInfo, as a
// CERTREQ payload of encoding 4 lists them (RFC 7296 §3.7).
func CertReqHash(ca *x509.Certificate) [sha1.Size]byte {
	return sha1.Sum(ca.RawSubjectPublicKeyInfo) // #nosec G401 -- CERTREQ names CAs by the SHA-1 hash of their SubjectPublicKeyInfo (RFC 7296 section 3.7); an identifier, not a security function
}

// CertReq returns the CERTREQ payload that names cas.
func CertReq(cas []*x509.Certificate) *wire.CertReq {
	data := make([]byte, 0, sha1.Size*len(cas))
	for _, c := range cas {
		h := CertReqHash(c)
		data = append(data, h[:]...)
	}
	return &wire.CertReq{Encoding: CertEncodingX509Sig, Data: data}
}

// requestedCAs collects the CA hashes of every encoding-4 CERTREQ in ps.
func requestedCAs(ps ...[]wire.Payload) map[[sha1.Size]byte]bool {
	var set map[[sha1.Size]byte]bool
	for _, list := range ps {
		for _, p := range list {
			r, ok := p.(*wire.CertReq)
			if !ok || r.Encoding != CertEncodingX509Sig {
				continue
			}
			for i := 0; i+sha1.Size <= len(r.Data); i += sha1.Size {
				if set == nil {
					set = map[[sha1.Size]byte]bool{}
				}
				set[[sha1.Size]byte(r.Data[i:i+sha1.Size])] = true
			}
		}
	}
	return set
}

// issuedBy reports whether parent issued child (names and signature).
func issuedBy(child, parent *x509.Certificate) bool {
	return bytes.Equal(child.RawIssuer, parent.RawSubject) && child.CheckSignatureFrom(parent) == nil
}

// buildLocalChain orders the configured intermediates above leaf, from
// the leaf's issuer upward, as far as they go.
func buildLocalChain(leaf *x509.Certificate, inter []*x509.Certificate) []*x509.Certificate {
	chain := []*x509.Certificate{leaf}
	used := make([]bool, len(inter))
	for cur := leaf; ; {
		next := -1
		for i, c := range inter {
			if !used[i] && !bytes.Equal(cur.RawSubject, cur.RawIssuer) && issuedBy(cur, c) {
				next = i
				break
			}
		}
		if next < 0 {
			return chain
		}
		used[next] = true
		cur = inter[next]
		chain = append(chain, cur)
	}
}

// checkUsage applies the key usage rules strongSwan and Windows apply to
// an IKE end-entity certificate: with an extendedKeyUsage extension, one
// of serverAuth, clientAuth, ipsecIKE or anyExtendedKeyUsage; with a
// keyUsage extension, digitalSignature.
func checkUsage(c *x509.Certificate) error {
	if c.KeyUsage != 0 && c.KeyUsage&x509.KeyUsageDigitalSignature == 0 {
		return fmt.Errorf("certificate %s has a keyUsage without digitalSignature", subjectString(c))
	}
	if len(c.ExtKeyUsage) == 0 && len(c.UnknownExtKeyUsage) == 0 {
		return nil
	}
	for _, u := range c.ExtKeyUsage {
		switch u {
		case x509.ExtKeyUsageAny, x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth:
			return nil
		}
	}
	for _, oid := range c.UnknownExtKeyUsage {
		if oid.Equal(oidIPsecIKE) {
			return nil
		}
	}
	return fmt.Errorf("certificate %s has an extendedKeyUsage without serverAuth, clientAuth, ipsecIKE or anyExtendedKeyUsage", subjectString(c))
}

func subjectString(c *x509.Certificate) string {
	s := c.Subject.String()
	if s == "" && len(c.DNSNames) > 0 {
		s = "DNS:" + c.DNSNames[0]
	}
	if s == "" {
		s = "serial " + c.SerialNumber.String()
	}
	return fmt.Sprintf("%q", s)
}

// describeVerifyError turns an x509 verification error into a reason an
// operator can act on.
func describeVerifyError(leaf *x509.Certificate, err error, now time.Time) string {
	var inv x509.CertificateInvalidError
	if errors.As(err, &inv) && inv.Reason == x509.Expired && inv.Cert != nil {
		c := inv.Cert
		if now.After(c.NotAfter) {
			return fmt.Sprintf("certificate %s expired at %s", subjectString(c), c.NotAfter.UTC().Format(time.RFC3339))
		}
		return fmt.Sprintf("certificate %s is not valid before %s", subjectString(c), c.NotBefore.UTC().Format(time.RFC3339))
	}
	var ua x509.UnknownAuthorityError
	if errors.As(err, &ua) {
		return fmt.Sprintf("certificate %s (issuer %q) is not issued by a trusted CA", subjectString(leaf), leaf.Issuer.String())
	}
	return fmt.Sprintf("certificate %s does not verify: %v", subjectString(leaf), err)
}

// crlFile is one configured CRL, reloaded when the file changes.
type crlFile struct {
	path string

	mu       sync.Mutex
	modTime  time.Time
	size     int64
	loaded   bool
	list     *x509.RevocationList
	revoked  map[string]x509.RevocationListEntry // by serial number, decimal
	verified map[[sha256.Size]byte]bool          // issuer certificates whose signature on list checked
}

// load reads the CRL (PEM "X509 CRL" or DER).
func (f *crlFile) load() error {
	fi, err := os.Stat(f.path)
	if err != nil {
		return err
	}
	b, err := os.ReadFile(f.path)
	if err != nil {
		return err
	}
	der := b
	if block, _ := pem.Decode(b); block != nil {
		if block.Type != "X509 CRL" {
			return fmt.Errorf("%s: PEM block %q, expected X509 CRL", f.path, block.Type)
		}
		der = block.Bytes
	}
	list, err := x509.ParseRevocationList(der)
	if err != nil {
		return fmt.Errorf("%s: %w", f.path, err)
	}
	revoked := make(map[string]x509.RevocationListEntry, len(list.RevokedCertificateEntries))
	for _, e := range list.RevokedCertificateEntries {
		revoked[e.SerialNumber.String()] = e
	}
	f.list, f.revoked, f.verified = list, revoked, map[[sha256.Size]byte]bool{}
	f.modTime, f.size, f.loaded = fi.ModTime(), fi.Size(), true
	return nil
}

// refresh reloads the CRL when its file changed since it was read. A file
// that has become unreadable or invalid keeps the last good list, with a
// warning. Caller holds mu.
func (f *crlFile) refresh() {
	fi, err := os.Stat(f.path)
	if err == nil && f.loaded && fi.ModTime().Equal(f.modTime) && fi.Size() == f.size {
		return
	}
	if err == nil {
		err = f.load()
	}
	if err != nil {
		slog.Warn("cert: CRL not reloaded, keeping the previous one", "file", f.path, "err", err)
		if fi != nil {
			// Do not retry a broken file on every handshake; wait for
			// the next change.
			f.modTime, f.size = fi.ModTime(), fi.Size()
		}
	}
}

// revocation reports whether c, issued by issuer, is revoked by this CRL.
func (f *crlFile) revocation(c, issuer *x509.Certificate) (x509.RevocationListEntry, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.refresh()
	if f.list == nil || !bytes.Equal(f.list.RawIssuer, c.RawIssuer) {
		return x509.RevocationListEntry{}, false
	}
	key := sha256.Sum256(issuer.Raw)
	ok, seen := f.verified[key]
	if !seen {
		ok = f.list.CheckSignatureFrom(issuer) == nil
		f.verified[key] = ok
		if !ok {
			slog.Warn("cert: CRL signature does not verify with its issuer's key; ignoring it", "file", f.path, "issuer", issuer.Subject.String())
		}
	}
	if !ok {
		return x509.RevocationListEntry{}, false
	}
	e, revoked := f.revoked[c.SerialNumber.String()]
	return e, revoked
}

// revocationReasons are the CRLReason names of RFC 5280 §5.3.1.
var revocationReasons = map[int]string{
	0: "unspecified", 1: "keyCompromise", 2: "cACompromise", 3: "affiliationChanged",
	4: "superseded", 5: "cessationOfOperation", 6: "certificateHold", 8: "removeFromCRL",
	9: "privilegeWithdrawn", 10: "aACompromise",
}

// checkRevoked returns the reason the first revoked certificate of chain
// (below its root) is refused, or "".
func checkRevoked(chain []*x509.Certificate, crls []*crlFile) string {
	for i := 0; i+1 < len(chain); i++ {
		for _, f := range crls {
			if e, ok := f.revocation(chain[i], chain[i+1]); ok {
				reason := revocationReasons[e.ReasonCode]
				if reason == "" {
					reason = fmt.Sprintf("reason %d", e.ReasonCode)
				}
				return fmt.Sprintf("certificate %s (serial %s) is revoked since %s (%s) by the CRL of %q (%s)",
					subjectString(chain[i]), hexSerial(chain[i].SerialNumber), e.RevocationTime.UTC().Format(time.RFC3339),
					reason, chain[i+1].Subject.String(), f.path)
			}
		}
	}
	return ""
}

func hexSerial(n *big.Int) string {
	s := n.Text(16)
	if len(s)%2 == 1 {
		s = "0" + s
	}
	var b strings.Builder
	for i := 0; i < len(s); i += 2 {
		if i > 0 {
			b.WriteByte(':')
		}
		b.WriteString(s[i : i+2])
	}
	return b.String()
}
