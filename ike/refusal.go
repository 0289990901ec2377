package ike

import (
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// refusal is how every exchange, responder and requester alike, ends at
// the step that found the fault, as an alert ends a crypto/tls handshake.
// A step returns one as its error; the exchange's driver answers, counts
// and logs it in one place:
//
//   - notify is what the peer is told: in the encrypted response of an
//     exchange on an IKE SA, in an unprotected IKE_SA_INIT response, or, for
//     a requester that refuses the answer it got, in a separate
//     INFORMATIONAL where RFC 7296 says so (§2.21.2). nil means nothing is
//     sent: the request is dropped, as §2.21 prescribes for faults that may
//     not be answered in the clear.
//   - extra are payloads sent after the notify (an auth method's own
//     error notifies).
//   - failure is the handshake-failure label counted (none when empty);
//     drop the dropped-packet reason counted when nothing is sent.
//   - msg, level and attrs are the log line; err says why.
type refusal struct {
	notify  *wire.Notify
	extra   []wire.Payload
	failure string
	drop    string
	level   slog.Level
	msg     string
	attrs   []any
	err     error
}

func (r *refusal) Error() string { return r.err.Error() }
func (r *refusal) Unwrap() error { return r.err }

// refuse answers with an error notify of code, counted as a handshake
// failure of the notify's label.
func refuse(code wire.NotifyType, err error) *refusal {
	return &refusal{notify: &wire.Notify{Code: code}, failure: failureReason(code), level: slog.LevelWarn, err: err}
}

// refuseWith answers with notify n (INVALID_KE_PAYLOAD with its group,
// CHILD_SA_NOT_FOUND with its SPI, a COOKIE), which is not by itself a
// handshake failure.
func refuseWith(n *wire.Notify, err error) *refusal {
	return &refusal{notify: n, level: slog.LevelWarn, err: err}
}

// dropRequest refuses without an answer, counting the drop.
func dropRequest(reason string, err error) *refusal {
	return &refusal{drop: reason, level: slog.LevelInfo, err: err}
}

// logged sets the refusal's log line.
func (r *refusal) logged(level slog.Level, msg string, attrs ...any) *refusal {
	r.level, r.msg, r.attrs = level, msg, attrs
	return r
}

// counted sets the handshake-failure label.
func (r *refusal) counted(failure string) *refusal {
	r.failure = failure
	return r
}

// asRefusal is err as a refusal; an error that is not one (an internal
// fault: no randomness, a data plane that failed) answers with fallback.
func asRefusal(err error, fallback wire.NotifyType) *refusal {
	var r *refusal
	if errors.As(err, &r) {
		return r
	}
	return refuse(fallback, err)
}

// answer counts r and builds the encrypted response of an exchange on sa
// that carries it, logging what in the exchange's words. Caller holds mu.
func (sa *ikeSA) answer(exch wire.ExchangeType, what string, r *refusal) [][]byte {
	if r.failure != "" {
		sa.eng.stats.failure(r.failure)
	}
	msg := r.msg
	if msg == "" {
		msg = what
	}
	args := append([]any{"err", r.err}, r.attrs...)
	if r.notify == nil {
		if r.drop != "" {
			sa.eng.stats.drop(r.drop)
		}
		sa.log(r.level, msg, args...)
		return nil
	}
	sa.log(r.level, msg, append(args, "notify", r.notify.Code.String())...)
	sa.eng.stats.notify(r.notify.Code.String())
	pkt, err := sa.sealMessage(exch, sa.respID, true, append([]wire.Payload{r.notify}, r.extra...))
	if err != nil {
		sa.log(slog.LevelError, "cannot build error response", "err", err)
		return nil
	}
	return pkt
}

// groupNotify is INVALID_KE_PAYLOAD asking for group g (§1.2, §3.10.1).
func groupNotify(g transform.Group) *wire.Notify {
	id := g.ID()
	return &wire.Notify{Code: wire.NotifyInvalidKEPayload, Data: []byte{byte(id >> 8), byte(id)}}
}

// requestedGroup is the one place a requester follows INVALID_KE_PAYLOAD
// (IKE_SA_INIT §1.2, CREATE_CHILD_SA §1.3): the group the answer asks for,
// nil when the answer does not ask, or an error when it asks for a group
// this side did not offer or the one it sent already.
func requestedGroup(ps []wire.Payload, offered []transform.Proposal, sent transform.Group) (transform.Group, error) {
	n := wire.FindNotify(ps, wire.NotifyInvalidKEPayload)
	if n == nil {
		return nil, nil
	}
	if len(n.Data) != 2 {
		return nil, errors.New("INVALID_KE_PAYLOAD without a group")
	}
	want := binary.BigEndian.Uint16(n.Data)
	g := transform.GroupByID(want)
	if g == nil || !offersGroup(offered, want) || (sent != nil && want == sent.ID()) {
		return nil, fmt.Errorf("responder asks for DH group %d, which we did not offer", want)
	}
	return g, nil
}

// offersGroup reports whether a proposal of props offers DH group id.
func offersGroup(props []transform.Proposal, id uint16) bool {
	for _, p := range props {
		if containsID(p.DH, id) {
			return true
		}
	}
	return false
}
