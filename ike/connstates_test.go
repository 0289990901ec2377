package ike

import "testing"

// TestConnStates: the per-connection summary equals what SAs() lists.
func TestConnStates(t *testing.T) {
	p := newPair(t)
	for range 2 {
		if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
			t.Fatal(err)
		}
	}
	for i, s := range p.memA.SAs() {
		for range i + 1 {
			if err := p.memA.Count(s.ID(), 100*(i+1)); err != nil {
				t.Fatal(err)
			}
		}
	}
	var want ConnState
	for _, sa := range p.a.SAs() {
		want.IKESAs++
		if sa.State == "established" {
			want.Established++
		}
		for _, c := range sa.Children {
			want.ChildSAs++
			want.BytesIn += c.BytesIn
			want.BytesOut += c.BytesOut
			want.PacketsIn += c.PacketsIn
			want.PacketsOut += c.PacketsOut
		}
	}
	got := p.a.ConnStates()
	if len(got) != 1 || got["a-b"] != want || want.ChildSAs != 2 || want.BytesIn == 0 || want.BytesOut == 0 {
		t.Fatalf("ConnStates %+v, SAs sum to %+v", got, want)
	}
}
