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
//   - The engine's own locks (tableMu for the SA table, bindMu for the
//     binds, peerDeletes' for the Deletes remembered during a handover)
//     and the SA database's SPI allocator are leaves: taken after an SA's
//     lock, never the reverse, and nothing is called out while they are
//     held. A bind's read turn and the inboxes' lock (dispatch.go) are
//     taken by the readers with no SA lock held, the turn around one read
//     and the queueing of what it read. policyMu, which keeps the data-plane policies'
//     reference counts in step with the backend, is taken only without
//     any SA lock.
//   - Nothing is called out with an SA lock held: peer verification (a
//     signature check may read CRLs, a GSS-API one talk to a KDC), the SA
//     database's backend (netlink, a TUN device). The handshake releases
//     the lock around such calls (isakmpSA.verifyUnlocked, the IPsec SA
//     install in completeQuickMode) and, on taking it again, checks that
//     the SA was not deleted meanwhile (isakmpSA.dead) and that the
//     exchange is still the one it was working on. While the lock is
//     released the exchange is marked busy, and a retransmission of the
//     message being worked on is dropped: the peer retransmits again and
//     gets the cached answer. Work for after the lock (removing IPsec SAs,
//     deleting other SAs) is queued with isakmpSA.later and run by
//     isakmpSA.unlock.
//   - What runs with an SA lock held is documented not to block or call
//     back into the engine: signing our own hash (AuthExchange.Prove),
//     sending on a bind (transport binds never block: a full socket
//     buffer drops the datagram, as the network might), logging, and the
//     opt-in key log.
//
// A policy layer hears of the IPsec SAs' data-plane policies and of
// failed Main Modes through an Observer (Config.Observer), called without
// any SA lock: the policies' calls under policyMu, in order, the failures
// with no lock at all (queued with isakmpSA.later).
//
// Each ISAKMP SA's messages are handled in the order they arrived, one at
// a time, and different SAs' in parallel (dispatch.go): IKEv1's
// Informational exchanges are not acknowledged, so a Delete handled before
// the message the peer sent ahead of it would lose an IPsec SA on one
// side only. How IPsec SAs move between ISAKMP SAs with the same peer,
// each side choosing on its own, is in handover.go.
//
// Timers (retransmission, rekeying, DPD, expiry) run on the runtime's
// timer goroutines and take the SA's lock like a received message does.
package ikev1
