// Package xfrm is the Linux kernel data plane: a sadb.PolicyBackend that
// installs ESP and AH SAs and IPsec policies through NETLINK_XFRM and
// turns the kernel's acquire and expire notifications into sadb.Events.
//
// # Ownership
//
// The kernel's XFRM tables are shared with every other key manager of the
// network namespace (strongSwan, Libreswan, an operator's `ip xfrm`), and
// the backend removes only what it installed, at start (leftovers of a
// previous run that crashed) and at Close. Everything it installs carries
// a marker that the kernel stores, returns in dumps and in acquire and
// expire messages, and that changes nothing in how traffic is handled: the
// hard packet limit of the entry's lifetime (xfrm_lifetime_cfg), set to
// Marker(instance) = 0xffffffff_1ced0000 + instance instead of XFRM_INF.
// Policies' packet limits are never enforced by the kernel; an SA would
// expire after 2^64-2^32 packets, which no SA lives to see (its 32- or
// 64-bit sequence number gives out first, and at 10^8 packets a second it
// would take millennia). The marker shows in `ip -s xfrm state` and
// `ip -s xfrm policy` as "hard 18446744069899878400(packets)" (instance 0).
//
// Marks (XFRMA_MARK), interface IDs and security contexts would also tag
// entries, but each changes which packets an entry matches; reqid ranges
// and priority bands tag only some entries (bypass and drop policies have
// no reqid) and collide with other daemons' own conventions.
//
// Before changing or removing an entry by its identity (an SA by
// destination, protocol and SPI; a policy by selector and direction) the
// backend reads it back and acts only when it carries the marker: a
// foreign policy with the selector of one of ours is reported
// (ErrForeign), never replaced. Acquire and expire notifications of
// foreign entries are not passed on.
package xfrm

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/iked/iked/sadb"
	"github.com/iked/iked/transform"
)

// ErrNoESP is returned when the kernel has XFRM but cannot hold ESP SAs
// (no esp4/esp6: the kernel answers EPROTONOSUPPORT), or there is no XFRM
// at all. A daemon configured with "backend: auto" falls back to the
// userspace data plane on it.
var ErrNoESP = errors.New("this kernel cannot hold ESP SAs; use the userspace data plane")

// ErrForeign is returned when an entry with the identity of one the
// backend was asked to install or remove exists but belongs to another key
// manager.
var ErrForeign = errors.New("xfrm: the entry belongs to another key manager")

// Marker is the hard packet limit that tags the SAs and policies of
// instance (see the package documentation).
func Marker(instance uint16) uint64 { return markerBase + uint64(instance) }

const markerBase uint64 = 0xffff_ffff_1ced_0000

// Options configure a Backend.
type Options struct {
	// Namespace is the path of the network namespace whose XFRM tables
	// the backend uses (e.g. /run/netns/NAME); empty for the daemon's own.
	Namespace string
	// Instance tells apart iked daemons that share a namespace: each owns
	// only the entries marked with its instance. Default 0.
	Instance uint16
	// ReplayWindow is the anti-replay window of SAs that ask for the
	// backend's default; 0 means DefaultReplayWindow.
	ReplayWindow uint32
	// SkipProbe skips New's ESP probe: for a kernel used for policies
	// only. AddSA still fails with ErrNoESP on a kernel without ESP.
	SkipProbe bool
	// Logf, when set, reports what the backend removed at start and
	// events it lost.
	Logf func(format string, args ...any)
}

// client serialises requests on one netlink socket.
type client struct {
	mu  sync.Mutex
	c   *conn // nil once closed
	seq uint32
}

var errClosed = errors.New("xfrm: backend closed")

func (cl *client) request(op string, req request) ([]message, error) {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.c == nil {
		return nil, errClosed
	}
	cl.seq++
	return roundTrip(cl.c, cl.seq, op, req)
}

func (cl *client) close() error {
	cl.mu.Lock()
	defer cl.mu.Unlock()
	if cl.c == nil {
		return nil
	}
	err := cl.c.close()
	cl.c = nil
	return err
}

