// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package main

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kesbridge/kes/identity"
	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

const kmipUsage = `Usage:
    kes kmip <command>

Commands:
    ca init                  Create the KMS certificate authority.
    ca export                Print the CA certificate clients must trust.
    server-cert              Issue the KMIP bridge's server certificate.
    sign-csr                 Sign a certificate request of a KMIP client.
    client new               Issue a client certificate and private key.
    query                    Connect to a KMIP server and print what it offers.

Options:
    -h, --help               Print command line options.

The certificate authority signs the bridge's server certificate and the
certificates of the KMIP clients (vCenter, ESXi, ZStack). Clients trust the
bridge through 'kes kmip ca export'; the bridge trusts the clients whose
certificates the CA signed and authorizes them by identity.
`

// kmipCmd implements 'kes kmip ...'.
func kmipCmd(args []string) error {
	return dispatch(map[string]func([]string) error{
		"ca":          kmipCACmd,
		"server-cert": kmipServerCertCmd,
		"sign-csr":    kmipSignCSRCmd,
		"client":      kmipClientCmd,
		"query":       kmipQueryCmd,
	}, "kes kmip", kmipUsage, args)
}

const kmipCAUsage = `Usage:
    kes kmip ca <command>

Commands:
    init                     Create the KMS certificate authority.
    export                   Print the CA certificate clients must trust.

Options:
    -h, --help               Print command line options.
`

func kmipCACmd(args []string) error {
	return dispatch(map[string]func([]string) error{
		"init":   kmipCAInitCmd,
		"export": kmipCAExportCmd,
	}, "kes kmip ca", kmipCAUsage, args)
}

const kmipClientUsage = `Usage:
    kes kmip client <command>

Commands:
    new                      Issue a client certificate and private key.

Options:
    -h, --help               Print command line options.
`

func kmipClientCmd(args []string) error {
	return dispatch(map[string]func([]string) error{
		"new": kmipClientNewCmd,
	}, "kes kmip client", kmipClientUsage, args)
}

// Defaults of the certificate commands.
const (
	defaultCADir      = "kmip-ca"
	defaultCAName     = "KES KMIP CA"
	defaultCADays     = 3650
	defaultLeafDays   = 730
	caCertFile        = "ca.crt"
	caKeyFile         = "ca.key"
	defaultServerCert = "kmip-server.crt"
	defaultServerKey  = "kmip-server.key"
)

// keyTypeHelp explains the --key-type default in every command that
// generates a key.
const keyTypeHelp = `Key type: rsa (RSA-3072, the default) or ecdsa (ECDSA P-256).
RSA is the default because older KMIP clients offer only the
TLS 1.2 suites of the KMIP 1.x profiles (AES128-SHA256 and the
like, RSA key exchange), which a server with an ECDSA
certificate cannot negotiate, and some cannot verify ECDSA
signatures in a chain. Choose ecdsa only if every client
supports it (TLS 1.3, or ECDHE-ECDSA suites).`

const kmipCAInitUsage = `Usage:
    kes kmip ca init [options]

Creates the certificate authority of the KMIP bridge: a CA certificate
(ca.crt, mode 0644) and its private key (ca.key, mode 0600) in DIR.
Keep ca.key offline if you can: whoever holds it can issue client
certificates.

Options:
    --dir DIR                Directory of the CA files (default: ` + defaultCADir + `).
    --name CN                Common name of the CA (default: "` + defaultCAName + `").
    --days N                 Validity in days (default: 3650).
    --key-type TYPE          rsa (default) or ecdsa. See below.
    -f, --force              Overwrite an existing CA. Every certificate the
                             old CA issued stops being trusted.
    -h, --help               Print command line options.

` + keyTypeHelp + `

Examples:
    $ kes kmip ca init --dir /etc/kes/kmip-ca --name "Example KMS CA"
`

