package config

// The auth methods a configuration can name: each registers itself with
// package auth under its config name.
import (
	_ "github.com/iked/iked/auth/cert"     // "cert"
	_ "github.com/iked/iked/auth/kerberos" // "kerberos"
	_ "github.com/iked/iked/auth/psk"      // "psk"
)
