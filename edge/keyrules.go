// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
)

// KeyRule is the settings of a keys: entry for the keys it names.
type KeyRule struct {
	// Pattern is the key name, or a prefix followed by '*'
	// (keys.MatchName).
	Pattern string
	// Export: see keyYAML.Export.
	Export bool
}

// exportPatterns returns the patterns whose keys may be exported.
func exportPatterns(rules []KeyRule) []string {
	var out []string
	for _, r := range rules {
		if r.Export {
			out = append(out, r.Pattern)
		}
	}
	return out
}

// exportAllowPrefix is the policy path of the export switch.
const exportAllowPrefix = "/v1/key/export-allow/"

// exportGranted reports whether the caller may use the export switch:
// the admin, or an identity whose policy names the export-allow path
// itself. A wildcard such as /v1/key/* does not grant it: export changes
// what every KMIP client allowed /kmip/get/ may read, so it is given
// only on purpose.
func (c *call) exportGranted() bool {
	set := c.st.policies
	id := string(c.identity)
	if set.Admin != "" && id == set.Admin {
		return true
	}
	p, ok := set.Policies[set.Identities[id]]
	if !ok {
		return false
	}
	for _, a := range p.Allow {
		if strings.HasPrefix(a, exportAllowPrefix) && policy.Match(a, c.r.URL.Path) {
			return true
		}
	}
	return false
}

// exportAllow is PUT /v1/key/export-allow/<name>: the admin's export
// switch for one key. The body {"allow": false} turns it off again;
// no body turns it on.
func (c *call) exportAllow() {
	name, ok := c.keyName()
	if !ok {
		return
	}
	if !c.exportGranted() {
		c.fail(newError(http.StatusForbidden, "not authorized: export is allowed by the admin, or a policy that names "+exportAllowPrefix), opRead)
		return
	}
	req := struct {
		Allow *bool `json:"allow"`
	}{}
	if c.r.ContentLength != 0 {
		if err := c.decode(&req, true); err != nil {
			writeError(c.w, http.StatusBadRequest, "invalid request body")
			return
		}
	}
	allow := req.Allow == nil || *req.Allow
	if err := c.st.keys.AllowExport(c.r.Context(), name, allow); err != nil {
		c.fail(err, opRead)
		return
	}
	if allow {
		c.auditMsg = fmt.Sprintf("export of secret key '%s' allowed", name)
	} else {
		c.auditMsg = fmt.Sprintf("export of secret key '%s' disallowed", name)
	}
	writeOK(c.w)
}

// usageJSON is what /v1/key/describe adds to minio/kes's answer; kes-go
// and kms-go ignore fields they do not know.
type usageJSON struct {
	State            string   `json:"state"`
	Origin           string   `json:"origin"`
	Usage            []string `json:"usage"`
	Sensitive        bool     `json:"sensitive"`
	AlwaysSensitive  bool     `json:"always_sensitive"`
	Extractable      bool     `json:"extractable"`
	NeverExtractable bool     `json:"never_extractable"`
}

func usageOf(info keys.Info) usageJSON {
	u := info.Usage
	out := usageJSON{State: info.State.String(), Origin: string(u.Origin), Usage: []string{}, Sensitive: u.Sensitive,
		AlwaysSensitive: u.AlwaysSensitive, Extractable: u.Extractable, NeverExtractable: u.NeverExtractable}
	for _, b := range []struct {
		bit  keys.UsageMask
		name string
	}{{keys.UsageSign, "sign"}, {keys.UsageVerify, "verify"}, {keys.UsageEncrypt, "encrypt"}, {keys.UsageDecrypt, "decrypt"},
		{keys.UsageMACGenerate, "mac-generate"}, {keys.UsageMACVerify, "mac-verify"}} {
		if u.Mask&b.bit != 0 {
			out.Usage = append(out.Usage, b.name)
		}
	}
	return out
}