// Backend is the XFRM data plane. It implements sadb.PolicyBackend.
type Backend struct {
	cl     client
	ev     *conn
	marker uint64
	window uint32
	logf   func(string, ...any)

	events    chan sadb.Event
	done      chan struct{}
	wg        sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

var _ sadb.PolicyBackend = (*Backend)(nil)

// New opens the kernel's XFRM interface, checks that it can hold ESP SAs
// (unless opts.SkipProbe; ErrNoESP when it cannot), removes the SAs and
// policies a previous run of this instance left, and starts listening for
// acquires and expires.
func New(opts Options) (*Backend, error) {
	c, err := dial(opts.Namespace, 0)
	if err != nil {
		return nil, err
	}
	b := &Backend{
		cl:     client{c: c},
		marker: Marker(opts.Instance),
		window: opts.ReplayWindow,
		logf:   opts.Logf,
		events: make(chan sadb.Event, 256),
		done:   make(chan struct{}),
	}
	if b.window == 0 {
		b.window = DefaultReplayWindow
	}
	if b.logf == nil {
		b.logf = func(string, ...any) {}
	}
	if !opts.SkipProbe {
		if err := probe(&b.cl, b.marker); err != nil {
			_ = b.cl.close()
			return nil, err
		}
	}
	if b.ev, err = dial(opts.Namespace, 1<<(grpAcquire-1)|1<<(grpExpire-1)); err != nil {
		_ = b.cl.close()
		return nil, err
	}
	states, policies, err := b.purge()
	if err != nil {
		_ = b.ev.close()
		_ = b.cl.close()
		return nil, fmt.Errorf("xfrm: remove leftovers: %w", err)
	}
	if states+policies > 0 {
		b.logf("xfrm: removed %d SAs and %d policies left by a previous run", states, policies)
	}
	b.wg.Add(1)
	go b.read()
	return b, nil
}

// Probe reports whether the kernel of the network namespace at path
// (empty: the current one) can hold ESP SAs, by adding a throwaway SA
// between two documentation addresses (RFC 5737) and deleting it. It
// returns ErrNoESP when the kernel refuses it for want of ESP.
func Probe(namespace string) error {
	c, err := dial(namespace, 0)
	if err != nil {
		return err
	}
	cl := &client{c: c}
	defer cl.close()
	return probe(cl, Marker(0))
}

func probe(cl *client, marker uint64) error {
	key := make([]byte, 16+32)
	var spiBytes [4]byte
	for range 3 {
		if _, err := rand.Read(key); err != nil {
			return err
		}
		if _, err := rand.Read(spiBytes[:]); err != nil {
			return err
		}
		sa := &sadb.SA{
			SPI:      binary.BigEndian.Uint32(spiBytes[:]) | 0x100,
			Protocol: sadb.ESP, Mode: sadb.Transport,
			Src: netip.MustParseAddr("192.0.2.1"), Dst: netip.MustParseAddr("192.0.2.2"),
			EncrID: transform.EncrAESCBC, EncrKeyBits: 128, EncrKey: key[:16],
			IntegID: transform.IntegHMACSHA2_256_128, IntegKey: key[16:],
		}
		req, err := newSA(sa, marker, DefaultReplayWindow)
		if err != nil {
			return err
		}
		_, err = cl.request("probe: add ESP SA", req)
		clear(req.body)
		switch {
		case errors.Is(err, errEEXIST):
			continue // someone's SA has this SPI: try another
		case errors.Is(err, errEPROTONOSUPPORT):
			return ErrNoESP
		case err != nil:
			return err
		}
		del, err := saIDRequest(msgDelSA, sa.ID())
		if err != nil {
			return err
		}
		_, err = cl.request("probe: delete ESP SA", del)
		return err
	}
	return errors.New("xfrm: probe: no free SPI")
}

// Name implements sadb.Backend.
func (*Backend) Name() string { return "xfrm" }

// AddSA implements sadb.Backend: XFRM_MSG_NEWSA, which fails when the SA
// exists.
func (b *Backend) AddSA(sa *sadb.SA) error {
	req, err := newSA(sa, b.marker, b.window)
	if err != nil {
		return err
	}
	_, err = b.cl.request(fmt.Sprintf("add %s SA %08x to %s", sa.Protocol, sa.SPI, sa.Dst), req)
	clear(req.body)
	if errors.Is(err, errEPROTONOSUPPORT) {
		if sa.Protocol == sadb.ESP {
			return fmt.Errorf("xfrm: add esp SA %08x: %w", sa.SPI, ErrNoESP)
		}
		return fmt.Errorf("xfrm: add %s SA %08x: this kernel cannot hold %s SAs: %w", sa.Protocol, sa.SPI, sa.Protocol, err)
	}
	return err
}

// state reads an SA; ErrNotFound when it is missing, ErrForeign when it is
// not ours.
func (b *Backend) state(id sadb.ID) (stateInfo, error) {
	req, err := saIDRequest(msgGetSA, id)
	if err != nil {
		return stateInfo{}, err
	}
	what := fmt.Sprintf("%s SA %08x to %s", id.Protocol, id.SPI, id.Dst)
	msgs, err := b.cl.request("get "+what, req)
	if errors.Is(err, errESRCH) || errors.Is(err, errENOENT) {
		return stateInfo{}, fmt.Errorf("xfrm: %s: %w", what, sadb.ErrNotFound)
	}
	if err != nil {
		return stateInfo{}, err
	}
	for _, m := range msgs {
		if m.typ != msgNewSA {
			continue
		}
		st, err := parseState(m.body)
		if err != nil {
			return stateInfo{}, err
		}
		if st.lft.hardPackets != b.marker {
			return stateInfo{}, fmt.Errorf("xfrm: %s: %w", what, ErrForeign)
		}
		return st, nil
	}
	return stateInfo{}, fmt.Errorf("xfrm: get %s: no answer", what)
}

// DeleteSA implements sadb.Backend. An SA that is not ours is reported as
// not found and left alone.
func (b *Backend) DeleteSA(id sadb.ID) error {
	if _, err := b.state(id); err != nil {
		if errors.Is(err, ErrForeign) {
			return fmt.Errorf("%w (%w)", sadb.ErrNotFound, err)
		}
		return err
	}
	req, err := saIDRequest(msgDelSA, id)
	if err != nil {
		return err
	}
	_, err = b.cl.request(fmt.Sprintf("delete %s SA %08x to %s", id.Protocol, id.SPI, id.Dst), req)
	if errors.Is(err, errESRCH) || errors.Is(err, errENOENT) {
		return fmt.Errorf("%w: %w", sadb.ErrNotFound, err)
	}
	return err
}

// Counters implements sadb.Backend: the SA's current lifetime
// (xfrm_lifetime_cur) from XFRM_MSG_GETSA.
func (b *Backend) Counters(id sadb.ID) (sadb.Counters, error) {
	st, err := b.state(id)
	if errors.Is(err, ErrForeign) {
		return sadb.Counters{}, fmt.Errorf("%w (%w)", sadb.ErrNotFound, err)
	}
	return st.counters, err
}

// policy reads a policy by selector and direction; ErrNotFound when it is
// missing. ours tells whether it carries the marker.
func (b *Backend) policy(id sadb.PolicyID) (p policyInfo, ours bool, err error) {
	req, err := policyIDRequest(msgGetPolicy, id, 0)
	if err != nil {
		return policyInfo{}, false, err
	}
	what := fmt.Sprintf("%s policy %s", id.Direction, id.Selector)
	msgs, err := b.cl.request("get "+what, req)
	if errors.Is(err, errENOENT) || errors.Is(err, errESRCH) {
		return policyInfo{}, false, fmt.Errorf("xfrm: %s: %w", what, sadb.ErrNotFound)
	}
	if err != nil {
		return policyInfo{}, false, err
	}
	for _, m := range msgs {
		if m.typ == msgNewPolicy {
			p, err := parsePolicyMsg(m.body)
			return p, err == nil && p.lft.hardPackets == b.marker, err
		}
	}
	return policyInfo{}, false, fmt.Errorf("xfrm: get %s: no answer", what)
}

// AddPolicy implements sadb.PolicyBackend: XFRM_MSG_NEWPOLICY, or
// XFRM_MSG_UPDPOLICY over a policy of ours with the same selector and
// direction. A foreign policy there is left alone: ErrForeign.
func (b *Backend) AddPolicy(p *sadb.Policy) error {
	_, ours, err := b.policy(p.ID())
	update := false
	switch {
	case errors.Is(err, sadb.ErrNotFound):
	case err != nil:
		return err
	case !ours:
		return fmt.Errorf("xfrm: %s policy %s: %w", p.Direction, p.Selector, ErrForeign)
	default:
		update = true
	}
	req, err := newPolicy(p, b.marker, update)
	if err != nil {
		return err
	}
	_, err = b.cl.request(fmt.Sprintf("add %s policy %s", p.Direction, p.Selector), req)
	return err
}

// DeletePolicy implements sadb.PolicyBackend. A policy that is not ours is
// reported as not found and left alone.
func (b *Backend) DeletePolicy(id sadb.PolicyID) error {
	p, ours, err := b.policy(id)
	if err != nil {
		return err
	}
	what := fmt.Sprintf("%s policy %s", id.Direction, id.Selector)
	if !ours {
		return fmt.Errorf("xfrm: %s: %w (%w)", what, sadb.ErrNotFound, ErrForeign)
	}
	// By index, which names exactly the policy just read.
	req, err := policyIDRequest(msgDelPolicy, id, p.index)
	if err != nil {
		return err
	}
	_, err = b.cl.request("delete "+what, req)
	if errors.Is(err, errENOENT) || errors.Is(err, errESRCH) {
		return fmt.Errorf("xfrm: %s: %w", what, sadb.ErrNotFound)
	}
	return err
}

// Events implements sadb.PolicyBackend: acquires raised by our policies,
// soft and hard expires of our SAs. The channel is closed by Close.
func (b *Backend) Events() <-chan sadb.Event { return b.events }

// purge removes every policy and SA that carries the marker, policies
// first so that no traffic triggers acquires for SAs being removed.
func (b *Backend) purge() (states, policies int, err error) {
	msgs, err := b.cl.request("dump policies", dumpRequest(msgGetPolicy))
	if err != nil {
		return 0, 0, err
	}
	var pols []policyInfo
	for _, m := range msgs {
		if m.typ != msgNewPolicy {
			continue
		}
		p, err := parsePolicyMsg(m.body)
		if err != nil || p.lft.hardPackets != b.marker {
			continue
		}
		if _, ok := fromKernelDir(p.dir); ok && p.index != 0 {
			pols = append(pols, p)
		}
	}
	var first error
	for _, p := range pols {
		req, err := policyIDRequest(msgDelPolicy, p.id, p.index)
		if err == nil {
			_, err = b.cl.request(fmt.Sprintf("delete %s policy %s", p.id.Direction, p.id.Selector), req)
		}
		switch {
		case err == nil:
			policies++
		case errors.Is(err, errENOENT):
		case first == nil:
			first = err
		}
	}

	msgs, err = b.cl.request("dump SAs", dumpRequest(msgGetSA))
	if err != nil {
		return states, policies, err
	}
	var ids []sadb.ID
	for _, m := range msgs {
		if m.typ != msgNewSA {
			continue
		}
		if st, err := parseState(m.body); err == nil && st.lft.hardPackets == b.marker {
			ids = append(ids, st.id)
		}
	}
	for _, id := range ids {
		req, err := saIDRequest(msgDelSA, id)
		if err == nil {
			_, err = b.cl.request(fmt.Sprintf("delete %s SA %08x to %s", id.Protocol, id.SPI, id.Dst), req)
		}
		switch {
		case err == nil:
			states++
		case errors.Is(err, errESRCH):
		case first == nil:
			first = err
		}
	}
	return states, policies, first
}

// read turns the kernel's notifications into events until Close.
func (b *Backend) read() {
	defer b.wg.Done()
	defer close(b.events)
	for {
		data, err := b.ev.receive()
		select {
		case <-b.done:
			return
		default:
		}
		if errors.Is(err, errENOBUFS) {
			b.logf("xfrm: the kernel dropped acquire or expire notifications (receive buffer full)")
			continue
		}
		if err != nil {
			b.logf("xfrm: reading notifications: %v", err)
			select {
			case <-b.done:
				return
			case <-time.After(100 * time.Millisecond):
			}
			continue
		}
		msgs, err := parseMessages(data)
		if err != nil {
			b.logf("%v", err)
		}
		for _, m := range msgs {
			var (
				ev   sadb.Event
				ours bool
				err  error
			)
			switch m.typ {
			case msgAcquire:
				ev, ours, err = parseAcquire(m.body, b.marker)
			case msgExpire:
				ev, ours, err = parseExpire(m.body, b.marker)
			default:
				continue
			}
			if err != nil {
				b.logf("%v", err)
				continue
			}
			if !ours {
				continue
			}
			select {
			case b.events <- ev:
			case <-b.done:
				return
			}
		}
	}
}

// Close implements sadb.Backend: it stops the events (closing the
// channel) and removes every SA and policy of this instance, whoever
// asked for them.
func (b *Backend) Close() error {
	b.closeOnce.Do(func() {
		close(b.done)
		_ = b.ev.close()
		b.wg.Wait()
		_, _, err := b.purge()
		if cerr := b.cl.close(); err == nil {
			err = cerr
		}
		b.closeErr = err
	})
	return b.closeErr
}
