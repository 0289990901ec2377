package transform

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"testing"
)

// prfPlusManual is prf+ written out from RFC 7296 §2.13 with crypto/hmac
// and SHA-256.
func prfPlusManual(key, seed []byte, n int) []byte {
	return prfPlusManualHash(sha256.New, key, seed, n)
}

// prfPlusManualHash is prfPlusManual with the PRF's hash.
func prfPlusManualHash(newHash func() hash.Hash, key, seed []byte, n int) []byte {
	var out, t []byte
	for i := 1; len(out) < n; i++ {
		m := hmac.New(newHash, key)
		m.Write(t)
		m.Write(seed)
		m.Write([]byte{byte(i)})
		t = m.Sum(nil)
		out = append(out, t...)
	}
	return out[:n]
}

func TestPRFPlus(t *testing.T) {
	prf := PRFByID(PRFHMACSHA2_256)
	key := []byte("prf+ key")
	seed := []byte("Ni | Nr | SPIi | SPIr")

	// T1 = prf(K, S | 0x01), T2 = prf(K, T1 | S | 0x02), T3 ...
	t1 := prf.Sum(nil, key, append(bytes.Clone(seed), 1))
	t2 := prf.Sum(nil, key, append(append(bytes.Clone(t1), seed...), 2))
	t3 := prf.Sum(nil, key, append(append(bytes.Clone(t2), seed...), 3))
	got, err := prf.Plus(key, seed, 80)
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "prf+ 80", got, append(append(append([]byte{}, t1...), t2...), t3[:16]...))

	for _, n := range []int{0, 1, 31, 32, 33, 64, 100, 255*32 - 1, 255 * 32} {
		got, err := prf.Plus(key, seed, n)
		if err != nil {
			t.Fatalf("Plus(%d): %v", n, err)
		}
		if len(got) != n {
			t.Fatalf("Plus(%d) gave %d octets", n, len(got))
		}
		if !bytes.Equal(got, prfPlusManual(key, seed, n)) {
			t.Errorf("Plus(%d) differs from the manual computation", n)
		}
	}
	// The counter is one octet: 255 blocks at most.
	for _, n := range []int{255*32 + 1, 256 * 32, -1} {
		if _, err := prf.Plus(key, seed, n); err == nil {
			t.Errorf("Plus(%d) did not fail", n)
		}
	}
	if _, err := PRFByID(PRFHMACSHA2_512).Plus(key, seed, 255*64); err != nil {
		t.Errorf("PRF_HMAC_SHA2_512 Plus(255*64): %v", err)
	}
	if _, err := PRFByID(PRFHMACSHA2_512).Plus(key, seed, 255*64+1); err == nil {
		t.Error("PRF_HMAC_SHA2_512 Plus(255*64+1) did not fail")
	}
}

func TestSKEYSEED(t *testing.T) {
	prf := PRFByID(PRFHMACSHA2_256)
	ni, nr, gir := seqBytes(32, 0x10), seqBytes(32, 0x80), seqBytes(256, 3)
	m := hmac.New(sha256.New, append(bytes.Clone(ni), nr...))
	m.Write(gir)
	checkBytes(t, "SKEYSEED", SKEYSEED(prf, ni, nr, gir), m.Sum(nil))
	// The nonces are the key, not the data.
	if bytes.Equal(SKEYSEED(prf, nr, ni, gir), m.Sum(nil)) {
		t.Error("SKEYSEED ignores the nonce order")
	}
}

func TestDeriveIKEKeys(t *testing.T) {
	ni, nr := seqBytes(32, 0x10), seqBytes(24, 0x80)
	spii, spir := uint64(0x0102030405060708), uint64(0x1112131415161718)
	seed := append(append(bytes.Clone(ni), nr...),
		0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18)
	for _, tc := range []struct {
		prf    uint16
		encLen int
		integ  uint16
	}{
		{PRFHMACSHA2_256, 16, IntegHMACSHA2_256_128},
		{PRFHMACSHA2_384, 32, IntegHMACSHA2_384_192},
		{PRFHMACSHA2_512, 24, IntegHMACSHA2_512_256},
		{PRFHMACSHA2_256, 36, IntegNone}, // AES_GCM_16-256
		{PRFHMACSHA2_512, 20, IntegNone}, // AES_GCM_16-128
	} {
		prf := PRFByID(tc.prf)
		integ := IntegByID(tc.integ)
		skeyseed := SKEYSEED(prf, ni, nr, seqBytes(32, 7))
		k, err := DeriveIKEKeys(prf, skeyseed, ni, nr, spii, spir, tc.encLen, integ)
		if err != nil {
			t.Fatal(err)
		}
		aLen := 0
		if integ != nil {
			aLen = integ.KeyLen
		}
		total := 3*prf.Size + 2*aLen + 2*tc.encLen
		stream, err := prf.Plus(skeyseed, seed, total)
		if err != nil {
			t.Fatal(err)
		}
		// {SK_d | SK_ai | SK_ar | SK_ei | SK_er | SK_pi | SK_pr}
		var off int
		next := func(n int) []byte { b := stream[off : off+n]; off += n; return b }
		want := IKEKeys{SkD: next(prf.Size)}
		if integ != nil {
			want.SkAi, want.SkAr = next(aLen), next(aLen)
		}
		want.SkEi, want.SkEr = next(tc.encLen), next(tc.encLen)
		want.SkPi, want.SkPr = next(prf.Size), next(prf.Size)
		for _, f := range []struct {
			name      string
			got, want []byte
		}{
			{"SK_d", k.SkD, want.SkD}, {"SK_ai", k.SkAi, want.SkAi}, {"SK_ar", k.SkAr, want.SkAr},
			{"SK_ei", k.SkEi, want.SkEi}, {"SK_er", k.SkEr, want.SkEr},
			{"SK_pi", k.SkPi, want.SkPi}, {"SK_pr", k.SkPr, want.SkPr},
		} {
			if len(f.got) != len(f.want) {
				t.Errorf("%s %s: %d octets, want %d", prf.Name, f.name, len(f.got), len(f.want))
			}
			checkBytes(t, prf.Name+" "+f.name, f.got, f.want)
		}
		if integ == nil && (k.SkAi != nil || k.SkAr != nil) {
			t.Error("SK_a present without integrity")
		}
		// Keys do not share capacity: appending to one leaves the next alone.
		before := bytes.Clone(k.SkAr)
		_ = append(k.SkAi, 0xee)
		checkBytes(t, "SK_ar after append to SK_ai", k.SkAr, before)

		k.Wipe()
		for _, b := range [][]byte{k.SkD, k.SkAi, k.SkAr, k.SkEi, k.SkEr, k.SkPi, k.SkPr} {
			if !bytes.Equal(b, make([]byte, len(b))) {
				t.Errorf("Wipe left %x", b)
			}
		}
	}
	if _, err := DeriveIKEKeys(PRFByID(5), []byte("k"), ni, nr, 1, 2, 0, nil); err == nil {
		t.Error("encKeyLen 0 accepted")
	}
}

