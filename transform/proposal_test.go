package transform

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseIKEProposal(t *testing.T) {
	tests := []struct {
		in   string
		want Proposal
		str  string
	}{
		{"aes256gcm16-prfsha256-x25519",
			Proposal{Encr: []EncrChoice{{EncrAESGCM16, 256}}, PRF: []uint16{PRFHMACSHA2_256}, DH: []uint16{DHCurve25519}},
			"AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519"},
		{"aes128-aes256-sha256-sha384-modp2048-ecp256",
			Proposal{
				Encr:  []EncrChoice{{EncrAESCBC, 128}, {EncrAESCBC, 256}},
				PRF:   []uint16{PRFHMACSHA2_256, PRFHMACSHA2_384},
				Integ: []uint16{IntegHMACSHA2_256_128, IntegHMACSHA2_384_192},
				DH:    []uint16{DHModp2048, DHECP256},
			},
			"AES_CBC-128/AES_CBC-256/HMAC_SHA2_256_128/HMAC_SHA2_384_192/PRF_HMAC_SHA2_256/PRF_HMAC_SHA2_384/MODP_2048/ECP_256"},
		{"aes192-sha512-prfsha384-ecp384-ecp521",
			Proposal{
				Encr: []EncrChoice{{EncrAESCBC, 192}}, PRF: []uint16{PRFHMACSHA2_384},
				Integ: []uint16{IntegHMACSHA2_512_256}, DH: []uint16{DHECP384, DHECP521},
			},
			"AES_CBC-192/HMAC_SHA2_512_256/PRF_HMAC_SHA2_384/ECP_384/ECP_521"},
		// A hash keyword with AEAD only implies the PRF.
		{"aes128gcm-aes256gcm-sha384-curve25519",
			Proposal{Encr: []EncrChoice{{EncrAESGCM16, 128}, {EncrAESGCM16, 256}}, PRF: []uint16{PRFHMACSHA2_384}, DH: []uint16{DHCurve25519}},
			"AES_GCM_16-128/AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519"},
		{"chacha20poly1305-prfsha512-ecp256",
			Proposal{Encr: []EncrChoice{{EncrChaCha20Poly1305, 0}}, PRF: []uint16{PRFHMACSHA2_512}, DH: []uint16{DHECP256}},
			"CHACHA20_POLY1305/PRF_HMAC_SHA2_512/ECP_256"},
		// Any order; duplicates collapse.
		// The deprecated SHA-1 (named, never a default) and the larger
		// MODP groups and Curve448.
		{"aes256-sha1-modp3072",
			Proposal{Encr: []EncrChoice{{EncrAESCBC, 256}}, PRF: []uint16{PRFHMACSHA1}, Integ: []uint16{IntegHMACSHA1_96}, DH: []uint16{DHModp3072}},
			"AES_CBC-256/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_3072"},
		{"aes128-sha-prfsha256-modp4096-x448",
			Proposal{Encr: []EncrChoice{{EncrAESCBC, 128}}, PRF: []uint16{PRFHMACSHA2_256}, Integ: []uint16{IntegHMACSHA1_96}, DH: []uint16{DHModp4096, DHCurve448}},
			"AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA2_256/MODP_4096/CURVE_448"},
		{"aes256gcm16-prfsha1-curve448",
			Proposal{Encr: []EncrChoice{{EncrAESGCM16, 256}}, PRF: []uint16{PRFHMACSHA1}, DH: []uint16{DHCurve448}},
			"AES_GCM_16-256/PRF_HMAC_SHA1/CURVE_448"},
		{"x25519-sha256-aes128-aes128-sha256",
			Proposal{Encr: []EncrChoice{{EncrAESCBC, 128}}, PRF: []uint16{PRFHMACSHA2_256}, Integ: []uint16{IntegHMACSHA2_256_128}, DH: []uint16{DHCurve25519}},
			"AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519"},
	}
	for _, tc := range tests {
		got, err := ParseIKEProposal(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got  %+v\n want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("%q: String() = %q, want %q", tc.in, s, tc.str)
		}
	}
}

