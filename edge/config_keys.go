// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"fmt"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
)

// keyYAML is one entry of the keys section:
//
//	keys:
//	- name: my-key       # created at start-up if it does not exist
//	- name: minio-*      # a pattern (as in policies): never created
//	  rotate: 90d        # rotate matching keys every 90 days
//	- name: backup-*
//	  export: true       # KMIP clients may Get these keys' material
type keyYAML struct {
	Name   string       `yaml:"name"`
	Rotate rotatePeriod `yaml:"rotate"`
	// Export lets the material of the matching keys leave the server
	// over KMIP (Get), although they were made over the KES API.
	Export bool `yaml:"export"`
}

// minRotatePeriod bounds how often a key can be rotated on a schedule:
// every version makes the stored key larger.
const minRotatePeriod = time.Hour

// rotatePeriod is a Go duration ("2160h") or a number of days ("90d").
type rotatePeriod time.Duration

func (p *rotatePeriod) UnmarshalYAML(n *yaml.Node) error {
	var s string
	if err := n.Decode(&s); err != nil {
		return err
	}
	d, err := parseRotatePeriod(s)
	if err != nil {
		return err
	}
	*p = rotatePeriod(d)
	return nil
}

func parseRotatePeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if days, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseUint(days, 10, 16)
		if err != nil || n == 0 {
			return 0, fmt.Errorf("invalid rotation period '%s': use a number of days like 90d, or a duration like 720h", s)
		}
		return time.Duration(n) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d <= 0 {
		return 0, fmt.Errorf("invalid rotation period '%s': use a number of days like 90d, or a duration like 720h", s)
	}
	return d, nil
}

// keysConfig reads the keys section: the names to create, the rotation
// schedules and the export rules. A name ending in '*' is a pattern, as
// in policies ("minio-*" is every name that starts with "minio-"); a
// pattern creates no key, so it must carry a setting.
func keysConfig(entries []keyYAML) (create []string, rotations []keys.Rotation, rules []KeyRule, err error) {
	seen := make(map[string]bool, len(entries))
	for _, k := range entries {
		if seen[k.Name] {
			return nil, nil, nil, fmt.Errorf("keys: key '%s' is listed twice", k.Name)
		}
		seen[k.Name] = true
		if strings.HasSuffix(k.Name, "*") {
			if !policy.ValidPattern(k.Name) || !policy.ValidName(strings.TrimSuffix(k.Name, "*")+"x") {
				return nil, nil, nil, fmt.Errorf("keys: key pattern '%s' is malformed", k.Name)
			}
			if k.Rotate == 0 && !k.Export {
				return nil, nil, nil, fmt.Errorf("keys: key pattern '%s' has neither rotate nor export: only names are created", k.Name)
			}
		} else {
			if !policy.ValidName(k.Name) {
				return nil, nil, nil, fmt.Errorf("keys: key name '%s' is empty, too long or contains invalid characters", k.Name)
			}
			create = append(create, k.Name)
		}
		if k.Rotate != 0 {
			if d := time.Duration(k.Rotate); d < minRotatePeriod {
				return nil, nil, nil, fmt.Errorf("keys: '%s': rotation period %v is shorter than %v", k.Name, d, minRotatePeriod)
			}
			rotations = append(rotations, keys.Rotation{Pattern: k.Name, Period: time.Duration(k.Rotate)})
		}
		if k.Export {
			rules = append(rules, KeyRule{Pattern: k.Name, Export: true})
		}
	}
	return create, rotations, rules, nil
}
