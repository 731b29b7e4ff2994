// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Command kes-load measures the throughput and latency of a running server,
// over the KES HTTP API or over KMIP. Every run is bounded in time and in
// requests, and stops by itself.
//
//	kes-load -k --op generate --duration 10s --concurrency 8        # KES_SERVER, KES_API_KEY
//	kes-load --kmip 127.0.0.1:5696 --cert c.crt --key c.key --ca ca.crt --op get
package main

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	neturl "net/url"
	"os"
	"os/signal"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/minio/kms-go/kes"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipclient"
	flag "github.com/spf13/pflag"
)

const usage = `Usage: kes-load [options]

Sends a bounded load to a running server and reports throughput and latency.

HTTP API (KES_SERVER and KES_API_KEY, as for the kes CLI):
      --op generate|decrypt|bulk-decrypt|mixed
                                    operation (default generate)
      --name NAME                   key to use; created if missing (default kes-load)
      --connections N               HTTP/2 connections the clients share (default 4,
                                    at most --concurrency)
      --batch N                     ciphertexts per bulk decrypt (default 10)
  -k, --insecure                    skip server certificate verification

KMIP (--kmip HOST:PORT):
      --op get|create               operation (default get)
      --cert FILE --key FILE        client certificate and key
      --ca FILE                     CA of the server certificate
      --new-conn                    open a new connection for every request

Bounds:
  -c, --concurrency N               parallel clients (default 4)
  -d, --duration D                  run time (default 10s, at most 10m)
  -n, --requests N                  stop after N requests in total (default 1000000)
`

func main() {
	err := run(os.Args[1:], os.Stdout)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(2) // the usage is printed already; help is not a failure to report
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "kes-load: error: %v\n", err)
		os.Exit(1)
	}
}

// setupTimeout bounds the requests that prepare a run (creating its key);
// the run itself is bounded by --duration.
const setupTimeout = 30 * time.Second

type options struct {
	op          string
	name        string
	insecure    bool
	kmipAddr    string
	cert, key   string
	ca          string
	newConn     bool
	connections int
	batch       int
	concurrency int
	duration    time.Duration
	requests    int64
}

func run(args []string, out io.Writer) error {
	var o options
	f := flag.NewFlagSet("kes-load", flag.ContinueOnError)
	f.Usage = func() { fmt.Fprint(os.Stderr, usage) }
	f.StringVar(&o.op, "op", "", "")
	f.StringVar(&o.name, "name", "kes-load", "")
	f.BoolVarP(&o.insecure, "insecure", "k", false, "")
	f.StringVar(&o.kmipAddr, "kmip", "", "")
	f.StringVar(&o.cert, "cert", "", "")
	f.StringVar(&o.key, "key", "", "")
	f.StringVar(&o.ca, "ca", "", "")
	f.BoolVar(&o.newConn, "new-conn", false, "")
	f.IntVar(&o.connections, "connections", 4, "")
	f.IntVar(&o.batch, "batch", 10, "")
	f.IntVarP(&o.concurrency, "concurrency", "c", 4, "")
	f.DurationVarP(&o.duration, "duration", "d", 10*time.Second, "")
	f.Int64VarP(&o.requests, "requests", "n", 1_000_000, "")
	if err := f.Parse(args); err != nil {
		return err
	}
	if o.concurrency < 1 || o.concurrency > 1024 {
		return errors.New("--concurrency must be between 1 and 1024")
	}
	if o.connections < 1 || o.connections > 1024 {
		return errors.New("--connections must be between 1 and 1024")
	}
	o.connections = min(o.connections, o.concurrency) // an idle connection measures nothing
	if o.batch < 1 || o.batch > 1000 {
		return errors.New("--batch must be between 1 and 1000")
	}
	if o.duration <= 0 || o.duration > 10*time.Minute {
		return errors.New("--duration must be between 0 and 10m")
	}
	if o.requests < 1 {
		return errors.New("--requests must be positive")
	}

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	var (
		op    func(context.Context, int) error
		label string
		err   error
	)
	if o.kmipAddr != "" {
		op, label, err = kmipOp(ctx, o)
	} else {
		op, label, err = httpOp(ctx, o)
	}
	if err != nil {
		return err
	}
	r := load(ctx, o, op)
	r.print(out, label)
	if r.ok == 0 {
		return fmt.Errorf("no request succeeded (first error: %v)", r.firstErr)
	}
	return nil
}

