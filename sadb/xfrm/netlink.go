package xfrm

import (
	"errors"
	"fmt"
	"syscall"
	"time"
)

// Linux errno values the backend tells apart (asm-generic/errno-base.h,
// errno.h). Netlink only exists on Linux, so the numbers are Linux's
// whatever GOOS the package is compiled for.
const (
	errENOENT          = syscall.Errno(2)
	errESRCH           = syscall.Errno(3)
	errEEXIST          = syscall.Errno(17)
	errENOBUFS         = syscall.Errno(105)
	errEPROTONOSUPPORT = syscall.Errno(93)
)

// message is one received netlink message.
type message struct {
	typ, flags uint16
	seq, pid   uint32
	body       []byte
}

// parseMessages splits a datagram into netlink messages.
func parseMessages(b []byte) ([]message, error) {
	var out []message
	for len(b) >= nlmsgHdrLen {
		n := int(ne.Uint32(b[0:]))
		if n < nlmsgHdrLen || n > len(b) {
			return out, fmt.Errorf("xfrm: netlink message of %d octets in %d", n, len(b))
		}
		out = append(out, message{
			typ:   ne.Uint16(b[4:]),
			flags: ne.Uint16(b[6:]),
			seq:   ne.Uint32(b[8:]),
			pid:   ne.Uint32(b[12:]),
			body:  b[nlmsgHdrLen:n],
		})
		if align4(n) >= len(b) {
			break
		}
		b = b[align4(n):]
	}
	return out, nil
}

// KernelError is a request the kernel refused: the errno, and the kernel's
// extended-ack message when it gave one. errors.Is matches it against the
// syscall.Errno.
type KernelError struct {
	Op      string // the request, e.g. "add SA"
	Errno   syscall.Errno
	Message string // the kernel's explanation, often empty
}

// Error implements error.
func (e *KernelError) Error() string {
	s := "xfrm: " + e.Op + ": " + e.Errno.Error()
	if e.Message != "" {
		s += " (" + e.Message + ")"
	}
	return s
}

// Unwrap returns the errno.
func (e *KernelError) Unwrap() error { return e.Errno }

// parseError decodes an NLMSG_ERROR; nil is an acknowledgement.
func parseError(m message) (syscall.Errno, string, error) {
	if len(m.body) < 4 {
		return 0, "", errors.New("xfrm: short netlink error message")
	}
	code := int32(ne.Uint32(m.body))
	if code == 0 {
		return 0, "", nil
	}
	var text string
	if m.flags&nlmFAckTLVs != 0 {
		// The error code, then the request's header (capped) or the whole
		// request, then the extended-ack attributes.
		off := 4 + nlmsgHdrLen
		if m.flags&nlmFCapped == 0 && len(m.body) >= 4+nlmsgHdrLen {
			off = 4 + int(ne.Uint32(m.body[4:]))
		}
		if off <= len(m.body) {
			if msg, ok := parseAttrs(m.body[off:])[nlmsgerrAttrMsg]; ok {
				for len(msg) > 0 && msg[len(msg)-1] == 0 {
					msg = msg[:len(msg)-1]
				}
				text = string(msg)
			}
		}
	}
	return syscall.Errno(-code), text, nil
}

// requestTimeout bounds one request's wait for the kernel's answer.
const requestTimeout = 10 * time.Second

// roundTrip sends req and collects its answer: the messages of a dump, the
// reply of a get, nothing for an acknowledged change. Callers hold the
// backend's request lock.
func roundTrip(c *conn, seq uint32, op string, req request) ([]message, error) {
	buf := req.marshal(seq, 0)
	err := c.send(buf)
	clear(buf) // it may hold keys
	if err != nil {
		return nil, fmt.Errorf("xfrm: %s: send: %w", op, err)
	}
	if err := c.setReadDeadline(time.Now().Add(requestTimeout)); err != nil {
		return nil, err
	}
	var out []message
	for {
		data, err := c.receive()
		if err != nil {
			return nil, fmt.Errorf("xfrm: %s: receive: %w", op, err)
		}
		msgs, err := parseMessages(data)
		if err != nil {
			return nil, err
		}
		for _, m := range msgs {
			if m.seq != seq || m.pid != c.pid && m.pid != 0 {
				continue // an answer to an earlier request that timed out
			}
			switch m.typ {
			case nlmError:
				errno, text, err := parseError(m)
				if err != nil {
					return nil, err
				}
				if errno != 0 {
					return nil, &KernelError{Op: op, Errno: errno, Message: text}
				}
				return out, nil
			case nlmDone:
				if len(m.body) >= 4 {
					if code := int32(ne.Uint32(m.body)); code < 0 {
						return nil, &KernelError{Op: op, Errno: syscall.Errno(-code)}
					}
				}
				return out, nil
			case nlmNoop, nlmOverrun:
				continue
			}
			out = append(out, m)
			if req.flags&(nlmFAck|nlmFDump) == 0 {
				return out, nil // the one reply of a get
			}
		}
	}
}
