// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build !kesedge

package main

import (
	"context"
	"errors"
	"log/slog"

	"github.com/kesbridge/kes/keystore"
)

var errNoEdge = errors.New("server not available in this build")

func serverCmd([]string) error { return errNoEdge }

func openKeystore(context.Context, string, *slog.Logger) (keystore.Store, error) {
	return nil, errNoEdge
}

func buildVersion() (version, commit string) { return "<unknown>", "" }
