package interop

import (
	"testing"
	"time"
)

// pqPolicy is a custom Windows-style policy whose negotiate rule requires a
// post-quantum key exchange (require_pq) with PFS; ICMP is permitted.
const pqPolicy = `policies:
  pq-only:
    description: every TCP and UDP flow secured with a post-quantum key exchange
    default_response: {active: false}
    rules:
      - {filter_list: all-icmp, action: permit}
      - name: pq
        filter_list: all-ip
        action: negotiate
        security_methods: [aes256gcm16]
        pfs: true
        require_pq: true
`

// TestPQPolicy: a policy rule with require_pq (docs/policies.md) secures
// traffic between two iked with the hybrid proposal it offers, and refuses
// a peer whose policy has no post-quantum exchange rather than securing the
// traffic classically: no clear segment leaves, and the refusal is logged.
func TestPQPolicy(t *testing.T) {
	requireRoot(t)
	t.Run("BothRequirePQ_SecuredWithMLKEM", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: "pq-only", Extra: pqPolicy}, policyHost{Policy: "pq-only", Extra: pqPolicy})
		m.startCapture()
		m.wantTCP(m.topo.I, m.addrB, matrixEchoPort, 10*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 || w.esp == 0 {
			t.Errorf("want only ESP for TCP, got %+v%s", w, m.logs())
		}
		for _, d := range []*iked{m.a, m.b} {
			sas, err := d.SAs()
			if err != nil || len(sas) == 0 {
				t.Fatalf("%s: %v %v", d.ns.name, sas, err)
			}
			sa := sas[0]
			if !sa.PostQuantum || sa.Proposal != "aes256gcm16-prfsha384-x25519-ke1_mlkem768" {
				t.Errorf("%s: IKE SA %s post_quantum %v", d.ns.name, sa.Proposal, sa.PostQuantum)
			}
		}
		if n := intermediateExchanges(t, m.capture); n != 1 {
			t.Errorf("%d IKE_INTERMEDIATE exchanges on the wire, want 1", n)
		}
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "secured")
	})
	t.Run("RequirePQToAClassicalPolicy_RefusedNotClear", func(t *testing.T) {
		m := newMatrix(t, policyHost{Policy: "pq-only", Extra: pqPolicy}, policyHost{Policy: require})
		m.startCapture()
		m.wantNoTCP(m.topo.I, m.addrB, matrixEchoPort, 6*time.Second)
		w := m.wire()
		if w.clearTCP[matrixEchoPort] != 0 || w.esp != 0 {
			t.Errorf("want neither clear TCP from A nor ESP, got %+v%s", w, m.logs())
		}
		wantLog(t, "A", m.a.Log(), "without a post-quantum key exchange, and require_pq is set")
		wantLog(t, "A", m.a.Log(), "the peer has no post-quantum key exchange and the rule requires one")
		m.wantFlows(m.a, "pq_required", 1)
		m.wantVerdict(m.a, m.addrB, matrixEchoPort, "not-secured")
	})
}
