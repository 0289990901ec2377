// Package buildinfo tells which build of iked is running: the version, the
// commit it was built from and the Go toolchain, for `iked --version`,
// `ikectl --version`, `ikectl status` and the iked_build_info metric.
//
// The values come from the build information the Go toolchain embeds (the
// main module's version and the VCS stamp: commit, time, modified). A
// release build overrides them with the linker:
//
//	go build -ldflags "-X github.com/iked/iked/internal/buildinfo.version=1.2.0 \
//	    -X github.com/iked/iked/internal/buildinfo.commit=0123abcd…"
//
// which is what the Makefile does, so that a build from a source tarball
// (no VCS stamp) still says what it is.
package buildinfo

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
	"sync"
)

// Set with -ldflags -X; empty means "from the build information".
var (
	version string
	commit  string
)

// Info describes one build.
type Info struct {
	// Version is the release version, or the module's pseudo-version
	// (v0.0.0-DATE-COMMIT) of a build from a git checkout, or "devel".
	Version string
	// Commit is the full VCS revision, "" when unknown.
	Commit string
	// Modified: the work tree had uncommitted changes.
	Modified bool
	// GoVersion is the toolchain that built the binary, e.g. "go1.26.8".
	GoVersion string
	// Platform is GOOS/GOARCH.
	Platform string
}

var (
	once sync.Once
	info Info
)

// Get returns the running binary's build information.
func Get() Info {
	once.Do(func() { info = read(version, commit, debug.ReadBuildInfo) })
	return info
}

// read merges the linker overrides with the embedded build information.
func read(ldVersion, ldCommit string, buildInfo func() (*debug.BuildInfo, bool)) Info {
	in := Info{GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := buildInfo(); ok {
		in.GoVersion = bi.GoVersion
		if v := bi.Main.Version; v != "" && v != "(devel)" {
			in.Version = v
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				in.Commit = s.Value
			case "vcs.modified":
				in.Modified = s.Value == "true"
			}
		}
	}
	if ldVersion != "" {
		in.Version = ldVersion
	}
	if ldCommit != "" {
		in.Commit = strings.TrimSuffix(ldCommit, "-dirty")
		in.Modified = strings.HasSuffix(ldCommit, "-dirty")
	}
	if in.Version == "" {
		in.Version = "devel"
	}
	return in
}

// ShortCommit is the commit's first 12 hex digits, with "-dirty" for a
// modified tree; "unknown" without a VCS stamp.
func (i Info) ShortCommit() string {
	c := i.Commit
	if c == "" {
		return "unknown"
	}
	if len(c) > 12 {
		c = c[:12]
	}
	if i.Modified {
		c += "-dirty"
	}
	return c
}

// String is the one line `--version` prints after the program's name:
// "1.2.0 (commit 0123456789ab, go1.26.8 linux/amd64)".
func (i Info) String() string {
	return fmt.Sprintf("%s (commit %s, %s %s)", i.Version, i.ShortCommit(), i.GoVersion, i.Platform)
}
