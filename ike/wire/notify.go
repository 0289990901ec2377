package wire

// Notify message types (IANA "IKEv2 Notify Message Types"). Values below
// 16384 are errors; the rest are status.
const (
	NotifyUnsupportedCriticalPayload NotifyType = 1
	NotifyInvalidIKESPI              NotifyType = 4
	NotifyInvalidMajorVersion        NotifyType = 5
	NotifyInvalidSyntax              NotifyType = 7
	NotifyInvalidMessageID           NotifyType = 9
	NotifyInvalidSPI                 NotifyType = 11
	NotifyNoProposalChosen           NotifyType = 14
	NotifyInvalidKEPayload           NotifyType = 17
	NotifyAuthenticationFailed       NotifyType = 24
	NotifySinglePairRequired         NotifyType = 34
	NotifyNoAdditionalSAs            NotifyType = 35
	NotifyInternalAddressFailure     NotifyType = 36
	NotifyFailedCPRequired           NotifyType = 37
	NotifyTSUnacceptable             NotifyType = 38
	NotifyInvalidSelectors           NotifyType = 39
	NotifyTemporaryFailure           NotifyType = 43
	NotifyChildSANotFound            NotifyType = 44
	NotifyStateNotFound              NotifyType = 47 // RFC 9370 §2.2.4

	NotifyInitialContact                NotifyType = 16384
	NotifySetWindowSize                 NotifyType = 16385
	NotifyAdditionalTSPossible          NotifyType = 16386
	NotifyIPCompSupported               NotifyType = 16387
	NotifyNATDetectionSourceIP          NotifyType = 16388
	NotifyNATDetectionDestinationIP     NotifyType = 16389
	NotifyCookie                        NotifyType = 16390
	NotifyUseTransportMode              NotifyType = 16391
	NotifyHTTPCertLookupSupported       NotifyType = 16392
	NotifyRekeySA                       NotifyType = 16393
	NotifyESPTFCPaddingNotSupported     NotifyType = 16394
	NotifyNonFirstFragmentsAlso         NotifyType = 16395
	NotifyMobikeSupported               NotifyType = 16396
	NotifyIKEv2FragmentationSupported   NotifyType = 16430
	NotifySignatureHashAlgorithms       NotifyType = 16431
	NotifyChildlessIKEv2Supported       NotifyType = 16418
	NotifyIntermediateExchangeSupported NotifyType = 16438 // RFC 9242
	NotifyAdditionalKeyExchange         NotifyType = 16441 // RFC 9370
)

// IsError reports whether t is an error type (below 16384, §3.10.1).
func (t NotifyType) IsError() bool { return t < 16384 }
