// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/kesbridge/kes/internal/emulator/emuenv"
	"github.com/kesbridge/kes/internal/emulator/emurun"
)

// Run starts an emulator for cfg on addr, writes its CA certificate to
// cfg.CAFile, prints a keystore.vault configuration for it to out (and
// writes its values to cfg.EnvFile, if set), and serves until ctx is done. It is what `kes dev vault` runs.
func Run(ctx context.Context, addr string, cfg Config, out io.Writer) error {
	if cfg.CAFile == "" {
		cfg.CAFile = filepath.Join(os.TempDir(), "vault-emulator-ca.pem")
	}
	s, err := New(cfg)
	if err != nil {
		return err
	}
	if err := emurun.Start(s, addr, cfg.CAFile); err != nil {
		return err
	}
	kv := s.cfg.KV[0]
	version := "v1"
	if kv.Version == 2 {
		version = "v2"
	}
	fmt.Fprintf(out, "HashiCorp Vault emulator (in memory, for tests and demos only)\n\n")
	fmt.Fprintf(out, "  endpoint:    %s\n", s.URL())
	fmt.Fprintf(out, "  root token:  %s\n", s.RootToken())
	fmt.Fprintf(out, "  token TTL:   %s (max %s)\n\n", s.cfg.TokenTTL, s.cfg.TokenMaxTTL)
	fmt.Fprintf(out, "keystore section for the server config (demo credentials):\n\n")
	fmt.Fprintf(out, "keystore:\n  vault:\n    endpoint: %s\n    engine: %s\n    version: %s\n", s.URL(), kv.Path, version)
	if kv.Namespace != "" {
		fmt.Fprintf(out, "    namespace: %s\n", kv.Namespace)
	}
	fmt.Fprintf(out, "    prefix: kes\n")
	if len(s.cfg.AppRoles) > 0 {
		a := s.cfg.AppRoles[0]
		fmt.Fprintf(out, "    approle:\n      engine: %s\n      id: %s\n      secret: %s\n", a.Mount, a.RoleID, a.SecretID)
	}
	if len(s.cfg.Transit) > 0 && len(s.cfg.Transit[0].Keys) > 0 {
		fmt.Fprintf(out, "    # transit:\n    #   engine: %s\n    #   key: %s\n", s.cfg.Transit[0].Path, s.cfg.Transit[0].Keys[0])
	}
	fmt.Fprintf(out, "    tls:\n      ca: %s\n\n", cfg.CAFile)
	if len(s.cfg.KubernetesRoles) > 0 {
		k := s.cfg.KubernetesRoles[0]
		fmt.Fprintf(out, "Kubernetes login instead of approle: role %s on auth/%s, jwt %s\n\n", k.Role, k.Mount, k.JWT)
	}
	var vars []emuenv.Var
	if cfg.EnvFile != "" {
		vars = []emuenv.Var{{Name: "VAULT_ENDPOINT", Value: s.URL()}}
		if len(s.cfg.AppRoles) > 0 {
			a := s.cfg.AppRoles[0]
			vars = append(vars, emuenv.Var{Name: "VAULT_ROLE_ID", Value: a.RoleID}, emuenv.Var{Name: "VAULT_SECRET_ID", Value: a.SecretID})
		}
		vars = append(vars, emuenv.Var{Name: "VAULT_CA", Value: cfg.CAFile})
		if kv.Namespace != "" {
			vars = append(vars, emuenv.Var{Name: "VAULT_NAMESPACE", Value: kv.Namespace})
		}
	}
	return emurun.Serve(ctx, s, s.serveErr, cfg.EnvFile, vars, out)
}
