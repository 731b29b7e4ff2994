// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/rogpeppe/go-internal/testscript"
)

// repoFile is the path of a file at the top of the repository.
func repoFile(name string) string { return filepath.Join("..", "..", name) }

// freeLoopbackAddr returns a free 127.0.0.1 port.
func freeLoopbackAddr(ts *testscript.TestScript) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	ts.Check(err)
	defer ln.Close()
	return ln.Addr().String()
}

// scriptEnv is the environment of the script's commands.
func scriptEnv(ts *testscript.TestScript) []string {
	env := []string{"PATH=" + ts.Getenv("PATH"), "HOME=" + ts.Getenv("HOME"), "TMPDIR=" + ts.Getenv("TMPDIR"), "GORACE=" + ts.Getenv("GORACE")}
	if v := ts.Getenv("SOFTHSM2_CONF"); v != "" {
		env = append(env, "SOFTHSM2_CONF="+v)
	}
	return env
}

// startBackground starts the shell command line in the script's current
// directory in its own
// process group, stopped when the script ends, and returns its stdout,
// line by line.
func startBackground(ts *testscript.TestScript, line string) <-chan string {
	cmd := exec.Command("sh", "-c", line)
	cmd.Dir = ts.MkAbs(".")
	cmd.Env = scriptEnv(ts)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	ts.Check(err)
	logFile, err := os.Create(ts.MkAbs(fmt.Sprintf("background-%d.stderr", time.Now().UnixNano())))
	ts.Check(err)
	cmd.Stderr = logFile
	ts.Check(cmd.Start())
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		s := bufio.NewScanner(out)
		for s.Scan() {
			lines <- s.Text()
		}
	}()
	ts.Defer(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
		logFile.Close()
	})
	return lines
}

// cmdMakeRun starts the dev server the way 'make run' does: the run
// recipe of the Makefile, with the binary it built replaced by the kes on
// the script's PATH and the fixed port by a free one. It waits for the
// banner and writes the lines the banner says to paste to banner.sh; it
// sets DEV_URL, DEV_API_KEY and DEV_KES (how the banner invokes kes).
//
//	makerun
func cmdMakeRun(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 0 {
		ts.Fatalf("usage: makerun")
	}
	mk, err := os.ReadFile(repoFile("Makefile"))
	ts.Check(err)
	_, after, ok := strings.Cut(string(mk), "\nrun: build\n\t")
	if !ok {
		ts.Fatalf("Makefile has no 'run: build' target")
	}
	recipe, _, _ := strings.Cut(after, "\n")
	kes, err := exec.LookPath("kes") // testscript put it first on PATH
	ts.Check(err)
	if !strings.Contains(recipe, "./$(BIN) ") || !strings.Contains(recipe, "127.0.0.1:7373") {
		ts.Fatalf("the run recipe changed: %q", recipe)
	}
	addr := freeLoopbackAddr(ts)
	recipe = strings.ReplaceAll(recipe, "./$(BIN) ", kes+" ")
	recipe = strings.ReplaceAll(recipe, "127.0.0.1:7373", addr)
	lines := startBackground(ts, "exec "+recipe)

	var paste []string
	deadline := time.After(30 * time.Second)
	for collecting := false; ; {
		select {
		case line, ok := <-lines:
			if !ok {
				ts.Fatalf("the dev server stopped before its banner was complete")
			}
			switch {
			case strings.HasPrefix(line, "export KES_SERVER="):
				collecting = true
			case collecting && line == "":
				ts.Check(os.WriteFile(ts.MkAbs("banner.sh"), []byte(strings.Join(paste, "\n")+"\n"), 0o644))
				for _, l := range paste {
					if v, ok := strings.CutPrefix(l, "export KES_SERVER="); ok {
						ts.Setenv("DEV_URL", v)
					}
					if v, ok := strings.CutPrefix(l, "export KES_API_KEY="); ok {
						ts.Setenv("DEV_API_KEY", v)
					}
					if v, ok := strings.CutSuffix(l, " key create -k my-key"); ok {
						ts.Setenv("DEV_KES", v)
					}
				}
				return
			}
			if collecting {
				paste = append(paste, line)
			}
		case <-deadline:
			ts.Fatalf("no banner from the dev server within 30s")
		}
	}
}

// cmdReadmeTry writes the lines the README's "Try it" section says to
// paste, with its example values replaced by those of the running dev
// server (see makerun), to FILE, and checks that they are the lines the
// banner printed.
//
//	readmetry FILE
func cmdReadmeTry(ts *testscript.TestScript, neg bool, args []string) {
	if neg || len(args) != 1 {
		ts.Fatalf("usage: readmetry FILE")
	}
	readme, err := os.ReadFile(repoFile("README.md"))
	ts.Check(err)
	blocks := shellBlocks(section(string(readme), "## Try it"))
	if len(blocks) != 2 || strings.TrimSpace(blocks[0].Text) != "make run" {
		ts.Fatalf("README 'Try it': want a 'make run' block and a block of lines to paste, got %d blocks", len(blocks))
	}
	text := blocks[1].Text
	for from, to := range map[string]string{
		"https://127.0.0.1:7373": ts.Getenv("DEV_URL"),
		"kes:v1:...":             ts.Getenv("DEV_API_KEY"),
		"/path/to/kes":           ts.Getenv("DEV_KES"),
	} {
		if !strings.Contains(text, from) {
			ts.Fatalf("README 'Try it' lines do not contain the example value %q", from)
		}
		text = strings.ReplaceAll(text, from, to)
	}
	if banner := ts.ReadFile("banner.sh"); text != banner {
		ts.Fatalf("README 'Try it' lines differ from the banner:\nREADME:\n%s\nbanner:\n%s", text, banner)
	}
	ts.Check(os.WriteFile(ts.MkAbs(args[0]), []byte(text), 0o644))
}

// section returns the part of a Markdown document from the heading line
// to the next heading of the same or a higher level.
func section(doc, heading string) string {
	level := strings.Count(strings.Fields(heading)[0], "#")
	_, rest, ok := strings.Cut(doc, "\n"+heading+"\n")
	if !ok {
		return ""
	}
	for _, l := range strings.SplitAfter(rest, "\n") {
		if h := strings.Fields(l); len(h) > 0 && strings.Trim(h[0], "#") == "" && len(h[0]) <= level {
			rest, _, _ = strings.Cut(rest, l)
			break
		}
	}
	return rest
}
