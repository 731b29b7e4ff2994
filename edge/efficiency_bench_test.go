// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	rtmetrics "runtime/metrics"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/gcpace"
	"github.com/kesbridge/kes/keystore"
)

// The efficiency benchmarks compare the server's CPU per request with a
// bare net/http handler that does only the work no KES server can avoid:
// mutual TLS, the identity hash, one AEAD operation per key, JSON in and
// out. Each server runs in a child process (this test binary, started
// again) so that its CPU time is its own and not the load generator's;
// requests to the servers alternate, so that a busy machine slows them
// alike. The figure of merit is efficiency = bare CPU/op ÷ ours.
//
// The child protocol: the child prints its address on stdout, then
// answers each line on stdin: "cpu" with its user+system CPU time in
// nanoseconds, "gc" with the CPU time its garbage collector took in
// nanoseconds (runtime/metrics' estimate), "allocs" with the number of
// heap allocations it made, "rss" with its resident set in
// bytes, "profile <path>"
// (start a CPU profile) and "profile-stop" (stop it, and write the mutex
// and block profiles to <path>.mutex and <path>.block) with 0. It exits
// when stdin closes.

const benchChildEnv = "EDGE_BENCH_CHILD"

// TestBenchChild is the server side of the benchmarks; it does nothing
// unless started by one.
func TestBenchChild(t *testing.T) {
	mode := os.Getenv(benchChildEnv)
	if mode == "" {
		t.Skip("only run as a benchmark's server process")
	}
	if err := runBenchChild(mode); err != nil {
		fmt.Fprintln(os.Stderr, "bench child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

func runBenchChild(mode string) error {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	ctx := context.Background()
	var stop func()
	switch mode {
	case "bare":
		stop, err = serveBare(ln)
	case "ours":
		stop, err = serveOurs(ctx, ln)
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	defer stop()
	// EDGE_BENCH_PROFILE writes a CPU profile of the child, for finding
	// where the time goes.
	if path := os.Getenv("EDGE_BENCH_PROFILE"); path != "" {
		f, err := os.Create(path)
		if err != nil {
			return err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	// EDGE_BENCH_CONTENTION records mutex and block profiles, for
	// finding what concurrent requests wait for.
	if os.Getenv("EDGE_BENCH_CONTENTION") != "" {
		runtime.SetMutexProfileFraction(1)
		runtime.SetBlockProfileRate(1000) // one sample per µs blocked
	}
	fmt.Println(ln.Addr().String())
	in := bufio.NewScanner(os.Stdin)
	var phase string // the path of the phase profile being written
	for in.Scan() {
		cmd, arg, _ := strings.Cut(in.Text(), " ")
		switch cmd {
		case "profile":
			if err := startPhaseProfile(arg); err != nil {
				return err
			}
			phase = arg
			fmt.Println(0)
		case "profile-stop":
			if err := stopPhaseProfile(phase); err != nil {
				return err
			}
			fmt.Println(0)
		case "cpu":
			var ru syscall.Rusage
			syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
			fmt.Println(ru.Utime.Nano() + ru.Stime.Nano())
		case "gc":
			fmt.Println(gcCPU().Nanoseconds())
		case "allocs":
			fmt.Println(heapAllocs())
		case "rss":
			fmt.Println(residentBytes())
		case "memory":
			fmt.Println(memoryBreakdown())
		default:
			fmt.Println("?")
		}
	}
	return nil
}

// startPhaseProfile starts a CPU profile of one phase of a benchmark.
func startPhaseProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	return pprof.StartCPUProfile(f)
}

// stopPhaseProfile ends the CPU profile started for path and writes the
// mutex and block profiles beside it.
func stopPhaseProfile(path string) error {
	pprof.StopCPUProfile()
	for _, name := range []string{"mutex", "block"} {
		f, err := os.Create(path + "." + name)
		if err != nil {
			return err
		}
		err = pprof.Lookup(name).WriteTo(f, 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// gcCPU is the CPU time the garbage collector took so far, as the
// runtime estimates it.
func gcCPU() time.Duration {
	s := []rtmetrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindFloat64 {
		return 0
	}
	return time.Duration(s[0].Value.Float64() * float64(time.Second))
}

// heapAllocs is the number of heap objects allocated so far.
func heapAllocs() int64 {
	s := []rtmetrics.Sample{{Name: "/gc/heap/allocs:objects"}}
	rtmetrics.Read(s)
	if s[0].Value.Kind() != rtmetrics.KindUint64 {
		return 0
	}
	return int64(s[0].Value.Uint64())
}

// memoryBreakdown names where the process's memory is: the live heap
// after the last collection, the heap's pages in use and retained, the
// goroutine stacks and the runtime's other memory, and the locked
// (mlock) memory, in MB, on one line.
func memoryBreakdown() string {
	s := []rtmetrics.Sample{
		{Name: "/gc/heap/live:bytes"},
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
		{Name: "/memory/classes/heap/free:bytes"},
		{Name: "/memory/classes/heap/stacks:bytes"},
		{Name: "/memory/classes/other:bytes"},
		{Name: "/memory/classes/metadata/other:bytes"},
		{Name: "/gc/gogc:percent"},
	}
	rtmetrics.Read(s)
	mb := func(i int) float64 { return float64(s[i].Value.Uint64()) / (1 << 20) }
	locked := int64(-1)
	if b, err := os.ReadFile("/proc/self/status"); err == nil {
		for line := range strings.Lines(string(b)) {
			if v, ok := strings.CutPrefix(line, "VmLck:"); ok {
				locked, _ = strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			}
		}
	}
	return fmt.Sprintf("live=%.1f objects=%.1f unused=%.1f free-retained=%.1f stacks=%.1f other=%.1f metadata=%.1f locked=%.1f gogc=%d",
		mb(0), mb(1), mb(2), mb(3), mb(4), mb(5), mb(6), float64(locked)/1024, s[7].Value.Uint64())
}

// residentBytes is VmRSS of this process, or -1 where /proc has none.
func residentBytes() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return -1
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return -1
}

// serveOurs runs the real server on the config in EDGE_BENCH_CONFIG, with
// its audit log in EDGE_BENCH_AUDIT (if set).
func serveOurs(ctx context.Context, ln net.Listener) (func(), error) {
	cfg, err := ReadConfig(os.Getenv("EDGE_BENCH_CONFIG"))
	if err != nil {
		return nil, err
	}
	opts := ServerOptions{}
	if os.Getenv("EDGE_BENCH_MEMSTORE") != "" {
		store := keystore.NewMem()
		opts.OpenStore = func(context.Context, *Config, *slog.Logger) (keystore.Store, error) { return store, nil }
	}
	if path := os.Getenv("EDGE_BENCH_AUDIT"); path != "" {
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
		if err != nil {
			return nil, err
		}
		opts.Stdout = f
	}
	srv, err := NewServer(ctx, cfg, opts)
	if err != nil {
		return nil, err
	}
	if cfg.MLock || cfg.MLockAll {
		if err := lockMemory(cfg.MLock, cfg.MLockAll); err != nil {
			return nil, err
		}
	}
	if n, _ := strconv.Atoi(os.Getenv("EDGE_BENCH_KEYS")); n > 0 {
		if err := warmKeys(ctx, srv, n); err != nil {
			return nil, err
		}
	}
	// EDGE_BENCH_GCPACE paces the collector as the kes binary does
	// (edge.Run).
	stopPace := func() {}
	if os.Getenv("EDGE_BENCH_GCPACE") != "" {
		var pace context.Context
		pace, stopPace = context.WithCancel(ctx)
		go gcpace.Run(pace)
	}
	go srv.Serve(ln)
	return func() { stopPace(); srv.Shutdown(context.Background()) }, nil
}

// warmKeys creates n keys ("k-0" … ) and loads each into the cache.
func warmKeys(ctx context.Context, srv *Server, n int) error {
	ks := srv.Keys()
	admin := string(srv.Config().Admin)
	for i := range n {
		name := "k-" + strconv.Itoa(i)
		if err := ks.Create(ctx, name, admin); err != nil {
			return err
		}
		p, _, err := ks.Generate(ctx, name, nil)
		if err != nil {
			return err
		}
		clear(p)
	}
	// The garbage of making the keys is collected now, so that the
	// benchmark's first phase does not pay for it.
	runtime.GC()
	return nil
}

// serveBare is the floor: the cert and key in EDGE_BENCH_CERT and
// EDGE_BENCH_KEY, the identity EDGE_BENCH_ADMIN allowed, everyone else
// refused, one key in locked memory.
func serveBare(ln net.Listener) (func(), error) {
	cert, err := tls.LoadX509KeyPair(os.Getenv("EDGE_BENCH_CERT"), os.Getenv("EDGE_BENCH_KEY"))
	if err != nil {
		return nil, err
	}
	admin := identity.Identity(os.Getenv("EDGE_BENCH_ADMIN"))
	key, err := crypto.GenerateSecretKey(crypto.AES256, nil)
	if err != nil {
		return nil, err
	}
	type sealed struct {
		Ciphertext []byte `json:"ciphertext"`
		Context    []byte `json:"context"`
	}
	type plain struct {
		Plaintext []byte `json:"plaintext"`
	}
	reply := func(w http.ResponseWriter, v any) {
		b, _ := json.Marshal(v)
		w.Header().Set("Content-Type", "application/json")
		w.Write(b)
	}
	mux := http.NewServeMux()
	auth := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if id, err := identity.FromConnectionState(r.TLS); err != nil || id != admin {
				http.Error(w, "forbidden", http.StatusForbidden)
				return
			}
			r.Body = http.MaxBytesReader(w, r.Body, mb)
			h(w, r)
		}
	}
	mux.HandleFunc("/v1/key/generate/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Context []byte `json:"context"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil && err != io.EOF {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		dek := make([]byte, crypto.KeySize)
		rand.Read(dek)
		ct, err := key.Encrypt(dek, req.Context)
		if err != nil {
			http.Error(w, "internal", http.StatusInternalServerError)
			return
		}
		reply(w, struct {
			Plaintext  []byte `json:"plaintext"`
			Ciphertext []byte `json:"ciphertext"`
		}{dek, ct})
		clear(dek)
	}))
	mux.HandleFunc("/v1/key/decrypt/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		var req sealed
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		p, err := key.Decrypt(req.Ciphertext, req.Context)
		if err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		reply(w, plain{p})
		clear(p)
	}))
	mux.HandleFunc("/v1/key/bulk/decrypt/{name}", auth(func(w http.ResponseWriter, r *http.Request) {
		var req []sealed
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		resp := make([]plain, 0, len(req))
		for _, s := range req {
			p, err := key.Decrypt(s.Ciphertext, s.Context)
			if err != nil {
				http.Error(w, "bad request", http.StatusBadRequest)
				return
			}
			resp = append(resp, plain{p})
		}
		reply(w, resp)
		for _, p := range resp {
			clear(p.Plaintext)
		}
	}))
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	conf := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"},
		ClientAuth:   tls.RequireAnyClientCert,
		Certificates: []tls.Certificate{cert},
	}
	go srv.Serve(tls.NewListener(ln, conf))
	return func() { srv.Close() }, nil
}

