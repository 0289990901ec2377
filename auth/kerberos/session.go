package kerberos

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iked/iked/auth"
	"github.com/iked/iked/ike/wire"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// session is one handshake. An initiator holds its service ticket from
// NewSession on and makes the subkey in Prove; a responder learns the
// subkey in Verify. Either way the two AUTH keys are derived at once and
// the subkey is wiped.
type session struct {
	m      *Method
	params *auth.Params
	tkt    *ticket // initiator only
	ki, kr []byte
	peer   Principal // the authenticated client (responder)
}

func (s *session) SAInitPayloads() []wire.Payload { return []wire.Payload{supportedNotify()} }

func (s *session) Prove(signedOctets []byte, peer []wire.Payload) ([]wire.Payload, error) {
	if s.params.Initiator {
		return s.proveInitiator(signedOctets, peer)
	}
	if s.kr == nil {
		return nil, errors.New("kerberos: responder has no key: Verify did not succeed")
	}
	return []wire.Payload{&wire.Auth{Method: AuthMethod, Data: MIC(s.params.PRF, s.kr, signedOctets)}}, nil
}

func (s *session) Verify(signedOctets []byte, peer []wire.Payload) error {
	if s.params.Initiator {
		return s.verifyResponder(signedOctets, peer)
	}
	return s.verifyInitiator(signedOctets, peer)
}

func (s *session) Close() {
	for _, k := range [][]byte{s.ki, s.kr} {
		clear(k)
	}
	s.ki, s.kr = nil, nil
}

// proveInitiator builds CERT(AP-REQ) and AUTH.
func (s *session) proveInitiator(signedOctets []byte, peerInit []wire.Payload) ([]wire.Payload, error) {
	m := s.m
	if !announced(peerInit) {
		stats.auth("initiator", "not_supported")
		return nil, auth.Failf("kerberos: the responder did not announce Kerberos support (no KERBEROS_SUPPORTED notify in IKE_SA_INIT)")
	}
	if s.params.PRF == nil {
		return nil, errors.New("kerberos: no PRF negotiated")
	}
	t := s.tkt
	now := m.clock().Add(m.creds.offset(m.service))
	et, err := crypto.GetEtype(t.key.KeyType)
	if err != nil {
		return nil, fmt.Errorf("kerberos: session key: %w", err)
	}
	subkey := make([]byte, et.GetKeyByteSize())
	if _, err := rand.Read(subkey); err != nil {
		return nil, err
	}
	defer clear(subkey)
	var seq [4]byte
	if _, err := rand.Read(seq[:]); err != nil {
		return nil, err
	}
	a := types.Authenticator{
		AVNO:      iana.PVNO,
		CRealm:    m.principal.Realm,
		CName:     m.principal.krb(),
		CTime:     now.Truncate(time.Second),
		Cusec:     now.Nanosecond() / 1000,
		SubKey:    types.EncryptionKey{KeyType: t.key.KeyType, KeyValue: subkey},
		SeqNumber: int64(binary.BigEndian.Uint32(seq[:]) & 0x3fffffff),
	}
	req, err := messages.NewAPReq(t.tkt, t.key, a)
	if err != nil {
		return nil, fmt.Errorf("kerberos: AP-REQ: %w", err)
	}
	der, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("kerberos: AP-REQ: %w", err)
	}
	s.ki, s.kr, err = DeriveKeys(s.params.PRF, subkey, s.params.SPIi, s.params.SPIr)
	if err != nil {
		return nil, err
	}
	return []wire.Payload{
		&wire.Cert{Encoding: CertEncoding, Data: der},
		&wire.Auth{Method: AuthMethod, Data: MIC(s.params.PRF, s.ki, signedOctets)},
	}, nil
}

// verifyResponder checks the responder's AUTH with Kr: only a holder of
// the service key could read the subkey.
func (s *session) verifyResponder(signedOctets []byte, peer []wire.Payload) error {
	m := s.m
	fail := func(label, format string, args ...any) error {
		stats.auth("initiator", label)
		return auth.Failf("kerberos: "+format, args...)
	}
	a, _ := wire.Find(peer, wire.PayloadAUTH).(*wire.Auth)
	if a == nil || a.Method != AuthMethod {
		return fail("malformed", "responder's AUTH is missing or not of method %d", AuthMethod)
	}
	idr, _ := wire.Find(peer, wire.PayloadIDr).(*wire.ID)
	if idr == nil || !names(idr, m.service) {
		return fail("identity_mismatch", "responder identity %s does not name the service principal %s", describeID(idr), m.service)
	}
	if s.kr == nil || !checkMIC(s.params.PRF, s.kr, signedOctets, a.Data) {
		return fail("auth_mismatch", "responder's AUTH does not verify: it does not hold the key of %s", m.service)
	}
	stats.auth("initiator", "")
	return nil
}

