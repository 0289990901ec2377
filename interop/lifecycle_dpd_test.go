package interop

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Dead peer detection against a peer killed with SIGKILL: it sends no
// Delete, so only DPD can notice. The survivor has dpd_delay 2s,
// retransmit_timeout 0.5s, retransmit_tries 2 and retransmit_base 1.8
// (iked's default).
const (
	dpdDelay      = 2 * time.Second
	dpdRetransmit = 500 * time.Millisecond
	dpdTries      = 2
	dpdBase       = 1.8
	// dpdPeerTimeout only turns a survivor that never notices into a
	// failure: the retransmissions take 3 s, and when the survivor
	// notices is asserted by what it sent, not by the clock.
	dpdPeerTimeout = hangGuard
	// timerSlack absorbs the difference between a capture's timestamps and
	// the clock of the send call: a timer fires late on a busy machine,
	// never early.
	timerSlack = 20 * time.Millisecond
)

// dpdWaits returns the survivor's waits for an answer to the liveness
// check: after the first send and after each retransmission, each
// retransmit_base times the previous: 0.5, 0.9, 1.62 s.
func dpdWaits() []time.Duration {
	var ws []time.Duration
	wait := float64(dpdRetransmit)
	for i := 0; i <= dpdTries; i++ {
		ws = append(ws, time.Duration(wait))
		wait *= dpdBase
	}
	return ws
}

// kill ends iked with SIGKILL: no Delete, no cleanup. Its exit status is
// not a failure.
func (d *iked) kill() {
	_ = d.cmd.Process.Kill()
	<-d.done
	d.exited, d.err = true, nil
}

// kill ends charon with SIGKILL.
func (c *charon) kill() {
	_ = c.cmd.Process.Kill()
	c.err = <-c.done
	c.exited = true
}

// espFrom waits until the capture holds an ESP-in-UDP packet from src
// with the given SPI and returns its UDP payload.
func espFrom(t *testing.T, c *capture, src netip.Addr, spi uint32) []byte {
	t.Helper()
	var pkt []byte
	waitFor(t, 3*time.Second, func() string {
		frames, err := readPcap(c.path)
		if err != nil {
			return err.Error()
		}
		for _, f := range frames {
			if s, _, ok := f.esp(); ok && s == spi && f.src == src {
				pkt = append([]byte(nil), f.udp...)
				return ""
			}
		}
		return fmt.Sprintf("no ESP with SPI %08x from %s captured", spi, src)
	})
	return pkt
}

// sendUDP sends b from a new socket on from (any port) inside ns to to.
func sendUDP(t *testing.T, ns *netns, from netip.Addr, to netip.AddrPort, b []byte) {
	t.Helper()
	if err := inNS(ns, func() error {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: from.AsSlice()})
		if err != nil {
			return err
		}
		defer c.Close()
		_, err = c.WriteToUDPAddrPort(b, to)
		return err
	}); err != nil {
		t.Fatal(err)
	}
}

// survivorChecks asserts, once d has noticed the dead peer: no IKE SA and
// no Child SA left (ikectl sas, iked_child_sas); and in the userspace data
// plane no SA either: an echo request from the inner address leaves no ESP
// (iked_esp_packets_sent_total unchanged), and an ESP packet the peer had
// sent to the old inbound SPI, sent again, is refused as unknown_spi.
func survivorChecks(t *testing.T, d *iked, ns, peerNS *netns, peer, self netip.Addr, oldESP []byte) {
	t.Helper()
	wantLog(t, "iked", d.Log(), "peer is dead")
	if v := metric(t, d, "iked_child_sas", ""); v != 0 {
		t.Errorf("iked_child_sas %v after the peer died, want 0", v)
	}
	if v := metric(t, d, "iked_handshakes_failed_total", `reason="dead_peer"`); v != 1 {
		t.Errorf("iked_handshakes_failed_total{reason=\"dead_peer\"} = %v, want 1", v)
	}
	sent := metric(t, d, "iked_esp_packets_sent_total", "")
	recv := metric(t, d, "iked_esp_packets_received_total", "")
	unknown := metric(t, d, "iked_esp_packets_dropped_total", `reason="unknown_spi"`)
	out, err := ns.command(t.Context(), "ping", "-n", "-c", "2", "-i", "0.2", "-W", "1", "-I", ikedInnerHost, charonInnerHost).CombinedOutput()
	if err == nil {
		t.Errorf("ping through the removed tunnel succeeded:\n%s", out)
	}
	sendUDP(t, peerNS, peer, netip.AddrPortFrom(self, 4500), oldESP)
	waitFor(t, 3*time.Second, func() string {
		m, err := d.Metrics()
		if err != nil {
			return err.Error()
		}
		s, _ := metricValue(m, "iked_esp_packets_sent_total", "")
		r, _ := metricValue(m, "iked_esp_packets_received_total", "")
		u, _ := metricValue(m, "iked_esp_packets_dropped_total", `reason="unknown_spi"`)
		if s != sent || r != recv || u != unknown+1 {
			return fmt.Sprintf("data plane after the peer died: ESP sent %v (was %v), received %v (was %v), unknown_spi drops %v (was %v, want +1)",
				s, sent, r, recv, u, unknown)
		}
		return ""
	})
	t.Logf("data plane: ping found no tunnel (%s); the old inbound SPI is unknown", strings.TrimSpace(lastLine(string(out))))
}