// benchChild is a server process of a benchmark.
type benchChild struct {
	cmd  *exec.Cmd
	in   io.WriteCloser
	out  *bufio.Scanner
	addr string
}

func startBenchChild(b *testing.B, mode string, env ...string) *benchChild {
	b.Helper()
	exe, err := os.Executable()
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run=^TestBenchChild$", "-test.timeout=0")
	cmd.Env = append(os.Environ(), append([]string{benchChildEnv + "=" + mode}, env...)...)
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	c := &benchChild{cmd: cmd, in: in, out: bufio.NewScanner(out)}
	b.Cleanup(func() {
		in.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	// Creating 100,000 keys takes a while on a busy machine.
	addr := make(chan string, 1)
	go func() {
		if c.out.Scan() {
			addr <- c.out.Text()
		}
		close(addr)
	}()
	select {
	case a, ok := <-addr:
		if !ok {
			b.Fatalf("%s server did not start", mode)
		}
		c.addr = a
	case <-time.After(10 * time.Minute):
		b.Fatalf("%s server did not start in time", mode)
	}
	return c
}

func (c *benchChild) ask(b *testing.B, q string) int64 {
	b.Helper()
	n, err := strconv.ParseInt(c.askLine(b, q), 10, 64)
	if err != nil {
		b.Fatal(err)
	}
	return n
}

// askLine sends q to the server process and returns its answer.
func (c *benchChild) askLine(b *testing.B, q string) string {
	b.Helper()
	fmt.Fprintln(c.in, q)
	if !c.out.Scan() {
		b.Fatalf("server process: no answer to %q", q)
	}
	return c.out.Text()
}

func (c *benchChild) cpu(b *testing.B) time.Duration { return time.Duration(c.ask(b, "cpu")) }

// benchClients are conns HTTP/2 clients, each with a connection of its
// own, presenting cert.
func benchClients(b *testing.B, p *pki, cert *tls.Certificate, conns int) []*http.Client {
	var cs []*http.Client
	for range conns {
		tr := &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: p.roots, Certificates: []tls.Certificate{*cert}, MinVersion: tls.VersionTLS12},
			ForceAttemptHTTP2: true,
		}
		b.Cleanup(tr.CloseIdleConnections)
		cs = append(cs, &http.Client{Transport: tr})
	}
	return cs
}

