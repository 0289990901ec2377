package ikev1

// INITIAL-CONTACT (RFC 2407 §4.6.3.3) tells the receiver that the
// sender has no other state with it: the receiver deletes every SA it
// still has with the sender. A sender that claims it wrongly makes the
// peer forget SAs this side keeps using, so the claim is decided from a
// count kept with the SA table, not from a look at the other SAs:
//
//   - an SA this side initiates is counted from the moment it is in the
//     table, before its first message leaves;
//   - an SA the peer initiated is counted once established here, which is
//     before it is established at the peer (our message 6 completes it);
//   - an SA stops counting when it leaves the table.
//
// The initiator sends INITIAL-CONTACT in message 5 when it is the only
// SA counted with the peer (firstContact), and the responder deletes
// only the SAs it established before that Main Mode's first message
// reached it (Engine.initialContact). Together they cannot delete an SA
// the sender keeps: such an SA was established at the responder before
// the first message arrived, so before message 5 was built, so it was
// counted at the sender then (unless already gone there, which is what
// the notification is for). Two Main Modes started at once, or a first
// message lost and retransmitted while a later Main Mode completed, are
// all covered by that order of events.

// countContactLocked counts sa among the SAs with its peer. Caller holds
// tableMu.
func (e *Engine) countContactLocked(sa *isakmpSA) {
	if !sa.counted {
		sa.counted = true
		e.contacts[sa.contact]++
	}
}

// uncountContactLocked undoes countContactLocked. Caller holds tableMu.
func (e *Engine) uncountContactLocked(sa *isakmpSA) {
	if !sa.counted {
		return
	}
	sa.counted = false
	if e.contacts[sa.contact]--; e.contacts[sa.contact] <= 0 {
		delete(e.contacts, sa.contact)
	}
}

// countContact counts an SA the peer initiated, once established. tableMu
// is a leaf: the caller may hold sa.mu.
func (e *Engine) countContact(sa *isakmpSA) {
	e.tableMu.Lock()
	e.countContactLocked(sa)
	e.tableMu.Unlock()
}

// firstContact reports whether sa, an initiator's SA, is the only SA
// counted with its peer: its message 5 may then carry INITIAL-CONTACT.
// tableMu is a leaf: the caller holds sa.mu.
func (e *Engine) firstContact(sa *isakmpSA) bool {
	e.tableMu.Lock()
	defer e.tableMu.Unlock()
	return sa.counted && e.contacts[sa.contact] == 1
}
