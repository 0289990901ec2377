package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"

	"github.com/iked/iked/config"
	"github.com/iked/iked/sadb"
	"github.com/iked/iked/sadb/memory"
	"github.com/iked/iked/sadb/userspace"
	"github.com/iked/iked/sadb/xfrm"
	"github.com/iked/iked/transport"
)

// dataPlane is the chosen backend and what the IKE sockets need from it.
type dataPlane struct {
	name    string
	backend sadb.Backend
	// natt is the userspace backend's bind on port 4500, whose socket it
	// shares with ESP-in-UDP; nil for the others.
	natt transport.Bind
	// forceEncap: the data plane only carries ESP in UDP.
	forceEncap bool
	// prepare sets what the backend needs on an IKE socket.
	prepare func(u *transport.UDP, natt bool) error
}

// openDataPlane opens the configured backend; "auto" takes xfrm when the
// kernel can hold ESP SAs and the userspace one otherwise, saying why.
func openDataPlane(cfg *config.Config, log *slog.Logger) (*dataPlane, error) {
	switch cfg.Backend {
	case config.BackendMemory:
		return &dataPlane{name: "memory", backend: memory.New()}, nil
	case config.BackendXFRM:
		return openXFRM(log)
	case config.BackendUserspace:
		return openUserspace(cfg, log)
	}
	// auto
	err := xfrm.Probe("")
	if err == nil {
		log.Info("data plane: xfrm (the kernel holds ESP SAs)")
		return openXFRM(log)
	}
	log.Info("data plane: userspace", "why", err.Error())
	dp, uerr := openUserspace(cfg, log)
	if uerr != nil {
		return nil, fmt.Errorf("no data plane: xfrm: %v; userspace: %w", err, uerr)
	}
	return dp, nil
}

func openXFRM(log *slog.Logger) (*dataPlane, error) {
	b, err := xfrm.New(xfrm.Options{Logf: func(format string, args ...any) { log.Info(fmt.Sprintf(format, args...)) }})
	if err != nil {
		if errors.Is(err, xfrm.ErrNoESP) {
			return nil, fmt.Errorf("backend xfrm: %w (set backend: userspace or auto)", err)
		}
		return nil, fmt.Errorf("backend xfrm: %w", err)
	}
	return &dataPlane{name: "xfrm", backend: b, prepare: func(u *transport.UDP, natt bool) error {
		// IKE must bypass the policies it negotiates, or a host-to-host
		// policy would capture IKE itself.
		if err := xfrm.BypassSocket(u.Conn()); err != nil {
			return err
		}
		if natt {
			return xfrm.EnableESPInUDP(u.Conn())
		}
		return nil
	}}, nil
}

func openUserspace(cfg *config.Config, log *slog.Logger) (*dataPlane, error) {
	var listen netip.AddrPort
	for _, a := range cfg.Listen {
		if a.Port() == natTPort {
			listen = a
			break
		}
	}
	if !listen.IsValid() {
		return nil, fmt.Errorf("backend userspace needs a listen address on port %d: ESP travels in UDP there", natTPort)
	}
	u := cfg.Userspace
	uc := userspace.Config{TUN: u.TUN, MTU: u.MTU, Listen: listen, Addresses: u.Addresses,
		ReplayWindow: u.ReplayWindow, RawIPv4: u.RawIPv4, NoOffload: u.NoOffload, Logger: log}
	if cfg.Policy != nil {
		// The policy's nftables rules mark what must be secured; the mark
		// routes it into the TUN device.
		uc.SteerMark, uc.SteerTable = cfg.PolicyOptions.Mark, cfg.PolicyOptions.RouteTable
	}
	b, err := userspace.New(uc)
	if err != nil {
		return nil, fmt.Errorf("backend userspace: %w", err)
	}
	log.Info("userspace data plane ready", "tun", b.TUNName(), "listen", listen.String(), "offloads", strings.Join(b.Offloads(), ","))
	return &dataPlane{name: "userspace", backend: b, natt: b.IKEBind(), forceEncap: b.RequiresUDPEncap()}, nil
}

// supports checks what the connections ask of the data plane: an XFRM
// interface (route-based IPsec) exists only in the kernel's.
func (dp *dataPlane) supports(cfg *config.Config) error {
	for _, c := range cfg.Connections {
		if c.Interface != 0 && dp.name != "xfrm" {
			return fmt.Errorf("%s:%d: connection %q: interface %d needs the kernel data plane (backend: xfrm), not %s",
				cfg.File, c.Line, c.Name, c.Interface, dp.name)
		}
	}
	return nil
}
