package interop

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// capture is a tcpdump writing the UDP traffic of one interface in a
// namespace to a pcap file, packet by packet (--immediate-mode -U). Stop
// ends it only once a marker frame sent after everything the test did has
// reached the file, so nothing is lost however late tcpdump runs on a
// loaded machine.
type capture struct {
	t       *testing.T
	ns      *netns
	dev     string
	path    string
	errPath string
	cmd     *exec.Cmd
	done    chan error
	stopped bool
}

// markerEtherType is the EtherType of the frame Stop sends on the captured
// device (IEEE 802 Local Experimental EtherType 1): no IP stack, firewall
// or IPsec policy touches it, and every capture's filter admits it.
const markerEtherType = 0x88b5

// startCaptureFilter starts tcpdump on dev in ns with a filter expression
// (empty: every packet) and waits until it listens. t.Cleanup stops it.
func startCaptureFilter(t *testing.T, ns *netns, dev, filter string) *capture {
	t.Helper()
	requireTools(t, "tcpdump")
	dir := t.TempDir()
	c := &capture{t: t, ns: ns, dev: dev, path: filepath.Join(dir, dev+".pcap"), errPath: filepath.Join(dir, "tcpdump.err"), done: make(chan error, 1)}
	ef, err := os.Create(c.errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	argv := []string{"tcpdump", "-i", dev, "-n", "-s", "0", "--immediate-mode", "-U", "-w", c.path}
	if filter != "" {
		argv = append(argv, fmt.Sprintf("(%s) or ether proto %#x", filter, markerEtherType))
	}
	c.cmd = ns.command(context.Background(), argv...)
	c.cmd.Stdout, c.cmd.Stderr = ef, ef
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting tcpdump: %v", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(c.Stop)
	deadline := time.Now().Add(hangGuard)
	for {
		b, _ := os.ReadFile(c.errPath)
		if strings.Contains(string(b), "listening on") {
			return c
		}
		select {
		case err := <-c.done:
			c.stopped = true
			t.Fatalf("tcpdump exited: %v\n%s", err, b)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump not listening after %v: %s", hangGuard, b)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Stop ends the capture; the pcap file stays readable. Safe to call twice.
// Every frame that crossed the device before the call is in the file: Stop
// first sends a marker frame on the device and waits until tcpdump has
// written it (the kernel hands a device's frames to tcpdump in order), and
// only then interrupts tcpdump, which would drop what it had not read yet.
func (c *capture) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	if err := c.flush(); err != nil {
		c.t.Errorf("capture on %s: the marker frame did not reach the file, the capture may lack the last frames: %v", c.dev, err)
	}
	_ = signalAndWait(c.cmd, c.done, syscall.SIGINT, 5*time.Second)
}

// flush sends a marker frame on the captured device and waits (up to
// hangGuard) until tcpdump has written it to the file.
func (c *capture) flush() error {
	fi, err := os.Stat(c.path)
	if err != nil {
		return err
	}
	from := fi.Size()
	marker := fmt.Appendf(nil, "iked-capture-marker %s %d", c.dev, time.Now().UnixNano())
	if err := inNS(c.ns, func() error { return sendMarker(c.dev, marker) }); err != nil {
		return fmt.Errorf("sending the marker: %w", err)
	}
	for deadline := time.Now().Add(hangGuard); ; time.Sleep(10 * time.Millisecond) {
		if tailContains(c.path, from, marker) {
			return nil
		}
		select {
		case err := <-c.done:
			c.done <- err // Stop's wait reads it again
			return fmt.Errorf("tcpdump exited: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not written after %v", hangGuard)
		}
	}
}

// sendMarker sends one Ethernet broadcast frame of markerEtherType
// carrying payload on dev (in the calling thread's namespace).
func sendMarker(dev string, payload []byte) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0) // protocol 0: receives nothing
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	frame := make([]byte, 14, 14+max(46, len(payload)))
	copy(frame, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
	copy(frame[6:], ifi.HardwareAddr)
	binary.BigEndian.PutUint16(frame[12:], markerEtherType)
	frame = append(frame, payload...)
	frame = frame[:cap(frame)] // padded to the Ethernet minimum
	to := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(markerEtherType), Halen: 6}
	copy(to.Addr[:], frame[:6])
	return unix.Sendto(fd, frame, 0, to)
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// tailContains reports whether the file at path holds b after offset from.
func tailContains(path string, from int64, b []byte) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return false
	}
	rest, err := io.ReadAll(f)
	return err == nil && bytes.Contains(rest, b)
}

