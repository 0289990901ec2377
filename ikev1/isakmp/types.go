// Package isakmp is IKEv1's wire format: the ISAKMP header and payloads of
// RFC 2408 §3 with the IPsec DOI values of RFC 2407, NAT traversal's
// NAT-D and NAT-OA payloads (RFC 3947), the IKE fragment payload that
// strongSwan, Cisco and Windows speak (type 132), and the GSS-API token
// payload of Windows' Kerberos method (type 129).
//
// Parsing is strict: every length is checked against what encloses it,
// reserved fields must be zero, counts are bounded, and the first fault is
// returned as an *Error naming the notification RFC 2408 §3.14.1 answers
// it with. Parsed payloads alias the input buffer; callers that keep them
// past the buffer's life must copy. It shares nothing with IKEv2's wire
// package: the two formats differ in every payload.
package isakmp

import "strconv"

// HeaderLen is the length of the ISAKMP header (RFC 2408 §3.1).
const HeaderLen = 28

// GenericHeaderLen is the length of the generic payload header (§3.2).
const GenericHeaderLen = 4

// Version is the version octet this package speaks: major 1, minor 0.
const Version = 0x10

// MajorVersion returns the major version of an ISAKMP/IKE header's version
// octet (the high nibble): 1 for IKEv1, 2 for IKEv2.
func MajorVersion(v uint8) uint8 { return v >> 4 }

// Exchange is the exchange type of the header (RFC 2408 §3.1, RFC 2409).
type Exchange uint8

// Exchange types.
const (
	ExchangeBase          Exchange = 1
	ExchangeMain          Exchange = 2 // Identity Protection: Main Mode
	ExchangeAuthOnly      Exchange = 3
	ExchangeAggressive    Exchange = 4
	ExchangeInformational Exchange = 5
	ExchangeTransaction   Exchange = 6 // mode config (draft-ietf-ipsec-isakmp-mode-cfg)
	ExchangeQuick         Exchange = 32
	ExchangeNewGroup      Exchange = 33
)

// String names the exchange as strongSwan logs it.
func (e Exchange) String() string {
	switch e {
	case ExchangeBase:
		return "BASE"
	case ExchangeMain:
		return "ID_PROT"
	case ExchangeAuthOnly:
		return "AUTH_ONLY"
	case ExchangeAggressive:
		return "AGGRESSIVE"
	case ExchangeInformational:
		return "INFORMATIONAL_V1"
	case ExchangeTransaction:
		return "TRANSACTION"
	case ExchangeQuick:
		return "QUICK_MODE"
	case ExchangeNewGroup:
		return "NEW_GROUP"
	}
	return "EXCHANGE_" + strconv.Itoa(int(e))
}

// Header flags (RFC 2408 §3.1).
const (
	FlagEncryption uint8 = 0x01
	FlagCommit     uint8 = 0x02
	FlagAuthOnly   uint8 = 0x04
)

// PayloadType identifies a payload in the next-payload chain.
type PayloadType uint8

// Payload types (RFC 2408 §3.1, RFC 3947, and the private-use types the
// real peers send).
const (
	PayloadNone      PayloadType = 0
	PayloadSA        PayloadType = 1
	PayloadProposal  PayloadType = 2
	PayloadTransform PayloadType = 3
	PayloadKE        PayloadType = 4
	PayloadID        PayloadType = 5
	PayloadCERT      PayloadType = 6
	PayloadCR        PayloadType = 7
	PayloadHash      PayloadType = 8
	PayloadSIG       PayloadType = 9
	PayloadNonce     PayloadType = 10
	PayloadN         PayloadType = 11
	PayloadD         PayloadType = 12
	PayloadVID       PayloadType = 13
	PayloadNATD      PayloadType = 20  // RFC 3947
	PayloadNATOA     PayloadType = 21  // RFC 3947
	PayloadGSS       PayloadType = 129 // GSS-API token (Windows Kerberos, racoon)
	PayloadFragment  PayloadType = 132 // IKE fragment (Cisco, strongSwan, Windows)
)

// String names the payload type.
func (t PayloadType) String() string {
	if n, ok := payloadNames[t]; ok {
		return n
	}
	return "PAYLOAD_" + strconv.Itoa(int(t))
}

var payloadNames = map[PayloadType]string{
	PayloadSA: "SA", PayloadProposal: "P", PayloadTransform: "T", PayloadKE: "KE", PayloadID: "ID",
	PayloadCERT: "CERT", PayloadCR: "CR", PayloadHash: "HASH", PayloadSIG: "SIG", PayloadNonce: "No",
	PayloadN: "N", PayloadD: "D", PayloadVID: "V", PayloadNATD: "NAT-D", PayloadNATOA: "NAT-OA",
	PayloadGSS: "GSS", PayloadFragment: "FRAG",
}