func TestParseESPProposal(t *testing.T) {
	tests := []struct {
		in   string
		want Proposal
		str  string
	}{
		{"aes256gcm16",
			Proposal{Encr: []EncrChoice{{EncrAESGCM16, 256}}, ESN: []uint16{ESNNo}},
			"AES_GCM_16-256/NO_EXT_SEQ"},
		{"aes128-sha256",
			Proposal{Encr: []EncrChoice{{EncrAESCBC, 128}}, Integ: []uint16{IntegHMACSHA2_256_128}, ESN: []uint16{ESNNo}},
			"AES_CBC-128/HMAC_SHA2_256_128/NO_EXT_SEQ"},
		{"aes128-sha256-modp2048",
			Proposal{Encr: []EncrChoice{{EncrAESCBC, 128}}, Integ: []uint16{IntegHMACSHA2_256_128}, DH: []uint16{DHModp2048}, ESN: []uint16{ESNNo}},
			"AES_CBC-128/HMAC_SHA2_256_128/MODP_2048/NO_EXT_SEQ"},
		{"aes128-sha1-modp3072",
			Proposal{Encr: []EncrChoice{{EncrAESCBC, 128}}, Integ: []uint16{IntegHMACSHA1_96}, DH: []uint16{DHModp3072}, ESN: []uint16{ESNNo}},
			"AES_CBC-128/HMAC_SHA1_96/MODP_3072/NO_EXT_SEQ"},
		{"chacha20poly1305-esn",
			Proposal{Encr: []EncrChoice{{EncrChaCha20Poly1305, 0}}, ESN: []uint16{ESNYes}},
			"CHACHA20_POLY1305/EXT_SEQ"},
		{"aes128gcm16-x25519-esn-noesn",
			Proposal{Encr: []EncrChoice{{EncrAESGCM16, 128}}, DH: []uint16{DHCurve25519}, ESN: []uint16{ESNYes, ESNNo}},
			"AES_GCM_16-128/CURVE_25519/EXT_SEQ/NO_EXT_SEQ"},
	}
	for _, tc := range tests {
		got, err := ParseESPProposal(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%q:\n got  %+v\n want %+v", tc.in, got, tc.want)
		}
		if s := got.String(); s != tc.str {
			t.Errorf("%q: String() = %q, want %q", tc.in, s, tc.str)
		}
	}
}

func TestParseProposalErrors(t *testing.T) {
	tests := []struct {
		esp  bool
		in   string
		want []string // substrings of the error
	}{
		{false, "aes999-sha256-x25519", []string{`unknown algorithm "aes999" in proposal "aes999-sha256-x25519"`}},
		{false, "", []string{"empty"}},
		{false, "aes128--sha256-x25519", []string{"empty algorithm"}},
		{false, "aes128-sha256-x25519-", []string{"empty algorithm"}},
		{false, "AES128-sha256-x25519", []string{`"AES128"`}},
		{false, "sha256-x25519", []string{"no encryption"}},
		{false, "aes128-sha256", []string{"no Diffie-Hellman"}},
		{false, "aes128-prfsha256-x25519", []string{"integrity", `"aes128"`}},
		{false, "aes128gcm16-x25519", []string{"no PRF"}},
		{false, "aes128-aes128gcm16-sha256-x25519", []string{"mixes", `"aes128gcm16"`, `"aes128"`}},
		{false, "aes128-sha256-x25519-esn", []string{`"esn"`, "IKE"}},
		{false, "aes128-sha256-modp1024", []string{`legacy algorithm "modp1024" is deprecated and not supported in IKE proposal`, "enable it with version: ikev1 and allow_legacy: true"}},
		{true, "3des-sha256", []string{`legacy algorithm "3des" is deprecated and not supported in ESP proposal`, "only available in IKEv1"}},
		{false, "3des-sha256-modp2048", []string{`legacy algorithm "3des"`}},
		{false, "aes192gcm16-prfsha256-x25519", []string{`algorithm "aes192gcm16" in proposal "aes192gcm16-prfsha256-x25519" is not supported`}},
		{false, "aes128-md5-modp2048", []string{`algorithm "md5"`, "not supported: broken"}},
		{true, "des-sha256", []string{`algorithm "des"`, "not supported: broken"}},
		{false, "aes128-sha256-modp1536", []string{`"modp1536"`, "not supported: too weak"}},
		{false, "aes128-sha256-modp8192", []string{`"modp8192"`, "not supported", "use modp4096"}},
		{true, "aes128ctr-sha256", []string{`"aes128ctr"`, "not supported: iked does not implement it"}},
		{true, "aes256ccm16", []string{`"aes256ccm16"`, "not supported"}},
		{false, "aes128-aesxcbc-ecp256", []string{`"aesxcbc"`, "not supported"}},
		{false, "aes128-sha256-ecp256bp", []string{`"ecp256bp"`, "not supported"}},
		{true, "aes256gcm16-prfsha256", []string{`"prfsha256"`, "ESP"}},
		{true, "aes128", []string{"integrity", `"aes128"`}},
		{true, "aes128gcm16-sha256", []string{`"sha256"`, "AEAD"}},
		{true, "chacha20poly1305-aes256-sha256", []string{"mixes"}},
		{true, "sha256", []string{"no encryption"}},
		{true, "aes128-sha256-esnx", []string{`unknown algorithm "esnx"`}},
		{true, "", []string{"empty"}},
	}
	for _, tc := range tests {
		parse := ParseIKEProposal
		if tc.esp {
			parse = ParseESPProposal
		}
		p, err := parse(tc.in)
		if err == nil {
			t.Errorf("%q (esp %v): no error, got %v", tc.in, tc.esp, p)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%q (esp %v): error %q does not contain %q", tc.in, tc.esp, err, w)
			}
		}
	}
}

