package kerberos

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	"github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/iana/nametype"
	"github.com/jcmturner/gokrb5/v8/krberror"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/types"
)

// ticket is a credential from the KDC: a ticket and its session key.
type ticket struct {
	tkt     messages.Ticket
	key     types.EncryptionKey
	start   time.Time
	end     time.Time
	renewAt time.Time // fetch a new one from here on
}

// renewPoint is when a credential valid from start to end is replaced:
// with a sixth of its life left (as gokrb5 and MIT do for TGTs), but
// never later than a minute before it ends.
func renewPoint(start, end time.Time) time.Time {
	t := end.Add(-end.Sub(start) / 6)
	if limit := end.Add(-time.Minute); t.After(limit) {
		t = limit
	}
	return t
}

// creds are an initiator's machine credentials: a TGT obtained with the
// keytab and renewed before it expires, and service tickets cached per
// SPN. The AS and TGS exchanges are done here, not by gokrb5's Client
// cache, so that every KDC round trip is known and counted.
type creds struct {
	principal Principal
	keytab    *keytabFile
	krb5      *config.Config
	noFAST    bool
	retries   int
	backoff   time.Duration
	now       func() time.Time

	mu      sync.Mutex
	tgt     *ticket
	tickets map[string]*ticket // by SPN
	offsets map[string]time.Duration
}

// errKDCUnreachable marks errors where no KDC answered.
var errKDCUnreachable = errors.New("no KDC reachable")

// get returns a valid service ticket for spn, from the cache or the KDC.
// KDC round trips that fail for want of a network answer are retried with
// exponential backoff.
func (c *creds) get(spn Principal) (*ticket, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := spn.String()
	if t := c.tickets[key]; t != nil && c.now().Before(t.renewAt) {
		stats.hits.Add(1)
		return t, nil
	}
	stats.misses.Add(1)
	delay := c.backoff
	for attempt := 0; ; attempt++ {
		t, err := c.fetch(spn)
		if err == nil {
			c.tickets[key] = t
			return t, nil
		}
		if !errors.Is(err, errKDCUnreachable) || attempt >= c.retries {
			return nil, fmt.Errorf("kerberos: cannot get a ticket for %s as %s: %w", spn, c.principal, err)
		}
		logger().Warn("kerberos: KDC unreachable, retrying", "spn", spn.String(), "attempt", attempt+1, "backoff", delay, "err", err)
		time.Sleep(delay)
		delay *= 2
	}
}

// invalidate drops the cached ticket for spn, and the TGT when all is
// suspect (after a key change).
func (c *creds) invalidate(spn Principal, tgtToo bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.tickets, spn.String())
	if tgtToo {
		c.tgt = nil
	}
}

// setOffset records the clock offset to use towards spn.
func (c *creds) setOffset(spn Principal, d time.Duration) {
	c.mu.Lock()
	c.offsets[spn.String()] = d
	c.mu.Unlock()
}

func (c *creds) offset(spn Principal) time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.offsets[spn.String()]
}

func (c *creds) client() (*client.Client, error) {
	kt, err := c.keytab.get()
	if err != nil {
		return nil, err
	}
	return client.NewWithKeytab(c.principal.Name, c.principal.Realm, kt, c.krb5, client.DisablePAFXFAST(c.noFAST)), nil
}

// fetch asks the KDC for a service ticket, first for a TGT if there is
// none valid. Caller holds mu.
func (c *creds) fetch(spn Principal) (*ticket, error) {
	cl, err := c.client()
	if err != nil {
		return nil, err
	}
	if c.tgt == nil || !c.now().Before(c.tgt.renewAt) {
		req, err := messages.NewASReqForTGT(c.principal.Realm, c.krb5, c.principal.krb())
		if err != nil {
			return nil, err
		}
		stats.kdcRequests.Add(1)
		rep, err := cl.ASExchange(c.principal.Realm, req, 0)
		if err != nil {
			stats.kdcFailures.Add(1)
			return nil, kdcError("AS", err)
		}
		p := rep.DecryptedEncPart
		c.tgt = &ticket{tkt: rep.Ticket, key: p.Key, start: startOf(p.StartTime, p.AuthTime), end: p.EndTime}
		c.tgt.renewAt = renewPoint(c.tgt.start, c.tgt.end)
		logger().Debug("kerberos: TGT obtained", "principal", c.principal.String(), "end", p.EndTime)
	}
	name := types.NewPrincipalName(nametype.KRB_NT_PRINCIPAL, spn.Name)
	stats.kdcRequests.Add(1)
	_, rep, err := cl.TGSREQGenerateAndExchange(name, c.principal.Realm, c.tgt.tkt, c.tgt.key, false)
	if err != nil {
		stats.kdcFailures.Add(1)
		return nil, kdcError("TGS", err)
	}
	p := rep.DecryptedEncPart
	t := &ticket{tkt: rep.Ticket, key: p.Key, start: startOf(p.StartTime, p.AuthTime), end: p.EndTime}
	t.renewAt = renewPoint(t.start, t.end)
	logger().Debug("kerberos: service ticket obtained", "spn", spn.String(), "end", p.EndTime, "kvno", rep.Ticket.EncPart.KVNO)
	return t, nil
}

func startOf(start, auth time.Time) time.Time {
	if start.IsZero() {
		return auth
	}
	return start
}

// kdcError classifies a gokrb5 error: no answer from any KDC wraps
// errKDCUnreachable; a KRB-ERROR from the KDC is kept as text.
func kdcError(exchange string, err error) error {
	var ke krberror.Krberror
	if errors.As(err, &ke) && ke.RootCause == krberror.NetworkingError {
		return fmt.Errorf("%s exchange: %w: %v", exchange, errKDCUnreachable, err)
	}
	return fmt.Errorf("%s exchange: %v", exchange, err)
}

// cached returns the cached ticket for spn without contacting the KDC, or
// nil when there is none that is still valid. It is for callers that must
// not block (the IKEv1 engine holds an SA's lock), after get filled the
// cache: a ticket past its renewal point is still good until it ends.
func (c *creds) cached(spn Principal) *ticket {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t := c.tickets[spn.String()]; t != nil && c.now().Before(t.end) {
		return t
	}
	return nil
}
