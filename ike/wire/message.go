package wire

// Error is a fault found while parsing, with the notify that answers it
// (RFC 7296 §2.21) and a short reason for metrics and logs.
type Error struct {
	// Notify is INVALID_SYNTAX, UNSUPPORTED_CRITICAL_PAYLOAD or INVALID_MAJOR_VERSION.
	Notify NotifyType
	// Payload is the offending payload type; for UNSUPPORTED_CRITICAL_PAYLOAD
	// it is the notification data (§3.10.1).
	Payload PayloadType
	// Reason is a stable metric label: "truncated_header", "bad_length",
	// "unsupported_critical_payload", "bad_version", "invalid_syntax".
	Reason string
	// Detail is a human-readable explanation for logs.
	Detail string
}

// Error implements error.
func (e *Error) Error() string { panic("unimplemented") }

// ParseHeader parses the fixed header at the start of b. It fails with
// Reason "truncated_header" when b is shorter than HeaderLen or than the
// header's Length field, "bad_length" when Length is below HeaderLen, and
// "bad_version" (INVALID_MAJOR_VERSION) when the major version is not 2.
func ParseHeader(b []byte) (Header, error) { panic("unimplemented") }

// Parse parses a whole message: the header, then the payload chain. b must
// hold exactly Header.Length octets (extra octets are an error). An SK or
// SKF payload must be the last one. Payloads alias b.
func Parse(b []byte) (*Message, error) { panic("unimplemented") }

// ParsePayloads parses a payload chain whose first payload is of type first,
// such as the decrypted contents of an SK payload. Payloads alias b.
func ParsePayloads(first PayloadType, b []byte) ([]Payload, error) { panic("unimplemented") }

// AppendHeader appends the 28-octet header h to b, exactly as given.
func AppendHeader(b []byte, h *Header) []byte { panic("unimplemented") }

// AppendPayloads appends the chain ps to b, with each generic header's Next
// Payload and length filled in; the last payload's Next Payload is 0. The
// chain's first type is ps[0].Type(). An *Encrypted must be last.
func AppendPayloads(b []byte, ps []Payload) []byte { panic("unimplemented") }

// Marshal serialises m, setting Header.NextPayload to the first payload's
// type (0 when there is none) and Header.Length to the total length; m's
// Header is updated to match what was written.
func (m *Message) Marshal() []byte { panic("unimplemented") }

// AppendBody appends the ID payload body that AUTH covers (RFC 7296 §2.15
// "RestOfInitIDPayload"): ID Type, three reserved octets, then Data.
func (p *ID) AppendBody(b []byte) []byte { panic("unimplemented") }

// Find returns the first payload of type t in ps, or nil.
func Find(ps []Payload, t PayloadType) Payload {
	for _, p := range ps {
		if p.Type() == t {
			return p
		}
	}
	return nil
}

// FindNotify returns the first Notify of type code in ps, or nil.
func FindNotify(ps []Payload, code NotifyType) *Notify {
	for _, p := range ps {
		if n, ok := p.(*Notify); ok && n.Code == code {
			return n
		}
	}
	return nil
}
