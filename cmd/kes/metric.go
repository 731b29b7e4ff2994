// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/minio/kms-go/kes"
)

const metricUsage = `Usage:
    kes metric [options]

Polls the server's metrics and prints a summary every --rate, until
interrupted.

Options:
        --rate DURATION      Time between two samples (default: 5s).
    -n, --count N            Stop after N samples (default: 0, no limit).
    -k, --insecure           Skip server certificate verification.
        --json               Print every sample as one JSON line.
        --color WHEN         Colorize output: auto (default), never or always.
    -h, --help               Print command line options.
`

func metricCmd(args []string) error {
	var (
		cf    clientFlags
		rate  time.Duration
		count int
	)
	fs := newFlagSet("kes metric")
	cf.register(fs)
	fs.DurationVar(&rate, "rate", 5*time.Second, "")
	fs.IntVarP(&count, "count", "n", 0, "")
	if err := parseFlags(fs, metricUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	if rate <= 0 {
		return usagef("kes metric: '--rate' must be positive")
	}
	if count < 0 {
		return usagef("kes metric: '--count' must not be negative")
	}
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := signalContext()
	defer cancel()
	err = pollMetrics(ctx, client, stdout, rate, count, cf.json)
	if ctx.Err() != nil {
		return nil // interrupted: the normal way to stop
	}
	return err
}

// pollMetrics prints count samples (0: until ctx is done), one every rate.
func pollMetrics(ctx context.Context, client *kes.Client, w io.Writer, rate time.Duration, count int, asJSON bool) error {
	ticker := time.NewTicker(rate)
	defer ticker.Stop()

	var (
		prev     kes.Metric
		prevTime time.Time
	)
	for i := 0; count == 0 || i < count; i++ {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-ticker.C:
			}
		}
		reqCtx, cancel := context.WithTimeout(ctx, requestTimeout)
		m, err := client.Metrics(reqCtx)
		cancel()
		if err != nil {
			return clientError(err)
		}
		now := time.Now()
		if asJSON {
			err = writeJSON(w, m)
		} else {
			var perSecond float64
			if !prevTime.IsZero() {
				total, prevTotal := m.RequestOK+m.RequestErr+m.RequestFail, prev.RequestOK+prev.RequestErr+prev.RequestFail
				if total >= prevTotal {
					perSecond = float64(total-prevTotal) / now.Sub(prevTime).Seconds()
				}
			}
			_, err = io.WriteString(w, formatMetric(now, m, perSecond))
		}
		if err != nil {
			return err
		}
		prev, prevTime = m, now
	}
	return nil
}

func formatMetric(now time.Time, m kes.Metric, perSecond float64) string {
	var b strings.Builder
	indent := strings.Repeat(" ", len(time.TimeOnly)+2)
	fmt.Fprintf(&b, "%s  %-9s %d ok, %d error, %d failed, %d active (%.1f req/s)\n",
		now.Format(time.TimeOnly), "Requests", m.RequestOK, m.RequestErr, m.RequestFail, m.RequestActive, perSecond)
	total := m.RequestOK + m.RequestErr + m.RequestFail
	fmt.Fprintf(&b, "%s%-9s p50 %s, p90 %s, p99 %s\n", indent, "Latency",
		percentile(m.LatencyHistogram, total, 0.5), percentile(m.LatencyHistogram, total, 0.9), percentile(m.LatencyHistogram, total, 0.99))
	fmt.Fprintf(&b, "%s%-9s up %s, %d of %d CPUs, %d threads, heap %s, stack %s\n", indent, "System",
		m.UpTime.Round(time.Second), m.UsableCPUs, m.CPUs, m.Threads, formatBytes(m.HeapAlloc), formatBytes(m.StackAlloc))
	fmt.Fprintf(&b, "%s%-9s %d audit, %d error\n", indent, "Events", m.AuditEvents, m.ErrorEvents)
	return b.String()
}

// percentile returns the upper bound of the first histogram bucket that
// holds at least the fraction q of all total requests. Buckets are
// cumulative, as in Prometheus.
func percentile(hist map[time.Duration]uint64, total uint64, q float64) string {
	if total == 0 || len(hist) == 0 {
		return "-"
	}
	bounds := slices.Sorted(maps.Keys(hist))
	want := uint64(q * float64(total))
	if want == 0 {
		want = 1
	}
	for _, le := range bounds {
		if hist[le] >= want {
			return "≤" + le.String()
		}
	}
	return ">" + bounds[len(bounds)-1].String()
}
