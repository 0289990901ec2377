package ike

import (
	"testing"

	"github.com/iked/iked/ike/wire"
)

// TestRekeyIKE: either side rekeys the IKE SA; both end with one IKE SA
// under new SPIs, the same Child SAs, the rekeying side as its initiator,
// and the new SA carries exchanges.
func TestRekeyIKE(t *testing.T) {
	for _, bySide := range []string{"initiator", "responder"} {
		t.Run("by "+bySide, func(t *testing.T) {
			p := newPair(t)
			infos, err := p.a.Initiate(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			old := infos[0]
			rekeyer, other := p.a, p.b
			if bySide == "responder" {
				rekeyer, other = p.b, p.a
			}
			id, err := rekeyer.RekeyIKE(ctxT(t), rekeyer.SAs()[0].ID)
			if err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(other.SAs()) == 1 && len(rekeyer.SAs()) == 1 })
			x, y := rekeyer.SAs()[0], other.SAs()[0]
			if x.ID != id || x.SPIi == old.SPIi || x.SPIr == old.SPIr || x.SPIi != y.SPIi || x.SPIr != y.SPIr {
				t.Fatalf("SPIs after rekey: %s_%s / %s_%s (old %s_%s)", x.SPIi, x.SPIr, y.SPIi, y.SPIr, old.SPIi, old.SPIr)
			}
			if x.Role != "initiator" || y.Role != "responder" {
				t.Fatalf("roles after rekey: %s / %s", x.Role, y.Role)
			}
			if len(x.Children) != 1 || len(y.Children) != 1 || x.Children[0].SPIIn != y.Children[0].SPIOut {
				t.Fatalf("Child SAs did not move: %+v / %+v", x.Children, y.Children)
			}
			if len(p.memA.SAs()) != 2 || len(p.memB.SAs()) != 2 {
				t.Fatal("Child SAs removed from the data plane by the IKE rekey")
			}
			// The new SA works: a liveness check and a Child SA rekey on it.
			sa := rekeyer.allSAs()[0]
			if _, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
				return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
			}); err != nil {
				t.Fatal(err)
			}
			sa.mu.Lock()
			c := sa.children[0]
			sa.mu.Unlock()
			if err := rekeyer.CreateChild(ctxT(t), id, c.inbound.SPI); err != nil {
				t.Fatal(err)
			}
			childKeysPair(t, p)
			// And it can be rekeyed again, by the other side.
			if _, err := other.RekeyIKE(ctxT(t), other.SAs()[0].ID); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(rekeyer.SAs()) == 1 && rekeyer.SAs()[0].Role == "responder" })
		})
	}
}
