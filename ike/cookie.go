package ike

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"net/netip"
	"sync"
	"time"
)

// cookieRotation is how often the cookie secret changes (§2.6 suggests
// regenerating it periodically); cookies made with the previous secret stay
// valid for one more period, so a client mid-retry is not refused.
const cookieRotation = 5 * time.Minute

// cookieLen is the length of a cookie: a version octet and 16 octets of MAC.
const cookieLen = 1 + 16

// cookieJar makes and checks stateless cookies (RFC 7296 §2.6):
// Cookie = <VersionIDofSecret> | Hash(Ni | IPi | SPIi | <secret>),
// here with HMAC-SHA-256 keyed by the secret, truncated to 16 octets.
type cookieJar struct {
	rand io.Reader
	now  func() time.Time

	mu       sync.Mutex
	version  uint8
	secret   [32]byte
	previous [32]byte
	rotated  time.Time
}

func newCookieJar(rand io.Reader, now func() time.Time) (*cookieJar, error) {
	j := &cookieJar{rand: rand, now: now}
	if _, err := io.ReadFull(rand, j.secret[:]); err != nil {
		return nil, err
	}
	j.previous = j.secret
	j.rotated = now()
	return j, nil
}

func (j *cookieJar) rotate() {
	if j.now().Sub(j.rotated) < cookieRotation {
		return
	}
	j.previous = j.secret
	if _, err := io.ReadFull(j.rand, j.secret[:]); err != nil {
		return // keep the old secret rather than fail handshakes
	}
	j.version++
	j.rotated = j.now()
}

func cookieMAC(secret *[32]byte, version uint8, ni []byte, peer netip.Addr, spii uint64) []byte {
	m := hmac.New(sha256.New, secret[:])
	m.Write(ni)
	a := peer.Unmap().AsSlice()
	m.Write(a)
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], spii)
	m.Write(b[:])
	out := make([]byte, 1, cookieLen)
	out[0] = version
	return append(out, m.Sum(nil)[:cookieLen-1]...)
}

// make returns the cookie for an IKE_SA_INIT request.
func (j *cookieJar) make(ni []byte, peer netip.Addr, spii uint64) []byte {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate()
	return cookieMAC(&j.secret, j.version, ni, peer, spii)
}

// valid reports whether cookie is one this jar made recently for the request.
func (j *cookieJar) valid(cookie, ni []byte, peer netip.Addr, spii uint64) bool {
	if len(cookie) != cookieLen {
		return false
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	j.rotate()
	switch cookie[0] {
	case j.version:
		return hmac.Equal(cookie, cookieMAC(&j.secret, j.version, ni, peer, spii))
	case j.version - 1:
		return hmac.Equal(cookie, cookieMAC(&j.previous, j.version-1, ni, peer, spii))
	}
	return false
}
