package gpipsec

import (
	"reflect"
	"testing"
)

// The known answers below are the provisioned blobs decoded by hand from
// [MS-GPIPSEC] §2.2.1 (a hex dump read field by field against the
// spec's tables), not taken from the decoder's output.

func TestKnownAnswerPolicy(t *testing.T) {
	d := provisioned(t)
	// 16-byte {22202163-4F4C-11D1-863B-00A0248D3021}, Data-Length 4,
	// Polling-Interval 0x00002A30 = 10,800 s, Unused 0.
	for _, g := range []string{"{72385230-70FA-11D1-864C-14A300000000}", "{72385236-70FA-11D1-864C-14A300000000}", "{7238523C-70FA-11D1-864C-14A300000000}"} {
		got, err := DecodePolicy(obj(t, d, "ipsecPolicy", g).Data)
		if err != nil || got.PollingInterval != 10800 {
			t.Errorf("ipsecPolicy%s: %+v %v, want polling interval 10800", g, got, err)
		}
	}
}

func TestKnownAnswerISAKMP(t *testing.T) {
	d := provisioned(t)
	// Data-Length 320 = 64 + 4×64; instance {5119D268-…}; Zero1, master
	// PFS 0, options 0, New-DH 0,0,0,0, QM-Limit 0, MM-Lifetime 0, 20
	// zero bytes, 4 methods. Each method: version 0.0, encryption
	// 8 bytes (ID in the low 4: 3 = 3DES or 1 = DES; 0x40 = 64 in the
	// high 4), 4 ignored bytes (0x08), hash 8 bytes (2 = SHA-1 or 1 =
	// MD5; 64), Random-Function 0, Oakley-Group 2 or 1,
	// QM-Limit 0, lifetime 0 KB and 0x7080 = 28,800 s, and
	// PFS-Identity-Required 0xCDCDCDCD.
	m := func(enc, hash, group uint32) MMMethod {
		return MMMethod{Encryption: enc, EncryptionKeyBits: 64, Hash: hash, HashKeyBits: 64, OakleyGroup: group,
			LifetimeSecs: 28800, PFSIdentityRequired: 0xCDCDCDCD}
	}
	instance, _ := ParseGUID("{5119D268-071D-11D3-AD22-0060B0ECCA17}")
	want := ISAKMPData{Instance: instance, Methods: []MMMethod{m(3, 2, 2), m(3, 1, 2), m(1, 2, 1), m(1, 1, 1)}}
	got, err := DecodeISAKMP(obj(t, d, "ipsecISAKMPPolicy", "{72385231-70FA-11D1-864C-14A300000000}").Data)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Errorf("ISAKMP:\n got %+v %v\nwant %+v", got, err, want)
	}
}

func TestKnownAnswerNFA(t *testing.T) {
	d := provisioned(t)
	// Every provisioned rule has the same 63-byte blob: Data-Length 42,
	// one auth method (type 5 Kerberos, length 2, data 0x0000),
	// Interface-Type 0xFFFFFFFD (all), Interface-Name length 2 (an empty
	// string), Tunnel-Address 0, not a tunnel, active, an empty
	// Tunnel-End-Point-Name, and the trailing 0x00.
	want := NFAData{Auth: []AuthMethod{{Type: AuthKerberos}}, Interface: InterfaceAll, Active: true}
	for _, g := range []string{"{72385232-70FA-11D1-864C-14A300000000}", "{59319BE2-5EE3-11D2-ACE8-0060B0ECCA17}", "{594272E2-071D-11D3-AD22-0060B0ECCA17}",
		"{59319C04-5EE3-11D2-ACE8-0060B0ECCA17}", "{7238523E-70FA-11D1-864C-14A300000000}", "{59319BF3-5EE3-11D2-ACE8-0060B0ECCA17}", "{594272FD-071D-11D3-AD22-0060B0ECCA17}"} {
		got, err := DecodeNFA(obj(t, d, "ipsecNFA", g).Data)
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("ipsecNFA%s:\n got %+v %v\nwant %+v", g, got, err, want)
		}
	}
}

