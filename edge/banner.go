// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/keystore"
)

// bannerInfo is what the start-up banner shows.
type bannerInfo struct {
	cfg    *Config
	store  keystore.Store
	mlock  bool
	apiKey identity.APIKey // dev mode only
	kmip   net.Addr
}

// printBanner writes the start-up banner: what runs, where, and, in dev
// mode, the admin API key with lines to paste into a shell.
func printBanner(w io.Writer, b bannerInfo) {
	version, commit := BuildInfo()
	line := func(k, v string) { fmt.Fprintf(w, "%-12s %s\n", k, v) }
	line("Version", version+" commit="+commit)
	line("Runtime", fmt.Sprintf("%s %s/%s", runtime.Version(), runtime.GOOS, runtime.GOARCH))
	line("License", "AGPL-3.0")
	line("KMS", keystoreLine(b.store))
	urls := apiURLs(b.cfg.Addr)
	line("API", strings.Join(urls, " "))
	if b.kmip != nil {
		line("KMIP", b.kmip.String())
	}
	if b.cfg.Admin == "" {
		line("Admin", "<disabled>")
	} else {
		line("Admin", string(b.cfg.Admin))
	}
	if b.apiKey != nil {
		line("API Key", b.apiKey.String())
	}
	line("Logs", fmt.Sprintf("error=stderr level=%s audit=stdout level=%s", levelName(b.cfg.ErrorLevel), levelName(b.cfg.AuditLevel)))
	if b.mlock {
		line("MLock", "enabled")
	} else {
		line("MLock", "disabled")
	}
	if b.apiKey != nil {
		fmt.Fprintln(w)
		fmt.Fprintf(w, "export KES_SERVER=%s\n", urls[0])
		fmt.Fprintf(w, "export KES_API_KEY=%s\n", b.apiKey.String())
		kes := cliCommand()
		fmt.Fprintf(w, "%s key create -k my-key\n", kes)
		fmt.Fprintf(w, "%s key dek -k my-key\n", kes)
	}
	fmt.Fprintln(w)
}

// cliCommand is how the banner's lines invoke the kes CLI so that they
// work when pasted into a shell: plain "kes" if that name on $PATH is this
// very binary (after 'make install'), else the absolute path of this
// binary, shell-quoted ('make run' starts ./kes, which is not on $PATH).
func cliCommand() string {
	exe, err := os.Executable()
	if err != nil {
		return "kes"
	}
	if resolved, err := filepath.EvalSymlinks(exe); err == nil {
		exe = resolved
	}
	if onPath, err := exec.LookPath("kes"); err == nil {
		a, errA := os.Stat(onPath)
		b, errB := os.Stat(exe)
		if errA == nil && errB == nil && os.SameFile(a, b) {
			return "kes"
		}
	}
	return shellQuote(exe)
}

// shellQuote quotes s for a POSIX shell unless it consists only of
// characters no shell treats specially.
func shellQuote(s string) string {
	safe := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-+:@%=,", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func levelName(l interface{ String() string }) string {
	if l.String() == LevelOff.String() {
		return "off"
	}
	return l.String()
}

// apiURLs are the URLs the API is reachable at: the address, or for an
// unspecified IP the loopback address and every interface address.
func apiURLs(addr string) []string {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return []string{"https://" + addr}
	}
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return []string{"https://" + net.JoinHostPort(host, port)}
	}
	var urls []string
	for _, ip := range serverIPs(addr) {
		urls = append(urls, "https://"+net.JoinHostPort(ip.String(), port))
	}
	return urls
}

// keystoreLine describes the keystore and, when its Replace is a
// compare-and-swap only among the callers of one process, says so: two
// nodes on it may lose each other's changes except where the key
// service takes a lease (KMIP lifecycle changes).
func keystoreLine(s keystore.Store) string {
	if keystore.CapabilitiesOf(s).LinearizableReplace {
		return s.String()
	}
	return s.String() + " (" + notLinearizableNote + ")"
}

// notLinearizableNote is what the banner adds for a keystore whose
// Replace is not linearizable across nodes.
const notLinearizableNote = "compare-and-swap within one node; KMIP lifecycle changes use leases"
