// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge_test

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/kesbridge/kes/policy"
)

// pykmipPython is the interpreter with Debian's python3-pykmip. Other
// pythons on the PATH (pyenv) do not have the module.
const pykmipPython = "/usr/bin/python3"

// requirePyKMIP skips the test when PyKMIP is not installed, except in CI,
// where a missing PyKMIP is a broken setup and must fail.
func requirePyKMIP(t *testing.T) {
	t.Helper()
	err := exec.Command(pykmipPython, "-c", "import kmip.pie.client").Run()
	if err == nil {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("PyKMIP is required in CI (apt-get install python3-pykmip): %s -c 'import kmip': %v", pykmipPython, err)
	}
	t.Skipf("PyKMIP not available (%s with python3-pykmip): %v", pykmipPython, err)
}

// pykmipEnv is a running bridge with mutual TLS and the files a PyKMIP
// client needs to reach it.
type pykmipEnv struct {
	dir    string
	addr   *net.TCPAddr
	caFile string
	keys   *keys.Service
	// client certificates by name, as (certFile, keyFile)
	clients map[string][2]string
}

type testCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
}

func newTestCA(t *testing.T) *testCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pykmip interop CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return &testCA{cert: cert, key: key}
}

// issue writes a certificate and key signed by ca to dir/name.{crt,key}
// and returns the paths and the certificate's identity.
func (ca *testCA) issue(t *testing.T, dir, name string, tmpl *x509.Certificate) (certFile, keyFile string, id identity.Identity) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	serial, err := rand.Int(rand.Reader, big.NewInt(1<<62))
	if err != nil {
		t.Fatal(err)
	}
	tmpl.SerialNumber = serial
	tmpl.Subject = pkix.Name{CommonName: name}
	tmpl.NotBefore = time.Now().Add(-time.Hour)
	tmpl.NotAfter = time.Now().Add(24 * time.Hour)
	tmpl.KeyUsage = x509.KeyUsageDigitalSignature
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, name+".crt"), filepath.Join(dir, name+".key")
	writeFile(t, certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600)
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, identity.FromCertificate(cert)
}

func writeFile(t *testing.T, path string, data []byte, perm os.FileMode) {
	t.Helper()
	if err := os.WriteFile(path, data, perm); err != nil {
		t.Fatal(err)
	}
}

// startPyKMIPBridge starts the bridge on 127.0.0.1 with the TLS config
// the server builds from its config file, and three clients: "pykmip"
// (allowed /kmip/*, certificate with the clientAuth EKU), "vcenter"
// (allowed /kmip/*, no EKU at all, as vCenter-generated certificates) and
// "stranger" (valid certificate, no policy). One user "zstack" may log in
// with a password and gets the "hypervisor" policy.
func startPyKMIPBridge(t *testing.T) *pykmipEnv {
	t.Helper()
	return startPyKMIPBridgeWith(t, map[string]kmipbridge.User{"zstack": {Password: keystore.NewSecret("zstack-test-password"), Policy: "hypervisor"}})
}

