package cert

import (
	"path/filepath"
	"testing"
)

// WriteTestFiles writes, for the external tests, a certificate for
// a.example (cert.pem), its key (key.pem), the root CA (ca.pem), the
// intermediate (inter.pem) and an empty CRL (inter.crl) into a new
// directory, which it returns.
func WriteTestFiles(t testing.TB) string {
	p := newPKI(t, "ext")
	k := testKey(t, "p256")
	s := writeSide(t, p, p, k, p.issue(t, k, leafOpts{cn: "a.example", dns: []string{"a.example"}}))
	writeFile(t, filepath.Join(s.dir, "inter.crl"), p.crl(t, 1), 0o644)
	return s.dir
}
