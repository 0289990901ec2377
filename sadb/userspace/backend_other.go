//go:build !linux

package userspace

import "errors"

// New fails: the userspace backend needs Linux's TUN driver.
func New(Config) (*Backend, error) {
	return nil, errors.New("userspace: the userspace data plane is only available on Linux")
}

// Backend is unavailable on this platform.
type Backend struct{}
