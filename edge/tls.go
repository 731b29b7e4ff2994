// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/kesbridge/kes/keystore"
)

// certCheckInterval is how often the certificate files are stat'ed for
// changes: cheap enough per handshake, quick enough for a rotation.
const certCheckInterval = 5 * time.Second

// maxPEMSize bounds certificate, key and CA files.
const maxPEMSize = 1 << 20

// serverTLS builds the TLS config of the HTTP API from cfg. skipAuth
// downgrades client authentication so that clients without a
// certificate can reach the routes that skip authentication.
func serverTLS(cfg *Config, skipAuth bool, log *slog.Logger) (*tls.Config, *x509.CertPool, error) {
	conf := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		ClientAuth: tls.RequireAnyClientCert,
	}
	if cfg.devCert != nil {
		cert := *cfg.devCert
		conf.Certificates = []tls.Certificate{cert}
	} else {
		l, err := newCertLoader(cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.Password, log)
		if err != nil {
			return nil, nil, err
		}
		conf.GetCertificate = l.get
	}
	var pool *x509.CertPool
	if cfg.TLS.CAFile != "" {
		var err error
		if pool, err = loadCAs(cfg.TLS.CAFile); err != nil {
			return nil, nil, err
		}
	}
	if cfg.TLS.VerifyClients {
		conf.ClientAuth = tls.RequireAndVerifyClientCert
		conf.ClientCAs = pool // nil: the system roots
	}
	if skipAuth {
		switch conf.ClientAuth {
		case tls.RequireAnyClientCert:
			conf.ClientAuth = tls.RequestClientCert
		case tls.RequireAndVerifyClientCert:
			conf.ClientAuth = tls.VerifyClientCertIfGiven
		}
	}
	return conf, pool, nil
}

// loadCAs returns the system roots plus the PEM certificates in path (a
// file or a directory of files).
func loadCAs(path string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil {
		pool = x509.NewCertPool()
	}
	info, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("failed to read CA certificates: %w", err)
	}
	files := []string{path}
	if info.IsDir() {
		entries, err := os.ReadDir(path)
		if err != nil {
			return nil, fmt.Errorf("failed to read CA certificates: %w", err)
		}
		files = files[:0]
		for _, e := range entries {
			if e.Type().IsRegular() {
				files = append(files, filepath.Join(path, e.Name()))
			}
		}
	}
	for _, f := range files {
		b, err := readFile(f)
		if err != nil {
			return nil, fmt.Errorf("failed to read CA certificates: %w", err)
		}
		if !pool.AppendCertsFromPEM(b) && !info.IsDir() {
			return nil, fmt.Errorf("failed to read CA certificates: no certificate in '%s'", f)
		}
	}
	return pool, nil
}

// readFile reads a certificate, key or CA file (see readConfigFile).
func readFile(path string) ([]byte, error) { return readConfigFile(path, maxPEMSize) }

// noPassword is the password of a key file that is not encrypted.
var noPassword keystore.Secret

// loadCertificate reads a PEM certificate chain and its private key. The
// key file may hold certificates too; a legacy-encrypted key is
// decrypted with password. The leaf must name a DNS name or IP address.
func loadCertificate(certFile, keyFile string, password keystore.Secret) (tls.Certificate, error) {
	certPEM, err := readFile(certFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to read TLS certificate: %w", err)
	}
	keyFile2, err := readFile(keyFile)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("failed to read TLS private key: %w", err)
	}
	var keyPEM []byte
	for rest := keyFile2; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		if block.Type == "CERTIFICATE" {
			continue
		}
		//lint:ignore SA1019 legacy-encrypted PEM keys are what tls.password exists for
		if x509.IsEncryptedPEMBlock(block) { //nolint:staticcheck // see above
			if password.IsZero() {
				return tls.Certificate{}, errors.New("TLS private key is encrypted: set tls.password")
			}
			//lint:ignore SA1019 see above
			der, err := x509.DecryptPEMBlock(block, []byte(password.Reveal())) //nolint:staticcheck // see above
			if err != nil {
				return tls.Certificate{}, errors.New("failed to decrypt TLS private key: wrong password or corrupt key")
			}
			block = &pem.Block{Type: block.Type, Bytes: der}
		}
		keyPEM = pem.EncodeToMemory(block)
		break
	}
	if keyPEM == nil {
		return tls.Certificate{}, errors.New("no private key in TLS key file")
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	clear(keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("invalid TLS certificate or key: %w", err)
	}
	if len(cert.Leaf.DNSNames) == 0 && len(cert.Leaf.IPAddresses) == 0 {
		return tls.Certificate{}, errors.New("invalid TLS certificate: certificate does not contain any DNS or IP address as SAN")
	}
	return cert, nil
}

// certLoader serves the certificate from the files and re-reads them
// when they change, so a rotated certificate is picked up without a
// restart. A broken new file is logged and the old certificate stays.
type certLoader struct {
	certFile, keyFile string
	password          keystore.Secret
	log               *slog.Logger

	mu      sync.Mutex
	cert    *tls.Certificate
	stamp   string
	checked time.Time
}

func newCertLoader(certFile, keyFile string, password keystore.Secret, log *slog.Logger) (*certLoader, error) {
	l := &certLoader{certFile: certFile, keyFile: keyFile, password: password, log: log}
	cert, err := loadCertificate(certFile, keyFile, password)
	if err != nil {
		return nil, err
	}
	l.cert, l.stamp, l.checked = &cert, l.fileStamp(), time.Now()
	return l, nil
}

func (l *certLoader) fileStamp() string {
	var s string
	for _, f := range []string{l.certFile, l.keyFile} {
		if info, err := os.Stat(f); err == nil {
			s += fmt.Sprintf("%d/%d;", info.ModTime().UnixNano(), info.Size())
		}
	}
	return s
}

func (l *certLoader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if time.Since(l.checked) < certCheckInterval {
		return l.cert, nil
	}
	l.checked = time.Now()
	if stamp := l.fileStamp(); stamp != l.stamp {
		cert, err := loadCertificate(l.certFile, l.keyFile, l.password)
		if err != nil {
			l.log.Error("failed to reload TLS certificate, keeping the old one", "err", err)
		} else {
			l.cert, l.stamp = &cert, stamp
			l.log.Info("reloaded TLS certificate", "cert", l.certFile)
		}
	}
	return l.cert, nil
}

// selfSigned returns the dev mode certificate: ECDSA P-256, CN
// localhost, valid for 90 days, for the IP of addr or, for an
// unspecified IP, for every address of the host.
func selfSigned(addr string) (*tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("failed to generate TLS key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 128))
	if err != nil {
		return nil, fmt.Errorf("failed to generate TLS certificate: %w", err)
	}
	now := time.Now().UTC()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: "localhost"},
		NotBefore:             now.Add(-time.Minute),
		NotAfter:              now.Add(90 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           serverIPs(addr),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, fmt.Errorf("failed to generate TLS certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, fmt.Errorf("failed to generate TLS certificate: %w", err)
	}
	return &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// serverIPs returns the IP of addr, or every up interface address (and
// loopback) if the IP is unspecified.
func serverIPs(addr string) []net.IP {
	host, _, _ := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); ip != nil && !ip.IsUnspecified() {
		return []net.IP{ip}
	}
	ips := []net.IP{net.IPv4(127, 0, 0, 1)}
	ifaces, _ := net.Interfaces()
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 {
			continue
		}
		addrs, _ := iface.Addrs()
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
				ips = append(ips, n.IP)
			}
		}
	}
	return ips
}