// A fixed vector computed independently from crypto/hmac: AES_CBC-128,
// HMAC_SHA2_256_128, PRF_HMAC_SHA2_256.
func TestDeriveIKEKeysVector(t *testing.T) {
	ni := bytes.Repeat([]byte{0xa1}, 32)
	nr := bytes.Repeat([]byte{0xb2}, 32)
	gir := bytes.Repeat([]byte{0xc3}, 256)
	spii, spir := uint64(0x1122334455667788), uint64(0x99aabbccddeeff00)

	m := hmac.New(sha256.New, append(bytes.Clone(ni), nr...))
	m.Write(gir)
	skeyseed := m.Sum(nil)
	seed := append(append(bytes.Clone(ni), nr...), make([]byte, 16)...)
	binary.BigEndian.PutUint64(seed[64:], spii)
	binary.BigEndian.PutUint64(seed[72:], spir)
	stream := prfPlusManual(skeyseed, seed, 32+32+32+16+16+32+32)

	prf := PRFByID(PRFHMACSHA2_256)
	got := SKEYSEED(prf, ni, nr, gir)
	checkBytes(t, "SKEYSEED", got, skeyseed)
	k, err := DeriveIKEKeys(prf, got, ni, nr, spii, spir, 16, IntegByID(IntegHMACSHA2_256_128))
	if err != nil {
		t.Fatal(err)
	}
	checkBytes(t, "SK_d", k.SkD, stream[0:32])
	checkBytes(t, "SK_ai", k.SkAi, stream[32:64])
	checkBytes(t, "SK_ar", k.SkAr, stream[64:96])
	checkBytes(t, "SK_ei", k.SkEi, stream[96:112])
	checkBytes(t, "SK_er", k.SkEr, stream[112:128])
	checkBytes(t, "SK_pi", k.SkPi, stream[128:160])
	checkBytes(t, "SK_pr", k.SkPr, stream[160:192])
}

func TestDeriveChildKeys(t *testing.T) {
	prf := PRFByID(PRFHMACSHA2_256)
	skd := seqBytes(32, 0x40)
	ni, nr := seqBytes(32, 1), seqBytes(32, 0x90)
	gir := seqBytes(32, 0xd0)
	for _, tc := range []struct {
		name           string
		gir            []byte
		encLen, intLen int
	}{
		{"cbc", nil, 16, 32},
		{"cbc pfs", gir, 32, 64},
		{"gcm", nil, 36, 0},
		{"gcm pfs", gir, 20, 0},
	} {
		k, err := DeriveChildKeys(prf, skd, tc.gir, ni, nr, tc.encLen, tc.intLen)
		if err != nil {
			t.Fatal(err)
		}
		seed := append(append(bytes.Clone(tc.gir), ni...), nr...)
		stream := prfPlusManual(skd, seed, 2*(tc.encLen+tc.intLen))
		e, i := tc.encLen, tc.intLen
		checkBytes(t, tc.name+" EncI", k.EncI, stream[:e])
		checkBytes(t, tc.name+" EncR", k.EncR, stream[e+i:2*e+i])
		if i > 0 {
			checkBytes(t, tc.name+" IntegI", k.IntegI, stream[e:e+i])
			checkBytes(t, tc.name+" IntegR", k.IntegR, stream[2*e+i:])
		} else if len(k.IntegI) != 0 || len(k.IntegR) != 0 {
			t.Errorf("%s: integrity keys without integrity", tc.name)
		}
		k.Wipe()
		for _, b := range [][]byte{k.EncI, k.IntegI, k.EncR, k.IntegR} {
			if !bytes.Equal(b, make([]byte, len(b))) {
				t.Errorf("Wipe left %x", b)
			}
		}
	}
	// PFS changes the keys.
	a, _ := DeriveChildKeys(prf, skd, nil, ni, nr, 16, 32)
	b, _ := DeriveChildKeys(prf, skd, gir, ni, nr, 16, 32)
	if bytes.Equal(a.EncI, b.EncI) {
		t.Error("g^ir ignored")
	}
	if _, err := DeriveChildKeys(prf, skd, nil, ni, nr, 255*16, 255*16); err == nil {
		t.Error("oversized KEYMAT accepted")
	}
}
