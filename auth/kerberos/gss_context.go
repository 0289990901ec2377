package kerberos

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"time"

	"github.com/iked/iked/auth"
	"github.com/jcmturner/gofork/encoding/asn1"
	"github.com/jcmturner/gokrb5/v8/asn1tools"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana"
	"github.com/jcmturner/gokrb5/v8/iana/asnAppTag"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/iana/msgtype"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// GSSContext is one security context of the Kerberos V5 GSS-API mechanism
// (RFC 1964, RFC 4121) between this host and a peer: what IKEv1's GSS-API
// authentication method (draft-ietf-ipsec-isakmp-gss-auth) runs in Main
// Mode. It plays gss_init_sec_context or gss_accept_sec_context through
// Step, keeps the tokens each side sent (the IKEv1 HASHes cover them), and
// once established wraps and unwraps messages with the context key.
//
// Initiator: Step(nil) gives the initial context token (the AP-REQ, with
// mutual authentication requested); Step(the acceptor's token) checks the
// AP-REP and establishes the context. Acceptor: Step(initial token) checks
// the AP-REQ (every check of the IKEv2 method, the replay cache, the
// allowed principals) and returns the AP-REP; it is then established. Two
// messages in all, as Kerberos needs; a KRB-ERROR token answers a refusal.
//
// A GSSContext is used by one goroutine at a time.
type GSSContext struct {
	m         *Method
	initiator bool
	peerAddr  netip.AddrPort

	// Initiator's credential, from NewGSSInitiator.
	tkt *ticket

	// Context state, set as Step progresses.
	oid          []byte // mechanism OID the peer used (acceptor) or we sent
	established  bool
	failed       bool
	peer         Principal // the client (acceptor) or the service (initiator)
	session      types.EncryptionKey
	subkey       types.EncryptionKey // initiator's authenticator subkey, if any
	acceptorKey  types.EncryptionKey // acceptor's subkey from the AP-REP, if any
	ctime        time.Time           // the authenticator's, echoed in the AP-REP
	cusec        int
	sendSeq      uint64
	recvSeq      uint64
	sent, recvd  [][]byte
	kerberosCode int32 // of the KRB-ERROR received (initiator) or sent (acceptor)
	serverTime   time.Time
}

// NewGSSInitiator starts an initiator's context towards the configured
// service principal (option service). It gets the service ticket now,
// from the cache or the KDC, so that a KDC problem ends the attempt before
// the peer is sent anything.
func (m *Method) NewGSSInitiator(peer netip.AddrPort) (*GSSContext, error) {
	if m.service == (Principal{}) {
		return nil, errors.New("kerberos: no service principal configured for the peer (option service)")
	}
	t, err := m.creds.get(m.service)
	if err != nil {
		reason := "kdc_error"
		if errors.Is(err, errKDCUnreachable) {
			reason = "kdc_unreachable"
		}
		stats.auth("initiator", reason)
		return nil, err
	}
	return &GSSContext{m: m, initiator: true, peerAddr: peer, tkt: t, peer: m.service, oid: oidKRB5}, nil
}

// NewGSSAcceptor starts an acceptor's context for a peer at addr.
func (m *Method) NewGSSAcceptor(peer netip.AddrPort) *GSSContext {
	return &GSSContext{m: m, peerAddr: peer}
}

// Established reports whether the context is complete: no more tokens
// are needed and Wrap and Unwrap work.
func (c *GSSContext) Established() bool { return c.established }

// Initiator reports the role.
func (c *GSSContext) Initiator() bool { return c.initiator }

// Peer is the authenticated peer principal once established: the client
// for an acceptor, the service for an initiator.
func (c *GSSContext) Peer() Principal { return c.peer }

// Sent is the concatenation of the tokens this side produced, in order;
// Received those the peer sent. IKEv1's HASH_I and HASH_R cover them.
func (c *GSSContext) Sent() []byte { return concat(c.sent) }

// Received is the concatenation of the tokens received, in order.
func (c *GSSContext) Received() []byte { return concat(c.recvd) }

func concat(bs [][]byte) []byte {
	var out []byte
	for _, b := range bs {
		out = append(out, b...)
	}
	return out
}

// KerberosError is the Kerberos error code of the KRB-ERROR this context
// received (initiator) or answered with (acceptor), and the acceptor's
// clock from it; zero when there was none.
func (c *GSSContext) KerberosError() (code int32, serverTime time.Time) {
	return c.kerberosCode, c.serverTime
}

