package ikev1

import (
	"bytes"
	"crypto/md5" // #nosec G501 -- vendor IDs are MD5 digests of fixed strings by definition (draft-ietf-ipsec-isakmp-gss-auth), not a security function
	"crypto/subtle"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"unicode/utf16"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/transform"
)

// GSS-API authentication (draft-ietf-ipsec-isakmp-gss-auth-07), the
// "Kerberos V5" method of Windows' IKEv1, as racoon implements it
// (docs/kerberos.md §8):
//
//	1  SA(auth 65001, GSS_ID_i), VID("GSSAPI")  -->
//	2                                           <-- SA(auth 65001, GSS_ID_r), VID("GSSAPI")
//	3  KE, Ni, GSS(initial context token)       -->
//	4                                           <-- KE, Nr, GSS(AP-REP, or a KRB-ERROR refusal)
//	5  IDii, HASH(Wrap(HASH_I))                 -->
//	6                                           <-- IDir, HASH(Wrap(HASH_R))
//
// SKEYID is the signature methods' (RFC 2409 §5.1); HASH_I and HASH_R
// cover, after the ID payload, the sender's GSS_ID (when both sides sent
// one) and the GSS tokens the sender sent; messages 5 and 6 carry them
// wrapped (gss_wrap with confidentiality) instead of in the clear. The
// mechanism itself (tokens, Wrap, the checks of the AP-REQ) is in the
// credential, auth/kerberos, reached through GSSProvider.

// GSSProvider is a connection credential that runs GSS-API security
// contexts: auth/kerberos's Method. Its contexts are returned as any, so
// that this package imports no credential package; they implement
// GSSContext.
type GSSProvider interface {
	// PrepareGSS gets what an initiator's context needs from elsewhere
	// (the service ticket, from the cache or a KDC). The engine calls it
	// without locks before Main Mode's first message, so that a KDC
	// problem ends the attempt before the peer hears anything.
	PrepareGSS() error
	// NewGSSContext starts a context towards (initiator) or from the
	// peer at addr. It must not block: an initiator's uses what
	// PrepareGSS got.
	NewGSSContext(initiator bool, peer netip.AddrPort) (any, error)
	// GSSID is this side's principal as its GSS_ID attribute names it.
	GSSID(initiator bool) string
}

// GSSContext is one GSS-API security context (auth/kerberos's
// GSSContext).
type GSSContext interface {
	// Step is gss_init_sec_context / gss_accept_sec_context: the peer's
	// last token in (nil for an initiator's first), the token to send out.
	// A refusal returns an error, and an acceptor's also a token telling
	// the peer why (a KRB-ERROR).
	Step(in []byte) ([]byte, error)
	// Established reports that no more tokens are needed.
	Established() bool
	// Sent and Received are the tokens each way, concatenated.
	Sent() []byte
	Received() []byte
	// Wrap and Unwrap are gss_wrap (with confidentiality) and gss_unwrap.
	Wrap(msg []byte) ([]byte, error)
	Unwrap(tok []byte) ([]byte, error)
	// PeerName is the authenticated peer principal.
	PeerName() string
	// RetryAfter, for an initiator the acceptor refused, prepares the next
	// attempt when a fresh ticket or the acceptor's clock can cure the
	// refusal, and reports whether it can.
	RetryAfter() bool
	// Close wipes the context's keys.
	Close()
}

// attrGSSIDWin2000 is the GSS_ID attribute number Windows 2000 was seen
// sending besides 16384 (ike-scan's notes); read, never sent.
const attrGSSIDWin2000 uint16 = 32001

var (
	vidGSSAPI     = md5Sum("GSSAPI")
	vidGSSAPILong = md5Sum("A GSS-API Authentication Method for IKE")
	// vidGSSAPILongNL is the draft's string with a newline, a second form
	// Wireshark lists.
	vidGSSAPILongNL = md5Sum("A GSS-API Authentication Method for IKE\n")
	// vidMSNT5 is MD5("MS NT5 ISAKMPOAKLEY"), which Windows sends followed
	// by four octets of version.
	vidMSNT5 = md5Sum("MS NT5 ISAKMPOAKLEY")
)

// windowsVersions name the versions of the MS NT5 vendor ID.
var windowsVersions = map[uint32]string{2: "Windows 2000", 3: "Windows XP", 4: "Windows Server 2003", 5: "Windows Vista",
	6: "Windows Server 2008", 7: "Windows 7", 8: "Windows Server 2008 R2"}

