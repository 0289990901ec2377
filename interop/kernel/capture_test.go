package kernel

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
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

// capture is a tcpdump writing every frame of one interface in a
// namespace to a pcap file as it comes (--immediate-mode -U).
type capture struct {
	t       testing.TB
	path    string
	errPath string
	cmd     *exec.Cmd
	done    chan error
	stopped bool
}

// startCapture starts tcpdump on dev in ns and waits until it listens;
// t.Cleanup stops it. args are more tcpdump arguments (e.g. "-Q", "out").
func startCapture(t testing.TB, ns *netns, dev string, args ...string) *capture {
	t.Helper()
	dir := t.TempDir()
	c := &capture{t: t, path: filepath.Join(dir, dev+".pcap"), errPath: filepath.Join(dir, "tcpdump.err"), done: make(chan error, 1)}
	ef, err := os.Create(c.errPath)
	if err != nil {
		t.Fatal(err)
	}
	defer ef.Close()
	c.cmd = ns.command(context.Background(), append([]string{"tcpdump", "-i", dev, "-n", "-s", "0", "--immediate-mode", "-U", "-w", c.path}, args...)...)
	c.cmd.Stdout, c.cmd.Stderr = ef, ef
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting tcpdump: %v", err)
	}
	go func() { c.done <- c.cmd.Wait() }()
	t.Cleanup(c.Stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(c.errPath)
		if strings.Contains(string(b), "listening on") {
			return c
		}
		select {
		case err := <-c.done:
			c.stopped = true
			t.Fatalf("tcpdump exited: %v\n%s", err, b)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("tcpdump not listening after 30s: %s", b)
		}
	}
}

// Stop ends the capture (SIGINT: tcpdump writes what it has); safe to
// call twice.
func (c *capture) Stop() {
	if c.stopped {
		return
	}
	c.stopped = true
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
	}
}

// tshark runs tshark on the capture (stopped first) with preferences
// (e.g. iked's key log lines, each a -o argument) and arguments.
func (c *capture) tshark(prefs []string, args ...string) (string, error) {
	c.Stop()
	argv := []string{"-r", c.path, "-n"}
	for _, p := range prefs {
		argv = append(argv, "-o", p)
	}
	argv = append(argv, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
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

// frame is one captured Ethernet frame.
type frame struct {
	data []byte
}

// readPcap reads a classic pcap file of Ethernet frames (tcpdump -w).
func readPcap(path string) ([]frame, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if len(b) < 24 {
		return nil, errors.New("pcap: short file")
	}
	var bo binary.ByteOrder
	switch binary.LittleEndian.Uint32(b) {
	case 0xa1b2c3d4, 0xa1b23c4d:
		bo = binary.LittleEndian
	default:
		bo = binary.BigEndian
	}
	if lt := bo.Uint32(b[20:]); lt != 1 {
		return nil, fmt.Errorf("pcap: link type %d, want Ethernet", lt)
	}
	var frames []frame
	for b = b[24:]; len(b) >= 16; {
		n := int(bo.Uint32(b[8:]))
		if len(b) < 16+n {
			break
		}
		frames = append(frames, frame{data: append([]byte(nil), b[16:16+n]...)})
		b = b[16+n:]
	}
	return frames, nil
}

// esp returns the SPI and sequence number of a frame carrying plain ESP
// over IPv4 or IPv6, and whether it does.
func (f frame) esp() (spi, seq uint32, ok bool) {
	d := f.data
	if len(d) < 14 {
		return 0, 0, false
	}
	switch binary.BigEndian.Uint16(d[12:]) {
	case 0x0800:
		ip := d[14:]
		if len(ip) < 20 || ip[9] != 50 {
			return 0, 0, false
		}
		h := int(ip[0]&0x0f) * 4
		if len(ip) < h+8 {
			return 0, 0, false
		}
		return binary.BigEndian.Uint32(ip[h:]), binary.BigEndian.Uint32(ip[h+4:]), true
	case 0x86dd:
		ip := d[14:]
		if len(ip) < 48 || ip[6] != 50 {
			return 0, 0, false
		}
		return binary.BigEndian.Uint32(ip[40:]), binary.BigEndian.Uint32(ip[44:]), true
	}
	return 0, 0, false
}

// inject sends raw Ethernet frames out of dev in ns (AF_PACKET), as if
// they had been sent again: the way to replay captured ESP packets.
func inject(t testing.TB, ns *netns, dev string, frames ...[]byte) {
	t.Helper()
	err := ns.do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW, 0)
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		for _, f := range frames {
			sa := &unix.SockaddrLinklayer{Ifindex: ifi.Index, Halen: 6}
			copy(sa.Addr[:], f[0:6])
			if err := unix.Sendto(fd, f, 0, sa); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("injecting frames on %s in %s: %v", dev, ns.name, err)
	}
}

// wire captures what travels on the pair's link: what each end sends
// (tcpdump -Q out on va and on vb), merged. A capture of everything on
// one end would also show the packets that end decrypted in tunnel mode,
// which the kernel hands to the stack again through the same device.
type wire struct {
	a, b *capture
	t    testing.TB
	path string
}

func startWire(t testing.TB, p *pair) *wire {
	t.Helper()
	return &wire{t: t, a: startCapture(t, p.A, "va", "-Q", "out"), b: startCapture(t, p.B, "vb", "-Q", "out"),
		path: filepath.Join(t.TempDir(), "wire.pcap")}
}

// Stop ends both captures and merges them in time order.
func (w *wire) Stop() *capture {
	w.t.Helper()
	w.a.Stop()
	w.b.Stop()
	if _, err := os.Stat(w.path); err != nil {
		if out, err := exec.Command("mergecap", "-F", "pcap", "-w", w.path, w.a.path, w.b.path).CombinedOutput(); err != nil {
			w.t.Fatalf("mergecap: %v: %s", err, out)
		}
	}
	return &capture{t: w.t, path: w.path, stopped: true}
}
