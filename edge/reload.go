// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/gcpace"
)

// shutdownTimeout is how long Run waits for requests in flight.
const shutdownTimeout = 5 * time.Second

// Options are the `kes server` flags.
type Options struct {
	// ConfigFile is the server config file (--config). Not allowed with
	// Dev.
	ConfigFile string
	// Addr overrides the listen address (--addr).
	Addr string
	// Dev starts a development server (--dev): self-signed certificate,
	// random admin API key, in-memory keystore or, with DataDir, a
	// filesystem keystore in DataDir.
	Dev     bool
	DataDir string
	// MLock locks the memory of keys (--mlock), as `mlock: true` does.
	MLock bool
	// WaitKeystore starts the server even if its keystore cannot be
	// reached (--wait-keystore, on by default in the CLI): see
	// ServerOptions.WaitKeystore.
	WaitKeystore bool
	// Stdout receives the banner and the audit log, Stderr the error
	// log. Nil means os.Stdout and os.Stderr.
	Stdout, Stderr io.Writer
}

// Run runs the server until ctx is done, then shuts it down gracefully.
// SIGHUP reloads the config file: a broken new config is logged and the
// old one keeps running. While it runs, it paces the process's garbage
// collector (see internal/gcpace) unless GOGC or GOMEMLIMIT is set.
func Run(ctx context.Context, opts Options) error {
	if opts.Stdout == nil {
		opts.Stdout = os.Stdout
	}
	if opts.Stderr == nil {
		opts.Stderr = os.Stderr
	}
	var (
		cfg    *Config
		apiKey identity.APIKey
		err    error
	)
	switch {
	case opts.Dev && opts.ConfigFile != "":
		return errors.New("--config cannot be used with --dev")
	case opts.Dev:
		if cfg, apiKey, err = DevConfig(opts.Addr, opts.DataDir); err != nil {
			return err
		}
	case opts.ConfigFile == "":
		return errors.New("no config file: use --config FILE or --dev")
	default:
		if cfg, err = loadConfig(opts); err != nil {
			return err
		}
	}
	mlock := opts.MLock || cfg.MLock || cfg.MLockAll
	if err := lockMemory(opts.MLock || cfg.MLock, cfg.MLockAll); err != nil {
		return err
	}

	srv, err := NewServer(ctx, cfg, ServerOptions{Stdout: opts.Stdout, Stderr: opts.Stderr, WaitKeystore: opts.WaitKeystore})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		srv.Shutdown(context.Background())
		return fmt.Errorf("failed to listen: %w", err)
	}
	if err := srv.StartKMIP(ctx); err != nil {
		ln.Close()
		srv.Shutdown(context.Background())
		return err
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)

	// The server process paces its collector (internal/gcpace); an
	// embedder calling NewServer keeps its own.
	pace, stopPace := context.WithCancel(ctx)
	defer stopPace()
	go gcpace.Run(pace)
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	printBanner(opts.Stdout, bannerInfo{cfg: cfg, store: srv.Keys().Store(), mlock: mlock, apiKey: apiKey, kmip: srv.KMIPAddr()})
	for {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
			defer cancel()
			return srv.Shutdown(sctx)
		case err := <-serveErr:
			if errors.Is(err, http.ErrServerClosed) {
				return nil
			}
			srv.Shutdown(context.Background())
			return fmt.Errorf("server failed: %w", err)
		case <-hup:
			if opts.Dev {
				srv.ErrorLog().Info("SIGHUP ignored: a dev server has no config file to reload")
				continue
			}
			next, err := loadConfig(opts)
			if err == nil && next.Addr != cfg.Addr {
				err = errors.New("the address cannot change on reload: restart the server")
			}
			if err == nil {
				err = srv.Reload(ctx, next)
			}
			if err != nil {
				srv.ErrorLog().Error("reload failed, keeping the running config", "err", err)
				continue
			}
			cfg = next
			srv.ErrorLog().Info("config reloaded", "file", opts.ConfigFile)
			printBanner(opts.Stdout, bannerInfo{cfg: cfg, store: srv.Keys().Store(), mlock: mlock, kmip: srv.KMIPAddr()})
		}
	}
}

func loadConfig(opts Options) (*Config, error) {
	cfg, err := ReadConfig(opts.ConfigFile)
	if err != nil {
		return nil, err
	}
	if opts.Addr != "" {
		if err := checkAddr(opts.Addr); err != nil {
			return nil, fmt.Errorf("--addr: %w", err)
		}
		cfg.Addr = opts.Addr
	}
	return cfg, nil
}

// DevConfig returns the configuration of `kes server --dev`: a
// self-signed certificate for addr, a random admin API key (returned),
// any client certificate accepted, cache 5m/30s/off, audit log on, and
// an in-memory keystore, or a filesystem keystore in dataDir if set.
func DevConfig(addr, dataDir string) (*Config, identity.APIKey, error) {
	if addr == "" {
		addr = DefaultAddr
	}
	if err := checkAddr(addr); err != nil {
		return nil, nil, fmt.Errorf("--addr: %w", err)
	}
	key, err := identity.GenerateAPIKey(nil)
	if err != nil {
		return nil, nil, fmt.Errorf("failed to generate admin API key: %w", err)
	}
	cert, err := selfSigned(addr)
	if err != nil {
		return nil, nil, err
	}
	cfg := &Config{
		Addr:       addr,
		Admin:      identity.OfAPIKey(key),
		TLS:        TLSConfig{ProxyHeader: DefaultProxyHeader},
		API:        map[string]APIConfig{},
		Policies:   map[string]PolicyConfig{},
		ErrorLevel: slog.LevelInfo,
		AuditLevel: slog.LevelInfo,
		Dev:        true,
		devCert:    cert,
	}
	cfg.Cache.Expiry, cfg.Cache.ExpiryUnused = DefaultCacheExpiry, DefaultCacheUnused
	if dataDir != "" {
		cfg.Keystore.FS = &FSConfig{Path: dataDir}
	} else {
		cfg.Keystore.mem = true
	}
	return cfg, key, nil
}
