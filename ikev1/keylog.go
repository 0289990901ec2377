package ikev1

import (
	"fmt"
	"io"
	"sync"

	"github.com/iked/iked/transform"
)

// keyLogger writes the opt-in key log: one line per ISAKMP SA and per
// IPsec SA direction, each a complete Wireshark 4.0 preference (`tshark -o
// LINE`): a record of the ikev1_decryption_table UAT (the initiator's
// cookie and the encryption key; Wireshark derives the IVs itself) or of
// the esp_sa UAT. It is the only place keys are formatted. A nil
// keyLogger logs nothing.
type keyLogger struct {
	mu sync.Mutex
	w  io.Writer
}

func (k *keyLogger) write(line string) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, _ = io.WriteString(k.w, line+"\n")
}

// isakmp logs an ISAKMP SA's encryption key. Caller holds sa.mu.
func (k *keyLogger) isakmp(sa *isakmpSA) {
	if k == nil {
		return
	}
	k.write(fmt.Sprintf("uat:ikev1_decryption_table:%016x,%x", sa.icookie, sa.keys.encKey))
}

// ipsec logs both directions of an IPsec SA pair. Caller holds the
// owning SA's mu.
func (k *keyLogger) ipsec(c *ipsecSA) {
	if k == nil {
		return
	}
	for _, s := range []struct {
		spi      uint32
		src, dst string
		ek, ik   []byte
	}{
		{c.inbound.SPI, c.inbound.Src.String(), c.inbound.Dst.String(), c.inbound.EncrKey, c.inbound.IntegKey},
		{c.outbound.SPI, c.outbound.Src.String(), c.outbound.Dst.String(), c.outbound.EncrKey, c.outbound.IntegKey},
	} {
		family := "IPv4"
		if c.inbound.Src.Is6() {
			family = "IPv6"
		}
		k.write(fmt.Sprintf(`uat:esp_sa:"%s","%s","%s","0x%08x","%s","0x%x","%s","0x%x"`,
			family, s.src, s.dst, s.spi, wiresharkESPEncr(c.suite.encr), s.ek, wiresharkESPInteg(c.suite.integ), s.ik))
	}
}

func wiresharkESPEncr(e *transform.Encr) string {
	switch e.ID {
	case transform.EncrAESCBC:
		return "AES-CBC [RFC3602]"
	case transform.EncrDES3:
		return "TripleDES-CBC [RFC2451]"
	}
	return e.Name
}

func wiresharkESPInteg(i *transform.Integ) string {
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
