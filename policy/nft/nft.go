// Package nft enforces an assigned IPsec policy in the Linux kernel with
// nftables: permit and block rules, the exemptions, which inbound clear
// traffic a negotiate rule accepts, and which outbound traffic must be
// secured. Traffic to be secured is marked; the userspace data plane's
// fwmark rule (userspace.Config.SteerMark) routes marked packets into its
// TUN device, where an SA encrypts them or a trap policy raises an
// acquire.
//
// All of iked's rules live in one table (inet "iked" by default), which
// is created at start, replaced atomically on reload, and deleted at stop;
// iked touches no other table. The ruleset is applied with the nft
// command (Debian package nftables), one transaction per change.
package nft

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/iked/iked/policy"
	"github.com/iked/iked/sadb"
)

// Runner runs nft with args and, when script is not empty, the script on
// its standard input (nft -f -), and returns its output; Exec is the real
// one, tests may record scripts.
type Runner interface {
	Run(ctx context.Context, script string, args ...string) (string, error)
}

// Exec runs the nft binary.
type Exec struct {
	// Path is the nft binary; default "nft" from PATH.
	Path string
}

// Run implements Runner.
func (e Exec) Run(ctx context.Context, script string, args ...string) (string, error) {
	path := e.Path
	if path == "" {
		path = "nft"
	}
	if script != "" {
		args = append(args, "-f", "-")
	}
	cmd := exec.CommandContext(ctx, path, args...) // #nosec G204 -- runs nft (the configured or default path) with arguments iked builds; the rules go on stdin, nothing reaches a shell
	cmd.Stdin = strings.NewReader(script)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(errb.String())
		if msg == "" {
			msg = err.Error()
		}
		return out.String(), fmt.Errorf("nft: %s", msg)
	}
	return out.String(), nil
}

// Config configures the enforcement.
type Config struct {
	// Table is the inet table iked owns (default "iked").
	Table string
	// Mark is the packet mark of traffic to secure (required).
	Mark uint32
	// TUN is the data plane's TUN device: traffic arriving there was
	// decrypted from an SA and is accepted.
	TUN string
	// Runner runs nft (default Exec{}).
	Runner Runner
}

// Table is iked's nftables table.
type Table struct {
	cfg Config

	mu      sync.Mutex
	dynamic map[string]int // selector key → rule handle in chain dynamic_out
}

// Outcome counters, named in the table. Outbound: secured (marked into
// the data plane), permitted (clear by a permit rule), fallback (clear to
// a peer that does not speak IKE), blocked. Inbound: unsecured_in (clear
// accepted by "accept unsecured"), refused (clear dropped by a negotiate
// rule); blocked and permitted count both directions.
var Counters = []string{"secured", "permitted", "fallback", "blocked", "unsecured_in", "refused"}

// New returns the table's manager; nothing is applied until Apply.
func New(cfg Config) (*Table, error) {
	if cfg.Table == "" {
		cfg.Table = "iked"
	}
	if cfg.Mark == 0 {
		return nil, errors.New("nft: no mark")
	}
	if cfg.Runner == nil {
		cfg.Runner = Exec{}
	}
	return &Table{cfg: cfg, dynamic: map[string]int{}}, nil
}

// Name returns the table's name.
func (t *Table) Name() string { return t.cfg.Table }

func (t *Table) run(ctx context.Context, script string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return t.cfg.Runner.Run(ctx, script, args...)
}

// Create replaces whatever table of this name exists (a crashed iked's)
// with a fresh one enforcing p, in one transaction.
func (t *Table) Create(ctx context.Context, p *policy.Policy) error {
	rules := Compile(p, t.cfg.Mark)
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {}\ndelete table inet %s\ntable inet %s {\n", t.cfg.Table, t.cfg.Table, t.cfg.Table)
	for _, c := range Counters {
		fmt.Fprintf(&b, "\tcounter %s {}\n", c)
	}
	b.WriteString("\tset clear4 { type ipv4_addr; flags timeout; }\n\tset clear6 { type ipv6_addr; flags timeout; }\n")
	for _, ch := range []string{"exempt_out", "exempt_in", "static_out", "static_in", "dynamic_out"} {
		fmt.Fprintf(&b, "\tchain %s {\n\t}\n", ch)
	}
	b.WriteString("\tchain out {\n\t\ttype route hook output priority mangle; policy accept;\n")
	b.WriteString("\t\tjump exempt_out\n\t\tjump static_out\n\t\tjump dynamic_out\n\t}\n")
	b.WriteString("\tchain in {\n\t\ttype filter hook input priority -10; policy accept;\n")
	if t.cfg.TUN != "" {
		fmt.Fprintf(&b, "\t\tiifname %s accept\n", strconv.Quote(t.cfg.TUN))
	}
	b.WriteString("\t\tjump exempt_in\n\t\tjump static_in\n\t}\n}\n")
	b.WriteString(t.fill(rules))
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, err := t.run(ctx, b.String()); err != nil {
		return err
	}
	t.dynamic = map[string]int{}
	return nil
}

// Replace swaps the exemption and static rules for those of p,
// atomically: packets see either the old rules or the new ones. The
// counters, the clear set and the rules of established SAs stay.
func (t *Table) Replace(ctx context.Context, p *policy.Policy) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.run(ctx, t.fill(Compile(p, t.cfg.Mark)))
	return err
}