// Domains of interpretation and situations (RFC 2407 §4.2).
const (
	DOIISAKMP       uint32 = 0
	DOIIPsec        uint32 = 1
	SitIdentityOnly uint32 = 1
)

// Protocol IDs (RFC 2407 §4.4.1).
const (
	ProtoISAKMP uint8 = 1
	ProtoAH     uint8 = 2
	ProtoESP    uint8 = 3
	ProtoIPComp uint8 = 4
)

// Transform IDs.
const (
	// KeyIKE is the only transform of the ISAKMP protocol (RFC 2407 §4.4.2).
	KeyIKE uint8 = 1
	// ESP transform IDs (RFC 2407 §4.4.4, RFC 3602).
	ESP3DES   uint8 = 3
	ESPNull   uint8 = 11
	ESPAESCBC uint8 = 12
)

// Phase 1 (Oakley) attribute types (RFC 2409 Appendix A).
const (
	AttrEncryption   uint16 = 1
	AttrHash         uint16 = 2
	AttrAuthMethod   uint16 = 3
	AttrGroup        uint16 = 4
	AttrGroupType    uint16 = 5
	AttrGroupPrime   uint16 = 6
	AttrGroupGenOne  uint16 = 7
	AttrGroupGenTwo  uint16 = 8
	AttrGroupCurveA  uint16 = 9
	AttrGroupCurveB  uint16 = 10
	AttrLifeType     uint16 = 11
	AttrLifeDuration uint16 = 12
	AttrPRF          uint16 = 13
	AttrKeyLength    uint16 = 14
	AttrFieldSize    uint16 = 15
	AttrGroupOrder   uint16 = 16
	AttrGSSIdentity  uint16 = 16384 // Windows' Kerberos principal, UTF-16LE
)

// Phase 1 attribute values.
const (
	EncrDES3   uint16 = 5 // 3DES-CBC
	EncrAESCBC uint16 = 7 // RFC 3602

	HashMD5    uint16 = 1
	HashSHA1   uint16 = 2
	HashSHA256 uint16 = 4
	HashSHA384 uint16 = 5
	HashSHA512 uint16 = 6

	AuthPSK      uint16 = 1
	AuthDSS      uint16 = 2
	AuthRSASig   uint16 = 3
	AuthECDSA256 uint16 = 9  // RFC 4754
	AuthECDSA384 uint16 = 10 // RFC 4754
	AuthECDSA521 uint16 = 11 // RFC 4754
	// AuthGSSAPI is Windows' Kerberos method ("GSS-API Kerberos", announced
	// with the GSSAPI vendor ID, as the same value is XAUTHInitPreShared
	// elsewhere).
	AuthGSSAPI uint16 = 65001

	LifeSeconds   uint16 = 1
	LifeKilobytes uint16 = 2
)

// IPsec DOI (phase 2) attribute types (RFC 2407 §4.5).
const (
	AttrSALifeType     uint16 = 1
	AttrSALifeDuration uint16 = 2
	AttrSAGroup        uint16 = 3
	AttrEncapMode      uint16 = 4
	AttrAuthAlg        uint16 = 5
	AttrSAKeyLength    uint16 = 6
	AttrKeyRounds      uint16 = 7
)

// Encapsulation modes (RFC 2407 §4.5, RFC 3947 §5 for the UDP ones).
const (
	EncapTunnel       uint16 = 1
	EncapTransport    uint16 = 2
	EncapUDPTunnel    uint16 = 3
	EncapUDPTransport uint16 = 4
	// The values of draft-ietf-ipsec-nat-t-ike-00..03, still sent by peers
	// that negotiated a draft version.
	EncapUDPTunnelDraft    uint16 = 61443
	EncapUDPTransportDraft uint16 = 61444
)

// Phase 2 authentication algorithms (RFC 2407 §4.5, RFC 4868 §2.4).
const (
	AuthAlgHMACMD5    uint16 = 1
	AuthAlgHMACSHA1   uint16 = 2
	AuthAlgHMACSHA256 uint16 = 5
	AuthAlgHMACSHA384 uint16 = 6
	AuthAlgHMACSHA512 uint16 = 7
)

// Identification types (RFC 2407 §4.6.2.1).
const (
	IDIPv4       uint8 = 1
	IDFQDN       uint8 = 2
	IDUserFQDN   uint8 = 3
	IDIPv4Subnet uint8 = 4
	IDIPv6       uint8 = 5
	IDIPv6Subnet uint8 = 6
	IDIPv4Range  uint8 = 7
	IDIPv6Range  uint8 = 8
	IDDERASN1DN  uint8 = 9
	IDDERASN1GN  uint8 = 10
	IDKeyID      uint8 = 11
)

// Certificate encodings (RFC 2408 §3.9).
const (
	CertX509Sig uint8 = 4
	CertCRL     uint8 = 7
)

