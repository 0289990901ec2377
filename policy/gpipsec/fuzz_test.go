package gpipsec

import (
	"os"
	"reflect"
	"testing"
)

// seeds adds the provisioned blobs of a class (when Samba's provisioning
// data is installed) and the encoder's own output.
func seeds(f *testing.F, class string, own ...[]byte) {
	for _, b := range own {
		f.Add(b)
	}
	fh, err := os.Open(provisionLDIF)
	if err != nil {
		return
	}
	defer fh.Close()
	objs, _ := ReadLDIF(fh, map[string]string{"DOMAINDN": testDomainDN})
	for _, o := range objs {
		if o.Class == class {
			f.Add(o.Data)
		}
	}
}

// fuzzRoundTrip: any blob decodes or is refused without a panic, and what
// decodes encodes to a blob that decodes to the same value.
func fuzzRoundTrip[T interface{ Encode() []byte }](t *testing.T, b []byte, decode func([]byte) (T, error)) {
	v, err := decode(b)
	if err != nil {
		return
	}
	again, err := decode(v.Encode())
	if err != nil {
		t.Fatalf("re-encoded blob refused: %v", err)
	}
	if !reflect.DeepEqual(again, v) {
		t.Fatalf("round trip changed %+v into %+v", v, again)
	}
}

func FuzzDecodePolicy(f *testing.F) {
	seeds(f, ClassPolicy, PolicyData{PollingInterval: 60}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, b, DecodePolicy) })
}

func FuzzDecodeISAKMP(f *testing.F) {
	seeds(f, ClassISAKMP, ISAKMPData{Methods: []MMMethod{{Encryption: 3, Hash: 2, OakleyGroup: 2}}}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, b, DecodeISAKMP) })
}

func FuzzDecodeNFA(f *testing.F) {
	seeds(f, ClassNFA, NFAData{Auth: []AuthMethod{{Type: AuthPSK, Value: "secret"}, {Type: AuthKerberos}}, Interface: InterfaceLAN, Active: true, AltAuth: true}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, b, DecodeNFA) })
}

func FuzzDecodeNegotiation(f *testing.F) {
	seeds(f, ClassNegotiation, NegotiationData{Offers: []SecurityOffer{{LifetimeSecs: 60, PFS: true, Algorithms: []Algorithm{{Type: OfferESP, ID: 3, Integrity: 2}}}, {}}}.Encode())
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, b, DecodeNegotiation) })
}

func FuzzDecodeFilter(f *testing.F) {
	objs, _ := Export(labPolicy(), ExportOptions{DomainDN: testDomainDN})
	var own [][]byte
	for _, o := range objs {
		if o.Class == ClassFilter {
			own = append(own, o.Data)
		}
	}
	seeds(f, ClassFilter, own...)
	f.Fuzz(func(t *testing.T, b []byte) { fuzzRoundTrip(t, b, DecodeFilter) })
}