// Close wipes the context's keys.
func (c *GSSContext) Close() {
	for _, k := range []*types.EncryptionKey{&c.session, &c.subkey, &c.acceptorKey} {
		clear(k.KeyValue)
		k.KeyValue = nil
	}
}

// Step is gss_init_sec_context or gss_accept_sec_context: it takes the
// peer's last token (nil for the initiator's first call) and returns the
// token to send, if any. A refusal is an *auth.Failure; an acceptor's
// refusal comes with a KRB-ERROR token to send to the peer.
func (c *GSSContext) Step(in []byte) ([]byte, error) {
	switch {
	case c.failed:
		return nil, errors.New("kerberos: the GSS-API context has failed")
	case c.established:
		return nil, errors.New("kerberos: the GSS-API context is already established")
	case c.initiator && len(c.sent) == 0:
		if in != nil {
			return nil, errors.New("kerberos: an initiator's first step takes no token")
		}
		return c.initialToken()
	case c.initiator:
		return nil, c.readReply(in)
	default:
		return c.accept(in)
	}
}

// initialToken builds the krb5 initial context token: a framed AP-REQ
// with mutual-required, an authenticator with the RFC 4121 §4.1.1
// checksum, a fresh subkey of the session key's enctype and a random
// sequence number.
func (c *GSSContext) initialToken() ([]byte, error) {
	m, t := c.m, c.tkt
	now := m.clock().Add(m.creds.offset(m.service))
	et, err := crypto.GetEtype(t.key.KeyType)
	if err != nil {
		return nil, fmt.Errorf("kerberos: session key: %w", err)
	}
	if !isCFX(t.key.KeyType) && t.key.KeyType != 23 {
		return nil, fmt.Errorf("kerberos: the session key's enctype %d has no GSS-API per-message tokens in iked (AES and RC4-HMAC do)", t.key.KeyType)
	}
	sub := make([]byte, et.GetKeyByteSize())
	if _, err := rand.Read(sub); err != nil {
		return nil, err
	}
	seq, err := randomSeq()
	if err != nil {
		return nil, err
	}
	a := types.Authenticator{
		AVNO:      iana.PVNO,
		CRealm:    m.principal.Realm,
		CName:     m.principal.krb(),
		Cksum:     types.Checksum{CksumType: chksumGSS, Checksum: gssChecksum(initiatorFlags)},
		CTime:     now.Truncate(time.Second),
		Cusec:     now.Nanosecond() / 1000,
		SubKey:    types.EncryptionKey{KeyType: t.key.KeyType, KeyValue: sub},
		SeqNumber: int64(seq),
	}
	req, err := messages.NewAPReq(t.tkt, t.key, a)
	if err != nil {
		return nil, fmt.Errorf("kerberos: AP-REQ: %w", err)
	}
	types.SetFlag(&req.APOptions, flags.APOptionMutualRequired)
	der, err := req.Marshal()
	if err != nil {
		return nil, fmt.Errorf("kerberos: AP-REQ: %w", err)
	}
	c.session = types.EncryptionKey{KeyType: t.key.KeyType, KeyValue: append([]byte(nil), t.key.KeyValue...)}
	c.subkey = a.SubKey
	c.ctime, c.cusec = a.CTime, a.Cusec
	c.sendSeq = uint64(seq)
	tok := frameToken(c.oid, tokAPReq, der)
	c.sent = append(c.sent, tok)
	return tok, nil
}

// randomSeq is an initial sequence number: random, below 2^30 as MIT
// makes them (old peers kept them in signed 32-bit integers).
func randomSeq() (uint32, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return 0, err
	}
	return binary.BigEndian.Uint32(b[:]) & 0x3fffffff, nil
}

// initiatorFail records an initiator's failure.
func (c *GSSContext) initiatorFail(label, format string, args ...any) error {
	c.failed = true
	stats.auth("initiator", label)
	return auth.Failf("kerberos: "+format, args...)
}

