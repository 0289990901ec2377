package cert_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/iked/iked/auth/cert"
	"github.com/iked/iked/config"
)

// TestConfig loads the cert method through the configuration file, with
// paths relative to the file's directory.
func TestConfig(t *testing.T) {
	dir := cert.WriteTestFiles(t)
	write := func(auth string) string {
		path := filepath.Join(dir, "iked.yaml")
		yaml := "connections:\n  a:\n    remote: 192.0.2.2\n    local_id: a.example\n    auth: " + auth + "\n"
		if err := os.WriteFile(path, []byte(yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		return path
	}
	cfg, err := config.Load(write(`{method: cert, cert: cert.pem, key: key.pem, ca: [ca.pem], intermediates: [inter.pem], crls: [inter.crl], signature: ecdsa}`))
	if err != nil {
		t.Fatal(err)
	}
	c := cfg.Connections[0]
	m, ok := c.Auth.(*cert.Method)
	if !ok || c.AuthName != "cert" || m.Certificate().Subject.CommonName != "a.example" {
		t.Fatalf("auth %T %q", c.Auth, c.AuthName)
	}
	for _, bad := range []struct{ auth, want string }{
		{`{method: cert, cert: cert.pem, key: key.pem, ca: ca.pem}`, "iked.yaml:5: auth.ca: expected a list"},
		{`{method: cert, cert: cert.pem, key: key.pem, ca: [ca.pem], crl: [inter.crl]}`, `unknown key "crl"`},
		{`{method: cert, cert: cert.pem, key: key.pem}`, "ca is required"},
		{`{method: cert, cert: cert.pem, key: key.pem, ca: [ca.pem], signature: rsa}`, `signature "rsa" needs an RSA key`},
	} {
		_, err := config.Load(write(bad.auth))
		var ce *config.Error
		if err == nil || !strings.Contains(err.Error(), bad.want) || !errors.As(err, &ce) {
			t.Errorf("%s: %v, want %q", bad.auth, err, bad.want)
		}
	}
}
