// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build linux

package kmipbridge

import (
	"bufio"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/gcpace"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// BenchmarkKMIPNewConnection measures the server CPU of one new TLS
// connection that sends Discover Versions and Get, as vCenter does, for
// the bridge and, in the same run and interleaved, for a minimal
// crypto/tls server that answers both messages with fixed bytes. Each
// server runs in a process of its own (this test binary, see
// TestKMIPBenchServer) and reports its CPU time (getrusage), so the
// client's work is not counted.
//
// Both servers do mutual TLS with the same certificates and verify the
// client's chain against the same CA: the minimal one with crypto/tls's
// RequireAndVerifyClientCert, the bridge with its own chain check (which
// does not demand the clientAuth extended key usage). The bridge also
// takes the identity, checks the policy and reads the key; the minimal
// server only frames messages.
func BenchmarkKMIPNewConnection(b *testing.B) {
	for _, alg := range []string{"rsa2048", "ecdsa-p256"} {
		// One client that reconnects, as hypervisors do, and clients
		// that are each new to the server: more certificates (of one key,
		// so of one identity) than the bridge remembers verified chains
		// of, used in turn, so that every connection's chain is checked.
		for _, clients := range []int{1, 2 * chainCacheSize} {
			name := alg
			if clients > 1 {
				name += "-new-clients"
			}
			b.Run(name, func(b *testing.B) { benchNewConnection(b, alg, clients) })
		}
	}
}

func benchNewConnection(b *testing.B, alg string, clients int) {
	dir := b.TempDir()
	certs := writeBenchPKI(b, dir, alg, clients)
	bridge := startBenchServer(b, dir, "bridge", certs)
	uid := bridge.createKey(b)
	dv := ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.DiscoverVersionsRequestPayload{}))
	get := ttlv.MarshalTTLV(request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: uid}))
	// The minimal server answers what the bridge answered.
	resp := bridge.connection(b, dv, get)
	for i, r := range resp {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("resp%d", i)), r, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	minimal := startBenchServer(b, dir, "minimal", certs)
	for range 20 { // warm up both
		bridge.connection(b, dv, get)
		minimal.connection(b, dv, get)
	}
	b0, m0 := bridge.cpu(b), minimal.cpu(b)
	b.ResetTimer()
	for range b.N {
		bridge.connection(b, dv, get)
		minimal.connection(b, dv, get)
	}
	b.StopTimer()
	bc, mc := bridge.cpu(b)-b0, minimal.cpu(b)-m0
	n := float64(b.N)
	b.ReportMetric(float64(bc.Microseconds())/n, "bridge-µs/conn")
	b.ReportMetric(float64(mc.Microseconds())/n, "minimal-µs/conn")
	b.ReportMetric(100*(float64(bc)/float64(mc)-1), "overhead-%")
}

// writeBenchPKI writes a CA and a server and client certificate with keys
// of the algorithm alg into dir, and returns clients client certificates
// of the client's key, each with a serial number of its own.
func writeBenchPKI(b *testing.B, dir, alg string, clients int) []tls.Certificate {
	newKey := func() crypto.Signer {
		var k crypto.Signer
		var err error
		if alg == "rsa2048" {
			k, err = rsa.GenerateKey(rand.Reader, 2048)
		} else {
			k, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		}
		if err != nil {
			b.Fatal(err)
		}
		return k
	}
	write := func(name, typ string, der []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			b.Fatal(err)
		}
	}
	caKey := newKey()
	caTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, caKey.Public(), caKey)
	if err != nil {
		b.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	write("ca.pem", "CERTIFICATE", caDER)
	for i, name := range []string{"server", "client"} {
		key := newKey()
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i + 2)), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage:    x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
			ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
		if err != nil {
			b.Fatal(err)
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			b.Fatal(err)
		}
		write(name+".pem", "CERTIFICATE", der)
		write(name+".key", "PRIVATE KEY", kder)
		if name != "client" {
			continue
		}
		certs := []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}
		for j := 1; j < clients; j++ {
			tmpl.SerialNumber = big.NewInt(int64(100 + j))
			der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, key.Public(), caKey)
			if err != nil {
				b.Fatal(err)
			}
			certs = append(certs, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key})
		}
		return certs
	}
	panic("unreachable")
}

// benchServer is a server process started by startBenchServer.
type benchServer struct {
	addr string
	in   io.Writer
	out  *bufio.Reader
	conf *tls.Config
}

// startBenchServer starts a server process; its connections present
// the client certificates certs in turn.
func startBenchServer(b *testing.B, dir, mode string, certs []tls.Certificate) *benchServer {
	cmd := exec.Command(os.Args[0], "-test.run=^TestKMIPBenchServer$")
	cmd.Env = append(os.Environ(), "KMIP_BENCH_SERVER="+mode, "KMIP_BENCH_DIR="+dir)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	outPipe, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		in.Close() // the server exits at the end of its input
		cmd.Wait()
	})
	s := &benchServer{in: in, out: bufio.NewReader(outPipe)}
	s.addr = s.line(b, "")
	pool := x509.NewCertPool()
	caPEM, _ := os.ReadFile(filepath.Join(dir, "ca.pem"))
	pool.AppendCertsFromPEM(caPEM)
	next := 0
	s.conf = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1",
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			c := &certs[next%len(certs)]
			next++
			return c, nil
		}}
	return s
}

