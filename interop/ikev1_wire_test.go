package interop

import (
	"strings"
	"testing"
)

// v1Packet is one IKEv1 packet as tshark decodes it with iked's key log.
type v1Packet struct {
	frame, src, exchange string
	encrypted, decrypted bool
	payloads             string
	problems             string
}

// v1Packets decodes the capture's ISAKMP packets with iked's key log.
func v1Packets(t *testing.T, c *capture, d *iked) []v1Packet {
	t.Helper()
	out, err := c.tshark(d.KeyLogPrefs(), "-Y", "isakmp.version == 0x10", "-T", "fields", "-E", "separator=/t", "-E", "aggregator=,",
		"-e", "frame.number", "-e", "ip.src", "-e", "isakmp.exchangetype", "-e", "isakmp.flag_e", "-e", "udp.payload",
		"-e", "isakmp.typepayload", "-e", "_ws.malformed", "-e", "_ws.expert.severity")
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var pkts []v1Packet
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		if line == "" {
			continue
		}
		f := strings.Split(line, "\t")
		for len(f) < 8 {
			f = append(f, "")
		}
		// A retransmission repeats its message octet for octet: tshark,
		// which follows the IV chain from message to message, cannot
		// decrypt it (the chain already moved on) and calls it malformed.
		// Only first transmissions are judged.
		if seen[f[4]] {
			continue
		}
		seen[f[4]] = true
		f = append(f[:4], f[5:]...)
		// tshark dissects the payloads of an encrypted message only when it
		// decrypted it.
		p := v1Packet{frame: f[0], src: f[1], exchange: f[2], encrypted: f[3] == "1" || f[3] == "True",
			decrypted: f[4] != "", payloads: f[4]}
		if f[5] != "" {
			p.problems = "malformed"
		}
		// Expert severities: 8388608 is error, 6291456 warning.
		for _, s := range strings.Split(f[6], ",") {
			if s == "8388608" {
				p.problems += " expert error"
			}
		}
		pkts = append(pkts, p)
	}
	return pkts
}

// checkV1WireDecrypts asserts that every encrypted IKEv1 message iked sent
// (from ikedAddr) decrypts in tshark with iked's key log and that no
// IKEv1 packet of the capture is malformed. It returns how many of iked's
// encrypted messages were checked.
func checkV1WireDecrypts(t *testing.T, c *capture, d *iked, ikedAddr string) int {
	t.Helper()
	pkts := v1Packets(t, c, d)
	n := 0
	for _, p := range pkts {
		if p.problems != "" {
			t.Errorf("frame %s from %s (exchange %s): %s; payloads %s", p.frame, p.src, p.exchange, p.problems, p.payloads)
		}
		if p.src != ikedAddr || !p.encrypted {
			continue
		}
		n++
		if !p.decrypted {
			t.Errorf("frame %s: iked's encrypted %s message does not decrypt with its key log", p.frame, p.exchange)
		}
	}
	if n == 0 {
		t.Errorf("no encrypted IKEv1 message from iked in the capture (%d ISAKMP packets)", len(pkts))
	}
	if t.Failed() {
		t.Logf("key log:\n%s\ncapture:\n%s", d.KeyLog(), c.Details(d.KeyLogPrefs(), "isakmp"))
	}
	return n
}
