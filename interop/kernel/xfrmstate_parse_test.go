package kernel

import (
	"strings"
	"testing"
)

// ipXfrmState is `ip -s xfrm state` of iproute2 6.1 in the guest: an ESN
// SA, a UDP-encapsulated one of an XFRM interface with a soft byte limit.
const ipXfrmState = `src 10.99.0.1 dst 10.99.0.2
	proto esp spi 0xfef3c688(4277388936) reqid 1(0x00000001) mode tunnel
	replay-window 0 seq 0x00000000 flag af-unspec esn (0x10100000)
	aead rfc4106(gcm(aes)) 0x515284390b9b76b171edb0b9f84c930e91cdc94cd6e4dc2198a8d075cc3f0a48f74549ce (288 bits) 128
	anti-replay esn context:
	 seq-hi 0x0, seq 0x28, oseq-hi 0x0, oseq 0x0
	 replay_window 32, bitmap-length 1
	 ffffffff 
	lifetime config:
	  limit: soft (INF)(bytes), hard (INF)(bytes)
	  limit: soft (INF)(packets), hard 18446744069899878400(packets)
	  expire add: soft 0(sec), hard 3960(sec)
	  expire use: soft 0(sec), hard 0(sec)
	lifetime current:
	  3360(bytes), 40(packets)
	  add 2026-12-04 18:50:22 use 2026-12-04 18:50:24
	stats:
	  replay-window 1 replay 2 failed 3
src 10.98.0.1 dst 10.99.0.2
	proto esp spi 0x9bb81b65(2612534117) reqid 7(0x00000007) mode tunnel
	replay-window 32 seq 0x00000000 flag af-unspec (0x00100000)
	aead rfc4106(gcm(aes)) 0xae750dbe17327e94d1077f158601955e7cd21e27abc258a4230a12bc0fff5ae0ff558451 (288 bits) 128
	encap type espinudp sport 4500 dport 4500 addr 0.0.0.0
	anti-replay context: seq 0x0, oseq 0x8, bitmap 0x00000000
	if_id 0x2a
	lifetime config:
	  limit: soft 2000(bytes), hard (INF)(bytes)
	  limit: soft (INF)(packets), hard 18446744069899878400(packets)
	  expire add: soft 0(sec), hard 70(sec)
	  expire use: soft 0(sec), hard 0(sec)
	lifetime current:
	  672(bytes), 8(packets)
	  add 2026-12-04 18:53:07 use 2026-12-04 18:53:08
	stats:
	  replay-window 0 replay 0 failed 0
`

func TestParseXfrmStates(t *testing.T) {
	st, err := parseXfrmStates(ipXfrmState)
	if err != nil || len(st) != 2 {
		t.Fatalf("%d states, %v", len(st), err)
	}
	a, b := st[0], st[1]
	if a.SPI != "fef3c688" || a.Proto != "esp" || a.ReqID != 1 || a.Mode != "tunnel" || a.Flags != "af-unspec esn" || !a.ESN ||
		a.Window != 32 || a.Bytes != 3360 || a.Packets != 40 || a.ReplayWin != 1 || a.Replay != 2 || a.Failed != 3 ||
		a.HardAddSec != 3960 || a.SoftBytes != "(INF)" || a.Encap != "" || a.IfID != "" || a.Src != "10.99.0.1" || a.Dst != "10.99.0.2" ||
		len(a.Algs) != 1 || !strings.HasPrefix(a.Algs[0], "aead rfc4106(gcm(aes))") {
		t.Errorf("ESN SA: %+v", a)
	}
	if b.SPI != "9bb81b65" || b.ReqID != 7 || b.ESN || b.Window != 32 || b.Encap != "espinudp sport 4500 dport 4500 addr 0.0.0.0" ||
		b.IfID != "0x2a" || b.SoftBytes != "2000" || b.HardAddSec != 70 || b.Packets != 8 || b.Bytes != 672 {
		t.Errorf("encapsulated SA: %+v", b)
	}
}