// line sends a command (none if empty) and returns the server's answer:
// its output lines start with "kmipbench ", anything else (test
// framework output) is skipped.
func (s *benchServer) line(b *testing.B, cmd string) string {
	if cmd != "" {
		if _, err := io.WriteString(s.in, cmd+"\n"); err != nil {
			b.Fatal(err)
		}
	}
	for {
		l, err := s.out.ReadString('\n')
		if err != nil {
			b.Fatalf("bench server: %v", err)
		}
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "kmipbench "); ok {
			return v
		}
	}
}

// cpu returns the server process's CPU time (user and system).
func (s *benchServer) cpu(b *testing.B) time.Duration {
	us, err := strconv.ParseInt(s.line(b, "cpu"), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return time.Duration(us) * time.Microsecond
}

// createKey creates an AES key over KMIP and returns its identifier.
func (s *benchServer) createKey(b *testing.B) string {
	var resp kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(s.connection(b, benchCreateRequest())[0], &resp); err != nil {
		b.Fatal(err)
	}
	wantOK(b, resp.BatchItem[0])
	return resp.BatchItem[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
}

// connection opens a new TLS connection (no session resumption), sends
// the messages one after the other and returns the answers.
func (s *benchServer) connection(b *testing.B, msgs ...[]byte) [][]byte {
	c, err := tls.Dial("tcp", s.addr, s.conf)
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	var resp [][]byte
	for _, m := range msgs {
		if _, err := c.Write(m); err != nil {
			b.Fatal(err)
		}
		resp = append(resp, readMessage(b, c))
	}
	return resp
}

// TestKMIPBenchServer is the server process of BenchmarkKMIPNewConnection;
// without KMIP_BENCH_SERVER it does nothing. It prints its address, then
// answers "cpu" commands on stdin until stdin ends.
func TestKMIPBenchServer(t *testing.T) {
	mode, dir := os.Getenv("KMIP_BENCH_SERVER"), os.Getenv("KMIP_BENCH_DIR")
	if mode == "" {
		t.Skip("the server process of BenchmarkKMIPNewConnection")
	}
	file := func(name string) string { return filepath.Join(dir, name) }
	// KMIP_BENCH_PROFILE=<dir> writes each server's CPU profile there.
	if p := os.Getenv("KMIP_BENCH_PROFILE"); p != "" {
		f, err := os.Create(filepath.Join(p, mode+".pprof"))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			t.Fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	// Both processes pace their collector as the kes binary does
	// (internal/gcpace; GOGC=100 in the environment measures without).
	pace, stopPace := context.WithCancel(context.Background())
	defer stopPace()
	go gcpace.Run(pace)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	switch mode {
	case "bridge":
		conf, err := LoadTLSConfig(file("server.pem"), file("server.key"), file("ca.pem"))
		if err != nil {
			t.Fatal(err)
		}
		clientPEM, _ := os.ReadFile(file("client.pem"))
		blk, _ := pem.Decode(clientPEM)
		leaf, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		ks := keys.New(keys.Config{Store: keystore.NewMem()})
		defer ks.Close()
		set := &policy.Set{
			Policies:   map[string]*policy.Policy{"kmip": {Allow: []string{"/kmip/*"}}},
			Identities: map[string]string{identity.FromCertificate(leaf).String(): "kmip"},
		}
		srv, err := New(Config{Keys: ks, Policies: func() *policy.Set { return set }, TLSConfig: conf})
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		defer srv.Shutdown(context.Background())
	case "minimal":
		go serveMinimal(t, ln, file)
	default:
		t.Fatalf("unknown mode %q", mode)
	}
	fmt.Printf("kmipbench %s\n", ln.Addr())
	sc := bufio.NewScanner(os.Stdin)
	for sc.Scan() {
		switch sc.Text() {
		case "cpu":
			var ru syscall.Rusage
			if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
				t.Fatal(err)
			}
			us := ru.Utime.Sec*1e6 + ru.Utime.Usec + ru.Stime.Sec*1e6 + ru.Stime.Usec
			fmt.Printf("kmipbench %d\n", us)
		}
	}
}

// serveMinimal is the least a KMIP server over mutual TLS does: verify
// the client's chain, read each message (header, then body) and answer
// it with the recorded bytes resp0, resp1, ...
func serveMinimal(t *testing.T, ln net.Listener, file func(string) string) {
	cert, err := tls.LoadX509KeyPair(file("server.pem"), file("server.key"))
	if err != nil {
		t.Error(err)
		return
	}
	caPEM, _ := os.ReadFile(file("ca.pem"))
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	var resp [][]byte
	for i := 0; ; i++ {
		r, err := os.ReadFile(file(fmt.Sprintf("resp%d", i)))
		if err != nil {
			break
		}
		resp = append(resp, r)
	}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		CipherSuites: CompatCipherSuites(),
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		go func() {
			defer c.Close()
			tc := tls.Server(c, conf)
			tc.SetDeadline(time.Now().Add(30 * time.Second))
			var hdr [8]byte
			buf := make([]byte, 4096)
			for _, r := range resp {
				if _, err := io.ReadFull(tc, hdr[:]); err != nil {
					return
				}
				n := int(hdr[4])<<24 | int(hdr[5])<<16 | int(hdr[6])<<8 | int(hdr[7])
				if n > len(buf) {
					return
				}
				if _, err := io.ReadFull(tc, buf[:n]); err != nil {
					return
				}
				if _, err := tc.Write(r); err != nil {
					return
				}
			}
		}()
	}
}
