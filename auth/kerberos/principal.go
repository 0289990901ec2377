package kerberos

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/types"
)

// Principal is a Kerberos principal name with its realm.
type Principal struct {
	// Name is the components joined by "/", e.g. "host/a.example.test".
	Name string
	// Realm is e.g. "EXAMPLE.TEST".
	Realm string
}

// String is "name@REALM".
func (p Principal) String() string { return p.Name + "@" + p.Realm }

func (p Principal) krb() types.PrincipalName {
	return types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, p.Name)
}

// ParsePrincipal parses "name" or "name@REALM"; defaultRealm fills in a
// missing realm.
func ParsePrincipal(s, defaultRealm string) (Principal, error) {
	name, realm, hasRealm := strings.Cut(s, "@")
	if !hasRealm {
		realm = defaultRealm
	}
	switch {
	case name == "":
		return Principal{}, fmt.Errorf("principal %q has no name", s)
	case realm == "":
		return Principal{}, fmt.Errorf("principal %q has no realm and no default realm is known", s)
	case strings.Contains(realm, "@") || strings.Contains(name, "//") || strings.HasPrefix(name, "/") || strings.HasSuffix(name, "/"):
		return Principal{}, fmt.Errorf("principal %q is malformed", s)
	}
	return Principal{Name: name, Realm: realm}, nil
}

// Allowed is the set of client principals a responder accepts: exact
// principals and whole realms.
type Allowed struct {
	principals map[Principal]bool
	realms     map[string]bool
}

// ParseAllowed parses entries of the form "name@REALM" (one principal),
// "name" (one principal of defaultRealm) or "@REALM" (every principal of
// the realm).
func ParseAllowed(entries []string, defaultRealm string) (Allowed, error) {
	a := Allowed{principals: map[Principal]bool{}, realms: map[string]bool{}}
	if len(entries) == 0 {
		return a, errors.New("allowed: at least one principal or @REALM is required")
	}
	for _, e := range entries {
		if realm, ok := strings.CutPrefix(e, "@"); ok {
			if realm == "" || strings.ContainsAny(realm, "@/") {
				return a, fmt.Errorf("allowed: %q is not a realm", e)
			}
			a.realms[realm] = true
			continue
		}
		p, err := ParsePrincipal(e, defaultRealm)
		if err != nil {
			return a, fmt.Errorf("allowed: %w", err)
		}
		a.principals[p] = true
	}
	return a, nil
}

// Allows reports whether p is allowed.
func (a Allowed) Allows(p Principal) bool {
	return a.realms[p.Realm] || a.principals[p]
}

// hasRealm reports whether any entry is of realm r.
func (a Allowed) hasRealm(r string) bool {
	if a.realms[r] {
		return true
	}
	for p := range a.principals {
		if p.Realm == r {
			return true
		}
	}
	return false
}

// String lists the entries, for logs.
func (a Allowed) String() string {
	var s []string
	for r := range a.realms {
		s = append(s, "@"+r)
	}
	for p := range a.principals {
		s = append(s, p.String())
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}
