// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/minio/kms-go/kes"
	"golang.org/x/term"
)

const identityUsage = `Usage:
    kes identity                          Create a new API key.
    kes identity <api-key|cert|key-file>  Print the identity of an API key or
                                          certificate, or the API key of an
                                          Ed25519 private key file.
    kes identity <command>

Commands:
    new                      Create a new private key and certificate.
    of                       Print the identity of an API key or certificate.
    info                     Print information about an identity.
    ls                       List identities (deprecated: use 'kes ls -i').

Options:
    -h, --help               Print command line options.
`

func identityCmd(args []string) error {
	if len(args) == 0 {
		return newAPIKey()
	}
	sub := map[string]func([]string) error{
		"new":  identityNewCmd,
		"of":   identityOfCmd,
		"info": identityInfoCmd,
		"ls":   identityLsCmd,
	}
	if _, ok := sub[args[0]]; ok || strings.HasPrefix(args[0], "-") || args[0] == "help" {
		return dispatch(sub, "kes identity", identityUsage, args)
	}
	if len(args) > 1 {
		return usagef("kes identity: too many arguments. See 'kes identity --help'")
	}
	return describeCredential(args[0], true)
}

// newAPIKey creates and prints a new API key: just the key for a pipe,
// the key and its identity for a terminal.
func newAPIKey() error {
	key, err := identity.GenerateAPIKey(nil)
	if err != nil {
		return fmt.Errorf("failed to generate API key: %v", err)
	}
	return printAPIKey(stdout, key, isTerminal(stdout))
}

func printAPIKey(w io.Writer, key identity.APIKey, text bool) error {
	if !text {
		_, err := fmt.Fprintln(w, key.String())
		return err
	}
	_, err := fmt.Fprintf(w, `Your API key:

   %s

This is the only time it is shown. Keep it secret and store it in a safe place.

Your identity:

   %s

The identity is not a secret. Policies refer to it to grant the API key access.
`, key.String(), identity.OfAPIKey(key))
	return err
}

// describeCredential prints the identity of an API key or certificate file
// or, if keyFiles is set, the API key of an Ed25519 private key file.
func describeCredential(arg string, keyFiles bool) error {
	if strings.HasPrefix(arg, "kes:v1:") {
		key, err := identity.ParseAPIKey(arg)
		if err != nil {
			return errors.New("invalid API key")
		}
		return printIdentity(stdout, identity.OfAPIKey(key))
	}
	data, err := readFile(arg, 1<<20)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("'%s' is neither an API key nor a file", arg)
	}
	if err != nil {
		return err
	}
	defer clear(data)
	for rest := data; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		switch {
		case block.Type == "CERTIFICATE":
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return fmt.Errorf("invalid certificate '%s': %v", arg, err)
			}
			return printIdentity(stdout, identity.FromCertificate(cert))
		case strings.HasSuffix(block.Type, "PRIVATE KEY") && keyFiles:
			return printKeyFileAPIKey(arg, block)
		}
	}
	if keyFiles {
		return fmt.Errorf("'%s' contains no certificate and no private key", arg)
	}
	return fmt.Errorf("'%s' contains no certificate", arg)
}

// printKeyFileAPIKey prints the API key that corresponds to an Ed25519
// PKCS#8 private key, so that a client holding a key file can switch to
// an API key with the same identity.
func printKeyFileAPIKey(name string, block *pem.Block) error {
	der := block.Bytes
	//lint:ignore SA1019 minio/kes writes legacy-encrypted keys; they must stay readable.
	if x509.IsEncryptedPEMBlock(block) {
		password, err := readPassword("Enter password for private key " + name + ": ")
		if err != nil {
			return err
		}
		//lint:ignore SA1019 see above.
		der, err = x509.DecryptPEMBlock(block, password)
		clear(password)
		if err != nil {
			return fmt.Errorf("failed to decrypt private key '%s': wrong password or corrupt key", name)
		}
		defer clear(der)
	}
	priv, err := x509.ParsePKCS8PrivateKey(der)
	if err != nil {
		return fmt.Errorf("invalid private key '%s': only Ed25519 PKCS#8 keys are supported", name)
	}
	edKey, ok := priv.(ed25519.PrivateKey)
	if !ok {
		return fmt.Errorf("invalid private key '%s': only Ed25519 PKCS#8 keys are supported", name)
	}
	defer clear(edKey)
	raw := append([]byte{0}, edKey.Seed()...)
	key, err := identity.ParseAPIKey("kes:v1:" + base64.StdEncoding.EncodeToString(raw))
	clear(raw)
	if err != nil {
		return err
	}
	_, err = fmt.Fprintln(stdout, key.String())
	return err
}

func printIdentity(w io.Writer, id identity.Identity) error {
	if isTerminal(w) {
		_, err := fmt.Fprintf(w, "Identity:  %s\n", id)
		return err
	}
	_, err := fmt.Fprintln(w, id)
	return err
}

