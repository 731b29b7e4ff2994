// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/identity"
)

// connLimitEnv is a running server whose kmip section allows max
// connections, with a client certificate its policy names.
type connLimitEnv struct {
	*env
	client tls.Certificate
	yaml   func(max string) string
}

func startConnLimitEnv(t *testing.T, max string) *connLimitEnv {
	t.Helper()
	p := newPKI(t)
	admin := newAPIKey(t)
	client := p.issue(t, "", "", x509.ExtKeyUsageClientAuth, nil)
	minio := identityOf(newAPIKey(t))
	yaml := func(max string) string {
		y := baseConfig(p, identityOf(admin), minio, "kmip:\n  address: 127.0.0.1:0\n  tls:\n    key: "+p.keyFile+"\n    cert: "+p.certFile+"\n    ca: "+p.caFile+"\n")
		if max != "" {
			y += "  max_connections: " + max + "\n"
		}
		return strings.Replace(y, "policy:\n", "policy:\n  kmip:\n    allow: [/kmip/*]\n    identities: ["+string(identity.FromCertificate(client.Leaf))+"]\n", 1)
	}
	e := start(t, p, admin, yaml(max))
	if err := e.srv.StartKMIP(context.Background()); err != nil {
		t.Fatal(err)
	}
	return &connLimitEnv{env: e, client: client, yaml: yaml}
}

// open returns a TLS connection to the bridge that has run a Discover
// Versions, so the bridge serves it.
func (e *connLimitEnv) open(t *testing.T) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.srv.KMIPAddr().String(), e.tlsConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	e.discover(t, c)
	return c
}

func (e *connLimitEnv) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.pki.roots, ServerName: "127.0.0.1", Certificates: []tls.Certificate{e.client}, MinVersion: tls.VersionTLS12}
}

// discover runs a KMIP 1.4 Discover Versions on c.
func (e *connLimitEnv) discover(t *testing.T, c *tls.Conn) {
	t.Helper()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	// Discover Versions, KMIP 1.1, one batch item, as vCenter sends it.
	req, _ := hex.DecodeString("42007801000000604200770100000038420069010000002042006a0200000004000000010000000042006b0200000004000000010000000042000d0200000004000000010000000042000f010000001842005c05000000040000001e000000004200790100000000")
	if _, err := c.Write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	hdr := make([]byte, 8)
	if _, err := c.Read(hdr); err != nil {
		t.Fatalf("no answer to Discover Versions: %v", err)
	}
	n := int(hdr[4])<<24 | int(hdr[5])<<16 | int(hdr[6])<<8 | int(hdr[7])
	body := make([]byte, n)
	for got := 0; got < n; {
		m, err := c.Read(body[got:])
		if err != nil {
			t.Fatalf("short answer to Discover Versions: %v", err)
		}
		got += m
	}
	// Result Status Success (0) in the batch item.
	if !strings.Contains(string(body), "\x42\x00\x7f\x05\x00\x00\x00\x04\x00\x00\x00\x00") {
		t.Fatalf("Discover Versions failed: %x", body)
	}
}

// refused reports whether the bridge refuses a new connection.
func (e *connLimitEnv) refused(t *testing.T) bool {
	t.Helper()
	c, err := tls.Dial("tcp", e.srv.KMIPAddr().String(), e.tlsConfig())
	if err != nil {
		return true
	}
	c.Close()
	return false
}

// auditRefusals counts the audit records of refused connections.
func (e *connLimitEnv) auditRefusals() int {
	return strings.Count(e.stdout.String(), `msg="kmip connection refused"`)
}

