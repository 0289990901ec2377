package ike

import (
	"fmt"
	"log/slog"

	"github.com/iked/iked/ike/wire"
)

// Childless IKE SAs (RFC 6023): an IKE_AUTH without SA, TSi and TSr sets up
// the IKE SA alone; Child SAs follow with CREATE_CHILD_SA. The responder
// announces that it takes one with CHILDLESS_IKEV2_SUPPORTED in its
// IKE_SA_INIT response (§3), and the initiator leaves the Child SA out only
// after that announcement.

// Childless is a connection's use of childless IKE SAs, as strongSwan's
// childless option.
type Childless uint8

const (
	// ChildlessAllow (the default): as responder, announce support and
	// accept a childless IKE_AUTH; as initiator, put the Child SA into
	// IKE_AUTH.
	ChildlessAllow Childless = iota
	// ChildlessNever: as responder, neither announce nor accept a
	// childless IKE_AUTH (refused with INVALID_SYNTAX, as charon does).
	ChildlessNever
	// ChildlessPrefer: as initiator, set up the IKE SA alone when the
	// responder announced support, else with its Child SA in IKE_AUTH. The
	// Child SA then follows on demand: Initiate on the established
	// connection (ikectl initiate, VICI's initiate).
	ChildlessPrefer
	// ChildlessForce: as initiator, always set up the IKE SA alone (failing
	// against a responder that did not announce support); as responder,
	// refuse an IKE_AUTH that carries a Child SA.
	ChildlessForce
)

// String names the mode as the configuration does.
func (c Childless) String() string {
	switch c {
	case ChildlessNever:
		return "never"
	case ChildlessPrefer:
		return "prefer"
	case ChildlessForce:
		return "force"
	}
	return "allow"
}

// ParseChildless reads a childless mode by its configuration name; empty
// is ChildlessAllow.
func ParseChildless(s string) (Childless, error) {
	for _, c := range []Childless{ChildlessAllow, ChildlessNever, ChildlessPrefer, ChildlessForce} {
		if s == c.String() {
			return c, nil
		}
	}
	if s == "" {
		return ChildlessAllow, nil
	}
	return 0, fmt.Errorf("childless %q: expected allow, never, prefer or force", s)
}

// announceChildless reports whether a responder's IKE_SA_INIT answer
// announces childless IKE SAs: unless every connection that may take the
// peer refuses them (the one taking it is chosen by identity in IKE_AUTH).
func announceChildless(cands []*Connection) bool {
	for _, c := range cands {
		if c.Childless != ChildlessNever {
			return true
		}
	}
	return false
}

// childlessNotify is CHILDLESS_IKEV2_SUPPORTED (RFC 6023 §3).
func childlessNotify() *wire.Notify {
	return &wire.Notify{Code: wire.NotifyChildlessIKEv2Supported}
}

// initiatorChildless decides, from the connection and the responder's
// IKE_SA_INIT answer, whether the initiator's IKE_AUTH leaves the Child SA
// out.
func initiatorChildless(c *Connection, answer []wire.Payload) (bool, error) {
	supported := wire.FindNotify(answer, wire.NotifyChildlessIKEv2Supported) != nil
	switch c.Childless {
	case ChildlessPrefer:
		return supported, nil
	case ChildlessForce:
		if !supported {
			return false, fmt.Errorf("connection %s has childless: force, but the responder did not announce CHILDLESS_IKEV2_SUPPORTED (RFC 6023)", c.Name)
		}
		return true, nil
	}
	return false, nil
}

// checkChildless is the responder's step for RFC 6023, once the connection
// is known: a childless IKE_AUTH is refused by childless: never, one with a
// Child SA by childless: force (INVALID_SYNTAX, as charon answers both).
func (hs *authResponder) checkChildless() error {
	childless := wire.Find(hs.inner, wire.PayloadSA) == nil
	switch {
	case childless && hs.conn.Childless == ChildlessNever:
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("peer initiated a childless IKE SA (RFC 6023), which connection %s refuses (childless: never)", hs.conn.Name)).
			counted("childless_mismatch")
	case !childless && hs.conn.Childless == ChildlessForce:
		return refuse(wire.NotifyInvalidSyntax, fmt.Errorf("peer put a Child SA into IKE_AUTH, but connection %s takes only childless IKE SAs (childless: force)", hs.conn.Name)).
			counted("childless_mismatch")
	case childless:
		hs.sa.log(slog.LevelInfo, "peer initiated a childless IKE SA (RFC 6023): its Child SAs follow with CREATE_CHILD_SA")
	}
	return nil
}
