package ike

import (
	"errors"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// exchangeCounter counts the datagrams of each exchange a pipe end sends,
// requests and responses apart, and the encrypted fragments among them.
type exchangeCounter struct {
	mu        sync.Mutex
	requests  map[wire.ExchangeType]int
	responses map[wire.ExchangeType]int
	fragments map[wire.ExchangeType]int
}

func countExchanges() *exchangeCounter {
	return &exchangeCounter{requests: map[wire.ExchangeType]int{}, responses: map[wire.ExchangeType]int{}, fragments: map[wire.ExchangeType]int{}}
}

func (c *exchangeCounter) filter(b []byte) bool {
	h, err := wire.ParseHeader(b)
	if err != nil {
		return true
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if h.NextPayload == wire.PayloadSKF {
		c.fragments[h.Exchange]++
		// A message counts once, with its first fragment.
		if len(b) < wire.HeaderLen+6 || int(b[wire.HeaderLen+4])<<8|int(b[wire.HeaderLen+5]) != 1 {
			return true
		}
	}
	if h.IsResponse() {
		c.responses[h.Exchange]++
	} else {
		c.requests[h.Exchange]++
	}
	return true
}

func (c *exchangeCounter) get(m map[wire.ExchangeType]int, x wire.ExchangeType) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return m[x]
}

// TestHybridHandshake: the initial exchanges with additional key
// exchanges, one IKE_INTERMEDIATE each (RFC 9370 §2.2.2), IntAuth in AUTH
// (RFC 9242): both sides establish the same SA, show the key exchanges,
// install Child SAs with equal keys, and the SA carries further
// exchanges under the updated keys.
func TestHybridHandshake(t *testing.T) {
	for _, tc := range []struct {
		proposal, algorithms string
		intermediates        int
	}{
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768", 1},
		{"aes256gcm16-prfsha384-ecp384-ke1_mlkem1024", "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384/KE1_ML_KEM_1024", 1},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE2_ML_KEM_1024", 2},
		{"aes128-sha256-x25519-ke1_ecp256-ke3_mlkem768", "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519/KE1_ECP_256/KE3_ML_KEM_768", 2},
		// ML-KEM alone, in IKE_SA_INIT (IP-fragmented on a real path).
		{"aes256gcm16-prfsha384-mlkem768", "AES_GCM_16-256/PRF_HMAC_SHA2_384/ML_KEM_768", 0},
	} {
		t.Run(tc.proposal, func(t *testing.T) {
			p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
				ca.IKEProposals, cb.IKEProposals = mustIKE(t, tc.proposal), mustIKE(t, tc.proposal)
			})
			ca, cb := countExchanges(), countExchanges()
			p.ba.Filter, p.bb.Filter = ca.filter, cb.filter
			infos, err := p.a.InitiateNew(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			ia, ib := infos[0], p.b.SAs()[0]
			if ia.State != "established" || ib.State != "established" || ia.Algorithms != tc.algorithms || ib.Algorithms != tc.algorithms {
				t.Fatalf("%s %q / %s %q", ia.State, ia.Algorithms, ib.State, ib.Algorithms)
			}
			if ia.Proposal != tc.proposal && !strings.HasPrefix(tc.proposal, "aes128-sha256") {
				t.Errorf("proposal %q, want %q", ia.Proposal, tc.proposal)
			}
			if !ia.PostQuantum || !ib.PostQuantum {
				t.Error("not shown as post-quantum")
			}
			if c := p.b.Stats().EstablishedByProposal[ib.Proposal]; c.SAs != 1 || !c.PostQuantum {
				t.Errorf("responder's metrics by proposal: %+v", p.b.Stats().EstablishedByProposal)
			}
			if n := ca.get(ca.requests, wire.IKE_INTERMEDIATE); n != tc.intermediates {
				t.Errorf("%d IKE_INTERMEDIATE requests, want %d", n, tc.intermediates)
			}
			if n := cb.get(cb.responses, wire.IKE_INTERMEDIATE); n != tc.intermediates {
				t.Errorf("%d IKE_INTERMEDIATE responses, want %d", n, tc.intermediates)
			}
			childKeysPair(t, p)
			// The updated keys carry a liveness check and a Child SA.
			sa := p.a.allSAs()[0]
			if _, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
				return sa.sealMessage(wire.INFORMATIONAL, id, false, nil)
			}); err != nil {
				t.Fatal(err)
			}
			if err := p.b.CreateChild(ctxT(t), ib.ID, 0); err != nil {
				t.Fatal(err)
			}
			childKeysPair(t, p)
		})
	}
}

