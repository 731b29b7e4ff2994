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
type keyYAML struct {
	Name   string       `yaml:"name"`
	Rotate rotatePeriod `yaml:"rotate"`
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

// keysConfig reads the keys section: the names to create and the
// rotation schedules.
func keysConfig(entries []keyYAML) (create []string, rotations []keys.Rotation, err error) {
	for _, k := range entries {
		pattern := strings.HasSuffix(k.Name, "*")
		if pattern {
			if !policy.ValidPattern(k.Name) {
				return nil, nil, fmt.Errorf("keys: key pattern '%s' is invalid", k.Name)
			}
			if k.Rotate == 0 {
				return nil, nil, fmt.Errorf("keys: key pattern '%s' has no rotate period: only names are created", k.Name)
			}
		} else {
			if !policy.ValidName(k.Name) {
				return nil, nil, fmt.Errorf("keys: key name '%s' is empty, too long or contains invalid characters", k.Name)
			}
			for _, c := range create {
				if c == k.Name {
					return nil, nil, fmt.Errorf("keys: key '%s' is listed twice", k.Name)
				}
			}
			create = append(create, k.Name)
		}
		if k.Rotate != 0 {
			if d := time.Duration(k.Rotate); d < minRotatePeriod {
				return nil, nil, fmt.Errorf("keys: '%s': rotation period %v is shorter than %v", k.Name, d, minRotatePeriod)
			}
			rotations = append(rotations, keys.Rotation{Pattern: k.Name, Period: time.Duration(k.Rotate)})
		}
	}
	return create, rotations, nil
}
