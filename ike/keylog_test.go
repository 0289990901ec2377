package ike

import (
	"bytes"
	"encoding/hex"
	"strings"
	"sync"
	"testing"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// syncWriter is a key log sink that tests read while the engine writes.
type syncWriter struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *syncWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncWriter) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestKeyLog: the key log's ikev2_decryption_table record names the SA's
// SPIs and holds keys that really open the IKE_AUTH request seen on the
// wire; the esp_sa records name both Child SA SPIs.
func TestKeyLog(t *testing.T) {
	for _, prop := range []string{"aes256gcm16-prfsha256-x25519", "aes128-sha256-ecp256"} {
		t.Run(prop, func(t *testing.T) {
			var log syncWriter
			var authReq []byte
			var mu sync.Mutex
			p := newPair(t, func(ca, cb *Connection, cfgA, _ *Config) {
				ca.IKEProposals, cb.IKEProposals = mustIKE(t, prop), mustIKE(t, prop)
				cfgA.KeyLog = &log
			})
			p.ba.Filter = func(b []byte) bool {
				if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.IKE_AUTH {
					mu.Lock()
					authReq = append([]byte(nil), b...)
					mu.Unlock()
				}
				return true
			}
			infos, err := p.a.InitiateNew(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			lines := strings.Split(strings.TrimSpace(log.String()), "\n")
			if len(lines) != 3 {
				t.Fatalf("key log has %d lines:\n%s", len(lines), log.String())
			}
			rec, ok := strings.CutPrefix(lines[0], "uat:ikev2_decryption_table:")
			if !ok {
				t.Fatalf("first line %q", lines[0])
			}
			f := strings.Split(rec, ",")
			if len(f) != 8 || f[0] != infos[0].SPIi || f[1] != infos[0].SPIr {
				t.Fatalf("record %q does not name SPIs %s/%s", rec, infos[0].SPIi, infos[0].SPIr)
			}
			// Open the captured IKE_AUTH request with SK_ei/SK_ai from the log.
			sa := p.a.allSAs()[0]
			ske, _ := hex.DecodeString(f[2])
			ska, _ := hex.DecodeString(f[5])
			var integ *transform.Integ
			if !sa.suite.encr.AEAD {
				integ = sa.suite.integ
			}
			prot, err := transform.NewProtector(sa.suite.encr, ske, integ, ska)
			if err != nil {
				t.Fatal(err)
			}
			mu.Lock()
			msg, err := wire.Parse(authReq)
			mu.Unlock()
			if err != nil {
				t.Fatal(err)
			}
			sk := msg.Payloads[len(msg.Payloads)-1].(*wire.Encrypted)
			if _, err := prot.Open(authReq[:len(authReq)-len(sk.Body)], sk.Body); err != nil {
				t.Fatalf("logged keys do not open IKE_AUTH: %v", err)
			}
			c := infos[0].Children[0]
			for i, spi := range []string{c.SPIIn, c.SPIOut} {
				if !strings.HasPrefix(lines[1+i], "uat:esp_sa:") || !strings.Contains(lines[1+i], `"0x`+spi+`"`) {
					t.Fatalf("esp_sa line %d %q lacks SPI %s", i, lines[1+i], spi)
				}
			}
		})
	}
}
