// Package esp holds the packet transforms of the userspace data plane: ESP
// (RFC 4303) with AES-GCM (RFC 4106), AES-CBC with HMAC-SHA2 (RFC 3602,
// RFC 4868) and ChaCha20-Poly1305 (RFC 7634); AH (RFC 4302) with HMAC-SHA2;
// the anti-replay window with extended sequence numbers (RFC 4303 §2.2.1,
// §3.4.3, Appendix A). Transforms work in place in caller-provided buffers
// and allocate nothing per packet. An SA is not safe for concurrent use:
// callers serialise Seal and Open per SA.
package esp

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/sha1" // #nosec G505 -- HMAC-SHA1-96 (RFC 2404) for SAs an IKEv1 peer negotiated with allow_legacy
	"crypto/sha256"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"

	"golang.org/x/crypto/chacha20poly1305"
)

// IANA transform IDs (the values of ike/transform, repeated so that this
// package stays a leaf).
const (
	EncrAESCBC            uint16 = 12
	EncrAESGCM12          uint16 = 19
	EncrAESGCM16          uint16 = 20
	EncrChaCha20Poly1305  uint16 = 28
	IntegHMACSHA1_96      uint16 = 2 // legacy, negotiated by IKEv1 peers
	IntegHMACSHA2_256_128 uint16 = 12
	IntegHMACSHA2_384_192 uint16 = 13
	IntegHMACSHA2_512_256 uint16 = 14
)

// IP protocol numbers used as ESP/AH next headers in tunnel mode.
const (
	NextIPv4   byte = 4
	NextIPv6   byte = 41
	NextNoNext byte = 59 // a dummy packet (RFC 4303 §2.6), to be dropped
)

// Errors of Seal and Open. They are values, so returning them allocates nothing.
var (
	ErrReplay       = errors.New("esp: replayed or too old sequence number")
	ErrAuth         = errors.New("esp: integrity check failed")
	ErrMalformed    = errors.New("esp: malformed packet")
	ErrSeqExhausted = errors.New("esp: sequence numbers exhausted; the SA must be rekeyed")
	ErrNoRoom       = errors.New("esp: buffer lacks head or tail room")
)

// Config describes one SA's transform.
type Config struct {
	SPI uint32
	// EncrID is the ESP encryption transform (0 for AH); EncrKeyBits its
	// key size (0: taken from the key length); EncrKey includes the 4-octet
	// salt of AES-GCM and ChaCha20-Poly1305 at its end.
	EncrID      uint16
	EncrKeyBits uint16
	EncrKey     []byte
	// IntegID is the integrity transform (0 for AEAD ciphers).
	IntegID  uint16
	IntegKey []byte
	// ESN enables 64-bit extended sequence numbers.
	ESN bool
	// ReplayWindow is the inbound anti-replay window (0: DefaultReplayWindow).
	ReplayWindow uint32
}

// SA is the state of one unidirectional ESP SA: keys, the outbound
// sequence counter and the inbound replay window.
type SA struct {
	spi      uint32
	esn      bool
	seq      uint64 // last sequence number sent
	aead     cipher.AEAD
	block    cipher.Block // CBC only: also makes IVs
	enc, dec cbcMode
	mac      hash.Hash
	ivLen    int
	icvLen   int
	align    int // padding unit of the plaintext
	replay   Replay

	// Scratch, here rather than on the stack because slices of it are
	// passed to interface methods, which would make stack arrays escape.
	salt   [4]byte
	nonce  [12]byte
	aad    [12]byte
	iv     [16]byte
	macOut [64]byte
	seqHi  [4]byte
}

type cbcMode interface {
	cipher.BlockMode
	SetIV([]byte)
}

