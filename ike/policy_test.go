package ike

import (
	"net/netip"
	"testing"

	"github.com/iked/iked/sadb"
)

// TestChildPolicies: a tunnel-mode Child SA installs out, in and fwd
// policies for its selectors with the tunnel endpoints, and removing the
// SA removes them.
func TestChildPolicies(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.LocalTS, ca.RemoteTS = mustTS(t, "10.1.0.0/24"), mustTS(t, "10.2.0.0/24[tcp/443]")
		cb.LocalTS, cb.RemoteTS = mustTS(t, "10.2.0.0/24[tcp/443]"), mustTS(t, "10.1.0.0/24")
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	pols := p.memA.Policies()
	if len(pols) != 3 {
		t.Fatalf("%d policies: %+v", len(pols), pols)
	}
	saReqID := p.memA.SAs()[0].ReqID
	for _, pol := range pols {
		want := sadb.Selector{Src: netip.MustParsePrefix("10.1.0.0/24"), Dst: netip.MustParsePrefix("10.2.0.0/24"), Proto: 6, DstPort: 443}
		src, dst := addrA.Addr(), addrB.Addr()
		if pol.Direction != sadb.Out {
			want = sadb.Selector{Src: want.Dst, Dst: want.Src, Proto: 6, SrcPort: 443}
			src, dst = dst, src
		}
		if pol.Selector != want || pol.Action != sadb.Protect || pol.Level != sadb.Required || pol.Mode != sadb.Tunnel ||
			pol.TunnelSrc != src || pol.TunnelDst != dst || pol.ReqID != saReqID || saReqID == 0 {
			t.Errorf("%s policy %+v", pol.Direction, pol)
		}
	}
	if _, err := p.a.Terminate(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if n := len(p.memA.Policies()); n != 0 {
		t.Fatalf("%d policies left after terminate", n)
	}
	waitFor(t, func() bool { return len(p.memB.Policies()) == 0 })
}
