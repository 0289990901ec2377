package interop

import (
	"encoding/hex"
	"encoding/xml"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/chacha20poly1305"
)

// This file proves on the wire that iked and charon derived the same keys:
// the capture is decoded by tshark with iked's key log, and every IKEv2
// message that carries an Encrypted (SK) payload must decrypt with an
// intact integrity check. Messages sent by charon decrypt only with keys
// equal to charon's, so a passing check means both sides agree on SK_e
// and SK_a in both directions, independently of what either daemon
// reports about itself.
//
// tshark 4.0 has no ChaCha20-Poly1305 in its IKEv2 decryption table (it
// refuses the key log line with "invalid value"). For such SAs the check
// decrypts the captured SK payloads itself (RFC 7634, with
// golang.org/x/crypto) using the logged keys; the report says so.

// tsharkNoChaCha is the reason tshark 4.0 gives for a ChaCha20-Poly1305
// line of the IKEv2 decryption table.
const tsharkNoChaCha = "invalid value: CHACHA20-POLY1305 [RFC7634]"

// droppedPref is a key log line tshark refused, with tshark's reason.
type droppedPref struct {
	Pref   string
	Reason string
}

// tsharkPrefs runs tshark like tshark, but when tshark refuses one of the
// -o preferences it drops that one and tries again; it returns the
// preferences it dropped and why.
func (c *capture) tsharkPrefs(prefs []string, args ...string) (string, []droppedPref, error) {
	prefs = append([]string(nil), prefs...)
	var dropped []droppedPref
	for {
		out, err := c.tshark(prefs, args...)
		if err == nil {
			return out, dropped, nil
		}
		msg := err.Error()
		bad := -1
		for i, p := range prefs {
			if strings.Contains(msg, `Invalid -o flag "`+p+`"`) {
				bad = i
				break
			}
		}
		if bad < 0 {
			return out, dropped, err
		}
		// tshark: Invalid -o flag "PREF": TABLE:LINE: REASON
		marker := `Invalid -o flag "` + prefs[bad] + `"`
		reason := msg[strings.Index(msg, marker)+len(marker):]
		reason = strings.TrimSpace(strings.TrimPrefix(reason, ":"))
		if table, r, ok := strings.Cut(reason, ": "); ok && !strings.Contains(table, " ") {
			reason = r
		}
		dropped = append(dropped, droppedPref{Pref: prefs[bad], Reason: reason})
		prefs = append(prefs[:bad], prefs[bad+1:]...)
	}
}

// loggedIKESA is one ikev2_decryption_table line of iked's key log.
type loggedIKESA struct {
	SPIi, SPIr string // 16 hex digits
	SKei, SKer []byte
	Encr       string // Wireshark's name, e.g. "AES-CBC-256 [RFC3602]"
	SKai, SKar []byte
	Integ      string // "NONE [RFC4306]" for AEAD
	Line       string
}

// parseKeyLogIKE returns the IKE SA lines of a key log, by SPIi+SPIr.
func parseKeyLogIKE(prefs []string) (map[string]loggedIKESA, error) {
	sas := map[string]loggedIKESA{}
	for _, p := range prefs {
		rest, ok := strings.CutPrefix(p, "uat:ikev2_decryption_table:")
		if !ok {
			continue
		}
		f := strings.Split(rest, ",")
		if len(f) != 8 {
			return nil, fmt.Errorf("key log line with %d fields, want 8: %s", len(f), p)
		}
		unq := func(s string) string {
			if u, err := strconv.Unquote(s); err == nil {
				return u
			}
			return s
		}
		var keys [4][]byte
		for i, idx := range []int{2, 3, 5, 6} {
			b, err := hex.DecodeString(f[idx])
			if err != nil {
				return nil, fmt.Errorf("key log field %d: %v: %s", idx+1, err, p)
			}
			keys[i] = b
		}
		sa := loggedIKESA{SPIi: strings.ToLower(f[0]), SPIr: strings.ToLower(f[1]), SKei: keys[0], SKer: keys[1], Encr: unq(f[4]),
			SKai: keys[2], SKar: keys[3], Integ: unq(f[7]), Line: p}
		sas[sa.SPIi+sa.SPIr] = sa
	}
	return sas, nil
}

