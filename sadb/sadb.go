// Package sadb is the database of negotiated Child SAs: SPI allocation,
// keys, counters, and the hand-over to a data-plane Backend (the Linux
// kernel, a userspace ESP engine, or memory for tests). Backends are the
// only code that touches the OS data plane.
package sadb

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/iked/iked/ipsec"
)

// Protocol is the IPsec protocol of an SA.
type Protocol uint8

// Protocols, numbered as IP protocol numbers.
const (
	ESP Protocol = 50
	AH  Protocol = 51
)

// String returns "esp" or "ah".
func (p Protocol) String() string {
	switch p {
	case ESP:
		return "esp"
	case AH:
		return "ah"
	}
	return fmt.Sprintf("proto%d", uint8(p))
}

// Mode is the IPsec mode of an SA.
type Mode uint8

// Modes.
const (
	Tunnel Mode = iota
	Transport
)

// String returns "tunnel" or "transport".
func (m Mode) String() string {
	if m == Transport {
		return "transport"
	}
	return "tunnel"
}

// Key is key material that never prints its contents.
type Key []byte

// String implements fmt.Stringer without revealing the key.
func (Key) String() string { return "[redacted]" }

// GoString implements fmt.GoStringer without revealing the key.
func (Key) GoString() string { return "sadb.Key{[redacted]}" }

// Format implements fmt.Formatter: whatever the verb, and wherever the key
// sits (a struct, a slice of pointers), it prints as [redacted].
func (Key) Format(f fmt.State, _ rune) { _, _ = io.WriteString(f, "[redacted]") }

// Wipe overwrites the key.
func (k Key) Wipe() {
	for i := range k {
		k[i] = 0
	}
}

// SA is one unidirectional IPsec SA as handed to a backend.
type SA struct {
	// SPI identifies the SA at its destination.
	SPI      uint32
	Protocol Protocol
	Mode     Mode
	// Inbound is true for the SA that protects traffic to this host.
	Inbound bool
	// Src and Dst are the outer (tunnel or transport) addresses.
	Src, Dst netip.Addr
	// EncrID and EncrKeyBits are the IKEv2 encryption transform and key
	// size; EncrKey includes the salt for AEAD ciphers.
	EncrID      uint16
	EncrKeyBits uint16
	EncrKey     Key
	// IntegID is the IKEv2 integrity transform (0 for AEAD); IntegKey its key.
	IntegID  uint16
	IntegKey Key
	// ESN enables 64-bit extended sequence numbers.
	ESN bool
	// EncapSrcPort and EncapDstPort are the UDP ports of ESP-in-UDP
	// encapsulation (RFC 3948); both zero means plain ESP.
	EncapSrcPort, EncapDstPort uint16
	// ReqID links the SA to the policies of its Child SA.
	ReqID uint32
	// Lifetime bounds the SA in time and bytes.
	Lifetime Lifetime
	// ReplayWindow is the anti-replay window in packets (RFC 4303 §3.4.3);
	// 0 means the backend's default.
	ReplayWindow uint32
	// IfID is the XFRM interface ID (if_id) the SA belongs to, for
	// route-based IPsec: its traffic enters and leaves through the XFRM
	// interface with that ID; 0 means none.
	IfID uint32
	// LocalTS and RemoteTS are the negotiated traffic selectors.
	LocalTS, RemoteTS []ipsec.TrafficSelector
	// Installed is when the SA was added.
	Installed time.Time
}

// ID identifies an SA within a backend.
type ID struct {
	Dst      netip.Addr
	Protocol Protocol
	SPI      uint32
}

// ID returns the SA's identifier.
func (sa *SA) ID() ID { return ID{Dst: sa.Dst, Protocol: sa.Protocol, SPI: sa.SPI} }

// Counters are an SA's traffic counters.
type Counters struct {
	Bytes, Packets uint64
}

// Backend is a data plane that holds SAs.
//
// The key-exchange engines call a backend's methods with an SA's lock held
// (docs/design.md, "Locks"): an implementation must not call back into an
// engine, must take only its own locks, and must return promptly (a
// netlink round trip, not a wait on the network). Events are delivered on
// the Events channel from the backend's own goroutine, with none of its
// locks held.
type Backend interface {
	// Name is the config name of the backend ("memory", "xfrm", "userspace").
	Name() string
	// AddSA installs sa. Adding an SA whose ID exists is an error.
	AddSA(sa *SA) error
	// DeleteSA removes an SA; removing a missing SA is an error
	// satisfying errors.Is(err, ErrNotFound).
	DeleteSA(id ID) error
	// Counters reads an SA's counters.
	Counters(id ID) (Counters, error)
	// Close removes every SA the backend installed and releases it.
	Close() error
}

// ErrNotFound is returned for operations on an SA that is not installed.
var ErrNotFound = errors.New("sadb: SA not found")

// DB allocates SPIs and tracks which SAs are installed in its backend.
type DB struct {
	backend Backend

	mu       sync.Mutex
	reserved map[uint32]struct{} // inbound SPIs allocated, installed or not
	sas      map[ID]*SA
}

// New returns a DB over backend.
func New(backend Backend) *DB {
	return &DB{backend: backend, reserved: map[uint32]struct{}{}, sas: map[ID]*SA{}}
}

// Backend returns the DB's backend.
func (db *DB) Backend() Backend { return db.backend }

