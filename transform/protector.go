package transform

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	cryptorand "crypto/rand"
	"errors"
	"fmt"
	"hash"
	"io"
	"slices"

	"golang.org/x/crypto/chacha20poly1305"
)

// Protector protects SK payloads in one direction (RFC 7296 §3.14; RFC 5282
// for AES-GCM; RFC 7634 for ChaCha20-Poly1305). It is safe for use by one
// goroutine at a time.
//
// It keeps its own copy of the keys, from which the cipher state (AES key
// schedule, GCM tables, HMAC state: about 700 octets per direction for
// AES-GCM) is built. SetCompact makes it build that state for each message
// and drop it afterwards: an established IKE SA mostly sits idle, and at
// 100,000 SAs the cipher state would be most of their memory.
type Protector struct {
	encr    *Encr
	integ   *Integ       // nil for AEAD ciphers
	key     []byte       // SK_e (with the salt at its end for AEAD ciphers)
	ikey    []byte       // SK_a; nil for AEAD ciphers
	st      *cipherState // nil until built, and between messages when compact
	compact bool
	wiped   bool
	// keyBuf holds key and ikey when they fit (AES-GCM-256 with its salt
	// is 36 octets): one allocation per Protector rather than two, and
	// past the pointer fields, so the garbage collector does not scan it.
	keyBuf [48]byte
}

// cipherState is what a Protector builds from its keys. It is a separate
// allocation so that a compact Protector is small between messages.
type cipherState struct {
	// AEAD ciphers.
	aead  cipher.AEAD
	nonce []byte // scratch: salt || IV

	// CBC with HMAC.
	block  cipher.Block
	cbcEnc cipher.BlockMode // nil when the mode cannot be re-keyed with SetIV
	cbcDec cipher.BlockMode
	mac    hash.Hash
	sum    []byte // scratch for the untruncated HMAC output
}

// ivSetter is implemented by the standard library's CBC modes.
type ivSetter interface{ SetIV([]byte) }

// errWiped is returned by a Protector used after Wipe.
var errWiped = errors.New("transform: protector used after its keys were wiped")

// NewProtector makes a Protector from the negotiated transforms and this
// direction's keys: encKey is SK_e (with the salt at its end for AEAD
// ciphers), integKey is SK_a (nil, and integ nil, for AEAD ciphers). The
// keys are copied.
func NewProtector(encr *Encr, encKey []byte, integ *Integ, integKey []byte) (*Protector, error) {
	p := &Protector{}
	if err := p.init(encr, encKey, integ, integKey); err != nil {
		return nil, err
	}
	return p, nil
}

// NewProtectorPair makes the Protectors of both directions, as NewProtector
// does, in one allocation: an IKE SA holds both for its whole life, and
// each object less per held SA is less for the garbage collector to visit.
func NewProtectorPair(encr *Encr, integ *Integ, outKey, outIntegKey, inKey, inIntegKey []byte) (out, in *Protector, err error) {
	pair := new([2]Protector)
	if err := pair[0].init(encr, outKey, integ, outIntegKey); err != nil {
		return nil, nil, err
	}
	if err := pair[1].init(encr, inKey, integ, inIntegKey); err != nil {
		pair[0].Wipe()
		return nil, nil, err
	}
	return &pair[0], &pair[1], nil
}

// init checks the transforms and keys and copies the keys into p.
func (p *Protector) init(encr *Encr, encKey []byte, integ *Integ, integKey []byte) error {
	if encr == nil {
		return errors.New("transform: no encryption transform")
	}
	switch encr.ID {
	case EncrAESGCM16, EncrChaCha20Poly1305:
		if integ != nil {
			return fmt.Errorf("transform: %s takes no integrity transform", encr.Name)
		}
		keyLen := len(encKey) - encr.SaltLen
		if len(encKey) < encr.SaltLen || !encr.validKeyBits(encKeyBits(encr, keyLen)) {
			return fmt.Errorf("transform: %s key material of %d octets", encr.Name, len(encKey))
		}
	case EncrAESCBC:
		if integ == nil {
			return errors.New("transform: AES_CBC needs an integrity transform")
		}
		if !encr.validKeyBits(uint16(len(encKey) * 8)) {
			return fmt.Errorf("transform: AES_CBC key of %d octets", len(encKey))
		}
		if len(integKey) != integ.KeyLen {
			return fmt.Errorf("transform: %s key of %d octets, want %d", integ.Name, len(integKey), integ.KeyLen)
		}
	default:
		return fmt.Errorf("transform: unsupported encryption transform %d", encr.ID)
	}
	p.encr, p.integ = encr, integ
	if len(encKey)+len(integKey) <= len(p.keyBuf) {
		n := copy(p.keyBuf[:], encKey)
		p.key = p.keyBuf[:n:n]
		if integ != nil {
			m := copy(p.keyBuf[n:], integKey)
			p.ikey = p.keyBuf[n : n+m : n+m]
		}
	} else {
		p.key = slices.Clone(encKey)
		if integ != nil {
			p.ikey = slices.Clone(integKey)
		}
	}
	// The cipher state is built at the first Seal or Open: the key
	// lengths were checked above, the only thing the ciphers refuse, and
	// a responder's half-open SA that never sees IKE_AUTH (most of them
	// under a flood) never needs it.
	return nil
}