// TestParseAddKE: RFC 9370's additional key exchanges in strongSwan's
// syntax, their display and their keyword form.
func TestParseAddKE(t *testing.T) {
	tests := []struct {
		esp       bool
		in        string
		want      [MaxAddKE][]uint16
		dh        []uint16
		str, kw   string
		pq, anyPQ bool
	}{
		{false, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_none",
			[MaxAddKE][]uint16{{DHMLKEM768}, {DHNone}}, []uint16{DHCurve25519},
			"AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE2_NONE",
			"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_none", true, true},
		{false, "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024",
			[MaxAddKE][]uint16{{DHMLKEM1024}}, []uint16{DHECP384},
			"AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384/KE1_ML_KEM_1024", "aes256gcm16-prfsha384-ecp384-ke1_mlkem1024", true, true},
		// Optional: ke1_mlkem768-ke1_none.
		{false, "aes128-sha256-x25519-ke1_mlkem768-ke1_none",
			[MaxAddKE][]uint16{{DHMLKEM768, DHNone}}, []uint16{DHCurve25519},
			"AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/CURVE_25519/KE1_ML_KEM_768/KE1_NONE",
			"aes128-sha256-prfsha256-x25519-ke1_mlkem768-ke1_none", false, true},
		{false, "aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024",
			[MaxAddKE][]uint16{{DHMLKEM768}, {DHMLKEM1024}}, []uint16{DHCurve25519},
			"AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE2_ML_KEM_1024",
			"aes256gcm16-prfsha384-x25519-ke1_mlkem768-ke2_mlkem1024", true, true},
		{false, "aes256gcm16-prfsha384-mlkem768", [MaxAddKE][]uint16{}, []uint16{DHMLKEM768},
			"AES_GCM_16-256/PRF_HMAC_SHA2_384/ML_KEM_768", "aes256gcm16-prfsha384-mlkem768", true, true},
		{false, "aes256gcm16-prfsha384-x25519-ke7_ecp256", [MaxAddKE][]uint16{6: {DHECP256}}, []uint16{DHCurve25519},
			"AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE7_ECP_256", "aes256gcm16-prfsha384-x25519-ke7_ecp256", false, false},
		{true, "aes256gcm16-x25519-ke1_mlkem768", [MaxAddKE][]uint16{{DHMLKEM768}}, []uint16{DHCurve25519},
			"AES_GCM_16-256/CURVE_25519/KE1_ML_KEM_768/NO_EXT_SEQ", "aes256gcm16-x25519-ke1_mlkem768", true, true},
	}
	for _, tc := range tests {
		parse := ParseIKEProposal
		if tc.esp {
			parse = ParseESPProposal
		}
		p, err := parse(tc.in)
		if err != nil {
			t.Errorf("%q: %v", tc.in, err)
			continue
		}
		if !reflect.DeepEqual(p.AddKE, tc.want) || !reflect.DeepEqual(p.DH, tc.dh) {
			t.Errorf("%q: AddKE %v DH %v, want %v %v", tc.in, p.AddKE, p.DH, tc.want, tc.dh)
		}
		if s := p.String(); s != tc.str {
			t.Errorf("%q: String() = %q, want %q", tc.in, s, tc.str)
		}
		if s := p.Keywords(); s != tc.kw {
			t.Errorf("%q: Keywords() = %q, want %q", tc.in, s, tc.kw)
		}
		if p.PostQuantum() != tc.pq || p.OffersPostQuantum() != tc.anyPQ {
			t.Errorf("%q: PostQuantum %v OffersPostQuantum %v, want %v %v", tc.in, p.PostQuantum(), p.OffersPostQuantum(), tc.pq, tc.anyPQ)
		}
		if !p.HasAddKE() && !reflect.DeepEqual(tc.want, [MaxAddKE][]uint16{}) {
			t.Errorf("%q: HasAddKE false", tc.in)
		}
		// The keyword form parses back to the same proposal.
		back, err := parse(p.Keywords())
		if err != nil || !reflect.DeepEqual(back, p) {
			t.Errorf("%q: Keywords %q parses back to %+v, %v", tc.in, p.Keywords(), back, err)
		}
	}
	for _, tc := range []struct {
		esp  bool
		in   string
		want string
	}{
		{false, "aes256gcm16-prfsha384-x25519-ke8_mlkem768", "ke1 to ke7"},
		{false, "aes256gcm16-prfsha384-x25519-ke0_mlkem768", "ke1 to ke7"},
		{false, "aes256gcm16-prfsha384-x25519-ke1_mlkem512", "not implemented"},
		{false, "aes256gcm16-prfsha384-mlkem512", "not implemented"},
		{false, "aes256gcm16-prfsha384-x25519-ke1_aes128", `unknown key exchange method "aes128"`},
		{false, "aes256gcm16-prfsha384-x25519-ke1_", `unknown key exchange method ""`},
		{true, "aes256gcm16-ke1_mlkem768", "no key exchange method to start with"},
	} {
		parse := ParseIKEProposal
		if tc.esp {
			parse = ParseESPProposal
		}
		if _, err := parse(tc.in); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: error %v, want one containing %q", tc.in, err, tc.want)
		}
	}
}

