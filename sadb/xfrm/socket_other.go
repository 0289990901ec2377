//go:build !linux

package xfrm

import (
	"fmt"
	"syscall"
)

// BypassSocket exempts a socket's traffic from IPsec policies; only Linux
// has XFRM.
func BypassSocket(syscall.Conn) error { return fmt.Errorf("xfrm: bypass socket: %w", ErrNoESP) }

// EnableESPInUDP makes the kernel take ESP-in-UDP on a socket; only Linux
// has XFRM.
func EnableESPInUDP(syscall.Conn) error { return fmt.Errorf("xfrm: ESP in UDP: %w", ErrNoESP) }
