package kernel

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
)

// xfrmState is one SA as `ip -s xfrm state` shows it: what the kernel
// holds, read independently of iked.
type xfrmState struct {
	Src, Dst   string
	Proto      string // esp, ah
	SPI        string // 8 hex digits
	ReqID      uint32
	Mode       string // tunnel, transport
	Flags      string // e.g. "af-unspec esn"
	Algs       []string
	Encap      string // "espinudp sport 4500 dport 4500", empty without
	IfID       string // e.g. 0x2a, empty without
	Window     int    // the replay window, legacy or ESN
	ESN        bool   // an "anti-replay esn context" is shown
	Bytes      uint64
	Packets    uint64
	ReplayWin  uint64 // stats: packets outside the window
	Replay     uint64 // stats: replayed packets
	Failed     uint64 // stats: integrity failures
	HardAddSec uint64 // lifetime config: expire add hard
	SoftBytes  string // lifetime config: soft byte limit as shown, e.g. (INF) or 2000
	Raw        string
}

func (s xfrmState) String() string {
	return fmt.Sprintf("%s %s->%s spi %s reqid %d %s %v %d pkts/%d bytes replay %d/%d failed %d", s.Proto, s.Src, s.Dst, s.SPI,
		s.ReqID, s.Mode, s.Algs, s.Packets, s.Bytes, s.Replay, s.ReplayWin, s.Failed)
}

// parseXfrmStates reads `ip -s xfrm state` (iproute2 6.1).
func parseXfrmStates(out string) ([]xfrmState, error) {
	var states []xfrmState
	var cur *xfrmState
	lines := strings.Split(out, "\n")
	for i := 0; i < len(lines); i++ {
		l := lines[i]
		if strings.HasPrefix(l, "src ") {
			states = append(states, xfrmState{})
			cur = &states[len(states)-1]
			f := strings.Fields(l)
			if len(f) >= 4 {
				cur.Src, cur.Dst = f[1], f[3]
			}
			cur.Raw = l + "\n"
			continue
		}
		if cur == nil || strings.TrimSpace(l) == "" {
			continue
		}
		cur.Raw += l + "\n"
		f := strings.Fields(l)
		next := func() []string {
			if i+1 < len(lines) {
				i++
				cur.Raw += lines[i] + "\n"
				return strings.Fields(lines[i])
			}
			return nil
		}
		switch f[0] {
		case "proto":
			for j := 0; j+1 < len(f); j++ {
				switch f[j] {
				case "proto":
					cur.Proto = f[j+1]
				case "spi":
					spi, _, _ := strings.Cut(f[j+1], "(")
					v, err := strconv.ParseUint(strings.TrimPrefix(spi, "0x"), 16, 32)
					if err != nil {
						return nil, fmt.Errorf("spi %q", f[j+1])
					}
					cur.SPI = fmt.Sprintf("%08x", v)
				case "reqid":
					r, _, _ := strings.Cut(f[j+1], "(")
					v, _ := strconv.ParseUint(r, 10, 32)
					cur.ReqID = uint32(v)
				case "mode":
					cur.Mode = f[j+1]
				}
			}
		case "replay-window":
			if len(f) >= 2 {
				cur.Window, _ = strconv.Atoi(f[1])
			}
			if j := indexOf(f, "flag"); j >= 0 {
				var flags []string
				for _, x := range f[j+1:] {
					if !strings.HasPrefix(x, "(") {
						flags = append(flags, x)
					}
				}
				cur.Flags = strings.Join(flags, " ")
			}
		case "aead", "enc", "auth-trunc", "auth", "comp":
			if len(f) >= 2 {
				cur.Algs = append(cur.Algs, f[0]+" "+f[1])
			}
		case "encap":
			cur.Encap = strings.Join(f[2:], " ")
		case "if_id":
			if len(f) >= 2 {
				cur.IfID = f[1]
			}
		case "anti-replay":
			cur.ESN = len(f) >= 2 && f[1] == "esn"
		case "replay_window": // in the ESN context: "replay_window 32, bitmap-length 1"
			if len(f) >= 2 {
				cur.Window, _ = strconv.Atoi(strings.TrimSuffix(f[1], ","))
			}
		case "limit:":
			if len(f) >= 3 && strings.HasSuffix(l, "(bytes)") && cur.SoftBytes == "" {
				cur.SoftBytes = strings.TrimSuffix(strings.TrimSuffix(f[2], ","), "(bytes)")
			}
		case "expire":
			if len(f) >= 5 && f[1] == "add:" {
				h := strings.TrimSuffix(f[5], "(sec)")
				cur.HardAddSec, _ = strconv.ParseUint(h, 10, 64)
			}
		case "lifetime":
			if len(f) >= 2 && f[1] == "current:" {
				n := next()
				if len(n) >= 2 {
					cur.Bytes, _ = strconv.ParseUint(strings.TrimSuffix(n[0], "(bytes),"), 10, 64)
					cur.Packets, _ = strconv.ParseUint(strings.TrimSuffix(n[1], "(packets)"), 10, 64)
				}
			}
		case "stats:":
			n := next()
			for j := 0; j+1 < len(n); j++ {
				v, _ := strconv.ParseUint(n[j+1], 10, 64)
				switch n[j] {
				case "replay-window":
					cur.ReplayWin = v
				case "replay":
					cur.Replay = v
				case "failed":
					cur.Failed = v
				}
			}
		}
	}
	return states, nil
}

func indexOf(xs []string, s string) int {
	for i, x := range xs {
		if x == s {
			return i
		}
	}
	return -1
}

// states reads the kernel's SAs in ns.
func states(t testing.TB, ns *netns) []xfrmState {
	t.Helper()
	out := ns.ip(t, "-s", "xfrm", "state")
	st, err := parseXfrmStates(out)
	if err != nil {
		t.Fatalf("parsing ip -s xfrm state: %v\n%s", err, out)
	}
	return st
}

// stateBySPI finds an SA by SPI (8 hex digits); it fails the test when
// the kernel has none.
func stateBySPI(t testing.TB, ns *netns, spi string) xfrmState {
	t.Helper()
	st := states(t, ns)
	for _, s := range st {
		if s.SPI == spi {
			return s
		}
	}
	t.Fatalf("the kernel in %s holds no SA with SPI %s:\n%s", ns.name, spi, ns.ip(t, "-s", "xfrm", "state"))
	return xfrmState{}
}