// startPyKMIPBridgeWith is startPyKMIPBridge with the given users.
func startPyKMIPBridgeWith(t *testing.T, users map[string]kmipbridge.User) *pykmipEnv {
	t.Helper()
	dir := t.TempDir()
	ca := newTestCA(t)
	env := &pykmipEnv{dir: dir, caFile: filepath.Join(dir, "ca.crt"), clients: map[string][2]string{}}
	writeFile(t, env.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ca.cert.Raw}), 0o644)

	serverCert, serverKey, _ := ca.issue(t, dir, "server", &x509.Certificate{
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
	})
	ids := map[string]identity.Identity{}
	for name, eku := range map[string][]x509.ExtKeyUsage{
		"pykmip":   {x509.ExtKeyUsageClientAuth},
		"vcenter":  nil,
		"stranger": {x509.ExtKeyUsageClientAuth},
	} {
		c, k, id := ca.issue(t, dir, name, &x509.Certificate{ExtKeyUsage: eku})
		env.clients[name] = [2]string{c, k}
		ids[name] = id
	}

	tlsConf, err := kmipbridge.LoadTLSConfig(serverCert, serverKey, env.caFile)
	if err != nil {
		t.Fatal(err)
	}
	env.keys = keys.New(keys.Config{Store: keystore.NewMem()})
	t.Cleanup(func() { env.keys.Close() })

	set := &policy.Set{
		Policies: map[string]*policy.Policy{
			"all":        {Allow: []string{"/kmip/*"}},
			"hypervisor": {Allow: []string{"/kmip/*"}, Deny: []string{"/kmip/destroy/*"}},
		},
		Identities: map[string]string{
			ids["pykmip"].String():  "all",
			ids["vcenter"].String(): "all",
		},
	}
	srv, err := kmipbridge.New(kmipbridge.Config{
		Keys:        env.keys,
		Policies:    func() *policy.Set { return set },
		TLSConfig:   tlsConf,
		Users:       users,
		ReadTimeout: 20 * time.Second,
		IdleTimeout: 20 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	env.addr = ln.Addr().(*net.TCPAddr)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil && !errors.Is(err, kmipbridge.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return env
}

// pykmipResult is what testdata/pykmip/lifecycle.py prints.
type pykmipResult struct {
	Version string            `json:"version"`
	UIDs    map[string]string `json:"uids"`
	Steps   map[string]struct {
		OK         bool              `json:"ok"`
		Status     string            `json:"status"`
		Reason     string            `json:"reason"`
		Message    string            `json:"message"`
		Error      string            `json:"error"`
		UID        string            `json:"uid"`
		UIDs       []string          `json:"uids"`
		State      string            `json:"state"`
		ObjectType string            `json:"object_type"`
		Algorithm  string            `json:"algorithm"`
		Length     int               `json:"length"`
		Material   string            `json:"material_sha256"`
		Attributes map[string]string `json:"attributes"`
		Versions   []string          `json:"versions"`
		Operations []string          `json:"operations"`
		Objects    []string          `json:"object_types"`
		Vendor     string            `json:"vendor"`
		Ciphertext string            `json:"ciphertext"`
		IV         string            `json:"iv"`
		Match      bool              `json:"match"`
		MAC        string            `json:"mac"`
	} `json:"steps"`
}

// runLifecycle runs lifecycle.py as client with the given KMIP version.
// user, if not empty, is sent as a Username/Password credential.
func (env *pykmipEnv) runLifecycle(t *testing.T, client, version, prefix, kesKey, user, password string, registerKey []byte) *pykmipResult {
	t.Helper()
	extra := ""
	if user != "" {
		extra = fmt.Sprintf("username=%s\npassword=%s\n", user, password)
	}
	var res pykmipResult
	env.runScript(t, client, extra, "lifecycle.py", hex.EncodeToString(registerKey), &res, version, prefix, kesKey)
	return &res
}

// runScript runs testdata/pykmip/<script> as client (its certificate
// and key) with a client configuration naming the bridge, the
// configuration file and args as arguments and stdin as its input, and
// decodes the JSON it prints into out. extra lines are added to the
// configuration's [client] section. The first argument after the
// configuration is the KMIP version in every script.
func (env *pykmipEnv) runScript(t *testing.T, client, extra, script, stdin string, out any, args ...string) {
	t.Helper()
	files := env.clients[client]
	// PyKMIP's client verifies the server against ca_certs but checks no
	// host name; PROTOCOL_SSLv23 lets it negotiate TLS 1.3 with Go.
	conf := fmt.Sprintf(`[client]
host=127.0.0.1
port=%d
certfile=%s
keyfile=%s
ca_certs=%s
cert_reqs=CERT_REQUIRED
ssl_version=PROTOCOL_SSLv23
do_handshake_on_connect=True
suppress_ragged_eofs=True
timeout=20
`, env.addr.Port, files[0], files[1], env.caFile) + extra
	confFile := filepath.Join(t.TempDir(), "pykmip.conf")
	writeFile(t, confFile, []byte(conf), 0o600)

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pykmipPython, append([]string{filepath.Join("testdata", "pykmip", script), confFile}, args...)...)
	cmd.Stdin = strings.NewReader(stdin)
	// An empty HOME keeps ~/.pykmip/pykmip.conf of the machine out of it.
	cmd.Env = append(os.Environ(), "HOME="+t.TempDir(), "PYTHONDONTWRITEBYTECODE=1")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", script, args[0], err, stderr.String())
	}
	if err := json.Unmarshal(stdout.Bytes(), out); err != nil {
		t.Fatalf("%s %s: invalid output: %v", script, args[0], err)
	}
}

