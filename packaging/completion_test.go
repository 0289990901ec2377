package packaging

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestCompletions: the bash completion of ikectl offers the commands and
// options, and the running daemon's connections and SA IDs where a
// command takes one, with --socket before or after the command; the zsh
// completions parse.
func TestCompletions(t *testing.T) {
	requireTools(t, "bash", "zsh")
	const bashCompletion = "/usr/share/bash-completion/bash_completion"
	if _, err := os.Stat(bashCompletion); err != nil {
		missing(t, "bash-completion is not installed (Debian package bash-completion)")
	}
	for _, f := range []string{"completions/_ikectl", "completions/_iked"} {
		if out, err := exec.Command("zsh", "-n", f).CombinedOutput(); err != nil {
			t.Fatalf("zsh -n %s: %v\n%s", f, err, out)
		}
	}
	bin := t.TempDir()
	for _, cmd := range []string{"iked", "ikectl"} {
		run(t, "go", "build", "-o", filepath.Join(bin, cmd), "../cmd/"+cmd)
	}
	dir := t.TempDir()
	sock := filepath.Join(dir, "iked.sock")
	cfg := filepath.Join(dir, "iked.yaml")
	conf := "listen: [\"127.0.0.1:0\"]\ncontrol_socket: " + sock + "\nbackend: memory\nconnections:\n" +
		"  alpha:\n    remote: 192.0.2.1\n    auth: {method: psk, secret: \"completion test key\"}\n" +
		"  beta:\n    remote: 192.0.2.2\n    auth: {method: psk, secret: \"completion test key\"}\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	d := exec.Command(filepath.Join(bin, "iked"), "--config", cfg)
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = d.Process.Kill(); _ = d.Wait() }()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no control socket")
		}
	}
	complete := func(line string) string {
		t.Helper()
		script := `source ` + bashCompletion + `
source completions/ikectl.bash
COMP_LINE="$1"; COMP_POINT=${#COMP_LINE}
read -ra COMP_WORDS <<< "$COMP_LINE"
[[ $COMP_LINE == *" " ]] && COMP_WORDS+=("")
COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
_ikectl ikectl "${COMP_WORDS[COMP_CWORD]}" "${COMP_WORDS[COMP_CWORD-1]}"
echo "${COMPREPLY[*]}"`
		cmd := exec.Command("bash", "-c", script, "bash", line)
		cmd.Env = append(os.Environ(), "PATH="+bin+":"+os.Getenv("PATH"))
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("completing %q: %v\n%s", line, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	for line, want := range map[string]string{
		"ikectl re":                                 "rekey reload",
		"ikectl --socket " + sock + " initiate ":    "alpha beta",
		"ikectl initiate --socket " + sock + " a":   "alpha",
		"ikectl sas --j":                            "--json",
		"ikectl peers --p":                          "--protocol --port",
		"ikectl --socket " + sock + " terminate be": "beta",
	} {
		if got := complete(line); got != want {
			t.Errorf("completing %q: %q, want %q", line, got, want)
		}
	}
}
