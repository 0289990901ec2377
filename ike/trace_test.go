package ike

import (
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/iked/iked/ike/wire"
)

// traceLog is a debug log that tests read back as records.
type traceLog struct{ w syncWriter }

func (l *traceLog) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&l.w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// records returns the log's records as maps.
func (l *traceLog) records(t *testing.T) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.w.String()), "\n") {
		if line == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		out = append(out, m)
	}
	return out
}

// find returns the first record whose message starts with prefix.
func (l *traceLog) find(t *testing.T, prefix string) map[string]any {
	t.Helper()
	for _, r := range l.records(t) {
		if msg, _ := r["msg"].(string); strings.HasPrefix(msg, prefix) {
			return r
		}
	}
	t.Fatalf("no log line starts with %q in\n%s", prefix, l.w.String())
	return nil
}

// tracedPair is a pair whose engines log at debug level to a and b.
func tracedPair(t *testing.T, a, b *traceLog, opts ...pairOpt) *pair {
	return newPair(t, append(opts, func(_, _ *Connection, cfgA, cfgB *Config) {
		cfgA.Logger, cfgB.Logger = a.logger(), b.logger()
	})...)
}

// TestTraceWrongIKEProposal: a negotiation that fails on the IKE proposal
// reads from the debug log alone: the initiator's log names what it
// offered and the NO_PROPOSAL_CHOSEN it got back; the responder's names
// the offer, its configured proposals, that none was chosen, and its
// answer.
func TestTraceWrongIKEProposal(t *testing.T) {
	var la, lb traceLog
	p := tracedPair(t, &la, &lb, func(ca, cb *Connection, _, _ *Config) {
		ca.IKEProposals = mustIKE(t, "aes128-sha256-modp2048")
		cb.IKEProposals = mustIKE(t, "aes256gcm16-prfsha256-x25519", "aes256-sha384-ecp384")
	})
	if _, err := p.a.InitiateNew(ctxT(t), "a-b"); err == nil {
		t.Fatal("the handshake succeeded")
	}
	const offered = "IKE:AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048"
	const configured = "IKE:AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519, IKE:AES_CBC-256/HMAC_SHA2_384_192/PRF_HMAC_SHA2_384/ECP_384"

	r := la.find(t, "generating IKE_SA_INIT request 0 [ SA KE No N(NAT_DETECTION_SOURCE_IP) N(NAT_DETECTION_DESTINATION_IP)")
	if r["proposals"] != offered || r["ke"] != "MODP_2048" {
		t.Errorf("initiator's request trace: %v", r)
	}
	la.find(t, "parsed IKE_SA_INIT response 0 [ N(NO_PROPOSAL_CHOSEN) ]")

	r = lb.find(t, "parsed IKE_SA_INIT request 0 [ SA KE No ")
	if r["proposals"] != offered || r["peer"] != addrA.String() {
		t.Errorf("responder's request trace: %v", r)
	}
	r = lb.find(t, "selecting IKE proposal")
	if r["offered"] != offered || r["configured"] != configured || r["chosen"] != "none" || r["connection"] != "b-a" {
		t.Errorf("responder's selection trace: %v", r)
	}
	lb.find(t, "generating IKE_SA_INIT response 0 [ N(NO_PROPOSAL_CHOSEN) ]")
}

// TestTraceWrongESPProposal: the Child SA of IKE_AUTH fails on the ESP
// proposal; the responder's trace names the offer, its configuration and
// the notify in the IKE_AUTH response.
func TestTraceWrongESPProposal(t *testing.T) {
	var la, lb traceLog
	p := tracedPair(t, &la, &lb, func(ca, cb *Connection, _, _ *Config) {
		ca.ESPProposals = mustESP(t, "aes128-sha256")
		cb.ESPProposals = mustESP(t, "chacha20poly1305")
	})
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil || len(infos[0].Children) != 0 {
		t.Fatalf("want an IKE SA without a Child SA: %v %+v", err, infos)
	}
	r := la.find(t, "generating IKE_AUTH request 1 [ IDi ")
	if r["proposals"] != "ESP:AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ" || r["idi"] != "fqdn:a.example" {
		t.Errorf("initiator's IKE_AUTH trace: %v", r)
	}
	r = lb.find(t, "selecting ESP proposal")
	if r["offered"] != "ESP:AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ" || r["configured"] != "ESP:CHACHA20_POLY1305/NO_EXT_SEQ" || r["chosen"] != "none" {
		t.Errorf("responder's selection trace: %v", r)
	}
	r = lb.find(t, "generating IKE_AUTH response 1 [ IDr AUTH ")
	if r["idr"] != "fqdn:b.example" || r["auth"] != "PSK" || !strings.Contains(r["msg"].(string), " N(NO_PROPOSAL_CHOSEN) ") {
		t.Errorf("responder's IKE_AUTH response trace: %v", r)
	}
	if r := la.find(t, "parsed IKE_AUTH response 1 [ IDr AUTH "); !strings.Contains(r["msg"].(string), " N(NO_PROPOSAL_CHOSEN) ") {
		t.Errorf("initiator's IKE_AUTH response trace: %v", r)
	}
}

