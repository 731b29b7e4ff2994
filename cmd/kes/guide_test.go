// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// shellBlock is a fenced ```sh block of a Markdown document.
type shellBlock struct {
	Text string // the lines between the fences
	Line int    // line number of the opening fence
	// Directive is the text of a '<!-- guide-test: ... -->' comment on
	// the line before the fence, if any: "skip REASON" for a block the
	// guide tests do not run (it needs sudo, MinIO, vCenter, a cloud
	// account), "background" or "background FILE" for a server.
	Directive string
}

const directivePrefix = "<!-- guide-test:"

// shellBlocks returns the ```sh blocks of a Markdown document, also those
// indented in a list. Other blocks (yaml, sample output) are not commands.
func shellBlocks(md string) []shellBlock {
	var (
		blocks []shellBlock
		cur    *shellBlock
		indent string
		prev   string
	)
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```sh":
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
			cur = &shellBlock{Line: i + 1}
			if d, ok := strings.CutPrefix(strings.TrimSpace(prev), directivePrefix); ok {
				cur.Directive = strings.TrimSpace(strings.TrimSuffix(d, "-->"))
			}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.Text += strings.TrimPrefix(line, indent) + "\n"
		}
		prev = line
	}
	return blocks
}

// TestGuides follows every guide in examples/ the way a reader does: it
// runs the guide's ```sh blocks, in order, in one bash session in a
// temporary directory that holds a copy of the guide's files. The
// commands come from the Markdown itself. The conventions a guide keeps:
//
//   - '<!-- guide-test: skip REASON -->' on the line before a block: the
//     test does not run it (it needs sudo, MinIO, vCenter, a real HSM or
//     cloud account, or shows sample output).
//   - '<!-- guide-test: background -->': the block is a server that runs
//     until interrupted (in a terminal of its own, or with a trailing '&'
//     as the guide types it); it is started in the background, and the
//     test waits until the HTTP port of the server config (7373) accepts
//     connections.
//   - '<!-- guide-test: background FILE -->': the same for an emulator
//     started with '--env FILE' ('kes dev ...'): the test waits until
//     FILE exists, which the emulator writes, complete, once it serves.
//     The next block sources it as a reader does.
//   - The test rewrites what a real installation has and a test must not
//     touch: /etc/kes/ and /var/lib/kes/ become directories in the
//     temporary directory, 'sudo ' is dropped, and the fixed ports (7373,
//     5696, 8443, 8444 and the Vault emulator's 8200) become free
//     127.0.0.1 ports, in the commands and in the guide's files alike.
//     So a guide names an emulator's port in its command ('--addr
//     127.0.0.1:8444'), not only through the emulator's default.
//   - '<!-- guide-test: needs NAME -->': the block needs software the
//     machine may lack (guideNeeds). Without it the block is skipped,
//     except in CI, where the test fails: a missing package there is a
//     broken setup.
//   - Everything the guide starts is killed when its script ends: the
//     script runs in a process group of its own.
func TestGuides(t *testing.T) {
	bash := requireShell(t, "bash")
	dirs, err := filepath.Glob(repoFile("examples/*/README.md"))
	if err != nil || len(dirs) == 0 {
		t.Fatalf("no guides: %v", err)
	}
	for _, readme := range dirs {
		guide := filepath.Base(filepath.Dir(readme))
		t.Run(guide, func(t *testing.T) { runGuide(t, bash, readme) })
	}
}

func runGuide(t *testing.T, bash, readme string) {
	md, err := os.ReadFile(readme)
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	ports := map[string]string{}
	for _, p := range []string{"7373", "5696", "8443", "8444", "8200"} {
		ports[p] = strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	}
	rewrite := func(s string) string {
		s = systemDirRE.ReplaceAllString(s, work+"$0")
		s = strings.ReplaceAll(s, "sudo ", "")
		s = strings.ReplaceAll(s, "0.0.0.0:", "127.0.0.1:")
		for from, to := range ports {
			s = strings.ReplaceAll(s, ":"+from, ":"+to)
		}
		return s
	}
	// The guide's files, rewritten the same way.
	files, err := os.ReadDir(filepath.Dir(readme))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.IsDir() || f.Name() == "README.md" {
			continue
		}
		b, err := os.ReadFile(filepath.Join(filepath.Dir(readme), f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f.Name()), []byte(rewrite(string(b))), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	var script strings.Builder
	script.WriteString("set -euo pipefail\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n")
	ran := 0
	for _, b := range shellBlocks(string(md)) {
		switch {
		case strings.HasPrefix(b.Directive, "skip"):
			t.Logf("line %d: skipped: %s", b.Line, strings.TrimSpace(strings.TrimPrefix(b.Directive, "skip")))
			continue
		case b.Directive == "background" || strings.HasPrefix(b.Directive, "background "):
			// A trailing '&' is how a reader backgrounds the block in
			// one terminal; the test backgrounds it itself.
			text := strings.TrimSuffix(strings.TrimSpace(rewrite(b.Text)), "&")
			ready := fmt.Sprintf("(exec 3<>/dev/tcp/127.0.0.1/%s) 2>/dev/null", ports["7373"])
			if file, ok := strings.CutPrefix(b.Directive, "background "); ok {
				file = strings.TrimSpace(file)
				if !safeFileRE.MatchString(file) {
					t.Fatalf("line %d: background FILE %q must be a plain file name", b.Line, file)
				}
				ready = "[ -s " + file + " ]"
			}
			fmt.Fprintf(&script, "# line %d (background)\n( %s ) > background-%d.log 2>&1 &\n", b.Line, text, b.Line)
			// Up to 30 s, since the binary is built with -race and shares
			// the machine; a ready server, or one that exited, ends the
			// loop at once.
			fmt.Fprintf(&script, "for i in $(seq 600); do %s && break; kill -0 $! 2>/dev/null || break; sleep 0.05; done\n", ready)
			fmt.Fprintf(&script, "%s || { echo 'line %d: not ready'; cat background-%d.log; exit 1; }\n", ready, b.Line, b.Line)
		case strings.HasPrefix(b.Directive, "needs "):
			name := strings.TrimSpace(strings.TrimPrefix(b.Directive, "needs "))
			check, ok := guideNeeds[name]
			if !ok {
				t.Fatalf("line %d: unknown requirement %q", b.Line, name)
			}
			if err := check(); err != nil {
				if os.Getenv("CI") != "" {
					t.Fatalf("line %d: %s is required in CI: %v", b.Line, name, err)
				}
				t.Logf("line %d: skipped: %s is not available: %v", b.Line, name, err)
				continue
			}
			fmt.Fprintf(&script, "# line %d\n%s", b.Line, rewrite(b.Text))
		case b.Directive != "":
			t.Fatalf("line %d: unknown directive %q", b.Line, b.Directive)
		default:
			fmt.Fprintf(&script, "# line %d\n%s", b.Line, rewrite(b.Text))
		}
		ran++
	}
	if ran == 0 {
		t.Skip("the guide has no block the test can run")
	}
	cmd := exec.Command(bash, "-c", script.String())
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+work, "TMPDIR="+work)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	// A guide takes about a second; the margin is for -race binaries
	// on a loaded machine, where every 'kes' the guide runs starts slowly.
	out, err := runWithTimeout(cmd, 2*time.Minute)
	if err != nil {
		t.Fatalf("%v\n--- script ---\n%s\n--- output ---\n%s", err, script.String(), out)
	}
}

// guideNeeds checks the software a 'needs NAME' block runs, by NAME.
var guideNeeds = map[string]func() error{
	// Debian's python3-pykmip, for the system's interpreter only.
	"pykmip": func() error { return exec.Command("/usr/bin/python3", "-c", "import kmip.pie.client").Run() },
}

// safeFileRE is a file name a background directive may wait for: no
// path, nothing a shell would interpret.
var safeFileRE = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]*$`)

// systemDirRE matches the system directories the guides install into.
var systemDirRE = regexp.MustCompile(`/(etc|var/lib)/kes\b`)

// runWithTimeout runs cmd and kills its process group after d.
func runWithTimeout(cmd *exec.Cmd, d time.Duration) ([]byte, error) {
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) // background servers
		return out.Bytes(), err
	case <-time.After(d):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.Bytes(), fmt.Errorf("timed out after %s", d)
	}
}