// gssVendorName names a GSS-API or Windows vendor ID for the log, or "".
func gssVendorName(v []byte) string {
	switch {
	case bytes.Equal(v, vidGSSAPI):
		return "GSSAPI"
	case bytes.Equal(v, vidGSSAPILong), bytes.Equal(v, vidGSSAPILongNL):
		return "A GSS-API Authentication Method for IKE"
	case bytes.HasPrefix(v, vidMSNT5) && len(v) == 20:
		n := binary.BigEndian.Uint32(v[16:])
		if name, ok := windowsVersions[n]; ok {
			return fmt.Sprintf("MS NT5 ISAKMPOAKLEY version %d (%s)", n, name)
		}
		return fmt.Sprintf("MS NT5 ISAKMPOAKLEY version %d", n)
	case bytes.Equal(v, vidMSNT5):
		return "MS NT5 ISAKMPOAKLEY"
	}
	return ""
}

func md5Sum(s string) []byte {
	h := md5.Sum([]byte(s)) // #nosec G401 -- a vendor ID, an MD5 digest of a fixed string by definition
	return h[:]
}

// gssAuth is the GSS-API method (65001) for credentials that are a
// GSSProvider.
type gssAuth struct{}

func (gssAuth) MethodFor(creds any) uint16 {
	if _, ok := creds.(GSSProvider); ok {
		return isakmp.AuthGSSAPI
	}
	return 0
}

func (gssAuth) Name(uint16) string { return "kerberos" }

// VendorIDs announce the method: without one of them a peer reads 65001
// as XAUTHInitPreShared. Windows 2000 recognises "GSSAPI"; racoon both.
func (gssAuth) VendorIDs() [][]byte { return [][]byte{vidGSSAPI, vidGSSAPILong} }

// PrepareInitiator gets the service ticket before Main Mode starts.
func (gssAuth) PrepareInitiator(creds any) error {
	p, ok := creds.(GSSProvider)
	if !ok {
		return fmt.Errorf("no GSS-API credentials")
	}
	return p.PrepareGSS()
}

// TransformAttributes adds this side's GSS_ID to its transforms: always
// as initiator, and as responder when the initiator sent one (racoon's
// rule; the HASHes cover the GSS_IDs only when both were sent).
func (gssAuth) TransformAttributes(creds any, initiator bool, peer *isakmp.Transform) []isakmp.Attribute {
	p, ok := creds.(GSSProvider)
	if !ok || (!initiator && peerGSSID(peer) == "") {
		return nil
	}
	id := p.GSSID(initiator)
	if id == "" {
		return nil
	}
	return []isakmp.Attribute{{Type: isakmp.AttrGSSIdentity, Value: encodeGSSID(id)}}
}

func (gssAuth) NewExchange(p *AuthParams) (AuthExchange, error) {
	prov, ok := p.Creds.(GSSProvider)
	if !ok {
		return nil, fmt.Errorf("no GSS-API credentials")
	}
	c, err := prov.NewGSSContext(p.Initiator, p.PeerAddr)
	if err != nil {
		return nil, authFailf(isakmp.AuthenticationFailed, "%s", reasonOf(err))
	}
	ctx, ok := c.(GSSContext)
	if !ok {
		return nil, fmt.Errorf("GSS-API credentials returned a %T, not a GSSContext", c)
	}
	x := &gssExchange{ctx: ctx, initiator: p.Initiator, peerID: peerGSSID(p.Transform)}
	// Only both GSS_IDs together enter the HASHes. The initiator always
	// sends one; p.Transform is the responder's choice (with its GSS_ID
	// or not) for an initiator and the initiator's offer for a responder,
	// which answers with its own exactly when the offer had one.
	if x.peerID != "" {
		x.ownID = prov.GSSID(p.Initiator)
	}
	if x.ownID == "" {
		x.peerID = ""
	}
	return x, nil
}

// gssExchange is the GSS-API method's part in one Main Mode.
type gssExchange struct {
	ctx       GSSContext
	initiator bool
	// ownID and peerID are the GSS_IDs, when both sides sent one.
	ownID, peerID string
}

