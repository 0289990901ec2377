// Package wire is the IKEv2 wire format of RFC 7296 §3: the header, every
// payload, and the parsing and serialisation of whole messages.
//
// Parsing is strict: every length is checked against what encloses it, and
// the first fault is returned as an *Error whose Notify tells the caller
// which RFC 7296 error notification answers it. Parsed payloads alias the
// input buffer; callers that keep them past the buffer's life must copy.
package wire

import "github.com/iked/iked/ipsec"

// HeaderLen is the length of the fixed IKE header (RFC 7296 §3.1).
const HeaderLen = 28

// GenericHeaderLen is the length of the generic payload header (§3.2).
const GenericHeaderLen = 4

// Version is the IKE version byte this package speaks: major 2, minor 0.
const Version = 0x20

// ExchangeType is the exchange type field of the IKE header (§3.1).
type ExchangeType uint8

// Exchange types (IANA "IKEv2 Exchange Types").
const (
	IKE_SA_INIT     ExchangeType = 34
	IKE_AUTH        ExchangeType = 35
	CREATE_CHILD_SA ExchangeType = 36
	INFORMATIONAL   ExchangeType = 37
	// IKE_INTERMEDIATE (RFC 9242): exchanges between IKE_SA_INIT and
	// IKE_AUTH, protected and fragmentable, e.g. for additional key
	// exchanges (RFC 9370 §2.2.2).
	IKE_INTERMEDIATE ExchangeType = 43
	// IKE_FOLLOWUP_KE (RFC 9370 §2.2.4): the additional key exchanges of a
	// CREATE_CHILD_SA.
	IKE_FOLLOWUP_KE ExchangeType = 44
)

// Flags is the flags octet of the IKE header (§3.1).
type Flags uint8

// Header flags.
const (
	FlagInitiator Flags = 0x08 // sent by the original initiator of the IKE SA
	FlagVersion   Flags = 0x10 // sender can speak a higher major version
	FlagResponse  Flags = 0x20 // this message is a response
)

// PayloadType identifies a payload in the next-payload chain (§3.2).
type PayloadType uint8

// Payload types (IANA "IKEv2 Payload Types").
const (
	PayloadNone     PayloadType = 0
	PayloadSA       PayloadType = 33
	PayloadKE       PayloadType = 34
	PayloadIDi      PayloadType = 35
	PayloadIDr      PayloadType = 36
	PayloadCERT     PayloadType = 37
	PayloadCERTREQ  PayloadType = 38
	PayloadAUTH     PayloadType = 39
	PayloadNonce    PayloadType = 40
	PayloadNotify   PayloadType = 41
	PayloadDelete   PayloadType = 42
	PayloadVendorID PayloadType = 43
	PayloadTSi      PayloadType = 44
	PayloadTSr      PayloadType = 45
	PayloadSK       PayloadType = 46
	PayloadCP       PayloadType = 47
	PayloadEAP      PayloadType = 48
	PayloadSKF      PayloadType = 53 // RFC 7383 encrypted fragment
)

// Header is the fixed IKE header (§3.1).
type Header struct {
	SPIi, SPIr  uint64 // big-endian on the wire
	NextPayload PayloadType
	Version     uint8
	Exchange    ExchangeType
	Flags       Flags
	MessageID   uint32
	Length      uint32
}

// IsResponse reports whether the Response flag is set.
func (h *Header) IsResponse() bool { return h.Flags&FlagResponse != 0 }

// FromInitiator reports whether the Initiator flag is set.
func (h *Header) FromInitiator() bool { return h.Flags&FlagInitiator != 0 }

// Payload is one payload of a message. Each concrete type is a pointer to a
// struct of this package.
type Payload interface {
	// Type returns the payload type that announces this payload.
	Type() PayloadType
}

// Message is a parsed or to-be-serialised IKE message: the header and the
// payloads in order. An SK payload appears as *Encrypted; its inner payloads
// are parsed separately once decrypted (see ParsePayloads).
type Message struct {
	Header   Header
	Payloads []Payload
}

