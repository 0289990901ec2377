package gpipsec

// DefaultPollingInterval is what a Polling-Interval of 0 means: 10,800
// seconds ([MS-GPIPSEC] §2.2.1.1.1).
const DefaultPollingInterval = 10800

// PolicyData is the ipsecData of an ipsecPolicy object (§2.2.1.1.1).
type PolicyData struct {
	// PollingInterval is how often, in seconds, a client looks for policy
	// changes; 0 means DefaultPollingInterval.
	PollingInterval uint32
}

// DecodePolicy decodes an ipsecPolicy blob: the type GUID, a Data-Length
// of 4, the polling interval and the unused byte.
func DecodePolicy(b []byte) (PolicyData, error) {
	r := &reader{kind: "ipsecPolicy", b: b}
	r.expectGUID(PolicyBlobID, "IPsec_Policy_ID")
	at := r.off
	s := r.section("Data-Length")
	if r.err == nil && len(s.b)-s.off != 4 {
		r.fail(at, "Data-Length is %d, must be 4", len(s.b)-s.off)
	}
	var d PolicyData
	d.PollingInterval = s.u32("Polling-Interval")
	s.end(r, "policy data")
	// Unused (1 byte): written as 0, ignored when read; required, as the
	// spec lists it as a field.
	r.take(1, "Unused")
	return d, r.done()
}

// Encode writes the blob.
func (d PolicyData) Encode() []byte {
	w := &writer{}
	w.guid(PolicyBlobID)
	w.section(func(s *writer) { s.u32(d.PollingInterval) })
	return w.b
}