func kmipCAInitCmd(args []string) error {
	var (
		dir     string
		name    string
		days    int
		keyType string
		force   bool
	)
	fs := newFlagSet("kes kmip ca init")
	fs.StringVar(&dir, "dir", defaultCADir, "")
	fs.StringVar(&name, "name", defaultCAName, "")
	fs.IntVar(&days, "days", defaultCADays, "")
	fs.StringVar(&keyType, "key-type", "rsa", "")
	fs.BoolVarP(&force, "force", "f", false, "")
	if err := parseFlags(fs, kmipCAInitUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	if days <= 0 {
		return usagef("kes kmip ca init: --days must be positive")
	}
	if err := checkKeyType("kes kmip ca init", keyType); err != nil {
		return err
	}
	if name == "" {
		return usagef("kes kmip ca init: --name must not be empty")
	}
	certPath, keyPath := filepath.Join(dir, caCertFile), filepath.Join(dir, caKeyFile)
	if !force {
		if err := checkNotExist(certPath, keyPath); err != nil {
			return fmt.Errorf("ca init: %w", err)
		}
	}
	key, err := generateKey(keyType)
	if err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              now.AddDate(0, 0, days),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	if _, err := issueKeyPair(tmpl, nil, key, certPath, keyPath, force); err != nil {
		return fmt.Errorf("ca init: %w", err)
	}
	fmt.Fprintf(stdout, "Created the KMIP CA %q:\n  certificate  %s\n  private key  %s\n", name, certPath, keyPath)
	return nil
}

const kmipCAExportUsage = `Usage:
    kes kmip ca export [options]

Prints the CA certificate (PEM) that KMIP clients must trust, for example
in vCenter's "Make vCenter Trust KMS" dialog or ZStack's KMS trust settings.

Options:
    --dir DIR                Directory of the CA files (default: ` + defaultCADir + `).
    -h, --help               Print command line options.
`

func kmipCAExportCmd(args []string) error {
	var dir string
	fs := newFlagSet("kes kmip ca export")
	fs.StringVar(&dir, "dir", defaultCADir, "")
	if err := parseFlags(fs, kmipCAExportUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	cert, err := readCertificate(filepath.Join(dir, caCertFile))
	if err != nil {
		return fmt.Errorf("ca export: %w", err)
	}
	_, err = stdout.Write(encodeCert(cert.Raw))
	return err
}

const kmipServerCertUsage = `Usage:
    kes kmip server-cert --dns NAME | --ip ADDR [options]

Issues the KMIP bridge's server certificate, signed by the CA, for the
kmip.tls.cert and kmip.tls.key settings of the server config. Clients
check the name or address they connect to against --dns and --ip: list
every name and address vCenter, the ESXi hosts or ZStack use to reach
the bridge.

Options:
    --dns NAME               DNS name of the bridge (repeatable, comma-separated).
    --ip ADDR                IP address of the bridge (repeatable, comma-separated).
    --name CN                Common name (default: the first --dns or --ip).
    --dir DIR                Directory of the CA files (default: ` + defaultCADir + `).
    --days N                 Validity in days (default: 730).
    --key-type TYPE          rsa (default) or ecdsa. See below.
    --out-cert FILE          Certificate file (default: ` + defaultServerCert + `).
    --out-key FILE           Private key file (default: ` + defaultServerKey + `).
    -f, --force              Overwrite existing files.
    -h, --help               Print command line options.

` + keyTypeHelp + `

Examples:
    $ kes kmip server-cert --dns kms.example.com --ip 10.0.0.5
`

func kmipServerCertCmd(args []string) error {
	var (
		dnsNames, ips   []string
		name, dir       string
		days            int
		keyType         string
		outCert, outKey string
		force           bool
		ipAddrs         []net.IP
		firstName       string
	)
	fs := newFlagSet("kes kmip server-cert")
	fs.StringSliceVar(&dnsNames, "dns", nil, "")
	fs.StringSliceVar(&ips, "ip", nil, "")
	fs.StringVar(&name, "name", "", "")
	fs.StringVar(&dir, "dir", defaultCADir, "")
	fs.IntVar(&days, "days", defaultLeafDays, "")
	fs.StringVar(&keyType, "key-type", "rsa", "")
	fs.StringVar(&outCert, "out-cert", defaultServerCert, "")
	fs.StringVar(&outKey, "out-key", defaultServerKey, "")
	fs.BoolVarP(&force, "force", "f", false, "")
	if err := parseFlags(fs, kmipServerCertUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 0, 0); err != nil {
		return err
	}
	if days <= 0 {
		return usagef("kes kmip server-cert: --days must be positive")
	}
	if err := checkKeyType("kes kmip server-cert", keyType); err != nil {
		return err
	}
	for _, s := range ips {
		ip := net.ParseIP(strings.TrimSpace(s))
		if ip == nil {
			return usagef("kes kmip server-cert: invalid IP address '%s'", s)
		}
		ipAddrs = append(ipAddrs, ip)
	}
	for i, d := range dnsNames {
		dnsNames[i] = strings.TrimSpace(d)
		if dnsNames[i] == "" {
			return usagef("kes kmip server-cert: empty DNS name")
		}
	}
	switch {
	case len(dnsNames) > 0:
		firstName = dnsNames[0]
	case len(ipAddrs) > 0:
		firstName = ipAddrs[0].String()
	default:
		return usagef("kes kmip server-cert: at least one --dns or --ip is required. See 'kes kmip server-cert --help'")
	}
	if name == "" {
		name = firstName
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:    dnsNames,
		IPAddresses: ipAddrs,
	}
	if _, err := issueLeaf(dir, keyType, days, tmpl, outCert, outKey, force); err != nil {
		return fmt.Errorf("server-cert: %w", err)
	}
	fmt.Fprintf(stdout, "Issued the KMIP server certificate %q:\n  certificate  %s\n  private key  %s\n", name, outCert, outKey)
	fmt.Fprintf(stdout, "Set kmip.tls.cert and kmip.tls.key in the server config to these files\nand kmip.tls.ca to %s.\n", filepath.Join(dir, caCertFile))
	return nil
}

const kmipSignCSRUsage = `Usage:
    kes kmip sign-csr <csr.pem> [options]

Signs a certificate signing request that a KMIP client generated, for
example with vCenter's "Make KMS trust vCenter" > "New Certificate
Signing Request". The certificate keeps the request's subject and
alternative names and gets the clientAuth extended key usage. The
request's signature is verified first.

The certificate (PEM) goes to standard output, or to --out. The client's
identity, to put into a policy of the server config, is printed as
'identity: <hex>': on standard error if the certificate went to standard
output, on standard output otherwise.

Options:
    --dir DIR                Directory of the CA files (default: ` + defaultCADir + `).
    --days N                 Validity in days (default: 730).
    --out FILE               Write the certificate to FILE.
    -f, --force              Overwrite FILE if it exists.
    -h, --help               Print command line options.

Examples:
    $ kes kmip sign-csr vcenter.csr --out vcenter.crt
`

func kmipSignCSRCmd(args []string) error {
	var (
		dir   string
		days  int
		out   string
		force bool
	)
	fs := newFlagSet("kes kmip sign-csr")
	fs.StringVar(&dir, "dir", defaultCADir, "")
	fs.IntVar(&days, "days", defaultLeafDays, "")
	fs.StringVar(&out, "out", "", "")
	fs.BoolVarP(&force, "force", "f", false, "")
	if err := parseFlags(fs, kmipSignCSRUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 1, 1); err != nil {
		return err
	}
	if days <= 0 {
		return usagef("kes kmip sign-csr: --days must be positive")
	}
	if out != "" && !force {
		if err := checkNotExist(out); err != nil {
			return fmt.Errorf("sign-csr: %w", err)
		}
	}
	csr, err := readCSR(fs.Arg(0))
	if err != nil {
		return fmt.Errorf("sign-csr: %w", err)
	}
	ca, err := loadCA(dir)
	if err != nil {
		return fmt.Errorf("sign-csr: %w", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		// RawSubject keeps the subject byte for byte, including attribute
		// types and string encodings that pkix.Name would not round-trip.
		RawSubject:            csr.RawSubject,
		NotBefore:             now.Add(-5 * time.Minute),
		NotAfter:              ca.clampNotAfter(now.AddDate(0, 0, days)),
		KeyUsage:              leafKeyUsage(csr.PublicKey),
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		DNSNames:              csr.DNSNames,
		IPAddresses:           csr.IPAddresses,
		EmailAddresses:        csr.EmailAddresses,
		URIs:                  csr.URIs,
	}
	certDER, err := issue(tmpl, ca.cert, csr.PublicKey, ca.key)
	if err != nil {
		return fmt.Errorf("sign-csr: %w", err)
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return fmt.Errorf("sign-csr: %w", err)
	}
	id := identity.FromCertificate(cert)
	if out == "" {
		if _, err := stdout.Write(encodeCert(certDER)); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "identity: %s\n", id)
		return nil
	}
	if err := writeFile(out, encodeCert(certDER), 0o644, force); err != nil {
		return fmt.Errorf("sign-csr: %w", err)
	}
	fmt.Fprintf(stdout, "identity: %s\n", id)
	return nil
}

const kmipClientNewUsage = `Usage:
    kes kmip client new <name> [options]

Issues a client certificate (clientAuth) and a new private key, signed by
the CA, for KMIP clients that take an uploaded certificate and key, such as
vCenter's "Make KMS trust vCenter" > "KMS certificate and private key" or
ZStack's "Make KMS Trust the Platform". The common name is <name>. Prints
the client's identity, to put into a policy of the server config.

Options:
    --dir DIR                Directory of the CA files (default: ` + defaultCADir + `).
    --days N                 Validity in days (default: 730).
    --key-type TYPE          rsa (default) or ecdsa. See below.
    --out-cert FILE          Certificate file (default: <name>.crt).
    --out-key FILE           Private key file (default: <name>.key).
    -f, --force              Overwrite existing files.
    -h, --help               Print command line options.

` + keyTypeHelp + `

Examples:
    $ kes kmip client new vcenter
`

func kmipClientNewCmd(args []string) error {
	var (
		dir             string
		days            int
		keyType         string
		outCert, outKey string
		force           bool
	)
	fs := newFlagSet("kes kmip client new")
	fs.StringVar(&dir, "dir", defaultCADir, "")
	fs.IntVar(&days, "days", defaultLeafDays, "")
	fs.StringVar(&keyType, "key-type", "rsa", "")
	fs.StringVar(&outCert, "out-cert", "", "")
	fs.StringVar(&outKey, "out-key", "", "")
	fs.BoolVarP(&force, "force", "f", false, "")
	if err := parseFlags(fs, kmipClientNewUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 1, 1); err != nil {
		return err
	}
	if days <= 0 {
		return usagef("kes kmip client new: --days must be positive")
	}
	if err := checkKeyType("kes kmip client new", keyType); err != nil {
		return err
	}
	name := fs.Arg(0)
	if name == "" {
		return usagef("kes kmip client new: the name must not be empty")
	}
	if outCert == "" {
		outCert = safeFileName(name) + ".crt"
	}
	if outKey == "" {
		outKey = safeFileName(name) + ".key"
	}
	tmpl := &x509.Certificate{
		Subject:     pkix.Name{CommonName: name},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	}
	cert, err := issueLeaf(dir, keyType, days, tmpl, outCert, outKey, force)
	if err != nil {
		return fmt.Errorf("client new: %w", err)
	}
	fmt.Fprintf(stdout, "Issued the KMIP client certificate %q:\n  certificate  %s\n  private key  %s\n", name, outCert, outKey)
	fmt.Fprintf(stdout, "identity: %s\n", identity.FromCertificate(cert))
	return nil
}

const kmipQueryUsage = `Usage:
    kes kmip query <host:port> --cert FILE --key FILE [options]

Connects to a KMIP server like a hypervisor does: TLS with a client
certificate, then Discover Versions and Query (server information,
operations, object types). Prints the negotiated TLS version and cipher
suite, the server's certificate and identity, and what the server
answered. Use it to check connectivity and trust in both directions
before configuring vCenter or ZStack. The port defaults to 5696.

Options:
    --cert FILE              Client certificate (PEM).
    --key FILE               Client private key (PEM).
    --ca FILE                CA certificate(s) that signed the server's
                             certificate (default: the system roots).
    --server-name NAME       Name to check the server certificate against
                             (default: the host of <host:port>).
    -k, --insecure           Do not verify the server certificate.
    --version X.Y            KMIP version to speak: 1.0 to 1.4. Default:
                             the first one the server offers.
    --cipher-suites SET      default or compat. compat also offers the
                             TLS 1.2 suites older KMIP servers require.
    --username NAME          Send a username/password credential; the
                             password is read from $KES_KMIP_PASSWORD.
    --timeout DURATION       Time limit of the whole exchange (default: 15s).
    -h, --help               Print command line options.

Examples:
    $ kes kmip query kms.example.com:5696 --cert vcenter.crt --key vcenter.key --ca kmip-ca/ca.crt
`

// kmipVersions are the protocol versions 'kes kmip query' can speak, in
// preference order.
var kmipVersions = []kmip.ProtocolVersion{kmip.V1_4, kmip.V1_3, kmip.V1_2, kmip.V1_1, kmip.V1_0}

func kmipQueryCmd(args []string) error {
	var (
		certFile, keyFile, caFile string
		serverName, versionStr    string
		cipherSuites, username    string
		insecure                  bool
		timeout                   time.Duration
	)
	fs := newFlagSet("kes kmip query")
	fs.StringVar(&certFile, "cert", "", "")
	fs.StringVar(&keyFile, "key", "", "")
	fs.StringVar(&caFile, "ca", "", "")
	fs.StringVar(&serverName, "server-name", "", "")
	fs.BoolVarP(&insecure, "insecure", "k", false, "")
	fs.StringVar(&versionStr, "version", "", "")
	fs.StringVar(&cipherSuites, "cipher-suites", "default", "")
	fs.StringVar(&username, "username", "", "")
	fs.DurationVar(&timeout, "timeout", 15*time.Second, "")
	if err := parseFlags(fs, kmipQueryUsage, args); err != nil {
		return err
	}
	if err := nArgs(fs, 1, 1); err != nil {
		return err
	}
	if certFile == "" || keyFile == "" {
		return usagef("kes kmip query: --cert and --key are required. See 'kes kmip query --help'")
	}
	if timeout <= 0 {
		return usagef("kes kmip query: --timeout must be positive")
	}
	var version *kmip.ProtocolVersion
	if versionStr != "" {
		i := slices.IndexFunc(kmipVersions, func(v kmip.ProtocolVersion) bool { return v.String() == versionStr })
		if i < 0 {
			return usagef("kes kmip query: unsupported --version '%s': use 1.0, 1.1, 1.2, 1.3 or 1.4", versionStr)
		}
		version = &kmipVersions[i]
	}
	addr := fs.Arg(0)
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		host = strings.Trim(addr, "[]")
		addr = net.JoinHostPort(host, "5696")
	}
	if serverName == "" {
		serverName = host
	}

	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return fmt.Errorf("query: client certificate: %w", err)
	}
	tlsConf := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		Certificates:       []tls.Certificate{cert},
		ServerName:         serverName,
		InsecureSkipVerify: insecure,
	}
	switch cipherSuites {
	case "default":
	case "compat":
		// The suites the bridge offers with cipher_suites: compat; as a
		// client they reach servers that only speak the KMIP 1.x TLS 1.2
		// suites.
		tlsConf.CipherSuites = kmipbridge.CompatCipherSuites()
	default:
		return usagef("kes kmip query: invalid --cipher-suites '%s': use default or compat", cipherSuites)
	}
	if caFile != "" {
		pemBytes, err := os.ReadFile(caFile)
		if err != nil {
			return fmt.Errorf("query: CA certificate: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemBytes) {
			return fmt.Errorf("query: CA certificate: no PEM certificate in %s", caFile)
		}
		tlsConf.RootCAs = pool
	}
	var password string
	if username != "" {
		password = os.Getenv("KES_KMIP_PASSWORD")
	}

	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	return kmipQuery(ctx, stdout, kmipQueryConfig{
		Addr:     addr,
		TLS:      tlsConf,
		Version:  version,
		Username: username,
		Password: password,
	})
}

