package ikev1

import (
	"encoding/binary"
	"testing"
)

// TestInboxOrder: the first datagram of an idle ISAKMP SA makes its reader
// the one that handles the SA's queue; later ones queue behind it, come
// out in arrival order, and the queue ends once drained so that the next
// datagram's reader takes over. A full queue drops, as a socket would.
func TestInboxOrder(t *testing.T) {
	var x inboxes
	pkt := func(cookie uint64, n byte) received {
		b := binary.BigEndian.AppendUint64(nil, cookie)
		return received{pkt: append(b, n)}
	}
	if handle, ok := x.put(1, pkt(1, 0)); !handle || !ok {
		t.Fatalf("first datagram of an idle SA: handle=%v ok=%v, want true true", handle, ok)
	}
	if handle, ok := x.put(2, pkt(2, 0)); !handle || !ok {
		t.Fatalf("another SA's datagram waits for no one: handle=%v ok=%v", handle, ok)
	}
	for i := byte(1); i < 5; i++ {
		if handle, ok := x.put(1, pkt(1, i)); handle || !ok {
			t.Fatalf("datagram %d of a busy SA: handle=%v ok=%v, want false true", i, handle, ok)
		}
	}
	for i := byte(0); i < 5; i++ {
		r, ok := x.next(1)
		if !ok || r.pkt[8] != i {
			t.Fatalf("next = %v %v, want datagram %d", r.pkt, ok, i)
		}
	}
	if _, ok := x.next(1); ok {
		t.Fatal("a drained queue returned a datagram")
	}
	if handle, _ := x.put(1, pkt(1, 9)); !handle {
		t.Fatal("after the queue was drained, the next datagram's reader does not handle it")
	}
	for range maxInbox - 1 {
		if _, ok := x.put(1, pkt(1, 0)); !ok {
			t.Fatal("dropped before the queue was full")
		}
	}
	if _, ok := x.put(1, pkt(1, 0)); ok {
		t.Fatalf("a queue of %d datagrams took one more", maxInbox)
	}
	if inboxKey([]byte{1, 2, 3}) != 0 || inboxKey(binary.BigEndian.AppendUint64(nil, 7)) != 7 {
		t.Fatal("inboxKey is not the initiator cookie")
	}
}
