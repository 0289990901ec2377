package config

import (
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Settings for running iked as a service: the journal log format, peers
// by DNS name, updown scripts, and what a reload compares.

// LogFormatJournal is the "log.format" for the systemd journal: text
// without the time, each line prefixed with its syslog priority ("<3>").
const LogFormatJournal = "journal"

// DefaultUpdownTimeout is the default of a connection's "updown_timeout".
const DefaultUpdownTimeout = 30 * time.Second

// Updown is a connection's updown script (keys "updown", "updown_timeout").
type Updown struct {
	// Script is the absolute path of the executable; empty means none.
	Script string
	// Timeout bounds one run; the script is killed after it.
	Timeout time.Duration
}

// maxHostName is the longest DNS name (RFC 1035 §2.3.4).
const maxHostName = 253

// parseRemoteHost parses "host" or "host:port" where host is a DNS name;
// it returns what is wrong, or "".
func parseRemoteHost(s string) (string, uint16, string) {
	host, port := s, uint16(DefaultIKEPort)
	if h, p, err := net.SplitHostPort(s); err == nil {
		pn, err := strconv.ParseUint(p, 10, 16)
		if err != nil || pn == 0 {
			return "", 0, "invalid port (expected 1 to 65535)"
		}
		host, port = h, uint16(pn)
	}
	if !validHostName(host) {
		return "", 0, "expected an IP address, IP:port, [IPv6]:port, a DNS name or name:port"
	}
	return strings.ToLower(strings.TrimSuffix(host, ".")), port, ""
}

// validHostName reports whether s is a DNS host name: dot-separated
// labels of letters, digits and inner hyphens, not all digits.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > maxHostName {
		return false
	}
	digitsOnly := true
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, r := range label {
			switch {
			case r >= '0' && r <= '9':
			case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r == '-', r == '_':
				digitsOnly = false
			default:
				return false
			}
		}
	}
	return !digitsOnly
}

// updown decodes a connection's "updown" key: an absolute path, or one
// relative to the configuration file's directory.
func (w *walker) updown(n *yaml.Node, baseDir string) (string, bool) {
	s, ok := w.str(n, "updown")
	if !ok {
		return "", false
	}
	if s == "" {
		w.errorf(n, "updown: empty path (expected the path of an executable script)")
		return "", false
	}
	if !filepath.IsAbs(s) {
		s = filepath.Join(baseDir, s)
	}
	fi, err := os.Stat(s)
	switch {
	case err != nil:
		w.errorf(n, "updown: %v", err)
		return "", false
	case !fi.Mode().IsRegular():
		w.errorf(n, "updown: %s is not a regular file", s)
		return "", false
	case fi.Mode().Perm()&0o111 == 0:
		w.errorf(n, "updown: %s is not executable (chmod +x it)", s)
		return "", false
	}
	return s, true
}

// liveKeys are the connection keys whose change leaves the connection's
// SAs as they are: they act on what happens next, not on what was
// negotiated.
var liveKeys = []string{"start_action", "updown", "updown_timeout"}

// connFingerprint hashes what a connection's mapping says except its
// liveKeys.
func connFingerprint(n *yaml.Node) [sha256.Size]byte {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode {
		return fingerprint(n)
	}
	kept := *n
	kept.Content = nil
	for i := 0; i+1 < len(n.Content); i += 2 {
		if k := deref(n.Content[i]); k.Kind == yaml.ScalarNode && contains(liveKeys, k.Value) {
			continue
		}
		kept.Content = append(kept.Content, n.Content[i], n.Content[i+1])
	}
	return fingerprint(&kept)
}

// fingerprint hashes what a YAML node says, leaving out comments, styles
// and positions, so that a reload can tell a connection that changed from
// one that only moved or gained a comment.
func fingerprint(n *yaml.Node) [sha256.Size]byte {
	h := sha256.New()
	var walk func(n *yaml.Node)
	walk = func(n *yaml.Node) {
		n = deref(n)
		var hdr [9]byte
		hdr[0] = byte(n.Kind)
		binary.BigEndian.PutUint64(hdr[1:], uint64(len(n.Content)))
		h.Write(hdr[:])
		fmt.Fprintf(h, "%d:%s%d:%s", len(n.Tag), n.Tag, len(n.Value), n.Value)
		for _, c := range n.Content {
			walk(c)
		}
	}
	if n != nil {
		walk(n)
	}
	var out [sha256.Size]byte
	h.Sum(out[:0])
	return out
}