func TestProposalStringUnknown(t *testing.T) {
	p := Proposal{Encr: []EncrChoice{{4, 0}, {99, 128}}, PRF: []uint16{1}, Integ: []uint16{1}, DH: []uint16{1}, ESN: []uint16{7}}
	if got, want := p.String(), "ENCR_4/ENCR_99-128/INTEG_1/PRF_1/DH_1/ESN_7"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
}

// TestDeprecatedNamed: an IKEv2 or ESP proposal that names SHA-1 reports
// it for the configuration's warning; iked's own proposals never do.
func TestDeprecatedNamed(t *testing.T) {
	p, err := ParseIKEProposal("aes256-sha1-prfsha256-modp4096")
	if err != nil {
		t.Fatal(err)
	}
	if got := p.LegacyAlgorithms(); !reflect.DeepEqual(got, []string{"HMAC_SHA1_96"}) {
		t.Errorf("LegacyAlgorithms() = %v", got)
	}
	e, err := ParseESPProposal("aes128-sha1")
	if err != nil {
		t.Fatal(err)
	}
	if got := e.LegacyAlgorithms(); !reflect.DeepEqual(got, []string{"HMAC_SHA1_96"}) {
		t.Errorf("ESP LegacyAlgorithms() = %v", got)
	}
	if p, _ := ParseIKEProposal("aes128-prfsha1-sha256-x448"); !reflect.DeepEqual(p.LegacyAlgorithms(), []string{"PRF_HMAC_SHA1"}) {
		t.Errorf("prfsha1: LegacyAlgorithms() = %v", p.LegacyAlgorithms())
	}
	if p, _ := ParseIKEProposal("aes128-sha256-modp3072-modp4096-x448"); len(p.LegacyAlgorithms()) != 0 {
		t.Errorf("MODP-3072/4096 and Curve448 reported as deprecated: %v", p.LegacyAlgorithms())
	}
}