// ProtocolID names the protocol a proposal, notify or delete refers to (§3.3.1).
type ProtocolID uint8

// Protocol IDs.
const (
	ProtoIKE ProtocolID = 1
	ProtoAH  ProtocolID = 2
	ProtoESP ProtocolID = 3
)

// TransformType is the type of a transform substructure (§3.3.2).
type TransformType uint8

// Transform types.
const (
	TransformENCR  TransformType = 1
	TransformPRF   TransformType = 2
	TransformINTEG TransformType = 3
	TransformDH    TransformType = 4 // "Key Exchange Method" in later RFCs
	TransformESN   TransformType = 5
	// TransformADDKE1 to TransformADDKE7 are RFC 9370's Additional Key
	// Exchange 1 to 7 (types 6 to 12).
	TransformADDKE1 TransformType = 6
	TransformADDKE7 TransformType = 12
)

// AttrKeyLength is the Key Length transform attribute (§3.3.5), always TV.
const AttrKeyLength = 14

// SA is the Security Association payload (§3.3).
type SA struct {
	Proposals []Proposal
}

// Proposal is a proposal substructure (§3.3.1).
type Proposal struct {
	Number     uint8
	Protocol   ProtocolID
	SPI        []byte // empty in IKE_SA_INIT, 8 octets for an IKE rekey, 4 for ESP/AH
	Transforms []Transform
}

// Transform is a transform substructure (§3.3.2).
type Transform struct {
	Type TransformType
	ID   uint16
	// KeyLength is the Key Length attribute in bits, 0 when absent.
	KeyLength uint16
	// UnknownAttrs is set when the transform carried an attribute other than
	// Key Length; §3.3.6 says such a proposal must be rejected, so selection
	// code skips it.
	UnknownAttrs bool
}

// KE is the Key Exchange payload (§3.4).
type KE struct {
	Group uint16
	Data  []byte
}

// IDType is the ID Type of an identification payload (§3.5).
type IDType uint8

// ID types.
const (
	IDIPv4Addr   IDType = 1
	IDFQDN       IDType = 2
	IDRFC822Addr IDType = 3
	IDIPv6Addr   IDType = 5
	IDDERASN1DN  IDType = 9
	IDDERASN1GN  IDType = 10
	IDKeyID      IDType = 11
)

// ID is an identification payload, IDi or IDr (§3.5).
type ID struct {
	Responder bool // true for IDr, false for IDi
	IDType    IDType
	Data      []byte
}

// Cert is the Certificate payload (§3.6).
type Cert struct {
	Encoding uint8
	Data     []byte
}

// CertReq is the Certificate Request payload (§3.7).
type CertReq struct {
	Encoding uint8
	Data     []byte // concatenated SHA-1 hashes of trusted CA public keys for encoding 4
}

// AuthMethod is the Auth Method of an AUTH payload (§3.8).
type AuthMethod uint8

// Auth methods.
const (
	AuthRSASig        AuthMethod = 1
	AuthSharedKeyMIC  AuthMethod = 2
	AuthDSSSig        AuthMethod = 3
	AuthECDSA256      AuthMethod = 9
	AuthECDSA384      AuthMethod = 10
	AuthECDSA521      AuthMethod = 11
	AuthDigitalSig    AuthMethod = 14 // RFC 7427
	AuthNullAuth      AuthMethod = 13 // RFC 7619
	AuthPrivateUseMin AuthMethod = 201
)

// Auth is the Authentication payload (§3.8).
type Auth struct {
	Method AuthMethod
	Data   []byte
}

// Nonce is the Nonce payload (§3.9); 16 to 256 octets.
type Nonce struct {
	Data []byte
}

// NotifyType is the Notify Message Type (§3.10.1).
type NotifyType uint16

