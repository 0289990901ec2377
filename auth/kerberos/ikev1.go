package kerberos

import (
	"bytes"
	"crypto/md5"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// IKEv1 numbers of the GSS-API authentication method, as
// draft-ietf-ipsec-isakmp-gss-auth-07 assigns them (from ISAKMP's private
// ranges) and as Windows 2000/2003 and racoon send them. docs/kerberos.md
// §8 describes the exchange.
const (
	// AuthMethodGSSAPI is the Main Mode SA's Authentication Method
	// attribute value for GSS-API with Kerberos. The same number means
	// XAUTHInitPreShared to XAUTH implementations: it is read as GSS-API
	// only when the peer sent one of the GSS vendor IDs.
	AuthMethodGSSAPI = 65001
	// AttrGSSID is the Main Mode SA attribute (variable length) carrying
	// the sender's principal name in UTF-16LE.
	AttrGSSID = 16384
	// AttrGSSIDWin2000 is the number Windows 2000 was observed to use for
	// the same attribute (ike-scan's documentation); accepted on input.
	AttrGSSIDWin2000 = 32001
	// PayloadGSSToken is the ISAKMP payload type carrying one GSS-API
	// token, in Main Mode messages 3 and 4 (and 5 and 6 while a mechanism
	// needs more round trips; Kerberos does not).
	PayloadGSSToken = 129
)

func md5Of(s string) []byte {
	h := md5.Sum([]byte(s))
	return h[:]
}

// Vendor IDs that announce the GSS-API method.
var (
	// VendorIDGSSAPILong is MD5("A GSS-API Authentication Method for IKE").
	VendorIDGSSAPILong = md5Of("A GSS-API Authentication Method for IKE")
	// VendorIDGSSAPILongNL is the same string with a trailing newline,
	// which Wireshark lists as a second form seen on the wire.
	VendorIDGSSAPILongNL = md5Of("A GSS-API Authentication Method for IKE\n")
	// VendorIDGSSAPI is MD5("GSSAPI"), 621b04bb09882ac1e15935fefa24aeee,
	// the one Windows 2000 recognises and racoon sends.
	VendorIDGSSAPI = md5Of("GSSAPI")
	// VendorIDMSNT5 is MD5("MS NT5 ISAKMPOAKLEY"), which Windows sends
	// followed by four octets of version (2 for Windows 2000, 3 for XP,
	// 4 for 2003, 5 Vista, 6 Server 2008, 7 Windows 7, 8 Server 2008 R2, …).
	VendorIDMSNT5 = md5Of("MS NT5 ISAKMPOAKLEY")
)

// AnnouncesGSSAPI reports whether a vendor ID payload's data announces
// the GSS-API method: either draft form, "GSSAPI", or Microsoft's NT5
// vendor ID (with or without its version suffix), which Windows sends
// beside its GSS-API proposals.
func AnnouncesGSSAPI(vid []byte) bool {
	for _, v := range [][]byte{VendorIDGSSAPILong, VendorIDGSSAPILongNL, VendorIDGSSAPI} {
		if bytes.Equal(vid, v) {
			return true
		}
	}
	return WindowsVersion(vid) >= 0
}

// WindowsVersion returns the version number carried by Microsoft's "MS
// NT5 ISAKMPOAKLEY" vendor ID (2 Windows 2000, 3 XP, 4 Server 2003, 5
// Vista, 6 Server 2008, 7 Windows 7, 8 Server 2008 R2, 9 Windows 8 …),
// 0 when it has no version suffix, and -1 for any other vendor ID.
func WindowsVersion(vid []byte) int {
	if !bytes.HasPrefix(vid, VendorIDMSNT5) {
		return -1
	}
	switch len(vid) {
	case 16:
		return 0
	case 20:
		return int(binary.BigEndian.Uint32(vid[16:]))
	}
	return -1
}

// EncodeGSSID is the GSS_ID attribute value for a principal name: UTF-16LE
// without a terminator, as Windows 2000 expects and racoon sends.
func EncodeGSSID(name string) []byte {
	u := utf16.Encode([]rune(name))
	out := make([]byte, 2*len(u))
	for i, c := range u {
		binary.LittleEndian.PutUint16(out[2*i:], c)
	}
	return out
}

// DecodeGSSID reads a GSS_ID attribute value. UTF-16LE is expected; a value
// of odd length, or one that is all printable ASCII (old racoon sent
// Latin-1, "gss_id_enc latin1"; a UTF-16LE name always has NUL octets), is
// taken as Latin-1.
func DecodeGSSID(b []byte) (string, error) {
	if len(b) == 0 {
		return "", errors.New("empty GSS_ID attribute")
	}
	if len(b) > 1024 {
		return "", fmt.Errorf("GSS_ID attribute of %d octets is too long", len(b))
	}
	if len(b)%2 == 0 && !looksLatin1(b) {
		u := make([]uint16, len(b)/2)
		for i := range u {
			u[i] = binary.LittleEndian.Uint16(b[2*i:])
		}
		s := string(utf16.Decode(u))
		if strings.ContainsRune(s, utf8.RuneError) || strings.ContainsRune(s, 0) {
			return "", errors.New("GSS_ID attribute is not valid UTF-16LE")
		}
		return s, nil
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r), nil
}

// looksLatin1 reports whether b reads as printable ASCII with no NULs:
// a UTF-16LE principal name always has NUL high octets.
func looksLatin1(b []byte) bool {
	for _, c := range b {
		if c < 0x20 || c >= 0x7f {
			return false
		}
	}
	return true
}

// GSSIDForHash is the form of a GSS_ID that racoon feeds to the Main Mode
// HASH (it keeps names in Latin-1 internally): the name's octets, one per
// character. Names outside Latin-1 cannot be represented and are refused.
func GSSIDForHash(name string) ([]byte, error) {
	out := make([]byte, 0, len(name))
	for _, r := range name {
		if r > 0xff {
			return nil, fmt.Errorf("GSS_ID %q has characters outside Latin-1", name)
		}
		out = append(out, byte(r))
	}
	return out, nil
}

// GSSID is the name this method puts in its GSS_ID attribute: its client
// principal as initiator, its (first) service principal as responder,
// "name@REALM" as racoon's gss_id is written.
func (m *Method) GSSID(initiator bool) string {
	if initiator || len(m.localServices) == 0 {
		return m.principal.String()
	}
	return m.localServices[0].String()
}
