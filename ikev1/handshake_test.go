package ikev1

import (
	"bytes"
	"strconv"
	"strings"
	"testing"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/sadb"
)

func TestMainModeQuickModePSK(t *testing.T) {
	p := newPair(t, nil)
	info, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if info.State != "established" || len(info.Children) != 1 {
		t.Fatalf("initiator SA %+v", info)
	}
	waitFor(t, "responder's IPsec SA", func() bool {
		sas := p.b.SAs()
		return len(sas) == 1 && len(sas[0].Children) == 1
	})
	ib := p.b.SAs()[0]
	if ib.SPIi != info.SPIi || ib.SPIr != info.SPIr || ib.Algorithms != info.Algorithms {
		t.Fatalf("SAs differ: %+v / %+v", info, ib)
	}
	ca, cb := info.Children[0], ib.Children[0]
	if ca.SPIIn != cb.SPIOut || ca.SPIOut != cb.SPIIn || ca.Algorithms != "AES_CBC-256/HMAC_SHA2_256_128/NO_EXT_SEQ" {
		t.Fatalf("IPsec SAs %+v / %+v", ca, cb)
	}
	// The keys of each direction agree.
	checkKeys(t, p.memA.SAs(), p.memB.SAs())
}

// checkKeys checks that every SA of one side has its twin, with the same
// keys, on the other.
func checkKeys(t *testing.T, a, b []sadb.SA) {
	t.Helper()
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("%d and %d SAs installed", len(a), len(b))
	}
	for _, x := range a {
		found := false
		for _, y := range b {
			if x.SPI == y.SPI && x.Inbound != y.Inbound {
				found = true
				if !bytes.Equal(x.EncrKey, y.EncrKey) || !bytes.Equal(x.IntegKey, y.IntegKey) || x.Src != y.Src || x.Dst != y.Dst {
					t.Errorf("SA %08x: keys or addresses differ", x.SPI)
				}
			}
		}
		if !found {
			t.Errorf("SA %08x has no twin", x.SPI)
		}
	}
}

// TestWindows2003MainMode: the Windows 2003 default main mode (3DES,
// SHA-1, MODP-1024) and its quick mode (3DES, SHA-1) negotiate when the
// connections allow the legacy algorithms; without that, the connection
// is refused before it can be used.
func TestWindows2003MainMode(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		for _, c := range []*Connection{ca, cb} {
			c.IKEProposals, c.ESPProposals, c.AllowLegacy = mustIKE(t, "3des-sha1-modp1024"), mustESP(t, "3des-sha1"), true
		}
	})
	info, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if info.Algorithms != "3DES/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_1024" || info.Children[0].Algorithms != "3DES/HMAC_SHA1_96/NO_EXT_SEQ" {
		t.Fatalf("algorithms %s / %s", info.Algorithms, info.Children[0].Algorithms)
	}
	waitFor(t, "responder's IPsec SA", func() bool { s := p.b.SAs(); return len(s) == 1 && len(s[0].Children) == 1 })
	checkKeys(t, p.memA.SAs(), p.memB.SAs())
	for _, sa := range p.memA.SAs() {
		if len(sa.EncrKey) != 24 || len(sa.IntegKey) != 20 {
			t.Errorf("3DES/SHA-1 keys of %d and %d octets", len(sa.EncrKey), len(sa.IntegKey))
		}
	}
	c := &Connection{Name: "legacy", Remote: addrB, Auth: testPSK("a very secret key"),
		IKEProposals: mustIKE(t, "3des-sha1-modp1024"), ESPProposals: mustESP(t, "aes128-sha256")}
	if err := ValidateConnection(c); err == nil || !strings.Contains(err.Error(), "legacy") {
		t.Errorf("a legacy proposal without AllowLegacy: %v", err)
	}
}

