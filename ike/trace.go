package ike

import (
	"context"
	"encoding/hex"
	"log/slog"
	"net/netip"
	"strconv"
	"strings"

	"github.com/iked/iked/ike/wire"
	"github.com/iked/iked/transform"
)

// Protocol traces: at debug level, one line per IKE message generated and
// parsed, as charon's "generating"/"parsed" lines, e.g.
//
//	generating IKE_AUTH request 1 [ IDi N(INITIAL_CONTACT) IDr AUTH SA TSi TSr ]
//
// with what a negotiation is decided on beside it: the proposals of an SA
// payload, traffic selectors, identities, the key exchange group, the
// SPIs of a Delete. Never key material: no KE data, nonces, AUTH data,
// certificates or notify data. And a line per proposal selection naming
// what was offered, what is configured and what was chosen, so that a
// failed negotiation reads from the log alone. Every call checks the
// level first: with debug off a trace costs a level check.

// Trace directions.
const (
	traceSent     = "generating"
	traceReceived = "parsed"
)

// traceMessage writes the trace line of one message of sa. Caller holds
// sa.mu or owns sa (its log attributes read its fields).
func (sa *ikeSA) traceMessage(verb string, exch wire.ExchangeType, response bool, msgID uint32, ps []wire.Payload) {
	if !sa.logs(slog.LevelDebug) {
		return
	}
	sa.log(slog.LevelDebug, describeMessage(verb, exch, response, msgID, ps), payloadDetails(ps)...)
}

// traceMessage writes the trace line of a message no IKE SA holds yet (an
// IKE_SA_INIT request, an unprotected error answer).
func (e *Engine) traceMessage(peer netip.AddrPort, verb string, exch wire.ExchangeType, response bool, msgID uint32, ps []wire.Payload) {
	if !e.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	e.log.Debug(describeMessage(verb, exch, response, msgID, ps), append([]any{"peer", peer.String()}, payloadDetails(ps)...)...)
}

// traceSelection writes what a proposal selection was made of: the
// peer's offer, this side's configured proposals, the choice (or none).
func traceSelection(log func(msg string, args ...any), what string, configured []transform.Proposal, proto wire.ProtocolID, offered []wire.Proposal, chosen *suite) {
	choice := "none"
	if chosen != nil {
		choice = proto.String() + ":" + chosen.String()
	}
	log("selecting "+what+" proposal", "offered", formatOffer(offered), "configured", formatConfigured(proto, configured), "chosen", choice)
}

// traceSelection is the package function for an SA. Caller holds sa.mu.
func (sa *ikeSA) traceSelection(what string, configured []transform.Proposal, proto wire.ProtocolID, offered []wire.Proposal, chosen *suite) {
	if !sa.logs(slog.LevelDebug) {
		return
	}
	traceSelection(func(msg string, args ...any) { sa.log(slog.LevelDebug, msg, args...) }, what, configured, proto, offered, chosen)
}

// describeMessage is the trace line's text: verb, exchange, request or
// response, message ID and the payloads in order.
func describeMessage(verb string, exch wire.ExchangeType, response bool, msgID uint32, ps []wire.Payload) string {
	var b strings.Builder
	b.WriteString(verb)
	b.WriteByte(' ')
	b.WriteString(exch.String())
	if response {
		b.WriteString(" response ")
	} else {
		b.WriteString(" request ")
	}
	b.WriteString(strconv.FormatUint(uint64(msgID), 10))
	b.WriteString(" [")
	for _, p := range ps {
		b.WriteByte(' ')
		writePayloadName(&b, p)
	}
	b.WriteString(" ]")
	return b.String()
}

func writePayloadName(b *strings.Builder, p wire.Payload) {
	switch x := p.(type) {
	case *wire.Notify:
		b.WriteString("N(")
		b.WriteString(x.Code.String())
		b.WriteByte(')')
	case *wire.Delete:
		b.WriteString("D")
	case *wire.Unknown:
		b.WriteString(x.T.String())
	default:
		b.WriteString(p.Type().String())
	}
}