// TestKMIPConnLimit: kmip.max_connections refuses the connection over
// it with an audit record and a metric, leaves the open ones alone, and
// a reload changes it without closing connections.
func TestKMIPConnLimit(t *testing.T) {
	e := startConnLimitEnv(t, "1")
	a := e.open(t)
	if !e.refused(t) {
		t.Fatal("a second connection was served over max_connections: 1")
	}
	eventually(t, "the refusal is audited", func() bool { return e.auditRefusals() == 1 })
	var line string
	for _, l := range strings.Split(e.stdout.String(), "\n") {
		if strings.Contains(l, "kmip connection refused") {
			line = l
		}
	}
	for _, want := range []string{"req.path=/kmip/connect ", "req.ip=127.0.0.1 ", "res.code=503 "} {
		if !strings.Contains(line, want) {
			t.Errorf("audit record %q lacks %q", line, want)
		}
	}
	if !strings.Contains(e.stderr.String(), "connection limit reached") {
		t.Errorf("no warning on the error log:\n%s", e.stderr.String())
	}
	e.discover(t, a)
	out := scrape(t, e.env)
	for _, want := range []string{
		"kes_kmip_connections_refused_total 1\n",
		"kes_kmip_connections_max 1\n",
		"kes_kmip_connections_open 1\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// Raised by a reload: a second connection is served, the first
	// stays.
	reload := func(max string) {
		t.Helper()
		cfg, err := ParseConfig([]byte(e.yaml(max)))
		if err != nil {
			t.Fatal(err)
		}
		if err := e.srv.Reload(context.Background(), cfg); err != nil {
			t.Fatalf("reload to max_connections %s: %v", max, err)
		}
	}
	reload("2")
	b := e.open(t)
	e.discover(t, a)
	// Lowered below the open connections: they stay, new ones are
	// refused.
	reload("1")
	e.discover(t, a)
	e.discover(t, b)
	if !e.refused(t) {
		t.Fatal("a connection was served over the lowered limit")
	}
	if !strings.Contains(scrape(t, e.env), "kes_kmip_connections_refused_total 2\n") {
		t.Error("the second refusal was not counted")
	}
	// Absent is the default, not unlimited.
	reload("")
	if want := fmt.Sprintf("kes_kmip_connections_max %d\n", DefaultKMIPMaxConns); !strings.Contains(scrape(t, e.env), want) {
		t.Fatalf("metrics lack %q after a reload without max_connections", want)
	}
	e.open(t)
}

// TestKMIPConnLimitAuditFlood: a flood of refused connections writes at
// most the rate limit's audit records (10 at once, then one a second)
// while the metric counts every refusal.
func TestKMIPConnLimitAuditFlood(t *testing.T) {
	e := startConnLimitEnv(t, "1")
	e.open(t)
	const flood = 200
	start := time.Now()
	for i := range flood {
		if !e.refused(t) {
			t.Fatalf("connection %d of the flood was served", i)
		}
	}
	elapsed := time.Since(start)
	want := fmt.Sprintf("kes_kmip_connections_refused_total %d\n", flood)
	eventually(t, "every refusal is counted", func() bool { return strings.Contains(scrape(t, e.env), want) })
	// The bucket refills one record a second; more than that over the
	// flood's real duration would be a flood of the log.
	max := 10 + int(elapsed/time.Second) + 1
	if n := e.auditRefusals(); n < 10 || n > max {
		t.Fatalf("%d audit records for %d refusals in %v, want 10 to %d", n, flood, elapsed, max)
	}
}

func TestParseConfigKMIPMaxConnections(t *testing.T) {
	section := minimal + "kmip:\n  tls: {key: k, cert: c, ca: a}\n"
	for _, tt := range []struct {
		name, extra string
		want        int
		err         string
	}{
		{"absent", "", DefaultKMIPMaxConns, ""},
		{"zero is the default", "  max_connections: 0\n", DefaultKMIPMaxConns, ""},
		{"set", "  max_connections: 50\n", 50, ""},
		{"largest", fmt.Sprintf("  max_connections: %d\n", MaxKMIPMaxConns), MaxKMIPMaxConns, ""},
		{"negative", "  max_connections: -1\n", 0, "config line 12: kmip.max_connections must not be negative"},
		{"too large", fmt.Sprintf("  max_connections: %d\n", MaxKMIPMaxConns+1), 0, "config line 12: kmip.max_connections 1048577 exceeds the limit"},
		{"not a number", "  max_connections: many\n", 0, "config line 12:"},
		{"from env", "  max_connections: ${KMIP_MAX_CONNS}\n", 7, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KMIP_MAX_CONNS", "7")
			cfg, err := ParseConfig([]byte(section + tt.extra))
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.KMIP.MaxConnections != tt.want {
				t.Fatalf("MaxConnections = %d, want %d", cfg.KMIP.MaxConnections, tt.want)
			}
		})
	}
}
