// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package emuenv writes the values an emulator prints into an environment
// file, so that a shell can source them (set -a; . FILE; set +a) and a
// server config can refer to them as ${NAME} without anyone copying them
// by hand.
package emuenv

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/kesbridge/kes/internal/atomicfile"
)

// Var is one NAME=value line of an environment file.
type Var struct {
	Name, Value string
}

var (
	nameRE = regexp.MustCompile(`^[A-Z_][A-Z0-9_]*$`)
	// plainRE are values that need no quotes in a shell, a systemd
	// EnvironmentFile or a container env file alike.
	plainRE = regexp.MustCompile(`^[A-Za-z0-9_./:@%+,=-]+$`)
)

// Write writes vars to path, one NAME=value line each, with mode 0600 since
// the values include credentials. Values that a shell would split or
// interpret are single-quoted. The file appears at once with its whole
// content (it is written under a temporary name and renamed), so a reader
// that waits for it never sees a part; an existing file is replaced.
func Write(path string, vars []Var) error {
	var b strings.Builder
	b.WriteString("# Written by the emulator; valid while it runs. Secrets: keep it private.\n")
	for _, v := range vars {
		if !nameRE.MatchString(v.Name) {
			return fmt.Errorf("emulator: env file: invalid variable name %q", v.Name)
		}
		if strings.ContainsAny(v.Value, "\n\r\x00") {
			return fmt.Errorf("emulator: env file: value of %s has a line break", v.Name)
		}
		fmt.Fprintf(&b, "%s=%s\n", v.Name, quote(v.Value))
	}
	dir, name := filepath.Split(path)
	if name == "" {
		return errors.New("emulator: env file: path names a directory")
	}
	if dir == "" {
		dir = "."
	}
	if err := atomicfile.Replace(dir, name, []byte(b.String())); err != nil {
		return fmt.Errorf("emulator: write env file: %w", err)
	}
	return nil
}

func quote(s string) string {
	if plainRE.MatchString(s) {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// Remove removes the file Write wrote, when the values it holds stop
// being valid; a file that is gone already is no error.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("emulator: remove env file: %w", err)
	}
	return nil
}