// TestAggressiveModeRefused: an Aggressive Mode request is answered with
// UNSUPPORTED-EXCHANGE-TYPE and creates nothing.
func TestAggressiveModeRefused(t *testing.T) {
	p := newPair(t, nil)
	var got []byte
	done := make(chan struct{}, 1)
	p.ba.Filter = func(b []byte) bool {
		got = append([]byte(nil), b...)
		done <- struct{}{}
		return false
	}
	m := isakmp.Message{Header: isakmp.Header{ICookie: 42, Exchange: isakmp.ExchangeAggressive},
		Payloads: []isakmp.Payload{&isakmp.SA{DOI: isakmp.DOIIPsec, Situation: isakmp.SitIdentityOnly,
			Proposals: []isakmp.Proposal{{Number: 1, Protocol: isakmp.ProtoISAKMP, Transforms: []isakmp.Transform{{Number: 1, ID: isakmp.KeyIKE}}}}}}}
	if err := p.ab.WriteTo(m.Marshal(), addrB); err != nil {
		t.Fatal(err)
	}
	<-done
	r, err := isakmp.Parse(got)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := isakmp.Find(r.Payloads, isakmp.PayloadN).(*isakmp.Notify)
	if r.Header.Exchange != isakmp.ExchangeInformational || n == nil || n.Code != isakmp.UnsupportedExchangeType {
		t.Fatalf("answer %+v", r)
	}
	if len(p.b.allSAs()) != 0 || p.b.Stats().HandshakesFailed["aggressive_mode_refused"] != 1 {
		t.Errorf("SAs %d, failures %v", len(p.b.allSAs()), p.b.Stats().HandshakesFailed)
	}
}

// TestRekey: an operator's rekey of an IPsec SA (a new Quick Mode, the
// old pair deleted) and of the ISAKMP SA (a new Main Mode, to which the
// IPsec SA moves; the old ISAKMP SA deleted on both sides).
func TestRekey(t *testing.T) {
	p := newPair(t, nil)
	info, err := p.a.Initiate(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	old := info.Children[0]
	spi, _ := strconv.ParseUint(old.SPIIn, 16, 32)
	if _, err := p.a.Rekey(ctxT(t), info.ID, uint32(spi)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "one new IPsec SA on both sides", func() bool {
		a, b := p.a.SAs(), p.b.SAs()
		return len(a) == 1 && len(b) == 1 && len(a[0].Children) == 1 && len(b[0].Children) == 1 &&
			a[0].Children[0].SPIIn != old.SPIIn && b[0].Children[0].SPIOut == a[0].Children[0].SPIIn
	})
	child := p.a.SAs()[0].Children[0]
	id, err := p.a.Rekey(ctxT(t), info.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the new ISAKMP SA alone on both sides, with the IPsec SA", func() bool {
		a, b := p.a.SAs(), p.b.SAs()
		return len(a) == 1 && len(b) == 1 && a[0].ID == id && a[0].SPIi == b[0].SPIi && a[0].SPIi != info.SPIi &&
			len(a[0].Children) == 1 && a[0].Children[0].SPIIn == child.SPIIn && len(b[0].Children) == 1
	})
	checkKeys(t, p.memA.SAs(), p.memB.SAs())
}

// TestMasterKeyPFS: with QuickModeLimit 1 every initiation makes a new
// Main Mode; without a limit the established ISAKMP SA carries the next
// Quick Mode.
func TestMasterKeyPFS(t *testing.T) {
	for _, limit := range []int{0, 1} {
		p := newPair(t, func(ca, _ *Connection, _, _ *Config) { ca.QuickModeLimit = limit })
		for range 2 {
			if _, err := p.a.Initiate(ctxT(t), "a-b"); err != nil {
				t.Fatal(err)
			}
		}
		want := 1 + limit
		if got := p.a.Stats().HandshakesCompleted["initiator"]; int(got) != want {
			t.Errorf("limit %d: %d Main Modes, want %d", limit, got, want)
		}
	}
}
