package vici

import "testing"

// TestAdditionalKeyExchanges: a hybrid suite's KEn_ parts are listed as
// strongSwan 6 lists them (ake1 ... ake7), not as the DH group.
func TestAdditionalKeyExchanges(t *testing.T) {
	a := parseAlgorithms("AES_GCM_16-256/PRF_HMAC_SHA2_384/CURVE_25519/KE1_ML_KEM_768/KE3_ML_KEM_1024")
	if a.dh != "CURVE_25519" || a.ake[0] != "ML_KEM_768" || a.ake[1] != "" || a.ake[2] != "ML_KEM_1024" {
		t.Fatalf("%+v", a)
	}
	m := NewMessage()
	a.add(m, true)
	get := func(k string) string { v, _ := m.Get(k); return v }
	if get("ake1") != "ML_KEM_768" || get("ake3") != "ML_KEM_1024" || get("dh-group") != "CURVE_25519" {
		t.Fatalf("message %+v", m)
	}
}
