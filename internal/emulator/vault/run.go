// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package vault

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/kesbridge/kes/internal/emulator/emuenv"
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
	if err := os.WriteFile(cfg.CAFile, s.CACertPEM(), 0o644); err != nil {
		return fmt.Errorf("emulator: write CA certificate: %w", err)
	}
	if err := s.Start(addr); err != nil {
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
	if cfg.EnvFile != "" {
		vars := []emuenv.Var{{Name: "VAULT_ENDPOINT", Value: s.URL()}}
		if len(s.cfg.AppRoles) > 0 {
			a := s.cfg.AppRoles[0]
			vars = append(vars, emuenv.Var{Name: "VAULT_ROLE_ID", Value: a.RoleID}, emuenv.Var{Name: "VAULT_SECRET_ID", Value: a.SecretID})
		}
		vars = append(vars, emuenv.Var{Name: "VAULT_CA", Value: cfg.CAFile})
		if kv.Namespace != "" {
			vars = append(vars, emuenv.Var{Name: "VAULT_NAMESPACE", Value: kv.Namespace})
		}
		if err := emuenv.Write(cfg.EnvFile, vars); err != nil {
			s.Close()
			return err
		}
		defer emuenv.Remove(cfg.EnvFile)
		fmt.Fprintf(out, "The values above are in %s (set -a; . %s; set +a).\n\n", cfg.EnvFile, cfg.EnvFile)
	}

	select {
	case <-ctx.Done():
	case err := <-s.serveErr:
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
