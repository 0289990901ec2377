package vici

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"
)

// readmeExample is the encoding example of the VICI README.
var readmeExample = []byte{
	3, 4, 'k', 'e', 'y', '1', 0, 6, 'v', 'a', 'l', 'u', 'e', '1',
	1, 8, 's', 'e', 'c', 't', 'i', 'o', 'n', '1',
	1, 11, 's', 'u', 'b', '-', 's', 'e', 'c', 't', 'i', 'o', 'n',
	3, 4, 'k', 'e', 'y', '2', 0, 6, 'v', 'a', 'l', 'u', 'e', '2',
	2,
	4, 5, 'l', 'i', 's', 't', '1',
	5, 0, 5, 'i', 't', 'e', 'm', '1',
	5, 0, 5, 'i', 't', 'e', 'm', '2',
	6,
	2,
}

func TestReadmeExample(t *testing.T) {
	m, err := DecodeMessage(readmeExample)
	if err != nil {
		t.Fatal(err)
	}
	if str(m, "key1") != "value1" || str(m, "section1", "sub-section", "key2") != "value2" {
		t.Fatalf("decoded: %v", m.Keys())
	}
	s, _ := m.Sub("section1")
	if l, _ := s.List("list1"); len(l) != 2 || l[0] != "item1" || l[1] != "item2" {
		t.Fatalf("list1: %v", l)
	}
	// The same structure built and encoded gives the same octets.
	b := NewMessage().Set("key1", "value1")
	sec := b.Section("section1")
	sec.Section("sub-section").Set("key2", "value2")
	sec.SetList("list1", []string{"item1", "item2"})
	if got := b.Encode(nil); !bytes.Equal(got, readmeExample) {
		t.Fatalf("encoded\n%v\nwant\n%v", got, readmeExample)
	}
}

func TestDecodeRefuses(t *testing.T) {
	for name, b := range map[string][]byte{
		"unclosed section":    {1, 1, 'a'},
		"extra section end":   {2},
		"unclosed list":       {4, 1, 'l', 5, 0, 0},
		"item outside list":   {5, 0, 0},
		"key inside list":     {4, 1, 'l', 3, 1, 'k', 0, 0, 6},
		"nested list":         {4, 1, 'l', 4, 1, 'm', 6, 6},
		"truncated name":      {3, 5, 'a'},
		"truncated value":     {3, 1, 'k', 0, 9, 'v'},
		"unknown element":     {9},
		"unprintable name":    {3, 1, 0, 0, 0},
		"list end, no list":   {6},
		"value length only 1": {3, 1, 'k', 0},
	} {
		if _, err := DecodeMessage(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
	deep := bytes.Repeat([]byte{1, 0}, maxDepth+2)
	if _, err := DecodeMessage(deep); !errors.Is(err, errMalformed) {
		t.Errorf("sections %d deep: %v", maxDepth+2, err)
	}
}

func TestDecodePacket(t *testing.T) {
	for name, b := range map[string][]byte{
		"empty":                    {},
		"response from client":     {pktCmdResponse},
		"event from client":        {pktEvent, 1, 'x'},
		"register without name":    {pktEventRegister},
		"register with trailing":   {pktEventRegister, 1, 'x', 3},
		"request with bad message": {pktCmdRequest, 1, 'x', 2},
	} {
		if _, err := decodePacket(b); !errors.Is(err, errMalformed) {
			t.Errorf("%s: %v, want malformed", name, err)
		}
	}
	p, err := decodePacket(append([]byte{pktCmdRequest, 7, 'v', 'e', 'r', 's', 'i', 'o', 'n'}, readmeExample...))
	if err != nil || p.name != "version" || str(p.msg, "key1") != "value1" {
		t.Fatalf("request: %+v %v", p, err)
	}
}

// FuzzDecode: no input makes the decoder panic, and what it accepts
// encodes back to something it decodes to the same structure.
func FuzzDecode(f *testing.F) {
	f.Add(readmeExample)
	f.Add(append([]byte{pktCmdRequest, 8, 'l', 'i', 's', 't', '-', 's', 'a', 's'}, readmeExample...))
	f.Add([]byte{pktEventRegister, 10, 'i', 'k', 'e', '-', 'u', 'p', 'd', 'o', 'w', 'n'})
	f.Add([]byte{4, 1, 'l', 5, 0, 1, 'x', 6, 1, 1, 's', 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if p, err := decodePacket(b); err == nil && p.msg != nil {
			again, err := DecodeMessage(p.msg.Encode(nil))
			if err != nil {
				t.Fatalf("re-encoded request does not decode: %v", err)
			}
			if !bytes.Equal(again.Encode(nil), p.msg.Encode(nil)) {
				t.Fatal("re-encoding changed the message")
			}
		}
		m, err := DecodeMessage(b)
		if err != nil {
			return
		}
		if _, err := DecodeMessage(m.Encode(nil)); err != nil {
			t.Fatalf("re-encoded message does not decode: %v", err)
		}
	})
}

// TestUnknownCommandAndEvent: as charon, CMD_UNKNOWN for a command it does
// not have and EVENT_UNKNOWN for an event, on a connection that goes on.
func TestUnknownCommandAndEvent(t *testing.T) {
	p := newPair(t)
	c := p.dial(t)
	c.write(pktCmdRequest, "no-such-command", NewMessage())
	if typ, _, _, err := c.read(10 * time.Second); err != nil || typ != pktCmdUnknown {
		t.Fatalf("unknown command: type %d, %v", typ, err)
	}
	c.write(pktEventRegister, "no-such-event", nil)
	if typ, _, _, err := c.read(10 * time.Second); err != nil || typ != pktEventUnknown {
		t.Fatalf("unknown event: type %d, %v", typ, err)
	}
	c.write(pktEventUnregister, "ike-updown", nil)
	if typ, _, _, err := c.read(10 * time.Second); err != nil || typ != pktEventUnknown {
		t.Fatalf("unregistering an event not registered: type %d, %v", typ, err)
	}
	_, resp := c.command("version", nil)
	if str(resp, "daemon") != "iked" || str(resp, "version") != "test" {
		t.Fatalf("version after the unknowns: %v", resp.Keys())
	}
}

// TestGarbageClient: a client that breaks the framing or the encoding is
// disconnected; another client's monitor and commands go on.
func TestGarbageClient(t *testing.T) {
	p := newPair(t)
	good := p.dial(t)
	good.register("ike-updown")
	for name, seg := range map[string][]byte{
		"oversized length": {0xff, 0xff, 0xff, 0xff},
		"zero length":      {0, 0, 0, 0},
		"response packet":  {0, 0, 0, 1, pktCmdResponse},
		"bad message":      {0, 0, 0, 6, pktCmdRequest, 1, 'x', 5, 0, 0},
	} {
		bad := p.dial(t)
		if _, err := bad.conn.Write(seg); err != nil {
			t.Fatal(err)
		}
		_ = bad.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		if n, err := bad.conn.Read(make([]byte, 16)); err == nil {
			t.Fatalf("%s: the server answered %d octets instead of closing", name, n)
		} else if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("%s: the connection was not closed", name)
		}
	}
	_, resp := good.command("stats", nil)
	if str(resp, "ikesas", "total") != "0" {
		t.Fatalf("stats after the garbage: %v", resp.Keys())
	}
	if _, err := p.a.Initiate(context.Background(), "site"); err != nil {
		t.Fatal(err)
	}
	if up := good.waitEvent("ike-updown"); str(up, "up") != "yes" {
		t.Fatal("the monitor missed the SA coming up after the garbage")
	}
}
