package transform

import (
	"bytes"
	"testing"
)

// RFC 4868 §2.7.1: the PRF test vectors are those of RFC 4231 (test cases
// 1, 2 and 6 here).
func TestPRFKnownAnswers(t *testing.T) {
	bigKey := bytes.Repeat([]byte{0xaa}, 131)
	bigData := []byte("Test Using Larger Than Block-Size Key - Hash Key First")
	tests := []struct {
		prf       uint16
		key, data []byte
		want      string
	}{
		{PRFHMACSHA2_256, bytes.Repeat([]byte{0x0b}, 20), []byte("Hi There"),
			"b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"},
		{PRFHMACSHA2_384, bytes.Repeat([]byte{0x0b}, 20), []byte("Hi There"),
			"afd03944d84895626b0825f4ab46907f15f9dadbe4101ec682aa034c7cebc59c" +
				"faea9ea9076ede7f4af152e8b2fa9cb6"},
		{PRFHMACSHA2_512, bytes.Repeat([]byte{0x0b}, 20), []byte("Hi There"),
			"87aa7cdea5ef619d4ff0b4241a1d6cb02379f4e2ce4ec2787ad0b30545e17cde" +
				"daa833b7d6b8a702038b274eaea3f4e4be9d914eeb61f1702e696c203a126854"},
		{PRFHMACSHA2_256, []byte("Jefe"), []byte("what do ya want for nothing?"),
			"5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"},
		{PRFHMACSHA2_384, []byte("Jefe"), []byte("what do ya want for nothing?"),
			"af45d2e376484031617f78d2b58a6b1b9c7ef464f5a01b47e42ec3736322445e" +
				"8e2240ca5e69e2c78b3239ecfab21649"},
		{PRFHMACSHA2_512, []byte("Jefe"), []byte("what do ya want for nothing?"),
			"164b7a7bfcf819e2e395fbe73b56e0a387bd64222e831fd610270cd7ea250554" +
				"9758bf75c05a994a6d034f65f8f0e6fdcaeab1a34d4a6b4b636e070a38bce737"},
		{PRFHMACSHA2_256, bigKey, bigData,
			"60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"},
		{PRFHMACSHA2_384, bigKey, bigData,
			"4ece084485813e9088d2c63a041bc5b44f9ef1012a2b588f3cd11f05033ac4c6" +
				"0c2ef6ab4030fe8296248df163f44952"},
		{PRFHMACSHA2_512, bigKey, bigData,
			"80b24263c7c1a3ebb71493c1dd7be8b49b46d1f41b4aeec1121b013783f8f352" +
				"6b56d037e05f2598bd0fd2215d6a1e5295e64f73f63f0aec8b915a985d786598"},
	}
	for _, tc := range tests {
		prf := PRFByID(tc.prf)
		want := unhex(t, tc.want)
		if prf.Size != len(want) {
			t.Errorf("%s: Size %d, want %d", prf.Name, prf.Size, len(want))
		}
		checkBytes(t, prf.Name+" Sum", prf.Sum(nil, tc.key, tc.data), want)
		// Sum appends to dst.
		checkBytes(t, prf.Name+" Sum(dst)", prf.Sum([]byte{9}, tc.key, tc.data), append([]byte{9}, want...))
		h := prf.New(tc.key)
		h.Write(tc.data)
		checkBytes(t, prf.Name+" New", h.Sum(nil), want)
	}
}

// RFC 4868 §2.7.2: the authenticator test cases, with keys of the
// algorithm's key length, truncated to the ICV length.
func TestIntegKnownAnswers(t *testing.T) {
	jefe := func(n int) []byte { return bytes.Repeat([]byte("Jefe"), n/4) }
	tests := []struct {
		integ     uint16
		key, data []byte
		want      string // the full HMAC as printed in the RFC
	}{
		// AUTH256-1..3
		{IntegHMACSHA2_256_128, bytes.Repeat([]byte{0x0b}, 32), []byte("Hi There"),
			"198a607eb44bfbc69903a0f1cf2bbdc5ba0aa3f3d9ae3c1c7a3b1696a0b68cf7"},
		{IntegHMACSHA2_256_128, jefe(32), []byte("what do ya want for nothing?"),
			"167f928588c5cc2eef8e3093caa0e87c9ff566a14794aa61648d81621a2a40c6"},
		{IntegHMACSHA2_256_128, bytes.Repeat([]byte{0xaa}, 32), bytes.Repeat([]byte{0xdd}, 50),
			"cdcb1220d1ecccea91e53aba3092f962e549fe6ce9ed7fdc43191fbde45c30b0"},
		// AUTH384-1..2
		{IntegHMACSHA2_384_192, bytes.Repeat([]byte{0x0b}, 48), []byte("Hi There"),
			"b6a8d5636f5c6a7224f9977dcf7ee6c7fb6d0c48cbdee9737a959796489bddbc" +
				"4c5df61d5b3297b4fb68dab9f1b582c2"},
		{IntegHMACSHA2_384_192, jefe(48), []byte("what do ya want for nothing?"),
			"2c7353974f1842fd66d53c452ca42122b28c0b594cfb184da86a368e9b8e16f5" +
				"349524ca4e82400cbde0686d403371c9"},
		// AUTH512-1
		{IntegHMACSHA2_512_256, bytes.Repeat([]byte{0x0b}, 64), []byte("Hi There"),
			"637edc6e01dce7e6742a99451aae82df23da3e92439e590e43e761b33e910fb8" +
				"ac2878ebd5803f6f0b61dbce5e251ff8789a4722c1be65aea45fd464e89f8f5b"},
	}
	for _, tc := range tests {
		integ := IntegByID(tc.integ)
		if len(tc.key) != integ.KeyLen {
			t.Fatalf("%s: test key of %d octets, KeyLen %d", integ.Name, len(tc.key), integ.KeyLen)
		}
		want := unhex(t, tc.want)
		h := integ.New(tc.key)
		h.Write(tc.data)
		got := h.Sum(nil)
		checkBytes(t, integ.Name+" HMAC", got, want)
		if 2*integ.ICVLen != len(want) {
			t.Errorf("%s: ICVLen %d, want half of %d", integ.Name, integ.ICVLen, len(want))
		}
	}
}

