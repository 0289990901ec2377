package gpipsec

// NegotiationData is the ipsecData of an ipsecNegotiationPolicy object:
// the filter action's security methods (quick mode offers), in
// preference order (§2.2.1.4.1).
type NegotiationData struct {
	Offers []SecurityOffer
}

// SecurityOffer is one security method (80 bytes). An offer with no
// algorithms is how Windows stores "Allow unsecured communication with
// non-IPsec-aware computers" (the soft association).
type SecurityOffer struct {
	// LifetimeSecs and LifetimeKB are the quick mode lifetimes; 0 is
	// unset.
	LifetimeSecs, LifetimeKB uint32
	// PFS is session key perfect forward secrecy. The field is
	// PFS-QM-Required; the spec's table reads 0 as "QM-PFS is used",
	// but Windows' default filter actions, which do not use PFS, store
	// 0, so iked reads it as its name says: nonzero requires PFS.
	PFS bool
	// Algorithms are the offer's transforms (at most 3).
	Algorithms []Algorithm
}

// OfferType is AH or ESP.
type OfferType uint32

// Offer-Type values.
const (
	OfferAH  OfferType = 1
	OfferESP OfferType = 2
)

// Algorithm is one transform of an offer (20 bytes).
type Algorithm struct {
	Type OfferType
	// ID is the Algorithm-Identifier: for AH 1 MD5, 2 SHA-1; for ESP
	// 1 null, 2 DES, 3 3DES (the spec's table).
	ID uint32
	// Integrity is the ESP-Integrity-Identifier: 0 none, 1 MD5, 2 SHA-1.
	Integrity uint32
}

// String names the transform as Windows' filter action dialog does,
// with the spec's names for the algorithm identifiers.
func (a Algorithm) String() string {
	hash := map[uint32]string{0: "none", 1: "MD5", 2: "SHA-1"}
	if a.Type == OfferAH {
		return "AH " + hash[a.ID]
	}
	enc := map[uint32]string{1: "null", 2: "DES", 3: "3DES"}
	return "ESP " + enc[a.ID] + "/" + hash[a.Integrity]
}

// DecodeNegotiation decodes an ipsecNegotiationPolicy blob.
func DecodeNegotiation(b []byte) (NegotiationData, error) {
	r := &reader{kind: "ipsecNegotiationPolicy", b: b}
	r.expectGUID(NegotiationBlobID, "Negotiation-Policy-ID")
	s := r.section("DataLength")
	var d NegotiationData
	n := s.count("Security-Offer-Count", 80)
	for i := 0; i < n && s.err == nil; i++ {
		d.Offers = append(d.Offers, decodeOffer(s, i))
	}
	s.end(r, "negotiation data")
	r.pad()
	return d, r.done()
}

func decodeOffer(s *reader, i int) SecurityOffer {
	var o SecurityOffer
	o.LifetimeSecs = s.u32("Lifetime-Seconds")
	o.LifetimeKB = s.u32("Lifetime-KBytes")
	at := s.off
	if opts := s.u32("Negotiation-Options"); opts != 0 {
		s.fail(at, "offer %d: Negotiation-Options is %#x, must be 0", i+1, opts)
	}
	o.PFS = s.bool32("PFS-QM-Required")
	at = s.off
	n := s.u32("Algorithm-Offer-Count")
	if n > 3 {
		s.fail(at, "offer %d: Algorithm-Offer-Count %d is more than 3", i+1, n)
	}
	data := s.take(60, "Algorithm-Offer-Data")
	if s.err != nil {
		return o
	}
	// Only the first n of the three 20-byte slots are significant; the
	// rest, and each slot's Zero1, are ignored when read (Windows leaves
	// uninitialised memory in them).
	for j := range int(n) {
		a := &reader{kind: s.kind, b: data[20*j : 20*j+12], off: 0}
		alg := Algorithm{ID: a.u32(""), Integrity: a.u32(""), Type: OfferType(a.u32(""))}
		off := at + 4 + 20*j
		switch {
		case alg.Type == OfferAH && (alg.ID == 1 || alg.ID == 2) && alg.Integrity == 0:
		case alg.Type == OfferESP && alg.ID >= 1 && alg.ID <= 3 && alg.Integrity <= 2:
		default:
			s.fail(off, "offer %d algorithm %d: Offer-Type %d, Algorithm-Identifier %d, ESP-Integrity-Identifier %d is not a known transform", i+1, j+1, alg.Type, alg.ID, alg.Integrity)
			return o
		}
		o.Algorithms = append(o.Algorithms, alg)
	}
	return o
}

// Encode writes the blob.
func (d NegotiationData) Encode() []byte {
	w := &writer{}
	w.guid(NegotiationBlobID)
	w.section(func(s *writer) {
		s.u32(uint32(len(d.Offers)))
		for _, o := range d.Offers {
			s.u32(o.LifetimeSecs)
			s.u32(o.LifetimeKB)
			s.u32(0)
			s.bool32(o.PFS)
			s.u32(uint32(len(o.Algorithms)))
			for j := range 3 {
				if j < len(o.Algorithms) {
					a := o.Algorithms[j]
					s.u32(a.ID)
					s.u32(a.Integrity)
					s.u32(uint32(a.Type))
					s.zero(8)
				} else {
					s.zero(20)
				}
			}
		}
	})
	return w.b
}