// tshark runs tshark on the capture (stopping it first) with the given
// preferences (e.g. iked's key log lines) and arguments.
func (c *capture) tshark(prefs []string, args ...string) (string, error) {
	c.Stop()
	if _, err := exec.LookPath("tshark"); err != nil {
		return "", fmt.Errorf("tshark not found: %v", err)
	}
	argv := []string{"-r", c.path, "-n"}
	for _, p := range prefs {
		argv = append(argv, "-o", p)
	}
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "tshark", argv...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("tshark %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return string(out), nil
}

// ikePayloadNames are the short names of IKEv2 payload types (RFC 7296
// §3.2) as charon logs them; Proposal and Transform substructures are left
// out of summaries.
var ikePayloadNames = map[string]string{
	"2": "", "3": "", "33": "SA", "34": "KE", "35": "IDi", "36": "IDr", "37": "CERT", "38": "CERTREQ",
	"39": "AUTH", "40": "No", "41": "N", "42": "D", "43": "V", "44": "TSi", "45": "TSr", "46": "SK",
	"47": "CP", "48": "EAP", "53": "SKF",
}

// Summary returns one line per captured packet: number, time, source and
// destination with ports, tshark's info column, and for IKE the payloads
// (decrypted with prefs, the key log, when given; lines tshark refuses,
// such as ChaCha20-Poly1305 in tshark 4.0, are left out and named) and
// notify types, e.g.
//
//	3  0.002771  10.99.1.1:4500 -> 10.99.1.2:4500  IKE_AUTH MID=01 Initiator Request  [SK IDi IDr AUTH SA TSi TSr]
func (c *capture) Summary(prefs []string) string {
	out, dropped, err := c.tsharkPrefs(prefs, "-T", "fields", "-E", "separator=/t", "-E", "aggregator=,",
		"-e", "frame.number", "-e", "frame.time_relative", "-e", "ip.src", "-e", "udp.srcport",
		"-e", "ip.dst", "-e", "udp.dstport", "-e", "_ws.col.Info", "-e", "isakmp.typepayload", "-e", "isakmp.notify.msgtype")
	if err != nil {
		return fmt.Sprintf("%s(%v)", out, err)
	}
	var b strings.Builder
	for _, dp := range dropped {
		fmt.Fprintf(&b, "(tshark refused key log line, not used: %s: %s)\n", dp.Reason, dp.Pref)
	}
	for _, line := range strings.Split(strings.TrimRight(out, "\n"), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 9 {
			b.WriteString(line + "\n")
			continue
		}
		var payloads []string
		for _, n := range strings.Split(f[7], ",") {
			name, ok := ikePayloadNames[n]
			if !ok {
				name = n
			}
			if name != "" {
				payloads = append(payloads, name)
			}
		}
		extra := ""
		if len(payloads) > 0 {
			extra = "  [" + strings.Join(payloads, " ") + "]"
		}
		if f[8] != "" {
			extra += "  notify types " + f[8]
		}
		fmt.Fprintf(&b, "%4s  %9s  %s:%s -> %s:%s  %s%s\n", f[0], f[1], f[2], f[3], f[4], f[5], f[6], extra)
	}
	return b.String()
}

// Details returns tshark's full decode (-V) of the packets matching the
// display filter, e.g. "isakmp".
func (c *capture) Details(prefs []string, filter string) string {
	out, _, err := c.tsharkPrefs(prefs, "-V", "-Y", filter)
	if err != nil {
		return fmt.Sprintf("%s(%v)", out, err)
	}
	return out
}
