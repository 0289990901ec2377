package main

import (
	"strings"
)

// global are the options that apply to every command.
type global struct {
	socket  string
	version bool
	rest    []string // the command line without them
}

// globalFlags takes --socket and --version from anywhere on the command
// line, before or after the command (`ikectl sas --socket S` as well as
// `ikectl --socket S sas`), up to a "--", which ends the options.
func globalFlags(args []string) (global, error) {
	var g global
	for i := 0; i < len(args); i++ {
		a := args[i]
		if a == "--" {
			g.rest = append(g.rest, args[i+1:]...)
			break
		}
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		if !strings.HasPrefix(a, "-") || strings.HasPrefix(a, "---") {
			g.rest = append(g.rest, a)
			continue
		}
		switch name {
		case "socket":
			if !hasValue {
				if i+1 >= len(args) {
					return g, usageError{"flag needs an argument: --socket"}
				}
				i++
				value = args[i]
			}
			if value == "" {
				return g, usageError{"--socket: empty path"}
			}
			g.socket = value
		case "version":
			g.version = true
		default:
			g.rest = append(g.rest, a)
		}
	}
	return g, nil
}