// pdmlField is a field of tshark's PDML output; protocols are fields too.
type pdmlField struct {
	Name     string      `xml:"name,attr"`
	ShowName string      `xml:"showname,attr"`
	Show     string      `xml:"show,attr"`
	Value    string      `xml:"value,attr"`
	Fields   []pdmlField `xml:"field"`
	Protos   []pdmlField `xml:"proto"`
}

type pdmlPacket struct {
	Protos []pdmlField `xml:"proto"`
}

type pdmlDoc struct {
	Packets []pdmlPacket `xml:"packet"`
}

// ikeFrame is what the wire check needs of one captured IKE message.
type ikeFrame struct {
	Num        int
	Src        string // source IP address
	Exchange   string // e.g. IKE_AUTH
	ExchNum    string // the exchange type's number, e.g. "43" (IKE_INTERMEDIATE)
	Response   bool
	Initiator  bool // sent by the original initiator (I flag)
	MsgID      string
	SPIi, SPIr string
	Payloads   []string // top-level payload types in order (numbers; SA substructures left out)
	SK         bool     // carries an Encrypted payload (SK, or SKF for a fragment)
	SKF        bool     // carries an Encrypted Fragment payload (RFC 7383)
	AuthMethod string   // AUTH method inside SK, e.g. "14"
	CertReqCAs []string // CERTREQ certification authorities (SHA-1 of the SPKI, hex)
	Decrypted  bool     // tshark shows isakmp.enc.decrypted
	ICD        []string // shownames of isakmp.enc.icd
	BadICD     bool     // expert isakmp.ikev2.integrity_checksum
	Experts    []string // tshark's expert infos, e.g. "Expert Info (Error/Malformed): ..."
	Inner      []string // payload types tshark found inside SK (numbers)
	Notifies   []string // notify message types, outside and inside SK
	Payload    []byte   // UDP payload
}

func (f ikeFrame) String() string {
	dir := "request"
	if f.Response {
		dir = "response"
	}
	return fmt.Sprintf("#%d %s %s MID=%s", f.Num, f.Exchange, dir, f.MsgID)
}

// walk calls fn for every field below fs, depth first.
func walk(fs []pdmlField, fn func(pdmlField)) {
	for _, f := range fs {
		fn(f)
		walk(f.Fields, fn)
		walk(f.Protos, fn)
	}
}

// ikeFrames decodes the capture's IKE messages with prefs.
func ikeFrames(c *capture, prefs []string) ([]ikeFrame, []droppedPref, error) {
	out, dropped, err := c.tsharkPrefs(prefs, "-T", "pdml", "-Y", "isakmp")
	if err != nil {
		return nil, dropped, err
	}
	var doc pdmlDoc
	if err := xml.Unmarshal([]byte(out), &doc); err != nil {
		return nil, dropped, fmt.Errorf("parsing tshark PDML: %v", err)
	}
	var frames []ikeFrame
	for _, p := range doc.Packets {
		var fr ikeFrame
		inSK := false
		walk(p.Protos, func(f pdmlField) {
			switch f.Name {
			case "frame.number":
				fr.Num, _ = strconv.Atoi(f.Show)
			case "ip.src":
				fr.Src = f.Show
			case "udp.payload":
				fr.Payload, _ = hex.DecodeString(f.Value)
			case "isakmp.exchangetype":
				fr.ExchNum = f.Show
				fr.Exchange = f.ShowName
				if _, v, ok := strings.Cut(f.ShowName, ": "); ok {
					fr.Exchange, _, _ = strings.Cut(v, " (")
				}
			case "isakmp.flag_r":
				fr.Response = f.Show == "1" || f.Show == "True"
			case "isakmp.flag_i":
				fr.Initiator = f.Show == "1" || f.Show == "True"
			case "isakmp.messageid":
				fr.MsgID = f.Show
			case "isakmp.ispi":
				fr.SPIi = strings.ToLower(strings.ReplaceAll(f.Show, ":", ""))
			case "isakmp.rspi":
				fr.SPIr = strings.ToLower(strings.ReplaceAll(f.Show, ":", ""))
			case "isakmp.typepayload":
				switch {
				case f.Show == "2" || f.Show == "3": // proposal, transform
				case inSK:
					fr.Inner = append(fr.Inner, f.Show)
				default:
					fr.Payloads = append(fr.Payloads, f.Show)
					fr.SK = fr.SK || f.Show == "46" || f.Show == "53"
					fr.SKF = fr.SKF || f.Show == "53"
				}
			case "isakmp.ike.certreq.authority":
				fr.CertReqCAs = append(fr.CertReqCAs, f.Value)
			case "isakmp.auth.method":
				fr.AuthMethod = f.Show
			case "isakmp.notify.msgtype":
				fr.Notifies = append(fr.Notifies, f.Show)
			case "isakmp.enc.decrypted":
				fr.Decrypted, inSK = true, true
			case "isakmp.enc.icd":
				fr.ICD = append(fr.ICD, f.ShowName)
			case "isakmp.ikev2.integrity_checksum":
				fr.BadICD = true
			case "_ws.expert":
				fr.Experts = append(fr.Experts, f.ShowName)
			}
		})
		frames = append(frames, fr)
	}
	return frames, dropped, nil
}

