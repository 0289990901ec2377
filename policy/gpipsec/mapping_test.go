package gpipsec

import (
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/iked/iked/policy"
)

// sameFilters compares filter lists by what they match (not names).
func sameFilters(a, b *policy.FilterList) bool {
	key := func(l *policy.FilterList) []string {
		var out []string
		for _, f := range l.Filters {
			f.Description = ""
			out = append(out, fmt.Sprintf("%+v", f))
		}
		slices.Sort(out)
		return out
	}
	return slices.Equal(key(a), key(b))
}

// CompareWithBuiltin compares a policy mapped from the directory with the
// built-in of the same meaning, field by field: every rule's filters,
// action, security methods, authentication methods and flags, and the
// default response rule. Names and descriptions are not compared.
func compareWithBuiltin(got, want *policy.Policy) []string {
	var diffs []string
	if len(got.Rules) != len(want.Rules) {
		diffs = append(diffs, fmt.Sprintf("%d rules, want %d", len(got.Rules), len(want.Rules)))
	}
	for _, w := range want.Rules {
		i := slices.IndexFunc(got.Rules, func(g *policy.Rule) bool { return sameFilters(g.Filters, w.Filters) })
		if i < 0 {
			diffs = append(diffs, fmt.Sprintf("no rule with the filters of %s", w.Name))
			continue
		}
		g := got.Rules[i]
		type fields struct {
			Action                         policy.Action
			Methods                        []policy.SecurityMethod
			Auth                           []string
			AcceptUnsecured, Fallback, PFS bool
			FallbackDelay                  string
			Connection                     policy.ConnectionType
			Tunnel                         string
		}
		f := func(r *policy.Rule) fields {
			return fields{r.Action, r.Methods, r.Auth, r.AcceptUnsecured, r.Fallback, r.PFS, r.FallbackDelayOrDefault().String(), r.Connection, r.Tunnel.String()}
		}
		if !reflect.DeepEqual(f(g), f(w)) {
			diffs = append(diffs, fmt.Sprintf("rule %s:\n got %+v\nwant %+v", w.Name, f(g), f(w)))
		}
	}
	if !reflect.DeepEqual(got.DefaultResponse, want.DefaultResponse) {
		diffs = append(diffs, fmt.Sprintf("default response:\n got %+v\nwant %+v", got.DefaultResponse, want.DefaultResponse))
	}
	return diffs
}

func TestWindowsDefaultsMapToTheBuiltins(t *testing.T) {
	d := provisioned(t)
	opts := MapOptions{Auth: []Configured{{Name: "corp", Kind: "kerberos"}, {Name: "site", Kind: "cert", CAs: []string{"CN=Other CA"}}}}
	for windows, builtin := range map[string]string{
		"Client (Respond Only)":            policy.ClientRespondOnly,
		"Server (Request Security)":        policy.ServerRequestSecurity,
		"Secure Server (Require Security)": policy.SecureServerRequireSecurity,
	} {
		p, err := d.Resolve(windows)
		if err != nil {
			t.Fatal(err)
		}
		m, err := Map(p, opts)
		if err != nil {
			t.Fatalf("%s: %v", windows, err)
		}
		want, _ := policy.Builtin(builtin, []string{"corp"}, nil)
		for _, diff := range compareWithBuiltin(m.Policy, want) {
			t.Errorf("%s vs %s: %s", windows, builtin, diff)
		}
		if m.Policy.Name != windows || m.PollingInterval.Seconds() != 10800 || len(m.PSKs) != 0 {
			t.Errorf("%s: name %q, polling %v, PSKs %d", windows, m.Policy.Name, m.PollingInterval, len(m.PSKs))
		}
		// What differs is reported: the 3DES/SHA-1 methods replaced, the
		// IKEv1 main mode settings not applied.
		notes := fmt.Sprint(m.Notes)
		for _, want := range []string{"cannot be negotiated by iked", "main mode security methods [3DES/SHA-1/DH2; 3DES/MD5/DH2; DES/SHA-1/DH1; DES/MD5/DH1]"} {
			if !strings.Contains(notes, want) {
				t.Errorf("%s: notes lack %q:\n%s", windows, want, strings.ReplaceAll(notes, "} {", "}\n{"))
			}
		}
	}
}

func TestNoConfiguredMethodIsAnError(t *testing.T) {
	d := provisioned(t)
	p, _ := d.Resolve("Secure Server (Require Security)")
	_, err := Map(p, MapOptions{Auth: []Configured{{Name: "lab", Kind: "psk"}}})
	if err == nil || !strings.Contains(err.Error(), "CN=ipsecNFA{") || !strings.Contains(err.Error(), "none of its authentication methods is configured") {
		t.Fatalf("got %v", err)
	}
}