func httpOp(ctx context.Context, o options) (func(context.Context, int) error, string, error) {
	server := firstEnv("MINIO_KES_SERVER", "KES_SERVER", "MINIO_KMS_KES_ENDPOINT")
	if server == "" {
		server = "127.0.0.1:7373"
	}
	server = strings.TrimPrefix(server, "http://")
	if !strings.HasPrefix(server, "https://") {
		server = "https://" + server
	}
	apiKey := firstEnv("MINIO_KES_API_KEY", "KES_API_KEY", "MINIO_KMS_KES_API_KEY")
	if apiKey == "" {
		return nil, "", errors.New("no API key: set KES_API_KEY")
	}
	key, err := kes.ParseAPIKey(apiKey)
	if err != nil {
		return nil, "", errors.New("invalid API key in KES_API_KEY")
	}
	cert, err := kes.GenerateCertificate(key)
	if err != nil {
		return nil, "", err
	}
	// Each client has a transport, and so an HTTP/2 connection, of its
	// own; worker w uses client w mod --connections, so the requests
	// spread evenly over the connections as they do from a MinIO
	// cluster's nodes.
	clients := make([]*kes.Client, o.connections)
	for i := range clients {
		clients[i] = kes.NewClientWithConfig(server, &tls.Config{
			MinVersion:         tls.VersionTLS12,
			Certificates:       []tls.Certificate{cert},
			InsecureSkipVerify: o.insecure,
		})
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	defer cancelSetup()
	if err := clients[0].CreateKey(setupCtx, o.name); err != nil && !errors.Is(err, kes.ErrKeyExists) {
		return nil, "", fmt.Errorf("failed to create key '%s': %w", o.name, err)
	}
	// One request per client opens its connection before the run, so
	// the run measures requests, not handshakes.
	var dek kes.DEK
	for _, c := range clients {
		if dek, err = c.GenerateKey(setupCtx, o.name, nil); err != nil {
			return nil, "", fmt.Errorf("failed to generate a data key: %w", err)
		}
	}
	client := func(w int) *kes.Client { return clients[w%len(clients)] }
	label := fmt.Sprintf(" (%d connections)", len(clients))
	switch o.op {
	case "", "generate":
		return func(ctx context.Context, w int) error {
			_, err := client(w).GenerateKey(ctx, o.name, nil)
			return err
		}, "HTTP generate" + label, nil
	case "decrypt":
		return func(ctx context.Context, w int) error {
			_, err := client(w).Decrypt(ctx, o.name, dek.Ciphertext, nil)
			return err
		}, "HTTP decrypt" + label, nil
	case "bulk-decrypt":
		return bulkOp(setupCtx, o, clients, server, dek.Ciphertext, label)
	case "mixed":
		var n atomic.Uint64
		return func(ctx context.Context, w int) error {
			if n.Add(1)%2 == 0 {
				_, err := client(w).Decrypt(ctx, o.name, dek.Ciphertext, nil)
				return err
			}
			_, err := client(w).GenerateKey(ctx, o.name, nil)
			return err
		}, "HTTP generate+decrypt" + label, nil
	default:
		return nil, "", fmt.Errorf("unknown HTTP operation '%s'", o.op)
	}
}

// maxBulkResponse bounds what kes-load reads of a bulk decrypt answer.
const maxBulkResponse = 1 << 20

// bulkOp decrypts --batch copies of ciphertext per request with the bulk
// decrypt API (kes-go v0.2's PUT /v1/key/bulk/decrypt/<name>). A server
// without that API (minio/kes since v0.23) answers 404 to the probe at
// set-up; then one request is --batch single decrypts, the work a client
// of that server does for the same result, so that CPU per request
// compares like with like.
func bulkOp(setupCtx context.Context, o options, clients []*kes.Client, server string, ciphertext []byte, label string) (func(context.Context, int) error, string, error) {
	item := map[string][]byte{"ciphertext": ciphertext}
	items := make([]map[string][]byte, o.batch)
	for i := range items {
		items[i] = item
	}
	body, err := json.Marshal(items)
	if err != nil {
		return nil, "", err
	}
	url := server + "/v1/key/bulk/decrypt/" + neturl.PathEscape(o.name)
	bulk := func(ctx context.Context, c *kes.Client) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPut, url, bytes.NewReader(body))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/json")
		resp, err := c.HTTPClient.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		var out []struct {
			Plaintext []byte `json:"plaintext"`
		}
		if resp.StatusCode != http.StatusOK {
			io.Copy(io.Discard, io.LimitReader(resp.Body, maxBulkResponse))
			return resp.StatusCode, fmt.Errorf("bulk decrypt: status %d", resp.StatusCode)
		}
		if err := json.NewDecoder(io.LimitReader(resp.Body, maxBulkResponse)).Decode(&out); err != nil {
			return resp.StatusCode, fmt.Errorf("bulk decrypt: invalid response: %w", err)
		}
		if len(out) != o.batch {
			return resp.StatusCode, fmt.Errorf("bulk decrypt: %d plaintexts for %d ciphertexts", len(out), o.batch)
		}
		return resp.StatusCode, nil
	}
	status, err := bulk(setupCtx, clients[0])
	switch {
	case err == nil:
		return func(ctx context.Context, w int) error {
			_, err := bulk(ctx, clients[w%len(clients)])
			return err
		}, fmt.Sprintf("HTTP bulk decrypt of %d%s", o.batch, label), nil
	case status == http.StatusNotFound:
		return func(ctx context.Context, w int) error {
			c := clients[w%len(clients)]
			for range o.batch {
				if _, err := c.Decrypt(ctx, o.name, ciphertext, nil); err != nil {
					return err
				}
			}
			return nil
		}, fmt.Sprintf("HTTP bulk decrypt of %d as single decrypts (no bulk API)%s", o.batch, label), nil
	default:
		return nil, "", err
	}
}

