package wire

import "strconv"

// Names of the wire enums, as IANA registers them (and as strongSwan and
// Wireshark print them): one table per enum, used by logs, metric labels
// and the load generator alike. A value without a name prints with its
// number.

var exchangeNames = map[ExchangeType]string{
	IKE_SA_INIT: "IKE_SA_INIT", IKE_AUTH: "IKE_AUTH", CREATE_CHILD_SA: "CREATE_CHILD_SA", INFORMATIONAL: "INFORMATIONAL",
	IKE_INTERMEDIATE: "IKE_INTERMEDIATE", IKE_FOLLOWUP_KE: "IKE_FOLLOWUP_KE",
}

// String returns the exchange's IANA name, or "exchange-N".
func (t ExchangeType) String() string { return name(exchangeNames, t, "exchange-") }

var payloadNames = map[PayloadType]string{
	PayloadNone: "NONE", PayloadSA: "SA", PayloadKE: "KE", PayloadIDi: "IDi", PayloadIDr: "IDr", PayloadCERT: "CERT",
	PayloadCERTREQ: "CERTREQ", PayloadAUTH: "AUTH", PayloadNonce: "No", PayloadNotify: "N", PayloadDelete: "D",
	PayloadVendorID: "V", PayloadTSi: "TSi", PayloadTSr: "TSr", PayloadSK: "SK", PayloadCP: "CP", PayloadEAP: "EAP",
	PayloadSKF: "SKF",
}

// String returns the payload's abbreviation as RFC 7296 §3 writes it in
// message diagrams (SA, KE, IDi, No, N, D, V, TSi, SK …), or "payload-N".
func (t PayloadType) String() string { return name(payloadNames, t, "payload-") }

var protocolNames = map[ProtocolID]string{ProtoIKE: "IKE", ProtoAH: "AH", ProtoESP: "ESP"}

// String returns "IKE", "AH", "ESP", or "protocol-N".
func (p ProtocolID) String() string { return name(protocolNames, p, "protocol-") }

var transformTypeNames = map[TransformType]string{
	TransformENCR: "ENCR", TransformPRF: "PRF", TransformINTEG: "INTEG", TransformDH: "KE", TransformESN: "ESN",
	TransformADDKE1: "ADDKE1", 7: "ADDKE2", 8: "ADDKE3", 9: "ADDKE4", 10: "ADDKE5", 11: "ADDKE6", TransformADDKE7: "ADDKE7",
}

// String returns the transform type's IANA abbreviation, or "transform-N".
func (t TransformType) String() string { return name(transformTypeNames, t, "transform-") }

var idTypeNames = map[IDType]string{
	IDIPv4Addr: "ID_IPV4_ADDR", IDFQDN: "ID_FQDN", IDRFC822Addr: "ID_RFC822_ADDR", IDIPv6Addr: "ID_IPV6_ADDR",
	IDDERASN1DN: "ID_DER_ASN1_DN", IDDERASN1GN: "ID_DER_ASN1_GN", IDKeyID: "ID_KEY_ID",
}

// String returns the identification type's IANA name, or "ID_N".
func (t IDType) String() string { return name(idTypeNames, t, "ID_") }

var authMethodNames = map[AuthMethod]string{
	AuthRSASig: "RSA_SIG", AuthSharedKeyMIC: "PSK", AuthDSSSig: "DSS_SIG", AuthECDSA256: "ECDSA_256",
	AuthECDSA384: "ECDSA_384", AuthECDSA521: "ECDSA_521", AuthDigitalSig: "DIGITAL_SIGNATURE", AuthNullAuth: "NULL_AUTH",
}

// String returns the authentication method's name, or "AUTH_N" (the
// private-use range, where iked's Kerberos method sits, included).
func (m AuthMethod) String() string { return name(authMethodNames, m, "AUTH_") }

var notifyNames = map[NotifyType]string{
	NotifyUnsupportedCriticalPayload: "UNSUPPORTED_CRITICAL_PAYLOAD",
	NotifyInvalidIKESPI:              "INVALID_IKE_SPI",
	NotifyInvalidMajorVersion:        "INVALID_MAJOR_VERSION",
	NotifyInvalidSyntax:              "INVALID_SYNTAX",
	NotifyInvalidMessageID:           "INVALID_MESSAGE_ID",
	NotifyInvalidSPI:                 "INVALID_SPI",
	NotifyNoProposalChosen:           "NO_PROPOSAL_CHOSEN",
	NotifyInvalidKEPayload:           "INVALID_KE_PAYLOAD",
	NotifyAuthenticationFailed:       "AUTHENTICATION_FAILED",
	NotifySinglePairRequired:         "SINGLE_PAIR_REQUIRED",
	NotifyNoAdditionalSAs:            "NO_ADDITIONAL_SAS",
	NotifyInternalAddressFailure:     "INTERNAL_ADDRESS_FAILURE",
	NotifyFailedCPRequired:           "FAILED_CP_REQUIRED",
	NotifyTSUnacceptable:             "TS_UNACCEPTABLE",
	NotifyInvalidSelectors:           "INVALID_SELECTORS",
	NotifyTemporaryFailure:           "TEMPORARY_FAILURE",
	NotifyChildSANotFound:            "CHILD_SA_NOT_FOUND",
	NotifyStateNotFound:              "STATE_NOT_FOUND",

	NotifyInitialContact:                "INITIAL_CONTACT",
	NotifySetWindowSize:                 "SET_WINDOW_SIZE",
	NotifyAdditionalTSPossible:          "ADDITIONAL_TS_POSSIBLE",
	NotifyIPCompSupported:               "IPCOMP_SUPPORTED",
	NotifyNATDetectionSourceIP:          "NAT_DETECTION_SOURCE_IP",
	NotifyNATDetectionDestinationIP:     "NAT_DETECTION_DESTINATION_IP",
	NotifyCookie:                        "COOKIE",
	NotifyUseTransportMode:              "USE_TRANSPORT_MODE",
	NotifyHTTPCertLookupSupported:       "HTTP_CERT_LOOKUP_SUPPORTED",
	NotifyRekeySA:                       "REKEY_SA",
	NotifyESPTFCPaddingNotSupported:     "ESP_TFC_PADDING_NOT_SUPPORTED",
	NotifyNonFirstFragmentsAlso:         "NON_FIRST_FRAGMENTS_ALSO",
	NotifyMobikeSupported:               "MOBIKE_SUPPORTED",
	NotifyIKEv2FragmentationSupported:   "IKEV2_FRAGMENTATION_SUPPORTED",
	NotifySignatureHashAlgorithms:       "SIGNATURE_HASH_ALGORITHMS",
	NotifyChildlessIKEv2Supported:       "CHILDLESS_IKEV2_SUPPORTED",
	NotifyIntermediateExchangeSupported: "INTERMEDIATE_EXCHANGE_SUPPORTED",
	NotifyAdditionalKeyExchange:         "ADDITIONAL_KEY_EXCHANGE",
}

// String returns the notify type's IANA name, or "NOTIFY_N" (the metric
// label iked has always used for a type without a name).
func (t NotifyType) String() string { return name(notifyNames, t, "NOTIFY_") }

func name[T ~uint8 | ~uint16](names map[T]string, v T, prefix string) string {
	if s, ok := names[v]; ok {
		return s
	}
	return prefix + strconv.Itoa(int(v))
}
