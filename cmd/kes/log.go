// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"time"

	"github.com/minio/kms-go/kes"
)

const logUsage = `Usage:
    kes log [options]

Prints the server's audit log (default) or error log as the server writes
it, until interrupted. Past events are not shown.

Options:
        --audit              Print the audit log (default).
        --error              Print the error log.
    -k, --insecure           Skip server certificate verification.
        --json               Print events as NDJSON.
        --color WHEN         Colorize output: auto (default), never or always.
    -h, --help               Print command line options.
`

func logCmd(args []string) error {
	var (
		cf               clientFlags
		auditLog, errLog bool
	)
	fs := newFlagSet("kes log")
	cf.register(fs)
	fs.BoolVar(&auditLog, "audit", false, "")
	fs.BoolVar(&errLog, "error", false, "")
	if err := parseFlags(fs, logUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	if auditLog && errLog {
		return usagef("kes log: '--audit' and '--error' cannot be used together")
	}
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	// A log stream has no timeout: it ends when the user interrupts it.
	ctx, cancel := signalContext()
	defer cancel()
	if errLog {
		err = streamErrorLog(ctx, client, stdout, cf.json, nil)
	} else {
		err = streamAuditLog(ctx, client, stdout, cf.json, nil)
	}
	if ctx.Err() != nil {
		return nil // interrupted: the normal way to stop
	}
	return err
}

// auditHeader is the table header of the audit log text view.
const auditHeader = "Time      Status  Identity    IP               API                                      Latency\n"

// streamAuditLog subscribes to the audit log and writes every event to w
// until ctx is done or the server closes the stream. subscribed, if not
// nil, is called once the server has accepted the subscription, i.e.
// from then on no event is missed.
func streamAuditLog(ctx context.Context, client *kes.Client, w io.Writer, asJSON bool, subscribed func()) error {
	stream, err := client.AuditLog(ctx)
	if err != nil {
		return clientError(err)
	}
	return copyLog(stream, w, asJSON, subscribed, auditHeader, func(s *kes.AuditStream) string {
		return formatAuditEvent(s.Event())
	})
}

// formatAuditEvent formats one audit log table row. The response time is
// a Go duration on the wire (nanoseconds), as this server sends it and
// the client library decodes it; minio/kes sent milliseconds instead.
func formatAuditEvent(e kes.AuditEvent) string {
	id := e.ClientIdentity.String()
	if len(id) > 10 {
		id = id[:10]
	}
	ip := "-"
	if e.ClientIP != nil {
		ip = e.ClientIP.String()
	}
	status := strconv.Itoa(e.StatusCode)
	latency := e.ResponseTime
	if latency > time.Millisecond {
		latency = latency.Round(time.Microsecond)
	}
	return fmt.Sprintf("%-9s %-7s %-11s %-16s %-40s %s\n",
		e.Timestamp.Local().Format(time.TimeOnly), status, id, ip, e.APIPath, latency)
}

// streamErrorLog is streamAuditLog for the error log: one message per
// line, or NDJSON {"message": ...} objects.
func streamErrorLog(ctx context.Context, client *kes.Client, w io.Writer, asJSON bool, subscribed func()) error {
	stream, err := client.ErrorLog(ctx)
	if err != nil {
		return clientError(err)
	}
	return copyLog(stream, w, asJSON, subscribed, "", func(s *kes.ErrorStream) string {
		return s.Message() + "\n"
	})
}

// logStream is what the audit and the error log streams have in common.
type logStream interface {
	Next() bool
	WriteTo(io.Writer) (int64, error)
	Close() error
}

// copyLog writes the events of stream to w until it ends: as NDJSON, or
// as the header followed by one row per event. It calls subscribed, if
// not nil, first. A stream ended by cancelling its context is no error.
func copyLog[S logStream](stream S, w io.Writer, asJSON bool, subscribed func(), header string, row func(S) string) error {
	defer stream.Close()
	if subscribed != nil {
		subscribed()
	}
	if asJSON {
		_, err := stream.WriteTo(w)
		return err
	}
	if _, err := io.WriteString(w, header); err != nil {
		return err
	}
	for stream.Next() {
		if _, err := io.WriteString(w, row(stream)); err != nil {
			return err
		}
	}
	if err := stream.Close(); err != nil && !errors.Is(err, context.Canceled) {
		return err
	}
	return nil
}
