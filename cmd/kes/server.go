// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/kesbridge/kes/edge"
	"github.com/kesbridge/kes/keystore"
)

const serverUsage = `Usage:
    kes server [options]

Options:
        --addr IP:PORT       The address of the server (default: 0.0.0.0:7373,
                             or the 'address' of the config file).
        --config FILE        Path to the server config file.
        --dev                Start a development server: a self-signed
                             certificate, a random admin API key and an
                             in-memory keystore (or a filesystem one with
                             --data).
        --data DIR           Keep the development server's keys in DIR.
        --mlock              Lock the memory that holds keys into RAM, so that
                             keys are never swapped to disk (mlockall: true in
                             the config locks all process memory).
        --wait-keystore      Start even if the keystore cannot be reached:
                             answer 503 until it can (default: true). With
                             --wait-keystore=false the server exits instead.
    -h, --help               Print command line options.

Examples:
    $ kes server --dev
    $ kes server --dev --addr 127.0.0.1:7373 --data ./kes-data
    $ kes server --config config.yml --addr 0.0.0.0:7000
`

func serverCmd(args []string) error {
	var (
		opts                    edge.Options
		keyFile, certFile, auth string
	)
	fs := newFlagSet("kes server")
	fs.StringVar(&opts.Addr, "addr", "", "")
	fs.StringVar(&opts.ConfigFile, "config", "", "")
	fs.BoolVar(&opts.Dev, "dev", false, "")
	fs.StringVar(&opts.DataDir, "data", "", "")
	fs.BoolVar(&opts.MLock, "mlock", false, "")
	fs.BoolVar(&opts.WaitKeystore, "wait-keystore", true, "")
	fs.StringVar(&keyFile, "key", "", "")
	fs.StringVar(&certFile, "cert", "", "")
	fs.StringVar(&auth, "auth", "", "")
	if err := parseFlags(fs, serverUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	// minio/kes removed these flags but kept accepting them, so old
	// service files keep starting.
	for _, name := range []string{"key", "cert", "auth"} {
		if fs.Changed(name) {
			fmt.Fprintf(stderr, "kes: warning: '--%s' flag is deprecated and no longer honored\n", name)
		}
	}
	switch {
	case opts.Dev && opts.ConfigFile != "":
		return usagef("kes server: '--config' and '--dev' cannot be used together")
	case !opts.Dev && opts.ConfigFile == "":
		return usagef("kes server: no config file specified: use '--config FILE' or '--dev'")
	}

	opts.Stdout, opts.Stderr = stdout, stderr
	ctx, cancel := signalContext()
	defer cancel()
	if err := edge.Run(ctx, opts); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}

// openKeystore reads a server config file and opens its keystore, with
// any sealer it configures, the way the server would.
func openKeystore(ctx context.Context, configFile string, log *slog.Logger) (keystore.Store, error) {
	cfg, err := edge.ReadConfig(configFile)
	if err != nil {
		return nil, err
	}
	store, err := edge.OpenKeystore(ctx, cfg, log)
	if err != nil {
		return nil, fmt.Errorf("failed to open keystore of '%s': %w", configFile, err)
	}
	return store, nil
}

// buildVersion returns the version and commit of this binary: the ones
// stamped into the server package at build time, else the VCS stamp.
func buildVersion() (version, commit string) { return edge.BuildInfo() }
