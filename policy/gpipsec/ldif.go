package gpipsec

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"slices"
	"sort"
	"strings"
	"unicode/utf8"
)

// ReadLDIF reads the IPsec policy objects of an LDIF file (RFC 2849:
// "attr: value", "attr:: base64", folded lines; add records, and modify
// records whose add/replace/delete operations apply to an object read
// before, as MS-GPIPSEC creates a policy: objects first, references after);
// records of other classes are skipped. subst replaces ${NAME}
// placeholders, as in Samba's provision.ldif.
func ReadLDIF(r io.Reader, subst map[string]string) ([]*Object, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	type entry struct {
		dn    string
		attrs map[string][][]byte
	}
	var order []*entry
	byDN := map[string]*entry{}
	var lines []string
	lineNo, start := 0, 0
	value := func(k, v string) ([]byte, bool, error) {
		if strings.HasPrefix(v, ":") {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[1:]))
			if err != nil {
				if !slices.ContainsFunc(Attributes, func(a string) bool { return strings.EqualFold(a, k) }) && !strings.EqualFold(k, "dn") {
					return nil, false, nil // an attribute iked does not read (Samba's templates hold placeholders)
				}
				return nil, false, fmt.Errorf("line %d: %s: bad base64: %v", start, k, err)
			}
			return b, true, nil
		}
		s := strings.TrimPrefix(v, " ")
		for name, rep := range subst {
			s = strings.ReplaceAll(s, "${"+name+"}", rep)
		}
		return []byte(s), true, nil
	}
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		rec := lines
		lines = nil
		k, v, ok := strings.Cut(rec[0], ":")
		if !ok || !strings.EqualFold(k, "dn") {
			return fmt.Errorf("line %d: a record must start with dn", start)
		}
		dnb, _, err := value(k, v)
		if err != nil {
			return err
		}
		dn := string(dnb)
		rec = rec[1:]
		change := "add"
		if len(rec) > 0 {
			if k, v, _ := strings.Cut(rec[0], ":"); strings.EqualFold(k, "changetype") {
				change = strings.TrimSpace(v)
				rec = rec[1:]
			}
		}
		e := byDN[NormalizeDN(dn)]
		switch change {
		case "add":
			if e != nil {
				return fmt.Errorf("line %d: %s is added twice", start, dn)
			}
			e = &entry{dn: dn, attrs: map[string][][]byte{}}
			byDN[NormalizeDN(dn)] = e
			order = append(order, e)
			for _, l := range rec {
				k, v, ok := strings.Cut(l, ":")
				if !ok {
					return fmt.Errorf("line %d: %q is not \"attribute: value\"", start, l)
				}
				if val, keep, err := value(k, v); err != nil {
					return err
				} else if keep {
					e.attrs[strings.ToLower(k)] = append(e.attrs[strings.ToLower(k)], val)
				}
			}
		case "modify":
			if e == nil {
				return nil // an object this file did not add
			}
			var op, attr string
			for _, l := range rec {
				if l == "-" {
					op = ""
					continue
				}
				k, v, ok := strings.Cut(l, ":")
				if !ok {
					return fmt.Errorf("line %d: %q is not \"attribute: value\"", start, l)
				}
				k = strings.ToLower(k)
				if op == "" {
					op, attr = k, strings.ToLower(strings.TrimSpace(v))
					if op == "replace" || op == "delete" {
						delete(e.attrs, attr)
					}
					continue
				}
				if k != attr {
					return fmt.Errorf("line %d: %s: a value of %s in an operation on %s", start, dn, k, attr)
				}
				if op == "delete" {
					continue
				}
				if val, keep, err := value(k, v); err != nil {
					return err
				} else if keep {
					e.attrs[k] = append(e.attrs[k], val)
				}
			}
		}
		return nil
	}
	for sc.Scan() {
		lineNo++
		l := sc.Text()
		switch {
		case strings.HasPrefix(l, "#"):
		case l == "":
			if err := flush(); err != nil {
				return nil, err
			}
		case strings.HasPrefix(l, " "):
			if len(lines) == 0 {
				return nil, fmt.Errorf("line %d: a continuation line with nothing to continue", lineNo)
			}
			lines[len(lines)-1] += l[1:]
		default:
			if len(lines) == 0 {
				start = lineNo
			}
			lines = append(lines, l)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if err := flush(); err != nil {
		return nil, err
	}
	var objs []*Object
	for _, e := range order {
		o, err := NewObject(e.dn, func(a string) [][]byte { return e.attrs[strings.ToLower(a)] })
		if err != nil {
			continue // not an IPsec object
		}
		objs = append(objs, o)
	}
	return objs, nil
}

// WriteLDIF writes objects as MS-GPIPSEC creates a policy (§2.2.1):
// every object added without its references, then modify records that set
// the references, so that a directory which checks that referenced
// objects exist (Active Directory, Samba) takes them with ldifde, ldapadd
// or ldbmodify.
func WriteLDIF(w io.Writer, objs []*Object) error {
	bw := bufio.NewWriter(w)
	attr := func(k, v string) {
		if v == "" {
			return
		}
		if needsBase64(v) {
			fmt.Fprintf(bw, "%s:: %s\n", k, base64.StdEncoding.EncodeToString([]byte(v)))
			return
		}
		fmt.Fprintf(bw, "%s: %s\n", k, v)
	}
	for _, o := range objs {
		fmt.Fprintf(bw, "dn: %s\nchangetype: add\n", o.DN)
		fmt.Fprintf(bw, "objectClass: top\nobjectClass: ipsecBase\nobjectClass: %s\n", o.Class)
		attr("ipsecName", o.Name)
		attr("description", o.Description)
		attr("ipsecID", o.ID)
		attr("ipsecDataType", o.DataType)
		if len(o.Data) > 0 {
			fmt.Fprintf(bw, "ipsecData:: %s\n", base64.StdEncoding.EncodeToString(o.Data))
		}
		attr("iPSECNegotiationPolicyType", o.NegotiationType)
		attr("iPSECNegotiationPolicyAction", o.NegotiationAction)
		fmt.Fprintln(bw)
	}
	for _, o := range objs {
		owners := append([]string(nil), o.OwnersRefs...)
		sort.Strings(owners)
		refs := []struct {
			name string
			vals []string
		}{
			{"ipsecISAKMPReference", nonEmpty(o.ISAKMPRef)},
			{"ipsecNFAReference", o.NFARefs},
			{"ipsecFilterReference", o.FilterRefs},
			{"ipsecNegotiationPolicyReference", nonEmpty(o.NegotiationRef)},
			{"ipsecOwnersReference", owners},
		}
		first := true
		for _, r := range refs {
			if len(r.vals) == 0 {
				continue
			}
			if first {
				fmt.Fprintf(bw, "dn: %s\nchangetype: modify\n", o.DN)
				first = false
			}
			fmt.Fprintf(bw, "replace: %s\n", r.name)
			for _, v := range r.vals {
				attr(r.name, v)
			}
			fmt.Fprintln(bw, "-")
		}
		if !first {
			fmt.Fprintln(bw)
		}
	}
	return bw.Flush()
}

func nonEmpty(s string) []string {
	if s == "" {
		return nil
	}
	return []string{s}
}

// needsBase64 is RFC 2849's SAFE-STRING test.
func needsBase64(s string) bool {
	if !utf8.ValidString(s) || s[0] == ' ' || s[0] == ':' || s[0] == '<' || s[len(s)-1] == ' ' {
		return true
	}
	for _, c := range s {
		if c == 0 || c == '\n' || c == '\r' || c > 126 {
			return true
		}
	}
	return false
}