// readReply checks the acceptor's answer: an AP-REP proving that it holds
// the service key (it decrypts with the session key and echoes our
// authenticator's time), or a KRB-ERROR saying why it refused.
func (c *GSSContext) readReply(in []byte) error {
	c.recvd = append(c.recvd, append([]byte(nil), in...))
	f, err := parseFramed(in)
	if err != nil {
		return c.initiatorFail("malformed", "the acceptor's GSS token: %v", err)
	}
	switch f.tokID {
	case tokError:
		var ke messages.KRBError
		if err := ke.Unmarshal(f.body); err != nil {
			return c.initiatorFail("malformed", "the acceptor's KRB-ERROR token does not parse: %v", err)
		}
		c.kerberosCode, c.serverTime = ke.ErrorCode, ke.STime.Add(time.Duration(ke.Susec)*time.Microsecond)
		name := ErrorName(ke.ErrorCode)
		text := ""
		if ke.EText != "" {
			text = ": " + ke.EText
		}
		return c.initiatorFail(name, "%s refused our AP-REQ with %s (%d)%s", c.m.service, name, ke.ErrorCode, text)
	case tokAPRep:
	default:
		return c.initiatorFail("malformed", "the acceptor's GSS token has TOK_ID %04x, want an AP-REP (0200)", f.tokID)
	}
	var rep messages.APRep
	if err := rep.Unmarshal(f.body); err != nil {
		return c.initiatorFail("malformed", "the acceptor's AP-REP does not parse: %v", err)
	}
	if !cipherLongEnough(c.session.KeyType, rep.EncPart.Cipher) {
		return c.initiatorFail("auth_mismatch", "the AP-REP of %s is too short to decrypt", c.m.service)
	}
	plain, err := crypto.DecryptEncPart(rep.EncPart, c.session, keyusage.AP_REP_ENCPART)
	if err != nil {
		return c.initiatorFail("auth_mismatch", "the AP-REP does not decrypt with the session key: the acceptor does not hold the key of %s", c.m.service)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(plain); err != nil {
		return c.initiatorFail("malformed", "the AP-REP's encrypted part does not parse: %v", err)
	}
	if !part.CTime.Equal(c.ctime) || part.Cusec != c.cusec {
		return c.initiatorFail("auth_mismatch", "the AP-REP of %s echoes a time other than our authenticator's", c.m.service)
	}
	if len(part.Subkey.KeyValue) > 0 {
		if _, err := crypto.GetEtype(part.Subkey.KeyType); err != nil {
			return c.initiatorFail("malformed", "the AP-REP's subkey is of an unsupported enctype %d", part.Subkey.KeyType)
		}
		// MIT's rule (init_sec_context.c): the acceptor's subkey replaces
		// ours for RFC 4121 contexts, and for RFC 1964 ones only when its
		// enctype differs.
		if isCFX(c.subkey.KeyType) || part.Subkey.KeyType != c.subkey.KeyType {
			c.acceptorKey = part.Subkey
		}
	}
	c.recvSeq = uint64(uint32(part.SequenceNumber))
	c.established = true
	stats.auth("initiator", "")
	logger().Debug("kerberos: GSS-API context established", "service", c.m.service.String(), "enctype", c.contextKey().KeyType)
	return nil
}

// accept checks the initiator's token and answers it.
func (c *GSSContext) accept(in []byte) ([]byte, error) {
	m := c.m
	if len(c.recvd) > 0 {
		return nil, errors.New("kerberos: an acceptor takes one token")
	}
	c.recvd = append(c.recvd, append([]byte(nil), in...))
	f, err := parseFramed(in)
	if err != nil {
		return c.refuse(errorcode.KRB_AP_ERR_MSG_TYPE, "malformed", nil, "the initiator's GSS token: %v", err)
	}
	c.oid = f.oid
	if f.tokID != tokAPReq {
		return c.refuse(errorcode.KRB_AP_ERR_MSG_TYPE, "malformed", nil, "the initiator's GSS token has TOK_ID %04x, want an AP-REQ (0100)", f.tokID)
	}
	var req messages.APReq
	if err := req.Unmarshal(f.body); err != nil {
		return c.refuse(errorcode.KRB_AP_ERR_MSG_TYPE, "malformed", nil, "the initiator's token is not an AP-REQ: %v", err)
	}
	acc, apErr := m.checkAPReq(&req, c.peerAddr, false)
	if apErr != nil {
		return c.refuse(apErr.code, apErr.label, &req, "%s", apErr.msg)
	}
	au := acc.auth
	if au.Cksum.CksumType != chksumGSS {
		clear(au.SubKey.KeyValue)
		return c.refuse(errorcode.KRB_AP_ERR_INAPP_CKSUM, "malformed", &req, "the authenticator of %s has checksum type %d, not the GSS-API one (0x8003)", acc.client, au.Cksum.CksumType)
	}
	gflags, err := parseGSSChecksum(au.Cksum.Checksum)
	if err != nil {
		clear(au.SubKey.KeyValue)
		return c.refuse(errorcode.KRB_AP_ERR_INAPP_CKSUM, "malformed", &req, "%s: %v", acc.client, err)
	}
	c.session = acc.ticket.DecryptedEncPart.Key
	c.subkey = au.SubKey
	key := c.contextKey()
	if !isCFX(key.KeyType) && key.KeyType != 23 {
		c.Close()
		return c.refuse(errorcode.KDC_ERR_ETYPE_NOSUPP, "", &req, "the context key of %s is of enctype %d, which has no GSS-API per-message tokens in iked (AES and RC4-HMAC do)", acc.client, key.KeyType)
	}
	c.peer = acc.client
	c.recvSeq = uint64(uint32(au.SeqNumber))
	c.ctime, c.cusec = au.CTime, au.Cusec
	if gflags&flagMutual == 0 && !types.IsFlagSet(&req.APOptions, flags.APOptionMutualRequired) {
		// Without mutual authentication there is no AP-REP and the
		// acceptor's Wrap proves nothing the peer checked: IKE needs it.
		c.Close()
		return c.refuse(errorcode.KRB_AP_ERR_METHOD, "malformed", &req, "%s did not ask for mutual authentication", acc.client)
	}
	rep, err := c.apRep()
	if err != nil {
		c.Close()
		return nil, err
	}
	c.established = true
	stats.auth("responder", "")
	logger().Debug("kerberos: GSS-API client authenticated", "client", acc.client.String(), "service", acc.service.String(),
		"kvno", acc.ticket.EncPart.KVNO, "enctype", c.contextKey().KeyType)
	return rep, nil
}

// apRep builds the acceptor's answer: an AP-REP whose encrypted part
// echoes the authenticator's time, carries our sequence number and, for
// an RFC 4121 context, a fresh acceptor subkey (as MIT's acceptor does),
// which then keys both directions' tokens.
func (c *GSSContext) apRep() ([]byte, error) {
	seq, err := randomSeq()
	if err != nil {
		return nil, err
	}
	part := messages.EncAPRepPart{CTime: c.ctime, Cusec: c.cusec, SequenceNumber: int64(seq)}
	if k := c.contextKey(); isCFX(k.KeyType) {
		et, err := crypto.GetEtype(k.KeyType)
		if err != nil {
			return nil, err
		}
		sub := make([]byte, et.GetKeyByteSize())
		if _, err := rand.Read(sub); err != nil {
			return nil, err
		}
		part.Subkey = types.EncryptionKey{KeyType: k.KeyType, KeyValue: sub}
	}
	plain, err := asn1.Marshal(part)
	if err != nil {
		return nil, fmt.Errorf("kerberos: AP-REP: %w", err)
	}
	plain = asn1tools.AddASNAppTag(plain, asnAppTag.EncAPRepPart)
	ed, err := crypto.GetEncryptedData(plain, c.session, keyusage.AP_REP_ENCPART, 0)
	clear(plain)
	if err != nil {
		return nil, fmt.Errorf("kerberos: AP-REP: %w", err)
	}
	der, err := asn1.Marshal(messages.APRep{PVNO: iana.PVNO, MsgType: msgtype.KRB_AP_REP, EncPart: ed})
	if err != nil {
		return nil, fmt.Errorf("kerberos: AP-REP: %w", err)
	}
	c.acceptorKey = part.Subkey
	c.sendSeq = uint64(seq)
	tok := frameToken(c.oid, tokAPRep, asn1tools.AddASNAppTag(der, asnAppTag.APREP))
	c.sent = append(c.sent, tok)
	return tok, nil
}

// refuse records an acceptor's refusal and builds the KRB-ERROR token
// that tells the initiator why (as MIT's acceptor answers), with our
// clock so that a client refused for skew can correct its own.
func (c *GSSContext) refuse(code int32, label string, req *messages.APReq, format string, args ...any) ([]byte, error) {
	c.failed = true
	c.kerberosCode = code
	if label == "" {
		label = ErrorName(code)
	}
	stats.auth("responder", label)
	f := auth.Failf("kerberos: "+format, args...)
	if code != 0 {
		f.Reason += " (" + ErrorName(code) + ")"
	}
	sname, realm := c.m.principal.krb(), c.m.principal.Realm
	if req != nil && len(req.Ticket.SName.NameString) > 0 {
		sname, realm = req.Ticket.SName, req.Ticket.Realm
	}
	ke := messages.NewKRBError(sname, realm, code, "")
	now := c.m.clock()
	ke.STime, ke.Susec = now.Truncate(time.Second), now.Nanosecond()/1000
	c.serverTime = ke.STime
	der, err := ke.Marshal()
	if err != nil {
		return nil, f
	}
	tok := frameToken(c.oidOrDefault(), tokError, der)
	c.sent = append(c.sent, tok)
	return tok, f
}

func (c *GSSContext) oidOrDefault() []byte {
	if c.oid != nil {
		return c.oid
	}
	return oidKRB5
}

// contextKey is the key the initiator's side of the context uses: its
// authenticator subkey, or the ticket session key without one.
func (c *GSSContext) contextKey() types.EncryptionKey {
	if len(c.subkey.KeyValue) > 0 {
		return c.subkey
	}
	return c.session
}

// tokenKey is the key this context's tokens are made with: the
// acceptor's subkey when there is one, as RFC 4121 §2 prescribes.
func (c *GSSContext) tokenKey() (types.EncryptionKey, bool) {
	if len(c.acceptorKey.KeyValue) > 0 {
		return c.acceptorKey, true
	}
	return c.contextKey(), false
}

// Wrap is gss_wrap with confidentiality, as racoon calls it for the IKEv1
// HASH: an RFC 4121 token for AES (and other newer) keys, an RFC 4757
// token for RC4-HMAC keys.
func (c *GSSContext) Wrap(msg []byte) ([]byte, error) {
	if !c.established {
		return nil, errors.New("kerberos: Wrap before the GSS-API context is established")
	}
	key, acceptorSubkey := c.tokenKey()
	seq := c.sendSeq
	c.sendSeq++
	if isCFX(key.KeyType) {
		return cfxWrap(key, msg, seq, true, !c.initiator, acceptorSubkey)
	}
	return rc4Wrap(c.oidOrDefault(), key.KeyValue, msg, uint32(seq), true, !c.initiator, nil)
}

// Unwrap is gss_unwrap: it checks a token the peer wrapped (sealed or
// not) and returns the message. The sequence number is not enforced:
// IKEv1 wraps one message per direction, bound to the exchange by the
// HASH it carries.
func (c *GSSContext) Unwrap(tok []byte) ([]byte, error) {
	if !c.established {
		return nil, errors.New("kerberos: Unwrap before the GSS-API context is established")
	}
	fromAcceptor := c.initiator
	if len(tok) > 0 && tok[0] == 0x05 {
		msg, _, err := cfxUnwrap(tok, fromAcceptor, func(acceptorSubkey bool) (types.EncryptionKey, error) {
			if !acceptorSubkey {
				return c.contextKey(), nil
			}
			if len(c.acceptorKey.KeyValue) == 0 {
				return types.EncryptionKey{}, errors.New("RFC 4121 Wrap token names an acceptor subkey this context does not have")
			}
			return c.acceptorKey, nil
		})
		if err != nil {
			return nil, fmt.Errorf("kerberos: %w", err)
		}
		c.recvSeq++
		return msg, nil
	}
	key, _ := c.tokenKey()
	if key.KeyType != 23 {
		return nil, fmt.Errorf("kerberos: an RFC 1964 Wrap token for a context of enctype %d", key.KeyType)
	}
	msg, _, err := rc4Unwrap(tok, key.KeyValue, fromAcceptor)
	if err != nil && len(c.acceptorKey.KeyValue) > 0 {
		// Heimdal keys RC4 tokens with the acceptor's subkey whenever
		// there is one: try ours too.
		msg, _, err = rc4Unwrap(tok, c.contextKey().KeyValue, fromAcceptor)
	}
	if err != nil {
		return nil, fmt.Errorf("kerberos: %w", err)
	}
	c.recvSeq++
	return msg, nil
}

// RetryAfter tells an initiator refused with a KRB-ERROR whether one new
// attempt can succeed: after a key change or an expired ticket (the ticket
// is dropped) or, with clock_resync, after a skew refusal that carried the
// acceptor's clock (adopted for this service). As for the IKEv2 method, a
// caller retries at most once.
func (c *GSSContext) RetryAfter() bool {
	if !c.initiator || c.kerberosCode == 0 {
		return false
	}
	return c.m.retryAfter(c.kerberosCode, c.serverTime)
}
