package gpipsec

// ISAKMPData is the ipsecData of an ipsecISAKMPPolicy object: the IKE
// main mode settings (§2.2.1.2.1).
type ISAKMPData struct {
	// Instance is the ISAKMP-Policy-Instance GUID. The spec says it MUST
	// be the object's own GUID; Windows' default objects carry another
	// one, so a mismatch is kept, not refused.
	Instance GUID
	// MasterPFS is Master-PFS-Required.
	MasterPFS bool
	// Options is ISAKMP-Options: bit 0 certificate-to-account mapping,
	// bit 1 no certificate request payload.
	Options uint32
	// NewDH are the New-DH-1..4 offers (0 unused, 1..4 the
	// DES/3DES-MD5/SHA-1 with DH-2048 suites), before Methods.
	NewDH [4]uint8
	// QMLimit is quick modes per main mode (0: no limit); MMLifetime the
	// main mode key lifetime in seconds (0: 28,800).
	QMLimit, MMLifetime uint32
	// Methods are the main mode security methods, in order.
	Methods []MMMethod
}

// MMMethod is one ISAKMP security method (64 bytes).
type MMMethod struct {
	// Encryption is the Encryption-Algorithm-ID (0 none, 1 DES, 2 and 3
	// 3DES); Hash the Hash-Algorithm-ID (0 none, 1 MD5, 2 SHA-1). The
	// spec gives each 8 bytes; Windows writes the ID in the low 4 and
	// the key length in bits in the high 4 (EncryptionKeyBits,
	// HashKeyBits).
	Encryption, EncryptionKeyBits uint32
	Hash, HashKeyBits             uint32
	// RandomFunction, when not 0, overrides the algorithms and group
	// (1..4: DES/3DES with MD5/SHA, group 14).
	RandomFunction uint8
	// OakleyGroup is 0 (unused), 1, 2 or 0x10000001 (group 14).
	OakleyGroup uint32
	// QMLimit, LifetimeKB and LifetimeSecs are this method's limits.
	QMLimit, LifetimeKB, LifetimeSecs uint32
	// PFSIdentityRequired is the raw field: the spec allows 0 and 1, but
	// Windows' default objects hold 0xCDCDCDCD (uninitialised memory) in
	// it, so it is kept as read; iked does not use it.
	PFSIdentityRequired uint32
}

// OakleyGroup14 is the Oakley-Group value of DH group 14.
const OakleyGroup14 = 0x10000001

// DecodeISAKMP decodes an ipsecISAKMPPolicy blob.
func DecodeISAKMP(b []byte) (ISAKMPData, error) {
	r := &reader{kind: "ipsecISAKMPPolicy", b: b}
	r.expectGUID(ISAKMPBlobID, "ISAKMP-Policy-Type-ID")
	s := r.section("Data-Length")
	var d ISAKMPData
	d.Instance = s.guid("ISAKMP-Policy-Instance")
	s.u32("Zero1") // ignored when read
	d.MasterPFS = s.bool32("Master-PFS-Required")
	at := s.off
	if d.Options = s.u32("ISAKMP-Options"); d.Options > 3 {
		s.fail(at, "ISAKMP-Options is %#x, want 0 to 3", d.Options)
	}
	at = s.off
	for i := range d.NewDH {
		d.NewDH[i] = s.u8("New-DH")
	}
	seenZero := false
	for i, v := range d.NewDH {
		if v > 4 {
			s.fail(at+i, "New-DH-%d is %#x, want 0 to 4", i+1, v)
		}
		if v == 0 {
			seenZero = true
		} else if seenZero {
			s.fail(at+i, "New-DH-%d is set after an unused New-DH field", i+1)
		}
	}
	d.QMLimit = s.u32("QM-Limit")
	d.MMLifetime = s.u32("MM-Lifetime")
	s.take(20, "Zero2")
	n := s.count("Security-Method-Count", 64)
	for i := 0; i < n && s.err == nil; i++ {
		d.Methods = append(d.Methods, decodeMMMethod(s, i))
	}
	s.end(r, "ISAKMP data")
	r.pad()
	return d, r.done()
}

func decodeMMMethod(s *reader, i int) MMMethod {
	var m MMMethod
	at := s.off
	if major, minor := s.u8("Major-Version"), s.u8("Minor-Version"); s.err == nil && (major != 0 || minor != 0) {
		s.fail(at, "security method %d: crypto bundle version %d.%d, only 0.0 is known", i+1, major, minor)
	}
	s.take(2, "Zero3")
	at = s.off
	m.Encryption, m.EncryptionKeyBits = s.u32("Encryption-Algorithm-ID"), s.u32("Encryption-Algorithm-ID")
	if m.Encryption > 3 {
		s.fail(at, "security method %d: Encryption-Algorithm-ID %d is unknown", i+1, m.Encryption)
	}
	s.take(4, "Zero4")
	at = s.off
	m.Hash, m.HashKeyBits = s.u32("Hash-Algorithm-ID"), s.u32("Hash-Algorithm-ID")
	if m.Hash > 2 {
		s.fail(at, "security method %d: Hash-Algorithm-ID %d is unknown", i+1, m.Hash)
	}
	s.take(4, "Zero5")
	s.take(8, "Zero6")
	at = s.off
	if m.RandomFunction = s.u8("Random-Function"); m.RandomFunction > 4 {
		s.fail(at, "security method %d: Random-Function %d is unknown", i+1, m.RandomFunction)
	}
	s.take(7, "Zero7")
	at = s.off
	switch m.OakleyGroup = s.u32("Oakley-Group"); m.OakleyGroup {
	case 0, 1, 2, OakleyGroup14:
	default:
		s.fail(at, "security method %d: Oakley-Group %#x is unknown", i+1, m.OakleyGroup)
	}
	m.QMLimit = s.u32("QM-Limit")
	m.LifetimeKB = s.u32("Oakley-Lifetime-KB")
	m.LifetimeSecs = s.u32("Oakley-Lifetime-Secs")
	m.PFSIdentityRequired = s.u32("PFS-Identity-Required")
	return m
}

// Encode writes the blob.
func (d ISAKMPData) Encode() []byte {
	w := &writer{}
	w.guid(ISAKMPBlobID)
	w.section(func(s *writer) {
		s.guid(d.Instance)
		s.u32(0)
		s.bool32(d.MasterPFS)
		s.u32(d.Options)
		for _, v := range d.NewDH {
			s.u8(v)
		}
		s.u32(d.QMLimit)
		s.u32(d.MMLifetime)
		s.zero(20)
		s.u32(uint32(len(d.Methods)))
		for _, m := range d.Methods {
			s.u8(0)
			s.u8(0)
			s.zero(2)
			s.u32(m.Encryption)
			s.u32(m.EncryptionKeyBits)
			s.zero(4)
			s.u32(m.Hash)
			s.u32(m.HashKeyBits)
			s.zero(4)
			s.zero(8)
			s.u8(m.RandomFunction)
			s.zero(7)
			s.u32(m.OakleyGroup)
			s.u32(m.QMLimit)
			s.u32(m.LifetimeKB)
			s.u32(m.LifetimeSecs)
			s.u32(m.PFSIdentityRequired)
		}
	})
	return w.b
}