// kmipQueryConfig is what 'kes kmip query' needs to talk to a server.
type kmipQueryConfig struct {
	Addr     string
	TLS      *tls.Config
	Version  *kmip.ProtocolVersion // nil: negotiate
	Username string                // empty: no credential
	Password string
}

// kmipQuery performs the TLS handshake, Discover Versions and Query
// against cfg.Addr and prints what it learnt to w.
func kmipQuery(ctx context.Context, w io.Writer, cfg kmipQueryConfig) error {
	var clientID identity.Identity
	if len(cfg.TLS.Certificates) > 0 && len(cfg.TLS.Certificates[0].Certificate) > 0 {
		leaf, err := x509.ParseCertificate(cfg.TLS.Certificates[0].Certificate[0])
		if err != nil {
			return fmt.Errorf("query: client certificate: %w", err)
		}
		clientID = identity.FromCertificate(leaf)
	}

	// The handshake is done here, not inside kmipclient, to report its
	// outcome precisely and to keep the connection state for the output.
	dialer := &tls.Dialer{NetDialer: &net.Dialer{}, Config: cfg.TLS}
	nc, err := dialer.DialContext(ctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("query: %s: %w", cfg.Addr, explainTLSError(err, cfg.TLS.ServerName))
	}
	conn := nc.(*tls.Conn)
	state := conn.ConnectionState()
	speak := kmip.V1_1 // what vCenter speaks for Discover Versions
	if cfg.Version != nil {
		speak = *cfg.Version
	}
	opts := []kmipclient.Option{
		kmipclient.WithTransportBuilder(func(context.Context, kmipclient.DialInfo) (kmipclient.Transport, error) {
			return newKMIPQueryTransport(conn, 1<<20), nil
		}),
		kmipclient.EnforceVersion(speak),
	}
	if cfg.Username != "" {
		cred := &kmip.Authentication{Credential: kmip.Credential{
			CredentialType: kmip.CredentialTypeUsernameAndPassword,
			CredentialValue: kmip.CredentialValue{UserPassword: &kmip.CredentialValueUserPassword{
				Username: cfg.Username,
				Password: cfg.Password,
			}},
		}}
		opts = append(opts, kmipclient.WithMiddlewares(func(next kmipclient.Next, ctx context.Context, msg *kmip.RequestMessage) (*kmip.ResponseMessage, error) {
			msg.Header.Authentication = cred
			return next(ctx, msg)
		}))
	}
	client, err := kmipclient.DialContext(ctx, cfg.Addr, opts...)
	if err != nil {
		conn.Close()
		return fmt.Errorf("query: %s: %w", cfg.Addr, err)
	}
	defer client.Close()

	fmt.Fprintf(w, "Server           %s\n", cfg.Addr)
	fmt.Fprintf(w, "TLS              %s, %s\n", tls.VersionName(state.Version), tls.CipherSuiteName(state.CipherSuite))
	if len(state.PeerCertificates) > 0 {
		leaf := state.PeerCertificates[0]
		fmt.Fprintf(w, "Server subject   %s\n", leaf.Subject)
		fmt.Fprintf(w, "Server issuer    %s\n", leaf.Issuer)
		fmt.Fprintf(w, "Server valid     %s to %s\n", leaf.NotBefore.UTC().Format(time.DateOnly), leaf.NotAfter.UTC().Format(time.DateOnly))
		fmt.Fprintf(w, "Server identity  %s\n", identity.FromCertificate(leaf))
	}
	if len(state.VerifiedChains) == 0 {
		fmt.Fprintf(w, "Server trust     NOT VERIFIED (--insecure)\n")
	} else {
		fmt.Fprintf(w, "Server trust     verified (%s)\n", state.VerifiedChains[0][len(state.VerifiedChains[0])-1].Subject)
	}
	if !clientID.IsUnknown() {
		fmt.Fprintf(w, "Client identity  %s\n", clientID)
	}

	res, err := client.Batch(ctx, &payloads.DiscoverVersionsRequestPayload{})
	if err != nil {
		return fmt.Errorf("query: discover versions: %w", explainTLSError(err, cfg.TLS.ServerName))
	}
	if err := kmipResultError(&res[0], clientID); err != nil {
		return fmt.Errorf("query: discover versions: %w", err)
	}
	dv, ok := res[0].ResponsePayload.(*payloads.DiscoverVersionsResponsePayload)
	if !ok {
		return errors.New("query: discover versions: unexpected response payload")
	}
	var offered []string
	for _, v := range dv.ProtocolVersion {
		offered = append(offered, v.String())
	}
	fmt.Fprintf(w, "KMIP offered     %s\n", strings.Join(offered, ", "))

	use := speak
	if cfg.Version == nil {
		i := slices.IndexFunc(dv.ProtocolVersion, func(v kmip.ProtocolVersion) bool { return slices.Contains(kmipVersions, v) })
		if i < 0 {
			return errors.New("query: discover versions: the server offers no KMIP version between 1.0 and 1.4")
		}
		use = dv.ProtocolVersion[i]
	}
	fmt.Fprintf(w, "KMIP used        %s\n", use)

	q := &payloads.QueryRequestPayload{QueryFunction: []kmip.QueryFunction{
		kmip.QueryFunctionServerInformation,
		kmip.QueryFunctionOperations,
		kmip.QueryFunctionObjects,
	}}
	res, err = client.BatchOpt(ctx, []kmip.OperationPayload{q}, func(m *kmip.RequestMessage) {
		m.Header.ProtocolVersion = use
	})
	if err != nil {
		return fmt.Errorf("query: query: %w", explainTLSError(err, cfg.TLS.ServerName))
	}
	if err := kmipResultError(&res[0], clientID); err != nil {
		return fmt.Errorf("query: query: %w", err)
	}
	qr, ok := res[0].ResponsePayload.(*payloads.QueryResponsePayload)
	if !ok {
		return errors.New("query: query: unexpected response payload")
	}
	if qr.VendorIdentification != "" {
		fmt.Fprintf(w, "Vendor           %s\n", qr.VendorIdentification)
	}
	ops := make([]string, 0, len(qr.Operations))
	for _, op := range qr.Operations {
		ops = append(ops, ttlv.EnumStr(op))
	}
	fmt.Fprintf(w, "Operations       %s\n", strings.Join(ops, ", "))
	objs := make([]string, 0, len(qr.ObjectType))
	for _, o := range qr.ObjectType {
		objs = append(objs, ttlv.EnumStr(o))
	}
	fmt.Fprintf(w, "Object types     %s\n", strings.Join(objs, ", "))
	return nil
}

