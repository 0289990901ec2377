# iked's build, install and packaging.
#
#   make                  static binaries, man pages and the unit in build/
#   make test             the whole test suite (scripts/test.sh, as CI)
#   make install          install under PREFIX (default /usr/local) into DESTDIR
#   make deb              the Debian package build/iked_VERSION_ARCH.deb (nfpm)
#
# VERSION and COMMIT come from git (packaging/version.sh) and are linked into
# the binaries; set them to build a release from a tarball.

PKG        := github.com/iked/iked
GO         ?= go
PREFIX     ?= /usr/local
DESTDIR    ?=
BINDIR     ?= $(PREFIX)/bin
SBINDIR    ?= $(PREFIX)/sbin
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
MANDIR     ?= $(PREFIX)/share/man
UNITDIR    ?= $(PREFIX)/lib/systemd/system
BASHCOMPDIR ?= $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR ?= $(PREFIX)/share/zsh/vendor-completions

VERSION ?= $(shell ./packaging/version.sh)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)$(shell git diff --quiet HEAD -- 2>/dev/null || echo -dirty)
DEB_ARCH ?= $(shell $(GO) env GOARCH)
# nfpm, as a Go tool from the module proxy at a pinned version.
NFPM ?= $(GO) run github.com/goreleaser/nfpm/v2/cmd/nfpm@v2.48.0

# Static binaries (no cgo: the pure Go resolver and user lookups), with the
# version and commit linked in; -buildvcs=auto stamps them too where the
# environment turns it off.
LDFLAGS := -s -w -X $(PKG)/internal/buildinfo.version=$(VERSION) -X $(PKG)/internal/buildinfo.commit=$(COMMIT)
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=auto -ldflags "$(LDFLAGS)"

.PHONY: all build man test install deb clean bench-responders

all: build

build: build/iked build/ikectl build/iked.service man

build/iked build/ikectl: FORCE
	@mkdir -p build
	$(GOBUILD) -o build/ ./cmd/iked ./cmd/ikectl

# The unit with the paths of this installation.
build/iked.service: packaging/systemd/iked.service.in FORCE
	@mkdir -p build
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' $< > $@

# Man pages, made from docs/ at build time (packaging/man).
man:
	$(GO) run ./packaging/man -o build/man -version "$(VERSION)"

test:
	./scripts/test.sh

install: build
	install -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	install -d -m 0750 $(DESTDIR)$(SYSCONFDIR)/iked
	install -m 0755 build/iked $(DESTDIR)$(SBINDIR)/iked
	install -m 0755 build/ikectl $(DESTDIR)$(BINDIR)/ikectl
	install -m 0644 build/iked.service $(DESTDIR)$(UNITDIR)/iked.service
	@# An existing configuration is the administrator's: never replaced.
	test -e $(DESTDIR)$(SYSCONFDIR)/iked/iked.yaml || install -m 0640 packaging/iked.yaml $(DESTDIR)$(SYSCONFDIR)/iked/iked.yaml
	install -m 0644 build/man/iked.8 build/man/ikectl.8 $(DESTDIR)$(MANDIR)/man8/
	install -m 0644 build/man/iked.yaml.5 $(DESTDIR)$(MANDIR)/man5/
	install -m 0644 packaging/completions/ikectl.bash $(DESTDIR)$(BASHCOMPDIR)/ikectl
	install -m 0644 packaging/completions/iked.bash $(DESTDIR)$(BASHCOMPDIR)/iked
	install -m 0644 packaging/completions/_ikectl packaging/completions/_iked $(DESTDIR)$(ZSHCOMPDIR)/
	@echo "installed. The service runs as the system user iked: create it with"
	@echo "  adduser --system --group --no-create-home --home /var/lib/iked iked"
	@echo "  chgrp iked $(SYSCONFDIR)/iked $(SYSCONFDIR)/iked/iked.yaml"
	@echo "then: systemctl daemon-reload && systemctl enable --now iked"

# The Debian package: the same build with Debian's paths, staged in
# build/deb, packed by nfpm (packaging/nfpm.yaml).
deb:
	$(MAKE) build/deb/iked.service man PREFIX=/usr BINDIR=/usr/bin SBINDIR=/usr/sbin SYSCONFDIR=/etc
	@mkdir -p build/deb/man
	$(GOBUILD) -o build/deb/ ./cmd/iked ./cmd/ikectl
	for p in iked.8 ikectl.8 iked.yaml.5; do gzip -9n < build/man/$$p > build/deb/man/$$p.gz; done
	DEB_VERSION="$(VERSION)" DEB_ARCH="$(DEB_ARCH)" $(NFPM) package --config packaging/nfpm.yaml --packager deb --target build/
	@ls build/*.deb

build/deb/iked.service: packaging/systemd/iked.service.in FORCE
	@mkdir -p build/deb
	sed -e 's|@SBINDIR@|/usr/sbin|g' -e 's|@BINDIR@|/usr/bin|g' -e 's|@SYSCONFDIR@|/etc|g' $< > $@

clean:
	rm -rf build

FORCE:

# Benchmarks that are not tests: `go test ./...` (scripts/test.sh) never runs them.
bench-responders:
	bench/run.sh $(BENCH_ARGS)