// benchRequest is one request of a benchmark, made for a given server.
type benchRequest func(c *http.Client, base string) error

func putJSON(path string, body []byte) benchRequest {
	return func(c *http.Client, base string) error {
		resp, err := c.Post(base+path, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("%s: status %d", path, resp.StatusCode)
		}
		return nil
	}
}

// httpBenchSetup is the PKI, admin and config file shared by the child
// servers of a benchmark.
type httpBenchSetup struct {
	p         *pki
	adminCert *tls.Certificate
	env       []string // for "ours" children
	bareEnv   []string
}

func newHTTPBenchSetup(b *testing.B, extra string) *httpBenchSetup {
	p := newPKI(b)
	admin := newAPIKey(b)
	cfgFile := filepath.Join(b.TempDir(), "config.yaml")
	if err := os.WriteFile(cfgFile, []byte(baseConfig(p, identityOf(admin), identityOf(newAPIKey(b)), extra)), 0o600); err != nil {
		b.Fatal(err)
	}
	return &httpBenchSetup{
		p:         p,
		adminCert: apiCert(b, admin),
		env:       []string{"EDGE_BENCH_CONFIG=" + cfgFile},
		bareEnv:   []string{"EDGE_BENCH_CERT=" + p.certFile, "EDGE_BENCH_KEY=" + p.keyFile, "EDGE_BENCH_ADMIN=" + identityOf(admin)},
	}
}