func lastLine(s string) string {
	ls := strings.Split(strings.TrimSpace(s), "\n")
	return ls[len(ls)-1]
}

// waitDead polls d until it lists no IKE SA (the wait is a hang guard).
func waitDead(t *testing.T, d *iked, killed time.Time) {
	t.Helper()
	deadline := killed.Add(dpdPeerTimeout)
	for {
		sas, err := d.SAs()
		if err != nil {
			t.Fatal(err)
		}
		if len(sas) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the kill the survivor still lists %s", dpdPeerTimeout, describeSAs(sas))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// ikeHeader returns the exchange type, the Response flag and the message
// ID of an IKE message in f (port 500, or 4500 behind the non-ESP marker).
func ikeHeader(f frame) (exchange byte, response bool, msgID uint32, ok bool) {
	if f.proto != unix.IPPROTO_UDP {
		return 0, false, 0, false
	}
	m := f.udp
	switch {
	case f.sport == 500 || f.dport == 500:
	case (f.sport == 4500 || f.dport == 4500) && len(m) >= 4 && binary.BigEndian.Uint32(m) == 0:
		m = m[4:]
	default:
		return 0, false, 0, false
	}
	if len(m) < 28 {
		return 0, false, 0, false
	}
	return m[18], m[19]&0x20 != 0, binary.BigEndian.Uint32(m[20:]), true
}

// waitLiveness waits until the capture holds an INFORMATIONAL request from
// survivor answered by peer: a DPD round has passed.
func waitLiveness(t *testing.T, c *capture, survivor, peer netip.Addr) {
	t.Helper()
	waitFor(t, hangGuard, func() string {
		frames, err := readPcap(c.path)
		if err != nil {
			return err.Error()
		}
		asked := map[uint32]bool{}
		for _, f := range frames {
			x, resp, id, ok := ikeHeader(f)
			if !ok || x != 37 {
				continue
			}
			if !resp && f.src == survivor {
				asked[id] = true
			} else if resp && f.src == peer && asked[id] {
				return ""
			}
		}
		return "no liveness check of the survivor answered yet"
	})
}

// checkDPD asserts how the survivor noticed the dead peer, from the
// capture of IKE (stopped here) and its log: after the kill it sent one
// INFORMATIONAL request, at least dpd_delay after the peer's last IKE
// message; nobody answered it; it retransmitted it exactly
// retransmit_tries times, each after at least its wait (0.5 s, then 0.9 s),
// and declared the peer dead at least the last wait (1.62 s) after the
// last retransmission: never sooner, whatever the load (timers fire late,
// never early); how much later is only logged.
func checkDPD(t *testing.T, c *capture, d *iked, survivor, peer netip.Addr, killed time.Time) {
	t.Helper()
	c.Stop()
	frames, err := readPcap(c.path)
	if err != nil {
		t.Fatal(err)
	}
	answered := map[uint32]bool{}
	var sent []frame
	var ids []uint32
	for _, f := range frames {
		x, resp, id, ok := ikeHeader(f)
		if !ok || x != 37 {
			continue
		}
		if resp && f.src == peer {
			answered[id] = true
		}
		if !resp && f.src == survivor && f.at.After(killed) {
			sent, ids = append(sent, f), append(ids, id)
		}
	}
	var unanswered []frame
	var id uint32
	for i, f := range sent {
		if !answered[ids[i]] {
			if len(unanswered) > 0 && ids[i] != id {
				t.Errorf("after the kill the survivor sent unanswered INFORMATIONAL requests with message IDs %d and %d, want one", id, ids[i])
			}
			unanswered, id = append(unanswered, f), ids[i]
		}
	}
	line := wantLog(t, "survivor", d.Log(), "peer is dead")
	var entry struct {
		Time time.Time `json:"time"`
	}
	if err := json.Unmarshal([]byte(line), &entry); err != nil || entry.Time.IsZero() {
		t.Fatalf("no time in the log line %q: %v", line, err)
	}
	waits := dpdWaits()
	var desc []string
	for i, f := range unanswered {
		desc = append(desc, fmt.Sprintf("%.3f s", f.at.Sub(killed).Seconds()))
		if i > 0 && i < len(waits) {
			if gap := f.at.Sub(unanswered[i-1].at); gap < waits[i-1]-timerSlack {
				t.Errorf("retransmission %d of the liveness check %v after the previous send, want at least %v", i, gap, waits[i-1])
			}
		}
	}
	t.Logf("after the kill the survivor sent the liveness check (message ID %d) at %s and declared the peer dead at %.3f s (dpd_delay %v, retransmit_timeout %v, retransmit_tries %d, base %.1f)",
		id, strings.Join(desc, ", "), entry.Time.Sub(killed).Seconds(), dpdDelay, dpdRetransmit, dpdTries, dpdBase)
	if len(unanswered) != 1+dpdTries {
		t.Fatalf("the survivor sent its unanswered liveness check %d times, want once and %d retransmissions", len(unanswered), dpdTries)
	}
	// The check went out only after dpd_delay without a message from the
	// peer (the last one the capture saw reached the survivor no sooner).
	var heard time.Time
	for _, f := range frames {
		if _, _, _, ok := ikeHeader(f); ok && f.src == peer && f.at.Before(unanswered[0].at) {
			heard = f.at
		}
	}
	if gap := unanswered[0].at.Sub(heard); !heard.IsZero() && gap < dpdDelay-timerSlack {
		t.Errorf("the liveness check went out %v after the peer's last IKE message, want at least dpd_delay %v", gap, dpdDelay)
	}
	last := unanswered[len(unanswered)-1].at
	if gap := entry.Time.Sub(last); gap < waits[dpdTries]-timerSlack {
		t.Errorf("the peer declared dead %v after the last retransmission, want at least %v", gap, waits[dpdTries])
	}
}

// TestLifecycleDPDKill: the peer is killed with SIGKILL and the survivor
// (iked, userspace data plane, dpd_delay 2s, retransmit_timeout 0.5s,
// retransmit_tries 2) must notice as checkDPD says and remove its SAs,
// from ikectl sas and from the data plane. iked-iked kills iked B (which
// runs DPD as well); iked-charon kills charon.
func TestLifecycleDPDKill(t *testing.T) {
	dpdOpts := func(o *ikedOptions) {
		o.RetransmitTimeout, o.RetransmitTries, o.RetransmitBase = dpdRetransmit, dpdTries, dpdBase
	}
	t.Run("iked-iked", func(t *testing.T) {
		p := rekeyPair(t, func(a, b *ikedConn) {
			a.DPDDelay, b.DPDDelay = dpdDelay.String(), dpdDelay.String()
		}, func(a, b *ikedOptions) { dpdOpts(a); dpdOpts(b) })
		esp := startCaptureFilter(t, p.topo.I, "veth-i", fmt.Sprintf("udp src port 4500 and src host %s and udp[8:4] != 0", p.topo.CharonAddr))
		sa, _ := onePair(t, p.a, p.b, 5*time.Second)
		ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 2)
		old := espFrom(t, esp, p.topo.CharonAddr, spiValue(t, sa.Children[0].SPIIn))
		// Let a DPD round pass first: the survivor's liveness check answered.
		waitLiveness(t, p.cap, p.topo.IkedAddr, p.topo.CharonAddr)
		killed := time.Now()
		p.b.kill()
		waitDead(t, p.a, killed)
		checkDPD(t, p.cap, p.a, p.topo.IkedAddr, p.topo.CharonAddr, killed)
		survivorChecks(t, p.a, p.topo.I, p.topo.S, p.topo.CharonAddr, p.topo.IkedAddr, old)
	})
	t.Run("iked-charon", func(t *testing.T) {
		p := newCharonDataplanePairEdit(t, "aes256gcm16", func(ic *ikedConn, _ *charonConn) {
			ic.DPDDelay = dpdDelay.String()
		}, dpdOpts)
		esp := startCaptureFilter(t, p.topo.I, "veth-i", fmt.Sprintf("udp src port 4500 and src host %s and udp[8:4] != 0", p.topo.CharonAddr))
		if out, err := p.iked.Initiate(connName); err != nil {
			t.Fatalf("iked initiate: %v\n%s", err, out)
		}
		checkEstablished(t, p, false, "AES_GCM_16-256/PRF_HMAC_SHA2_256/CURVE_25519", "AES_GCM_16-256/NO_EXT_SEQ")
		sas, err := p.iked.SAs()
		if err != nil {
			t.Fatal(err)
		}
		ping(t, p.topo.I, ikedInnerHost, charonInnerHost, 2)
		old := espFrom(t, esp, p.topo.CharonAddr, spiValue(t, sas[0].Children[0].SPIIn))
		waitLiveness(t, p.cap, p.topo.IkedAddr, p.topo.CharonAddr)
		killed := time.Now()
		p.charon.kill()
		waitDead(t, p.iked, killed)
		checkDPD(t, p.cap, p.iked, p.topo.IkedAddr, p.topo.CharonAddr, killed)
		survivorChecks(t, p.iked, p.topo.I, p.topo.S, p.topo.CharonAddr, p.topo.IkedAddr, old)
	})
}
