package ikev1

import (
	"context"
	"crypto/cipher"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/iked/iked/ikev1/isakmp"
	"github.com/iked/iked/transport"
)

// state is an ISAKMP SA's place in its life.
type state uint8

const (
	stateMainMode    state = iota // Main Mode in progress
	stateEstablished              // Main Mode done
	stateDeleting                 // a Delete is being sent
	stateDead                     // gone from the table
)

func (s state) String() string {
	return [...]string{"connecting", "established", "deleting", "dead"}[s]
}

// isakmpSA is one ISAKMP SA (RFC 2408 §2.5.3) and the IPsec SAs it
// negotiated. mu guards every field below it (see the package doc for the
// rules); the fields above it never change after the SA is made.
type isakmpSA struct {
	eng       *Engine
	serial    uint64
	initiator bool
	started   time.Time
	// contact is the peer's address when the SA was made: the SA's key
	// among the SAs with that peer that INITIAL-CONTACT weighs (see
	// Engine.contacts).
	contact netip.Addr
	// counted: the SA is among Engine.contacts. Guarded by the engine's
	// tableMu, not mu.
	counted bool

	mu    sync.Mutex
	state state
	dead  bool // removed from the engine; a goroutine that released mu checks it
	conn  *Connection

	// Endpoints: the bind and the peer's address move to the NAT-T port
	// from Main Mode's fifth message when NAT-T is in use (RFC 3947 §4).
	bind          transport.Bind
	local, remote netip.AddrPort
	encap         bool // on the NAT-T port: ESP goes in UDP
	natLocal      bool // this side is behind a NAT
	natRemote     bool // the peer is behind a NAT

	icookie, rcookie uint64
	// What the peer announced in its vendor IDs.
	peerNATT, peerDPD, peerFrag bool
	fragID                      uint16 // of the last message this side fragmented

	suite    *phase1Suite
	authName string
	block    cipher.Block // the phase 1 cipher keyed with the encryption key
	keys     *keys
	localID  Identity
	remoteID Identity
	mm       *mainMode // the handshake's state; nil once established
	// established is when Main Mode completed; expires when the ISAKMP
	// SA's hard lifetime ends.
	established time.Time
	expires     time.Time

	// Phase 1 retransmission: the message in flight and, once this side
	// has answered, the last message received and the answer, resent when
	// that message comes again (RFC 2408 §2.5.3 leaves it to the
	// implementation; every peer does it this way).
	p1Flight  *flight
	p1LastIn  [sha256.Size]byte
	p1Reply   [][]byte
	p1Waiters []chan error // initiators waiting for Main Mode

	// Phase 2: Quick Modes by message ID, their IVs, and the message IDs
	// seen, so that a replayed Quick Mode or Informational is dropped.
	qms      map[uint32]*quickMode
	qmCount  int // Quick Modes this side started
	ivs      map[uint32][]byte
	seenMIDs map[uint32]time.Time

	ipsecs []*ipsecSA

	// Timers and dead peer detection.
	lastHeard  time.Time
	dpdSeq     uint32
	dpdPending uint32 // the sequence number of an unanswered R-U-THERE; 0 none
	dpdTries   int
	timers     []*time.Timer
	rekeying   bool // a phase 1 rekey (a new Main Mode) was started
	// retireWhenDone retires the SA once its pending Quick Modes end
	// (linger).
	retireWhenDone func()
	// peerGone: the peer deleted the SA; what is sent on it is lost.
	peerGone bool

	// deferred are run by unlock once mu is released (later).
	deferred []func()
}

// id is the SA's handle in logs and the control API: "isakmp-<n>".
func (sa *isakmpSA) id() string { return "isakmp-" + strconv.FormatUint(sa.serial, 10) }

func (sa *isakmpSA) role() string {
	if sa.initiator {
		return "initiator"
	}
	return "responder"
}

// localCookie is this side's cookie, the SA's key in the engine's table.
func (sa *isakmpSA) localCookie() uint64 {
	if sa.initiator {
		return sa.icookie
	}
	return sa.rcookie
}