// refusal is a responder's refusal: a Failure with the KERBEROS_ERROR
// notify when there is a Kerberos error code.
func (s *session) refusal(code int32, label, format string, args ...any) error {
	if label == "" {
		label = ErrorName(code)
	}
	stats.auth("responder", label)
	f := auth.Failf("kerberos: "+format, args...)
	if code != 0 {
		f.Reason += " (" + ErrorName(code) + ")"
		f.Notifies = append(f.Notifies, ErrorNotify(code, s.m.clock()))
	}
	return f
}

// verifyInitiator checks the AP-REQ, the client principal and AUTH.
func (s *session) verifyInitiator(signedOctets []byte, peer []wire.Payload) error {
	m := s.m
	a, _ := wire.Find(peer, wire.PayloadAUTH).(*wire.Auth)
	if a == nil || a.Method != AuthMethod {
		return s.refusal(0, "malformed", "AUTH is missing or not of method %d", AuthMethod)
	}
	var token []byte
	for _, p := range peer {
		if c, ok := p.(*wire.Cert); ok && c.Encoding == CertEncoding {
			token = c.Data
			break
		}
	}
	if token == nil {
		return s.refusal(0, "malformed", "no Kerberos token (CERT payload of encoding %d) in IKE_AUTH", CertEncoding)
	}
	var req messages.APReq
	if err := req.Unmarshal(token); err != nil {
		return s.refusal(errorcode.KRB_AP_ERR_MSG_TYPE, "malformed", "the Kerberos token is not an AP-REQ: %v", err)
	}
	acc, apErr := m.checkAPReq(&req, s.params.PeerAddr, true)
	if apErr != nil {
		return s.refusal(apErr.code, apErr.label, "%s", apErr.msg)
	}
	client, sname, tk, au := acc.client, acc.service, acc.ticket, acc.auth
	defer clear(au.SubKey.KeyValue)
	idi, _ := wire.Find(peer, wire.PayloadIDi).(*wire.ID)
	if idi == nil || !names(idi, client) {
		return s.refusal(0, "identity_mismatch", "IDi %s does not name the client principal %s", describeID(idi), client)
	}
	ki, kr, err := DeriveKeys(s.params.PRF, au.SubKey.KeyValue, s.params.SPIi, s.params.SPIr)
	if err != nil {
		return err
	}
	if !checkMIC(s.params.PRF, ki, signedOctets, a.Data) {
		clear(ki)
		clear(kr)
		return s.refusal(0, "auth_mismatch", "AUTH of %s does not verify with the AP-REQ's subkey", client)
	}
	s.ki, s.kr, s.peer = ki, kr, client
	stats.auth("responder", "")
	logger().Debug("kerberos: client authenticated", "client", client.String(), "service", sname.String(), "kvno", tk.EncPart.KVNO)
	return nil
}

func (m *Method) servesPrincipal(p Principal) bool {
	for _, l := range m.localServices {
		if l == p {
			return true
		}
	}
	return false
}

func (m *Method) localServiceList() string {
	var s []string
	for _, l := range m.localServices {
		s = append(s, l.String())
	}
	return strings.Join(s, ", ")
}

// keyError is a failure to find the service key, with its Kerberos code.
type keyError struct {
	code int32
	msg  string
}

