package gpipsec

import (
	"errors"
	"fmt"
	"strings"
)

// Directory is the set of IPsec policy objects read from a domain's
// CN=IP Security container (or an LDIF file).
type Directory struct {
	byDN  map[string]*Object
	order []*Object
}

// NewDirectory indexes objects by DN; a DN twice is refused.
func NewDirectory(objs []*Object) (*Directory, error) {
	d := &Directory{byDN: map[string]*Object{}}
	for _, o := range objs {
		k := NormalizeDN(o.DN)
		if _, dup := d.byDN[k]; dup {
			return nil, fmt.Errorf("%s: the object is listed twice", o.DN)
		}
		d.byDN[k] = o
		d.order = append(d.order, o)
	}
	return d, nil
}

// Objects returns the objects in the order given.
func (d *Directory) Objects() []*Object { return d.order }

// Object returns the object with the DN, or nil.
func (d *Directory) Object(dn string) *Object { return d.byDN[NormalizeDN(dn)] }

// Policies returns the ipsecPolicy objects.
func (d *Directory) Policies() []*Object {
	var out []*Object
	for _, o := range d.order {
		if o.Class == ClassPolicy {
			out = append(out, o)
		}
	}
	return out
}

// FindPolicy finds the ipsecPolicy object named by its DN, its ipsecID or
// its ipsecName (which must then be unique).
func (d *Directory) FindPolicy(ref string) (*Object, error) {
	if o := d.Object(ref); o != nil {
		if o.Class != ClassPolicy {
			return nil, fmt.Errorf("%s is an %s, not an ipsecPolicy", o.DN, o.Class)
		}
		return o, nil
	}
	var found []*Object
	for _, o := range d.Policies() {
		if o.Name == ref || strings.EqualFold(o.ID, ref) {
			found = append(found, o)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		var names []string
		for _, o := range d.Policies() {
			names = append(names, fmt.Sprintf("%q", o.Name))
		}
		return nil, fmt.Errorf("no IPsec policy %q in the directory (policies: %s)", ref, strings.Join(names, ", "))
	}
	return nil, fmt.Errorf("%d IPsec policies are named %q: name one by its DN", len(found), ref)
}

// Policy is an ipsecPolicy with everything it references, decoded.
type Policy struct {
	Object *Object
	Data   PolicyData
	ISAKMP *ISAKMP
	Rules  []*Rule
}

// ISAKMP is a decoded ipsecISAKMPPolicy.
type ISAKMP struct {
	Object *Object
	Data   ISAKMPData
}

// Rule is a decoded ipsecNFA with its filter action and filter lists.
type Rule struct {
	Object  *Object
	Data    NFAData
	Action  *Action
	Filters []*FilterList
}

// Action is a decoded ipsecNegotiationPolicy (a filter action).
type Action struct {
	Object *Object
	Data   NegotiationData
	// Type is TypeStandard or TypeDefaultResponse; Kind one of the
	// Action* GUIDs.
	Type, Kind GUID
}

// FilterList is a decoded ipsecFilter.
type FilterList struct {
	Object *Object
	Data   FilterData
}

// Resolve decodes the policy ref (DN, ipsecID or name) and every object it
// references. Every fault is an error naming the object's DN: a blob that
// does not decode, an unknown data type, version or action, a reference to
// an object that is not in the directory or not of the class expected.
func (d *Directory) Resolve(ref string) (*Policy, error) {
	po, err := d.FindPolicy(ref)
	if err != nil {
		return nil, err
	}
	p := &Policy{Object: po}
	if p.Data, err = decodeObject(po, DecodePolicy); err != nil {
		return nil, err
	}
	if po.ISAKMPRef == "" {
		return nil, po.errorf("no ipsecISAKMPReference (a policy must reference its ISAKMP policy)")
	}
	io, err := d.ref(po, "ipsecISAKMPReference", po.ISAKMPRef, ClassISAKMP)
	if err != nil {
		return nil, err
	}
	p.ISAKMP = &ISAKMP{Object: io}
	if p.ISAKMP.Data, err = decodeObject(io, DecodeISAKMP); err != nil {
		return nil, err
	}
	if len(po.NFARefs) == 0 {
		return nil, po.errorf("no ipsecNFAReference (a policy has at least one rule, the default response rule)")
	}
	var errs []error
	for _, ref := range po.NFARefs {
		r, err := d.rule(po, ref)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Rules = append(p.Rules, r)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return p, nil
}

func (d *Directory) ref(from *Object, attr, dn, class string) (*Object, error) {
	o := d.Object(dn)
	if o == nil {
		return nil, from.errorf("%s %s: no such object in the directory", attr, dn)
	}
	if o.Class != class {
		return nil, from.errorf("%s %s is an %s, not an %s", attr, dn, o.Class, class)
	}
	return o, nil
}

func (d *Directory) rule(po *Object, ref string) (*Rule, error) {
	no, err := d.ref(po, "ipsecNFAReference", ref, ClassNFA)
	if err != nil {
		return nil, err
	}
	r := &Rule{Object: no}
	if r.Data, err = decodeObject(no, DecodeNFA); err != nil {
		return nil, err
	}
	if no.NegotiationRef == "" {
		return nil, no.errorf("no ipsecNegotiationPolicyReference (a rule needs its filter action)")
	}
	ao, err := d.ref(no, "ipsecNegotiationPolicyReference", no.NegotiationRef, ClassNegotiation)
	if err != nil {
		return nil, err
	}
	a := &Action{Object: ao}
	if a.Data, err = decodeObject(ao, DecodeNegotiation); err != nil {
		return nil, err
	}
	if a.Type, err = ParseGUID(ao.NegotiationType); err != nil || (a.Type != TypeStandard && a.Type != TypeDefaultResponse) {
		return nil, ao.errorf("iPSECNegotiationPolicyType %q is unknown (want %s or %s)", ao.NegotiationType, TypeStandard, TypeDefaultResponse)
	}
	if a.Kind, err = ParseGUID(ao.NegotiationAction); err != nil || (a.Kind != ActionBlock && a.Kind != ActionPermit && a.Kind != ActionSecure && a.Kind != ActionPassThrough) {
		return nil, ao.errorf("iPSECNegotiationPolicyAction %q is unknown (block, permit, secure or inbound pass-through)", ao.NegotiationAction)
	}
	r.Action = a
	// The rule's filter lists: its ipsecFilterReference values, and, as
	// the spec says, the filters that name the rule as an owner.
	seen := map[string]bool{}
	add := func(fo *Object) error {
		k := NormalizeDN(fo.DN)
		if seen[k] {
			return nil
		}
		seen[k] = true
		fl := &FilterList{Object: fo}
		var err error
		fl.Data, err = decodeObject(fo, DecodeFilter)
		r.Filters = append(r.Filters, fl)
		return err
	}
	for _, fr := range no.FilterRefs {
		fo, err := d.ref(no, "ipsecFilterReference", fr, ClassFilter)
		if err != nil {
			return nil, err
		}
		if err := add(fo); err != nil {
			return nil, err
		}
	}
	for _, fo := range d.order {
		if fo.Class != ClassFilter {
			continue
		}
		for _, own := range fo.OwnersRefs {
			if NormalizeDN(own) == NormalizeDN(no.DN) {
				if err := add(fo); err != nil {
					return nil, err
				}
			}
		}
	}
	if a.Type == TypeDefaultResponse && len(r.Filters) > 0 {
		return nil, no.errorf("a default response rule has no filter list, this one has %d", len(r.Filters))
	}
	if a.Type == TypeStandard && len(r.Filters) == 0 {
		return nil, no.errorf("no ipsecFilterReference (a rule other than the default response rule needs a filter list)")
	}
	return r, nil
}

// decodeObject checks the object's header and decodes its blob, naming
// the object in any error.
func decodeObject[T any](o *Object, decode func([]byte) (T, error)) (T, error) {
	var zero T
	if err := o.checkHeader(); err != nil {
		return zero, err
	}
	v, err := decode(o.Data)
	if err != nil {
		return zero, &ObjectError{DN: o.DN, Err: err}
	}
	return v, nil
}

// DecodeAny decodes an object's blob by its class, for tools that show
// any object (ikectl, tests).
func DecodeAny(o *Object) (any, error) {
	switch o.Class {
	case ClassPolicy:
		return decodeObject(o, DecodePolicy)
	case ClassISAKMP:
		return decodeObject(o, DecodeISAKMP)
	case ClassNFA:
		return decodeObject(o, DecodeNFA)
	case ClassNegotiation:
		return decodeObject(o, DecodeNegotiation)
	case ClassFilter:
		return decodeObject(o, DecodeFilter)
	}
	return nil, o.errorf("unknown class %q", o.Class)
}
