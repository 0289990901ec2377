package transcript

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/auth/cert"
	"github.com/iked/iked/auth/psk"
)

// Method builds the recorded session's auth method. Certificate material
// is written to files in dir (mode 0600), as iked's configuration would
// name them.
func (c Connection) Method(dir string) (auth.Method, error) {
	switch c.Auth {
	case "", "psk":
		s, err := psk.NewSecret([]byte(c.PSK))
		if err != nil {
			return nil, err
		}
		return psk.New(s), nil
	case "cert":
		write := func(name, data string) (string, error) {
			return name, os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600)
		}
		o := cert.Options{Signature: c.Signature}
		var err error
		if o.Cert, err = write("cert.pem", c.Cert); err != nil {
			return nil, err
		}
		if o.Key, err = write("key.pem", c.Key); err != nil {
			return nil, err
		}
		for _, list := range []struct {
			pems []string
			to   *[]string
			name string
		}{{c.CA, &o.CA, "ca"}, {c.Intermediates, &o.Intermediates, "inter"}, {c.CRLs, &o.CRLs, "crl"}} {
			for i, pem := range list.pems {
				name, err := write(fmt.Sprintf("%s-%d.pem", list.name, i), pem)
				if err != nil {
					return nil, err
				}
				*list.to = append(*list.to, name)
			}
		}
		return cert.FromOptions(o, dir)
	}
	return nil, fmt.Errorf("transcript: unknown auth method %q", c.Auth)
}