// materialDigest returns the SHA-256 of the key material the key service
// holds for name, as hex, so that tests compare digests and never print
// key material.
func materialDigest(t *testing.T, svc *keys.Service, name string) (string, keys.State) {
	t.Helper()
	var (
		sum   string
		state keys.State
	)
	err := svc.With(context.Background(), name, func(o *keys.Object) error {
		state = o.Meta.State
		use := func(b []byte) error {
			d := sha256.Sum256(b)
			sum = hex.EncodeToString(d[:])
			return nil
		}
		switch {
		case o.Version.Key != nil:
			return o.Version.Key.Use(use)
		case o.Version.Material != nil:
			return o.Version.Material.Use(use)
		}
		return errors.New("object has no key material")
	})
	if err != nil {
		t.Fatalf("key service: %s: %v", name, err)
	}
	return sum, state
}

func TestPyKMIPLifecycle(t *testing.T) {
	requirePyKMIP(t)
	env := startPyKMIPBridge(t)
	ctx := context.Background()

	for _, version := range []string{"1.0", "1.1", "1.2", "1.4", "2.0"} {
		t.Run("KMIP "+version, func(t *testing.T) {
			prefix := "pykmip-" + strings.ReplaceAll(version, ".", "")
			kesKey := prefix + "-kes"
			if err := env.keys.Create(ctx, kesKey, "test"); err != nil {
				t.Fatal(err)
			}
			registerKey := make([]byte, 32)
			if _, err := rand.Read(registerKey); err != nil {
				t.Fatal(err)
			}
			res := env.runLifecycle(t, "pykmip", version, prefix, kesKey, "", "", registerKey)
			if res.Version != version {
				t.Fatalf("script ran version %q", res.Version)
			}
			step := func(name string) (ok bool) {
				t.Helper()
				s, found := res.Steps[name]
				switch {
				case !found:
					t.Errorf("%s: did not run", name)
				case !s.OK:
					t.Errorf("%s: failed: %s %s %s %s", name, s.Status, s.Reason, s.Message, s.Error)
				}
				return found && s.OK
			}
			if !step("open") || !step("create") || !step("register") {
				t.FailNow()
			}

			// Every version the bridge speaks, newest first. A 1.0
			// message gets the answer too: Discover Versions is a 1.1
			// operation, but answering it costs nothing and helps clients
			// that probe with their lowest version.
			if step("discover_versions") {
				if got := res.Steps["discover_versions"].Versions; !slices.Equal(got, []string{"2.1", "2.0", "1.4", "1.3", "1.2", "1.1", "1.0"}) {
					t.Errorf("discover_versions: %q", got)
				}
			}
			if step("query") {
				q := res.Steps["query"]
				if q.Vendor != kmipbridge.VendorIdentification {
					t.Errorf("query: vendor %q", q.Vendor)
				}
				for _, op := range []string{"CREATE", "REGISTER", "GET", "GET_ATTRIBUTES", "LOCATE", "ACTIVATE", "REVOKE", "DESTROY", "QUERY"} {
					if !slices.Contains(q.Operations, op) {
						t.Errorf("query: operation %s missing from %q", op, q.Operations)
					}
				}
				if !slices.Contains(q.Objects, "SYMMETRIC_KEY") {
					t.Errorf("query: object types %q lack SYMMETRIC_KEY", q.Objects)
				}
			}
			created, registered := res.UIDs["created"], res.UIDs["registered"]

			// Get returns the key service's material: for a key made over
			// the KES API, for one created over KMIP without a name (as
			// vCenter does), and for a registered one.
			regSum := sha256.Sum256(registerKey)
			// A key made over the KES API is not extractable, but
			// usable: Encrypt (Encrypt, Decrypt, MAC are KMIP 1.2
			// operations) works with its raw AES-256 key, MAC with its
			// HMAC key, and no KMIP client may revoke or destroy it.
			if s := res.Steps["get_kes"]; s.OK || s.Reason != "PERMISSION_DENIED" || !strings.HasPrefix(s.Message, "key is not extractable") {
				t.Errorf("get of a KES key: ok=%v reason=%q message=%q, want PERMISSION_DENIED", s.OK, s.Reason, s.Message)
			}
			if version >= "1.2" {
				checkPyKMIPCrypto(t, env.keys, kesKey, res)
			}
			for _, s := range []string{"revoke_kes", "destroy_kes"} {
				if got := res.Steps[s]; got.OK || got.Reason != "PERMISSION_DENIED" {
					t.Errorf("%s: ok=%v reason=%q, want PERMISSION_DENIED", s, got.OK, got.Reason)
				}
			}
			if info, err := env.keys.Describe(ctx, kesKey); err != nil || !info.State.Active() {
				t.Errorf("KES key after KMIP revoke/destroy: %+v, %v", info, err)
			}
			if step("create_kept") && step("get_kept") {
				want, state := materialDigest(t, env.keys, res.UIDs["kept"])
				if res.Steps["get_kept"].Material != want {
					t.Error("get_kept: material differs from the key service's")
				}
				if state != keys.StatePreActive {
					t.Errorf("key created over KMIP is %s in the key service, want PreActive", state)
				}
			}
			if step("get_created") {
				g := res.Steps["get_created"]
				if g.ObjectType != "SYMMETRIC_KEY" || g.Algorithm != "AES" || g.Length != 256 {
					t.Errorf("get_created: %s %s %d", g.ObjectType, g.Algorithm, g.Length)
				}
			}
			if step("get_registered") && res.Steps["get_registered"].Material != hex.EncodeToString(regSum[:]) {
				t.Error("get_registered: material differs from the registered key")
			}

			if step("get_attributes") {
				want := map[string]string{
					"Object Type":              "SYMMETRIC_KEY",
					"Cryptographic Algorithm":  "AES",
					"Cryptographic Length":     "256",
					"Cryptographic Usage Mask": "12",
					"State":                    "PRE_ACTIVE",
					"Name":                     prefix + "-created",
				}
				got := res.Steps["get_attributes"].Attributes
				for k, v := range want {
					if got[k] != v {
						t.Errorf("get_attributes: %s = %q, want %q", k, got[k], v)
					}
				}
				if uid := res.Steps["get_attributes"].UID; uid != created {
					t.Errorf("get_attributes: uid %q, want %q", uid, created)
				}
			}

			for name, want := range map[string][]string{
				"locate_created":    {created},
				"locate_registered": {registered},
				"locate_missing":    {},
			} {
				if step(name) {
					if got := res.Steps[name].UIDs; !slices.Equal(got, want) {
						t.Errorf("%s: found %q, want %q", name, got, want)
					}
				}
			}
			if step("locate_type") {
				got := res.Steps["locate_type"].UIDs
				for _, uid := range []string{created, registered, kesKey} {
					if !slices.Contains(got, uid) {
						t.Errorf("locate_type: %q not among %q", uid, got)
					}
				}
			}

			if step("activate") && res.Steps["activate"].State != "ACTIVE" {
				t.Errorf("state after activate: %s", res.Steps["activate"].State)
			}
			// KMIP 1.x: an Active key cannot be destroyed (SKLC-M-2).
			if s := res.Steps["destroy_active"]; s.OK || s.Reason != "PERMISSION_DENIED" {
				t.Errorf("destroy of an active key: ok=%v reason=%q, want PERMISSION_DENIED", s.OK, s.Reason)
			}
			if step("revoke") && res.Steps["revoke"].State != "DEACTIVATED" {
				t.Errorf("state after revoke (cessation of operation): %s", res.Steps["revoke"].State)
			}
			step("destroy_created")
			step("destroy_registered")
			// KMIP 2.0 added Object Not Found for an identifier that
			// names no object.
			notFound := "ITEM_NOT_FOUND"
			if version == "2.0" {
				notFound = "OBJECT_NOT_FOUND"
			}
			if s := res.Steps["get_destroyed"]; s.OK || s.Reason != notFound {
				t.Errorf("get of a destroyed key: ok=%v reason=%q, want %s", s.OK, s.Reason, notFound)
			}
			for _, uid := range []string{created, registered} {
				if _, err := env.keys.Store().Get(ctx, uid); !errors.Is(err, keystore.ErrKeyNotFound) {
					t.Errorf("key %q destroyed over KMIP is still in the keystore: %v", uid, err)
				}
			}
			if _, err := env.keys.Store().Get(ctx, kesKey); err != nil {
				t.Errorf("key %q created over the KES API: %v", kesKey, err)
			}
		})
	}
}

