// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/minio/kms-go/kes"
	"github.com/spf13/pflag"
	"golang.org/x/term"
)

// Environment variables, in lookup order: the first one that is set wins.
// The order is the one minio/kes reads.
var (
	envServer   = []string{"MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT"}
	envAPIKey   = []string{"MINIO_KES_API_KEY", "KES_API_KEY", "MINIO_KMS_KES_API_KEY"}
	envKeyFile  = []string{"MINIO_KES_KEY_FILE", "KES_CLIENT_KEY", "MINIO_KES_CLIENT_KEY"}
	envCertFile = []string{"MINIO_KES_CERT_FILE", "KES_CLIENT_CERT", "MINIO_KES_CLIENT_CERT"}
)

const defaultServer = "127.0.0.1:7373"

// requestTimeout bounds every non-streaming request of a client command.
const requestTimeout = 30 * time.Second

// lookupEnv returns the value of the first of names that is set and not
// empty, and that name.
func lookupEnv(names []string) (value, name string) {
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			return v, n
		}
	}
	return "", ""
}

// parseEndpoints turns a comma-separated server list into HTTPS URLs:
// an http:// prefix is stripped and https:// added, because KES speaks
// only TLS.
func parseEndpoints(s string) ([]string, error) {
	var endpoints []string
	for e := range strings.SplitSeq(s, ",") {
		e = strings.TrimSpace(e)
		if e == "" {
			continue
		}
		e = strings.TrimPrefix(e, "http://")
		if !strings.HasPrefix(e, "https://") {
			e = "https://" + e
		}
		e = strings.TrimSuffix(e, "/")
		u, err := url.Parse(e)
		if err != nil || u.Scheme != "https" || u.Host == "" || strings.HasSuffix(u.Host, ":") || u.User != nil || strings.Contains(u.Path, "//") {
			return nil, fmt.Errorf("invalid server endpoint '%s'", e)
		}
		endpoints = append(endpoints, e)
	}
	if len(endpoints) == 0 {
		return nil, errors.New("no server endpoint specified")
	}
	return endpoints, nil
}

// clientFlags are the flags every client command accepts.
type clientFlags struct {
	insecure bool
	json     bool
	enclave  string

	// server and apiKey override the environment; only 'kes ls' has
	// flags for them, since -s means --short elsewhere.
	server string
	apiKey string
}

func (c *clientFlags) register(fs *pflag.FlagSet) {
	fs.BoolVarP(&c.insecure, "insecure", "k", false, "Skip server certificate verification.")
	fs.BoolVar(&c.json, "json", false, "Print output in JSON format.")
	fs.StringVar(&colorMode, "color", "auto", "Colorize output: auto, never or always.")
	fs.StringVarP(&c.enclave, "enclave", "e", "", "Ignored; accepted for compatibility.")
	fs.MarkHidden("enclave")
}

// newClient returns a client for the servers and credentials in the
// environment (or the flags that override it).
func (c *clientFlags) newClient() (*kes.Client, error) {
	if colorMode != "auto" && colorMode != "never" && colorMode != "always" {
		return nil, usagef("invalid --color '%s': use auto, never or always", colorMode)
	}
	server := c.server
	if server == "" {
		server, _ = lookupEnv(envServer)
	}
	if server == "" {
		server = defaultServer
	}
	endpoints, err := parseEndpoints(server)
	if err != nil {
		return nil, err
	}

	apiKey := c.apiKey
	if apiKey == "" {
		apiKey, _ = lookupEnv(envAPIKey)
	}
	keyFile, keyEnv := lookupEnv(envKeyFile)
	certFile, certEnv := lookupEnv(envCertFile)

	var cert tls.Certificate
	switch {
	case apiKey != "" && (keyFile != "" || certFile != ""):
		return nil, errors.New("an API key and a client key/certificate are mutually exclusive: set either " + envAPIKey[1] + " or " + envKeyFile[1] + " and " + envCertFile[1])
	case apiKey != "":
		key, err := identity.ParseAPIKey(apiKey)
		if err != nil {
			return nil, errors.New("invalid API key")
		}
		if cert, err = identity.Certificate(key); err != nil {
			return nil, fmt.Errorf("failed to create client certificate: %v", err)
		}
	case keyFile != "" && certFile == "":
		return nil, fmt.Errorf("client certificate missing: %s is set but no client certificate", keyEnv)
	case certFile != "" && keyFile == "":
		return nil, fmt.Errorf("client private key missing: %s is set but no client private key", certEnv)
	case keyFile != "":
		if cert, err = loadClientCertificate(certFile, keyFile); err != nil {
			return nil, err
		}
	default:
		return nil, fmt.Errorf("no credentials: set %s, or %s and %s", envAPIKey[1], envKeyFile[1], envCertFile[1])
	}

	client := kes.NewClientWithConfig("", &tls.Config{
		MinVersion:         tls.VersionTLS12,
		InsecureSkipVerify: c.insecure,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
	})
	client.Endpoints = endpoints
	return client, nil
}

