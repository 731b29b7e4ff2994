// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/minio/kms-go/kes"
)

const statusUsage = `Usage:
    kes status [options]

Prints the status of the server: version, uptime, the latency this client
measured, and resource usage. Output to a pipe, or with --json, is JSON.

Options:
    -s, --short              Print only whether the server is up.
        --api                List the server's APIs.
    -k, --insecure           Skip server certificate verification.
        --json               Print output in JSON format.
        --color WHEN         Colorize output: auto (default), never or always.
    -h, --help               Print command line options.
`

func statusCmd(args []string) error {
	var (
		cf          clientFlags
		short, apis bool
	)
	fs := newFlagSet("kes status")
	cf.register(fs)
	fs.BoolVarP(&short, "short", "s", false, "")
	fs.BoolVar(&apis, "api", false, "")
	if err := parseFlags(fs, statusUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()

	start := time.Now()
	state, err := client.Status(ctx)
	if err != nil {
		return clientError(err)
	}
	latency := time.Since(start)

	var routes []kes.API
	if apis {
		if routes, err = client.APIs(ctx); err != nil {
			return clientError(err)
		}
		slices.SortFunc(routes, func(a, b kes.API) int { return strings.Compare(a.Path, b.Path) })
	}

	// The fields this server adds to /v1/status; a server that does
	// not send them (minio/kes) leaves them empty.
	var extra statusExtra
	if !short || cf.json || !isTerminal(stdout) {
		extra = fetchStatusExtra(ctx, &client.HTTPClient, client.Endpoints[0])
	}
	if cf.json || !isTerminal(stdout) {
		if apis {
			return writeJSON(stdout, routes)
		}
		return writeJSON(stdout, statusJSON(state, extra))
	}
	host := strings.TrimPrefix(client.Endpoints[0], "https://")
	return printStatus(stdout, host, state, latency, extra, short, routes)
}

// statusExtra are the /v1/status fields of this server that the kes
// clients do not decode.
type statusExtra struct {
	Keystore     string        `json:"keystore,omitempty"`
	Driver       string        `json:"keystore_driver,omitempty"`
	State        string        `json:"keystore_state,omitempty"`
	Error        string        `json:"keystore_error,omitempty"`
	Linearizable *bool         `json:"keystore_linearizable,omitempty"`
	KMIPAddr     string        `json:"kmip_address,omitempty"`
	KMIPConns    *int          `json:"kmip_connections,omitempty"`
	Seal         string        `json:"seal,omitempty"`
	SealState    string        `json:"seal_state,omitempty"`
	SealError    string        `json:"seal_error,omitempty"`
	SealLatency  time.Duration `json:"seal_latency,omitempty"`
}

// fetchStatusExtra reads the fields of statusExtra from /v1/status. Any
// failure gives the zero value: they are extras.
func fetchStatusExtra(ctx context.Context, client *http.Client, endpoint string) statusExtra {
	var x statusExtra
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, endpoint+"/v1/status", nil)
	if err != nil {
		return x
	}
	resp, err := client.Do(req)
	if err != nil {
		return x
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&x) != nil {
		return statusExtra{}
	}
	return x
}

// statusJSON is the --json output: the state as the kes clients encode
// it, plus the extras (keystore_error among them).
func statusJSON(state kes.State, x statusExtra) any {
	out := map[string]any{}
	if b, err := json.Marshal(state); err == nil {
		json.Unmarshal(b, &out)
	}
	if b, err := json.Marshal(x); err == nil {
		json.Unmarshal(b, &out)
	}
	return out
}

// keystoreNote returns what to say about a keystore whose
// compare-and-swap holds only within one node, or "".
func keystoreNote(x statusExtra) string {
	if x.Linearizable == nil || *x.Linearizable {
		return ""
	}
	return "compare-and-swap within one node; KMIP lifecycle changes use leases"
}

// stateLine says how a keystore or sealer is: its state, with the
// latency when available and the reason otherwise.
func stateLine(state, reason string, latency time.Duration) string {
	switch {
	case state == "available" && latency > 0:
		return fmt.Sprintf("available, %s", latency.Round(10*time.Microsecond))
	case reason != "":
		return state + ": " + reason
	}
	return state
}

func printStatus(w io.Writer, host string, s kes.State, latency time.Duration, x statusExtra, short bool, routes []kes.API) error {
	var b strings.Builder
	if useColor(w) {
		fmt.Fprintf(&b, "\x1b[1;32m●\x1b[0m \x1b[1m%s\x1b[0m\n", host)
	} else {
		fmt.Fprintf(&b, "● %s\n", host)
	}
	if !short {
		fmt.Fprintf(&b, "  %-9s%s\n", "Version", s.Version)
		fmt.Fprintf(&b, "  %-9s%s\n", "Uptime", formatUptime(s.UpTime))
		fmt.Fprintf(&b, "  %-9s%s\n", "Latency", latency.Round(time.Millisecond/10))
		fmt.Fprintf(&b, "  %-9s%s/%s\n", "OS", s.OS, s.Arch)
		fmt.Fprintf(&b, "  %-9s%d of %d\n", "CPUs", s.UsableCPUs, s.CPUs)
		fmt.Fprintf(&b, "  %s\n", "Memory")
		fmt.Fprintf(&b, "   · %-6s%s\n", "Heap", formatBytes(s.HeapAlloc))
		fmt.Fprintf(&b, "   · %-6s%s\n", "Stack", formatBytes(s.StackAlloc))
		if x.Keystore != "" {
			fmt.Fprintf(&b, "  %-9s%s\n", "Keystore", x.Keystore)
			fmt.Fprintf(&b, "   · %-6s%s\n", "State", stateLine(x.State, x.Error, s.KeyStoreLatency))
		}
		if note := keystoreNote(x); note != "" {
			if x.Keystore == "" {
				fmt.Fprintf(&b, "  %s\n", "Keystore")
			}
			fmt.Fprintf(&b, "   · %-6s%s\n", "Note", note)
		}
		if x.Seal != "" {
			fmt.Fprintf(&b, "  %-9s%s\n", "Seal", x.Seal)
			fmt.Fprintf(&b, "   · %-6s%s\n", "State", stateLine(x.SealState, x.SealError, x.SealLatency))
		}
		if x.KMIPAddr != "" && x.KMIPConns != nil {
			fmt.Fprintf(&b, "  %-9s%s, %d open connections\n", "KMIP", x.KMIPAddr, *x.KMIPConns)
		}
	}
	if routes != nil {
		fmt.Fprintf(&b, "\n  %-7s %-28s %s\n", "Method", "API", "Timeout")
		for _, r := range routes {
			timeout := "none"
			if r.Timeout > 0 {
				timeout = r.Timeout.String()
			}
			fmt.Fprintf(&b, "  %-7s %-28s %s\n", r.Method, r.Path, timeout)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func formatUptime(d time.Duration) string {
	switch {
	case d >= 48*time.Hour:
		return fmt.Sprintf("%.0f days %.0f hours", math.Floor(d.Hours()/24), math.Mod(math.Floor(d.Hours()), 24))
	case d >= 2*time.Hour:
		return fmt.Sprintf("%.0f hours", math.Floor(d.Hours()))
	case d >= 2*time.Minute:
		return fmt.Sprintf("%.0f minutes", math.Floor(d.Minutes()))
	default:
		return fmt.Sprintf("%.0f seconds", math.Floor(d.Seconds()))
	}
}

func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
