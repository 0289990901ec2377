package sadb

import (
	"fmt"
	"net/netip"
	"testing"
)

func TestRangePrefixes(t *testing.T) {
	for _, c := range []struct{ start, end, want string }{
		{"10.0.0.0", "10.0.0.255", "[10.0.0.0/24]"},
		{"10.0.0.1", "10.0.0.1", "[10.0.0.1/32]"},
		{"10.0.0.1", "10.0.0.6", "[10.0.0.1/32 10.0.0.2/31 10.0.0.4/31 10.0.0.6/32]"},
		{"0.0.0.0", "255.255.255.255", "[0.0.0.0/0]"},
		{"::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "[::/0]"},
		{"2001:db8::", "2001:db8::1:0", "[2001:db8::/112 2001:db8::1:0/128]"},
	} {
		got := fmt.Sprint(RangePrefixes(netip.MustParseAddr(c.start), netip.MustParseAddr(c.end)))
		if got != c.want {
			t.Errorf("%s-%s = %s, want %s", c.start, c.end, got, c.want)
		}
	}
}