// checkPyKMIPCrypto checks lifecycle.py's Encrypt, Decrypt and MAC with
// the KES key against the standard library with the key service's
// material.
func checkPyKMIPCrypto(t *testing.T, svc *keys.Service, name string, res *pykmipResult) {
	t.Helper()
	var raw []byte
	err := svc.With(context.Background(), name, func(o *keys.Object) error {
		return o.Version.Key.Use(func(b []byte) error { raw = bytes.Clone(b); return nil })
	})
	if err != nil {
		t.Fatal(err)
	}
	defer clear(raw)
	msg := []byte("pykmip interop message")
	enc := res.Steps["encrypt_kes"]
	if !enc.OK {
		t.Errorf("encrypt_kes: %+v", enc)
		return
	}
	iv, _ := hex.DecodeString(enc.IV)
	want, err := crypto.CBCEncrypt(raw, iv, msg)
	if err != nil || hex.EncodeToString(want) != enc.Ciphertext {
		t.Errorf("encrypt_kes: ciphertext is not AES-256-CBC-PKCS5 under the key (%v)", err)
	}
	if d := res.Steps["decrypt_kes"]; !d.OK || !d.Match {
		t.Errorf("decrypt_kes: %+v", d)
	}
	if d := res.Steps["decrypt_tampered"]; d.OK || d.Reason != "CRYPTOGRAPHIC_FAILURE" {
		t.Errorf("decrypt of a tampered ciphertext: ok=%v reason=%q, want CRYPTOGRAPHIC_FAILURE", d.OK, d.Reason)
	}
	sum, err := svc.HMAC(context.Background(), name, msg)
	if m := res.Steps["mac_kes"]; err != nil || !m.OK || m.MAC != hex.EncodeToString(sum) {
		t.Errorf("mac_kes: %+v (want the KES API's HMAC, %v)", m, err)
	}
}