// kmipQueryTransport sends one request at a time over an established
// connection and waits for its answer. It replaces kmipclient's stream
// transport, whose reader and writer goroutines race when the server
// closes the connection while a request is being sent: exactly what a
// server rejecting the client certificate after a TLS 1.3 handshake does.
type kmipQueryTransport struct {
	mu     sync.Mutex
	conn   net.Conn
	stream ttlv.Stream
}

func newKMIPQueryTransport(conn net.Conn, maxSize int) *kmipQueryTransport {
	return &kmipQueryTransport{conn: conn, stream: ttlv.NewStream(conn, maxSize)}
}

// RoundTrip implements kmipclient.Transport.
func (t *kmipQueryTransport) RoundTrip(ctx context.Context, msg *kmip.RequestMessage) (*kmip.ResponseMessage, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(time.Minute)
	}
	if err := t.conn.SetDeadline(deadline); err != nil {
		return nil, err
	}
	if err := t.stream.Send(msg); err != nil {
		return nil, err
	}
	resp := new(kmip.ResponseMessage)
	if err := t.stream.Recv(resp); err != nil {
		return nil, err
	}
	return resp, nil
}

// Clone implements kmipclient.Transport. 'kes kmip query' uses a single
// connection on purpose: it reports on that connection's TLS state.
func (t *kmipQueryTransport) Clone(context.Context) (kmipclient.Transport, error) {
	return nil, errors.New("kmip query: a second connection is not supported")
}

