package interop

import (
	"strings"
	"testing"
)

// The wire proof of a hybrid IKE SA. Its keys change after every
// IKE_INTERMEDIATE key exchange (RFC 9370 §2.2.2) while its SPIs stay, so
// iked's key log has one ikev2_decryption_table line per key generation
// of one SPI pair, in order. tshark 4.0 keys that table by the SPIs and
// uses one entry per pair, so one pass decrypts one generation: the check
// runs tshark once per generation, with that generation's line for each
// SPI pair (a pair with fewer generations keeps its last), and asserts
// that every SK message decrypts, with an intact integrity check, in
// exactly the generation the protocol puts it in: the IKE_INTERMEDIATE
// exchange that carries additional key exchange k under generation k-1,
// IKE_AUTH and everything after under the last. A message charon sent
// decrypts only with keys equal to charon's.

// exchange type numbers.
const (
	exchIKEAuth         = "35"
	exchCreateChildSA   = "36"
	exchIKEIntermediate = "43"
	exchIKEFollowupKE   = "44"
)

// keyGenerations groups the key log's IKE lines by SPI pair, in order.
func keyGenerations(prefs []string) (map[string][]string, []string) {
	gens := map[string][]string{}
	var other []string
	for _, p := range prefs {
		rest, ok := strings.CutPrefix(p, "uat:ikev2_decryption_table:")
		if !ok {
			other = append(other, p)
			continue
		}
		f := strings.SplitN(rest, ",", 3)
		if len(f) < 3 {
			continue
		}
		k := strings.ToLower(f[0] + f[1])
		gens[k] = append(gens[k], p)
	}
	return gens, other
}

// pqWireProof is what checkWireGenerations found.
type pqWireProof struct {
	SKMessages    int
	Generations   int            // the most key generations of one SPI pair
	ByExchange    map[string]int // SK messages per exchange type number
	Intermediates int            // IKE_INTERMEDIATE messages
	FollowupKEs   int            // IKE_FOLLOWUP_KE messages
}

// checkWireGenerations asserts that every IKEv2 message with an SK payload
// in the capture decrypts with iked's key log, as described above, and
// returns what it saw.
func checkWireGenerations(t *testing.T, c *capture, d *iked) pqWireProof {
	t.Helper()
	requireTools(t, "tshark")
	prefs := d.KeyLogPrefs()
	gens, other := keyGenerations(prefs)
	if len(gens) == 0 {
		t.Fatalf("iked's key log has no IKE SA line:\n%s", d.KeyLog())
	}
	maxGen := 0
	for _, g := range gens {
		maxGen = max(maxGen, len(g))
	}
	// decrypted[frame number] = the generations it decrypts in.
	decrypted := map[int][]int{}
	var frames []ikeFrame
	for g := range maxGen {
		set := append([]string(nil), other...)
		for _, lines := range gens {
			set = append(set, lines[min(g, len(lines)-1)])
		}
		fs, dropped, err := ikeFrames(c, set)
		if err != nil {
			t.Fatalf("decoding the capture with key generation %d: %v", g, err)
		}
		for _, dp := range dropped {
			if strings.HasPrefix(dp.Pref, "uat:ikev2_decryption_table:") {
				t.Fatalf("tshark refused iked's key log line %s: %s", dp.Pref, dp.Reason)
			}
		}
		if g == 0 {
			frames = fs
		}
		for _, f := range fs {
			if !f.SK || !f.Decrypted || f.BadICD {
				continue
			}
			bad := false
			for _, x := range f.Experts {
				if strings.Contains(x, "/Malformed)") || strings.HasPrefix(x, "Expert Info (Error/") {
					bad = true
				}
			}
			if !bad {
				decrypted[f.Num] = append(decrypted[f.Num], g)
			}
		}
	}
	proof := pqWireProof{Generations: maxGen, ByExchange: map[string]int{}}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("wire check: "+format+"\nkey log:\n%s\ncapture (last key generation):\n%s", append(args, d.KeyLog(), c.Summary(prefs))...)
	}
	// The IKE_INTERMEDIATE exchanges of one IKE SA, in order: the k-th
	// request and its response (fragments alike) carry generation k-1.
	interSeen := map[string]map[string]int{} // SPI pair -> message ID -> exchange index
	for _, f := range frames {
		if !f.SK {
			if f.Exchange != "IKE_SA_INIT" {
				fail("%s carries no SK payload", f)
			}
			continue
		}
		proof.SKMessages++
		proof.ByExchange[f.ExchNum]++
		pair := f.SPIi + f.SPIr
		got := decrypted[f.Num]
		if len(got) == 0 {
			fail("%s (SPIs %s_i %s_r) decrypts with no key generation of iked's key log", f, f.SPIi, f.SPIr)
		}
		last := len(gens[pair]) - 1
		want := last
		switch f.ExchNum {
		case exchIKEIntermediate:
			proof.Intermediates++
			m := interSeen[pair]
			if m == nil {
				m = map[string]int{}
				interSeen[pair] = m
			}
			if _, ok := m[f.MsgID]; !ok {
				m[f.MsgID] = len(m)
			}
			want = m[f.MsgID]
		case exchIKEFollowupKE:
			proof.FollowupKEs++
		}
		if !containsInt(got, want) && !(want >= last && containsInt(got, last)) {
			fail("%s decrypts with key generation(s) %v of SPIs %s_i %s_r, want %d of %d", f, got, f.SPIi, f.SPIr, want, last+1)
		}
	}
	if proof.ByExchange[exchIKEAuth] < 2 {
		fail("IKE_AUTH request and response not both seen (%v)", proof.ByExchange)
	}
	// What the documented one-pass use of the whole key log gives
	// (docs/keylog.md): tshark takes one line per SPI pair.
	if all, _, err := ikeFrames(c, prefs); err == nil {
		n := 0
		var which []string
		for _, f := range all {
			if f.SK && f.Decrypted && !f.BadICD {
				n++
				which = append(which, f.Exchange+"/"+f.ExchNum)
			}
		}
		t.Logf("with the whole key log in one pass tshark decrypts %d of the %d SK messages: %v", n, proof.SKMessages, which)
	}
	t.Logf("wire check: %d SK messages decrypted by tshark with iked's key log (%d key generations of one SPI pair at most, one tshark pass each): %d IKE_INTERMEDIATE, %d IKE_FOLLOWUP_KE, by exchange %v",
		proof.SKMessages, proof.Generations, proof.Intermediates, proof.FollowupKEs, proof.ByExchange)
	return proof
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}
