// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"fmt"

	"github.com/schollz/progressbar/v3"
)

// progressEvery is how many keys a progress line on a pipe stands for.
const progressEvery = 100

// progress reports how far a command that walks many keys (migrate,
// rewrap) got, on stderr so that stdout keeps only the result: a bar on a
// terminal, and on a pipe a line every progressEvery keys, which a log
// collector keeps and a bar's redraws would garble.
type progress struct {
	desc  string                       // the bar's description, e.g. "Migrating keys"
	line  func(done, total int) string // a pipe's progress line
	total int
	bar   *progressbar.ProgressBar
}

// newProgress returns a progress reporter; desc labels the bar, line
// formats the lines for a pipe.
func newProgress(desc string, line func(done, total int) string) *progress {
	return &progress{desc: desc, line: line}
}

// Start is called once with the number of keys to walk.
func (p *progress) Start(total int) {
	p.total = total
	if !isTerminal(stderr) {
		return
	}
	p.bar = progressbar.NewOptions(total,
		progressbar.OptionSetWriter(stderr),
		progressbar.OptionSetDescription(p.desc),
		progressbar.OptionShowCount(),
		progressbar.OptionClearOnFinish(),
	)
}

// Step is called after each key with the number of keys done so far.
func (p *progress) Step(done int) {
	switch {
	case p.bar != nil:
		p.bar.Add(1)
	case done%progressEvery == 0:
		fmt.Fprintln(stderr, p.line(done, p.total))
	}
}

// Finish removes the bar, if any.
func (p *progress) Finish() {
	if p.bar != nil {
		p.bar.Finish()
	}
}