// Close implements kmipclient.Transport.
func (t *kmipQueryTransport) Close() error { return t.conn.Close() }

// kmipResultError turns a failed batch item into an error that says what
// the admin has to change.
func kmipResultError(bi *kmip.ResponseBatchItem, client identity.Identity) error {
	if bi.ResultStatus == kmip.ResultStatusSuccess {
		return nil
	}
	msg := bi.ResultMessage
	if msg == "" {
		msg = ttlv.EnumStr(bi.ResultReason)
	}
	switch bi.ResultReason {
	case kmip.ResultReasonPermissionDenied:
		return fmt.Errorf("the server denied the request (%s): give identity %s a policy that allows the /kmip/... paths", msg, client)
	case kmip.ResultReasonAuthenticationNotSuccessful:
		return fmt.Errorf("the server rejected the credentials (%s): check --username and $KES_KMIP_PASSWORD", msg)
	default:
		return fmt.Errorf("the server answered %s: %s", ttlv.EnumStr(bi.ResultReason), msg)
	}
}

// explainTLSError adds to a connection error what it means for the trust
// setup. The original error stays wrapped.
func explainTLSError(err error, serverName string) error {
	var (
		unknownCA x509.UnknownAuthorityError
		hostname  x509.HostnameError
		invalid   x509.CertificateInvalidError
		verify    *tls.CertificateVerificationError
		opErr     *net.OpError
	)
	switch {
	case errors.As(err, &unknownCA):
		return fmt.Errorf("the server certificate is not signed by a trusted CA; pass the CA that signed it with --ca (for the bridge: 'kes kmip ca export'): %w", err)
	case errors.As(err, &hostname):
		return fmt.Errorf("the server certificate is not valid for %q; connect with a name or address it lists, set --server-name, or reissue it with 'kes kmip server-cert --dns/--ip': %w", serverName, err)
	case errors.As(err, &invalid):
		return fmt.Errorf("the server certificate is not acceptable: %w", err)
	case errors.As(err, &verify):
		return fmt.Errorf("the server certificate could not be verified: %w", err)
	case errors.As(err, &opErr) && opErr.Op == "remote error":
		switch s := opErr.Err.Error(); {
		case strings.Contains(s, "certificate"), strings.Contains(s, "unknown ca"), strings.Contains(s, "access denied"):
			return fmt.Errorf("the server rejected the client certificate; it must be signed by a CA in the server's kmip.tls.ca and be valid now: %w", err)
		case strings.Contains(s, "handshake failure"), strings.Contains(s, "protocol version"), strings.Contains(s, "insufficient security"):
			return fmt.Errorf("no common TLS version or cipher suite; try --cipher-suites compat: %w", err)
		}
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, syscall.ECONNRESET):
		return fmt.Errorf("the server closed the connection; it may have rejected the client certificate: %w", err)
	}
	return err
}

