package ike

// ConnState is one connection's part of the engine's state, as a metrics
// scrape wants it: counts and the data plane's counters summed, read
// without formatting every SA (SAs does that, for ikectl).
type ConnState struct {
	// IKESAs counts the connection's IKE SAs in any state, Established
	// those established; ChildSAs its Child SAs.
	IKESAs, Established, ChildSAs int
	// BytesIn, BytesOut, PacketsIn and PacketsOut sum the data plane's
	// counters of its Child SAs.
	BytesIn, BytesOut, PacketsIn, PacketsOut uint64
}

// ConnStates returns the state of every connection that has IKE SAs, by
// connection name ("" for responder SAs not yet matched to one). Each SA
// is read under its own lock, one at a time.
func (e *Engine) ConnStates() map[string]ConnState {
	out := map[string]ConnState{}
	db := e.cfg.SADB
	for _, sa := range e.allSAs() {
		sa.mu.Lock()
		if sa.state == stateDead {
			sa.mu.Unlock()
			continue
		}
		name := ""
		if sa.conn != nil {
			name = sa.conn.Name
		}
		cs := out[name]
		cs.IKESAs++
		if sa.state == stateEstablished {
			cs.Established++
		}
		for _, c := range sa.children {
			cs.ChildSAs++
			if ctr, err := db.Counters(c.inbound.ID()); err == nil {
				cs.BytesIn += ctr.Bytes
				cs.PacketsIn += ctr.Packets
			}
			if ctr, ok := c.outCounters(db); ok {
				cs.BytesOut += ctr.Bytes
				cs.PacketsOut += ctr.Packets
			}
		}
		sa.mu.Unlock()
		out[name] = cs
	}
	return out
}