// TestPyKMIPClients covers the trust and authorization set-ups the
// hypervisor guides describe.
func TestPyKMIPClients(t *testing.T) {
	requirePyKMIP(t)
	env := startPyKMIPBridge(t)
	ctx := context.Background()
	if err := env.keys.Create(ctx, "shared", "test"); err != nil {
		t.Fatal(err)
	}
	registerKey := make([]byte, 32)
	if _, err := rand.Read(registerKey); err != nil {
		t.Fatal(err)
	}

	t.Run("certificate without EKU", func(t *testing.T) {
		// vCenter speaks KMIP 1.1 with a certificate that has no
		// extended key usage.
		res := env.runLifecycle(t, "vcenter", "1.1", "vc", "shared", "", "", registerKey)
		for _, s := range []string{"open", "create", "get_created", "get_kept", "activate", "revoke", "destroy_created"} {
			if !res.Steps[s].OK {
				t.Errorf("%s: %+v", s, res.Steps[s])
			}
		}
		// The hypervisor gets its own keys, never MinIO's.
		if s := res.Steps["get_kes"]; s.OK || s.Reason != "PERMISSION_DENIED" {
			t.Errorf("get of the KES key: %+v", s)
		}
	})

	t.Run("no policy", func(t *testing.T) {
		res := env.runLifecycle(t, "stranger", "1.2", "stranger", "shared", "", "", registerKey)
		for _, s := range []string{"create", "get_kes", "locate_type"} {
			if got := res.Steps[s]; got.OK || got.Reason != "PERMISSION_DENIED" {
				t.Errorf("%s by an identity without policy: ok=%v reason=%q, want PERMISSION_DENIED", s, got.OK, got.Reason)
			}
		}
		if _, err := env.keys.Store().Get(ctx, "stranger-created"); !errors.Is(err, keystore.ErrKeyNotFound) {
			t.Errorf("denied create left a key: %v", err)
		}
	})

	t.Run("password", func(t *testing.T) {
		// ZStack's password protection: the user's policy applies and
		// denies destroy.
		res := env.runLifecycle(t, "stranger", "1.1", "zs", "shared", "zstack", "zstack-test-password", registerKey)
		for _, s := range []string{"open", "create", "get_created", "activate", "revoke"} {
			if !res.Steps[s].OK {
				t.Errorf("%s: %+v", s, res.Steps[s])
			}
		}
		if s := res.Steps["get_kes"]; s.OK || s.Reason != "PERMISSION_DENIED" {
			t.Errorf("get of the KES key: %+v", s)
		}
		if got := res.Steps["destroy_created"]; got.OK || got.Reason != "PERMISSION_DENIED" {
			t.Errorf("destroy denied by the user's policy: ok=%v reason=%q", got.OK, got.Reason)
		}
	})

	t.Run("wrong password", func(t *testing.T) {
		res := env.runLifecycle(t, "pykmip", "1.1", "badpw", "shared", "zstack", "not-the-password", registerKey)
		if got := res.Steps["create"]; got.OK || got.Reason != "AUTHENTICATION_NOT_SUCCESSFUL" {
			t.Errorf("create with a wrong password: ok=%v reason=%q message=%q", got.OK, got.Reason, got.Message)
		}
	})
}