var traceLine = regexp.MustCompile(`^(generating|parsed) (\S+) (request|response) (\d+) \[( \S+)* \]$`)

// TestTraceEveryMessage: through a handshake, a Child SA rekey, an IKE SA
// rekey and a delete, every message one side generates the other parses,
// with the same payloads in the same order; and no trace carries key
// material: no key of the data plane, no nonce or KE value, no PSK.
func TestTraceEveryMessage(t *testing.T) {
	var la, lb traceLog
	p := tracedPair(t, &la, &lb)
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	c := infos[0].Children[0]
	if err := p.a.CreateChild(ctxT(t), infos[0].ID, spiOf(t, c.SPIIn)); err != nil {
		t.Fatal(err)
	}
	id, err := p.a.RekeyIKE(ctxT(t), infos[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, s := range append(p.memA.SAs(), p.memB.SAs()...) {
		keys = append(keys, hex.EncodeToString(s.EncrKey))
	}
	if _, err := p.a.Terminate(ctxT(t), id); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.b.SAs()) == 0 })

	lines := func(l *traceLog, verb string) map[string]int {
		out := map[string]int{}
		for _, r := range l.records(t) {
			msg, _ := r["msg"].(string)
			if m := traceLine.FindStringSubmatch(msg); m != nil && m[1] == verb {
				out[strings.TrimPrefix(msg, verb+" ")]++
			}
		}
		return out
	}
	for _, dir := range []struct {
		name     string
		from, to *traceLog
	}{{"a to b", &la, &lb}, {"b to a", &lb, &la}} {
		sent, parsed := lines(dir.from, traceSent), lines(dir.to, traceReceived)
		if len(sent) < 4 {
			t.Errorf("%s: only %v traced", dir.name, sent)
		}
		for m, n := range sent {
			if parsed[m] != n {
				t.Errorf("%s: generated %d× %q, the peer parsed it %d×", dir.name, n, m, parsed[m])
			}
		}
	}
	for _, want := range []string{"CREATE_CHILD_SA request 2 [ N(REKEY_SA) SA No TSi TSr ]", "INFORMATIONAL request"} {
		found := false
		for m := range lines(&la, traceSent) {
			found = found || strings.HasPrefix(m, want)
		}
		if !found {
			t.Errorf("no generated %q in\n%s", want, la.w.String())
		}
	}
	all := la.w.String() + lb.w.String()
	for _, k := range append(keys, hex.EncodeToString([]byte("correct horse battery")), "correct horse battery") {
		if strings.Contains(all, k) {
			t.Errorf("the debug log carries key material %q", k)
		}
	}
}

// TestTraceOffCostsNothing: with debug off a trace allocates nothing.
func TestTraceOffCostsNothing(t *testing.T) {
	p := newPair(t, func(_, _ *Connection, cfgA, _ *Config) {
		cfgA.Logger = slog.New(slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	sa := p.a.sas.get(mustSPI(t, infos[0].SPIi))
	ps := []wire.Payload{&wire.SA{Proposals: toWire(p.connA.IKEProposals, wire.ProtoIKE, nil, true)}, &wire.Nonce{Data: make([]byte, 32)}}
	sa.mu.Lock()
	defer sa.mu.Unlock()
	if n := testing.AllocsPerRun(100, func() {
		sa.traceMessage(traceSent, wire.CREATE_CHILD_SA, false, 7, ps)
		sa.traceSelection("ESP", p.connA.ESPProposals, wire.ProtoESP, nil, nil)
	}); n != 0 {
		t.Fatalf("a trace with debug off allocates %v times", n)
	}
}

func mustSPI(t *testing.T, s string) uint64 {
	t.Helper()
	v, err := strconv.ParseUint(s, 16, 64)
	if err != nil {
		t.Fatal(err)
	}
	return v
}
