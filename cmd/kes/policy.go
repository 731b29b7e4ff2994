// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/minio/kms-go/kes"
)

const policyUsage = `Usage:
    kes policy <command>

Commands:
    info                     Print information about a policy.
    show                     Print the rules of a policy.
    ls                       List policies (deprecated: use 'kes ls -p').

Options:
    -h, --help               Print command line options.

Policies are defined in the server config file; there is no API to change
them.
`

func policyCmd(args []string) error {
	return dispatch(map[string]func([]string) error{
		"info": policyInfoCmd,
		"show": policyShowCmd,
		"ls":   policyLsCmd,
	}, "kes policy", policyUsage, args)
}

const policyInfoUsage = `Usage:
    kes policy info [options] <name>

Options:
` + clientOptionsUsage

func policyInfoCmd(args []string) error {
	cf, fs, client, err := parseClient("kes policy info", policyInfoUsage, args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	info, err := client.DescribePolicy(ctx, fs.Arg(0))
	if err != nil {
		return clientError(err)
	}
	if info.Name == "" {
		info.Name = fs.Arg(0)
	}
	if cf.json {
		return writeJSON(stdout, info)
	}
	return printPolicyInfo(stdout, info)
}

func printPolicyInfo(w io.Writer, info *kes.PolicyInfo) error {
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s%s\n", "Name", info.Name)
	writeCreated(&b, info.CreatedAt, info.CreatedBy.String())
	_, err := io.WriteString(w, b.String())
	return err
}

const policyShowUsage = `Usage:
    kes policy show [options] <name>

Options:
` + clientOptionsUsage

// policyJSON is the JSON shape of 'kes policy show --json'.
type policyJSON struct {
	Name      string    `json:"name"`
	Allow     []string  `json:"allow"`
	Deny      []string  `json:"deny"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
}

func policyShowCmd(args []string) error {
	cf, fs, client, err := parseClient("kes policy show", policyShowUsage, args, 1, 1)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	policy, err := client.GetPolicy(ctx, fs.Arg(0))
	if err != nil {
		return clientError(err)
	}
	v := policyJSON{
		Name:      fs.Arg(0),
		Allow:     sortedKeys(policy.Allow),
		Deny:      sortedKeys(policy.Deny),
		CreatedAt: policy.CreatedAt,
		CreatedBy: policy.CreatedBy.String(),
	}
	if cf.json {
		return writeJSON(stdout, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s%s\n", "Name", v.Name)
	writeCreated(&b, v.CreatedAt, v.CreatedBy)
	writeRules(&b, "Allow", v.Allow)
	writeRules(&b, "Deny", v.Deny)
	_, err = io.WriteString(stdout, b.String())
	return err
}

const policyLsUsage = `Usage:
    kes policy ls [options] [<pattern>]

Deprecated: use 'kes ls -p'.

Options:
` + clientOptionsUsage

func policyLsCmd(args []string) error {
	return legacyLsCmd("kes policy ls", policyLsUsage, "Policy", args, (*kes.Client).ListPolicies)
}