// loadClientCertificate reads a PEM certificate and private key. An
// encrypted private key (legacy PEM encryption) asks for its password on
// the terminal.
func loadClientCertificate(certFile, keyFile string) (tls.Certificate, error) {
	certPEM, err := readFile(certFile, 1<<20)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to read client certificate: %v", err)
	}
	keyPEM, err := readFile(keyFile, 1<<20)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to read client private key: %v", err)
	}
	//lint:ignore SA1019 minio/kes writes legacy-encrypted keys; they must stay readable.
	if block, _ := pem.Decode(keyPEM); block != nil && x509.IsEncryptedPEMBlock(block) {
		password, err := readPassword("Enter password for private key " + keyFile + ": ")
		if err != nil {
			return tls.Certificate{}, err
		}
		//lint:ignore SA1019 see above.
		der, err := x509.DecryptPEMBlock(block, password)
		clear(password)
		if err != nil {
			return tls.Certificate{}, errors.New("failed to decrypt client private key: wrong password or corrupt key")
		}
		keyPEM = pem.EncodeToMemory(&pem.Block{Type: block.Type, Bytes: der})
		clear(der)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("invalid client certificate or private key: %v", err)
	}
	return cert, nil
}

// readFile reads at most limit bytes of a file; larger files are an
// error, since nothing a command reads is supposed to be big.
func readFile(name string, limit int64) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: file is larger than %d bytes", name, limit)
	}
	return b, nil
}

// readPassword prompts on stderr and reads a password from the terminal
// without echo. When stdin is not a terminal it reads one line from stdin,
// which lets scripts pipe a password in.
func readPassword(prompt string) ([]byte, error) {
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		fmt.Fprint(stderr, prompt)
		p, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return nil, fmt.Errorf("failed to read password: %v", err)
		}
		return p, nil
	}
	var line []byte
	buf := make([]byte, 1)
	for len(line) < 4096 {
		n, err := stdin.Read(buf)
		if n == 1 {
			if buf[0] == '\n' {
				break
			}
			line = append(line, buf[0])
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("failed to read password: %v", err)
		}
	}
	return []byte(strings.TrimSuffix(string(line), "\r")), nil
}

// colorMode is the --color flag of the running command.
var colorMode = "auto"

// useColor reports whether output to w may use ANSI styles: with
// --color=auto only on a terminal, and not if NO_COLOR is set.
func useColor(w io.Writer) bool {
	switch colorMode {
	case "always":
		return true
	case "never":
		return false
	default:
		return isTerminal(w) && os.Getenv("NO_COLOR") == ""
	}
}

// isTerminal reports whether w is a terminal. Output shapes differ: a
// terminal gets text for humans, a pipe gets JSON or bare values.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// baseContext is the parent of every command's context. Tests replace it
// to stop long-running commands without signals.
var baseContext = context.Background

// signalContext returns a context that is cancelled on SIGINT or SIGTERM.
func signalContext() (context.Context, context.CancelFunc) {
	return signal.NotifyContext(baseContext(), os.Interrupt, syscall.SIGTERM)
}