// prepare returns the request of op for the server at base, for the key
// "bench": a ciphertext is only valid on the server that made it.
func prepare(b *testing.B, c *http.Client, base, op string) benchRequest {
	b.Helper()
	genBody := []byte(`{"context":"` + base64.StdEncoding.EncodeToString([]byte("ctx")) + `"}`)
	if op == "generate" {
		return putJSON("/v1/key/generate/bench", genBody)
	}
	resp, err := c.Post(base+"/v1/key/generate/bench", "application/json", bytes.NewReader(genBody))
	if err != nil {
		b.Fatal(err)
	}
	var dek struct{ Ciphertext []byte }
	err = json.NewDecoder(resp.Body).Decode(&dek)
	resp.Body.Close()
	if err != nil {
		b.Fatal(err)
	}
	one := map[string][]byte{"ciphertext": dek.Ciphertext, "context": []byte("ctx")}
	if op == "decrypt" {
		body, _ := json.Marshal(one)
		return putJSON("/v1/key/decrypt/bench", body)
	}
	many := make([]map[string][]byte, bulkSize)
	for i := range many {
		many[i] = one
	}
	body, _ := json.Marshal(many)
	return putJSON("/v1/key/bulk/decrypt/bench", body)
}

// bulkSize is how many ciphertexts one bulk decrypt benchmark request
// carries.
const bulkSize = 10

