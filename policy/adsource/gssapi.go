package adsource

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/crypto"
	"github.com/jcmturner/gokrb5/v8/gssapi"
	"github.com/jcmturner/gokrb5/v8/iana/keyusage"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
	"github.com/jcmturner/gokrb5/v8/types"
)

// SASL GSSAPI security layers (RFC 4752 §3.3).
const (
	layerNone      = 1
	layerIntegrity = 2
)

// maxWrapped is the largest wrapped message either side accepts.
const maxWrapped = 1<<24 - 1

// gssClient is the client side of the SASL GSSAPI mechanism (RFC 4752)
// for github.com/go-ldap/ldap/v3, on gokrb5. Unlike the library's own
// client it negotiates the integrity layer: Active Directory and Samba
// refuse binds without signing or sealing on LDAP ("Sign or Seal are
// required"). After the bind every LDAP message goes wrapped in an
// RFC 4121 wrap token (signed, not sealed: gokrb5 has no sealing) by
// layerConn.
type gssClient struct {
	krb    *client.Client
	conn   *layerConn
	ekey   types.EncryptionKey
	subkey types.EncryptionKey
	seq    atomic.Uint64 // the initiator's wrap token sequence number
}

// InitSecContext implements ldap.GSSAPIClient.
func (c *gssClient) InitSecContext(target string, input []byte) ([]byte, bool, error) {
	return c.InitSecContextWithOptions(target, input, nil)
}

// InitSecContextWithOptions implements ldap.GSSAPIClient: the AP-REQ,
// then the AP-REP's subkey.
func (c *gssClient) InitSecContextWithOptions(target string, input []byte, _ []int) ([]byte, bool, error) {
	if input == nil {
		tkt, key, err := c.krb.GetServiceTicket(target)
		if err != nil {
			return nil, false, err
		}
		c.ekey = key
		tok, err := spnego.NewKRB5TokenAPREQ(c.krb, tkt, key, []int{gssapi.ContextFlagInteg, gssapi.ContextFlagMutual}, nil)
		if err != nil {
			return nil, false, err
		}
		out, err := tok.Marshal()
		return out, true, err
	}
	var tok spnego.KRB5Token
	if err := tok.Unmarshal(input); err != nil {
		return nil, false, err
	}
	if tok.IsKRBError() {
		return nil, false, tok.KRBError
	}
	if !tok.IsAPRep() {
		return nil, false, errors.New("gssapi: the server answered neither an AP-REP nor an error")
	}
	enc, err := crypto.DecryptEncPart(tok.APRep.EncPart, c.ekey, keyusage.AP_REP_ENCPART)
	if err != nil {
		return nil, false, fmt.Errorf("gssapi: the server's AP-REP does not decrypt (mutual authentication failed): %w", err)
	}
	var part messages.EncAPRepPart
	if err := part.Unmarshal(enc); err != nil {
		return nil, false, err
	}
	c.subkey = part.Subkey
	return []byte{}, false, nil
}

// key is the context key: the acceptor's subkey when it sent one.
func (c *gssClient) key() (types.EncryptionKey, byte) {
	if c.subkey.KeyType != 0 && len(c.subkey.KeyValue) > 0 {
		return c.subkey, 0x04 // AcceptorSubkey flag
	}
	return c.ekey, 0
}

// NegotiateSaslAuth implements ldap.GSSAPIClient: read the server's
// offered layers and choose integrity.
func (c *gssClient) NegotiateSaslAuth(input []byte, authzid string) ([]byte, error) {
	payload, err := c.unwrap(input)
	if err != nil {
		return nil, err
	}
	if len(payload) != 4 {
		return nil, fmt.Errorf("gssapi: the server's security layer offer is %d bytes, want 4", len(payload))
	}
	if payload[0]&layerIntegrity == 0 {
		return nil, fmt.Errorf("gssapi: the server offers security layers %#x, without integrity", payload[0])
	}
	reply := make([]byte, 4, 4+len(authzid))
	binary.BigEndian.PutUint32(reply, maxWrapped)
	reply[0] = layerIntegrity
	reply = append(reply, authzid...)
	out, err := c.wrap(reply)
	if err != nil {
		return nil, err
	}
	// The server's answer to this token is the last unwrapped message;
	// everything after it is wrapped.
	c.conn.arm(c)
	return out, nil
}

// DeleteSecContext implements ldap.GSSAPIClient.
func (c *gssClient) DeleteSecContext() error { return nil }

// wrap signs payload in a wrap token from the initiator.
func (c *gssClient) wrap(payload []byte) ([]byte, error) {
	key, flags := c.key()
	et, err := crypto.GetEtype(key.KeyType)
	if err != nil {
		return nil, err
	}
	tok := &gssapi.WrapToken{Flags: flags, EC: uint16(et.GetHMACBitLength() / 8), SndSeqNum: c.seq.Add(1), Payload: payload}
	if err := tok.SetCheckSum(key, keyusage.GSSAPI_INITIATOR_SEAL); err != nil {
		return nil, err
	}
	return tok.Marshal()
}

