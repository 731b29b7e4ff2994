// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// completionScript runs 'kes completion SHELL' and returns the script.
func completionScript(t *testing.T, shell string) string {
	t.Helper()
	var out bytes.Buffer
	stdout = &out
	t.Cleanup(func() { stdout = os.Stdout })
	if err := completionCmd([]string{shell}); err != nil {
		t.Fatal(err)
	}
	return out.String()
}

// requireShell skips the test if the shell is not installed.
func requireShell(t *testing.T, shell string) string {
	t.Helper()
	path, err := exec.LookPath(shell)
	if err != nil {
		t.Skipf("%s is not installed (apt-get install %s)", shell, shell)
	}
	return path
}

func TestCommandTree(t *testing.T) {
	tree, err := commandTree()
	if err != nil {
		t.Fatal(err)
	}
	nodes := map[string]commandNode{}
	for _, n := range tree {
		nodes[n.Path] = n
	}
	// Every top-level command of the table is there.
	for name := range commands {
		if _, ok := nodes[name]; !ok {
			t.Errorf("command %q is missing from the completion tree", name)
		}
	}
	for path, want := range map[string][]string{
		"":           {"key", "completion", "-v", "--version"},
		"key":        {"create", "rm", "rewrap"},
		"key rm":     {"-k", "--insecure", "--json"},
		"kmip ca":    {"init", "export"},
		"kmip query": {"--cert", "--cipher-suites"},
		"server":     {"--config", "--dev", "--data"},
		"completion": {"bash", "zsh", "fish"},
	} {
		n := nodes[path]
		words := append(slices.Clone(n.Cmds), n.Opts...)
		for _, w := range want {
			if !slices.Contains(words, w) {
				t.Errorf("'kes %s' completes %q, want it to include %q", path, words, w)
			}
		}
		if strings.Count(strings.Join(words, " ")+" ", " --data ") > 1 {
			t.Errorf("'kes %s' lists an option twice: %q", path, words)
		}
	}
}

func TestCompletionUnknownShell(t *testing.T) {
	err := completionCmd([]string{"tcsh"})
	if err == nil || !strings.Contains(err.Error(), "unknown shell 'tcsh'") {
		t.Fatalf("kes completion tcsh: %v", err)
	}
}

// TestCompletionSyntax checks each script with the shell's own parser.
func TestCompletionSyntax(t *testing.T) {
	for _, shell := range []string{"bash", "zsh", "fish"} {
		t.Run(shell, func(t *testing.T) {
			sh := requireShell(t, shell)
			file := filepath.Join(t.TempDir(), "kes."+shell)
			if err := os.WriteFile(file, []byte(completionScript(t, shell)), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(sh, "-n", file).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
		})
	}
}

// TestCompletionBash completes command lines the way bash does: it loads
// the script and calls the completion function with COMP_WORDS set.
func TestCompletionBash(t *testing.T) {
	bash := requireShell(t, "bash")
	file := filepath.Join(t.TempDir(), "kes.bash")
	if err := os.WriteFile(file, []byte(completionScript(t, "bash")), 0o644); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{
		"kes ke":               "key",
		"kes key cr":           "create",
		"kes key rm -k --js":   "--json",
		"kes kmip ca ":         "init export",
		"kes kmip ca init --d": "--dir --days",
		"kes -":                "-v --version -h --help",
		"kes key create x ":    "", // a name: bash falls back to files
		"kes completion f":     "fish",
	} {
		words := strings.Split(line, " ")
		script := `source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _kes; echo "${COMPREPLY[*]}"`
		out, err := exec.Command(bash, append([]string{"-c", script, "bash", file}, words...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", line, err, out)
		}
		if got := strings.TrimSpace(string(out)); got != want {
			t.Errorf("%q completes to %q, want %q", line, got, want)
		}
	}
}

// TestCompletionFish asks fish itself what it completes.
func TestCompletionFish(t *testing.T) {
	fish := requireShell(t, "fish")
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "config.yaml"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "kes.fish")
	if err := os.WriteFile(file, []byte(completionScript(t, "fish")), 0o644); err != nil {
		t.Fatal(err)
	}
	for line, want := range map[string]string{
		"kes key cr":                "create",
		"kes kmip ca ":              "export init",
		"kes key rm -k --js":        "--json",
		"kes key rewrap --config c": "config.yaml", // an argument: files
	} {
		cmd := exec.Command(fish, "--no-config", "-c", `source $argv[1]; complete -C $argv[2]`, file, line)
		cmd.Dir = dir
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%q: %v\n%s", line, err, out)
		}
		var got []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			got = append(got, strings.SplitN(l, "\t", 2)[0])
		}
		slices.Sort(got)
		if strings.Join(got, " ") != want {
			t.Errorf("%q completes to %q, want %q", line, got, want)
		}
	}
}
