// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keycontrol

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/kesbridge/kes/internal/emulator/emuenv"
	"github.com/kesbridge/kes/internal/emulator/emurun"
)

// Run starts an emulator for cfg on addr, writes its CA certificate to
// cfg.CAFile, prints what a keystore.entrust.keycontrol configuration
// needs to out (and writes it to cfg.EnvFile, if set), and serves until
// ctx is done. It is what `kes dev
// keycontrol` runs.
func Run(ctx context.Context, addr string, cfg Config, out io.Writer) error {
	if cfg.CAFile == "" {
		cfg.CAFile = filepath.Join(os.TempDir(), "keycontrol-emulator-ca.pem")
	}
	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := emurun.Start(s, addr, cfg.CAFile); err != nil {
		return err
	}
	users := make([]string, 0, len(s.cfg.Users))
	for u := range s.cfg.Users {
		users = append(users, u)
	}
	slices.Sort(users)
	fmt.Fprintf(out, "Entrust KeyControl emulator (in memory, for tests and demos only)\n\n")
	fmt.Fprintf(out, "  endpoint:  %s\n", s.URL())
	fmt.Fprintf(out, "  vault_id:  %s\n", s.VaultID())
	for _, b := range s.cfg.Boxes {
		fmt.Fprintf(out, "  box_id:    %s\n", b.Name)
	}
	fmt.Fprintf(out, "  tls.ca:    %s\n", cfg.CAFile)
	fmt.Fprintf(out, "  token TTL: %s\n\n", s.cfg.TokenTTL)
	fmt.Fprintf(out, "Credentials of the emulator (demo only), for credentials.username/password:\n")
	for _, u := range users {
		fmt.Fprintf(out, "  export KC_USER=%s KC_PASSWORD=%s\n", u, s.cfg.Users[u])
	}
	fmt.Fprintln(out)
	var vars []emuenv.Var
	if cfg.EnvFile != "" {
		vars = []emuenv.Var{
			{Name: "KC_ENDPOINT", Value: s.URL()},
			{Name: "KC_VAULT_ID", Value: s.VaultID()},
			{Name: "KC_BOX", Value: s.cfg.Boxes[0].Name},
			{Name: "KC_USER", Value: users[0]},
			{Name: "KC_PASSWORD", Value: s.cfg.Users[users[0]]},
			{Name: "KC_CA", Value: cfg.CAFile},
		}
	}
	return emurun.Serve(ctx, s, s.serveErr, cfg.EnvFile, vars, out)
}