// fill flushes the rule chains and adds rules.
func (t *Table) fill(r *Rules) string {
	var b strings.Builder
	add := func(chain string, rules []string) {
		fmt.Fprintf(&b, "flush chain inet %s %s\n", t.cfg.Table, chain)
		for _, x := range rules {
			fmt.Fprintf(&b, "add rule inet %s %s %s\n", t.cfg.Table, chain, x)
		}
	}
	add("exempt_out", r.ExemptOut)
	add("exempt_in", r.ExemptIn)
	add("static_out", r.Out)
	add("static_in", r.In)
	return b.String()
}

// Delete removes the table.
func (t *Table) Delete(ctx context.Context) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	_, err := t.run(ctx, fmt.Sprintf("delete table inet %s\n", t.cfg.Table))
	return err
}

var handleRE = regexp.MustCompile(`# handle (\d+)`)

// AddSecured marks the outbound traffic of an established SA's selector,
// so that it goes into the data plane even where no negotiate rule would
// send it (the default response rule's SAs). Adding one twice is a no-op.
func (t *Table) AddSecured(ctx context.Context, sel sadb.Selector) error {
	key, rule := SecuredRule(sel, t.cfg.Mark)
	t.mu.Lock()
	defer t.mu.Unlock()
	if _, ok := t.dynamic[key]; ok {
		return nil
	}
	out, err := t.run(ctx, fmt.Sprintf("add rule inet %s dynamic_out %s\n", t.cfg.Table, rule), "--echo", "--handle")
	if err != nil {
		return err
	}
	m := handleRE.FindStringSubmatch(out)
	if m == nil {
		return fmt.Errorf("nft: no rule handle in %q", out)
	}
	h, _ := strconv.Atoi(m[1])
	t.dynamic[key] = h
	return nil
}

// RemoveSecured removes the rule AddSecured added for sel; a missing one
// is a no-op.
func (t *Table) RemoveSecured(ctx context.Context, sel sadb.Selector) error {
	key := sel.String()
	t.mu.Lock()
	defer t.mu.Unlock()
	h, ok := t.dynamic[key]
	if !ok {
		return nil
	}
	delete(t.dynamic, key)
	_, err := t.run(ctx, fmt.Sprintf("delete rule inet %s dynamic_out handle %d\n", t.cfg.Table, h))
	return err
}

// SecuredKeys returns the selectors (as strings) of the SA rules in place.
func (t *Table) SecuredKeys() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	keys := make([]string, 0, len(t.dynamic))
	for k := range t.dynamic {
		keys = append(keys, k)
	}
	return keys
}

// AllowClear lets traffic with peer flow in clear for ttl (a fallback to
// clear: the peer does not speak IKE); the kernel forgets it afterwards,
// and the next packet negotiates again.
func (t *Table) AllowClear(ctx context.Context, peer netip.Addr, ttl time.Duration) error {
	set := "clear6"
	if peer.Is4() {
		set = "clear4"
	}
	secs := max(1, int(ttl.Round(time.Second)/time.Second))
	_, err := t.run(ctx, fmt.Sprintf("add element inet %s %s { %s timeout %ds }\n", t.cfg.Table, set, peer, secs))
	return err
}

// EndClear stops the clear fallback with peer (its SA came up).
func (t *Table) EndClear(ctx context.Context, peer netip.Addr) error {
	set := "clear6"
	if peer.Is4() {
		set = "clear4"
	}
	_, err := t.run(ctx, fmt.Sprintf("delete element inet %s %s { %s }\n", t.cfg.Table, set, peer))
	if err != nil && strings.Contains(err.Error(), "No such file or directory") {
		return nil // not in the set, or timed out already
	}
	return err
}

// CounterValues reads the outcome counters: packets by name.
func (t *Table) CounterValues(ctx context.Context) (map[string]uint64, error) {
	out, err := t.run(ctx, "", "-j", "list", "counters", "table", "inet", t.cfg.Table)
	if err != nil {
		return nil, err
	}
	return parseCounters(out)
}

func parseCounters(out string) (map[string]uint64, error) {
	var doc struct {
		Nftables []struct {
			Counter *struct {
				Name    string `json:"name"`
				Packets uint64 `json:"packets"`
			} `json:"counter"`
		} `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, fmt.Errorf("nft: reading counters: %w", err)
	}
	m := map[string]uint64{}
	for _, o := range doc.Nftables {
		if o.Counter != nil {
			m[o.Counter.Name] = o.Counter.Packets
		}
	}
	return m, nil
}