// kmipCA is a loaded certificate authority.
type kmipCA struct {
	cert *x509.Certificate
	key  crypto.Signer
}

// clampNotAfter keeps issued certificates within the CA's validity: a
// certificate that outlives its issuer fails verification anyway.
func (ca *kmipCA) clampNotAfter(t time.Time) time.Time {
	if t.After(ca.cert.NotAfter) {
		return ca.cert.NotAfter
	}
	return t
}

func loadCA(dir string) (*kmipCA, error) {
	cert, err := readCertificate(filepath.Join(dir, caCertFile))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("%w (create the CA with 'kes kmip ca init --dir %s')", err, dir)
		}
		return nil, err
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("%s is not a CA certificate", filepath.Join(dir, caCertFile))
	}
	keyPath := filepath.Join(dir, caKeyFile)
	keyPEM, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, err
	}
	defer clear(keyPEM)
	key, err := parsePrivateKey(keyPEM)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", keyPath, err)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%s does not belong to %s", keyPath, filepath.Join(dir, caCertFile))
	}
	return &kmipCA{cert: cert, key: key}, nil
}

// checkKeyType validates --key-type before anything is read or written.
func checkKeyType(cmd, keyType string) error {
	switch strings.ToLower(keyType) {
	case "rsa", "ecdsa":
		return nil
	}
	return usagef("%s: invalid --key-type '%s': use rsa or ecdsa", cmd, keyType)
}

