package ike

import (
	"encoding/hex"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
)

// refusingMethod is an auth method whose initiator sessions refuse the
// responder's AUTH: the initiator of §2.21.2 that tells the responder so in
// an INFORMATIONAL after IKE_AUTH (as charon does when the responder's
// signature breaks its constraints).
type refusingMethod struct{ auth.Method }

func (m refusingMethod) NewSession(p *auth.Params) (auth.Session, error) {
	s, err := m.Method.NewSession(p)
	if err != nil || !p.Initiator {
		return s, err
	}
	return refusingSession{s}, nil
}

type refusingSession struct{ auth.Session }

func (refusingSession) Verify([]byte, []wire.Payload) error {
	return auth.Failf("the responder's signature breaks this side's constraints")
}

// logLines is a JSON log sink, one decoded record per line.
type logLines struct{ w syncWriter }

func (l *logLines) logger() *slog.Logger {
	return slog.New(slog.NewJSONHandler(&l.w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// find returns the records whose message contains msg.
func (l *logLines) find(t *testing.T, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	for _, line := range strings.Split(strings.TrimSpace(l.w.String()), "\n") {
		var rec map[string]any
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			continue
		}
		if m, _ := rec["msg"].(string); strings.Contains(m, msg) {
			out = append(out, rec)
		}
	}
	return out
}

// TestPeerRefusesOurAuth: the initiator refuses the responder's AUTH and
// says so in an INFORMATIONAL (§2.21.2); the responder, which considered
// the IKE SA established and installed its Child SA, removes both at once,
// logs it at WARN with the reason and counts it.
func TestPeerRefusesOurAuth(t *testing.T) {
	var logB logLines
	p := newPair(t, func(ca, _ *Connection, _, cfgB *Config) {
		ca.Auth = refusingMethod{ca.Auth}
		cfgB.Logger = logB.logger()
	})
	_, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err == nil || !strings.Contains(err.Error(), "constraints") {
		t.Fatalf("initiation: %v, want the initiator's refusal", err)
	}
	waitFor(t, func() bool { return len(p.b.SAs()) == 0 && len(p.memB.SAs()) == 0 })
	lines := logB.find(t, "peer refused our authentication")
	if len(lines) != 1 || lines[0]["level"] != "WARN" || lines[0]["notify"] != "AUTHENTICATION_FAILED" || lines[0]["child_sas"] != float64(1) {
		t.Fatalf("responder's log lines %v, want one WARN naming AUTHENTICATION_FAILED and the Child SA", lines)
	}
	if del := logB.find(t, "IKE SA deleted"); len(del) != 1 || !strings.Contains(del[0]["reason"].(string), "AUTHENTICATION_FAILED") {
		t.Errorf("IKE SA deleted lines %v", del)
	}
	st := p.b.Stats()
	if st.NotifiesReceived["AUTHENTICATION_FAILED"] != 1 || st.HandshakesFailed["authentication_failed"] != 1 || st.ChildSAs != 0 {
		t.Errorf("responder stats: received %v, failed %v, Child SAs %d", st.NotifiesReceived, st.HandshakesFailed, st.ChildSAs)
	}
	if a := p.a.Stats(); a.NotifiesSent["AUTHENTICATION_FAILED"] != 1 {
		t.Errorf("initiator sent %v", a.NotifiesSent)
	}
}

// sendInformational sends an INFORMATIONAL request with payloads on e's
// one IKE SA and waits for the answer.
func sendInformational(t *testing.T, e *Engine, payloads ...wire.Payload) error {
	t.Helper()
	sas := e.allSAs()
	if len(sas) != 1 {
		t.Fatalf("%d SAs", len(sas))
	}
	sa := sas[0]
	_, err := sa.request(ctxT(t), func(id uint32) ([][]byte, error) {
		return sa.sealMessage(wire.INFORMATIONAL, id, false, payloads)
	})
	return err
}

// TestInformationalNotifies: every notify a peer sends in INFORMATIONAL is
// counted and logged, errors at WARN; none but AUTHENTICATION_FAILED ends
// the SA, which goes whichever role the sender has.
func TestInformationalNotifies(t *testing.T) {
	var logA, logB logLines
	p := newPair(t, func(_, _ *Connection, cfgA, cfgB *Config) {
		cfgA.Logger, cfgB.Logger = logA.logger(), logB.logger()
	})
	infos, err := p.a.InitiateNew(ctxT(t), "a-b")
	if err != nil {
		t.Fatal(err)
	}
	inSPI := infos[0].Children[0].SPIIn // A's inbound: B's outbound
	spi, err := hex.DecodeString(inSPI)
	if err != nil || len(spi) != 4 {
		t.Fatalf("SPI %q", inSPI)
	}
	if err := sendInformational(t, p.a,
		&wire.Notify{Code: wire.NotifyInvalidSPI, Data: spi},
		&wire.Notify{Code: wire.NotifyInvalidSyntax},
		&wire.Notify{Code: 40001}, // a private-use status type
	); err != nil {
		t.Fatal(err)
	}
	if n := len(p.b.SAs()); n != 1 {
		t.Fatalf("responder has %d IKE SAs after notifies that do not end it", n)
	}
	if l := logB.find(t, "peer received ESP for an SPI it does not know"); len(l) != 1 || l[0]["level"] != "WARN" || l[0]["ours"] != true ||
		l[0]["spi"] != inSPI {
		t.Errorf("INVALID_SPI log %v", l)
	}
	if l := logB.find(t, "error notify in INFORMATIONAL"); len(l) != 1 || l[0]["level"] != "WARN" || l[0]["notify"] != "INVALID_SYNTAX" {
		t.Errorf("INVALID_SYNTAX log %v", l)
	}
	if l := logB.find(t, "ignored a status notify"); len(l) != 1 || l[0]["level"] != "INFO" {
		t.Errorf("status notify log %v", l)
	}
	if got := p.b.Stats().NotifiesReceived; got["INVALID_SPI"] != 1 || got["INVALID_SYNTAX"] != 1 || len(got) != 3 {
		t.Errorf("counted %v", got)
	}

	// The responder of the IKE SA says AUTHENTICATION_FAILED: the
	// initiator's SA goes too.
	if err := sendInformational(t, p.b, &wire.Notify{Code: wire.NotifyAuthenticationFailed}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return len(p.a.SAs()) == 0 && len(p.memA.SAs()) == 0 })
	if l := logA.find(t, "peer refused our authentication"); len(l) != 1 || l[0]["level"] != "WARN" || l[0]["role"] != "initiator" {
		t.Errorf("initiator's log %v", l)
	}
	if got := p.a.Stats(); got.NotifiesReceived["AUTHENTICATION_FAILED"] != 1 || got.HandshakesFailed["authentication_failed"] != 1 {
		t.Errorf("initiator counted %v, %v", got.NotifiesReceived, got.HandshakesFailed)
	}
}