// payloadDetails are the attributes of what was negotiated in ps. No key
// material, nonces, AUTH data or certificates.
func payloadDetails(ps []wire.Payload) []any {
	var out []any
	for _, p := range ps {
		switch x := p.(type) {
		case *wire.SA:
			out = append(out, "proposals", formatOffer(x.Proposals))
		case *wire.KE:
			out = append(out, "ke", groupName(x.Group))
		case *wire.ID:
			key := "idi"
			if x.Responder {
				key = "idr"
			}
			out = append(out, key, IdentityFromPayload(x).String())
		case *wire.TS:
			key := "tsi"
			if x.Responder {
				key = "tsr"
			}
			out = append(out, key, strings.Join(formatTSList(x.Selectors), ","))
		case *wire.Auth:
			out = append(out, "auth", x.Method.String())
		case *wire.Delete:
			spis := make([]string, len(x.SPIs))
			for i, s := range x.SPIs {
				spis[i] = hex.EncodeToString(s)
			}
			out = append(out, "delete", strings.TrimSpace(x.Protocol.String()+" "+strings.Join(spis, ",")))
		case *wire.Notify:
			if x.Code == wire.NotifyInvalidKEPayload && len(x.Data) == 2 {
				out = append(out, "ke_wanted", groupName(uint16(x.Data[0])<<8|uint16(x.Data[1])))
			}
		}
	}
	return out
}

func groupName(id uint16) string {
	if g := transform.GroupByID(id); g != nil {
		return g.Name()
	}
	return "DH_" + strconv.Itoa(int(id))
}

// formatOffer names an SA payload's proposals as strongSwan's "received
// proposals" line does, e.g. "IKE:AES_CBC-128/HMAC_SHA2_256_128/
// PRF_HMAC_SHA2_256/MODP_2048, IKE:AES_GCM_16-256/PRF_HMAC_SHA2_256/
// CURVE_25519"; transforms this side does not know show with their
// numbers.
func formatOffer(props []wire.Proposal) string {
	parts := make([]string, len(props))
	for i, p := range props {
		var tp transform.Proposal
		for _, t := range p.Transforms {
			switch t.Type {
			case wire.TransformENCR:
				tp.Encr = append(tp.Encr, transform.EncrChoice{ID: t.ID, KeyBits: t.KeyLength})
			case wire.TransformPRF:
				tp.PRF = append(tp.PRF, t.ID)
			case wire.TransformINTEG:
				tp.Integ = append(tp.Integ, t.ID)
			case wire.TransformDH:
				if t.ID != transform.DHNone {
					tp.DH = append(tp.DH, t.ID)
				}
			case wire.TransformESN:
				tp.ESN = append(tp.ESN, t.ID)
			default:
				if t.Type >= wire.TransformADDKE1 && t.Type <= wire.TransformADDKE7 {
					i := t.Type - wire.TransformADDKE1
					tp.AddKE[i] = append(tp.AddKE[i], t.ID)
				}
			}
		}
		parts[i] = p.Protocol.String() + ":" + tp.String()
	}
	return strings.Join(parts, ", ")
}

// formatConfigured names configured proposals the same way.
func formatConfigured(proto wire.ProtocolID, props []transform.Proposal) string {
	parts := make([]string, len(props))
	for i, p := range props {
		parts[i] = proto.String() + ":" + p.String()
	}
	return strings.Join(parts, ", ")
}

// traceSelection traces the IKE_SA_INIT responder's choice, before an SA
// exists: with the peer and the connection whose proposals were used.
func (hs *saInitResponder) traceSelection() {
	e := hs.eng
	if !e.log.Enabled(context.Background(), slog.LevelDebug) {
		return
	}
	traceSelection(func(msg string, args ...any) {
		e.log.Debug(msg, append([]any{"peer", hs.from.String(), "connection", hs.cands[0].Name}, args...)...)
	}, "IKE", hs.cands[0].IKEProposals, wire.ProtoIKE, hs.sa.Proposals, hs.suite)
}
