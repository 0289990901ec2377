package vmtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Image is a prepared guest: a kernel and an initramfs.
type Image struct {
	Kernel    *Kernel
	Initramfs string
	// Accel is the QEMU accelerator runs use: "kvm" or "tcg".
	Accel string
}

// Config is one guest run.
type Config struct {
	// Script is a shell script (sh) the guest runs as root once its root
	// is mounted; its exit status is the run's.
	Script string
	// Env are exported to the script.
	Env map[string]string
	// Share is a host directory mounted read-write on /mnt in the guest;
	// empty: a fresh temporary directory, removed unless Keep.
	Share string
	Keep  bool
	// Timeout bounds the whole run (boot included); default 10 minutes.
	Timeout time.Duration
	// MemoryMiB and CPUs size the guest; defaults 1024 and 2.
	MemoryMiB, CPUs int
	// Console, when set, receives the guest's serial console as it comes.
	Console io.Writer
}

// Result is what a guest run left.
type Result struct {
	// ExitCode is the script's exit status; -1 when the guest never
	// reported one.
	ExitCode int
	// Console is the guest's serial console: the kernel's messages, the
	// markers, and what the script wrote to its stdout and stderr.
	Console string
	// Share is the directory that was mounted on /mnt (removed after Run
	// returns unless Config.Keep or Config.Share was given).
	Share string
	// Accel is the accelerator QEMU used.
	Accel string
	// Ready is the time from QEMU's start to the script's start (the boot),
	// Total to QEMU's exit.
	Ready, Total time.Duration
}

// GuestPath is where the guest sees a host path: the host's / is mounted
// at /host (read-only), whatever the guest's own /tmp and /run hide.
func GuestPath(hostPath string) string {
	if abs, err := filepath.Abs(hostPath); err == nil {
		hostPath = abs
	}
	return "/host" + hostPath
}

// shellQuote quotes s for sh.
func shellQuote(s string) string {
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Run boots a guest, runs cfg.Script in it and returns when the guest
// powers off, or kills QEMU (by its PID) when the run exceeds its timeout
// or ctx ends. The error reports a guest that could not be started or did
// not finish; a script that fails is a Result with a non-zero ExitCode.
func (img *Image) Run(ctx context.Context, cfg Config) (*Result, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Minute
	}
	if cfg.MemoryMiB == 0 {
		cfg.MemoryMiB = 1024
	}
	if cfg.CPUs == 0 {
		cfg.CPUs = 2
	}
	share := cfg.Share
	if share == "" {
		dir, err := os.MkdirTemp("", "iked-vmtest-share-")
		if err != nil {
			return nil, err
		}
		share = dir
		if !cfg.Keep {
			defer os.RemoveAll(dir)
		}
	}
	ctl := filepath.Join(share, ".vmtest")
	if err := os.MkdirAll(ctl, 0o755); err != nil {
		return nil, err
	}
	var script strings.Builder
	keys := make([]string, 0, len(cfg.Env))
	for k := range cfg.Env {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(&script, "export %s=%s\n", k, shellQuote(cfg.Env[k]))
	}
	script.WriteString(cfg.Script)
	if err := os.WriteFile(filepath.Join(ctl, "run.sh"), []byte(script.String()), 0o755); err != nil {
		return nil, err
	}

	res, err := img.boot(ctx, cfg, share, img.Accel)
	if err != nil && img.Accel == "kvm" && res != nil && !strings.Contains(res.Console, markerInit) {
		// A KVM that cannot run this kernel (a paravirtual one, an MSR
		// QEMU cannot set) fails before the initramfs: emulate instead.
		res, err = img.boot(ctx, cfg, share, "tcg")
	}
	if res != nil {
		res.Share = share
	}
	return res, err
}

func (img *Image) boot(ctx context.Context, cfg Config, share, accel string) (*Result, error) {
	args := []string{"-M", "pc", "-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-m", strconv.Itoa(cfg.MemoryMiB), "-smp", strconv.Itoa(cfg.CPUs),
		"-kernel", img.Kernel.Image, "-initrd", img.Initramfs,
		"-serial", "stdio", "-device", "virtio-rng-pci",
		// The guest reports its status by writing it to port 0xf4:
		// QEMU then exits with (status << 1) | 1.
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-virtfs", "local,path=/,mount_tag=root9p,security_model=none,readonly=on,multidevs=remap,id=root9p",
		"-virtfs", "local,path=" + share + ",mount_tag=share,security_model=none,id=share",
	}
	switch accel {
	case "kvm":
		args = append(args, "-accel", "kvm", "-cpu", "host")
	default:
		accel = "tcg"
		// thread=multi: one host thread per vCPU. The translation cache
		// is bounded (QEMU's default of 1 GiB shows up as host memory).
		args = append(args, "-accel", "tcg,thread=multi,tb-size=256", "-cpu", "max")
	}
	// cryptomgr.notests: no crypto self-tests while modules load (~0.5 s
	// under TCG); mitigations=off: nothing to protect in a test guest.
	args = append(args, "-append", strings.Join([]string{"console=ttyS0", "quiet", "panic=-1", "mitigations=off",
		"cryptomgr.notests=1", "vmtest.moddir=" + filepath.Dir(img.Kernel.Modules), "vmtest.run=/mnt/.vmtest/run.sh"}, " "))

	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", args...)
	cmd.Stdin = nil
	con := &console{start: time.Now()}
	var w io.Writer = con
	if cfg.Console != nil {
		w = io.MultiWriter(con, cfg.Console)
	}
	var qemuErr bytes.Buffer
	cmd.Stdout, cmd.Stderr = w, &qemuErr
	// Killed by its PID when the run overstays; QEMU does not fork.
	cmd.Cancel = func() error { return cmd.Process.Kill() }
	cmd.WaitDelay = 5 * time.Second
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	err := cmd.Run()
	res := &Result{ExitCode: -1, Accel: accel, Total: time.Since(start)}
	res.Console, res.Ready = con.snapshot()
	if rc, ok := con.exitCode(); ok {
		res.ExitCode = rc
	}
	if ctx.Err() != nil {
		return res, fmt.Errorf("guest (%s) did not finish within %v; console ends:\n%s", accel, cfg.Timeout, tail(res.Console, 3000))
	}
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		return res, fmt.Errorf("qemu: %v: %s", err, tail(qemuErr.String(), 2000))
	}
	if res.ExitCode < 0 {
		// isa-debug-exit: an odd status is the guest's.
		if ee != nil && ee.ExitCode()&1 == 1 {
			res.ExitCode = ee.ExitCode() >> 1
		} else {
			return res, fmt.Errorf("guest (%s) stopped without reporting a status (qemu %v): %s\nconsole ends:\n%s",
				accel, err, tail(qemuErr.String(), 2000), tail(res.Console, 3000))
		}
	}
	return res, nil
}

// console collects the serial console and notes when the guest got ready.
type console struct {
	start time.Time
	mu    sync.Mutex
	buf   bytes.Buffer
	ready time.Duration
}

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	if c.ready == 0 && bytes.Contains(c.buf.Bytes(), []byte(markerReady)) {
		c.ready = time.Since(c.start)
	}
	return len(p), nil
}

func (c *console) snapshot() (string, time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String(), c.ready
}

// exitCode finds the script's status in the console.
func (c *console) exitCode() (int, bool) {
	s, _ := c.snapshot()
	i := strings.LastIndex(s, markerExit+" ")
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+len(markerExit):])
	if len(f) == 0 {
		return 0, false
	}
	rc, err := strconv.Atoi(f[0])
	return rc, err == nil
}

// tail returns the last n bytes of s.
func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
