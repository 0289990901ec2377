package gpipsec

import (
	"fmt"
	"strconv"
	"strings"
)

// Classes of the objects under CN=IP Security.
const (
	ClassPolicy      = "ipsecPolicy"
	ClassISAKMP      = "ipsecISAKMPPolicy"
	ClassNFA         = "ipsecNFA"
	ClassNegotiation = "ipsecNegotiationPolicy"
	ClassFilter      = "ipsecFilter"
)

// Object is one directory object of an IPsec policy, with the attributes
// [MS-GPIPSEC] §2.3 lists.
type Object struct {
	DN          string
	Class       string
	Name        string // ipsecName
	Description string
	ID          string // ipsecID, a curly braced GUID string
	DataType    string // ipsecDataType
	Data        []byte // ipsecData

	ISAKMPRef         string   // ipsecISAKMPReference (policy)
	NFARefs           []string // ipsecNFAReference (policy)
	FilterRefs        []string // ipsecFilterReference (NFA)
	NegotiationRef    string   // ipsecNegotiationPolicyReference (NFA)
	OwnersRefs        []string // ipsecOwnersReference
	NegotiationType   string   // iPSECNegotiationPolicyType
	NegotiationAction string   // iPSECNegotiationPolicyAction

	// WhenChanged and USNChanged are the directory's change stamps.
	WhenChanged string
	USNChanged  uint64
}

// Attributes are the LDAP attributes an Object is read from.
var Attributes = []string{"objectClass", "ipsecName", "description", "ipsecID", "ipsecDataType", "ipsecData",
	"ipsecISAKMPReference", "ipsecNFAReference", "ipsecFilterReference", "ipsecNegotiationPolicyReference",
	"ipsecOwnersReference", "iPSECNegotiationPolicyType", "iPSECNegotiationPolicyAction", "whenChanged", "uSNChanged"}

// NewObject builds an Object from an entry's attributes (names compared
// without case, as LDAP does); get returns an attribute's values.
func NewObject(dn string, get func(attr string) [][]byte) (*Object, error) {
	one := func(a string) string {
		if v := get(a); len(v) > 0 {
			return string(v[0])
		}
		return ""
	}
	many := func(a string) []string {
		var out []string
		for _, v := range get(a) {
			out = append(out, string(v))
		}
		return out
	}
	o := &Object{DN: dn, Name: one("ipsecName"), Description: one("description"), ID: one("ipsecID"),
		DataType: one("ipsecDataType"), ISAKMPRef: one("ipsecISAKMPReference"), NFARefs: many("ipsecNFAReference"),
		FilterRefs: many("ipsecFilterReference"), NegotiationRef: one("ipsecNegotiationPolicyReference"),
		OwnersRefs: many("ipsecOwnersReference"), NegotiationType: one("iPSECNegotiationPolicyType"),
		NegotiationAction: one("iPSECNegotiationPolicyAction"), WhenChanged: one("whenChanged")}
	if v := get("ipsecData"); len(v) > 0 {
		o.Data = v[0]
	}
	if s := one("uSNChanged"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return nil, fmt.Errorf("%s: uSNChanged %q is not a number", dn, s)
		}
		o.USNChanged = n
	}
	for _, c := range many("objectClass") {
		switch strings.ToLower(c) {
		case "ipsecpolicy":
			o.Class = ClassPolicy
		case "ipsecisakmppolicy":
			o.Class = ClassISAKMP
		case "ipsecnfa":
			o.Class = ClassNFA
		case "ipsecnegotiationpolicy":
			o.Class = ClassNegotiation
		case "ipsecfilter":
			o.Class = ClassFilter
		}
	}
	if o.Class == "" {
		return nil, fmt.Errorf("%s: not an IPsec policy object (objectClass %v)", dn, many("objectClass"))
	}
	return o, nil
}

// ObjectError is a fault in one directory object.
type ObjectError struct {
	DN  string
	Err error
}

func (e *ObjectError) Error() string { return e.DN + ": " + e.Err.Error() }
func (e *ObjectError) Unwrap() error { return e.Err }

func (o *Object) errorf(format string, args ...any) error {
	return &ObjectError{DN: o.DN, Err: fmt.Errorf(format, args...)}
}

// checkHeader checks what every object needs before its blob is read:
// the data type and a blob.
func (o *Object) checkHeader() error {
	// The spec says ipsecDataType MUST be 256 (0x100); every object
	// Windows (and Samba's provisioning, copied from Windows) writes
	// has 598 (0x256), the same digits read as hex.
	switch o.DataType {
	case "256", "598":
	case "":
		return o.errorf("no ipsecDataType")
	default:
		return o.errorf("ipsecDataType %q is unknown (want 256 or 598)", o.DataType)
	}
	if len(o.Data) == 0 {
		return o.errorf("no ipsecData")
	}
	return nil
}

// NormalizeDN makes a DN comparable: lower case, no spaces around the
// separators.
func NormalizeDN(dn string) string {
	parts := strings.Split(dn, ",")
	for i, p := range parts {
		k, v, _ := strings.Cut(p, "=")
		parts[i] = strings.ToLower(strings.TrimSpace(k)) + "=" + strings.ToLower(strings.TrimSpace(v))
	}
	return strings.Join(parts, ",")
}
