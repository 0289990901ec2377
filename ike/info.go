package ike

import "time"

// SAInfo is a snapshot of one IKE SA for ikectl and the control socket. Its
// JSON form is documented in docs/ikectl.md; field names are stable.
type SAInfo struct {
	// ID is the engine's short handle for the SA ("ike-<n>"), usable with
	// ikectl terminate.
	ID string `json:"id"`
	// Connection is the configured connection name.
	Connection string `json:"connection"`
	// SPIi and SPIr are the IKE SPIs as 16 hex digits.
	SPIi string `json:"spi_i"`
	SPIr string `json:"spi_r"`
	// State is one of "connecting", "authenticating", "established", "deleting".
	State string `json:"state"`
	// Role is "initiator" or "responder" (of this IKE SA).
	Role string `json:"role"`
	// LocalAddr and RemoteAddr are the IKE endpoints as address:port.
	LocalAddr  string `json:"local_addr"`
	RemoteAddr string `json:"remote_addr"`
	// LocalID and RemoteID are the identities as "type:value", e.g. "fqdn:a.example".
	LocalID  string `json:"local_id"`
	RemoteID string `json:"remote_id"`
	// Auth is the authentication method name ("psk").
	Auth string `json:"auth"`
	// Algorithms is the negotiated IKE proposal in strongSwan's notation,
	// e.g. "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", with additional
	// key exchanges (RFC 9370) as strongSwan logs them: ".../KE1_ML_KEM_768".
	Algorithms string `json:"algorithms"`
	// Proposal is the same in proposal-string syntax, as a proposal is
	// configured: "aes256gcm16-prfsha384-x25519-ke1_mlkem768".
	Proposal string `json:"proposal,omitempty"`
	// PostQuantum is true when one of the key exchanges is post-quantum
	// (ML-KEM).
	PostQuantum bool `json:"post_quantum"`
	// NATLocal and NATRemote report NAT detection (RFC 7296 §2.23).
	NATLocal  bool `json:"nat_local"`
	NATRemote bool `json:"nat_remote"`
	// Established is when IKE_AUTH completed; zero before that.
	Established time.Time `json:"established,omitzero"`
	// Children are the SA's Child SAs.
	Children []ChildInfo `json:"children"`
}

// ChildInfo is a snapshot of one Child SA.
type ChildInfo struct {
	// SPIIn is the SPI of the inbound SA (chosen by this side), SPIOut of the
	// outbound one, both as 8 hex digits.
	SPIIn  string `json:"spi_in"`
	SPIOut string `json:"spi_out"`
	// Protocol is "esp" or "ah"; Mode "tunnel" or "transport".
	Protocol string `json:"protocol"`
	Mode     string `json:"mode"`
	// LocalTS and RemoteTS are the negotiated traffic selectors, e.g.
	// "10.1.0.0/24" or "192.0.2.1/32[tcp/80]".
	LocalTS  []string `json:"local_ts"`
	RemoteTS []string `json:"remote_ts"`
	// Algorithms is the negotiated ESP proposal, e.g. "AES_GCM_16-256/NO_EXT_SEQ".
	Algorithms string `json:"algorithms"`
	// Proposal is the same in proposal-string syntax, e.g.
	// "aes256gcm16-x25519-ke1_mlkem768" (with PFS and an additional key exchange).
	Proposal string `json:"proposal,omitempty"`
	// Byte and packet counters from the data plane.
	BytesIn    uint64 `json:"bytes_in"`
	BytesOut   uint64 `json:"bytes_out"`
	PacketsIn  uint64 `json:"packets_in"`
	PacketsOut uint64 `json:"packets_out"`
	// Installed is when the SA was handed to the data plane.
	Installed time.Time `json:"installed"`
}
