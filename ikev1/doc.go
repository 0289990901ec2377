// Package ikev1 is the IKEv1 engine (RFC 2407, 2408, 2409): Main Mode with
// pre-shared keys and signatures (RSA, ECDSA per RFC 4754) as initiator
// and responder, Quick Mode with PFS for ESP in tunnel and transport mode,
// Informational exchanges (deletes, notifications, dead peer detection per
// RFC 3706), NAT traversal (RFC 3947, RFC 3948), IKE fragmentation as
// strongSwan and Windows speak it, and rekeying of both phases by
// lifetime. Aggressive Mode is refused: it sends the PSK-keyed hash in the
// clear to anyone who asks.
//
// It stands beside the IKEv2 engine (package ike) and shares nothing with
// it but the leaf packages: transform for the crypto primitives (IKEv1's
// key schedule, SKEYID and its IV chain, is here), transport for binds,
// ipsec for traffic selectors, sadb for the data plane. A daemon serving
// both versions on one socket splits datagrams by the header's major
// version (transport.Demux) and gives each engine its own bind.
//
// # Authentication
//
// The Main Mode authentication step is pluggable per method (MainModeAuth,
// keyed by the Authentication Method attribute): the engine runs the key
// exchange and the encryption, a method decides SKEYID, what travels in
// messages 3 and 4 beside KE and nonce, and the proof in messages 5 and 6.
// Pre-shared keys and signatures are built in; Windows' GSS-API Kerberos
// (65001), which exchanges tokens in messages 3 and 4 and wraps the hash
// in 5 and 6, registers the same way.
//
// # Concurrency
//
// Every ISAKMP SA has one mutex (isakmpSA.mu) that guards all of its
// state, its Quick Modes and IPsec SAs included. The rules:
//
//   - A goroutine never holds two SAs' locks at once. Work that spans SAs
//     (a phase 1 rekey adopting the old SA's IPsec SAs, INITIAL-CONTACT
//     deleting the SAs of a rebooted peer) takes one, releases it, then
//     takes the next.
//   - The engine's own locks (the SA table's, the policy reference
//     counts') are leaves: taken after an SA's lock, never the reverse,
//     and nothing is called out while they are held.
//   - Nothing is called out with an SA lock held: authentication (a
//     signature check may read CRLs), the SA database's backend (netlink,
//     a TUN device), observers. The handshake releases the lock around
//     such calls and, on taking it again, checks that the SA was not
//     deleted meanwhile (isakmpSA.dead) and that the exchange is still the
//     one it was working on. While the lock is released the exchange is
//     marked busy, and a retransmission of the message being worked on is
//     dropped: the peer retransmits again and gets the cached answer.
//   - Sending on a bind is not a call-out: transport binds never block
//     (a full socket buffer drops the datagram, as the network might).
//
// Timers (retransmission, rekeying, DPD, expiry) run on the runtime's
// timer goroutines and take the SA's lock like a received message does.
package ikev1