// AllocateSPI reserves a fresh inbound SPI: random, so that it reveals
// nothing, and never one of 0-255, which RFC 4303 §2.1 reserves.
func (db *DB) AllocateSPI() (uint32, error) {
	var b [4]byte
	db.mu.Lock()
	defer db.mu.Unlock()
	for range 64 {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, err
		}
		spi := binary.BigEndian.Uint32(b[:])
		if spi < 256 {
			continue
		}
		if _, used := db.reserved[spi]; used {
			continue
		}
		db.reserved[spi] = struct{}{}
		return spi, nil
	}
	return 0, errors.New("sadb: no free SPI found")
}

// ReleaseSPI returns an allocated inbound SPI that was never installed.
func (db *DB) ReleaseSPI(spi uint32) {
	db.mu.Lock()
	delete(db.reserved, spi)
	db.mu.Unlock()
}

// Install hands the SAs to the backend, all or none.
func (db *DB) Install(sas ...*SA) error {
	for i, sa := range sas {
		if err := db.backend.AddSA(sa); err != nil {
			for _, done := range sas[:i] {
				_ = db.backend.DeleteSA(done.ID())
			}
			return fmt.Errorf("install %s SA %08x: %w", sa.Protocol, sa.SPI, err)
		}
	}
	db.mu.Lock()
	for _, sa := range sas {
		db.sas[sa.ID()] = sa
	}
	db.mu.Unlock()
	return nil
}

// Remove deletes the SAs from the backend and forgets them; it returns the
// first error but always tries every SA.
func (db *DB) Remove(ids ...ID) error {
	var first error
	for _, id := range ids {
		err := db.backend.DeleteSA(id)
		if err != nil && first == nil {
			first = err
		}
		db.mu.Lock()
		if sa, ok := db.sas[id]; ok {
			if sa.Inbound {
				delete(db.reserved, sa.SPI)
			}
			sa.EncrKey.Wipe()
			sa.IntegKey.Wipe()
			delete(db.sas, id)
		}
		db.mu.Unlock()
	}
	return first
}

// Counters reads an SA's counters from the backend.
func (db *DB) Counters(id ID) (Counters, error) { return db.backend.Counters(id) }

// Len returns the number of installed SAs.
func (db *DB) Len() int {
	db.mu.Lock()
	defer db.mu.Unlock()
	return len(db.sas)
}

// Close removes every SA and closes the backend.
func (db *DB) Close() error {
	db.mu.Lock()
	ids := make([]ID, 0, len(db.sas))
	for id := range db.sas {
		ids = append(ids, id)
	}
	db.mu.Unlock()
	err := db.Remove(ids...)
	if cerr := db.backend.Close(); err == nil {
		err = cerr
	}
	return err
}

// Policies reports whether the backend holds policies.
func (db *DB) Policies() bool {
	_, ok := db.backend.(PolicyBackend)
	return ok
}

// AddPolicies installs policies, all or none; with a backend that holds no
// policies it does nothing.
func (db *DB) AddPolicies(ps ...*Policy) error {
	pb, ok := db.backend.(PolicyBackend)
	if !ok {
		return nil
	}
	for i, p := range ps {
		if err := pb.AddPolicy(p); err != nil {
			for _, done := range ps[:i] {
				_ = pb.DeletePolicy(done.ID())
			}
			return fmt.Errorf("install %s policy %s: %w", p.Direction, p.Selector, err)
		}
	}
	return nil
}

// DeletePolicies removes policies, trying every one; it returns the first
// error other than not-found.
func (db *DB) DeletePolicies(ids ...PolicyID) error {
	pb, ok := db.backend.(PolicyBackend)
	if !ok {
		return nil
	}
	var first error
	for _, id := range ids {
		if err := pb.DeletePolicy(id); err != nil && !errors.Is(err, ErrNotFound) && first == nil {
			first = err
		}
	}
	return first
}

// Events returns the backend's event stream, or nil when it has none.
func (db *DB) Events() <-chan Event {
	if pb, ok := db.backend.(PolicyBackend); ok {
		return pb.Events()
	}
	return nil
}

// DataPlaneStats are a packet-moving backend's totals across its SAs.
type DataPlaneStats struct {
	// Sent and Received count ESP and AH packets.
	Sent, Received uint64
	// Dropped counts inbound or outbound packets not carried, by reason:
	// "replay", "integrity", "unknown_spi", "malformed", "policy",
	// "no_route", "send_error", "acquire_timeout".
	Dropped map[string]uint64
	// Events counts what the data plane did besides carrying packets, by
	// name, e.g. "tso_segmented" (a TCP super-segment cut into packets),
	// "gro_coalesced" (a received segment joined behind another),
	// "acquire_held" and "acquire_released" (packets kept while an SA was
	// negotiated, and sent once it came).
	Events map[string]uint64
}

// StatsReporter is a Backend that moves packets and counts them.
type StatsReporter interface {
	DataPlaneStats() DataPlaneStats
}

// Move changes where an installed SA's packets go: its outer addresses and
// UDP encapsulation ports, when a NAT mapping of the peer changes (RFC 7296
// §2.23). The SA is re-added with the new addresses; its keys, SPI and
// sequence numbers stay.
func (db *DB) Move(sa *SA, src, dst netip.Addr, sport, dport uint16) error {
	old := sa.ID()
	moved := *sa
	moved.Src, moved.Dst, moved.EncapSrcPort, moved.EncapDstPort = src, dst, sport, dport
	if err := db.backend.DeleteSA(old); err != nil && !errors.Is(err, ErrNotFound) {
		return err
	}
	if err := db.backend.AddSA(&moved); err != nil {
		return err
	}
	db.mu.Lock()
	delete(db.sas, old)
	*sa = moved
	db.sas[sa.ID()] = sa
	db.mu.Unlock()
	return nil
}
