package adsource

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"testing"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/etypeID"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/types"
)

func nilKerberos() (*client.Client, error) { return nil, nil }

// acceptorToken is what a domain controller sends: a wrap token with the
// acceptor and acceptor-subkey flags, signed with the subkey.
func acceptorToken(t *testing.T, key types.EncryptionKey, payload []byte) []byte {
	t.Helper()
	et, _ := crypto.GetEtype(key.KeyType)
	tok := &gssapi.WrapToken{Flags: 0x01 | 0x04, EC: uint16(et.GetHMACBitLength() / 8), SndSeqNum: 7, Payload: payload}
	if err := tok.SetCheckSum(key, keyusage.GSSAPI_ACCEPTOR_SEAL); err != nil {
		t.Fatal(err)
	}
	b, err := tok.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func testKey() types.EncryptionKey {
	return types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: bytes.Repeat([]byte{0x42}, 32)}
}

func TestWrapTokens(t *testing.T) {
	c := &gssClient{subkey: testKey(), ekey: types.EncryptionKey{KeyType: etypeID.AES256_CTS_HMAC_SHA1_96, KeyValue: bytes.Repeat([]byte{1}, 32)}}
	tok := acceptorToken(t, c.subkey, []byte("search result"))
	if got, err := c.unwrap(tok); err != nil || string(got) != "search result" {
		t.Fatalf("unwrap: %q %v", got, err)
	}
	bad := bytes.Clone(tok)
	bad[len(bad)-1] ^= 1
	if _, err := c.unwrap(bad); err == nil {
		t.Error("a tampered token unwraps")
	}
	// Our own tokens are not accepted back (no acceptor flag).
	mine, err := c.wrap([]byte("request"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.unwrap(mine); err == nil {
		t.Error("an initiator token unwraps as the acceptor's")
	}
	// The SASL layer negotiation: the server offers integrity; we choose
	// it with a 16 MiB - 1 maximum.
	offer := acceptorToken(t, c.subkey, []byte{layerNone | layerIntegrity, 0, 0x10, 0})
	c.conn = &layerConn{}
	reply, err := c.NegotiateSaslAuth(offer, "")
	if err != nil {
		t.Fatal(err)
	}
	if reply[2]&0x04 == 0 || reply[2]&0x01 != 0 {
		t.Errorf("reply flags %#x: want the initiator's, with the acceptor subkey", reply[2])
	}
	if _, err := c.NegotiateSaslAuth(acceptorToken(t, c.subkey, []byte{layerNone, 0, 0, 0}), ""); err == nil {
		t.Error("a server without the integrity layer is accepted")
	}
}

// TestLayerConn: the bind's last request and response pass in clear; from
// the next request on, messages are framed wrap tokens both ways.
func TestLayerConn(t *testing.T) {
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	c := &gssClient{subkey: testKey()}
	l := &layerConn{Conn: a}
	l.arm(c)
	go func() {
		_, _ = l.Write([]byte("final bind"))
		_, _ = l.Write([]byte("search"))
	}()
	buf := make([]byte, 64)
	n, _ := io.ReadFull(b, buf[:len("final bind")])
	if string(buf[:n]) != "final bind" {
		t.Fatalf("the bind's last request: %q", buf[:n])
	}
	var hdr [4]byte
	if _, err := io.ReadFull(b, hdr[:]); err != nil {
		t.Fatal(err)
	}
	tok := make([]byte, binary.BigEndian.Uint32(hdr[:]))
	if _, err := io.ReadFull(b, tok); err != nil {
		t.Fatal(err)
	}
	if tok[0] != 0x05 || tok[1] != 0x04 || !bytes.HasSuffix(tok[:len(tok)-12], []byte("search")) {
		t.Fatalf("the search went out as %x", tok)
	}
	// The server's answer is unwrapped.
	resp := acceptorToken(t, c.subkey, []byte("entries"))
	go func() {
		_, _ = b.Write(binary.BigEndian.AppendUint32(nil, uint32(len(resp))))
		_, _ = b.Write(resp)
	}()
	n, err := l.Read(buf)
	if err != nil || string(buf[:n]) != "entries" {
		t.Fatalf("read %q %v", buf[:n], err)
	}
}
