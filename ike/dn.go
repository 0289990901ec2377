package ike

import (
	"crypto/x509/pkix"
	"encoding/asn1"
	"errors"
	"fmt"
	"strings"
)

// Distinguished names as identities (ID_DER_ASN1_DN, RFC 7296 §3.5),
// written as strongSwan writes them: "C=CH, O=Example, CN=gw.example", in
// the order of the DER sequence.

// dnAttrs are the attribute names iked reads and prints.
var dnAttrs = []struct {
	name string
	oid  asn1.ObjectIdentifier
}{
	{"C", asn1.ObjectIdentifier{2, 5, 4, 6}},
	{"ST", asn1.ObjectIdentifier{2, 5, 4, 8}},
	{"L", asn1.ObjectIdentifier{2, 5, 4, 7}},
	{"O", asn1.ObjectIdentifier{2, 5, 4, 10}},
	{"OU", asn1.ObjectIdentifier{2, 5, 4, 11}},
	{"CN", asn1.ObjectIdentifier{2, 5, 4, 3}},
	{"SN", asn1.ObjectIdentifier{2, 5, 4, 4}},
	{"serialNumber", asn1.ObjectIdentifier{2, 5, 4, 5}},
	{"E", asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 9, 1}},
	{"DC", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 25}},
	{"UID", asn1.ObjectIdentifier{0, 9, 2342, 19200300, 100, 1, 1}},
}

func dnOID(name string) (asn1.ObjectIdentifier, bool) {
	for _, a := range dnAttrs {
		if strings.EqualFold(a.name, name) || (name == "emailAddress" && a.name == "E") {
			return a.oid, true
		}
	}
	return nil, false
}

func dnName(oid asn1.ObjectIdentifier) string {
	for _, a := range dnAttrs {
		if a.oid.Equal(oid) {
			return a.name
		}
	}
	return oid.String()
}

// splitDN splits at unescaped commas.
func splitDN(s string) []string {
	var parts []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		switch {
		case s[i] == '\\' && i+1 < len(s):
			i++
			cur.WriteByte(s[i])
		case s[i] == ',':
			parts = append(parts, cur.String())
			cur.Reset()
		default:
			cur.WriteByte(s[i])
		}
	}
	return append(parts, cur.String())
}

// parseDN encodes a DN written as "C=CH, O=Example, CN=gw" in DER.
func parseDN(s string) ([]byte, error) {
	var rdn pkix.RDNSequence
	for _, part := range splitDN(s) {
		k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
		if !ok || v == "" {
			return nil, fmt.Errorf("distinguished name %q: %q is not TYPE=value", s, part)
		}
		oid, known := dnOID(strings.TrimSpace(k))
		if !known {
			return nil, fmt.Errorf("distinguished name %q: unknown attribute %q", s, k)
		}
		rdn = append(rdn, pkix.RelativeDistinguishedNameSET{{Type: oid, Value: strings.TrimSpace(v)}})
	}
	if len(rdn) == 0 {
		return nil, errors.New("empty distinguished name")
	}
	return asn1.Marshal(rdn)
}

// dnAttributes decodes a DER DN into its attributes in sequence order.
func dnAttributes(der []byte) ([]pkix.AttributeTypeAndValue, bool) {
	var rdn pkix.RDNSequence
	if rest, err := asn1.Unmarshal(der, &rdn); err != nil || len(rest) != 0 {
		return nil, false
	}
	var out []pkix.AttributeTypeAndValue
	for _, set := range rdn {
		out = append(out, set...)
	}
	return out, true
}

// formatDN prints a DER DN as strongSwan does.
func formatDN(der []byte) string {
	attrs, ok := dnAttributes(der)
	if !ok {
		return fmt.Sprintf("%x", der)
	}
	parts := make([]string, len(attrs))
	for i, a := range attrs {
		v := fmt.Sprint(a.Value)
		v = strings.ReplaceAll(strings.ReplaceAll(v, `\`, `\\`), ",", `\,`)
		parts[i] = dnName(a.Type) + "=" + v
	}
	return strings.Join(parts, ", ")
}

// dnEqual compares two DER DNs by their attributes, whatever string types
// encode the values, in the same or in reversed order (both orders are
// written in the wild: strongSwan's and RFC 4514's).
func dnEqual(a, b []byte) bool {
	x, ok1 := dnAttributes(a)
	y, ok2 := dnAttributes(b)
	if !ok1 || !ok2 || len(x) != len(y) {
		return false
	}
	same := func(reverse bool) bool {
		for i := range x {
			j := i
			if reverse {
				j = len(y) - 1 - i
			}
			if !x[i].Type.Equal(y[j].Type) || !strings.EqualFold(fmt.Sprint(x[i].Value), fmt.Sprint(y[j].Value)) {
				return false
			}
		}
		return true
	}
	return same(false) || same(true)
}
