package vici

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"testing"
	"time"

	"github.com/iked/iked/auth/psk"
	"github.com/iked/iked/ike"
	"github.com/iked/iked/ikev1"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/transform"
	"github.com/iked/iked/transport"
)

// v1Engine shows a real IKEv1 engine to the server as the daemon does
// (cmd/iked's v1Info), with the fields list-sas reads.
type v1Engine struct{ e *ikev1.Engine }

func (v v1Engine) SAs() []ike.SAInfo {
	var out []ike.SAInfo
	for _, s := range v.e.SAs() {
		in := ike.SAInfo{ID: s.ID, Connection: s.Connection, SPIi: s.SPIi, SPIr: s.SPIr, State: s.State, Role: s.Role,
			LocalAddr: s.LocalAddr, RemoteAddr: s.RemoteAddr, LocalID: s.LocalID, RemoteID: s.RemoteID, Auth: s.Auth,
			Algorithms: s.Algorithms, Established: s.Established}
		for _, c := range s.Children {
			in.Children = append(in.Children, ike.ChildInfo{SPIIn: c.SPIIn, SPIOut: c.SPIOut, Protocol: c.Protocol, Mode: c.Mode,
				LocalTS: c.LocalTS, RemoteTS: c.RemoteTS, Algorithms: c.Algorithms, Installed: c.Installed})
		}
		out = append(out, in)
	}
	return out
}

func (v v1Engine) Terminate(ctx context.Context, target string) (int, error) {
	return v.e.Terminate(ctx, target)
}

// newIKEv1Pair makes two IKEv1 engines on a pipe of their own, a with a
// connection to b, both with a pre-shared key.
func newIKEv1Pair(t *testing.T) (a, b *ikev1.Engine) {
	t.Helper()
	s, err := psk.NewSecret([]byte("vici test pre-shared key"))
	if err != nil {
		t.Fatal(err)
	}
	ikeP, _ := transform.ParseIKEv1Proposal("aes256-sha256-modp2048")
	espP, _ := transform.ParseIKEv1ESPProposal("aes256-sha256")
	ax, bx := netip.MustParseAddrPort("192.0.2.11:500"), netip.MustParseAddrPort("192.0.2.12:500")
	mk := func(remote netip.AddrPort) *ikev1.Engine {
		c := &ikev1.Connection{Name: "legacy", Remote: remote, Auth: psk.New(s),
			IKEProposals: []transform.Proposal{ikeP}, ESPProposals: []transform.Proposal{espP}}
		e, err := ikev1.New(ikev1.Config{Connections: []*ikev1.Connection{c}, SADB: sadb.New(memory.New()),
			Logger: slog.New(slog.DiscardHandler), RetransmitTimeout: 200 * time.Millisecond, Readers: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { e.Close() })
		return e
	}
	a, b = mk(bx), mk(ax)
	pa, pb := transport.Pipe(ax, bx)
	a.AddBind(pa)
	b.AddBind(pb)
	return a, b
}

// TestIKEv1SAsAreListedAsVersion1AndTerminated: list-sas shows an ISAKMP
// SA beside the IKE SA, with version 1 and a unique ID of its own, its
// IPsec SA as a Child SA; terminate by that ID deletes it with the peer;
// rekey refuses it, naming what does.
func TestIKEv1SAsAreListedAsVersion1AndTerminated(t *testing.T) {
	v1a, v1b := newIKEv1Pair(t)
	p := newPair(t, func(c *Config) { c.IKEv1 = v1Engine{v1a} })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := p.a.Initiate(ctx, "site"); err != nil {
		t.Fatal(err)
	}
	info, err := v1a.Initiate(ctx, "legacy")
	if err != nil {
		t.Fatal(err)
	}
	c := p.dial(t)
	c.register("list-sa")
	evs, _ := c.command("list-sas", nil)
	versions := map[string]string{}
	var v1ID string
	for _, ev := range evs {
		for _, name := range ev.Keys() {
			sa, _ := ev.Sub(name)
			v, _ := sa.Get("version")
			id, _ := sa.Get("uniqueid")
			versions[name] = v
			if name == "legacy" {
				v1ID = id
				spi, _ := sa.Get("initiator-spi")
				state, _ := sa.Get("state")
				if spi != info.SPIi || state != "ESTABLISHED" {
					t.Errorf("ISAKMP SA: initiator-spi %s state %s, want %s ESTABLISHED", spi, state, info.SPIi)
				}
				children, _ := sa.Sub("child-sas")
				if children == nil || len(children.Keys()) != 1 {
					t.Errorf("ISAKMP SA's child-sas %v, want its IPsec SA", children)
				} else if mode := str(children, children.Keys()[0], "mode"); mode != "TUNNEL" {
					t.Errorf("IPsec SA mode %q", mode)
				}
			}
		}
	}
	if fmt.Sprint(versions) != "map[legacy:1 site:2]" {
		t.Fatalf("list-sas versions %v, want the IKE SA as 2 and the ISAKMP SA as 1", versions)
	}
	if want := fmt.Sprint(isakmpIDBase + 1); v1ID != want {
		t.Errorf("ISAKMP SA's uniqueid %s, want %s (isakmp-1 beyond the IKE SAs' range)", v1ID, want)
	}
	// Filtered by its ID, only it.
	evs, _ = c.command("list-sas", NewMessage().Set("ike-id", v1ID))
	if len(evs) != 1 || evs[0].Keys()[0] != "legacy" {
		t.Errorf("list-sas ike-id %s: %d events", v1ID, len(evs))
	}
	_, resp := c.command("rekey", NewMessage().Set("ike-id", v1ID))
	if ok, _ := resp.Get("success"); ok != "no" {
		t.Errorf("rekey of an ISAKMP SA over VICI: %v", resp.Keys())
	}
	_, resp = c.command("terminate", NewMessage().Set("ike-id", v1ID).Set("timeout", "-1"))
	if ok, _ := resp.Get("success"); ok != "yes" {
		errmsg, _ := resp.Get("errmsg")
		t.Fatalf("terminate ike-id %s: %s", v1ID, errmsg)
	}
	deadline := time.Now().Add(60 * time.Second)
	for len(v1a.SAs())+len(v1b.SAs()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("ISAKMP SAs left: %d here, %d at the peer", len(v1a.SAs()), len(v1b.SAs()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(p.a.SAs()) != 1 {
		t.Errorf("the IKE SA went with the ISAKMP SA: %d left", len(p.a.SAs()))
	}
}