// New makes an ESP SA.
func New(c Config) (*SA, error) {
	s := &SA{spi: c.SPI, esn: c.ESN}
	s.replay.Init(c.ReplayWindow, c.ESN)
	switch c.EncrID {
	case EncrAESGCM12, EncrAESGCM16: // Go's GCM has no 8-octet tags
		if c.IntegID != 0 {
			return nil, fmt.Errorf("esp: AES-GCM takes no integrity transform (got %d)", c.IntegID)
		}
		key, err := splitSalt(c, &s.salt)
		if err != nil {
			return nil, err
		}
		b, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("esp: AES-GCM: %w", err)
		}
		s.icvLen = 12
		if c.EncrID == EncrAESGCM16 {
			s.icvLen = 16
		}
		if s.aead, err = cipher.NewGCMWithTagSize(b, s.icvLen); err != nil {
			return nil, err
		}
		s.ivLen, s.align = 8, 4
	case EncrChaCha20Poly1305:
		if c.IntegID != 0 {
			return nil, fmt.Errorf("esp: ChaCha20-Poly1305 takes no integrity transform (got %d)", c.IntegID)
		}
		key, err := splitSalt(c, &s.salt)
		if err != nil {
			return nil, err
		}
		if s.aead, err = chacha20poly1305.New(key); err != nil {
			return nil, fmt.Errorf("esp: ChaCha20-Poly1305: %w", err)
		}
		s.ivLen, s.icvLen, s.align = 8, 16, 4
	case EncrAESCBC:
		if c.EncrKeyBits != 0 && int(c.EncrKeyBits) != 8*len(c.EncrKey) {
			return nil, fmt.Errorf("esp: AES-CBC key is %d octets, want %d bits", len(c.EncrKey), c.EncrKeyBits)
		}
		b, err := aes.NewCipher(c.EncrKey)
		if err != nil {
			return nil, fmt.Errorf("esp: AES-CBC: %w", err)
		}
		s.block = b
		var zero [16]byte
		s.enc = cipher.NewCBCEncrypter(b, zero[:]).(cbcMode) // #nosec G407 -- placeholder IV: every packet sets its own with SetIV before encrypting (seal, below)
		s.dec = cipher.NewCBCDecrypter(b, zero[:]).(cbcMode)
		if s.mac, s.icvLen, err = newMAC(c.IntegID, c.IntegKey); err != nil {
			return nil, err
		}
		s.ivLen, s.align = 16, 16
	default:
		return nil, fmt.Errorf("esp: encryption transform %d is not supported", c.EncrID)
	}
	return s, nil
}

func splitSalt(c Config, salt *[4]byte) ([]byte, error) {
	n := len(c.EncrKey) - 4
	if n <= 0 || (c.EncrKeyBits != 0 && int(c.EncrKeyBits) != 8*n) {
		return nil, fmt.Errorf("esp: transform %d key material is %d octets, want %d bits and a 4-octet salt", c.EncrID, len(c.EncrKey), c.EncrKeyBits)
	}
	copy(salt[:], c.EncrKey[n:])
	return c.EncrKey[:n], nil
}

func newMAC(id uint16, key []byte) (hash.Hash, int, error) {
	var h func() hash.Hash
	var keyLen, icv int
	switch id {
	case IntegHMACSHA1_96:
		h, keyLen, icv = sha1.New, 20, 12
	case IntegHMACSHA2_256_128:
		h, keyLen, icv = sha256.New, 32, 16
	case IntegHMACSHA2_384_192:
		h, keyLen, icv = sha512.New384, 48, 24
	case IntegHMACSHA2_512_256:
		h, keyLen, icv = sha512.New, 64, 32
	default:
		return nil, 0, fmt.Errorf("esp: integrity transform %d is not supported", id)
	}
	if len(key) != keyLen {
		return nil, 0, fmt.Errorf("esp: integrity transform %d key is %d octets, want %d", id, len(key), keyLen)
	}
	return hmac.New(h, key), icv, nil
}

// SPI returns the SA's SPI.
func (s *SA) SPI() uint32 { return s.spi }

// HeaderLen is the room Seal needs before the payload: SPI, sequence
// number and IV.
func (s *SA) HeaderLen() int { return 8 + s.ivLen }

// MaxTrailerLen is the most room Seal needs after the payload: padding,
// pad length, next header and ICV.
func (s *SA) MaxTrailerLen() int { return s.align - 1 + 2 + s.icvLen }

// Overhead returns the octets ESP adds to a payload of n octets.
func (s *SA) Overhead(n int) int {
	return s.HeaderLen() + s.padLen(n) + 2 + s.icvLen
}

func (s *SA) padLen(n int) int { return (s.align - (n+2)%s.align) % s.align }

// Seq returns the last sequence number sent.
func (s *SA) Seq() uint64 { return s.seq }

// SetSeq sets the last sequence number sent (tests, and resuming an SA).
func (s *SA) SetSeq(seq uint64) { s.seq = seq }

// Replay returns the inbound anti-replay window.
func (s *SA) Replay() *Replay { return &s.replay }