func TestKnownAnswerNegotiation(t *testing.T) {
	d := provisioned(t)
	esp := func(id, integ uint32) []Algorithm { return []Algorithm{{Type: OfferESP, ID: id, Integrity: integ}} }
	ah := func(id uint32) []Algorithm { return []Algorithm{{Type: OfferAH, ID: id}} }
	cases := []struct {
		guid string
		want NegotiationData
	}{
		// "Request Security (Optional)": 5 offers (DataLength 404 =
		// 4 + 5×80): 900 s/100,000 KB ESP 3 with SHA-1 and ESP 1 with
		// SHA-1, 300 s/100,000 KB AH SHA-1 and AH MD5, then an offer
		// with no algorithms (the fall back to clear).
		{"{72385233-70FA-11D1-864C-14A300000000}", NegotiationData{Offers: []SecurityOffer{
			{LifetimeSecs: 900, LifetimeKB: 100000, Algorithms: esp(3, 2)},
			{LifetimeSecs: 900, LifetimeKB: 100000, Algorithms: esp(1, 2)},
			{LifetimeSecs: 300, LifetimeKB: 100000, Algorithms: ah(2)},
			{LifetimeSecs: 300, LifetimeKB: 100000, Algorithms: ah(1)},
			{}}}},
		// "Require Security": 4 offers of 900 s/100,000 KB, ESP 3/SHA-1,
		// 3/MD5, 1/SHA-1, 1/MD5.
		{"{7238523F-70FA-11D1-864C-14A300000000}", NegotiationData{Offers: []SecurityOffer{
			{LifetimeSecs: 900, LifetimeKB: 100000, Algorithms: esp(3, 2)},
			{LifetimeSecs: 900, LifetimeKB: 100000, Algorithms: esp(3, 1)},
			{LifetimeSecs: 900, LifetimeKB: 100000, Algorithms: esp(1, 2)},
			{LifetimeSecs: 900, LifetimeKB: 100000, Algorithms: esp(1, 1)}}}},
		// "Permit": no offers (DataLength 4).
		{"{7238523B-70FA-11D1-864C-14A300000000}", NegotiationData{}},
		// The default response rules' actions: 6 offers (DataLength 484),
		// no lifetimes: ESP 3/SHA-1, 3/MD5, 1/SHA-1, 1/MD5, AH SHA-1, AH MD5.
		{"{59319BDF-5EE3-11D2-ACE8-0060B0ECCA17}", NegotiationData{Offers: []SecurityOffer{
			{Algorithms: esp(3, 2)}, {Algorithms: esp(3, 1)}, {Algorithms: esp(1, 2)}, {Algorithms: esp(1, 1)},
			{Algorithms: ah(2)}, {Algorithms: ah(1)}}}},
	}
	for _, c := range cases {
		got, err := DecodeNegotiation(obj(t, d, "ipsecNegotiationPolicy", c.guid).Data)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ipsecNegotiationPolicy%s:\n got %+v %v\nwant %+v", c.guid, got, err, c.want)
		}
	}
}

func TestKnownAnswerFilter(t *testing.T) {
	d := provisioned(t)
	me := [4]byte{255, 255, 255, 255}
	// "All IP Traffic": Data-Length1 74, one legacy filter: three empty
	// strings (length 2 each), ID {59319BDD-…}, mirrored, source 0.0.0.0
	// mask 255.255.255.255 (this host), destination 0.0.0.0/0, no
	// tunnel, protocol 0, ports 0, not a tunnel, not special, options 0.
	id1, _ := ParseGUID("{59319BDD-5EE3-11D2-ACE8-0060B0ECCA17}")
	// "All ICMP Traffic": the same with the description "ICMP" (length
	// 10), ID {5119D263-…} and protocol 1.
	id2, _ := ParseGUID("{5119D263-071D-11D3-AD22-0060B0ECCA17}")
	cases := []struct {
		guid string
		want FilterData
	}{
		{"{7238523A-70FA-11D1-864C-14A300000000}", FilterData{Legacy: []LegacyFilter{{ID: id1, Mirrored: true, SrcMask: me}}}},
		{"{72385235-70FA-11D1-864C-14A300000000}", FilterData{Legacy: []LegacyFilter{{Description: "ICMP", ID: id2, Mirrored: true, SrcMask: me, Protocol: 1}}}},
	}
	for _, c := range cases {
		got, err := DecodeFilter(obj(t, d, "ipsecFilter", c.guid).Data)
		if err != nil || !reflect.DeepEqual(got, c.want) {
			t.Errorf("ipsecFilter%s:\n got %+v %v\nwant %+v", c.guid, got, err, c.want)
		}
	}
}

// TestEncodeMatchesProvisioned: the encoder writes, byte for byte, the
// provisioned blobs that hold no uninitialised memory.
func TestEncodeMatchesProvisioned(t *testing.T) {
	d := provisioned(t)
	for _, o := range d.Objects() {
		v, err := DecodeAny(o)
		if err != nil {
			continue
		}
		var enc []byte
		clean := true
		switch x := v.(type) {
		case PolicyData:
			enc = x.Encode()
		case NFAData:
			enc = x.Encode()
		case FilterData:
			enc = x.Encode()
		case NegotiationData:
			enc, clean = x.Encode(), len(x.Offers) == 0
		case ISAKMPData:
			enc, clean = x.Encode(), false
		}
		if clean && string(enc) != string(o.Data) {
			t.Errorf("%s: encoded\n%x\nprovisioned\n%x", o.DN, enc, o.Data)
		}
		// Every blob, clean or not, decodes again to the same value.
		again, err := DecodeAny(&Object{DN: o.DN, Class: o.Class, DataType: "256", Data: enc})
		if err != nil || !reflect.DeepEqual(again, v) {
			t.Errorf("%s: re-decoded %+v %v, want %+v", o.DN, again, err, v)
		}
	}
}
