// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import "slices"

const lsUsage = `Usage:
    kes ls [options] [<prefix>]

Lists keys, or identities (-i) or policies (-p), whose names start with
the prefix.

Options:
    -a, --api-key KEY        API key to authenticate with (default: $KES_API_KEY).
    -s, --server HOST:PORT   Server to talk to (default: $KES_SERVER).
    -i, --identity           List identities.
    -p, --policy             List policies.
    -k, --insecure           Skip server certificate verification.
        --json               Print output in JSON format.
        --color WHEN         Colorize output: auto (default), never or always.
    -h, --help               Print command line options.
`

func lsCmd(args []string) error {
	var (
		cf                   clientFlags
		identities, policies bool
	)
	fs := newFlagSet("kes ls")
	cf.register(fs)
	fs.StringVarP(&cf.apiKey, "api-key", "a", "", "")
	fs.StringVarP(&cf.server, "server", "s", "", "")
	fs.BoolVarP(&identities, "identity", "i", false, "")
	fs.BoolVarP(&policies, "policy", "p", false, "")
	if err := parseFlags(fs, lsUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 1); err != nil {
		return err
	}
	if identities && policies {
		return usagef("kes ls: '-i / --identity' and '-p / --policy' cannot be used together")
	}
	prefix := fs.Arg(0) // "" if absent: everything
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()

	var (
		names  []string
		header string
	)
	switch {
	case identities:
		header = "Identity"
		names, err = listNames(ctx, client.ListIdentities, prefix)
	case policies:
		header = "Policy"
		names, err = listNames(ctx, client.ListPolicies, prefix)
	default:
		header = "Key"
		names, err = listNames(ctx, client.ListKeys, prefix)
	}
	if err != nil {
		return clientError(err)
	}
	slices.Sort(names)
	return printNames(stdout, header, names, cf.json)
}
