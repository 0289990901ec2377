package ikev1

import (
	"bytes"
	"testing"

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
