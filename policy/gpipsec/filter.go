package gpipsec

import (
	"net/netip"
)

// FilterData is the ipsecData of an ipsecFilter object: a filter list
// (§2.2.1.5.1), in the legacy (IPv4) format every Windows reads and, from
// Windows Vista on, the version 2 format with IPv6, ranges and port
// ranges.
type FilterData struct {
	Legacy []LegacyFilter
	// V2 holds the version 2 filters; HasV2 says the blob has the V2
	// section (which may be empty).
	V2    []FilterV2
	HasV2 bool
}

// LegacyFilter is a Filter-Spec1.
type LegacyFilter struct {
	SrcDNS, DstDNS, Description string
	ID                          GUID
	Mirrored                    bool
	// Src, SrcMask, Dst and DstMask are IPv4 addresses and masks in
	// network byte order. Address 0 with mask 0 is any address; Windows
	// writes "My IP address" as address 0 with mask 255.255.255.255.
	Src, SrcMask, Dst, DstMask [4]byte
	Tunnel                     [4]byte
	Protocol                   uint32
	SrcPort, DstPort           uint16
	IsTunnel                   bool
	// Special is Legacy-Special-Filter: 0, or the DNS (1), WINS (2),
	// DHCP (3) or default gateway (4) server as source, 0x81..0x84 the
	// same as destination.
	Special uint8
}

// FilterV2 is a Filter-Spec2.
type FilterV2 struct {
	SrcDNS, DstDNS, Description string
	ID                          GUID
	Mirrored                    bool
	Src, Dst                    AddressSpec
	SrcPort, DstPort            PortSpec
	Protocol                    uint32
	Flags                       uint32
}

// Address types of a version 2 filter.
const (
	AddrAny     = 0x00
	AddrSingle  = 0x01
	AddrRange   = 0x02
	AddrSubnet  = 0x04
	AddrMe      = 0x08
	AddrDNS     = 0x10
	AddrWINS    = 0x20
	AddrDHCP    = 0x40
	AddrGateway = 0x80
)

// AddressSpec is a version 2 filter's source or destination.
type AddressSpec struct {
	Type uint32
	// Version is 1 (IPv4), 2 (IPv6) or 3 (both, for the "me" and special
	// types only).
	Version uint32
	// Addr is the address (single, range start, subnet); Secondary the
	// range end, or the subnet mask (IPv4) / prefix length (IPv6, first
	// byte).
	Addr, Secondary [16]byte
}

// PortSpec is a version 2 filter's port: Type 0 any, 1 one port, 2 a
// range Port..End.
type PortSpec struct {
	Type      uint32
	Port, End uint16
}

// DecodeFilter decodes an ipsecFilter blob.
func DecodeFilter(b []byte) (FilterData, error) {
	r := &reader{kind: "ipsecFilter", b: b}
	r.expectGUID(FilterBlobID, "Filter-Policy-ID1")
	s := r.section("Data-Length1")
	var d FilterData
	n := s.count("Number-Of-Filters1", 60)
	for i := 0; i < n && s.err == nil; i++ {
		d.Legacy = append(d.Legacy, decodeLegacy(s, i))
	}
	s.end(r, "legacy filters")
	r.pad()
	if r.err == nil && len(b)-r.off >= 16 && GUID(b[r.off:r.off+16]) == FilterV2BlobID {
		r.off += 16
		d.HasV2 = true
		s2 := r.section("Data-Length2")
		at := s2.off
		n11 := s2.u32("Number-Of-Filters11")
		if s2.err == nil && n11 != 0 && int(n11) != len(d.Legacy) {
			s2.fail(at, "Number-Of-Filters11 is %d, but the legacy section holds %d filters", n11, len(d.Legacy))
		}
		n2 := s2.count("Number-Of-Filters2", 120)
		for i := 0; i < n2 && s2.err == nil; i++ {
			d.V2 = append(d.V2, decodeV2(s2, i))
		}
		s2.end(r, "version 2 filters")
		r.pad()
	}
	return d, r.done()
}

