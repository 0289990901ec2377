package ike

import (
	"crypto/sha1"
	"crypto/subtle"
	"encoding/binary"
	"io"
	"net/netip"

	"github.com/iked/iked/ike/wire"
)

// natHash is the NAT_DETECTION_*_IP notify data (RFC 7296 §2.23):
// SHA-1(SPIi | SPIr | IP | Port). SHA-1 is what the RFC fixes; it is not
// used for security here.
func natHash(spii, spir uint64, ap netip.AddrPort) []byte {
	h := sha1.New()
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], spii)
	h.Write(b[:])
	binary.BigEndian.PutUint64(b[:], spir)
	h.Write(b[:])
	h.Write(ap.Addr().Unmap().AsSlice())
	binary.BigEndian.PutUint16(b[:2], ap.Port())
	h.Write(b[:2])
	return h.Sum(nil)
}

// natNotifies returns the two NAT detection notifies for a message sent
// from local to remote.
func natNotifies(spii, spir uint64, local, remote netip.AddrPort) []wire.Payload {
	return []wire.Payload{
		&wire.Notify{Code: wire.NotifyNATDetectionSourceIP, Data: natHash(spii, spir, local)},
		&wire.Notify{Code: wire.NotifyNATDetectionDestinationIP, Data: natHash(spii, spir, remote)},
	}
}

// fakeNATSource replaces the NAT_DETECTION_SOURCE_IP hash in nat with
// random octets, so that the peer sees this side as behind a NAT.
func fakeNATSource(nat []wire.Payload, rand io.Reader) {
	for _, p := range nat {
		if n := p.(*wire.Notify); n.Code == wire.NotifyNATDetectionSourceIP {
			fake := make([]byte, len(n.Data))
			_, _ = io.ReadFull(rand, fake)
			n.Data = fake
		}
	}
}

// detectNAT checks the peer's NAT detection notifies against the addresses
// the message actually travelled between. natLocal is true when this side
// is behind a NAT (the destination the peer saw is not ours), natRemote
// when the peer is (none of its source hashes match its address). A peer
// that sends no notifies does not support NAT-T: no NAT is reported.
func detectNAT(payloads []wire.Payload, spii, spir uint64, local, remote netip.AddrPort) (natLocal, natRemote bool) {
	var srcSeen, srcMatch bool
	wantSrc := natHash(spii, spir, remote)
	wantDst := natHash(spii, spir, local)
	for _, p := range payloads {
		n, ok := p.(*wire.Notify)
		if !ok {
			continue
		}
		switch n.Code {
		case wire.NotifyNATDetectionSourceIP:
			srcSeen = true
			if subtle.ConstantTimeCompare(n.Data, wantSrc) == 1 {
				srcMatch = true
			}
		case wire.NotifyNATDetectionDestinationIP:
			if subtle.ConstantTimeCompare(n.Data, wantDst) != 1 {
				natLocal = true
			}
		}
	}
	return natLocal, srcSeen && !srcMatch
}