// requestContext is signalContext with the per-request timeout.
func requestContext() (context.Context, context.CancelFunc) {
	ctx, cancel := signalContext()
	ctx, cancelTimeout := context.WithTimeout(ctx, requestTimeout)
	return ctx, func() { cancelTimeout(); cancel() }
}

// clientError makes errors of the kes client readable: a server error is
// its message; a connection error names the server.
func clientError(err error) error {
	var kerr kes.Error
	if errors.As(err, &kerr) {
		return errors.New(kerr.Error())
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return errors.New("request timed out")
	}
	if cerr, ok := kes.IsConnError(err); ok {
		err = cerr.Err
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		host := uerr.URL
		if u, perr := url.Parse(uerr.URL); perr == nil {
			host = u.Host
		}
		return fmt.Errorf("failed to connect to %s: %v", host, uerr.Err)
	}
	return err
}

// writeJSON writes v as one line of JSON.
func writeJSON(w io.Writer, v any) error {
	return json.NewEncoder(w).Encode(v)
}

// parseClientFlags parses the command line of a client command that takes
// only the common client flags and min to max positional arguments
// (max < 0: no limit).
func parseClientFlags(name, usage string, args []string, min, max int) (*clientFlags, *pflag.FlagSet, error) {
	cf := new(clientFlags)
	fs := newFlagSet(name)
	cf.register(fs)
	if err := parseFlags(fs, usage, args); err != nil {
		return nil, nil, err
	}
	if err := nArgs(fs, min, max); err != nil {
		return nil, nil, err
	}
	return cf, fs, nil
}

// parseClient is parseClientFlags followed by newClient, for the client
// commands that need nothing else before they connect.
func parseClient(name, usage string, args []string, min, max int) (*clientFlags, *pflag.FlagSet, *kes.Client, error) {
	cf, fs, err := parseClientFlags(name, usage, args, min, max)
	if err != nil {
		return nil, nil, nil, err
	}
	client, err := cf.newClient()
	if err != nil {
		return nil, nil, nil, err
	}
	return cf, fs, client, nil
}

// forEachName calls op for each name, one request at a time. An error
// names the name it is about. If the server answers with an error for one
// name (the key does not exist, is not allowed), the others still run:
// with more than one name each such error is printed as it happens and
// the command fails at the end. An error that will be the same for every
// name (no connection, a timeout) stops at once.
func forEachName(names []string, op func(context.Context, string) error) error {
	failed := 0
	for i, name := range names {
		ctx, cancel := requestContext()
		err := op(ctx, name)
		cancel()
		if err == nil {
			continue
		}
		var kerr kes.Error
		perName := errors.As(err, &kerr)
		err = nameError(name, clientError(err))
		if len(names) == 1 {
			return err
		}
		if !perName {
			if rest := len(names) - i - 1; rest > 0 {
				return fmt.Errorf("%v (%d not tried)", err, rest)
			}
			return err
		}
		fmt.Fprintf(stderr, "kes: error: %v\n", err)
		failed++
	}
	if failed > 0 {
		return &reportedError{msg: fmt.Sprintf("%d of %d failed", failed, len(names))}
	}
	return nil
}

// nameError prefixes err with the key, policy or identity name it is
// about.
func nameError(name string, err error) error {
	return fmt.Errorf("'%s': %w", name, err)
}

// legacyLsCmd runs one of the deprecated 'ls' sub-commands (key, policy,
// identity): it prints the names that list returns for an optional
// pattern, '*' by default.
func legacyLsCmd[T ~string](name, usage, header string, args []string, list func(*kes.Client, context.Context, string, int) ([]T, string, error)) error {
	cf, fs, err := parseClientFlags(name, usage, args, 0, 1)
	if err != nil {
		return err
	}
	pattern := "*"
	if fs.NArg() == 1 {
		pattern = fs.Arg(0)
	}
	client, err := cf.newClient()
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()
	next := func(ctx context.Context, prefix string, n int) ([]T, string, error) {
		return list(client, ctx, prefix, n)
	}
	names, err := listNames(ctx, next, pattern)
	if err != nil {
		return clientError(err)
	}
	return printNames(stdout, header, names, cf.json)
}