// NotifyType is a notify message type (RFC 2408 §3.14.1, RFC 2407 §4.6.3,
// RFC 3706).
type NotifyType uint16

// Notify message types.
const (
	InvalidPayloadType      NotifyType = 1
	DOINotSupported         NotifyType = 2
	SituationNotSupported   NotifyType = 3
	InvalidCookie           NotifyType = 4
	InvalidMajorVersion     NotifyType = 5
	InvalidMinorVersion     NotifyType = 6
	InvalidExchangeType     NotifyType = 7
	InvalidFlags            NotifyType = 8
	InvalidMessageID        NotifyType = 9
	InvalidProtocolID       NotifyType = 10
	InvalidSPI              NotifyType = 11
	InvalidTransformID      NotifyType = 12
	AttributesNotSupported  NotifyType = 13
	NoProposalChosen        NotifyType = 14
	BadProposalSyntax       NotifyType = 15
	PayloadMalformed        NotifyType = 16
	InvalidKeyInformation   NotifyType = 17
	InvalidIDInformation    NotifyType = 18
	InvalidCertEncoding     NotifyType = 19
	InvalidCertificate      NotifyType = 20
	CertTypeUnsupported     NotifyType = 21
	InvalidCertAuthority    NotifyType = 22
	InvalidHashInformation  NotifyType = 23
	AuthenticationFailed    NotifyType = 24
	InvalidSignature        NotifyType = 25
	AddressNotification     NotifyType = 26
	NotifySALifetime        NotifyType = 27
	CertificateUnavailable  NotifyType = 28
	UnsupportedExchangeType NotifyType = 29
	UnequalPayloadLengths   NotifyType = 30

	Connected         NotifyType = 16384
	ResponderLifetime NotifyType = 24576
	ReplayStatus      NotifyType = 24577
	InitialContact    NotifyType = 24578
	RUThere           NotifyType = 36136 // RFC 3706
	RUThereAck        NotifyType = 36137 // RFC 3706
)

// IsError reports whether the notify is an error (types below 8192, RFC
// 2408 §3.14.1) rather than a status.
func (n NotifyType) IsError() bool { return n < 8192 }

// String names the notify as strongSwan logs it.
func (n NotifyType) String() string {
	if s, ok := notifyNames[n]; ok {
		return s
	}
	return "NOTIFY_" + strconv.Itoa(int(n))
}

var notifyNames = map[NotifyType]string{
	InvalidPayloadType: "INVALID_PAYLOAD_TYPE", DOINotSupported: "DOI_NOT_SUPPORTED",
	SituationNotSupported: "SITUATION_NOT_SUPPORTED", InvalidCookie: "INVALID_COOKIE",
	InvalidMajorVersion: "INVALID_MAJOR_VERSION", InvalidMinorVersion: "INVALID_MINOR_VERSION",
	InvalidExchangeType: "INVALID_EXCHANGE_TYPE", InvalidFlags: "INVALID_FLAGS",
	InvalidMessageID: "INVALID_MESSAGE_ID", InvalidProtocolID: "INVALID_PROTOCOL_ID",
	InvalidSPI: "INVALID_SPI", InvalidTransformID: "INVALID_TRANSFORM_ID",
	AttributesNotSupported: "ATTRIBUTES_NOT_SUPPORTED", NoProposalChosen: "NO_PROPOSAL_CHOSEN",
	BadProposalSyntax: "BAD_PROPOSAL_SYNTAX", PayloadMalformed: "PAYLOAD_MALFORMED",
	InvalidKeyInformation: "INVALID_KEY_INFORMATION", InvalidIDInformation: "INVALID_ID_INFORMATION",
	InvalidCertEncoding: "INVALID_CERT_ENCODING", InvalidCertificate: "INVALID_CERTIFICATE",
	CertTypeUnsupported: "CERT_TYPE_UNSUPPORTED", InvalidCertAuthority: "INVALID_CERT_AUTHORITY",
	InvalidHashInformation: "INVALID_HASH_INFORMATION", AuthenticationFailed: "AUTHENTICATION_FAILED",
	InvalidSignature: "INVALID_SIGNATURE", AddressNotification: "ADDRESS_NOTIFICATION",
	NotifySALifetime: "NOTIFY_SA_LIFETIME", CertificateUnavailable: "CERTIFICATE_UNAVAILABLE",
	UnsupportedExchangeType: "UNSUPPORTED_EXCHANGE_TYPE", UnequalPayloadLengths: "UNEQUAL_PAYLOAD_LENGTHS",
	Connected: "CONNECTED", ResponderLifetime: "RESPONDER_LIFETIME", ReplayStatus: "REPLAY_STATUS",
	InitialContact: "INITIAL_CONTACT", RUThere: "DPD_R_U_THERE", RUThereAck: "DPD_R_U_THERE_ACK",
}
