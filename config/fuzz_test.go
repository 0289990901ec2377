package config

import (
	"errors"
	"os"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// FuzzParse: whatever the file holds, Parse returns a configuration or
// positioned errors, never both and never a panic; and no error or warning
// quotes a pre-shared key. A key is any value under a "secret" key whose
// text appears nowhere else in the file (so an error quoting it can only
// have taken it from there).
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		fullConfig, customPolicy, policyAuth + "policy: {assign: server-request-security}\n",
		"connections: {}\n", "", "---\n", "connections:\n",
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"Sup3r-Secret-Pre-Shared-Key\"}\n    mode: bogus\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: 12345678901234}\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"short\"}\n"),
		conn("    remote: 192.0.2.1\n    auth:\n      method: psk\n      secrte: \"Sup3r-Secret-Pre-Shared-Key\"\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"Sup3r-Secret\", secret: \"Sup3r-Secret\"}\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: &k \"Sup3r-Secret-Key-X\"}\n    local_id: *k\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: cert, cert: c.pem, key: k.pem, ca: [ca.pem]}\n"),
		conn("    remote: 192.0.2.1\n    auth: {method: kerberos, keytab: k.keytab, realm: R, kdcs: [192.0.2.1], allowed: [\"@R\"]}\n"),
		"control_socket_group: root\ncontrol_socket_mode: 0660\nconnections: {}\n",
		"ike: {half_open_per_peer: 3, auth_failure_limit: 2, auth_failure_window: 30s}\nconnections: {}\n",
		"key_log: keys.log\nlisten: [\"127.0.0.1:500\"]\nconnections: {}\n",
		"listen: [\"127.0.0.1:500\"]\nlog: {level: info\n",
		"a: &a [*a]\n",
	} {
		f.Add([]byte(seed))
	}
	if b, err := os.ReadFile("../docs/example.yaml"); err == nil {
		f.Add(b)
	}
	// Relative paths resolve into an empty directory.
	base := f.TempDir()
	messages := func(data []byte) []string {
		cfg, err := Parse(data, "f.yaml", base)
		if (cfg == nil) == (err == nil) {
			f.Fatalf("Parse returned config %v and error %v", cfg != nil, err)
		}
		if err != nil {
			return []string{err.Error()}
		}
		var out []string
		for _, w := range cfg.Warnings {
			out = append(out, w.String())
		}
		return out
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := Parse(data, "f.yaml", base)
		if (cfg == nil) == (err == nil) {
			t.Fatalf("Parse returned config %v and error %v", cfg != nil, err)
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || e.File != "f.yaml" {
				t.Fatalf("error %v (%T) is not a positioned *Error", err, err)
			}
		}
		text := messages(data)
		for _, s := range secretsIn(data) {
			if !anyContains(text, s) {
				continue
			}
			// The key's text may also be a word of the message ("short").
			// It leaked if it is gone once the key is another string of
			// the same length and kind.
			masked := []byte(strings.Replace(string(data), s, mask(s), 1))
			if !anyContains(messages(masked), s) {
				t.Fatalf("a message quotes the pre-shared key %q: %q", s, text)
			}
		}
	})
}

func anyContains(list []string, s string) bool {
	for _, x := range list {
		if strings.Contains(x, s) {
			return true
		}
	}
	return false
}

// mask returns s with letters and digits replaced, keeping its length
// and what YAML makes of it (a string stays a string).
func mask(s string) string {
	b := []byte(s)
	for i, c := range b {
		switch {
		case c >= '0' && c <= '9':
			b[i] = '7' + (c-'0'+1)%2 // another digit
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z':
			if c == 'x' || c == 'X' {
				b[i] = 'q'
			} else {
				b[i] = 'x'
			}
		}
	}
	return string(b)
}

// secretsIn returns the string values under "secret" keys of data that
// are at least four octets long and appear once in data.
func secretsIn(data []byte) []string {
	var doc yaml.Node
	if yaml.Unmarshal(data, &doc) != nil {
		return nil
	}
	var out []string
	var walk func(n *yaml.Node, depth int)
	walk = func(n *yaml.Node, depth int) {
		if n == nil || depth > 50 {
			return
		}
		if n.Kind == yaml.MappingNode {
			for i := 0; i+1 < len(n.Content); i += 2 {
				k, v := n.Content[i], n.Content[i+1]
				if k.Value == "secret" && v.Kind == yaml.ScalarNode && v.Tag == tagStr && len(v.Value) >= 4 && strings.Count(string(data), v.Value) == 1 {
					out = append(out, v.Value)
				}
			}
		}
		for _, c := range n.Content {
			walk(c, depth+1)
		}
	}
	walk(&doc, 0)
	return out
}

// TestFuzzSeedsHoldSecrets keeps the fuzz target's check meaningful: the
// seeds hold keys it looks for.
func TestFuzzSeedsHoldSecrets(t *testing.T) {
	got := secretsIn([]byte(conn("    remote: 192.0.2.1\n    auth: {method: psk, secret: \"Sup3r-Secret-Pre-Shared-Key\"}\n    mode: bogus\n")))
	if len(got) != 1 || got[0] != "Sup3r-Secret-Pre-Shared-Key" {
		t.Fatalf("secretsIn = %q", got)
	}
	if got := secretsIn([]byte("a: {secret: \"abcd\"}\nb: abcd\n")); len(got) != 0 {
		t.Fatalf("a value that appears twice counted as a secret: %q", got)
	}
}
