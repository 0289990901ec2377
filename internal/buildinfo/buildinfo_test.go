package buildinfo

import (
	"runtime/debug"
	"testing"
)

func stamped() (*debug.BuildInfo, bool) {
	return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261204120000-0123456789ab+dirty"},
		Settings: []debug.BuildSetting{{Key: "vcs.revision", Value: "0123456789abcdef0123456789abcdef01234567"}, {Key: "vcs.modified", Value: "true"}}}, true
}

func TestFromBuildInfo(t *testing.T) {
	in := read("", "", stamped)
	if in.Version != "v0.0.0-20261204120000-0123456789ab+dirty" || in.ShortCommit() != "0123456789ab-dirty" || in.GoVersion != "go1.26.8" {
		t.Fatalf("%+v", in)
	}
}

func TestLinkerOverrides(t *testing.T) {
	in := read("1.2.0", "fedcba9876543210fedcba9876543210fedcba98", stamped)
	if in.Version != "1.2.0" || in.Commit != "fedcba9876543210fedcba9876543210fedcba98" || in.Modified {
		t.Fatalf("%+v", in)
	}
	if s := in.String(); s != "1.2.0 (commit fedcba987654, go1.26.8 "+in.Platform+")" {
		t.Fatalf("String() = %q", s)
	}
}

func TestNoStamp(t *testing.T) {
	in := read("", "", func() (*debug.BuildInfo, bool) {
		return &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, true
	})
	if in.Version != "devel" || in.ShortCommit() != "unknown" {
		t.Fatalf("%+v", in)
	}
}
