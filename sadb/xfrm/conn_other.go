//go:build !linux

package xfrm

import (
	"fmt"
	"time"
)

// conn is a netlink socket, which only Linux has.
type conn struct{ pid uint32 }

func dial(string, uint32) (*conn, error) {
	return nil, fmt.Errorf("xfrm: no XFRM on this OS: %w", ErrNoESP)
}

func (*conn) send([]byte) error               { return ErrNoESP }
func (*conn) receive() ([]byte, error)        { return nil, ErrNoESP }
func (*conn) setReadDeadline(time.Time) error { return nil }
func (*conn) close() error                    { return nil }
