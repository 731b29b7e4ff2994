// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"strings"
	"testing"
	"time"

	emulator "github.com/kesbridge/kes/internal/emulator/keycontrol"
)

// TestTokenRenewalMetrics runs the server on the KeyControl driver with
// tokens that live two seconds, so that the refresher renews at one:
// kes_keystore_token_renewals_total counts the renewals by driver and
// result, and the family is there, at zero, before the first one.
func TestTokenRenewalMetrics(t *testing.T) {
	em, yaml, p, admin := keyControlSetup(t, emulator.Config{TokenTTL: 2 * time.Second}, "")
	e := startWith(t, p, admin, yaml, true)

	out := scrape(t, e)
	if !strings.Contains(out, `kes_keystore_token_renewals_total{driver="keycontrol",result="error"} 0`) {
		t.Fatalf("no zero-valued token renewal series at start:\n%s", grepLines(out, "token_renewals"))
	}
	// The refresher renews at half the lifetime.
	deadline := time.Now().Add(20 * time.Second)
	wait := func(what string) {
		t.Helper()
		if time.Now().After(deadline) {
			t.Fatalf("no %s counted:\n%s", what, grepLines(out, "token_renewals"))
		}
		time.Sleep(100 * time.Millisecond)
		out = scrape(t, e)
	}
	for !strings.Contains(out, `kes_keystore_token_renewals_total{driver="keycontrol",result="success"} 1`) &&
		!strings.Contains(out, `kes_keystore_token_renewals_total{driver="keycontrol",result="success"} 2`) {
		wait("renewal")
	}

	// KeyControl refuses renewals and logins: the failures are counted.
	em.SetFaultFilter("")
	em.FailNext(1000, 503)
	for strings.Contains(out, `kes_keystore_token_renewals_total{driver="keycontrol",result="error"} 0`) &&
		!strings.Contains(out, `kes_keystore_token_renewals_total{driver="keycontrol",result="unreachable"}`) {
		wait("failed renewal")
	}
}

func grepLines(s, sub string) string {
	var b strings.Builder
	for line := range strings.Lines(s) {
		if strings.Contains(line, sub) {
			b.WriteString(line)
		}
	}
	return b.String()
}
