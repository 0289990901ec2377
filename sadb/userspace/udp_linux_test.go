//go:build linux

package userspace

import (
	"bytes"
	"net/netip"
	"os"
	"testing"
	"time"
)

// TestTxBatchGSO: datagrams queued for one destination go out with UDP
// GSO yet arrive, at a socket without GRO, as the same datagrams in the
// same order: same sizes, same contents. A socket with GRO may get them
// joined, and rxBatch gives them back one by one.
func TestTxBatchGSO(t *testing.T) {
	lo := netip.MustParseAddrPort("127.0.0.1:0")
	snd, err := listenUDP(lo, true)
	if err != nil {
		t.Fatal(err)
	}
	defer snd.close()
	if !snd.gso {
		if os.Getenv("CI") == "true" {
			t.Fatal("no UDP GSO in this kernel (CI=true)")
		}
		t.Skip("no UDP GSO in this kernel")
	}
	var want [][]byte
	tx := newTxBatch(256, true)
	queue := func(to *sockaddr, sizes ...int) {
		for _, n := range sizes {
			p := make([]byte, n)
			for i := range p {
				p[i] = byte(len(want) + i)
			}
			want = append(want, p)
			tx.add(p, to)
		}
	}
	repeat := func(n, size int) []int {
		s := make([]int, n)
		for i := range s {
			s[i] = size
		}
		return s
	}

	for _, gro := range []bool{false, true} {
		rcv, err := listenUDP(lo, gro)
		if err != nil {
			t.Fatal(err)
		}
		to, err := snd.sockaddrFor(rcv.local, true)
		if err != nil {
			t.Fatal(err)
		}
		want = want[:0]
		queue(&to, append(repeat(50, 1000), 300)...) // one message: the short one ends it
		queue(&to, repeat(10, 1000)...)              // a second, which the first 500 ends:
		queue(&to, repeat(70, 500)...)               // then 64 at most per message, and 5
		queue(&to, 1400, 1400, 1401)                 // a longer one starts a message: 2, then 1
		if tx.n != 6 {
			t.Errorf("gro=%v: %d messages, want 6", gro, tx.n)
		}
		if errs := tx.flush(snd.rc); errs != 0 {
			t.Fatalf("gro=%v: %d send errors", gro, errs)
		}

		rx := newRxBatch(8, maxDatagram)
		var got [][]byte
		joined := false
		_ = rcv.conn.SetReadDeadline(time.Now().Add(60 * time.Second)) // a hang guard
		for len(got) < len(want) {
			if err := rx.read(rcv.rc); err != nil {
				t.Fatalf("gro=%v: after %d of %d datagrams: %v", gro, len(got), len(want), err)
			}
			for i := range rx.n {
				d := rx.bufs[i][:rx.msgs[i].Len]
				seg := rx.segSize(i)
				if seg > 0 && seg < len(d) {
					joined = true
				}
				if seg <= 0 {
					seg = len(d)
				}
				for len(d) > 0 {
					k := min(seg, len(d))
					got = append(got, bytes.Clone(d[:k]))
					d = d[k:]
				}
			}
		}
		if !gro && joined {
			t.Errorf("datagrams arrived joined at a socket without UDP GRO")
		}
		if rcv.gro && !joined {
			t.Errorf("a socket with UDP GRO got the GSO message cut")
		}
		t.Logf("gro=%v: %d datagrams, joined on arrival: %v", gro, len(got), joined)
		if len(got) != len(want) {
			t.Fatalf("gro=%v: %d datagrams, want %d", gro, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("gro=%v: datagram %d: %d octets, want %d (or contents differ)", gro, i, len(got[i]), len(want[i]))
			}
		}
		rcv.close()
	}
}
