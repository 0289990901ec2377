package interop

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// Dead peer detection against a peer killed with SIGKILL: it sends no
// Delete, so only DPD can notice. The survivor has dpd_delay 2s,
// retransmit_timeout 0.5s, retransmit_tries 2 and retransmit_base 1.8
// (iked's default).
const (
	dpdDelay       = 2 * time.Second
	dpdRetransmit  = 500 * time.Millisecond
	dpdTries       = 2
	dpdBase        = 1.8
	dpdPollSlack   = 500 * time.Millisecond
	dpdEarlySlack  = 100 * time.Millisecond
	dpdPeerTimeout = 15 * time.Second
)

// dpdBounds returns when, after the kill, the survivor must have declared
// the peer dead. A liveness check goes out once nothing came from the peer
// for dpd_delay, so at most dpd_delay after the kill (the peer's last
// message came before it) and at the earliest right away; the check is
// sent, then retransmitted retransmit_tries times, each wait
// retransmit_base times the previous: 0.5 + 0.9 + 1.62 = 3.02 s after the
// first send the peer is dead. Hence between 3.02 s and 5.02 s.
func dpdBounds() (lo, hi time.Duration) {
	wait, sum := float64(dpdRetransmit), 0.0
	for i := 0; i <= dpdTries; i++ {
		sum += wait
		wait *= dpdBase
	}
	return time.Duration(sum), dpdDelay + time.Duration(sum)
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

// waitDead polls d until it lists no IKE SA and returns how long after
// killed that was.
func waitDead(t *testing.T, d *iked, killed time.Time) time.Duration {
	t.Helper()
	deadline := killed.Add(dpdPeerTimeout)
	for {
		sas, err := d.SAs()
		if err != nil {
			t.Fatal(err)
		}
		if len(sas) == 0 {
			return time.Since(killed)
		}
		if time.Now().After(deadline) {
			t.Fatalf("%v after the kill the survivor still lists %s", dpdPeerTimeout, describeSAs(sas))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkDetection asserts the detection time is within dpdBounds.
func checkDetection(t *testing.T, took time.Duration) {
	t.Helper()
	lo, hi := dpdBounds()
	t.Logf("dead peer detected %.2f s after SIGKILL (bound: %.2f s to %.2f s, dpd_delay %v, retransmit_timeout %v, retransmit_tries %d, base %.1f)",
		took.Seconds(), lo.Seconds(), hi.Seconds(), dpdDelay, dpdRetransmit, dpdTries, dpdBase)
	if took > hi+dpdPollSlack || took < lo-dpdEarlySlack {
		t.Errorf("dead peer detected after %v, want between %v and %v (+%v polling)", took, lo, hi, dpdPollSlack)
	}
}

// TestLifecycleDPDKill: the peer is killed with SIGKILL and the survivor
// (iked, userspace data plane, dpd_delay 2s, retransmit_timeout 0.5s,
// retransmit_tries 2) must notice within dpdBounds and remove its SAs,
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
		// Let a DPD round pass first: both sides exchange liveness checks.
		time.Sleep(dpdDelay + 200*time.Millisecond)
		killed := time.Now()
		p.b.kill()
		took := waitDead(t, p.a, killed)
		checkDetection(t, took)
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
		time.Sleep(dpdDelay + 200*time.Millisecond)
		killed := time.Now()
		p.charon.kill()
		took := waitDead(t, p.iked, killed)
		checkDetection(t, took)
		survivorChecks(t, p.iked, p.topo.I, p.topo.S, p.topo.CharonAddr, p.topo.IkedAddr, old)
	})
}