// TestHybridFragments: ML-KEM-1024 keys and ciphertexts do not fit a
// 600-octet datagram: IKE_INTERMEDIATE goes in RFC 7383 fragments both
// ways, and IntAuth covers the reassembled messages.
func TestHybridFragments(t *testing.T) {
	const prop = "aes256gcm16-prfsha384-x25519-ke1_mlkem1024"
	p := newPair(t, func(ca, cb *Connection, cfgA, cfgB *Config) {
		ca.IKEProposals, cb.IKEProposals = mustIKE(t, prop), mustIKE(t, prop)
		cfgA.FragmentSize, cfgB.FragmentSize = 600, 600
	})
	ca, cb := countExchanges(), countExchanges()
	p.ba.Filter, p.bb.Filter = ca.filter, cb.filter
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if ca.get(ca.fragments, wire.IKE_INTERMEDIATE) < 3 || cb.get(cb.fragments, wire.IKE_INTERMEDIATE) < 3 {
		t.Fatalf("IKE_INTERMEDIATE fragments: %d sent by the initiator, %d by the responder", ca.get(ca.fragments, wire.IKE_INTERMEDIATE), cb.get(cb.fragments, wire.IKE_INTERMEDIATE))
	}
	childKeysPair(t, p)
}

// TestHybridLostIntermediateResponse: the first IKE_INTERMEDIATE response
// is lost. The responder has switched to the new keys by then; it still
// recognises the retransmitted request, under the old ones, and answers it
// from its cache, so the handshake completes.
func TestHybridLostIntermediateResponse(t *testing.T) {
	const prop = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.IKEProposals, cb.IKEProposals = mustIKE(t, prop), mustIKE(t, prop)
	})
	var dropped atomic.Bool
	p.bb.Filter = func(b []byte) bool {
		h, err := wire.ParseHeader(b)
		if err == nil && h.Exchange == wire.IKE_INTERMEDIATE && h.IsResponse() && !dropped.Load() {
			dropped.Store(true)
			return false
		}
		return true
	}
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	if !dropped.Load() || p.b.Stats().RetransmitsAnswered == 0 {
		t.Fatalf("no lost response answered again (dropped %v, answered %d)", dropped.Load(), p.b.Stats().RetransmitsAnswered)
	}
	childKeysPair(t, p)
}

// TestOptionalAddKE: keN_none makes an additional key exchange optional
// (RFC 9370 §2.2.1): against a classical peer, in either role, the SA is
// classical and no IKE_INTERMEDIATE runs; between two peers that offer it,
// it runs.
func TestOptionalAddKE(t *testing.T) {
	for _, tc := range []struct {
		a, b, want string
	}{
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519"},
		{"aes256gcm16-prfsha384-x25519", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519"},
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768"},
		// The responder's preference decides: it prefers none.
		{"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519-ke1_none-ke1_mlkem768", "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519"},
	} {
		t.Run(tc.a+"/"+tc.b, func(t *testing.T) {
			p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
				ca.IKEProposals, cb.IKEProposals = mustIKE(t, tc.a), mustIKE(t, tc.b)
			})
			ca := countExchanges()
			p.ba.Filter = ca.filter
			infos, err := p.a.InitiateNew(ctxT(t), "a-b")
			if err != nil {
				t.Fatal(err)
			}
			if infos[0].Algorithms != tc.want || p.b.SAs()[0].Algorithms != tc.want {
				t.Fatalf("algorithms %q / %q, want %q", infos[0].Algorithms, p.b.SAs()[0].Algorithms, tc.want)
			}
			if n, want := ca.get(ca.requests, wire.IKE_INTERMEDIATE), strings.Count(tc.want, "KE1_"); n != want {
				t.Fatalf("%d IKE_INTERMEDIATE exchanges, want %d", n, want)
			}
		})
	}
}