// Seal makes the ESP packet that carries buf[off:off+n] with next header
// next, in place: the header goes into buf[off-HeaderLen():off] and the
// trailer after the payload, which must fit within len(buf). It returns the
// packet, a sub-slice of buf.
func (s *SA) Seal(buf []byte, off, n int, next byte) ([]byte, error) {
	hdr := s.HeaderLen()
	pad := s.padLen(n)
	ptEnd := off + n + pad + 2
	end := ptEnd + s.icvLen
	if off < hdr || n < 0 || end > len(buf) {
		return nil, ErrNoRoom
	}
	seq := s.seq + 1
	if (!s.esn && seq > 0xffffffff) || seq == 0 {
		return nil, ErrSeqExhausted
	}
	s.seq = seq
	start := off - hdr
	p := buf[start:end]
	binary.BigEndian.PutUint32(p[0:4], s.spi)
	binary.BigEndian.PutUint32(p[4:8], uint32(seq))
	t := buf[off+n : ptEnd]
	for i := range pad {
		t[i] = byte(i + 1) // RFC 4303 §2.4: 1, 2, 3, ...
	}
	t[pad], t[pad+1] = byte(pad), next
	if s.aead != nil {
		binary.BigEndian.PutUint64(p[8:16], seq) // the counter is a unique IV (RFC 4106 §3.1)
		s.aead.Seal(buf[off:off], s.makeNonce(p[8:16]), buf[off:ptEnd], s.makeAAD(seq))
		return p, nil
	}
	// CBC: the IV is the encryption of the sequence number, unique and
	// unpredictable without the key (NIST SP 800-38A Appendix C).
	clear(s.iv[:8])
	binary.BigEndian.PutUint64(s.iv[8:], seq)
	s.block.Encrypt(p[8:24], s.iv[:])
	s.enc.SetIV(p[8:24])
	s.enc.CryptBlocks(buf[off:ptEnd], buf[off:ptEnd])
	copy(buf[ptEnd:end], s.icv(p[:ptEnd-start], seq))
	return p, nil
}

// Open checks, authenticates and decrypts the ESP packet pkt in place and
// returns its payload (a sub-slice of pkt), next header and sequence
// number. A packet is recorded in the replay window only once verified.
func (s *SA) Open(pkt []byte) (payload []byte, next byte, seq uint64, err error) {
	hdr := s.HeaderLen()
	if len(pkt) < hdr+2+s.icvLen {
		return nil, 0, 0, ErrMalformed
	}
	seq, ok := s.replay.Check(binary.BigEndian.Uint32(pkt[4:8]))
	if !ok {
		return nil, 0, seq, ErrReplay
	}
	ct := pkt[hdr:]
	var pt []byte
	if s.aead != nil {
		pt, err = s.aead.Open(ct[:0], s.makeNonce(pkt[8:16]), ct, s.makeAAD(seq))
		if err != nil {
			return nil, 0, seq, ErrAuth
		}
	} else {
		body := len(pkt) - s.icvLen
		if subtle.ConstantTimeCompare(s.icv(pkt[:body], seq), pkt[body:]) != 1 {
			return nil, 0, seq, ErrAuth
		}
		pt = pkt[hdr:body]
		if len(pt)%16 != 0 {
			return nil, 0, seq, ErrMalformed
		}
		s.dec.SetIV(pkt[8:24])
		s.dec.CryptBlocks(pt, pt)
	}
	pad := int(pt[len(pt)-2])
	if pad+2 > len(pt) {
		return nil, 0, seq, ErrMalformed
	}
	if !s.replay.Accept(seq) {
		return nil, 0, seq, ErrReplay
	}
	return pt[:len(pt)-2-pad], pt[len(pt)-1], seq, nil
}

func (s *SA) makeNonce(iv []byte) []byte {
	copy(s.nonce[:4], s.salt[:])
	copy(s.nonce[4:], iv)
	return s.nonce[:]
}

// makeAAD returns SPI and sequence number, with the high-order 32 bits in
// between when ESN is on (RFC 4106 §5, RFC 7634 §2.1).
func (s *SA) makeAAD(seq uint64) []byte {
	binary.BigEndian.PutUint32(s.aad[0:4], s.spi)
	if s.esn {
		binary.BigEndian.PutUint64(s.aad[4:12], seq)
		return s.aad[:12]
	}
	binary.BigEndian.PutUint32(s.aad[4:8], uint32(seq))
	return s.aad[:8]
}

// icv returns the truncated HMAC of b, followed for ESN by the implicit
// high-order sequence bits (RFC 4303 §2.2.1, Appendix A).
func (s *SA) icv(b []byte, seq uint64) []byte {
	s.mac.Reset()
	s.mac.Write(b)
	if s.esn {
		binary.BigEndian.PutUint32(s.seqHi[:], uint32(seq>>32))
		s.mac.Write(s.seqHi[:])
	}
	return s.mac.Sum(s.macOut[:0])[:s.icvLen]
}
