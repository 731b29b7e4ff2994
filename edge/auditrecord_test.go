// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"context"
	"log/slog"
	"testing"
	"time"
)

// auditByLogger is how audit records were written before logAudit: the
// attributes through Logger.LogAttrs.
func auditByLogger(h slog.Handler, msg, method, path, ip, id string, code int, kmipReason string, took time.Duration) {
	attrs := []slog.Attr{
		slog.String("req.method", method),
		slog.String("req.path", path),
		slog.String("req.ip", ip),
		slog.String("req.identity", id),
		slog.Int("res.code", code),
	}
	if kmipReason != "" {
		attrs = append(attrs, slog.String("res.kmip_reason", kmipReason))
	}
	attrs = append(attrs, slog.Duration("res.time", took))
	slog.New(h).LogAttrs(context.Background(), slog.LevelInfo, msg, attrs...)
}

// TestLogAuditSameRecord checks that logAudit writes byte for byte the
// audit line that Logger.LogAttrs writes for the same record, with the
// handler the server uses, on ordinary and hostile values. The time is
// the one thing LogAttrs takes itself: both lines are compared without it.
func TestLogAuditSameRecord(t *testing.T) {
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	type rec struct {
		msg, method, path, ip, id string
		code                      int
		reason                    string
		took                      time.Duration
	}
	recs := []rec{
		{"api call", "PUT", "/v1/key/generate/my-key", "127.0.0.1", "3ecfcdf38fcbe141ae26a1030f81e96b753365a46760ae6b578698a97c59fd22", 200, "", 1234567},
		{"secret key 'k' created", "POST", "/v1/key/create/k", "::1", "", 403, "", 0},
		{"api call", "", "/kmip/get/uid-1", "10.0.0.1", "id", 0, "Item Not Found", 17 * time.Millisecond},
		{"api call", "GET", "/v1/key/list/a b=\"c\"\n\x00\xff", "", "x=y", 599, "a \"reason\"", -time.Second},
		{"msg with \"quotes\"\tand tab", "FOO", "/\u00b5/\u2028/\U0001F600", "not an ip", "µ", -1, "r\nr", 1<<63 - 1},
	}
	for _, r := range recs {
		var want, got bytes.Buffer
		auditByLogger(slog.NewTextHandler(&want, &slog.HandlerOptions{ReplaceAttr: noTime}), r.msg, r.method, r.path, r.ip, r.id, r.code, r.reason, r.took)
		logAudit(slog.NewTextHandler(&got, &slog.HandlerOptions{ReplaceAttr: noTime}), time.Now(), r.msg, r.method, r.path, r.ip, r.id, r.code, r.reason, r.took)
		if got.String() != want.String() {
			t.Errorf("logAudit wrote\n%q\nLogAttrs writes\n%q", got.String(), want.String())
		}
	}
	// With the time: the same line for the same instant.
	at := time.Date(2026, 12, 2, 3, 4, 5, 678901234, time.UTC)
	var got bytes.Buffer
	logAudit(slog.NewTextHandler(&got, nil), at, "api call", "PUT", "/v1/key/decrypt/k", "127.0.0.1", "id", 200, "", time.Millisecond)
	const want = "time=2026-12-02T03:04:05.678Z level=INFO msg=\"api call\" req.method=PUT req.path=/v1/key/decrypt/k req.ip=127.0.0.1 req.identity=id res.code=200 res.time=1ms\n"
	if got.String() != want {
		t.Errorf("logAudit wrote %q; want %q", got.String(), want)
	}
}

// FuzzLogAudit compares logAudit with Logger.LogAttrs on any message,
// path, identity and KMIP reason.
func FuzzLogAudit(f *testing.F) {
	f.Add("api call", "/v1/key/generate/k", "id", "", 200, int64(1234))
	f.Add("a \"b\"", "/a b\n", "x=y", "Item Not Found", -1, int64(-5))
	noTime := func(groups []string, a slog.Attr) slog.Attr {
		if len(groups) == 0 && a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	f.Fuzz(func(t *testing.T, msg, path, id, reason string, code int, took int64) {
		var want, got bytes.Buffer
		auditByLogger(slog.NewTextHandler(&want, &slog.HandlerOptions{ReplaceAttr: noTime}), msg, "PUT", path, "127.0.0.1", id, code, reason, time.Duration(took))
		logAudit(slog.NewTextHandler(&got, &slog.HandlerOptions{ReplaceAttr: noTime}), time.Now(), msg, "PUT", path, "127.0.0.1", id, code, reason, time.Duration(took))
		if got.String() != want.String() {
			t.Errorf("logAudit wrote\n%q\nLogAttrs writes\n%q", got.String(), want.String())
		}
	})
}
