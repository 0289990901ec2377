// Package flood sends IKE_SA_INIT requests from spoofed source addresses:
// the denial-of-service load that cookies (RFC 7296 §2.6) are for. Each
// request is well formed (SA, KE and Nonce for
// aes256gcm16-prfsha256-x25519) with a fresh SPIi, so that a responder
// without cookies would do a Diffie-Hellman exchange and keep a half-open
// SA for each; none is ever followed up. The source addresses are written
// into raw IPv4 packets (IP_HDRINCL), so they need not exist anywhere: the
// responder's answers go nowhere. A flood is bounded by a count and a
// duration, and paced to a rate.
//
// bench/responders uses it to measure how many of ikeload's legitimate
// handshakes complete during such a flood (docs/performance.md); the
// ikeload tests run it against an in-process responder.
package flood

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"net/netip"
	"time"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// Options describe one flood.
type Options struct {
	// Target is the responder's address and port.
	Target netip.AddrPort
	// Sources are the spoofed IPv4 source addresses, used in turn; each
	// request also gets its own source port.
	Sources []netip.Addr
	// Rate is requests per second; 0 is as fast as possible.
	Rate float64
	// Count and Duration bound the flood: it stops at whichever comes
	// first. At least one of them must be set.
	Count    int
	Duration time.Duration
}

// Request returns an IKE_SA_INIT request with SPIi spii, a random X25519
// public value and a random nonce, offering aes256gcm16-prfsha256-x25519.
func Request(spii uint64) ([]byte, error) {
	ke := make([]byte, 32)
	nonce := make([]byte, 32)
	if _, err := rand.Read(ke); err != nil {
		return nil, err
	}
	if _, err := rand.Read(nonce); err != nil {
		return nil, err
	}
	m := wire.Message{
		Header: wire.Header{SPIi: spii, Version: wire.Version, Exchange: wire.IKE_SA_INIT, Flags: wire.FlagInitiator},
		Payloads: []wire.Payload{
			&wire.SA{Proposals: []wire.Proposal{{Number: 1, Protocol: wire.ProtoIKE, Transforms: []wire.Transform{
				{Type: wire.TransformENCR, ID: transform.EncrAESGCM16, KeyLength: 256},
				{Type: wire.TransformPRF, ID: transform.PRFHMACSHA2_256},
				{Type: wire.TransformDH, ID: transform.DHCurve25519},
			}}}},
			&wire.KE{Group: transform.DHCurve25519, Data: ke},
			&wire.Nonce{Data: nonce},
		},
	}
	return m.Marshal(), nil
}

// Packet returns the IPv4 packet carrying payload in a UDP datagram from
// src to dst. The IP checksum is left to the kernel (it fills it in for
// IP_HDRINCL sockets); the UDP checksum is computed, so that the packet
// is also valid on a path that checks it.
func Packet(src, dst netip.AddrPort, payload []byte) ([]byte, error) {
	if !src.Addr().Is4() || !dst.Addr().Is4() {
		return nil, errors.New("flood: IPv4 addresses only")
	}
	total := 20 + 8 + len(payload)
	if total > 0xffff {
		return nil, errors.New("flood: payload too large")
	}
	p := make([]byte, total)
	p[0] = 0x45 // version 4, header of 5 words
	binary.BigEndian.PutUint16(p[2:], uint16(total))
	p[8] = 64 // TTL
	p[9] = 17 // UDP
	s, d := src.Addr().As4(), dst.Addr().As4()
	copy(p[12:16], s[:])
	copy(p[16:20], d[:])
	u := p[20:]
	binary.BigEndian.PutUint16(u[0:], src.Port())
	binary.BigEndian.PutUint16(u[2:], dst.Port())
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	binary.BigEndian.PutUint16(u[6:], udpChecksum(s, d, u))
	// The header checksum, although the kernel would fill it in, so that
	// the packet is whole as built.
	binary.BigEndian.PutUint16(p[10:], ^fold(sum(p[:20], 0)))
	return p, nil
}

// udpChecksum is the UDP checksum over the IPv4 pseudo-header and the
// datagram (RFC 768); 0 is sent as 0xffff.
func udpChecksum(src, dst [4]byte, udp []byte) uint16 {
	var pseudo [12]byte
	copy(pseudo[0:], src[:])
	copy(pseudo[4:], dst[:])
	pseudo[9] = 17
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(udp)))
	c := ^fold(sum(udp, sum(pseudo[:], 0)))
	if c == 0 {
		c = 0xffff
	}
	return c
}

// sum adds b as big-endian 16-bit words to acc (one's complement, unfolded).
func sum(b []byte, acc uint32) uint32 {
	for len(b) >= 2 {
		acc += uint32(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		acc += uint32(b[0]) << 8
	}
	return acc
}

func fold(acc uint32) uint16 {
	for acc > 0xffff {
		acc = acc&0xffff + acc>>16
	}
	return uint16(acc)
}

// Result is what a flood sent.
type Result struct {
	Sent    int           // requests sent
	Errors  int           // requests the kernel refused (e.g. a full queue)
	Elapsed time.Duration // from the first request to the last
}

// Run floods the target until the count or duration is reached or ctx
// ends. It needs CAP_NET_RAW.
func Run(ctx context.Context, o Options) (Result, error) {
	if len(o.Sources) == 0 {
		return Result{}, errors.New("flood: no source addresses")
	}
	if o.Count <= 0 && o.Duration <= 0 {
		return Result{}, errors.New("flood: neither a count nor a duration")
	}
	s, err := openRaw()
	if err != nil {
		return Result{}, err
	}
	defer s.close()
	if o.Duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.Duration)
		defer cancel()
	}
	// One request is made and each copy gets a fresh SPIi: the KE and
	// nonce repeat, which a responder cannot tell before its
	// Diffie-Hellman work, and it does none when it demands a cookie.
	tmpl, err := Request(1)
	if err != nil {
		return Result{}, err
	}
	var res Result
	start := time.Now()
	var spi [8]byte
	for n := 0; o.Count <= 0 || n < o.Count; n++ {
		if ctx.Err() != nil {
			break
		}
		if o.Rate > 0 {
			due := start.Add(time.Duration(float64(n) / o.Rate * float64(time.Second)))
			if d := time.Until(due); d > 0 {
				select {
				case <-ctx.Done():
				case <-time.After(d):
				}
				if ctx.Err() != nil {
					break
				}
			}
		}
		if _, err := rand.Read(spi[:]); err != nil {
			return res, err
		}
		copy(tmpl, spi[:]) // SPIi is the header's first field
		src := netip.AddrPortFrom(o.Sources[n%len(o.Sources)], uint16(1024+n%64000))
		pkt, err := Packet(src, o.Target, tmpl)
		if err != nil {
			return res, err
		}
		if err := s.send(pkt, o.Target.Addr()); err != nil {
			res.Errors++
			continue
		}
		res.Sent++
	}
	res.Elapsed = time.Since(start)
	return res, nil
}