// hideNotify rewrites, in place, notify code in the unprotected
// IKE_SA_INIT datagrams a pipe end sends into a private status notify the
// peer ignores: the message is what a peer that does not speak the
// extension sends (same length, so the pipe's copy can be patched).
func hideNotify(code wire.NotifyType, next func([]byte) bool) func([]byte) bool {
	return func(b []byte) bool {
		if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.IKE_SA_INIT {
			t, off := h.NextPayload, wire.HeaderLen
			for t != wire.PayloadNone && off+wire.GenericHeaderLen <= len(b) {
				n := int(b[off+2])<<8 | int(b[off+3])
				if n < wire.GenericHeaderLen || off+n > len(b) {
					break
				}
				if t == wire.PayloadNotify && n >= 8 && wire.NotifyType(int(b[off+6])<<8|int(b[off+7])) == code {
					b[off+6], b[off+7] = 0xc3, 0x50 // 50000, private use, status
				}
				t, off = wire.PayloadType(b[off]), off+n
			}
		}
		if next != nil {
			return next(b)
		}
		return true
	}
}

// TestPeerWithoutIntermediate: additional key exchanges need
// IKE_INTERMEDIATE on both sides (RFC 9370 §2.2.1).
func TestPeerWithoutIntermediate(t *testing.T) {
	const required = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	const optional = "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none"
	t.Run("initiator does not announce it", func(t *testing.T) {
		// The responder cannot choose the additional exchange: with it
		// required, NO_PROPOSAL_CHOSEN; with it optional, a classical SA.
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
			ca.IKEProposals, cb.IKEProposals = mustIKE(t, required), mustIKE(t, required)
		})
		p.ba.Filter = hideNotify(wire.NotifyIntermediateExchangeSupported, nil)
		_, err := p.a.InitiateNew(ctxT(t), "a-b")
		var ne *notifyError
		if !errors.As(err, &ne) || ne.code != wire.NotifyNoProposalChosen {
			t.Fatalf("err = %v, want NO_PROPOSAL_CHOSEN", err)
		}
		if p.b.Stats().HandshakesFailed["no_proposal_chosen"] != 1 {
			t.Fatalf("responder stats %+v", p.b.Stats().HandshakesFailed)
		}
		// With the exchange optional, the responder answers with a
		// classical suite; but the announcement was removed on the way
		// (here by a test, in life by an attacker forcing a downgrade),
		// and AUTH covers the IKE_SA_INIT messages: the handshake fails.
		p = newPair(t, func(ca, cb *Connection, _, _ *Config) {
			ca.IKEProposals, cb.IKEProposals = mustIKE(t, optional), mustIKE(t, optional)
		})
		var classical atomic.Bool
		p.ba.Filter = hideNotify(wire.NotifyIntermediateExchangeSupported, nil)
		p.bb.Filter = func(b []byte) bool {
			if m, err := wire.Parse(b); err == nil && m.Header.Exchange == wire.IKE_SA_INIT {
				sa, _ := wire.Find(m.Payloads, wire.PayloadSA).(*wire.SA)
				classical.Store(sa != nil && !hasType(&sa.Proposals[0], wire.TransformADDKE1))
			}
			return true
		}
		_, err = p.a.InitiateNew(ctxT(t), "a-b")
		if !errors.As(err, &ne) || ne.code != wire.NotifyAuthenticationFailed || !classical.Load() {
			t.Fatalf("err = %v (answer classical %v), want AUTHENTICATION_FAILED after a classical answer", err, classical.Load())
		}
	})
	t.Run("responder chooses additional exchanges without announcing it", func(t *testing.T) {
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
			ca.IKEProposals, cb.IKEProposals = mustIKE(t, required), mustIKE(t, required)
		})
		p.bb.Filter = hideNotify(wire.NotifyIntermediateExchangeSupported, nil)
		_, err := p.a.InitiateNew(ctxT(t), "a-b")
		if err == nil || !strings.Contains(err.Error(), "without announcing IKE_INTERMEDIATE") {
			t.Fatalf("err = %v", err)
		}
		waitFor(t, func() bool { return len(p.a.SAs()) == 0 })
	})
}

