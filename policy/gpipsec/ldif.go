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

// ReadLDIF reads the IPsec policy objects of an LDIF file (RFC 2849
// content records: "attr: value", "attr:: base64", folded lines); records
// of other classes are skipped. subst replaces ${NAME} placeholders, as in
// Samba's provision.ldif.
func ReadLDIF(r io.Reader, subst map[string]string) ([]*Object, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<24)
	var objs []*Object
	var lines []string
	lineNo, start := 0, 0
	flush := func() error {
		if len(lines) == 0 {
			return nil
		}
		attrs := map[string][][]byte{}
		var dn string
		for _, l := range lines {
			k, v, ok := strings.Cut(l, ":")
			if !ok {
				return fmt.Errorf("line %d: %q is not \"attribute: value\"", start, l)
			}
			var val []byte
			if strings.HasPrefix(v, ":") {
				b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(v[1:]))
				if err != nil {
					if !slices.ContainsFunc(Attributes, func(a string) bool { return strings.EqualFold(a, k) }) && !strings.EqualFold(k, "dn") {
						continue // an attribute iked does not read (Samba's templates hold placeholders)
					}
					return fmt.Errorf("line %d: %s: bad base64: %v", start, k, err)
				}
				val = b
			} else {
				s := strings.TrimPrefix(v, " ")
				for name, rep := range subst {
					s = strings.ReplaceAll(s, "${"+name+"}", rep)
				}
				val = []byte(s)
			}
			if strings.EqualFold(k, "dn") {
				dn = string(val)
				continue
			}
			k = strings.ToLower(k)
			attrs[k] = append(attrs[k], val)
		}
		lines = nil
		if dn == "" {
			return fmt.Errorf("line %d: a record without dn", start)
		}
		if _, ok := attrs["changetype"]; ok {
			return nil
		}
		o, err := NewObject(dn, func(a string) [][]byte { return attrs[strings.ToLower(a)] })
		if err != nil {
			return nil // not an IPsec object
		}
		objs = append(objs, o)
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
	return objs, nil
}

// WriteLDIF writes objects as LDIF add records, the objects a Windows
// administrator (or ldbadd/ldapadd) imports into CN=IP Security.
func WriteLDIF(w io.Writer, objs []*Object) error {
	bw := bufio.NewWriter(w)
	for _, o := range objs {
		fmt.Fprintf(bw, "dn: %s\n", o.DN)
		fmt.Fprintf(bw, "objectClass: top\nobjectClass: ipsecBase\nobjectClass: %s\n", o.Class)
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
		attr("ipsecName", o.Name)
		attr("description", o.Description)
		attr("ipsecID", o.ID)
		attr("ipsecDataType", o.DataType)
		if len(o.Data) > 0 {
			fmt.Fprintf(bw, "ipsecData:: %s\n", base64.StdEncoding.EncodeToString(o.Data))
		}
		attr("ipsecISAKMPReference", o.ISAKMPRef)
		for _, v := range o.NFARefs {
			attr("ipsecNFAReference", v)
		}
		for _, v := range o.FilterRefs {
			attr("ipsecFilterReference", v)
		}
		attr("ipsecNegotiationPolicyReference", o.NegotiationRef)
		owners := append([]string(nil), o.OwnersRefs...)
		sort.Strings(owners)
		for _, v := range owners {
			attr("ipsecOwnersReference", v)
		}
		attr("iPSECNegotiationPolicyType", o.NegotiationType)
		attr("iPSECNegotiationPolicyAction", o.NegotiationAction)
		fmt.Fprintln(bw)
	}
	return bw.Flush()
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