// KEPayloads carries the initial context token (initiator, message 3) or
// the acceptor's answer (responder, message 4). A responder that refuses
// the initiator returns the KRB-ERROR token with the error: the engine
// sends it in message 4, so that the initiator learns why, and ends.
func (x *gssExchange) KEPayloads(peer []isakmp.Payload) ([]isakmp.Payload, error) {
	var in []byte
	if !x.initiator {
		g, _ := isakmp.Find(peer, isakmp.PayloadGSS).(*isakmp.GSS)
		if g == nil {
			return nil, authFailf(isakmp.AuthenticationFailed, "GSS-API: message 3 carries no GSS token payload")
		}
		in = g.Token
	}
	out, err := x.ctx.Step(in)
	var ps []isakmp.Payload
	if len(out) > 0 {
		ps = []isakmp.Payload{&isakmp.GSS{Token: out}}
	}
	if err != nil {
		return ps, authFailf(isakmp.AuthenticationFailed, "%s", reasonOf(err))
	}
	if !x.initiator && !x.ctx.Established() {
		return nil, authFailf(isakmp.AuthenticationFailed, "GSS-API: the mechanism needs more than one round trip, which iked does not support")
	}
	return ps, nil
}

// PeerKE reads the acceptor's answer in message 4: the AP-REP that
// proves it holds the service key, or its refusal, after which the next
// attempt is prepared (a fresh ticket, the acceptor's clock) when that
// can help.
func (x *gssExchange) PeerKE(peer []isakmp.Payload) error {
	g, _ := isakmp.Find(peer, isakmp.PayloadGSS).(*isakmp.GSS)
	if g == nil {
		return authFailf(isakmp.AuthenticationFailed, "GSS-API: message 4 carries no GSS token payload (does the responder speak GSS-API?)")
	}
	if _, err := x.ctx.Step(g.Token); err != nil {
		if x.ctx.RetryAfter() {
			return authFailf(isakmp.AuthenticationFailed, "%s; the next attempt uses a fresh ticket or the acceptor's clock", reasonOf(err))
		}
		return authFailf(isakmp.AuthenticationFailed, "%s", reasonOf(err))
	}
	if !x.ctx.Established() {
		return authFailf(isakmp.AuthenticationFailed, "GSS-API: the mechanism needs more than one round trip, which iked does not support")
	}
	return nil
}

func (*gssExchange) SKEYID(prf *transform.PRF, ni, nr, gxy []byte) ([]byte, error) {
	return skeyidSig(prf, ni, nr, gxy), nil
}

func (*gssExchange) HashPRF(p *transform.PRF) *transform.PRF { return p }

// LocalIdentity is the IP address, as Windows and racoon identify a
// Kerberos peer in Main Mode: the principal is in the tokens.
func (*gssExchange) LocalIdentity() Identity { return Identity{} }

// HashSuffix is what HASH_I or HASH_R covers after the ID payload: the
// sender's GSS_ID as octets of Latin-1 (racoon keeps names in Latin-1),
// when both sides sent one, and the tokens the sender sent.
func (x *gssExchange) HashSuffix(own bool) []byte {
	id, toks := x.peerID, x.ctx.Received()
	if own {
		id, toks = x.ownID, x.ctx.Sent()
	}
	var b []byte
	if x.ownID != "" && x.peerID != "" {
		b = latin1(id)
	}
	return append(b, toks...)
}

// Prove sends the hash wrapped by the context.
func (x *gssExchange) Prove(hash []byte) ([]isakmp.Payload, error) {
	tok, err := x.ctx.Wrap(hash)
	if err != nil {
		return nil, err
	}
	return []isakmp.Payload{&isakmp.Hash{Data: tok}}, nil
}

// Verify unwraps the peer's HASH payload and compares it with the hash
// it must be.
func (x *gssExchange) Verify(hash []byte, _ Identity, peer []isakmp.Payload) error {
	if isakmp.Find(peer, isakmp.PayloadGSS) != nil {
		return authFailf(isakmp.AuthenticationFailed, "GSS-API: the peer sent another GSS token where the HASH belongs (more round trips are not supported)")
	}
	h, _ := isakmp.Find(peer, isakmp.PayloadHash).(*isakmp.Hash)
	if h == nil {
		return authFailf(isakmp.PayloadMalformed, "GSS-API: no HASH payload")
	}
	got, err := x.ctx.Unwrap(h.Data)
	if err != nil {
		return authFailf(isakmp.InvalidHashInformation, "GSS-API: the peer's wrapped HASH: %v", err)
	}
	if subtle.ConstantTimeCompare(got, hash) != 1 {
		return authFailf(isakmp.InvalidHashInformation, "GSS-API: HASH mismatch with %s (the wrapped hash covers other messages or tokens)", x.ctx.PeerName())
	}
	return nil
}

// PeerName is the authenticated principal, for the log.
func (x *gssExchange) PeerName() string { return x.ctx.PeerName() }

