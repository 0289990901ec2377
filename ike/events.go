package ike

import (
	"context"
	"log/slog"

	"github.com/iked/iked/sadb"
)

// handleEvents turns data-plane events into exchanges: a soft expiry (bytes
// or time) rekeys the Child SA, a hard expiry deletes it with the peer.
// Acquires go to the Observer (the policy layer, which installed the trap
// policies that raise them), or are logged without one.
func (e *Engine) handleEvents(events <-chan sadb.Event) {
	defer e.wg.Done()
	for {
		select {
		case <-e.closing:
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			e.handleEvent(ev)
		}
	}
}

func (e *Engine) handleEvent(ev sadb.Event) {
	switch ev.Kind {
	case sadb.SoftExpire, sadb.HardExpire:
		sa, c := e.childBySPI(ev.SA.SPI)
		if sa == nil {
			return
		}
		if ev.Kind == sadb.SoftExpire {
			sa.log(slog.LevelInfo, "Child SA reached its soft lifetime: rekeying", "spi", ev.SA.SPI)
			go sa.rekeyChild(c)
			return
		}
		sa.log(slog.LevelInfo, "Child SA reached its hard lifetime: deleting", "spi", ev.SA.SPI)
		go sa.deleteChild(context.Background(), c)
	case sadb.Acquire:
		if h := e.heldFor(ev.Policy); h != nil {
			// A connection held after its peer died (dpd_action: hold):
			// its traffic brings it back.
			go e.resume(h, ev)
			return
		}
		if o := e.cfg.Observer; o != nil {
			o.Acquire(ev)
			return
		}
		e.log.Info("traffic without an SA", "policy", ev.Policy.Selector.String(), "packet", ev.Packet.String())
	}
}

// childBySPI finds the Child SA owning an inbound or outbound SPI.
func (e *Engine) childBySPI(spi uint32) (*ikeSA, *childSA) {
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		for _, c := range sa.children {
			if c.inbound.SPI == spi || c.outbound.SPI == spi {
				sa.mu.Unlock()
				return sa, c
			}
		}
		sa.mu.Unlock()
	}
	return nil, nil
}
