// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"context"
	"encoding/json"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/ovh/kmip-go"
)

// TestGrafanaDashboardMetricsExist checks that every metric that
// examples/grafana/kes.json queries exists on a running server that has
// seen some traffic.
func TestGrafanaDashboardMetricsExist(t *testing.T) {
	b, err := os.ReadFile("../examples/grafana/kes.json")
	if err != nil {
		t.Fatal(err)
	}
	var dash struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	if err := json.Unmarshal(b, &dash); err != nil {
		t.Fatal(err)
	}
	names := map[string]string{}
	metricRE := regexp.MustCompile(`\bkes_[a-z0-9_]+`)
	for _, p := range dash.Panels {
		for _, tg := range p.Targets {
			for _, n := range metricRE.FindAllString(tg.Expr, -1) {
				names[n] = p.Title
			}
		}
	}
	if len(names) < 20 {
		t.Fatalf("dashboard uses only %d metrics: %v", len(names), names)
	}

	e := startOpsEnv(t)
	ctx := context.Background()
	c := e.dialKMIP(t)
	if _, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).Exec(); err != nil {
		t.Fatal(err)
	}
	kc := e.kms(e.admin)
	if err := kc.CreateKey(ctx, "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := kc.GenerateKey(ctx, "k", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.srv.Keys().Status(ctx); err != nil {
		t.Fatal(err)
	}
	kc.DescribeKey(ctx, "missing") // a 4xx
	e.hpcs.SetDown(true)
	kc.CreateKey(ctx, "k2") // a 5xx: the sealer is down
	e.hpcs.SetDown(false)
	out := scrape(t, e.env)
	have := map[string]bool{}
	for _, l := range strings.Split(out, "\n") {
		if rest, ok := strings.CutPrefix(l, "# TYPE "); ok {
			name, typ, _ := strings.Cut(rest, " ")
			have[name] = true
			if typ == "histogram" {
				for _, s := range []string{"_bucket", "_sum", "_count"} {
					have[name+s] = true
				}
			}
		}
	}
	for n, panel := range names {
		if !have[n] {
			t.Errorf("panel %q uses %s, which the server does not expose", panel, n)
		}
	}
}