// log writes one line about this SA. Caller holds mu (the attributes
// read the SA's endpoints and connection).
func (sa *isakmpSA) log(level slog.Level, msg string, args ...any) {
	ctx := context.Background()
	if !sa.eng.log.Enabled(ctx, level) {
		return
	}
	r := slog.NewRecord(sa.eng.cfg.Now(), level, msg, 0)
	r.AddAttrs(slog.String("sa", sa.id()), slog.String("version", "ikev1"),
		slog.String("cookie_i", cookieHex(sa.icookie)), slog.String("cookie_r", cookieHex(sa.rcookie)),
		slog.String("peer", sa.remote.String()), slog.String("role", sa.role()))
	if sa.conn != nil {
		r.AddAttrs(slog.String("connection", sa.conn.Name))
	}
	r.Add(args...)
	_ = sa.eng.log.Handler().Handle(ctx, r)
}

func cookieHex(c uint64) string { return fmt.Sprintf("%016x", c) }

// header returns the header of a message this SA sends.
func (sa *isakmpSA) header(ex isakmp.Exchange, mid uint32, flags uint8) isakmp.Header {
	return isakmp.Header{ICookie: sa.icookie, RCookie: sa.rcookie, Version: isakmp.Version, Exchange: ex, Flags: flags, MessageID: mid}
}

// plain builds an unencrypted message. Caller holds mu.
func (sa *isakmpSA) plain(ex isakmp.Exchange, ps []isakmp.Payload) [][]byte {
	m := isakmp.Message{Header: sa.header(ex, 0, 0), Payloads: ps}
	return sa.fragment(m.Marshal())
}

// seal builds an encrypted message of exchange ex and message ID mid
// (RFC 2408 §3.1, RFC 2409 Appendix B), advancing the exchange's IV
// chain. Caller holds mu.
func (sa *isakmpSA) seal(ex isakmp.Exchange, mid uint32, flags uint8, ps []isakmp.Payload) ([][]byte, error) {
	if sa.block == nil {
		return nil, errors.New("ikev1: no keys yet")
	}
	plainBody, first := isakmp.AppendPayloads(nil, ps)
	defer clear(plainBody)
	iv := sa.ivFor(mid)
	ct, err := encryptBody(sa.block, iv, plainBody, sa.eng.cfg.Rand)
	if err != nil {
		return nil, err
	}
	sa.setIV(mid, lastBlock(ct, sa.block.BlockSize()))
	h := sa.header(ex, mid, flags|isakmp.FlagEncryption)
	h.Next, h.Length = first, uint32(isakmp.HeaderLen+len(ct))
	pkt := append(h.AppendHeader(make([]byte, 0, isakmp.HeaderLen+len(ct))), ct...)
	return sa.fragment(pkt), nil
}

// open decrypts an encrypted message of exchange mid and parses its
// payloads. It does not advance the IV: commitIV does, once the message
// is authenticated, so that a forged or garbled message leaves the chain
// as it was. Caller holds mu.
func (sa *isakmpSA) open(hdr *isakmp.Header, pkt []byte) (isakmp.Body, []byte, error) {
	if sa.block == nil {
		return isakmp.Body{}, nil, errors.New("encrypted message before keys")
	}
	ct := pkt[isakmp.HeaderLen:]
	plain, err := decryptBody(sa.block, sa.ivFor(hdr.MessageID), ct)
	if err != nil {
		return isakmp.Body{}, nil, err
	}
	body, err := isakmp.ParseBody(hdr.Next, plain, true)
	if err != nil {
		return isakmp.Body{}, nil, err
	}
	return body, lastBlock(ct, sa.block.BlockSize()), nil
}

// ivFor returns the current IV of an exchange: Main Mode's chain for
// message ID 0, else the exchange's own, which starts as
// hash(last phase 1 block | M-ID). Caller holds mu.
func (sa *isakmpSA) ivFor(mid uint32) []byte {
	if mid == 0 {
		return sa.keys.phase1IV
	}
	if iv, ok := sa.ivs[mid]; ok {
		return iv
	}
	return phase2IV(sa.suite.prf, sa.keys.phase1IV, mid, sa.block.BlockSize())
}

