package ike

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/iked/iked/ike/wire"
)

// Identity is an IKE identity (RFC 7296 §3.5) as configured and logged.
// The zero Identity means "any" where a remote identity is expected.
type Identity struct {
	Type  wire.IDType
	Value []byte
}

// idPrefixes are the explicit type prefixes accepted by ParseIdentity.
var idPrefixes = map[string]wire.IDType{
	"fqdn":  wire.IDFQDN,
	"email": wire.IDRFC822Addr,
	"ip":    0, // v4 or v6, decided by the address
	"keyid": wire.IDKeyID,
	"dn":    wire.IDDERASN1DN,
}

// ParseIdentity parses an identity as strongSwan users write it:
// "fqdn:host.example", "email:user@example", "ip:192.0.2.1", "keyid:abc",
// "dn:C=CH, O=Example, CN=gw"; without a prefix an IP literal is an IP
// address ID, anything with "=" a distinguished name, "user@host" an email
// (RFC 822) ID, "@host" an FQDN, and anything else an FQDN.
func ParseIdentity(s string) (Identity, error) {
	if s == "" {
		return Identity{}, errors.New("empty identity")
	}
	if prefix, rest, ok := strings.Cut(s, ":"); ok {
		if t, known := idPrefixes[prefix]; known {
			if rest == "" {
				return Identity{}, fmt.Errorf("identity %q: empty value", s)
			}
			switch prefix {
			case "ip":
				return ipIdentity(rest)
			case "dn":
				return dnIdentity(rest)
			}
			return Identity{Type: t, Value: []byte(rest)}, nil
		}
	}
	if _, err := netip.ParseAddr(s); err == nil {
		return ipIdentity(s)
	}
	if strings.Contains(s, "=") {
		return dnIdentity(s)
	}
	if strings.HasPrefix(s, "@") {
		return Identity{Type: wire.IDFQDN, Value: []byte(s[1:])}, nil
	}
	if strings.Contains(s, "@") {
		return Identity{Type: wire.IDRFC822Addr, Value: []byte(s)}, nil
	}
	return Identity{Type: wire.IDFQDN, Value: []byte(s)}, nil
}

func dnIdentity(s string) (Identity, error) {
	der, err := parseDN(s)
	if err != nil {
		return Identity{}, err
	}
	return Identity{Type: wire.IDDERASN1DN, Value: der}, nil
}

func ipIdentity(s string) (Identity, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return Identity{}, fmt.Errorf("identity %q: not an IP address", s)
	}
	if a.Is4() {
		b := a.As4()
		return Identity{Type: wire.IDIPv4Addr, Value: b[:]}, nil
	}
	b := a.As16()
	return Identity{Type: wire.IDIPv6Addr, Value: b[:]}, nil
}

// IdentityFromAddr is the identity used when none is configured: the local
// IP address, as strongSwan does.
func IdentityFromAddr(a netip.Addr) Identity {
	id, _ := ipIdentity(a.Unmap().String())
	return id
}

// IsZero reports whether the identity is unset ("any").
func (id Identity) IsZero() bool { return id.Type == 0 && len(id.Value) == 0 }

// Payload returns the identity as an IDi (responder false) or IDr payload.
func (id Identity) Payload(responder bool) *wire.ID {
	return &wire.ID{Responder: responder, IDType: id.Type, Data: id.Value}
}

// Matches reports whether the received ID payload is this identity; the
// zero identity matches anything.
func (id Identity) Matches(p *wire.ID) bool {
	if id.IsZero() {
		return true
	}
	if id.Type == wire.IDDERASN1DN && p.IDType == wire.IDDERASN1DN {
		return dnEqual(id.Value, p.Data)
	}
	return p.IDType == id.Type && string(p.Data) == string(id.Value)
}

// equal reports whether two identities are the same, as the identity
// index and String see them: distinguished names by their printed form.
func (id Identity) equal(o Identity) bool {
	if id.Type != o.Type {
		return false
	}
	if id.Type == wire.IDDERASN1DN {
		return id.String() == o.String()
	}
	return string(id.Value) == string(o.Value)
}

// IdentityFromPayload converts a received ID payload.
func IdentityFromPayload(p *wire.ID) Identity {
	return Identity{Type: p.IDType, Value: append([]byte(nil), p.Data...)}
}

// String prints "type:value", e.g. "fqdn:a.example" or "ip:192.0.2.1".
func (id Identity) String() string {
	switch id.Type {
	case 0:
		return "any"
	case wire.IDFQDN:
		return "fqdn:" + string(id.Value)
	case wire.IDRFC822Addr:
		return "email:" + string(id.Value)
	case wire.IDIPv4Addr, wire.IDIPv6Addr:
		if a, ok := netip.AddrFromSlice(id.Value); ok {
			return "ip:" + a.String()
		}
		return fmt.Sprintf("ip:%x", id.Value)
	case wire.IDKeyID:
		return "keyid:" + string(id.Value)
	case wire.IDDERASN1DN:
		return "dn:" + formatDN(id.Value)
	default:
		return fmt.Sprintf("type%d:%x", id.Type, id.Value)
	}
}
