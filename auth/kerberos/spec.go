package kerberos

import (
	"crypto/hmac"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
	"github.com/jcmturner/gokrb5/v8/iana/errorcode"
)

// Wire numbers of the Kerberos method (docs/kerberos.md). None is assigned
// by IANA: they come from the private-use ranges of RFC 7296 §3.8 and
// §3.10.1, so that both peers must be iked (or follow docs/kerberos.md).
const (
	// AuthMethod is the AUTH payload's method number (private use, 201–255).
	AuthMethod wire.AuthMethod = 201
	// CertEncoding is the CERT encoding that carries the KRB-AP-REQ: 6,
	// "Kerberos Token", named by RFC 7296 §3.6 and never specified.
	CertEncoding uint8 = 6
	// NotifySupported is the status notify both peers put in IKE_SA_INIT
	// to announce the method (private-use status range, 40960–65535).
	NotifySupported wire.NotifyType = 40988
	// NotifyError is the error notify that accompanies AUTHENTICATION_FAILED
	// with the Kerberos error code (private-use error range, 8192–16383).
	NotifyError wire.NotifyType = 10088
)

// supportedVersion is the first octet of the NotifySupported data: the
// version of this specification.
const supportedVersion = 1

// keyLabel starts the prf+ seed of the AUTH keys.
const keyLabel = "iked kerberos"

// supportedNotify is the payload announcing the method in IKE_SA_INIT.
func supportedNotify() *wire.Notify {
	return &wire.Notify{Code: NotifySupported, Data: []byte{supportedVersion}}
}

// announced reports whether payloads hold the peer's NotifySupported.
func announced(payloads []wire.Payload) bool {
	n := wire.FindNotify(payloads, NotifySupported)
	return n != nil && len(n.Data) >= 1 && n.Data[0] >= supportedVersion
}

// DeriveKeys returns the two AUTH keys of one handshake:
//
//	KEYMAT = prf+(subkey, "iked kerberos" | SPIi | SPIr)
//	Ki | Kr = KEYMAT, each as long as the PRF's output
//
// Ki keys the initiator's AUTH, Kr the responder's. SPIs are 8 octets,
// big-endian, as in the IKE header.
func DeriveKeys(prf *transform.PRF, subkey []byte, spii, spir uint64) (ki, kr []byte, err error) {
	if prf == nil {
		return nil, nil, errors.New("kerberos: no PRF negotiated")
	}
	if len(subkey) == 0 {
		return nil, nil, errors.New("kerberos: empty subkey")
	}
	seed := make([]byte, 0, len(keyLabel)+16)
	seed = append(seed, keyLabel...)
	seed = binary.BigEndian.AppendUint64(seed, spii)
	seed = binary.BigEndian.AppendUint64(seed, spir)
	km, err := prf.Plus(subkey, seed, 2*prf.Size)
	if err != nil {
		return nil, nil, err
	}
	return km[:prf.Size:prf.Size], km[prf.Size:], nil
}

// MIC is the AUTH data: prf(key, SignedOctets), the form of RFC 7296
// §2.15's shared key MIC with the derived key in place of
// prf(secret, "Key Pad for IKEv2").
func MIC(prf *transform.PRF, key, signedOctets []byte) []byte {
	return prf.Sum(nil, key, signedOctets)
}

// checkMIC compares in constant time.
func checkMIC(prf *transform.PRF, key, signedOctets, got []byte) bool {
	return hmac.Equal(got, MIC(prf, key, signedOctets))
}

// ErrorNotify builds the NotifyError payload: the Kerberos error code as
// 4 octets, big-endian, followed for KRB_AP_ERR_SKEW by the responder's
// clock as 8 octets of microseconds since the Unix epoch.
func ErrorNotify(code int32, now time.Time) *wire.Notify {
	data := binary.BigEndian.AppendUint32(nil, uint32(code))
	if code == errorcode.KRB_AP_ERR_SKEW {
		data = binary.BigEndian.AppendUint64(data, uint64(now.UnixMicro()))
	}
	return &wire.Notify{Code: NotifyError, Data: data}
}

// ParseErrorNotify decodes a NotifyError payload. serverTime is zero when
// the notify carries no clock.
func ParseErrorNotify(n *wire.Notify) (code int32, serverTime time.Time, err error) {
	if n == nil || n.Code != NotifyError {
		return 0, time.Time{}, errors.New("kerberos: not a KERBEROS_ERROR notify")
	}
	switch len(n.Data) {
	case 4:
	case 12:
		serverTime = time.UnixMicro(int64(binary.BigEndian.Uint64(n.Data[4:]))).UTC()
	default:
		return 0, time.Time{}, fmt.Errorf("kerberos: KERBEROS_ERROR notify of %d octets, want 4 or 12", len(n.Data))
	}
	return int32(binary.BigEndian.Uint32(n.Data)), serverTime, nil
}

// ErrorName is the RFC 4120 name of a Kerberos error code, e.g.
// "KRB_AP_ERR_SKEW"; codes it does not know print as "KRB_ERROR_<n>".
func ErrorName(code int32) string {
	s := errorcode.Lookup(code) // "(37) KRB_AP_ERR_SKEW Clock skew too great"
	if f := strings.Fields(s); len(f) >= 2 && strings.HasPrefix(f[0], "(") {
		return f[1]
	}
	return fmt.Sprintf("KRB_ERROR_%d", code)
}
