package e2e

import (
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// keyHexRE finds the keys in key log lines: hex strings of at least 128
// bits (SPIs are 32 or 64 bits, and shorter).
var keyHexRE = regexp.MustCompile(`(?:0x)?([0-9a-f]{32,})`)

// TestSecretsStayOutOfLogsOutputAndMetrics: with the key log on one side,
// the test learns every IKE and ESP key both daemons derived, then checks
// that neither these keys (in hex or base64) nor the PSK appear in either
// daemon's debug log, in ikectl's output or in the metrics; that the key
// log is 0600; and that the side without key_log writes keys nowhere.
func TestSecretsStayOutOfLogsOutputAndMetrics(t *testing.T) {
	a := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(freePort(t, "127.0.0.1")))
	b := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.6"), uint16(freePort(t, "127.0.0.6")))
	keyLog := filepath.Join(t.TempDir(), "keys.log")
	da := startDaemon(t, "alice", a, "key_log: "+keyLog+"\n"+peerConfig(a, b, "fqdn:alice.example", "fqdn:bob.example", ""))
	db := startDaemon(t, "bob", b, peerConfig(b, a, "fqdn:bob.example", "fqdn:alice.example", ""))
	if _, err := da.ikectl("initiate", "peer"); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, "bob to hold the SA", func() bool { return len(db.sas()) == 1 })
	sa := da.sas()[0]
	if _, err := da.ikectl("rekey", sa.ID, sa.Children[0].SPIIn); err != nil { // more keys: a Child SA rekey
		t.Fatal(err)
	}

	fi, err := os.Stat(keyLog)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Fatalf("key log mode %04o, want 0600", fi.Mode().Perm())
	}
	logged, err := os.ReadFile(keyLog)
	if err != nil {
		t.Fatal(err)
	}
	secrets := map[string]string{"the PSK": pskSecret}
	for _, m := range keyHexRE.FindAllStringSubmatch(string(logged), -1) {
		raw, err := hex.DecodeString(m[1])
		if err != nil || len(raw) < 16 {
			continue
		}
		secrets["key "+m[1]] = m[1]
		secrets["key "+m[1]+" (upper-case hex)"] = strings.ToUpper(m[1])
		secrets["key "+m[1]+" (base64)"] = base64.StdEncoding.EncodeToString(raw)[:20]
	}
	// Two IKE SA keys (SK_ei, SK_er, with AES-GCM no SK_a) and two ESP
	// keys for each of the two Child SAs.
	if n := (len(secrets) - 1) / 3; n < 6 {
		t.Fatalf("the key log holds %d keys, want at least 6:\n%s", n, logged)
	}

	var places []string
	var texts []string
	add := func(place, text string) { places, texts = append(places, place), append(texts, text) }
	for _, d := range []*daemon{da, db} {
		add(d.name+"'s log", d.log.String())
		for _, args := range [][]string{{"sas", "--json"}, {"sas"}, {"status", "--json"}, {"status"}} {
			out, err := d.ikectl(args...)
			if err != nil {
				t.Fatal(err)
			}
			add(fmt.Sprintf("%s's ikectl %s", d.name, strings.Join(args, " ")), out)
		}
		resp, err := http.Get("http://" + d.metrics + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		add(d.name+"'s metrics", string(body))
	}
	for i, text := range texts {
		for what, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds %s", places[i], what)
			}
		}
	}
	// Opt-in: only alice was configured with a key log, and says so.
	if !strings.Contains(da.log.String(), "key log enabled") || strings.Contains(db.log.String(), "key log enabled") {
		t.Error("the key log warning is not where the key log is")
	}
}
