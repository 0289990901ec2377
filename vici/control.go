package vici

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/iked/iked/ike"
)

// The control side: initiate, terminate, rekey, reload-settings
// (vici_control.c).

func init() {
	commands["initiate"] = initiate
	commands["terminate"] = terminate
	commands["rekey"] = rekey
	commands["reload-settings"] = reloadSettings
}

// rekeyTimeout bounds a rekey request; the engine's retransmissions end a
// rekey with a dead peer sooner.
var rekeyTimeout = 2 * time.Minute

// findConn finds the connection to initiate: by IKE name, by child name,
// or both (charon's find_child_cfg).
func (s *Server) findConn(ikeName, child string) *ike.Connection {
	for _, c := range s.cfg.Engine.Connections() {
		if ikeName != "" && c.Name != ikeName {
			continue
		}
		if child != "" && s.childName(c.Name) != child {
			continue
		}
		return c
	}
	return nil
}

// withControlLog streams the records f selects to c as control-log events
// while run runs.
func (c *client) withControlLog(f *logFilter, run func()) {
	c.mu.Lock()
	c.ctlLog = f
	c.mu.Unlock()
	c.s.watch(1)
	if f.level >= 2 {
		c.s.watchDebug(1)
		defer c.s.watchDebug(-1)
	}
	defer func() {
		c.s.watch(-1)
		c.mu.Lock()
		c.ctlLog = nil
		c.mu.Unlock()
	}()
	run()
}

// waitFor runs f in its own goroutine, bounded by the server's life, and
// waits as charon's timeout says: 0 until it is done, > 0 at most that many
// milliseconds, < 0 not at all. It returns whether f finished and its error.
func (s *Server) waitFor(timeout int64, f func(ctx context.Context) error) (bool, error) {
	done := make(chan error, 1)
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		done <- f(s.ctx)
	}()
	switch {
	case timeout < 0:
		return false, nil
	case timeout == 0:
		return true, <-done
	}
	t := time.NewTimer(time.Duration(timeout) * time.Millisecond)
	defer t.Stop()
	select {
	case err := <-done:
		return true, err
	case <-t.C:
		return false, nil
	}
}

func initiate(c *client, req *Message) *Message {
	s := c.s
	child, _ := req.Get("child")
	ikeName, _ := req.Get("ike")
	timeout := intValue(req, "timeout")
	level := int(intValue(req, "loglevel"))
	if _, set := req.Get("loglevel"); !set {
		level = 1
	}
	if child == "" && ikeName == "" {
		return reply(errorf("missing configuration name"))
	}
	typ, name := "IKE_SA", ikeName
	if child != "" {
		typ, name = "CHILD_SA", child
	}
	conn := s.findConn(ikeName, child)
	if conn == nil {
		return reply(errorf("%s config '%s' not found", typ, name))
	}
	s.log.Info("vici initiate", "type", typ, "name", name, "connection", conn.Name)
	var finished bool
	var err error
	run := func() {
		finished, err = s.waitFor(timeout, func(ctx context.Context) error {
			_, err := s.cfg.Engine.Initiate(ctx, conn.Name)
			return err
		})
	}
	if timeout >= 0 {
		c.withControlLog(&logFilter{conn: conn.Name, level: level}, run)
	} else {
		run()
	}
	switch {
	case timeout < 0:
		return reply(result{})
	case !finished:
		return reply(errorf("%s '%s' not established after %dms", typ, name, timeout))
	case err != nil:
		s.log.Info("vici initiate failed", "name", name, "err", err)
		return reply(errorf("establishing %s '%s' failed: %v", typ, name, err))
	}
	return reply(result{})
}

// selection is what terminate and rekey address: IKE SAs, or Child SAs
// within IKE SAs, by configuration name and unique ID.
type selection struct {
	ike, child     string
	ikeID, childID int64
}

func selectionOf(req *Message) selection {
	var sel selection
	sel.ike, _ = req.Get("ike")
	sel.child, _ = req.Get("child")
	sel.ikeID = intValue(req, "ike-id")
	sel.childID = intValue(req, "child-id")
	return sel
}

func (sel selection) empty() bool {
	return sel.ike == "" && sel.child == "" && sel.ikeID == 0 && sel.childID == 0
}

// target is one matched SA: an IKE SA, or a Child SA (spiIn set) in it.
type target struct {
	ikeID string
	spiIn string
}

// match lists the SAs sel selects, as charon's terminate and rekey do.
func (s *Server) match(sel selection) []target {
	var out []target
	for _, in := range s.allSAs() {
		if sel.child != "" || sel.childID != 0 {
			if (sel.ike != "" && in.Connection != sel.ike) || (sel.ikeID != 0 && int64(uniqueID(in.ID)) != sel.ikeID) {
				continue
			}
			for _, ch := range in.Children {
				if sel.child != "" && s.childName(in.Connection) != sel.child {
					continue
				}
				if sel.childID != 0 && int64(s.ids.get(ch.SPIIn)) != sel.childID {
					continue
				}
				out = append(out, target{ikeID: in.ID, spiIn: ch.SPIIn})
			}
			continue
		}
		if (sel.ike != "" && in.Connection == sel.ike) || (sel.ikeID != 0 && int64(uniqueID(in.ID)) == sel.ikeID) {
			out = append(out, target{ikeID: in.ID})
		}
	}
	return out
}