// setIV records the next IV of an exchange. Caller holds mu.
func (sa *isakmpSA) setIV(mid uint32, iv []byte) {
	if mid == 0 {
		sa.keys.phase1IV = iv
		return
	}
	if sa.ivs == nil {
		sa.ivs = map[uint32][]byte{}
	}
	sa.ivs[mid] = iv
}

// send writes a message's datagrams to the peer. Caller holds mu; binds
// never block.
func (sa *isakmpSA) send(pkts [][]byte) {
	for _, p := range pkts {
		sa.eng.send(sa.bind, sa.remote, p)
	}
}

// flight is a message this side sent and retransmits until the answer
// comes (RFC 2408 leaves the timers to the implementation: exponential
// backoff as the IKEv2 engine's).
type flight struct {
	pkts  [][]byte
	tries int
	timer *time.Timer
	// fail is called, with mu held, when the retransmissions are used up.
	fail func()
}

// startFlight sends pkts and retransmits them until stopFlight. Caller
// holds mu.
func (sa *isakmpSA) startFlight(pkts [][]byte, fail func()) *flight {
	f := &flight{pkts: pkts, fail: fail}
	sa.send(pkts)
	sa.armFlight(f)
	return f
}

func (sa *isakmpSA) armFlight(f *flight) {
	cfg := &sa.eng.cfg
	d := cfg.RetransmitTimeout
	for range f.tries {
		d = time.Duration(float64(d) * cfg.RetransmitBase)
	}
	f.timer = time.AfterFunc(d, func() {
		sa.mu.Lock()
		defer sa.unlock()
		if sa.dead || f.timer == nil {
			return
		}
		if f.tries >= cfg.RetransmitTries {
			f.timer = nil
			f.fail()
			return
		}
		f.tries++
		sa.eng.stats.retransmissions.Add(1)
		sa.send(f.pkts)
		sa.armFlight(f)
	})
}

// stopFlight ends a flight's retransmissions. Caller holds mu.
func stopFlight(f *flight) {
	if f != nil && f.timer != nil {
		f.timer.Stop()
		f.timer = nil
	}
}

// after runs fn with mu held once d has passed, unless the SA died; the
// timer is stopped when the SA is destroyed. Caller holds mu.
func (sa *isakmpSA) after(d time.Duration, fn func()) *time.Timer {
	t := time.AfterFunc(d, func() {
		sa.mu.Lock()
		defer sa.unlock()
		if !sa.dead {
			fn()
		}
	})
	sa.timers = append(sa.timers, t)
	return t
}

// retransmitted reports whether pkt is the last phase 1 message already
// answered and, if so, sends the answer again. Caller holds mu.
func (sa *isakmpSA) retransmitted(pkt []byte) bool {
	if sa.p1Reply == nil || sha256.Sum256(pkt) != sa.p1LastIn {
		return false
	}
	sa.eng.stats.retransmitsAnswered.Add(1)
	sa.send(sa.p1Reply)
	return true
}

// answered records the phase 1 message just processed and its answer.
// Caller holds mu.
func (sa *isakmpSA) answered(pkt []byte, reply [][]byte) {
	sa.p1LastIn = sha256.Sum256(pkt)
	sa.p1Reply = reply
}

// finishWaiters tells the initiators waiting on Main Mode how it ended.
// Caller holds mu.
func (sa *isakmpSA) finishWaiters(err error) {
	for _, w := range sa.p1Waiters {
		w <- err
	}
	sa.p1Waiters = nil
}

// retransmitWindow is how long a peer with this engine's settings keeps
// retransmitting one message: every timeout of the backoff schedule.
func (e *Engine) retransmitWindow() time.Duration {
	cfg := &e.cfg
	total, d := time.Duration(0), cfg.RetransmitTimeout
	for range cfg.RetransmitTries + 1 {
		total += d
		d = time.Duration(float64(d) * cfg.RetransmitBase)
	}
	return total
}