// build makes the cipher state from the keys, unless it is there.
func (p *Protector) build() error {
	if p.wiped {
		return errWiped
	}
	if p.st != nil {
		return nil
	}
	encr := p.encr
	st := &cipherState{}
	if p.integ == nil {
		key := p.key[:len(p.key)-encr.SaltLen]
		var err error
		if encr.ID == EncrAESGCM16 {
			var b cipher.Block
			if b, err = aes.NewCipher(key); err == nil {
				st.aead, err = cipher.NewGCM(b)
			}
		} else {
			st.aead, err = chacha20poly1305.New(key)
		}
		if err != nil {
			return err
		}
		if st.aead.NonceSize() != encr.SaltLen+encr.IVLen || st.aead.Overhead() != encr.ICVLen {
			return fmt.Errorf("transform: %s: unexpected AEAD geometry", encr.Name)
		}
		st.nonce = make([]byte, encr.SaltLen+encr.IVLen)
		copy(st.nonce, p.key[len(key):])
		p.st = st
		return nil
	}
	b, err := aes.NewCipher(p.key)
	if err != nil {
		return err
	}
	st.block = b
	zeroIV := make([]byte, b.BlockSize())
	enc, dec := cipher.NewCBCEncrypter(b, zeroIV), cipher.NewCBCDecrypter(b, zeroIV)
	if _, ok := enc.(ivSetter); ok {
		st.cbcEnc = enc
	}
	if _, ok := dec.(ivSetter); ok {
		st.cbcDec = dec
	}
	st.mac = p.integ.New(p.ikey)
	st.sum = make([]byte, 0, st.mac.Size())
	p.st = st
	return nil
}

// release drops the cipher state; build makes it again from the keys. The
// standard library offers no way to zero an AES key schedule or an HMAC
// state, so the dropped state is left to the garbage collector, as it is
// when a Protector is discarded.
func (p *Protector) release() {
	if p.st != nil {
		clear(p.st.nonce)
		clear(p.st.sum[:cap(p.st.sum)])
		p.st = nil
	}
}

// SetCompact makes the Protector keep only its keys between messages: the
// cipher state is built for each Seal or Open and dropped after it. That
// costs a key expansion per message (about a microsecond) and saves the
// state's memory while the SA is idle.
func (p *Protector) SetCompact() {
	p.compact = true
	p.release()
}

// Wipe zeroes the Protector's keys and drops its cipher state; Seal and
// Open fail afterwards.
func (p *Protector) Wipe() {
	clear(p.key)
	clear(p.ikey)
	p.release()
	p.wiped = true
}

// done ends a Seal or Open: a compact Protector drops its cipher state.
func (p *Protector) done() {
	if p.compact {
		p.release()
	}
}

// encKeyBits returns the Key Length attribute matching keyLen octets of key
// for encr (0 for a transform without the attribute and the right length).
func encKeyBits(encr *Encr, keyLen int) uint16 {
	if len(encr.KeySizes) == 0 {
		if keyLen == encr.keyLen {
			return 0
		}
		return 1 // invalid
	}
	if keyLen <= 0 || keyLen > 0x1fff {
		return 1
	}
	return uint16(keyLen * 8)
}

// icvLen is the octets of integrity data after the ciphertext.
func (p *Protector) icvLen() int {
	if p.integ == nil {
		return p.encr.ICVLen
	}
	return p.integ.ICVLen
}

// paddedLen is the length of plaintext || padding || pad length.
func (p *Protector) paddedLen(plainLen int) int {
	bl := p.encr.BlockLen
	return (plainLen + 1 + bl - 1) / bl * bl
}

