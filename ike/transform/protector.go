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
type Protector struct {
	encr *Encr

	// AEAD ciphers.
	aead  cipher.AEAD
	salt  []byte
	nonce []byte // scratch: salt || IV

	// CBC with HMAC.
	block  cipher.Block
	cbcEnc cipher.BlockMode // nil when the mode cannot be re-keyed with SetIV
	cbcDec cipher.BlockMode
	integ  *Integ
	mac    hash.Hash
	sum    []byte // scratch for the untruncated HMAC output
}

// ivSetter is implemented by the standard library's CBC modes.
type ivSetter interface{ SetIV([]byte) }

// NewProtector makes a Protector from the negotiated transforms and this
// direction's keys: encKey is SK_e (with the salt at its end for AEAD
// ciphers), integKey is SK_a (nil, and integ nil, for AEAD ciphers).
func NewProtector(encr *Encr, encKey []byte, integ *Integ, integKey []byte) (*Protector, error) {
	if encr == nil {
		return nil, errors.New("transform: no encryption transform")
	}
	p := &Protector{encr: encr}
	switch encr.ID {
	case EncrAESGCM16, EncrChaCha20Poly1305:
		if integ != nil {
			return nil, fmt.Errorf("transform: %s takes no integrity transform", encr.Name)
		}
		keyLen := len(encKey) - encr.SaltLen
		if len(encKey) < encr.SaltLen || !encr.validKeyBits(encKeyBits(encr, keyLen)) {
			return nil, fmt.Errorf("transform: %s key material of %d octets", encr.Name, len(encKey))
		}
		key := encKey[:keyLen]
		var err error
		if encr.ID == EncrAESGCM16 {
			var b cipher.Block
			if b, err = aes.NewCipher(key); err == nil {
				p.aead, err = cipher.NewGCM(b)
			}
		} else {
			p.aead, err = chacha20poly1305.New(key)
		}
		if err != nil {
			return nil, err
		}
		if p.aead.NonceSize() != encr.SaltLen+encr.IVLen || p.aead.Overhead() != encr.ICVLen {
			return nil, fmt.Errorf("transform: %s: unexpected AEAD geometry", encr.Name)
		}
		p.salt = slices.Clone(encKey[keyLen:])
		p.nonce = make([]byte, encr.SaltLen+encr.IVLen)
		copy(p.nonce, p.salt)
	case EncrAESCBC:
		if integ == nil {
			return nil, errors.New("transform: AES_CBC needs an integrity transform")
		}
		if !encr.validKeyBits(uint16(len(encKey) * 8)) {
			return nil, fmt.Errorf("transform: AES_CBC key of %d octets", len(encKey))
		}
		if len(integKey) != integ.KeyLen {
			return nil, fmt.Errorf("transform: %s key of %d octets, want %d", integ.Name, len(integKey), integ.KeyLen)
		}
		b, err := aes.NewCipher(encKey)
		if err != nil {
			return nil, err
		}
		p.block = b
		zeroIV := make([]byte, b.BlockSize())
		enc, dec := cipher.NewCBCEncrypter(b, zeroIV), cipher.NewCBCDecrypter(b, zeroIV)
		if _, ok := enc.(ivSetter); ok {
			p.cbcEnc = enc
		}
		if _, ok := dec.(ivSetter); ok {
			p.cbcDec = dec
		}
		p.integ = integ
		p.mac = integ.New(integKey)
		p.sum = make([]byte, 0, p.mac.Size())
	default:
		return nil, fmt.Errorf("transform: unsupported encryption transform %d", encr.ID)
	}
	return p, nil
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
	if p.aead != nil {
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

	if p.aead != nil {
		copy(p.nonce[len(p.salt):], iv)
		sealed := p.aead.Seal(body[:0], p.nonce, body, out[:aadLen])
		return out[:aadLen+ivLen+len(sealed)], nil
	}

	if p.cbcEnc != nil {
		p.cbcEnc.(ivSetter).SetIV(iv)
		p.cbcEnc.CryptBlocks(body, body)
	} else {
		cipher.NewCBCEncrypter(p.block, iv).CryptBlocks(body, body)
	}
	p.mac.Reset()
	p.mac.Write(out)
	p.sum = p.mac.Sum(p.sum[:0])
	return append(out, p.sum[:p.integ.ICVLen]...), nil
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
	iv := body[:ivLen]
	ct := body[ivLen : len(body)-icvLen]
	icv := body[len(body)-icvLen:]

	var plain []byte
	if p.aead != nil {
		copy(p.nonce[len(p.salt):], iv)
		var err error
		plain, err = p.aead.Open(make([]byte, 0, len(ct)), p.nonce, body[ivLen:], aad)
		if err != nil {
			return nil, ErrIntegrity
		}
	} else {
		if len(ct)%p.encr.BlockLen != 0 {
			return nil, ErrMalformed
		}
		p.mac.Reset()
		p.mac.Write(aad)
		p.mac.Write(body[:len(body)-icvLen])
		p.sum = p.mac.Sum(p.sum[:0])
		if !hmac.Equal(p.sum[:icvLen], icv) {
			return nil, ErrIntegrity
		}
		plain = make([]byte, len(ct))
		if p.cbcDec != nil {
			p.cbcDec.(ivSetter).SetIV(iv)
			p.cbcDec.CryptBlocks(plain, ct)
		} else {
			cipher.NewCBCDecrypter(p.block, iv).CryptBlocks(plain, ct)
		}
	}
	padLen := int(plain[len(plain)-1])
	if padLen+1 > len(plain) {
		clear(plain)
		return nil, ErrMalformed
	}
	return plain[: len(plain)-1-padLen : len(plain)-1-padLen], nil
}