// BenchmarkHTTPEfficiency runs generate, decrypt and bulk decrypt with 64
// concurrent requests over 4 HTTP/2 connections per server against three
// servers in turn: the bare handler, this server with audit off, and
// this server with audit to a file. It reports the server CPU per
// request of each, efficiency = bare ÷ ours, and audit = ours with
// audit ÷ ours without (1.10 means audit costs 10 % more CPU).
func BenchmarkHTTPEfficiency(b *testing.B) {
	s := newHTTPBenchSetup(b, "log:\n  audit: off\n")
	auditFile := filepath.Join(b.TempDir(), "audit.log")
	auditCfg := filepath.Join(b.TempDir(), "audit.yaml")
	cfg, err := os.ReadFile(strings.TrimPrefix(s.env[0], "EDGE_BENCH_CONFIG="))
	if err != nil {
		b.Fatal(err)
	}
	cfg = bytes.Replace(cfg, []byte("audit: off"), []byte("audit: on"), 1)
	cfg = bytes.Replace(cfg, []byte(filepath.Join(s.p.dir, "keys")), []byte(filepath.Join(s.p.dir, "audit-keys")), 1)
	if err := os.WriteFile(auditCfg, cfg, 0o600); err != nil {
		b.Fatal(err)
	}

	bare := startBenchChild(b, "bare", append(s.bareEnv, "EDGE_BENCH_PROFILE="+os.Getenv("EDGE_BENCH_PROFILE_BARE"))...)
	ours := startBenchChild(b, "ours", append(s.env, "EDGE_BENCH_PROFILE="+os.Getenv("EDGE_BENCH_PROFILE_OURS"))...)
	audit := startBenchChild(b, "ours", "EDGE_BENCH_CONFIG="+auditCfg, "EDGE_BENCH_AUDIT="+auditFile)
	servers := []*benchChild{bare, ours, audit}
	clients := make([][]*http.Client, len(servers))
	for i := range servers {
		clients[i] = benchClients(b, s.p, s.adminCert, 4)
	}
	for i, srv := range servers[1:] {
		if err := putJSON("/v1/key/create/bench", nil)(clients[i+1][0], "https://"+srv.addr); err != nil {
			b.Fatal(err)
		}
	}
	for _, op := range []string{"generate", "decrypt", "bulk-decrypt"} {
		b.Run(op, func(b *testing.B) {
			reqs := make([]benchRequest, len(servers))
			for i, srv := range servers {
				reqs[i] = prepare(b, clients[i][0], "https://"+srv.addr, op)
			}
			runEfficiency(b, servers, clients, reqs)
		})
	}
}

// runEfficiency sends b.N requests to each server, each of the 64
// workers to the servers in turn, and reports the CPU per request.
func runEfficiency(b *testing.B, servers []*benchChild, clients [][]*http.Client, reqs []benchRequest) {
	before := make([]time.Duration, len(servers))
	allocs := make([]int64, len(servers))
	for i, s := range servers {
		before[i] = s.cpu(b)
		allocs[i] = s.ask(b, "allocs")
	}
	var worker atomic.Int64
	b.SetParallelism(32) // 64 workers on 2 cores
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		w := int(worker.Add(1))
		for pb.Next() {
			for i, s := range servers {
				if err := reqs[i](clients[i][w%len(clients[i])], "https://"+s.addr); err != nil {
					b.Error(err)
					return
				}
			}
		}
	})
	b.StopTimer()
	per := make([]float64, len(servers))
	for i, s := range servers {
		per[i] = float64(s.cpu(b)-before[i]) / float64(b.N)
		allocs[i] = s.ask(b, "allocs") - allocs[i]
	}
	// The servers' own allocations per request (the ones the
	// benchmark's -benchmem reports are the clients').
	b.ReportMetric(float64(allocs[0])/float64(b.N), "bare-allocs/op")
	b.ReportMetric(float64(allocs[1])/float64(b.N), "ours-allocs/op")
	b.ReportMetric(per[0]/1e3, "bare-µs/op")
	b.ReportMetric(per[1]/1e3, "ours-µs/op")
	b.ReportMetric(per[0]/per[1], "efficiency")
	if len(per) > 2 {
		b.ReportMetric(per[2]/1e3, "audit-µs/op")
		b.ReportMetric(per[2]/per[1], "audit/off")
	}
}

