// Package transcript records the IKE datagrams a bind sends and receives,
// with the configuration and random seed that produced them, so that a
// session recorded once against a real peer (strongSwan) can be replayed
// offline and the engine's wire behaviour pinned byte for byte, the way
// crypto/tls replays recorded handshakes.
package transcript

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/iked/iked/transport"
)

// Transcript is one recorded session.
type Transcript struct {
	// Description says what the session is, e.g. "charon initiates, PSK".
	Description string `json:"description"`
	// Peer names the other implementation and its version.
	Peer string `json:"peer"`
	// Role is iked's role: "initiator" or "responder".
	Role string `json:"role"`
	// Seed is the seed of testing/cryptotest.SetGlobalRandom under which
	// iked ran: with it, iked's SPIs, nonces, keys and IVs repeat.
	Seed uint64 `json:"seed"`
	// CookieThreshold is the engine's cookie threshold during the session.
	CookieThreshold int `json:"cookie_threshold"`
	// Connection is iked's connection, as configuration strings.
	Connection Connection `json:"connection"`
	// Binds are iked's local addresses, in the order they were added; a
	// bind on port 4500 carries the non-ESP marker.
	Binds []string `json:"binds"`
	// Messages are the datagrams in the order iked saw them.
	Messages []Message `json:"messages"`
}

// Connection is the connection iked used, as configuration strings.
type Connection struct {
	Local    string `json:"local"`
	Remote   string `json:"remote"`
	LocalID  string `json:"local_id"`
	RemoteID string `json:"remote_id"`
	PSK      string `json:"psk,omitempty"`
	// Auth is the method: "psk" (or empty) uses PSK; "cert" the
	// certificate material below, inline PEM (throwaway test keys).
	Auth          string   `json:"auth,omitempty"`
	Cert          string   `json:"cert,omitempty"`
	Key           string   `json:"key,omitempty"`
	CA            []string `json:"ca,omitempty"`
	Intermediates []string `json:"intermediates,omitempty"`
	CRLs          []string `json:"crls,omitempty"`
	Signature     string   `json:"signature,omitempty"`
	IKEProposals  []string `json:"ike_proposals"`
	ESPProposals  []string `json:"esp_proposals"`
	LocalTS       []string `json:"local_ts"`
	RemoteTS      []string `json:"remote_ts"`
	Mode          string   `json:"mode"`
	// Childless is the connection's childless setting (RFC 6023); empty
	// is iked's default, allow.
	Childless string `json:"childless,omitempty"`
}

// Message is one datagram as it crossed the bind (with the non-ESP marker
// where the socket carried one).
type Message struct {
	// In is true for a datagram iked received.
	In bool `json:"in"`
	// Local is iked's address and port, Peer the other side's.
	Local string `json:"local"`
	Peer  string `json:"peer"`
	// Data is the datagram.
	Data Hex `json:"data"`
}

// Hex is a byte string written as hex in JSON.
type Hex []byte

// MarshalJSON implements json.Marshaler.
func (h Hex) MarshalJSON() ([]byte, error) { return json.Marshal(hex.EncodeToString(h)) }

// UnmarshalJSON implements json.Unmarshaler.
func (h *Hex) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	d, err := hex.DecodeString(s)
	*h = d
	return err
}

// Load reads a transcript file.
func Load(path string) (*Transcript, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t Transcript
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &t, nil
}

// Save writes the transcript, indented, to path.
func (t *Transcript) Save(path string) error {
	b, err := json.MarshalIndent(t, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

// Recorder appends what wrapped binds carry to a transcript.
type Recorder struct {
	mu sync.Mutex
	t  *Transcript
}

// NewRecorder records into t.
func NewRecorder(t *Transcript) *Recorder { return &Recorder{t: t} }

func (r *Recorder) add(in bool, local, peer netip.AddrPort, b []byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.t.Messages = append(r.t.Messages, Message{In: in, Local: local.String(), Peer: peer.String(), Data: append(Hex(nil), b...)})
}

// Wrap returns b with its traffic recorded; wrap the raw socket, below any
// non-ESP marker wrapper, so the transcript holds the datagrams as sent.
func (r *Recorder) Wrap(b transport.Bind) transport.Bind {
	r.mu.Lock()
	r.t.Binds = append(r.t.Binds, b.LocalAddr().String())
	r.mu.Unlock()
	return &recordingBind{Bind: b, r: r}
}

type recordingBind struct {
	transport.Bind
	r *Recorder
}

func (rb *recordingBind) ReadFrom(b []byte) (int, netip.AddrPort, error) {
	n, from, err := rb.Bind.ReadFrom(b)
	if err == nil {
		rb.r.add(true, rb.LocalAddr(), from, b[:n])
	}
	return n, from, err
}

func (rb *recordingBind) WriteTo(b []byte, to netip.AddrPort) error {
	rb.r.add(false, rb.LocalAddr(), to, b)
	return rb.Bind.WriteTo(b, to)
}