const identityNewUsage = `Usage:
    kes identity new [options] [<subject>]

Creates a new Ed25519 private key. Without --key and --cert it prints the
key as an API key. With them it writes the private key (PKCS#8, mode 0600)
and a self-signed certificate (mode 0644) for client and server
authentication, with <subject> as common name (default: the identity).

Options:
        --key FILE           Write the private key to FILE.
        --cert FILE          Write the certificate to FILE.
        --ip IP              Add an IP address SAN (repeatable).
        --dns NAME           Add a DNS name SAN (repeatable).
        --expiry DURATION    Certificate lifetime (default: 720h).
        --encrypt            Encrypt the private key with a password.
    -f, --force              Overwrite existing files.
    -h, --help               Print command line options.

Examples:
    $ kes identity new
    $ kes identity new --key client.key --cert client.crt MinIO
    $ kes identity new --ip 10.0.0.1 --dns kes.local --key server.key --cert server.crt localhost
`

func identityNewCmd(args []string) error {
	var (
		keyFile, certFile string
		ips, dnsNames     []string
		expiry            time.Duration
		encrypt, force    bool
	)
	fs := newFlagSet("kes identity new")
	fs.StringVar(&keyFile, "key", "", "")
	fs.StringVar(&certFile, "cert", "", "")
	fs.StringSliceVar(&ips, "ip", nil, "")
	fs.StringSliceVar(&dnsNames, "dns", nil, "")
	fs.DurationVar(&expiry, "expiry", 720*time.Hour, "")
	fs.BoolVar(&encrypt, "encrypt", false, "")
	fs.BoolVarP(&force, "force", "f", false, "")
	if err := parseFlags(fs, identityNewUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 1); err != nil {
		return err
	}
	if (keyFile == "") != (certFile == "") {
		return usagef("kes identity new: '--key' and '--cert' must be given together")
	}
	if keyFile == "" {
		for _, name := range []string{"ip", "dns", "expiry", "encrypt"} {
			if fs.Changed(name) {
				return usagef("kes identity new: '--%s' needs '--key' and '--cert'", name)
			}
		}
		if fs.NArg() > 0 {
			return usagef("kes identity new: a subject needs '--key' and '--cert'")
		}
	}
	if expiry <= 0 {
		return usagef("kes identity new: '--expiry' must be positive")
	}
	var ipAddrs []net.IP
	for _, s := range ips {
		ip := net.ParseIP(s)
		if ip == nil {
			return usagef("kes identity new: '%s' is not an IP address", s)
		}
		ipAddrs = append(ipAddrs, ip)
	}

	key, err := identity.GenerateAPIKey(nil)
	if err != nil {
		return fmt.Errorf("failed to generate private key: %v", err)
	}
	if keyFile == "" {
		return printAPIKey(stdout, key, isTerminal(stdout))
	}

	if !force {
		for _, name := range []string{keyFile, certFile} {
			if _, err := os.Stat(name); err == nil {
				return fmt.Errorf("'%s' already exists: use --force to overwrite it", name)
			}
		}
	}
	subject := string(identity.OfAPIKey(key))
	if fs.NArg() == 1 {
		subject = fs.Arg(0)
	}
	certPEM, err := selfSignedCertificate(key, subject, ipAddrs, dnsNames, time.Now(), expiry)
	if err != nil {
		return err
	}
	keyPEM, err := privateKeyPEM(key, encrypt)
	if err != nil {
		return err
	}
	defer clear(keyPEM)
	if err := writeFile(keyFile, keyPEM, 0o600, force); err != nil {
		return fmt.Errorf("failed to write private key: %v", err)
	}
	if err := writeFile(certFile, certPEM, 0o644, force); err != nil {
		return fmt.Errorf("failed to write certificate: %v", err)
	}
	if !isTerminal(stdout) {
		_, err = fmt.Fprintln(stdout, identity.OfAPIKey(key))
		return err
	}
	_, err = fmt.Fprintf(stdout, "Private key:  %s\nCertificate:  %s\nIdentity:     %s\n", keyFile, certFile, identity.OfAPIKey(key))
	return err
}