// wireProof is the outcome of checkWireDecrypts.
type wireProof struct {
	SKMessages int    // IKE messages with an SK payload
	Via        string // "tshark" or "Go ChaCha20-Poly1305 (tshark 4.0 lacks it)"
	// Frames are all captured IKE messages, SK contents decoded by tshark
	// (not for ChaCha20-Poly1305).
	Frames []ikeFrame
}

// checkWireDecrypts asserts that every IKEv2 message of the capture that
// carries an SK payload (all messages after IKE_SA_INIT) decrypts with
// iked's key log and passes its integrity check: tshark shows the
// decrypted payloads, reports no incorrect ICD, for CBC with HMAC marks
// the ICD [correct], and finds the plaintext well-formed (no malformed or
// error expert info: with CBC a wrong SK_e is only visible there). The IKE_AUTH request and response must be among
// them. It fails with the decrypted capture summary when not. SAs whose
// cipher tshark cannot decrypt (ChaCha20-Poly1305 in tshark 4.0) are
// decrypted here instead; tshark's refusal is asserted to be exactly that.
func checkWireDecrypts(t *testing.T, c *capture, d *iked) wireProof {
	t.Helper()
	requireTools(t, "tshark")
	prefs := d.KeyLogPrefs()
	sas, err := parseKeyLogIKE(prefs)
	if err != nil {
		t.Fatal(err)
	}
	if len(sas) == 0 {
		t.Fatalf("iked's key log has no IKE SA line:\n%s", d.KeyLog())
	}
	frames, dropped, err := ikeFrames(c, prefs)
	if err != nil {
		t.Fatalf("decoding the capture: %v", err)
	}
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf("wire check: "+format+"\nkey log:\n%s\ncapture (decrypted with iked's key log):\n%s",
			append(args, d.KeyLog(), c.Summary(usablePrefs(prefs, dropped)))...)
	}
	// Lines tshark refused: for IKE only the known ChaCha20-Poly1305 gap
	// is acceptable; ESP lines are not needed (no ESP is sent).
	goDecrypt := map[string]bool{}
	for _, dp := range dropped {
		if !strings.HasPrefix(dp.Pref, "uat:ikev2_decryption_table:") {
			t.Logf("tshark refused an ESP key log line (ESP is not checked): %s", dp.Reason)
			continue
		}
		if !strings.Contains(dp.Reason, tsharkNoChaCha) {
			fail("tshark refused iked's key log line %s: %s", dp.Pref, dp.Reason)
		}
		for k, sa := range sas {
			if sa.Line == dp.Pref {
				goDecrypt[k] = true
			}
		}
	}
	proof := wireProof{Via: "tshark", Frames: frames}
	var authReq, authResp bool
	for _, f := range frames {
		if !f.SK {
			if f.Exchange != "IKE_SA_INIT" {
				fail("%s carries no SK payload", f)
			}
			continue
		}
		proof.SKMessages++
		sa, ok := sas[f.SPIi+f.SPIr]
		if !ok {
			fail("%s: no key logged for SPIs %s_i %s_r", f, f.SPIi, f.SPIr)
		}
		if goDecrypt[f.SPIi+f.SPIr] {
			proof.Via = "Go ChaCha20-Poly1305 (tshark 4.0: " + tsharkNoChaCha + ")"
			if err := openChaChaSK(f, sa); err != nil {
				fail("%s: %v", f, err)
			}
		} else {
			if !f.Decrypted {
				fail("%s was not decrypted by tshark with iked's keys (%s)", f, sa.Encr)
			}
			if f.BadICD {
				fail("%s: tshark reports an incorrect integrity checksum (%s / %s)", f, sa.Encr, sa.Integ)
			}
			// With CBC and HMAC a wrong SK_e still passes the ICD
			// (it covers the ciphertext); the plaintext then does not
			// parse as payloads.
			for _, x := range f.Experts {
				if strings.Contains(x, "/Malformed)") || strings.HasPrefix(x, "Expert Info (Error/") {
					fail("%s: decrypted with iked's keys (%s), tshark reports %q", f, sa.Encr, x)
				}
			}
			if sa.Integ != "NONE [RFC4306]" {
				if len(f.ICD) == 0 || !strings.Contains(f.ICD[0], "[correct]") {
					fail("%s: ICD not shown correct (%s): %q", f, sa.Integ, f.ICD)
				}
			}
		}
		if f.Exchange == "IKE_AUTH" && f.Response {
			authResp = true
		} else if f.Exchange == "IKE_AUTH" {
			authReq = true
		}
	}
	if !authReq || !authResp {
		fail("IKE_AUTH request seen %v, response seen %v", authReq, authResp)
	}
	t.Logf("wire check: %d SK messages decrypted with iked's key log via %s", proof.SKMessages, proof.Via)
	return proof
}