func (x *gssExchange) Close() { x.ctx.Close() }

// reasonOf is an error's text without the "authentication failed: "
// that auth/kerberos's failures and authFailure both put in front.
func reasonOf(err error) string {
	return strings.TrimPrefix(err.Error(), "authentication failed: ")
}

// encodeGSSID is a GSS_ID attribute value: UTF-16LE, no terminator.
func encodeGSSID(name string) []byte {
	u := utf16.Encode([]rune(name))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(out[2*i:], c)
	}
	return out
}

// peerGSSID reads the GSS_ID of a transform (16384, or Windows 2000's
// 32001): UTF-16LE, or Latin-1 when it is of odd length or plain ASCII
// (old racoon). "" when there is none.
func peerGSSID(t *isakmp.Transform) string {
	if t == nil {
		return ""
	}
	for _, a := range t.Attributes {
		if (a.Type != isakmp.AttrGSSIdentity && a.Type != attrGSSIDWin2000) || a.Basic || len(a.Value) == 0 {
			continue
		}
		v := a.Value
		ascii := !bytes.ContainsFunc(v, func(r rune) bool { return r < 0x20 || r >= 0x7f })
		if len(v)%2 == 1 || ascii {
			return latin1String(v)
		}
		u := make([]uint16, len(v)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(v[2*i:])
		}
		return string(utf16.Decode(u))
	}
	return ""
}

func latin1String(b []byte) string {
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// latin1 is name's octets in Latin-1; characters beyond it become '?'
// (they cannot be in racoon's form of the name either).
func latin1(name string) []byte {
	out := make([]byte, 0, len(name))
	for _, r := range name {
		if r > 0xff {
			r = '?'
		}
		out = append(out, byte(r))
	}
	return out
}

// The engine's hooks for methods with more to say than RFC 2409's
// (GSS-API): each is optional, looked up on the MainModeAuth or the
// AuthExchange.
type (
	// initiatorPreparer does slow work before Main Mode starts, unlocked.
	initiatorPreparer interface{ PrepareInitiator(creds any) error }
	// transformAttributer adds attributes of its own to this side's Main
	// Mode transforms; peer is the initiator's transform (responder) or
	// nil (initiator).
	transformAttributer interface {
		TransformAttributes(creds any, initiator bool, peer *isakmp.Transform) []isakmp.Attribute
	}
	// hashExtender's HASH_I and HASH_R cover more octets after the ID
	// payload; own is true for this side's hash.
	hashExtender interface{ HashSuffix(own bool) []byte }
	// peerNamer names the authenticated peer beyond its ID payload.
	peerNamer interface{ PeerName() string }
)

// prepareInitiator runs a method's preparation. Called without locks.
func prepareInitiator(a MainModeAuth, creds any) error {
	if p, ok := a.(initiatorPreparer); ok {
		return p.PrepareInitiator(creds)
	}
	return nil
}

// withAuthAttributes adds the method's attributes to the initiator's
// transforms.
func withAuthAttributes(a MainModeAuth, creds any, ts []isakmp.Transform) []isakmp.Transform {
	ta, ok := a.(transformAttributer)
	if !ok {
		return ts
	}
	extra := ta.TransformAttributes(creds, true, nil)
	for i := range ts {
		ts[i].Attributes = append(ts[i].Attributes, extra...)
	}
	return ts
}

// replyTransform is the transform a responder answers with: the chosen
// one with the method's own attributes in place of the initiator's.
func replyTransform(a MainModeAuth, creds any, chosen *isakmp.Transform) isakmp.Transform {
	ta, ok := a.(transformAttributer)
	if !ok {
		return *chosen
	}
	r := *cloneTransform(chosen)
	r.Attributes = slices.DeleteFunc(r.Attributes, func(x isakmp.Attribute) bool {
		return x.Type == isakmp.AttrGSSIdentity || x.Type == attrGSSIDWin2000
	})
	r.Attributes = append(r.Attributes, ta.TransformAttributes(creds, false, chosen)...)
	return r
}

// hashTail is what a Main Mode hash covers from the ID payload on: its
// body, and whatever the method adds.
func (mm *mainMode) hashTail(idB []byte, own bool) []byte {
	if h, ok := mm.auth.(hashExtender); ok {
		return slices.Concat(idB, h.HashSuffix(own))
	}
	return idB
}

// authPeerName is the principal the method authenticated, or "".
func (mm *mainMode) authPeerName() string {
	if n, ok := mm.auth.(peerNamer); ok {
		return n.PeerName()
	}
	return ""
}
