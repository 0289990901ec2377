package cert

import (
	"path/filepath"
	"testing"

	"github.com/iked/iked/internal/testpki"
)

// WriteTestFiles writes, for the external tests, a certificate for
// a.example (cert.pem), its key (key.pem), the root CA (ca.pem), the
// intermediate (inter.pem) and an empty CRL (inter.crl) into a new
// directory, which it returns.
func WriteTestFiles(t testing.TB) string {
	p := testpki.New(t, "ext", "p256", 0)
	k := testpki.Key(t, "p256", "")
	s := writeSide(t, p, p, k, p.Issue(t, k, testpki.Leaf{CN: "a.example", DNS: []string{"a.example"}}))
	writeFile(t, filepath.Join(s.dir, "inter.crl"), p.CRL(t), 0o644)
	return s.dir
}