// usablePrefs is prefs without the dropped ones.
func usablePrefs(prefs []string, dropped []droppedPref) []string {
	var out []string
	for _, p := range prefs {
		keep := true
		for _, dp := range dropped {
			if dp.Pref == p {
				keep = false
			}
		}
		if keep {
			out = append(out, p)
		}
	}
	return out
}

// openChaChaSK decrypts the SK payload of a captured IKEv2 message with
// ChaCha20-Poly1305 (RFC 7634): key and salt from the logged SK_e of the
// sender, nonce salt||IV, associated data from the IKE header through the
// SK payload's generic header (RFC 5282 §5.1).
func openChaChaSK(f ikeFrame, sa loggedIKESA) error {
	msg := f.Payload
	// A non-ESP marker precedes IKE on port 4500.
	if len(msg) >= 4 && msg[0] == 0 && msg[1] == 0 && msg[2] == 0 && msg[3] == 0 {
		msg = msg[4:]
	}
	if len(msg) < 28 {
		return fmt.Errorf("IKE message of %d octets", len(msg))
	}
	next, off := msg[16], 28
	for next != 46 {
		if off+4 > len(msg) || next == 0 {
			return fmt.Errorf("no SK payload in the message")
		}
		next = msg[off]
		off += int(msg[off+2])<<8 | int(msg[off+3])
	}
	if off+4 > len(msg) {
		return fmt.Errorf("truncated SK payload")
	}
	plen := int(msg[off+2])<<8 | int(msg[off+3])
	if off+plen > len(msg) || plen < 4+8+16 {
		return fmt.Errorf("SK payload length %d", plen)
	}
	key := sa.SKer
	if f.Initiator {
		key = sa.SKei
	}
	if len(key) != 36 {
		return fmt.Errorf("logged SK_e is %d octets, want 36 (key and salt)", len(key))
	}
	aead, err := chacha20poly1305.New(key[:32])
	if err != nil {
		return err
	}
	nonce := append(append([]byte(nil), key[32:]...), msg[off+4:off+12]...)
	if _, err := aead.Open(nil, nonce, msg[off+12:off+plen], msg[:off+4]); err != nil {
		return fmt.Errorf("ChaCha20-Poly1305 with the logged keys: %v (integrity check failed)", err)
	}
	return nil
}
