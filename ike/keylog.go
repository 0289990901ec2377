package ike

import (
	"fmt"
	"io"
	"sync"

	"github.com/iked/iked/transform"
)

// keyLogger writes the opt-in key log: one line per IKE SA and per Child
// SA direction, each line a complete tshark/Wireshark 4.0 preference
// (`-o LINE`): a record of the ikev2_decryption_table or esp_sa UAT. It is
// the only place keys are ever formatted.
type keyLogger struct {
	mu sync.Mutex
	w  io.Writer
}

// ikeEncrNames are Wireshark's names in ikev2_decryption_table.
func wiresharkIKEEncr(e *transform.Encr, bits uint16) string {
	switch e.ID {
	case transform.EncrAESCBC:
		return fmt.Sprintf("AES-CBC-%d [RFC3602]", bits)
	case transform.EncrAESGCM16:
		return fmt.Sprintf("AES-GCM-%d with 16 octet ICV [RFC5282]", bits)
	case transform.EncrChaCha20Poly1305:
		return "CHACHA20-POLY1305 [RFC7634]"
	}
	return e.Name
}

func wiresharkIKEInteg(i *transform.Integ) string {
	if i == nil {
		return "NONE [RFC4306]"
	}
	if i.ID == transform.IntegHMACSHA1_96 {
		return "HMAC_SHA1_96 [RFC2404]"
	}
	return i.Name + " [RFC4868]"
}

func wiresharkESPEncr(e *transform.Encr) string {
	switch e.ID {
	case transform.EncrAESCBC:
		return "AES-CBC [RFC3602]"
	case transform.EncrAESGCM16:
		return "AES-GCM with 16 octet ICV [RFC4106]"
	case transform.EncrChaCha20Poly1305:
		return "ChaCha20 with Poly1305 [RFC7634]"
	}
	return e.Name
}

func wiresharkESPInteg(i *transform.Integ) string {
	if i == nil {
		return "NULL"
	}
	switch i.ID {
	case transform.IntegHMACSHA1_96:
		return "HMAC-SHA-1-96 [RFC2404]"
	case transform.IntegHMACSHA2_256_128:
		return "HMAC-SHA-256-128 [RFC4868]"
	case transform.IntegHMACSHA2_384_192:
		return "HMAC-SHA-384-192 [RFC4868]"
	case transform.IntegHMACSHA2_512_256:
		return "HMAC-SHA-512-256 [RFC4868]"
	}
	return i.Name
}

func (k *keyLogger) write(line string) {
	if k == nil || k.w == nil {
		return
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	_, _ = io.WriteString(k.w, line+"\n")
}

// ike logs an IKE SA's SK_e and SK_a keys. Caller holds sa.mu.
func (k *keyLogger) ike(sa *ikeSA) {
	if k == nil || k.w == nil {
		return
	}
	s, keys := sa.suite, sa.keys
	k.write(fmt.Sprintf("uat:ikev2_decryption_table:%016x,%016x,%x,%x,%q,%x,%x,%q",
		sa.spii, sa.spir, keys.SkEi, keys.SkEr, wiresharkIKEEncr(s.encr, s.keyBits),
		keys.SkAi, keys.SkAr, wiresharkIKEInteg(s.integ)))
}

// child logs both directions of a Child SA. Caller holds sa.mu.
func (k *keyLogger) child(sa *ikeSA, c *childSA) {
	if k == nil || k.w == nil {
		return
	}
	for _, x := range []struct {
		spi      uint32
		src, dst string
		ek, ik   []byte
	}{
		{c.inbound.SPI, c.inbound.Src.String(), c.inbound.Dst.String(), c.inbound.EncrKey, c.inbound.IntegKey},
		{c.outbound.SPI, c.outbound.Src.String(), c.outbound.Dst.String(), c.outbound.EncrKey, c.outbound.IntegKey},
	} {
		family := "IPv4"
		if sa.remote.Addr().Is6() {
			family = "IPv6"
		}
		ik := ""
		if len(x.ik) > 0 {
			ik = fmt.Sprintf("0x%x", x.ik)
		}
		k.write(fmt.Sprintf("uat:esp_sa:%q,%q,%q,\"0x%08x\",%q,\"0x%x\",%q,%q",
			family, x.src, x.dst, x.spi, wiresharkESPEncr(c.suite.encr), x.ek, wiresharkESPInteg(c.suite.integ), ik))
	}
}