func kmipOp(ctx context.Context, o options) (func(context.Context, int) error, string, error) {
	if o.cert == "" || o.key == "" {
		return nil, "", errors.New("KMIP needs --cert and --key")
	}
	cert, err := tls.LoadX509KeyPair(o.cert, o.key)
	if err != nil {
		return nil, "", fmt.Errorf("failed to load client certificate: %w", err)
	}
	var caPEM []byte
	if o.ca != "" {
		if caPEM, err = os.ReadFile(o.ca); err != nil {
			return nil, "", fmt.Errorf("failed to read CA certificate: %w", err)
		}
	}
	// kmipclient completes the tls.Config it is given in place, so every
	// dial, possibly concurrent, gets a config of its own.
	dial := func(ctx context.Context) (*kmipclient.Client, error) {
		opts := []kmipclient.Option{kmipclient.WithClientCert(cert)}
		if caPEM != nil {
			opts = append(opts, kmipclient.WithRootCAPem(caPEM))
		}
		if o.insecure {
			opts = append(opts, kmipclient.WithTlsConfig(&tls.Config{MinVersion: tls.VersionTLS12, InsecureSkipVerify: true}))
		}
		return kmipclient.DialContext(ctx, o.kmipAddr, opts...)
	}
	setupCtx, cancelSetup := context.WithTimeout(ctx, setupTimeout)
	defer cancelSetup()
	setup, err := dial(setupCtx)
	if err != nil {
		return nil, "", fmt.Errorf("failed to connect: %w", err)
	}
	created, err := setup.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).ExecContext(setupCtx)
	if err != nil {
		setup.Close()
		return nil, "", fmt.Errorf("failed to create a key: %w", err)
	}
	uid := created.UniqueIdentifier
	setup.Close()

	var request func(context.Context, *kmipclient.Client) error
	switch o.op {
	case "", "get":
		request = func(ctx context.Context, c *kmipclient.Client) error {
			_, err := c.Get(uid).ExecContext(ctx)
			return err
		}
	case "create":
		request = func(ctx context.Context, c *kmipclient.Client) error {
			_, err := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).ExecContext(ctx)
			return err
		}
	default:
		return nil, "", fmt.Errorf("unknown KMIP operation '%s'", o.op)
	}
	label := "KMIP " + strings.ToLower(cmp.Or(o.op, "get"))
	if o.newConn {
		return func(ctx context.Context, _ int) error {
			c, err := dial(ctx)
			if err != nil {
				return err
			}
			defer c.Close()
			return request(ctx, c)
		}, label + " (new connection per request)", nil
	}
	// One connection per worker: a KMIP connection carries one request at
	// a time.
	pool := sync.Pool{}
	var mu sync.Mutex
	var conns []*kmipclient.Client
	go func() {
		<-ctx.Done()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	}()
	return func(ctx context.Context, _ int) error {
		c, _ := pool.Get().(*kmipclient.Client)
		if c == nil {
			var err error
			if c, err = dial(ctx); err != nil {
				return err
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
		err := request(ctx, c)
		pool.Put(c)
		return err
	}, label + " (one connection per client)", nil
}

type result struct {
	ok, failed int64
	firstErr   error
	elapsed    time.Duration
	latencies  []time.Duration
}

func load(ctx context.Context, o options, op func(context.Context, int) error) result {
	ctx, cancel := context.WithTimeout(ctx, o.duration)
	defer cancel()
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		r       result
		issued  atomic.Int64
		ok, bad atomic.Int64
		last    atomic.Int64 // when the last counted request finished
	)
	start := time.Now()
	for w := range o.concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var lat []time.Duration
			for ctx.Err() == nil && issued.Add(1) <= o.requests {
				t := time.Now()
				err := op(ctx, w)
				if ctx.Err() != nil {
					break // the run ended during this request: do not count it
				}
				if err != nil {
					bad.Add(1)
					mu.Lock()
					if r.firstErr == nil {
						r.firstErr = err
					}
					mu.Unlock()
					continue
				}
				ok.Add(1)
				now := time.Now()
				last.Store(int64(now.Sub(start)))
				lat = append(lat, now.Sub(t))
			}
			mu.Lock()
			r.latencies = append(r.latencies, lat...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	// Requests cut off by the end of the run are not counted, so neither
	// is the time spent waiting for them.
	r.elapsed = max(time.Duration(last.Load()), time.Millisecond)
	r.ok, r.failed = ok.Load(), bad.Load()
	slices.Sort(r.latencies)
	return r
}

func (r result) print(w io.Writer, label string) {
	pct := func(p float64) time.Duration {
		if len(r.latencies) == 0 {
			return 0
		}
		return r.latencies[min(len(r.latencies)-1, int(p*float64(len(r.latencies))))]
	}
	fmt.Fprintf(w, "%s: %d ok, %d failed in %s\n", label, r.ok, r.failed, r.elapsed.Round(time.Millisecond))
	fmt.Fprintf(w, "throughput: %.0f requests/s\n", float64(r.ok)/r.elapsed.Seconds())
	fmt.Fprintf(w, "latency: p50 %s  p90 %s  p99 %s  max %s\n", pct(0.50), pct(0.90), pct(0.99), pct(1))
	if r.firstErr != nil {
		fmt.Fprintf(w, "first error: %v\n", r.firstErr)
	}
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v, ok := os.LookupEnv(n); ok && v != "" {
			return v
		}
	}
	return ""
}