// unwrap verifies a wrap token from the acceptor and returns its payload.
func (c *gssClient) unwrap(b []byte) ([]byte, error) {
	if len(b) < 16 || b[0] != 0x05 || b[1] != 0x04 {
		return nil, errors.New("gssapi: not a wrap token")
	}
	flags := b[2]
	if flags&0x01 == 0 {
		return nil, errors.New("gssapi: a wrap token not from the acceptor")
	}
	if flags&0x02 != 0 {
		return nil, errors.New("gssapi: a sealed wrap token; only integrity was negotiated")
	}
	ec := int(binary.BigEndian.Uint16(b[4:6]))
	rrc := int(binary.BigEndian.Uint16(b[6:8]))
	body := append([]byte(nil), b[16:]...)
	if rrc > 0 && len(body) > 0 {
		// RFC 4121 §4.2.5: the body was rotated right by RRC bytes.
		r := rrc % len(body)
		body = append(body[r:], body[:r]...)
	}
	if ec > len(body) {
		return nil, errors.New("gssapi: wrap token checksum longer than the token")
	}
	tok := &gssapi.WrapToken{Flags: flags, EC: uint16(ec), RRC: 0, SndSeqNum: binary.BigEndian.Uint64(b[8:16]),
		Payload: body[:len(body)-ec], CheckSum: body[len(body)-ec:]}
	key, _ := c.key()
	if flags&0x04 == 0 {
		key = c.ekey
	}
	if ok, err := tok.Verify(key, keyusage.GSSAPI_ACCEPTOR_SEAL); !ok {
		return nil, fmt.Errorf("gssapi: a wrap token does not verify: %v", err)
	}
	return tok.Payload, nil
}

// layerConn carries LDAP over the SASL integrity layer: armed by
// NegotiateSaslAuth, it passes the bind's last request and response
// through, then sends every message as a 4-byte length and a wrap token
// and unwraps every one received. Bytes read are buffered and judged
// after they arrive, so a Read already waiting when wrapping starts
// unwraps what then comes.
type layerConn struct {
	net.Conn
	wmu sync.Mutex // serialises writes: one token per message

	mu           sync.Mutex // guards the three below
	gss          *gssClient
	pendingFinal bool // the bind's last request is still to go unwrapped
	wrapping     bool

	// Read is called from go-ldap's one reader goroutine only.
	raw []byte
	out bytes.Buffer
}

func (l *layerConn) arm(c *gssClient) {
	l.mu.Lock()
	l.gss, l.pendingFinal = c, true
	l.mu.Unlock()
}

// writeMode decides how the next message goes: raw, or wrapped by g.
func (l *layerConn) writeMode() *gssClient {
	l.mu.Lock()
	defer l.mu.Unlock()
	switch {
	case l.gss == nil:
		return nil
	case l.pendingFinal:
		l.pendingFinal = false
		return nil
	}
	l.wrapping = true
	return l.gss
}

func (l *layerConn) readMode() *gssClient {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.wrapping {
		return l.gss
	}
	return nil
}

func (l *layerConn) Write(p []byte) (int, error) {
	l.wmu.Lock()
	defer l.wmu.Unlock()
	g := l.writeMode()
	if g == nil {
		return l.Conn.Write(p)
	}
	tok, err := g.wrap(p)
	if err != nil {
		return 0, err
	}
	frame := binary.BigEndian.AppendUint32(nil, uint32(len(tok)))
	if _, err := l.Conn.Write(append(frame, tok...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (l *layerConn) Read(p []byte) (int, error) {
	for {
		if l.out.Len() > 0 {
			return l.out.Read(p)
		}
		if g := l.readMode(); g != nil {
			if len(l.raw) >= 4 {
				n := binary.BigEndian.Uint32(l.raw)
				if n > maxWrapped {
					return 0, fmt.Errorf("gssapi: a wrapped message of %d bytes", n)
				}
				if len(l.raw) >= 4+int(n) {
					payload, err := g.unwrap(l.raw[4 : 4+n])
					l.raw = l.raw[4+n:]
					if err != nil {
						return 0, err
					}
					l.out.Write(payload)
					continue
				}
			}
		} else if len(l.raw) > 0 {
			n := copy(p, l.raw)
			l.raw = l.raw[n:]
			return n, nil
		}
		buf := make([]byte, 32<<10)
		n, err := l.Conn.Read(buf)
		l.raw = append(l.raw, buf[:n]...)
		if err != nil && n == 0 {
			if err == io.EOF && len(l.raw) > 0 {
				return 0, io.ErrUnexpectedEOF
			}
			return 0, err
		}
	}
}
