package gpipsec

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"strings"
)

// GUID is a GUID in the byte order [MS-DTYP] stores it: the first three
// groups little-endian, the last two as written.
type GUID [16]byte

// ParseGUID reads "{XXXXXXXX-XXXX-XXXX-XXXX-XXXXXXXXXXXX}" (braces
// optional, any case).
func ParseGUID(s string) (GUID, error) {
	var g GUID
	t := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(s), "{"), "}")
	parts := strings.Split(t, "-")
	if len(parts) != 5 || len(parts[0]) != 8 || len(parts[1]) != 4 || len(parts[2]) != 4 || len(parts[3]) != 4 || len(parts[4]) != 12 {
		return g, fmt.Errorf("%q is not a GUID", s)
	}
	raw, err := hex.DecodeString(strings.Join(parts, ""))
	if err != nil {
		return g, fmt.Errorf("%q is not a GUID", s)
	}
	binary.LittleEndian.PutUint32(g[0:], binary.BigEndian.Uint32(raw[0:]))
	binary.LittleEndian.PutUint16(g[4:], binary.BigEndian.Uint16(raw[4:]))
	binary.LittleEndian.PutUint16(g[6:], binary.BigEndian.Uint16(raw[6:]))
	copy(g[8:], raw[8:])
	return g, nil
}

// mustGUID is ParseGUID for constants.
func mustGUID(s string) GUID {
	g, err := ParseGUID(s)
	if err != nil {
		panic(err)
	}
	return g
}

// String formats the GUID as a curly braced GUID string, upper case, as
// Windows writes ipsecID.
func (g GUID) String() string {
	return fmt.Sprintf("{%08X-%04X-%04X-%X-%X}", binary.LittleEndian.Uint32(g[0:]),
		binary.LittleEndian.Uint16(g[4:]), binary.LittleEndian.Uint16(g[6:]), g[8:10], g[10:])
}

// IsZero reports whether the GUID is all zeros.
func (g GUID) IsZero() bool { return g == GUID{} }

// The GUIDs [MS-GPIPSEC] §2.2.1 gives each ipsecData blob type, and the
// negotiation policy types and actions of §2.2.1.4.1.
var (
	PolicyBlobID      = mustGUID("{22202163-4F4C-11D1-863B-00A0248D3021}")
	ISAKMPBlobID      = mustGUID("{80DC20B8-2EC8-11D1-A89E-00A0248D3021}")
	NFABlobID         = mustGUID("{11BBAC00-498D-11D1-8639-00A0248D3021}")
	NegotiationBlobID = mustGUID("{80DC20B9-2EC8-11D1-A89E-00A0248D3021}")
	FilterBlobID      = mustGUID("{80DC20B5-2EC8-11D1-A89E-00A0248D3021}")
	FilterV2BlobID    = mustGUID("{35FECD3D-AE29-4373-8A6A-C5D8FAB2FB08}")

	// TypeStandard and TypeDefaultResponse are the values of
	// ipsecNegotiationPolicyType.
	TypeStandard        = mustGUID("{62F49E10-6C37-11D1-864C-14A300000000}")
	TypeDefaultResponse = mustGUID("{62F49E13-6C37-11D1-864C-14A300000000}")

	// The values of ipsecNegotiationPolicyAction.
	ActionBlock       = mustGUID("{3F91A819-7647-11D1-864D-D46A00000000}")
	ActionPermit      = mustGUID("{8A171DD2-77E3-11D1-8659-A04F00000000}")
	ActionSecure      = mustGUID("{8A171DD3-77E3-11D1-8659-A04F00000000}")
	ActionPassThrough = mustGUID("{3F91A81A-7647-11D1-864D-D46A00000000}")
)

// The optional sections of an NFA blob are marked by GUIDs the spec writes
// as "{01010101-0101-0101-0101-01010101}" (…01, …02, …03): sixteen bytes of
// 0x01 with the last byte 0x01, 0x02 or 0x03.
var (
	nfaAltAuthID  = markerGUID(1)
	nfaAltFlagsID = markerGUID(2)
	nfaIPv6TunnID = markerGUID(3)
)

func markerGUID(last byte) GUID {
	var g GUID
	for i := range g {
		g[i] = 1
	}
	g[15] = last
	return g
}
