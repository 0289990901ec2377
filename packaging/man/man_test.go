package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestPages: each page renders from its document with every section of it
// (the pages are made from the docs at build time, so they cannot drift
// from them), and groff reads them without a warning.
func TestPages(t *testing.T) {
	dir := t.TempDir()
	for _, p := range pages {
		md, err := os.ReadFile(filepath.Join("..", "..", p.source))
		if err != nil {
			t.Fatal(err)
		}
		out := render(p, md, "1.2.3")
		if !bytes.Contains(out, []byte(".TH "+strings.ToUpper(p.name)+" "+string(rune('0'+p.section))+` "" "iked 1.2.3"`)) {
			t.Fatalf("%s: no .TH line:\n%s", p.name, out[:200])
		}
		plain := regexp.MustCompile(`\\f[BIRP]`).ReplaceAll(out, nil)
		inCode := false
		for _, l := range strings.Split(string(md), "\n") {
			if strings.HasPrefix(l, "```") {
				inCode = !inCode
			}
			if h, ok := strings.CutPrefix(l, "## "); ok && !inCode {
				h = strings.ToUpper(linkRE.ReplaceAllString(h, "$1"))
				h = strings.NewReplacer("`", "", "-", `\-`).Replace(h)
				if !bytes.Contains(plain, []byte(".SH "+h)) {
					t.Errorf("%s: section %q of %s is missing", p.name, h, p.source)
				}
			}
		}
		file := filepath.Join(dir, p.name)
		if err := os.WriteFile(file, out, 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := exec.LookPath("groff"); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatal("groff is missing (Debian package groff-base)")
			}
			t.Skip("groff is missing (Debian package groff-base)")
		}
		cmd := exec.Command("sh", "-c", `preconv "$1" | groff -man -Tutf8 -ww -z`, "sh", file)
		if msg, err := cmd.CombinedOutput(); err != nil || len(msg) > 0 {
			t.Errorf("%s: groff: %v\n%s", p.name, err, msg)
		}
	}
}

// TestDocumented: the documents the pages come from name every option of
// iked and every command and option of ikectl.
func TestDocumented(t *testing.T) {
	read := func(path string) string {
		b, err := os.ReadFile(filepath.Join("..", "..", path))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	ikedDoc, ikectlDoc := read("packaging/man/iked.8.md"), read("docs/ikectl.md")
	for _, m := range regexp.MustCompile(`fs\.\w+\("([a-z-]+)"`).FindAllStringSubmatch(read("cmd/iked/main.go"), -1) {
		if !strings.Contains(ikedDoc, "`--"+m[1]) {
			t.Errorf("iked.8.md does not document --%s", m[1])
		}
	}
	usage := read("cmd/ikectl/main.go")
	usage = usage[strings.Index(usage, "Commands:"):strings.Index(usage, "`\n")]
	for _, m := range regexp.MustCompile(`(?m)^  ([a-z][a-z-]*) `).FindAllStringSubmatch(usage, -1) {
		if !strings.Contains(ikectlDoc, "| `"+m[1]) {
			t.Errorf("docs/ikectl.md has no row for command %s", m[1])
		}
	}
	for _, m := range regexp.MustCompile(`(?m)^  (--[a-z]+)`).FindAllStringSubmatch(usage, -1) {
		if !strings.Contains(ikectlDoc, "`"+m[1]) {
			t.Errorf("docs/ikectl.md does not document %s", m[1])
		}
	}
}
