package policy

import (
	"fmt"
	"time"
)

// KeyModule is the key exchange a policy (or a rule) negotiates with, as
// Windows' New-NetIPsecRule -KeyModule names it.
type KeyModule string

// Key modules.
const (
	// KeyModuleIKEv2 negotiates IKEv2; the default.
	KeyModuleIKEv2 KeyModule = "ikev2"
	// KeyModuleIKEv1 negotiates IKEv1 (main mode and quick mode), the
	// only one Windows offers with Kerberos.
	KeyModuleIKEv1 KeyModule = "ikev1"
	// KeyModuleAuto answers whichever the peer speaks and initiates IKEv2
	// first, IKEv1 when the peer does not speak IKEv2 (Windows 11 24H2).
	KeyModuleAuto KeyModule = "auto"
)

// ParseKeyModule parses "ikev2", "ikev1" or "auto".
func ParseKeyModule(s string) (KeyModule, error) {
	switch k := KeyModule(s); k {
	case KeyModuleIKEv2, KeyModuleIKEv1, KeyModuleAuto:
		return k, nil
	}
	return "", fmt.Errorf("unknown key module %q (expected ikev2, ikev1 or auto)", s)
}

// KeyExchange are a policy's key exchange settings: what a Windows IPsec
// policy calls its Key Exchange Settings (main mode), applying to every
// rule of the policy. The quick mode settings (security methods, session
// key PFS) are each negotiate rule's.
type KeyExchange struct {
	// KeyModule is the rules' key exchange unless a rule names its own;
	// the zero value means KeyModuleIKEv2.
	KeyModule KeyModule
	// Methods are the main mode security methods (IKE proposals in
	// strongSwan syntax, e.g. "aes256-sha256-modp2048"), in preference
	// order; empty takes the daemon's defaults.
	Methods []string
	// Lifetime is "authenticate and generate a new key after every N
	// minutes": the main mode's (IKE SA's) lifetime; zero takes the
	// daemon's default.
	Lifetime time.Duration
	// QuickModes is "… after every N sessions": at most this many quick
	// modes on one main mode, zero for no limit.
	QuickModes int
	// MasterKeyPFS makes every quick mode start from a fresh main mode
	// ("master key perfect forward secrecy"), as QuickModes 1 does.
	MasterKeyPFS bool
	// AllowLegacy permits the legacy IKEv1 algorithms (3DES, SHA-1,
	// MODP-1024, the Windows 2003 default main mode) in Methods and in the
	// rules' security methods.
	AllowLegacy bool
}

// QuickModeLimit is the number of quick modes one main mode may carry,
// zero for no limit.
func (k KeyExchange) QuickModeLimit() int {
	if k.MasterKeyPFS {
		return 1
	}
	return k.QuickModes
}

// RuleKeyModule returns the key module a rule negotiates with: its own,
// else its policy's, else IKEv2.
func (p *Policy) RuleKeyModule(r *Rule) KeyModule {
	if r.KeyModule != "" {
		return r.KeyModule
	}
	if p.KeyExchange.KeyModule != "" {
		return p.KeyExchange.KeyModule
	}
	return KeyModuleIKEv2
}

// IKE versions, as the engines, metrics and ikectl name them.
const (
	VersionIKEv2 = "ikev2"
	VersionIKEv1 = "ikev1"
)

// Versions lists the IKE versions the key module speaks, in the order it
// initiates with them: auto tries IKEv2 first.
func (k KeyModule) Versions() []string {
	switch k {
	case KeyModuleIKEv1:
		return []string{VersionIKEv1}
	case KeyModuleAuto:
		return []string{VersionIKEv2, VersionIKEv1}
	}
	return []string{VersionIKEv2}
}

// Speaks reports whether the key module negotiates (and answers) with the
// IKE version v ("ikev2", "ikev1").
func (k KeyModule) Speaks(v string) bool {
	for _, x := range k.Versions() {
		if x == v {
			return true
		}
	}
	return false
}

// DefaultResponseKeyModule is the key module the default response rule
// answers with: the policy's.
func (p *Policy) DefaultResponseKeyModule() KeyModule {
	return p.RuleKeyModule(&Rule{})
}

// UsesVersion reports whether any negotiate rule, or the active default
// response rule, speaks IKE version v: a daemon needs that engine.
func (p *Policy) UsesVersion(v string) bool {
	for _, r := range p.Rules {
		if r.Action == Negotiate && p.RuleKeyModule(r).Speaks(v) {
			return true
		}
	}
	return p.DefaultResponse.Active && p.DefaultResponseKeyModule().Speaks(v)
}
