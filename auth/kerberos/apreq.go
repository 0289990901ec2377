package kerberos

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
	"github.com/jcmturner/gokrb5/v8/iana/flags"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// apError is a refused AP-REQ: the Kerberos error code (0 when none
// applies), the stats label (empty: the code's name) and the log message.
type apError struct {
	code  int32
	label string
	msg   string
}

// accepted is an AP-REQ that passed every check of a responder: the
// client it authenticates, the service it was for, and the decrypted
// ticket and authenticator (whose keys the caller wipes when done).
type accepted struct {
	client  Principal
	service Principal
	ticket  *messages.Ticket
	auth    *types.Authenticator
	skew    time.Duration // the client's clock minus ours
}

// checkAPReq runs the acceptor's checks of RFC 4120 §3.2.3 on req, in the
// order docs/kerberos.md §2.4 lists them, for both wire formats: the IKEv2
// method (which needs a subkey) and the IKEv1 GSS-API method (where the
// subkey is optional, RFC 4121 §2). The replay cache is consulted last
// among the Kerberos checks, so that only authenticators that are
// otherwise good occupy it; the allowed principals come after it.
func (m *Method) checkAPReq(req *messages.APReq, peer netip.AddrPort, needSubkey bool) (*accepted, *apError) {
	now := m.clock()
	skew := m.maxSkew
	tk := &req.Ticket
	sname := Principal{Name: tk.SName.PrincipalNameString(), Realm: tk.Realm}
	refuse := func(code int32, label, format string, args ...any) (*accepted, *apError) {
		return nil, &apError{code: code, label: label, msg: fmt.Sprintf(format, args...)}
	}
	if !m.servesPrincipal(sname) {
		return refuse(errorcode.KRB_AP_ERR_NOT_US, "", "the ticket is for %s, not for this host's service principals (%s)", sname, m.localServiceList())
	}
	key, kerr := m.serviceKey(tk)
	if kerr != nil {
		return refuse(kerr.code, "", "%s", kerr.msg)
	}
	if !cipherLongEnough(key.KeyType, tk.EncPart.Cipher) {
		return refuse(errorcode.KRB_AP_ERR_MODIFIED, "malformed", "the ticket for %s is too short to decrypt", sname)
	}
	if err := tk.Decrypt(key); err != nil {
		return refuse(errorcode.KRB_AP_ERR_MODIFIED, "", "cannot decrypt the ticket for %s with key version %d of the keytab: the keytab and the KDC hold different keys", sname, tk.EncPart.KVNO)
	}
	enc := &tk.DecryptedEncPart
	client := Principal{Name: enc.CName.PrincipalNameString(), Realm: enc.CRealm}
	if start := startOf(enc.StartTime, enc.AuthTime); start.Sub(now) > skew || types.IsFlagSet(&enc.Flags, flags.Invalid) {
		return refuse(errorcode.KRB_AP_ERR_TKT_NYV, "", "the ticket of %s is not yet valid (starts %s)", client, start.Format(time.RFC3339))
	}
	if now.Sub(enc.EndTime) > skew {
		return refuse(errorcode.KRB_AP_ERR_TKT_EXPIRED, "", "the ticket of %s expired at %s", client, enc.EndTime.Format(time.RFC3339))
	}
	if m.checkAddrs && len(enc.CAddr) > 0 {
		if !types.HostAddressesContains(enc.CAddr, types.HostAddressFromNetIP(peer.Addr().AsSlice())) {
			return refuse(errorcode.KRB_AP_ERR_BADADDR, "", "the ticket of %s does not list the peer's address %s", client, peer.Addr())
		}
	}
	if !cipherLongEnough(enc.Key.KeyType, req.EncryptedAuthenticator.Cipher) {
		return refuse(errorcode.KRB_AP_ERR_BAD_INTEGRITY, "malformed", "the authenticator of %s is too short to decrypt", client)
	}
	if err := req.DecryptAuthenticator(enc.Key); err != nil {
		return refuse(errorcode.KRB_AP_ERR_BAD_INTEGRITY, "", "cannot decrypt the authenticator of %s", client)
	}
	au := &req.Authenticator
	if !au.CName.Equal(enc.CName) || au.CRealm != enc.CRealm {
		return refuse(errorcode.KRB_AP_ERR_BADMATCH, "", "the authenticator names %s@%s, the ticket %s", au.CName.PrincipalNameString(), au.CRealm, client)
	}
	ct := au.CTime.Add(time.Duration(au.Cusec) * time.Microsecond)
	d := now.Sub(ct)
	if d > skew || -d > skew {
		return refuse(errorcode.KRB_AP_ERR_SKEW, "", "clock skew with %s is %s, more than the %s allowed", client, d.Round(time.Second), skew)
	}
	if needSubkey && len(au.SubKey.KeyValue) == 0 {
		return refuse(errorcode.KRB_ERR_GENERIC, "malformed", "the authenticator of %s carries no subkey", client)
	}
	if !m.replays.insert(newReplayKey(client.String(), au.CTime, au.Cusec, req.EncryptedAuthenticator.Cipher), ct, now, skew) {
		clear(au.SubKey.KeyValue)
		return refuse(errorcode.KRB_AP_ERR_REPEAT, "", "replayed AP-REQ from %s (authenticator of %s already seen)", client, ct.Format(time.RFC3339Nano))
	}
	if !m.allowed.Allows(client) {
		clear(au.SubKey.KeyValue)
		label := "principal_not_allowed"
		if !m.allowed.hasRealm(client.Realm) {
			label = "realm_not_allowed"
		}
		return refuse(errorcode.KDC_ERR_POLICY, label, "client %s is not allowed (allowed: %s)", client, m.allowed)
	}
	return &accepted{client: client, service: sname, ticket: tk, auth: au, skew: -d}, nil
}

// cipherLongEnough reports whether ciphertext of enctype e is long enough
// for gokrb5 to decrypt: its DecryptMessage slices off the checksum
// without checking the length and panics on shorter input.
func cipherLongEnough(e int32, cipher []byte) bool {
	et, err := crypto.GetEtype(e)
	if err != nil {
		return false
	}
	return len(cipher) >= et.GetConfounderByteSize()+et.GetHMACBitLength()/8
}