// BenchmarkManyKeys runs generate over 100,000 cached keys against the
// same over one key, on one server with mlock: true, in alternating
// phases, and reports the throughput, server CPU and collector CPU of
// each, their ratio, and the server's resident memory with all keys
// cached.
func BenchmarkManyKeys(b *testing.B) {
	const keys = 100_000
	s := newHTTPBenchSetup(b, "mlock: true\nlog:\n  audit: off\n")
	// The collector is paced as in the kes binary: the resident memory
	// is the binary's.
	srv := startBenchChild(b, "ours", append(s.env, "EDGE_BENCH_KEYS="+strconv.Itoa(keys), "EDGE_BENCH_MEMSTORE=1", "EDGE_BENCH_GCPACE=1")...)
	clients := benchClients(b, s.p, s.adminCert, 4)
	base := "https://" + srv.addr
	body := []byte(`{"context":"Y3R4"}`)
	reqs := make([]benchRequest, keys)
	for i := range reqs {
		reqs[i] = putJSON("/v1/key/generate/k-"+strconv.Itoa(i), body)
	}
	// offset carries the spread phases on where the last one stopped,
	// so that together they go through every key.
	var offset int64
	phase := func(n int, spread bool) (wall, cpu, gc time.Duration) {
		before, gcBefore := srv.cpu(b), time.Duration(srv.ask(b, "gc"))
		start := time.Now()
		var next atomic.Int64
		from := offset
		if spread {
			offset += int64(n)
		}
		var wg sync.WaitGroup
		for w := range 64 {
			wg.Go(func() {
				for {
					i := next.Add(1)
					if i > int64(n) {
						return
					}
					k := 0
					if spread {
						k = int(((from + i) * 7919) % keys) // every key, in a scattered order
					}
					if err := reqs[k](clients[w%len(clients)], base); err != nil {
						b.Error(err)
						return
					}
				}
			})
		}
		wg.Wait()
		wall = time.Since(start)
		return wall, srv.cpu(b) - before, time.Duration(srv.ask(b, "gc")) - gcBefore
	}
	// EDGE_BENCH_PHASE_PROFILES names a directory for a CPU, mutex and
	// block profile of each phase (single-1.prof, spread-1.prof, …; the
	// mutex and block profiles count from the start of the server, and
	// record only with EDGE_BENCH_CONTENTION set). A process has one CPU
	// profile at a time: not together with EDGE_BENCH_PROFILE.
	profiles := os.Getenv("EDGE_BENCH_PHASE_PROFILES")
	// Many short phases rather than two long ones: at 100,000 keys one
	// garbage collection costs a large share of a phase, and with few
	// phases the one it falls into looks slower.
	const rounds = 8
	per := max(b.N/(2*rounds), 1)
	b.ResetTimer()
	var wall, cpu, gc [2]time.Duration
	for round := range rounds {
		for i, spread := range []bool{false, true} {
			if profiles != "" {
				name := fmt.Sprintf("%s-%d.prof", map[bool]string{false: "single", true: "spread"}[spread], round+1)
				srv.ask(b, "profile "+filepath.Join(profiles, name))
			}
			w, c, g := phase(per, spread)
			if profiles != "" {
				srv.ask(b, "profile-stop")
			}
			wall[i] += w
			cpu[i] += c
			gc[i] += g
		}
	}
	b.StopTimer()
	n := float64(rounds * per)
	b.ReportMetric(n/wall[0].Seconds(), "single-ops/s")
	b.ReportMetric(n/wall[1].Seconds(), "spread-ops/s")
	b.ReportMetric(wall[0].Seconds()/wall[1].Seconds(), "spread/single")
	b.ReportMetric(float64(cpu[0])/n/1e3, "single-µs/op")
	b.ReportMetric(float64(cpu[1])/n/1e3, "spread-µs/op")
	b.ReportMetric(float64(gc[0])/n/1e3, "single-gc-µs/op")
	b.ReportMetric(float64(gc[1])/n/1e3, "spread-gc-µs/op")
	b.ReportMetric(float64(srv.ask(b, "rss"))/(1<<20), "rss-MB")
	b.Logf("server memory (MB): %s", srv.askLine(b, "memory"))
}