// TestRequirePQ: require_pq refuses a peer without a post-quantum key
// exchange, as responder with NO_PROPOSAL_CHOSEN (counted pq_required),
// as initiator by ending the handshake; and it makes an optional ML-KEM
// exchange be chosen.
func TestRequirePQ(t *testing.T) {
	const classic = "aes256gcm16-prfsha384-x25519"
	const optional = "aes256gcm16-prfsha384-x25519-ke1_none-ke1_mlkem768"
	t.Run("responder", func(t *testing.T) {
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
			ca.IKEProposals, cb.IKEProposals = mustIKE(t, classic), mustIKE(t, optional)
			cb.RequirePQ = true
		})
		_, err := p.a.InitiateNew(ctxT(t), "a-b")
		var ne *notifyError
		if !errors.As(err, &ne) || ne.code != wire.NotifyNoProposalChosen {
			t.Fatalf("err = %v, want NO_PROPOSAL_CHOSEN", err)
		}
		if p.b.Stats().HandshakesFailed[failurePQRequired] != 1 || p.b.Stats().NotifiesSent["NO_PROPOSAL_CHOSEN"] != 1 {
			t.Fatalf("responder stats %+v", p.b.Stats())
		}
	})
	t.Run("responder picks the optional exchange", func(t *testing.T) {
		// The responder's own order prefers none; require_pq overrides it.
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
			ca.IKEProposals, cb.IKEProposals = mustIKE(t, optional), mustIKE(t, optional)
			cb.RequirePQ = true
		})
		infos, err := p.a.InitiateNew(ctxT(t), "a-b")
		if err != nil || !infos[0].PostQuantum {
			t.Fatalf("%v %+v", err, infos)
		}
	})
	t.Run("initiator", func(t *testing.T) {
		p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
			ca.IKEProposals, cb.IKEProposals = mustIKE(t, optional), mustIKE(t, classic)
			ca.RequirePQ = true
		})
		_, err := p.a.InitiateNew(ctxT(t), "a-b")
		if err == nil || !strings.Contains(err.Error(), "require_pq") {
			t.Fatalf("err = %v", err)
		}
		if p.a.Stats().HandshakesFailed[failurePQRequired] != 1 {
			t.Fatalf("initiator stats %+v", p.a.Stats().HandshakesFailed)
		}
	})
}

// TestFollowupKE: CREATE_CHILD_SA with additional key exchanges, one
// IKE_FOLLOWUP_KE each (RFC 9370 §2.2.4): a new Child SA, a Child SA rekey
// with PFS and an IKE SA rekey, started by either side; the Child SAs'
// keys agree, the rekeyed IKE SA works and shows its key exchanges.
func TestFollowupKE(t *testing.T) {
	const ikeProp = "aes256gcm16-prfsha384-x25519-ke1_mlkem768"
	const espProp = "aes256gcm16-x25519-ke1_mlkem768-ke2_mlkem1024"
	for _, side := range []string{"initiator", "responder"} {
		t.Run("by "+side, func(t *testing.T) {
			p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
				ca.IKEProposals, cb.IKEProposals = mustIKE(t, ikeProp), mustIKE(t, ikeProp)
				ca.ESPProposals, cb.ESPProposals = mustESP(t, espProp), mustESP(t, espProp)
			})
			ca, cb := countExchanges(), countExchanges()
			p.ba.Filter, p.bb.Filter = ca.filter, cb.filter
			if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
				t.Fatal(err)
			}
			e, cnt := p.a, ca
			if side == "responder" {
				e, cnt = p.b, cb
			}
			id := e.SAs()[0].ID
			// A second Child SA.
			if err := e.CreateChild(ctxT(t), id, 0); err != nil {
				t.Fatal(err)
			}
			childKeysPair(t, p)
			if n := cnt.get(cnt.requests, wire.IKE_FOLLOWUP_KE); n != 2 {
				t.Fatalf("%d IKE_FOLLOWUP_KE requests for the new Child SA, want 2", n)
			}
			sa := e.allSAs()[0]
			sa.mu.Lock()
			c := sa.children[1]
			sa.mu.Unlock()
			if c.suite.String() != "AES_GCM_16-256/CURVE_25519/KE1_ML_KEM_768/KE2_ML_KEM_1024/NO_EXT_SEQ" {
				t.Fatalf("Child SA algorithms %q", c.suite.String())
			}
			// Its rekey, with PFS and both additional exchanges.
			if err := e.CreateChild(ctxT(t), id, c.inbound.SPI); err != nil {
				t.Fatal(err)
			}
			waitFor(t, func() bool { return len(p.memA.SAs()) == 4 && len(p.memB.SAs()) == 4 })
			childKeysPair(t, p)
			if n := cnt.get(cnt.requests, wire.IKE_FOLLOWUP_KE); n != 4 {
				t.Fatalf("%d IKE_FOLLOWUP_KE requests, want 4", n)
			}
			// The IKE SA's rekey, with its additional exchange.
			newID, err := e.RekeyIKE(ctxT(t), id)
			if err != nil {
				t.Fatal(err)
			}
			if n := cnt.get(cnt.requests, wire.IKE_FOLLOWUP_KE); n != 5 {
				t.Fatalf("%d IKE_FOLLOWUP_KE requests, want 5", n)
			}
			waitFor(t, func() bool { return len(p.a.SAs()) == 1 && len(p.b.SAs()) == 1 })
			x, y := p.a.SAs()[0], p.b.SAs()[0]
			if x.SPIi != y.SPIi || x.Algorithms != "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768" || y.Algorithms != x.Algorithms {
				t.Fatalf("after the rekey: %+v / %+v", x, y)
			}
			if len(x.Children) != 2 || len(y.Children) != 2 {
				t.Fatalf("Child SAs after the IKE rekey: %d / %d", len(x.Children), len(y.Children))
			}
			// The new IKE SA's keys agree: another Child SA on it.
			if err := e.CreateChild(ctxT(t), newID, 0); err != nil {
				t.Fatal(err)
			}
			childKeysPair(t, p)
			for _, x := range []*Engine{p.a, p.b} {
				x.followups.mu.Lock()
				n := len(x.followups.m)
				x.followups.mu.Unlock()
				if n != 0 {
					t.Fatalf("pending followups left: %d", n)
				}
			}
		})
	}
}