// serviceKey finds the key the ticket is encrypted with. When the keytab
// lacks that key version it is read again first: a rollover may just have
// been written within the file's timestamp granularity.
func (m *Method) serviceKey(tk *messages.Ticket) (types.EncryptionKey, *keyError) {
	kt, err := m.keytab.get()
	if err != nil {
		return types.EncryptionKey{}, &keyError{errorcode.KRB_AP_ERR_NOKEY, err.Error()}
	}
	key, _, err := kt.GetEncryptionKey(tk.SName, tk.Realm, tk.EncPart.KVNO, tk.EncPart.EType)
	if err == nil {
		return key, nil
	}
	if kt2, err := m.keytab.reload(); err == nil {
		kt = kt2
		if key, _, err := kt.GetEncryptionKey(tk.SName, tk.Realm, tk.EncPart.KVNO, tk.EncPart.EType); err == nil {
			return key, nil
		}
	}
	sname := Principal{Name: tk.SName.PrincipalNameString(), Realm: tk.Realm}
	var have []string
	for _, e := range kt.Entries {
		if e.Principal.Realm == tk.Realm && strings.Join(e.Principal.Components, "/") == sname.Name && e.Key.KeyType == tk.EncPart.EType {
			have = append(have, fmt.Sprint(e.KVNO))
		}
	}
	if len(have) == 0 {
		return key, &keyError{errorcode.KRB_AP_ERR_NOKEY, fmt.Sprintf("the keytab %s has no key of enctype %d for %s", m.keytab.path, tk.EncPart.EType, sname)}
	}
	return key, &keyError{errorcode.KRB_AP_ERR_BADKEYVER, fmt.Sprintf("the ticket for %s is encrypted with key version %d, the keytab %s holds version(s) %s: was the key changed on the KDC without updating the keytab?",
		sname, tk.EncPart.KVNO, m.keytab.path, strings.Join(have, ", "))}
}

// names reports whether an identity payload names principal p: ID_KEY_ID
// or ID_RFC822_ADDR holding "name@REALM" exactly, or ID_FQDN holding the
// host of a "host/<fqdn>" principal (case-insensitively, as DNS names).
func names(id *wire.ID, p Principal) bool {
	switch id.IDType {
	case wire.IDKeyID, wire.IDRFC822Addr:
		return bytes.Equal(id.Data, []byte(p.String()))
	case wire.IDFQDN:
		host, ok := strings.CutPrefix(p.Name, "host/")
		return ok && strings.EqualFold(host, string(id.Data))
	}
	return false
}

func describeID(id *wire.ID) string {
	if id == nil {
		return "(none)"
	}
	switch id.IDType {
	case wire.IDFQDN:
		return "fqdn:" + string(id.Data)
	case wire.IDKeyID:
		return "keyid:" + string(id.Data)
	case wire.IDRFC822Addr:
		return "email:" + string(id.Data)
	}
	return fmt.Sprintf("type %d", id.IDType)
}

// RetryAfter implements auth.Retrier: after AUTHENTICATION_FAILED with a
// KERBEROS_ERROR that a fresh ticket (or the responder's clock) can cure,
// it drops the cached ticket and asks for one more handshake.
func (s *session) RetryAfter(notifies []*wire.Notify) bool {
	m := s.m
	var n *wire.Notify
	for _, x := range notifies {
		if x.Code == NotifyError {
			n = x
		}
	}
	if n == nil {
		stats.auth("initiator", "refused")
		logger().Warn("kerberos: the responder refused our AP-REQ without a Kerberos error code", "service", m.service.String())
		return false
	}
	code, serverTime, err := ParseErrorNotify(n)
	if err != nil {
		stats.auth("initiator", "malformed")
		logger().Warn("kerberos: malformed KERBEROS_ERROR notify", "err", err)
		return false
	}
	name := ErrorName(code)
	stats.auth("initiator", name)
	return m.retryAfter(code, serverTime)
}

// retryAfter decides, for a Kerberos error code the responder refused our
// AP-REQ with (and its clock, if it sent one), whether a fresh ticket or
// the responder's clock can cure it; if so it prepares the one retry.
func (m *Method) retryAfter(code int32, serverTime time.Time) bool {
	name := ErrorName(code)
	retry := false
	switch code {
	case errorcode.KRB_AP_ERR_TKT_EXPIRED, errorcode.KRB_AP_ERR_TKT_NYV, errorcode.KRB_AP_ERR_BADKEYVER, errorcode.KRB_AP_ERR_MODIFIED, errorcode.KRB_AP_ERR_BAD_INTEGRITY:
		m.creds.invalidate(m.service, code != errorcode.KRB_AP_ERR_TKT_EXPIRED)
		retry = true
	case errorcode.KRB_AP_ERR_SKEW:
		if m.resync && !serverTime.IsZero() {
			off := serverTime.Sub(m.clock())
			if off.Abs() <= 24*time.Hour {
				m.creds.setOffset(m.service, off)
				retry = true
			}
		}
	}
	logger().Warn("kerberos: the responder refused our AP-REQ", "service", m.service.String(), "error", name, "code", code, "retry", retry)
	if retry {
		stats.retries.Add(1)
	}
	return retry
}
