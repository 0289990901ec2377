package ikev1

import (
	"crypto/cipher"
	"crypto/subtle"
	"errors"
	"io"
	"slices"
)

// errDecrypt is a ciphertext that is empty or not a multiple of the block.
var errDecrypt = errors.New("ikev1: encrypted payloads not a whole number of cipher blocks")

// encryptBody pads plain to the block size and encrypts it in CBC mode
// with iv (RFC 2409 Appendix B). The padding is as racoon writes it: at
// least one octet, random, the last octet the count of padding octets
// before it (strongSwan and Windows ignore the padding's content). It
// returns the ciphertext, whose last block is the next IV of the exchange.
func encryptBody(b cipher.Block, iv, plain []byte, rand io.Reader) ([]byte, error) {
	bs := b.BlockSize()
	pad := bs - len(plain)%bs
	out := make([]byte, len(plain)+pad)
	copy(out, plain)
	if _, err := io.ReadFull(rand, out[len(plain):]); err != nil {
		return nil, err
	}
	out[len(out)-1] = byte(pad - 1)
	cipher.NewCBCEncrypter(b, iv).CryptBlocks(out, out)
	return out, nil
}

// decryptBody decrypts ct in CBC mode with iv. The padding stays: the
// payload chain says where the payloads end (isakmp.ParseBody).
func decryptBody(b cipher.Block, iv, ct []byte) ([]byte, error) {
	bs := b.BlockSize()
	if len(ct) == 0 || len(ct)%bs != 0 {
		return nil, errDecrypt
	}
	out := make([]byte, len(ct))
	cipher.NewCBCDecrypter(b, iv).CryptBlocks(out, ct)
	return out, nil
}

// lastBlock returns a copy of ct's last cipher block, the next IV.
func lastBlock(ct []byte, bs int) []byte {
	return slices.Clone(ct[len(ct)-bs:])
}

// hashEqual compares two hashes in constant time.
func hashEqual(a, b []byte) bool {
	return len(a) == len(b) && subtle.ConstantTimeCompare(a, b) == 1
}