// selfSignedCertificate returns a PEM certificate for key, valid from now
// for lifetime, usable for TLS client and server authentication.
func selfSignedCertificate(key identity.APIKey, subject string, ips []net.IP, dnsNames []string, now time.Time, lifetime time.Duration) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("failed to create certificate serial number: %v", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: subject},
		NotBefore:             now.UTC(),
		NotAfter:              now.Add(lifetime).UTC(),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth, x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IPAddresses:           ips,
		DNSNames:              slices.Clone(dnsNames),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key.Private())
	if err != nil {
		return nil, fmt.Errorf("failed to create certificate: %v", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// privateKeyPEM encodes key as PKCS#8 PEM, encrypted with a password read
// from the terminal if encrypt is set.
func privateKeyPEM(key identity.APIKey, encrypt bool) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key.Private())
	if err != nil {
		return nil, fmt.Errorf("failed to encode private key: %v", err)
	}
	defer clear(der)
	if !encrypt {
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
	}
	password, err := readPassword("Enter password for private key: ")
	if err != nil {
		return nil, err
	}
	defer clear(password)
	if len(password) == 0 {
		return nil, errors.New("empty password")
	}
	if f, ok := stdin.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
		confirm, err := readPassword("Confirm password for private key: ")
		if err != nil {
			return nil, err
		}
		same := string(confirm) == string(password)
		clear(confirm)
		if !same {
			return nil, errors.New("passwords do not match")
		}
	}
	// Legacy PEM encryption is what minio/kes writes and reads; there is
	// no standard alternative both sides understand.
	//lint:ignore SA1019 compatibility with minio/kes key files.
	block, err := x509.EncryptPEMBlock(rand.Reader, "PRIVATE KEY", der, password, x509.PEMCipherAES256)
	if err != nil {
		return nil, fmt.Errorf("failed to encrypt private key: %v", err)
	}
	return pem.EncodeToMemory(block), nil
}

const identityOfUsage = `Usage:
    kes identity of <api-key|cert-file>

Prints the identity of an API key or of an X.509 certificate: the hex
SHA-256 of its public key.

Options:
    -h, --help               Print command line options.
`

func identityOfCmd(args []string) error {
	fs := newFlagSet("kes identity of")
	if err := parseFlags(fs, identityOfUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 1, 1); err != nil {
		return err
	}
	return describeCredential(fs.Arg(0), false)
}

const identityInfoUsage = `Usage:
    kes identity info [options] [<identity>]

Prints information about the identity, or about the identity of the
client itself if none is given.

Options:
` + clientOptionsUsage

func identityInfoCmd(args []string) error {
	cf, fs, client, err := parseClient("kes identity info", identityInfoUsage, args, 0, 1)
	if err != nil {
		return err
	}
	ctx, cancel := requestContext()
	defer cancel()

	var (
		info   *kes.IdentityInfo
		policy *kes.Policy
	)
	if fs.NArg() == 1 {
		info, err = client.DescribeIdentity(ctx, kes.Identity(fs.Arg(0)))
		if info != nil && info.Identity == "" {
			info.Identity = kes.Identity(fs.Arg(0))
		}
	} else {
		info, policy, err = client.DescribeSelf(ctx)
	}
	if err != nil {
		return clientError(err)
	}
	return printIdentityInfo(stdout, info, policy, cf.json)
}

// identityInfoJSON is the JSON shape of 'kes identity info --json'.
type identityInfoJSON struct {
	Identity  string    `json:"identity"`
	Admin     bool      `json:"admin,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	CreatedAt time.Time `json:"created_at,omitzero"`
	CreatedBy string    `json:"created_by,omitempty"`
	Allow     []string  `json:"allow,omitempty"`
	Deny      []string  `json:"deny,omitempty"`
}

func printIdentityInfo(w io.Writer, info *kes.IdentityInfo, policy *kes.Policy, asJSON bool) error {
	v := identityInfoJSON{
		Identity:  info.Identity.String(),
		Admin:     info.IsAdmin,
		Policy:    info.Policy,
		CreatedAt: info.CreatedAt,
		CreatedBy: info.CreatedBy.String(),
	}
	if policy != nil {
		v.Allow, v.Deny = sortedKeys(policy.Allow), sortedKeys(policy.Deny)
	}
	if asJSON {
		return writeJSON(w, v)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%-12s%s\n", "Identity", v.Identity)
	if v.Admin {
		fmt.Fprintf(&b, "%-12s%s\n", "Admin", "yes")
	}
	if v.Policy != "" {
		fmt.Fprintf(&b, "%-12s%s\n", "Policy", v.Policy)
	}
	writeCreated(&b, v.CreatedAt, v.CreatedBy)
	writeRules(&b, "Allow", v.Allow)
	writeRules(&b, "Deny", v.Deny)
	_, err := io.WriteString(w, b.String())
	return err
}

// writeCreated adds the creation time and creator, where the server
// reported them.
func writeCreated(b *strings.Builder, createdAt time.Time, createdBy string) {
	if !createdAt.IsZero() {
		fmt.Fprintf(b, "%-12s%s\n", "Created At", createdAt.Local().Format(time.DateTime))
	}
	if createdBy != "" {
		fmt.Fprintf(b, "%-12s%s\n", "Created By", createdBy)
	}
}

func writeRules(b *strings.Builder, title string, rules []string) {
	if len(rules) == 0 {
		return
	}
	fmt.Fprintf(b, "%s\n", title)
	for _, r := range rules {
		fmt.Fprintf(b, "  · %s\n", r)
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

const identityLsUsage = `Usage:
    kes identity ls [options] [<pattern>]

Deprecated: use 'kes ls -i'.

Options:
` + clientOptionsUsage

func identityLsCmd(args []string) error {
	return legacyLsCmd("kes identity ls", identityLsUsage, "Identity", args, (*kes.Client).ListIdentities)
}