// generateKey returns a new private key of the --key-type.
func generateKey(keyType string) (crypto.Signer, error) {
	switch strings.ToLower(keyType) {
	case "rsa":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "ecdsa":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	default:
		return nil, usagef("invalid --key-type '%s': use rsa or ecdsa", keyType)
	}
}

// leafKeyUsage is the key usage of an end-entity certificate: RSA keys
// also encipher, which TLS 1.2 RSA key exchange needs.
func leafKeyUsage(pub crypto.PublicKey) x509.KeyUsage {
	if _, ok := pub.(*rsa.PublicKey); ok {
		return x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment
	}
	return x509.KeyUsageDigitalSignature
}

// issue signs tmpl with a fresh random serial number; parent nil means
// self-signed.
func issue(tmpl, parent *x509.Certificate, pub crypto.PublicKey, signer crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, err
	}
	tmpl.SerialNumber = serial
	if parent == nil {
		parent = tmpl
	}
	return x509.CreateCertificate(rand.Reader, tmpl, parent, pub, signer)
}

// issueLeaf issues an end-entity certificate for a new key of keyType,
// signed by the CA in dir and valid for days (at most as long as the CA),
// and writes it and its key. tmpl supplies the subject, the extended key
// usage and any alternative names. Existing files are refused, before
// anything is generated, unless force is set.
func issueLeaf(dir, keyType string, days int, tmpl *x509.Certificate, certPath, keyPath string, force bool) (*x509.Certificate, error) {
	if !force {
		if err := checkNotExist(certPath, keyPath); err != nil {
			return nil, err
		}
	}
	ca, err := loadCA(dir)
	if err != nil {
		return nil, err
	}
	key, err := generateKey(keyType)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl.NotBefore = now.Add(-5 * time.Minute)
	tmpl.NotAfter = ca.clampNotAfter(now.AddDate(0, 0, days))
	tmpl.KeyUsage = leafKeyUsage(key.Public())
	tmpl.BasicConstraintsValid = true
	return issueKeyPair(tmpl, ca, key, certPath, keyPath, force)
}