// SealedLen returns the length of an SK payload body (IV, ciphertext with
// padding and pad length, ICV) that carries plainLen octets of inner payloads.
func (p *Protector) SealedLen(plainLen int) int {
	return p.encr.IVLen + p.paddedLen(plainLen) + p.icvLen()
}

// Seal appends the SK payload body for plaintext to msg and returns the
// extended slice. msg must already hold the IKE header, any payloads before
// SK and the SK generic payload header, with the header's Length and the SK
// payload's length already final (they are covered by the ICV/AAD). The IV
// comes from rand.
func (p *Protector) Seal(msg, plaintext []byte, rand io.Reader) ([]byte, error) {
	if rand == nil {
		rand = cryptorand.Reader
	}
	if err := p.build(); err != nil {
		return msg, err
	}
	defer p.done()
	aadLen := len(msg)
	ivLen := p.encr.IVLen
	padded := p.paddedLen(len(plaintext))
	out := slices.Grow(msg, p.SealedLen(len(plaintext)))
	out = out[:aadLen+ivLen+padded]
	iv := out[aadLen : aadLen+ivLen]
	if _, err := io.ReadFull(rand, iv); err != nil {
		return msg, fmt.Errorf("transform: reading IV: %w", err)
	}
	body := out[aadLen+ivLen:]
	copy(body, plaintext)
	padLen := padded - len(plaintext) - 1
	clear(body[len(plaintext) : padded-1])
	body[padded-1] = byte(padLen)

	if p.st.aead != nil {
		copy(p.st.nonce[p.encr.SaltLen:], iv)
		sealed := p.st.aead.Seal(body[:0], p.st.nonce, body, out[:aadLen])
		return out[:aadLen+ivLen+len(sealed)], nil
	}

	if p.st.cbcEnc != nil {
		p.st.cbcEnc.(ivSetter).SetIV(iv)
		p.st.cbcEnc.CryptBlocks(body, body)
	} else {
		cipher.NewCBCEncrypter(p.st.block, iv).CryptBlocks(body, body)
	}
	p.st.mac.Reset()
	p.st.mac.Write(out)
	p.st.sum = p.st.mac.Sum(p.st.sum[:0])
	return append(out, p.st.sum[:p.integ.ICVLen]...), nil
}

// Open authenticates and decrypts an SK payload body. aad is the message
// from its first octet up to and including the SK generic payload header;
// body is the rest of the message (IV, ciphertext, ICV). It returns the inner
// payloads' octets with padding removed, in a new slice. Any failure
// (short body, bad ICV, bad padding) returns ErrIntegrity or ErrMalformed.
func (p *Protector) Open(aad, body []byte) ([]byte, error) {
	ivLen, icvLen := p.encr.IVLen, p.icvLen()
	// At least one octet (the pad length) or one cipher block of ciphertext.
	if len(body) < ivLen+p.encr.BlockLen+icvLen {
		return nil, ErrMalformed
	}
	if err := p.build(); err != nil {
		return nil, err
	}
	defer p.done()
	iv := body[:ivLen]
	ct := body[ivLen : len(body)-icvLen]
	icv := body[len(body)-icvLen:]

	var plain []byte
	if p.st.aead != nil {
		copy(p.st.nonce[p.encr.SaltLen:], iv)
		var err error
		plain, err = p.st.aead.Open(make([]byte, 0, len(ct)), p.st.nonce, body[ivLen:], aad)
		if err != nil {
			return nil, ErrIntegrity
		}
	} else {
		if len(ct)%p.encr.BlockLen != 0 {
			return nil, ErrMalformed
		}
		p.st.mac.Reset()
		p.st.mac.Write(aad)
		p.st.mac.Write(body[:len(body)-icvLen])
		p.st.sum = p.st.mac.Sum(p.st.sum[:0])
		if !hmac.Equal(p.st.sum[:icvLen], icv) {
			return nil, ErrIntegrity
		}
		plain = make([]byte, len(ct))
		if p.st.cbcDec != nil {
			p.st.cbcDec.(ivSetter).SetIV(iv)
			p.st.cbcDec.CryptBlocks(plain, ct)
		} else {
			cipher.NewCBCDecrypter(p.st.block, iv).CryptBlocks(plain, ct)
		}
	}
	padLen := int(plain[len(plain)-1])
	if padLen+1 > len(plain) {
		clear(plain)
		return nil, ErrMalformed
	}
	return plain[: len(plain)-1-padLen : len(plain)-1-padLen], nil
}