// TestFollowupStateNotFound: the responder no longer knows the exchange an
// IKE_FOLLOWUP_KE continues (here dropped, as an expiry or a restart would)
// and answers STATE_NOT_FOUND; the requester gives that CREATE_CHILD_SA up,
// neither side installs a Child SA or keeps state, and the IKE SA carries
// on. The expiry itself: a followup older than followupTimeout is not found.
func TestFollowupStateNotFound(t *testing.T) {
	const espProp = "aes256gcm16-x25519-ke1_mlkem768"
	var skew atomic.Int64
	p := newPair(t, func(ca, cb *Connection, _, cfgB *Config) {
		ca.ESPProposals, cb.ESPProposals = mustESP(t, espProp), mustESP(t, espProp)
		cfgB.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	id := p.a.SAs()[0].ID
	for _, how := range []string{"dropped", "expired"} {
		p.ba.Filter = func(b []byte) bool {
			if h, err := wire.ParseHeader(b); err == nil && h.Exchange == wire.IKE_FOLLOWUP_KE && !h.IsResponse() {
				if how == "dropped" {
					sb := p.b.allSAs()[0]
					sb.mu.Lock()
					sb.dropFollowups()
					sb.mu.Unlock()
				} else {
					skew.Store(int64(2 * followupTimeout))
				}
			}
			return true
		}
		err := p.a.CreateChild(ctxT(t), id, 0)
		var ne *notifyError
		if !errors.As(err, &ne) || ne.code != wire.NotifyStateNotFound {
			t.Fatalf("%s: err = %v, want STATE_NOT_FOUND", how, err)
		}
		skew.Store(0)
		if len(p.memA.SAs()) != 2 || len(p.memB.SAs()) != 2 {
			t.Fatalf("%s: Child SAs installed: %d / %d", how, len(p.memA.SAs()), len(p.memB.SAs()))
		}
		if p.b.Stats().NotifiesSent["STATE_NOT_FOUND"] == 0 {
			t.Fatalf("%s: STATE_NOT_FOUND not counted", how)
		}
	}
	p.ba.Filter = nil
	if err := p.a.CreateChild(ctxT(t), id, 0); err != nil {
		t.Fatal(err)
	}
	childKeysPair(t, p)
}

// TestFollowupInvalidKE: the initiator guesses the wrong first key exchange
// method of a hybrid CREATE_CHILD_SA; INVALID_KE_PAYLOAD names the one to
// use, the CREATE_CHILD_SA is repeated with it and the additional exchange
// follows.
func TestFollowupInvalidKE(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.ESPProposals = mustESP(t, "aes256gcm16-ecp256-x25519-ke1_mlkem768")
		cb.ESPProposals = mustESP(t, "aes256gcm16-x25519-ke1_mlkem768")
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err != nil {
		t.Fatal(err)
	}
	ca := countExchanges()
	p.ba.Filter = ca.filter
	if err := p.a.CreateChild(ctxT(t), p.a.SAs()[0].ID, 0); err != nil {
		t.Fatal(err)
	}
	if ca.get(ca.requests, wire.CREATE_CHILD_SA) != 2 || ca.get(ca.requests, wire.IKE_FOLLOWUP_KE) != 1 {
		t.Fatalf("%d CREATE_CHILD_SA, %d IKE_FOLLOWUP_KE", ca.get(ca.requests, wire.CREATE_CHILD_SA), ca.get(ca.requests, wire.IKE_FOLLOWUP_KE))
	}
	if p.b.Stats().NotifiesSent["INVALID_KE_PAYLOAD"] != 1 {
		t.Fatalf("notifies %v", p.b.Stats().NotifiesSent)
	}
	childKeysPair(t, p)
}

// TestAdditionalExchangeWrongMethod: in IKE_INTERMEDIATE and
// IKE_FOLLOWUP_KE the method was negotiated; a KE of another is answered
// with INVALID_KE_PAYLOAD naming the negotiated one, and a requester that
// gets INVALID_KE_PAYLOAD there cannot follow it and fails.
func TestAdditionalExchangeWrongMethod(t *testing.T) {
	e, err := New(Config{SADB: newPair(t).a.cfg.SADB, CookieThreshold: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()
	s := &suite{prf: transform.PRFByID(transform.PRFHMACSHA2_256), group: transform.GroupByID(transform.DHCurve25519), proto: wire.ProtoIKE}
	s.addKE[0] = transform.DHMLKEM768
	sa := &ikeSA{eng: e, suite: s, saHandshake: &saHandshake{peerIntermediate: true}, state: stateAuthenticating}
	hs := &intermediateResponder{sa: sa, inner: []wire.Payload{&wire.KE{Group: transform.DHMLKEM1024, Data: make([]byte, 1568)}}}
	err = hs.readKE()
	var r *refusal
	if !errors.As(err, &r) || r.notify == nil || r.notify.Code != wire.NotifyInvalidKEPayload || string(r.notify.Data) != "\x00\x24" {
		t.Fatalf("IKE_INTERMEDIATE with ML_KEM_1024 for ML_KEM_768: %v", err)
	}
	// Missing KE, and a KE after the last exchange.
	hs = &intermediateResponder{sa: sa}
	if err := hs.readKE(); !errors.As(err, &r) || r.notify.Code != wire.NotifyInvalidSyntax {
		t.Fatalf("IKE_INTERMEDIATE without KE: %v", err)
	}
	sa.inter = &intermediate{done: 1}
	hs = &intermediateResponder{sa: sa, inner: []wire.Payload{&wire.KE{Group: transform.DHMLKEM768}}}
	if err := hs.readKE(); !errors.As(err, &r) || r.notify.Code != wire.NotifyInvalidSyntax {
		t.Fatalf("IKE_INTERMEDIATE with KE after the exchanges: %v", err)
	}
	// IKE_AUTH before the additional exchange.
	sa.inter = nil
	if err := (&authResponder{sa: sa}).checkIntermediates(); !errors.As(err, &r) || r.notify.Code != wire.NotifyInvalidSyntax {
		t.Fatalf("IKE_AUTH before the additional key exchange: %v", err)
	}
	// The requester's side of INVALID_KE_PAYLOAD in IKE_INTERMEDIATE.
	x := &intermediateRequester{sa: sa, group: transform.GroupByID(transform.DHMLKEM768), n: 1,
		resp: &response{payloads: []wire.Payload{groupNotify(transform.GroupByID(transform.DHMLKEM1024))}}}
	var ne *notifyError
	if err := x.checkAnswer(); !errors.As(err, &ne) || ne.code != wire.NotifyInvalidKEPayload || !strings.Contains(err.Error(), "negotiated in IKE_SA_INIT") {
		t.Fatalf("INVALID_KE_PAYLOAD in IKE_INTERMEDIATE: %v", err)
	}
	// IKE_FOLLOWUP_KE with the wrong method.
	f := &followupResponder{sa: sa, f: &followup{groups: []transform.Group{transform.GroupByID(transform.DHMLKEM768)}},
		inner: []wire.Payload{&wire.KE{Group: transform.DHCurve25519, Data: make([]byte, 32)}}}
	if err := f.readKE(); !errors.As(err, &r) || r.notify.Code != wire.NotifyInvalidKEPayload {
		t.Fatalf("IKE_FOLLOWUP_KE with the wrong method: %v", err)
	}
}

// TestFallbackProposal: a proposal whose additional key exchanges are all
// optional goes out with a classical copy after it (for responders that
// refuse unknown transform types), numbered on; a choice of either maps
// back to the configured proposal, the copy's as classical.
func TestFallbackProposal(t *testing.T) {
	ours := mustIKE(t, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none", "aes256gcm16-prfsha384-x25519-ke1_mlkem768", "aes128-sha256-modp2048")
	w := toWire(ours, wire.ProtoIKE, nil, true)
	if len(w) != 4 {
		t.Fatalf("%d wire proposals, want 4 (the optional one twice)", len(w))
	}
	for i, p := range w {
		if int(p.Number) != i+1 {
			t.Fatalf("proposal %d numbered %d", i, p.Number)
		}
	}
	if !hasType(&w[0], wire.TransformADDKE1) || hasType(&w[1], wire.TransformADDKE1) || !hasType(&w[2], wire.TransformADDKE1) || hasType(&w[3], wire.TransformADDKE1) {
		t.Fatalf("ADDKE transforms in the wrong proposals: %+v", w)
	}
	for n, want := range map[uint8]string{
		1: "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768",
		2: "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519",
		3: "AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768",
		4: "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048",
	} {
		s := selectProposal(ours, w[n-1:n], wire.ProtoIKE, true)
		if s == nil {
			t.Fatalf("proposal %d not selectable", n)
		}
		chosen := s.wire(nil)
		got := acceptChosen(ours, &chosen, wire.ProtoIKE, true)
		if got == nil || got.String() != want {
			t.Errorf("choosing proposal %d: %v, want %s", n, got, want)
		}
	}
	// Without key exchange transforms (IKE_AUTH's Child SA) nothing doubles.
	if w := toWire(ours, wire.ProtoESP, []byte{1, 2, 3, 4}, false); len(w) != 3 {
		t.Fatalf("%d wire proposals without DH", len(w))
	}
	if wireProposal(ours, true, 5) != -1 || wireProposal(ours, true, 0) != 0 {
		t.Fatal("wireProposal bounds")
	}
}

// TestHybridInvalidKE: INVALID_KE_PAYLOAD in IKE_SA_INIT restarts it with
// the responder's first method; the additional exchange follows.
func TestHybridInvalidKE(t *testing.T) {
	p := newPair(t, func(ca, cb *Connection, _, _ *Config) {
		ca.IKEProposals = mustIKE(t, "aes256gcm16-prfsha384-x25519-ecp256-ke1_mlkem768")
		cb.IKEProposals = mustIKE(t, "aes256gcm16-prfsha384-ecp256-x25519-ke1_mlkem768")
	})
	ca := countExchanges()
	p.ba.Filter = ca.filter
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	if infos[0].Algorithms != "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_256/KE1_ML_KEM_768" {
		t.Fatalf("algorithms %q", infos[0].Algorithms)
	}
	if ca.get(ca.requests, wire.IKE_SA_INIT) != 2 || ca.get(ca.requests, wire.IKE_INTERMEDIATE) != 1 {
		t.Fatalf("%d IKE_SA_INIT, %d IKE_INTERMEDIATE requests", ca.get(ca.requests, wire.IKE_SA_INIT), ca.get(ca.requests, wire.IKE_INTERMEDIATE))
	}
	childKeysPair(t, p)
}

// TestTraceHybridOffer: the proposal-selection trace names additional key
// exchanges as strongSwan's "received proposals" line does.
func TestTraceHybridOffer(t *testing.T) {
	p, err := transform.ParseIKEProposal("aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke1_none-ke2_mlkem1024")
	if err != nil {
		t.Fatal(err)
	}
	got := formatOffer(toWire([]transform.Proposal{p}, wire.ProtoIKE, nil, true))
	if want := "IKE:AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE1_NONE/KE2_ML_KEM_1024"; got != want {
		t.Errorf("offer traced as %s, want %s", got, want)
	}
}
