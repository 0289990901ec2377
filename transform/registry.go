package transform

import (
	"crypto/sha256"
	"crypto/sha512"
)

var (
	encrAESCBC = &Encr{
		ID: EncrAESCBC, Name: "AES_CBC", KeySizes: []uint16{128, 192, 256},
		IVLen: 16, BlockLen: 16,
	}
	encrAESGCM16 = &Encr{
		ID: EncrAESGCM16, Name: "AES_GCM_16", KeySizes: []uint16{128, 256},
		AEAD: true, SaltLen: 4, IVLen: 8, ICVLen: 16, BlockLen: 1,
	}
	encrChaCha20Poly1305 = &Encr{
		ID: EncrChaCha20Poly1305, Name: "CHACHA20_POLY1305",
		AEAD: true, SaltLen: 4, IVLen: 8, ICVLen: 16, BlockLen: 1, keyLen: 32,
	}

	prfSHA256 = &PRF{ID: PRFHMACSHA2_256, Name: "PRF_HMAC_SHA2_256", Size: 32, newHash: sha256.New}
	prfSHA384 = &PRF{ID: PRFHMACSHA2_384, Name: "PRF_HMAC_SHA2_384", Size: 48, newHash: sha512.New384}
	prfSHA512 = &PRF{ID: PRFHMACSHA2_512, Name: "PRF_HMAC_SHA2_512", Size: 64, newHash: sha512.New}

	integSHA256 = &Integ{ID: IntegHMACSHA2_256_128, Name: "HMAC_SHA2_256_128", KeyLen: 32, ICVLen: 16, newHash: sha256.New}
	integSHA384 = &Integ{ID: IntegHMACSHA2_384_192, Name: "HMAC_SHA2_384_192", KeyLen: 48, ICVLen: 24, newHash: sha512.New384}
	integSHA512 = &Integ{ID: IntegHMACSHA2_512_256, Name: "HMAC_SHA2_512_256", KeyLen: 64, ICVLen: 32, newHash: sha512.New}
)

// EncrByID returns the encryption transform with this ID.
func EncrByID(id uint16) *Encr {
	switch id {
	case EncrAESCBC:
		return encrAESCBC
	case EncrAESGCM16:
		return encrAESGCM16
	case EncrChaCha20Poly1305:
		return encrChaCha20Poly1305
	case EncrDES3:
		return encrDES3
	}
	return nil
}

// PRFByID returns the PRF with this ID.
func PRFByID(id uint16) *PRF {
	switch id {
	case PRFHMACSHA2_256:
		return prfSHA256
	case PRFHMACSHA2_384:
		return prfSHA384
	case PRFHMACSHA2_512:
		return prfSHA512
	case PRFHMACSHA1:
		return prfSHA1
	}
	return nil
}

// IntegByID returns the integrity transform with this ID.
func IntegByID(id uint16) *Integ {
	switch id {
	case IntegHMACSHA2_256_128:
		return integSHA256
	case IntegHMACSHA2_384_192:
		return integSHA384
	case IntegHMACSHA2_512_256:
		return integSHA512
	case IntegHMACSHA1_96:
		return integSHA1
	}
	return nil
}

// GroupByID returns the Diffie-Hellman group with this ID.
func GroupByID(id uint16) Group {
	switch id {
	case DHModp2048:
		return modp2048
	case DHModp3072:
		return modp3072
	case DHModp4096:
		return modp4096
	case DHModp1024:
		return modp1024
	case DHECP256:
		return ecp256
	case DHECP384:
		return ecp384
	case DHECP521:
		return ecp521
	case DHCurve25519:
		return curve25519
	case DHCurve448:
		return curve448
	case DHMLKEM768:
		return mlkem768
	case DHMLKEM1024:
		return mlkem1024
	}
	return nil
}

// validKeyBits reports whether keyBits is an allowed Key Length attribute
// value for e (0 for transforms that take none).
func (e *Encr) validKeyBits(keyBits uint16) bool {
	if len(e.KeySizes) == 0 {
		return keyBits == 0
	}
	for _, k := range e.KeySizes {
		if k == keyBits {
			return true
		}
	}
	return false
}
