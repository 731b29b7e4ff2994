// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"strings"
)

// shellBlock is a fenced ```sh block of a Markdown document.
type shellBlock struct {
	Text string // the lines between the fences
	Line int    // line number of the opening fence
	// Directive is the text of a '<!-- guide-test: ... -->' comment on
	// the line before the fence, if any: "skip REASON" for a block the
	// guide tests do not run (it needs sudo, MinIO, vCenter, a cloud
	// account).
	Directive string
}

const directivePrefix = "<!-- guide-test:"

// shellBlocks returns the ```sh blocks of a Markdown document, also those
// indented in a list. Other blocks (yaml, sample output) are not commands.
func shellBlocks(md string) []shellBlock {
	var (
		blocks []shellBlock
		cur    *shellBlock
		indent string
		prev   string
	)
	for i, line := range strings.Split(md, "\n") {
		trimmed := strings.TrimSpace(line)
		switch {
		case cur == nil && trimmed == "```sh":
			indent = line[:len(line)-len(strings.TrimLeft(line, " "))]
			cur = &shellBlock{Line: i + 1}
			if d, ok := strings.CutPrefix(strings.TrimSpace(prev), directivePrefix); ok {
				cur.Directive = strings.TrimSpace(strings.TrimSuffix(d, "-->"))
			}
		case cur != nil && trimmed == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.Text += strings.TrimPrefix(line, indent) + "\n"
		}
		prev = line
	}
	return blocks
}
