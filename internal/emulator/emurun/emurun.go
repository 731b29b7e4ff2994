// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package emurun holds the part of `kes dev <emulator>` that the HTTP
// emulators (Vault, KeyControl) share: publishing the CA certificate,
// starting, writing the env file and serving until the command ends.
// What an emulator prints is its own.
package emurun

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emuenv"
)

// Server is an emulator that Start and Serve run.
type Server interface {
	CACertPEM() []byte
	Start(addr string) error
	Close() error
	Shutdown(ctx context.Context) error
}

// Start writes the CA certificate of s to caFile, so that clients can
// trust it, and starts s on addr.
func Start(s Server, addr, caFile string) error {
	if err := os.WriteFile(caFile, s.CACertPEM(), 0o644); err != nil {
		return fmt.Errorf("emulator: write CA certificate: %w", err)
	}
	return s.Start(addr)
}

// Serve writes vars to envFile (unless envFile is empty) and says so on
// out, then serves until ctx is done, when it shuts s down within 5
// seconds, or until serving fails, as serveErr reports. The env file is
// removed again when Serve returns. On failure s is closed.
func Serve(ctx context.Context, s Server, serveErr <-chan error, envFile string, vars []emuenv.Var, out io.Writer) error {
	if envFile != "" {
		if err := emuenv.Write(envFile, vars); err != nil {
			s.Close()
			return err
		}
		defer emuenv.Remove(envFile)
		fmt.Fprintf(out, "The values above are in %s (set -a; . %s; set +a).\n\n", envFile, envFile)
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		s.Close()
		return fmt.Errorf("emulator: serve: %w", err)
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := s.Shutdown(sctx); err != nil {
		s.Close()
	}
	return nil
}