func decodeLegacy(s *reader, i int) LegacyFilter {
	var f LegacyFilter
	f.SrcDNS = s.str("Source-DNS-Name1")
	f.DstDNS = s.str("Destination-DNS-Name1")
	f.Description = s.str("Filter-Description1")
	f.ID = s.guid("Filter-Specification-ID1")
	f.Mirrored = s.bool32("Legacy-Mirror-Options")
	for _, p := range []*[4]byte{&f.Src, &f.SrcMask, &f.Dst, &f.DstMask, &f.Tunnel} {
		if b := s.take(4, "Legacy address"); b != nil {
			*p = [4]byte(b)
		}
	}
	at := s.off
	if f.Protocol = s.u32("Legacy-Protocol"); f.Protocol > 255 {
		s.fail(at, "filter %d: Legacy-Protocol %d is not an IP protocol", i+1, f.Protocol)
	}
	// The ports are "unsigned integers" in little-endian order like
	// every field of the blob.
	f.SrcPort = s.u16("Legacy-Source-Port")
	f.DstPort = s.u16("Legacy-Destination-Port")
	at = s.off
	switch t := s.u8("Legacy-Is-Tunnel"); t {
	case 0, 1:
		f.IsTunnel = t == 1
	default:
		s.fail(at, "filter %d: Legacy-Is-Tunnel is %#x, want 0 or 1", i+1, t)
	}
	at = s.off
	switch f.Special = s.u8("Legacy-Special-Filter"); f.Special {
	case 0, 1, 2, 3, 4, 0x81, 0x82, 0x83, 0x84:
	default:
		s.fail(at, "filter %d: Legacy-Special-Filter %#x is unknown", i+1, f.Special)
	}
	at = s.off
	if o := s.u16("Legacy-Filter-Options"); o != 0 {
		s.fail(at, "filter %d: Legacy-Filter-Options is %#x, must be 0", i+1, o)
	}
	return f
}

func decodeV2(s *reader, i int) FilterV2 {
	var f FilterV2
	f.SrcDNS = s.str("Source-DNS-Name2")
	f.DstDNS = s.str("Destination-DNS-Name2")
	f.Description = s.str("Filter-Description2")
	f.ID = s.guid("Filter-Specification-ID2")
	f.Mirrored = s.bool32("Mirror-Flags")
	f.Src = decodeAddrSpec(s, i, "source")
	f.Dst = decodeAddrSpec(s, i, "destination")
	f.SrcPort = decodePortSpec(s, i, "source")
	f.DstPort = decodePortSpec(s, i, "destination")
	at := s.off
	if f.Protocol = s.u32("Filter-Protocol"); f.Protocol > 255 {
		s.fail(at, "filter %d: Filter-Protocol %d is not an IP protocol", i+1, f.Protocol)
	}
	at = s.off
	if f.Flags = s.u32("Filter-Flags"); f.Flags != 0 && f.Flags != 8 {
		s.fail(at, "filter %d: Filter-Flags %#x is unknown", i+1, f.Flags)
	}
	return f
}