func TestRegistry(t *testing.T) {
	encrs := []struct {
		id               uint16
		name             string
		keyBits          uint16
		str              string
		material         int
		aead             bool
		salt, iv, icv, b int
	}{
		{EncrAESCBC, "AES_CBC", 128, "AES_CBC-128", 16, false, 0, 16, 0, 16},
		{EncrAESCBC, "AES_CBC", 192, "AES_CBC-192", 24, false, 0, 16, 0, 16},
		{EncrAESCBC, "AES_CBC", 256, "AES_CBC-256", 32, false, 0, 16, 0, 16},
		{EncrAESGCM16, "AES_GCM_16", 128, "AES_GCM_16-128", 20, true, 4, 8, 16, 1},
		{EncrAESGCM16, "AES_GCM_16", 256, "AES_GCM_16-256", 36, true, 4, 8, 16, 1},
		{EncrChaCha20Poly1305, "CHACHA20_POLY1305", 0, "CHACHA20_POLY1305", 36, true, 4, 8, 16, 1},
	}
	for _, tc := range encrs {
		e := EncrByID(tc.id)
		if e == nil || e.ID != tc.id || e.Name != tc.name {
			t.Fatalf("EncrByID(%d) = %+v", tc.id, e)
		}
		if got := e.String(tc.keyBits); got != tc.str {
			t.Errorf("String(%d) = %q, want %q", tc.keyBits, got, tc.str)
		}
		if got := e.KeyMaterialLen(tc.keyBits); got != tc.material {
			t.Errorf("%s KeyMaterialLen = %d, want %d", tc.str, got, tc.material)
		}
		if !e.validKeyBits(tc.keyBits) {
			t.Errorf("%s: key size not valid", tc.str)
		}
		if e.AEAD != tc.aead || e.SaltLen != tc.salt || e.IVLen != tc.iv || e.ICVLen != tc.icv || e.BlockLen != tc.b {
			t.Errorf("%s: %+v", tc.str, e)
		}
	}
	if len(EncrByID(EncrChaCha20Poly1305).KeySizes) != 0 {
		t.Error("CHACHA20_POLY1305 must take no Key Length attribute")
	}
	prfs := map[uint16]string{5: "PRF_HMAC_SHA2_256", 6: "PRF_HMAC_SHA2_384", 7: "PRF_HMAC_SHA2_512"}
	for id, name := range prfs {
		if p := PRFByID(id); p == nil || p.Name != name || p.ID != id {
			t.Errorf("PRFByID(%d) = %+v", id, p)
		}
	}
	integs := map[uint16][3]any{
		12: {"HMAC_SHA2_256_128", 32, 16},
		13: {"HMAC_SHA2_384_192", 48, 24},
		14: {"HMAC_SHA2_512_256", 64, 32},
	}
	for id, w := range integs {
		i := IntegByID(id)
		if i == nil || i.ID != id || i.Name != w[0] || i.KeyLen != w[1] || i.ICVLen != w[2] {
			t.Errorf("IntegByID(%d) = %+v", id, i)
		}
	}
	groups := map[uint16][2]any{
		14: {"MODP_2048", 256},
		19: {"ECP_256", 64},
		20: {"ECP_384", 96},
		21: {"ECP_521", 132},
		31: {"CURVE_25519", 32},
	}
	for id, w := range groups {
		g := GroupByID(id)
		if g == nil || g.ID() != id || g.Name() != w[0] || g.PublicLen() != w[1] {
			t.Errorf("GroupByID(%d) = %v", id, g)
		}
	}
	for _, id := range []uint16{0, 1, 2, 11, 13, 19, 255} {
		if e := EncrByID(id); e != nil && id != EncrAESCBC && id != EncrAESGCM16 {
			t.Errorf("EncrByID(%d) = %v", id, e)
		}
	}
	if PRFByID(1) != nil || IntegByID(1) != nil || GroupByID(1) != nil || GroupByID(DHNone) != nil || IntegByID(IntegNone) != nil {
		t.Error("unimplemented IDs must return nil")
	}
}
