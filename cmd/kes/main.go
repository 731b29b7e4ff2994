// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strings"

	"github.com/spf13/pflag"
)

const mainUsage = `Usage:
    kes [options] <command>

Commands:
    server                   Start a KES server.

    ls                       List keys, policies and identities.
    key                      Manage cryptographic keys.
    policy                   Inspect KES policies.
    identity                 Create and inspect KES identities.

    log                      Print audit or error logs.
    status                   Print server status.
    metric                   Print server metrics.

    migrate                  Migrate keys between keystores.
    backup                   Back up a keystore into an encrypted file.
    restore                  Restore keys from a backup file.
    update                   Update the kes binary.
    kmip                     KMIP bridge tools.
    dev                      Start keystore emulators for local trials.
    completion               Print a shell completion script (bash, zsh, fish).

Options:
    -v, --version            Print version information.
    -h, --help               Print command line options.

Environment variables of the client commands (the first one set wins):
    MINIO_KES_SERVER, KES_SERVER, MINIO_KMS_KES_ENDPOINT
                             Server endpoints, comma-separated (default 127.0.0.1:7373).
    MINIO_KES_API_KEY, KES_API_KEY, MINIO_KMS_KES_API_KEY
                             API key to authenticate with.
    MINIO_KES_KEY_FILE, KES_CLIENT_KEY, MINIO_KES_CLIENT_KEY
    MINIO_KES_CERT_FILE, KES_CLIENT_CERT, MINIO_KES_CLIENT_CERT
                             Client private key and certificate files
                             (instead of an API key).
`

// Standard streams. Commands write through these, never os.Stdout directly,
// so that tests can capture their output.
var (
	stdin  io.Reader = os.Stdin
	stdout io.Writer = os.Stdout
	stderr io.Writer = os.Stderr
)

func main() { os.Exit(run(os.Args[1:])) }

// commands maps a top-level command name to its implementation. Every
// implementation receives the arguments after its name.
var commands map[string]func(args []string) error

func init() {
	commands = map[string]func([]string) error{
		"server":     serverCmd,
		"ls":         lsCmd,
		"key":        keyCmd,
		"policy":     policyCmd,
		"identity":   identityCmd,
		"log":        logCmd,
		"status":     statusCmd,
		"metric":     metricCmd,
		"migrate":    migrateCmd,
		"backup":     backupCmd,
		"restore":    restoreCmd,
		"update":     updateCmd,
		"kmip":       kmipCmd,
		"dev":        devCmd,
		"completion": completionCmd,
	}
}

// run executes the command line args and returns the process exit code:
// 0 on success, 1 if the command failed and 2 on a usage error or help.
func run(args []string) int {
	return exitCode(dispatch(commands, "kes", mainUsage, args))
}

// dispatch runs the sub-command args[0] of cmds. name is the command path
// so far ("kes", "kes key") for messages.
func dispatch(cmds map[string]func([]string) error, name, usage string, args []string) error {
	if len(args) == 0 {
		return &helpError{usage: usage}
	}
	switch args[0] {
	case "-h", "--help", "help":
		return &helpError{usage: usage}
	case "-v", "--version":
		if name == "kes" {
			printVersion(stdout)
			return nil
		}
	}
	if strings.HasPrefix(args[0], "-") {
		return usagef("%s: unknown option '%s'. See '%s --help'", name, args[0], name)
	}
	cmd, ok := cmds[args[0]]
	if !ok {
		return usagef("%s: '%s' is not a command. See '%s --help'", name, args[0], name)
	}
	return cmd(args[1:])
}

func printVersion(w io.Writer) {
	v, commit := buildVersion()
	fmt.Fprintf(w, "Version    %s\n", v)
	if commit != "" {
		fmt.Fprintf(w, "Commit     %s\n", commit)
	}
	fmt.Fprintf(w, "Runtime    %s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "License    AGPLv3\n")
	fmt.Fprintf(w, "Copyright  The KES bridge authors\n")
}

// usageError is an error in the command line itself: an unknown flag, a
// missing or extra argument. It exits with code 2.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// helpError asks for the usage text to be printed. It exits with code 2,
// as minio/kes does.
type helpError struct{ usage string }

func (e *helpError) Error() string { return "help requested" }

// reportedError is a failure whose details the command has printed
// already. It exits with code 1 without printing anything more.
type reportedError struct{ msg string }

func (e *reportedError) Error() string { return e.msg }

// exitCode prints err, if any, and maps it to the exit code.
func exitCode(err error) int {
	var (
		help     *helpError
		usage    *usageError
		reported *reportedError
	)
	switch {
	case err == nil:
		return 0
	case errors.As(err, &reported):
		return 1
	case errors.As(err, &help):
		fmt.Fprint(stderr, help.usage)
		return 2
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "kes: error: %v\n", usage)
		return 2
	default:
		fmt.Fprintf(stderr, "kes: error: %v\n", err)
		return 1
	}
}

// newFlagSet returns a flag set that reports errors to its caller instead
// of printing them, so that every error leaves through exitCode.
func newFlagSet(name string) *pflag.FlagSet {
	fs := pflag.NewFlagSet(name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.SortFlags = false
	return fs
}

// parseFlags parses args with fs. -h prints usage; any other flag error
// is a usage error that names the command.
func parseFlags(fs *pflag.FlagSet, usage string, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			return &helpError{usage: usage}
		}
		return usagef("%s: %v. See '%s --help'", fs.Name(), err, fs.Name())
	}
	return nil
}

// globArg returns the optional glob (filepath.Match) argument of fs, '*'
// if there is none. A malformed glob is a usage error.
func globArg(fs *pflag.FlagSet) (string, error) {
	pattern := "*"
	if fs.NArg() > 0 {
		pattern = fs.Arg(0)
	}
	if _, err := filepath.Match(pattern, ""); err != nil {
		return "", usagef("%s: invalid pattern '%s'", fs.Name(), pattern)
	}
	return pattern, nil
}

// nArgs checks that the number of positional arguments of fs is in
// [min, max]; max < 0 means no upper limit.
func nArgs(fs *pflag.FlagSet, min, max int) error {
	switch n := fs.NArg(); {
	case n < min:
		return usagef("%s: missing argument. See '%s --help'", fs.Name(), fs.Name())
	case max >= 0 && n > max:
		return usagef("%s: too many arguments. See '%s --help'", fs.Name(), fs.Name())
	}
	return nil
}