func decodeAddrSpec(s *reader, i int, side string) AddressSpec {
	var a AddressSpec
	at := s.off
	a.Type = s.u32("IPsec-Address-Type")
	a.Version = s.u32("IPsec-Address-Version")
	if b := s.take(16, "IP-Address"); b != nil {
		a.Addr = [16]byte(b)
	}
	if b := s.take(16, "IP-Address-Secondary"); b != nil {
		a.Secondary = [16]byte(b)
	}
	if s.err != nil {
		return a
	}
	switch a.Type {
	case AddrAny, AddrSingle, AddrRange, AddrSubnet, AddrMe, AddrDNS, AddrWINS, AddrDHCP, AddrGateway:
	default:
		s.fail(at, "filter %d %s: IPsec-Address-Type %#x is unknown", i+1, side, a.Type)
	}
	switch a.Version {
	case 1, 2:
	case 3:
		if a.Type < AddrMe {
			s.fail(at+4, "filter %d %s: IPsec-Address-Version 3 (both) is only for \"me\" and special addresses", i+1, side)
		}
	default:
		s.fail(at+4, "filter %d %s: IPsec-Address-Version %d is unknown", i+1, side, a.Version)
	}
	if a.Type == AddrSubnet && a.Version == 2 && a.Secondary[0] > 128 {
		s.fail(at+24, "filter %d %s: IPv6 prefix length %d", i+1, side, a.Secondary[0])
	}
	return a
}

func decodePortSpec(s *reader, i int, side string) PortSpec {
	var p PortSpec
	at := s.off
	p.Type = s.u32("port type")
	p.Port = s.u16("port")
	p.End = s.u16("port range end")
	if s.err != nil {
		return p
	}
	switch {
	case p.Type > 2:
		s.fail(at, "filter %d %s port: type %d is unknown", i+1, side, p.Type)
	case p.Type == 2 && p.End < p.Port:
		s.fail(at, "filter %d %s port: range %d-%d ends before it starts", i+1, side, p.Port, p.End)
	}
	return p
}

// Encode writes the blob: the legacy section, then the version 2
// section when HasV2 (or when there are V2 filters).
func (d FilterData) Encode() []byte {
	w := &writer{}
	w.guid(FilterBlobID)
	w.section(func(s *writer) {
		s.u32(uint32(len(d.Legacy)))
		for _, f := range d.Legacy {
			s.str(f.SrcDNS)
			s.str(f.DstDNS)
			s.str(f.Description)
			s.guid(f.ID)
			s.bool32(f.Mirrored)
			for _, a := range [][4]byte{f.Src, f.SrcMask, f.Dst, f.DstMask, f.Tunnel} {
				s.b = append(s.b, a[:]...)
			}
			s.u32(f.Protocol)
			s.u16(f.SrcPort)
			s.u16(f.DstPort)
			if f.IsTunnel {
				s.u8(1)
			} else {
				s.u8(0)
			}
			s.u8(f.Special)
			s.u16(0)
		}
	})
	if d.HasV2 || len(d.V2) > 0 {
		w.guid(FilterV2BlobID)
		w.section(func(s *writer) {
			s.u32(uint32(len(d.Legacy)))
			s.u32(uint32(len(d.V2)))
			for _, f := range d.V2 {
				s.str(f.SrcDNS)
				s.str(f.DstDNS)
				s.str(f.Description)
				s.guid(f.ID)
				s.bool32(f.Mirrored)
				for _, a := range []AddressSpec{f.Src, f.Dst} {
					s.u32(a.Type)
					s.u32(a.Version)
					s.b = append(s.b, a.Addr[:]...)
					s.b = append(s.b, a.Secondary[:]...)
				}
				for _, p := range []PortSpec{f.SrcPort, f.DstPort} {
					s.u32(p.Type)
					s.u16(p.Port)
					s.u16(p.End)
				}
				s.u32(f.Protocol)
				s.u32(f.Flags)
			}
		})
	}
	return w.b
}

// Prefix returns a legacy address and mask as a prefix; ok is false for a
// mask that is not contiguous.
func legacyPrefix(addr, mask [4]byte) (netip.Prefix, bool) {
	m := uint32(mask[0])<<24 | uint32(mask[1])<<16 | uint32(mask[2])<<8 | uint32(mask[3])
	bits := 0
	for m&0x80000000 != 0 {
		bits++
		m <<= 1
	}
	if m != 0 {
		return netip.Prefix{}, false
	}
	return netip.PrefixFrom(netip.AddrFrom4(addr), bits).Masked(), true
}