// Notify is the Notify payload (§3.10).
type Notify struct {
	Protocol ProtocolID // 0 when not about a specific SA
	SPI      []byte
	Code     NotifyType
	Data     []byte
}

// Delete is the Delete payload (§3.11).
type Delete struct {
	Protocol ProtocolID
	SPISize  uint8 // 0 for IKE, 4 for ESP and AH
	SPIs     [][]byte
}

// VendorID is the Vendor ID payload (§3.12).
type VendorID struct {
	Data []byte
}

// TSType is a Traffic Selector Type (§3.13.1), shared with the data plane
// (package ipsec).
type TSType = ipsec.TSType

// Traffic selector types.
const (
	TSIPv4AddrRange = ipsec.TSIPv4AddrRange
	TSIPv6AddrRange = ipsec.TSIPv6AddrRange
)

// TrafficSelector is one traffic selector (§3.13.1), the type both IKE
// versions and the data plane share (package ipsec).
type TrafficSelector = ipsec.TrafficSelector

// TS is a Traffic Selector payload, TSi or TSr (§3.13).
type TS struct {
	Responder bool // true for TSr
	Selectors []TrafficSelector
}

// Encrypted is the Encrypted and Authenticated payload, SK (§3.14), as it is
// on the wire: Body holds IV, ciphertext and ICV. First is the payload type
// of the first inner payload (the SK payload's Next Payload field).
type Encrypted struct {
	First PayloadType
	Body  []byte
}

// EncryptedFragment is the Encrypted Fragment payload, SKF (RFC 7383 §2.5).
type EncryptedFragment struct {
	First  PayloadType // nonzero only in fragment number 1
	Number uint16
	Total  uint16
	Body   []byte
}

// CP is the Configuration payload (§3.15).
type CP struct {
	CfgType uint8
	Attrs   []CPAttribute
}

// CPAttribute is one configuration attribute (§3.15.1).
type CPAttribute struct {
	Type  uint16 // 15 bits; the reserved high bit is zero
	Value []byte
}

// EAP is the Extensible Authentication payload (§3.16), kept opaque.
type EAP struct {
	Data []byte
}

// Unknown is a payload of a type this package does not know, with the
// critical bit clear; §2.5 says it is skipped, and it is kept so that
// tools can show it.
type Unknown struct {
	T        PayloadType
	Critical bool
	Data     []byte
}

// Type implementations.

// Type implements Payload.
func (*SA) Type() PayloadType { return PayloadSA }

// Type implements Payload.
func (*KE) Type() PayloadType { return PayloadKE }

// Type implements Payload.
func (p *ID) Type() PayloadType {
	if p.Responder {
		return PayloadIDr
	}
	return PayloadIDi
}

// Type implements Payload.
func (*Cert) Type() PayloadType { return PayloadCERT }

// Type implements Payload.
func (*CertReq) Type() PayloadType { return PayloadCERTREQ }

// Type implements Payload.
func (*Auth) Type() PayloadType { return PayloadAUTH }

// Type implements Payload.
func (*Nonce) Type() PayloadType { return PayloadNonce }

// Type implements Payload.
func (*Notify) Type() PayloadType { return PayloadNotify }

// Type implements Payload.
func (*Delete) Type() PayloadType { return PayloadDelete }

// Type implements Payload.
func (*VendorID) Type() PayloadType { return PayloadVendorID }

// Type implements Payload.
func (p *TS) Type() PayloadType {
	if p.Responder {
		return PayloadTSr
	}
	return PayloadTSi
}

// Type implements Payload.
func (*Encrypted) Type() PayloadType { return PayloadSK }

// Type implements Payload.
func (*EncryptedFragment) Type() PayloadType { return PayloadSKF }

// Type implements Payload.
func (*CP) Type() PayloadType { return PayloadCP }

// Type implements Payload.
func (*EAP) Type() PayloadType { return PayloadEAP }

// Type implements Payload.
func (p *Unknown) Type() PayloadType { return p.T }