func parseSPI(s string) uint32 {
	n, _ := strconv.ParseUint(s, 16, 32)
	return uint32(n)
}

func terminate(c *client, req *Message) *Message {
	s := c.s
	sel := selectionOf(req)
	force := boolValue(req, "force")
	timeout := intValue(req, "timeout")
	level := int(intValue(req, "loglevel"))
	if _, set := req.Get("loglevel"); !set {
		level = 1
	}
	if sel.empty() {
		return reply(errorf("missing terminate selector"))
	}
	targets := s.match(sel)
	s.log.Info("vici terminate", "ike", sel.ike, "ike_id", sel.ikeID, "child", sel.child, "child_id", sel.childID, "matches", len(targets))
	// force deletes without waiting for the peer's answer, or waits at
	// most timeout (charon's terminate_ike with force).
	wait := timeout
	if force && timeout <= 0 {
		wait = 0
	}
	filter := &logFilter{sas: map[string]bool{}, level: level}
	for _, t := range targets {
		filter.sas[t.ikeID] = true
	}
	done := 0
	run := func() {
		for _, t := range targets {
			finished, err := s.waitFor(wait, func(ctx context.Context) error {
				if force {
					d := time.Millisecond
					if timeout > 0 {
						d = time.Duration(timeout) * time.Millisecond
					}
					var cancel context.CancelFunc
					ctx, cancel = context.WithTimeout(ctx, d)
					defer cancel()
				}
				v1 := isISAKMP(t.ikeID)
				if t.spiIn != "" {
					if v1 {
						return errors.New("an IKEv1 IPsec SA is terminated with its ISAKMP SA (ike-id), not alone")
					}
					return s.cfg.Engine.TerminateChild(ctx, t.ikeID, parseSPI(t.spiIn))
				}
				terminate := s.cfg.Engine.Terminate
				if v1 {
					terminate = s.cfg.IKEv1.Terminate
				}
				n, err := terminate(ctx, t.ikeID)
				if err == nil && n == 0 {
					err = errors.New("already gone")
				}
				return err
			})
			if (finished || timeout < 0) && err == nil {
				done++
			}
		}
	}
	if timeout >= 0 {
		c.withControlLog(filter, run)
	} else {
		run()
	}
	m := NewMessage()
	var errmsg string
	switch {
	case len(targets) == 0:
		errmsg = "no matching SAs to terminate found"
	case done < len(targets) && len(targets) == 1:
		errmsg = "terminating SA failed"
	case done < len(targets):
		errmsg = "not all matching SAs could be terminated"
	}
	if errmsg == "" {
		m.Set("success", "yes")
	} else {
		m.Set("success", "no")
	}
	m.SetInt("matches", int64(len(targets)))
	m.SetInt("terminated", int64(done))
	if errmsg != "" {
		m.Set("errmsg", errmsg)
	}
	return m
}

// boolValue reads a yes/no key as charon's get_bool.
func boolValue(m *Message, k string) bool {
	v, _ := m.Get(k)
	switch v {
	case "yes", "true", "enabled", "1":
		return true
	}
	return false
}

func rekey(c *client, req *Message) *Message {
	s := c.s
	sel := selectionOf(req)
	if sel.empty() {
		return reply(errorf("missing rekey selector"))
	}
	if boolValue(req, "reauth") {
		return reply(errorf("reauth: iked reauthenticates on its reauth_time only, not on request"))
	}
	targets := s.match(sel)
	s.log.Info("vici rekey", "ike", sel.ike, "ike_id", sel.ikeID, "child", sel.child, "child_id", sel.childID, "matches", len(targets))
	var failed []string
	for _, t := range targets {
		ctx, cancel := context.WithTimeout(s.ctx, rekeyTimeout)
		var err error
		switch {
		case isISAKMP(t.ikeID):
			err = errors.New("IKEv1 SAs are rekeyed with ikectl rekey, not over VICI")
		case t.spiIn != "":
			err = s.cfg.Engine.CreateChild(ctx, t.ikeID, parseSPI(t.spiIn))
		default:
			_, err = s.cfg.Engine.RekeyIKE(ctx, t.ikeID)
		}
		cancel()
		if err != nil {
			failed = append(failed, t.ikeID+": "+err.Error())
		}
	}
	m := NewMessage()
	switch {
	case len(targets) == 0:
		m.Set("success", "no").Set("errmsg", "no matching SAs to rekey found")
	case len(failed) > 0:
		m.Set("success", "no").Set("errmsg", "rekeying failed: "+failed[0])
	default:
		m.Set("success", "yes")
	}
	m.SetInt("matches", int64(len(targets)))
	return m
}

func reloadSettings(c *client, _ *Message) *Message {
	if c.s.cfg.Reload == nil {
		return reply(errorf("reloading is not available"))
	}
	if err := c.s.cfg.Reload(); err != nil {
		return reply(errorf("reloading the configuration failed: %v", err))
	}
	return reply(result{})
}