// issueKeyPair issues the certificate tmpl for key, signed by ca (nil:
// self-signed), and writes the private key (mode 0600) and then the
// certificate (mode 0644).
func issueKeyPair(tmpl *x509.Certificate, ca *kmipCA, key crypto.Signer, certPath, keyPath string, force bool) (*x509.Certificate, error) {
	var (
		parent *x509.Certificate
		signer = key
	)
	if ca != nil {
		parent, signer = ca.cert, ca.key
	}
	certDER, err := issue(tmpl, parent, key.Public(), signer)
	if err != nil {
		return nil, err
	}
	cert, err := x509.ParseCertificate(certDER)
	if err != nil {
		return nil, err
	}
	keyPEM, err := encodeKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(keyPEM)
	if err := writeFile(keyPath, keyPEM, 0o600, force); err != nil {
		return nil, err
	}
	if err := writeFile(certPath, encodeCert(certDER), 0o644, force); err != nil {
		return nil, err
	}
	return cert, nil
}

func encodeCert(der []byte) []byte {
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

func encodeKey(key crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	defer clear(der)
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parsePrivateKey accepts PKCS#8, PKCS#1 and SEC 1 PEM keys. Its errors
// never contain key bytes.
func parsePrivateKey(data []byte) (crypto.Signer, error) {
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		var (
			key any
			err error
		)
		switch block.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(block.Bytes)
		default:
			continue
		}
		if err != nil {
			return nil, errors.New("malformed private key")
		}
		signer, ok := key.(crypto.Signer)
		if !ok {
			return nil, errors.New("unsupported private key type")
		}
		return signer, nil
	}
	return nil, errors.New("no PEM private key found")
}

func readCertificate(path string) (*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	for len(data) > 0 {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			cert, err := x509.ParseCertificate(block.Bytes)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", path, err)
			}
			return cert, nil
		}
	}
	return nil, fmt.Errorf("%s: no PEM certificate found", path)
}

// maxCSRSize bounds what sign-csr reads; real requests are a few KB.
const maxCSRSize = 64 << 10

// readCSR reads a PEM certificate request and verifies its signature, so
// that only the holder of the private key can have it certified.
func readCSR(path string) (*x509.CertificateRequest, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCSRSize+1))
	if err != nil {
		return nil, err
	}
	if len(data) > maxCSRSize {
		return nil, fmt.Errorf("%s: too large for a certificate request", path)
	}
	data = bytes.TrimSpace(data)
	var block *pem.Block
	for len(data) > 0 {
		block, data = pem.Decode(data)
		if block == nil || block.Type == "CERTIFICATE REQUEST" || block.Type == "NEW CERTIFICATE REQUEST" {
			break
		}
	}
	if block == nil || (block.Type != "CERTIFICATE REQUEST" && block.Type != "NEW CERTIFICATE REQUEST") {
		return nil, fmt.Errorf("%s: no PEM certificate request found", path)
	}
	csr, err := x509.ParseCertificateRequest(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if err := csr.CheckSignature(); err != nil {
		return nil, fmt.Errorf("%s: invalid signature: %w", path, err)
	}
	switch pub := csr.PublicKey.(type) {
	case *rsa.PublicKey:
		if pub.N.BitLen() < 2048 {
			return nil, fmt.Errorf("%s: RSA key of %d bits is too small (minimum 2048)", path, pub.N.BitLen())
		}
	case *ecdsa.PublicKey, ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("%s: unsupported public key type %T", path, pub)
	}
	return csr, nil
}

// safeFileName maps a client name to a file name in the current directory.
func safeFileName(name string) string {
	return strings.Map(func(r rune) rune {
		if r == '/' || r == '\\' || r == 0 || r == ':' {
			return '_'
		}
		return r
	}, name)
}

// checkNotExist fails if any of paths exists, before anything is written,
// so that a refused command leaves no half-written set of files.
func checkNotExist(paths ...string) error {
	for _, p := range paths {
		if _, err := os.Lstat(p); err == nil {
			return fmt.Errorf("%s already exists (use --force to overwrite)", p)
		} else if !errors.Is(err, fs.ErrNotExist) {
			return err
		}
	}
	return nil
}

// writeFile writes data to path with mode perm through a temporary file,
// so that a private key is never readable with a wider mode, not even for
// a moment. An existing file is replaced atomically if overwrite is set
// and never touched otherwise.
func writeFile(path string, data []byte, perm os.FileMode, overwrite bool) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".kes-*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	defer os.Remove(tmp) // after a rename or link, only the extra name goes
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if overwrite {
		return os.Rename(tmp, path)
	}
	// A hard link fails if path exists, so two commands writing the same
	// file cannot overwrite each other.
	switch err := os.Link(tmp, path); {
	case err == nil:
		return nil
	case errors.Is(err, fs.ErrExist):
		return fmt.Errorf("%s already exists (use --force to overwrite)", path)
	default:
		// File systems without hard links.
		if err := checkNotExist(path); err != nil {
			return err
		}
		return os.Rename(tmp, path)
	}
}
