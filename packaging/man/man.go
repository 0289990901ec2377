// Command man renders iked's man pages from its Markdown documentation with
// go-md2man, so that the pages say what the docs say and cannot drift from
// them: iked(8) from packaging/man/iked.8.md, ikectl(8) from
// docs/ikectl.md, iked.yaml(5) from docs/configuration.md.
//
//	go run ./packaging/man -o build/man -version 1.2.0
//
// It runs from the repository's root. `make man` runs it.
package main

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/cpuguy83/go-md2man/v2/md2man"
)

// page is one man page and the document it is made from.
type page struct {
	name    string // "ikectl"
	section int
	source  string // relative to the repository's root
	summary string // the NAME line's description
}

// pages are the man pages iked ships.
var pages = []page{
	{"iked", 8, "packaging/man/iked.8.md", "IKEv2 IPsec key-exchange daemon"},
	{"ikectl", 8, "docs/ikectl.md", "control a running iked"},
	{"iked.yaml", 5, "docs/configuration.md", "configuration file of iked"},
}

func main() {
	out := flag.String("o", "build/man", "output `directory`")
	version := flag.String("version", "", "the version the pages describe")
	root := flag.String("root", ".", "the repository's root `directory`")
	flag.Parse()
	if err := os.MkdirAll(*out, 0o755); err != nil { // #nosec G301 -- man pages are installed world-readable
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for _, p := range pages {
		md, err := os.ReadFile(filepath.Join(*root, p.source))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		file := filepath.Join(*out, fmt.Sprintf("%s.%d", p.name, p.section))
		if err := os.WriteFile(file, render(p, md, *version), 0o644); err != nil { // #nosec G306 -- man pages are world-readable by design
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}

// Markdown that man pages render differently.
var (
	linkRE    = regexp.MustCompile(`\[([^\]]+)\]\([^)]+\)`)
	headingRE = regexp.MustCompile(`(?m)^(#{2,6}) `)
)

// render turns a document into a man page: its title becomes the .TH
// line and a NAME section, its "##" sections become the page's sections
// (upper case, as man pages have them), links become their text.
func render(p page, md []byte, version string) []byte {
	text := string(md)
	// Drop the document's own title: the page has its own.
	if strings.HasPrefix(text, "# ") {
		if i := strings.Index(text, "\n"); i >= 0 {
			text = text[i+1:]
		}
	}
	text = linkRE.ReplaceAllString(text, "$1")
	text = headingRE.ReplaceAllStringFunc(text, func(h string) string {
		return strings.Repeat("#", len(strings.TrimSpace(h))-1) + " "
	})
	text = upperSections(text)
	var b bytes.Buffer
	footer := "iked"
	if version != "" {
		footer += " " + version
	}
	manual := "System Administration"
	if p.section == 5 {
		manual = "File Formats"
	}
	fmt.Fprintf(&b, "# %s %d \"\" %q %q\n\n", strings.ToUpper(p.name), p.section, footer, manual)
	fmt.Fprintf(&b, "# NAME\n\n%s - %s\n\n", p.name, p.summary)
	if p.name != "iked" {
		fmt.Fprintf(&b, "# DESCRIPTION\n\n")
	}
	b.WriteString(text)
	// A "|" inside a table cell is written "\|" in Markdown, which
	// go-md2man passes on as an escaped backslash.
	return bytes.ReplaceAll(md2man.Render(b.Bytes()), []byte(`\\|`), []byte("|"))
}

// upperSections writes the top-level headings in upper case, outside code
// blocks.
func upperSections(text string) string {
	lines := strings.Split(text, "\n")
	inCode := false
	for i, l := range lines {
		if strings.HasPrefix(l, "```") {
			inCode = !inCode
		}
		if !inCode && strings.HasPrefix(l, "# ") {
			lines[i] = strings.ToUpper(l)
		}
	}
	return strings.Join(lines, "\n")
}
