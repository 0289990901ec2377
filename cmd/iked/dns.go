package main

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/iked/iked/config"
	"github.com/iked/iked/ike"
)

// Peers by DNS name ("remote: vpn.example.com"): the engine knows such a
// connection without a remote address, so as a responder it matches the
// peer at any address (its remote_id and authentication decide), and the
// daemon initiates it itself, resolving the name at each initiation and
// each retry, so that a peer whose address changed is found again.

// lookupTimeout bounds one resolution.
const lookupTimeout = 10 * time.Second

// resolveRemote resolves c's host name to the peer's IKE endpoint: the
// first address of a family the daemon listens on (and of the family of
// c's local address, when set).
func (d *daemon) resolveRemote(ctx context.Context, c *config.Connection) (netip.AddrPort, error) {
	ctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := d.lookup(ctx, c.RemoteHost)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("connection %s: resolving %s: %w", c.Name, c.RemoteHost, err)
	}
	d.mu.Lock()
	listen := d.cfg.Listen
	d.mu.Unlock()
	for _, a := range addrs {
		a = a.Unmap()
		if c.Local.IsValid() && c.Local.Is4() != a.Is4() {
			continue
		}
		for _, l := range listen {
			if l.Addr().Is4() == a.Is4() {
				return netip.AddrPortFrom(a, c.Remote.Port()), nil
			}
		}
	}
	return netip.AddrPort{}, fmt.Errorf("connection %s: %s resolves to %v, none of a family iked listens on", c.Name, c.RemoteHost, addrs)
}

// lookupHost is the system resolver's lookup.
func lookupHost(ctx context.Context, host string) ([]netip.Addr, error) {
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// initiateByName establishes connection c whose remote is a DNS name.
func (d *daemon) initiateByName(ctx context.Context, c *config.Connection) ([]ike.SAInfo, error) {
	remote, err := d.resolveRemote(ctx, c)
	if err != nil {
		return nil, err
	}
	var conn *ike.Connection
	for _, ec := range d.engine.Connections() {
		if ec.Name == c.Name {
			x := *ec
			conn = &x
			break
		}
	}
	if conn == nil {
		return nil, fmt.Errorf("no connection named %q", c.Name)
	}
	conn.Remote = remote
	d.log.Info("initiating to a peer by name", "connection", c.Name, "host", c.RemoteHost, "remote", remote.String())
	info, err := d.engine.InitiateWith(ctx, conn, ike.InitiateOptions{})
	if err != nil {
		return nil, err
	}
	return []ike.SAInfo{info}, nil
}

// startConnection initiates the named connection in the background and
// retries a failure with backoff (1 s doubling to 2 min), until it
// succeeds, the daemon stops, or the connection is no longer configured to
// start (a reload removed it or changed its start_action). Each attempt
// initiates the connection as configured then, resolving a remote given
// by name again. One loop runs per connection at a time.
func (d *daemon) startConnection(name string) {
	d.mu.Lock()
	if d.starting[name] {
		d.mu.Unlock()
		return
	}
	if d.starting == nil {
		d.starting = map[string]bool{}
	}
	d.starting[name] = true
	d.mu.Unlock()
	go func() {
		defer func() {
			d.mu.Lock()
			delete(d.starting, name)
			d.mu.Unlock()
		}()
		wait := time.Second
		for {
			d.mu.Lock()
			c := d.cfg.Connection(name)
			d.mu.Unlock()
			if c == nil || c.StartAction != config.StartInitiate {
				return
			}
			_, err := d.Initiate(d.ctx, name, false)
			if err == nil || d.ctx.Err() != nil {
				return
			}
			d.log.Warn("start action failed, will retry", "connection", name, "err", err, "retry_in", wait.String())
			select {
			case <-d.ctx.Done():
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, 2*time.Minute)
		}
	}()
}
