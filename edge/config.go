// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package edge

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"reflect"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/kesbridge/kes/identity"
	"github.com/kesbridge/kes/internal/cache"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	kmipbridge "github.com/kesbridge/kes/kmip-bridge"
	"github.com/kesbridge/kes/policy"
)

// maxConfigSize bounds the config file; a real one is a few KB.
const maxConfigSize = 1 << 20

// Defaults of the config file.
const (
	DefaultAddr           = "0.0.0.0:7373"
	DefaultKMIPAddr       = "0.0.0.0:5696"
	DefaultProxyHeader    = "X-Tls-Client-Cert"
	DefaultCacheExpiry    = 5 * time.Minute
	DefaultCacheUnused    = 30 * time.Second
	DefaultKMIPMaxMessage = 1000000
	DefaultKMIPRead       = 30 * time.Second
	DefaultKMIPIdle       = 5 * time.Minute
	// DefaultKMIPMaxConns is kmip.max_connections when it is absent or
	// 0; kmipbridge.DefaultMaxConnections says why.
	DefaultKMIPMaxConns = kmipbridge.DefaultMaxConnections
	// MaxKMIPMaxConns bounds kmip.max_connections: Linux's default cap
	// on a process's file descriptors (fs.nr_open), so a larger value
	// could never be reached.
	MaxKMIPMaxConns = 1 << 20
)

// Config is a validated server configuration: what ReadConfig returns
// and what NewServer runs. Fields hold final values (defaults applied,
// ${ENV} references resolved).
type Config struct {
	// Addr is the listen address (ip:port) of the HTTP API.
	Addr string

	// Admin is the admin identity. Empty means there is no admin (the
	// config file said "disabled" or another non-identity value).
	Admin identity.Identity

	TLS TLSConfig

	// API overrides per route path (e.g. "/v1/status", "/v1/key/create/").
	API map[string]APIConfig

	// Policies by name.
	Policies map[string]PolicyConfig

	// Cache sets the key cache expiries.
	Cache cache.Config

	// ErrorLevel is the minimum level of the error log (stderr);
	// AuditLevel of the audit log (stdout). Audit records are logged at
	// INFO, so a level above INFO switches the audit log off.
	ErrorLevel slog.Level
	AuditLevel slog.Level

	// Keys are created at start-up if they do not exist.
	Keys []string
	// KeyRules are the settings of keys: entries, by name or pattern.
	KeyRules []KeyRule

	// Rotations are the rotation schedules of the keys section.
	Rotations []keys.Rotation

	// Keystore is where keys live; Seal optionally wraps it.
	Keystore KeystoreConfig
	Seal     *SealConfig

	// KMIP configures the KMIP bridge; nil means no bridge.
	KMIP *KMIPConfig

	// MLock (mlock: true) keeps key material out of swap: the memory
	// that holds keys is locked, and start-up fails if it cannot be.
	// The rest of the heap is not locked (see MLockAll).
	MLock bool

	// MLockAll (mlockall: true) locks all current and future memory of
	// the process at start-up, which costs resident memory for the whole
	// heap and every stack.
	MLockAll bool

	// Dev marks the configuration made by --dev: TLS comes from
	// DevCertificate instead of files.
	Dev bool

	// devCert is the in-memory certificate of dev mode.
	devCert *tls.Certificate
}

// TLSConfig is the tls section.
type TLSConfig struct {
	KeyFile  string
	CertFile string
	// Password decrypts a legacy-encrypted PEM private key.
	Password keystore.Secret
	// VerifyClients is tls.auth: on. Off (the default) accepts any client
	// certificate; its identity is what counts.
	VerifyClients bool
	// CAFile is a PEM file or a directory of PEM files with extra CAs.
	CAFile string
	// ProxyIdentities are TLS-terminating proxies that forward the client
	// certificate in ProxyHeader.
	ProxyIdentities []identity.Identity
	ProxyHeader     string
}

// APIConfig overrides the defaults of one route.
type APIConfig struct {
	// SkipAuth turns authentication off: the route only identifies.
	SkipAuth bool
	// Timeout replaces the route timeout if > 0.
	Timeout time.Duration
}

// PolicyConfig is one policy of the config file.
type PolicyConfig struct {
	Allow      []string
	Deny       []string
	Identities []identity.Identity
}

// KeystoreConfig holds exactly one non-nil backend.
type KeystoreConfig struct {
	FS         *FSConfig
	KeyControl *KeyControlConfig
	HPCS       *HPCSConfig
	Vault      *VaultConfig
	PKCS11     *PKCS11Config

	// mem is used by --dev without a data directory.
	mem bool

	// tokens is told of the driver's token renewals (see
	// keystore.TokenObserver); the server sets it for its metrics.
	tokens keystore.TokenObserver
}

// FSConfig is keystore.fs.
type FSConfig struct{ Path string }

// KeyControlConfig is keystore.entrust.keycontrol.
type KeyControlConfig struct {
	Endpoint, VaultID, BoxID string
	Username                 string
	Password                 keystore.Secret
	CAFile                   string
}

// VaultConfig is keystore.vault, the minio/kes HashiCorp Vault (and
// OpenBao) section, field for field.
type VaultConfig struct {
	Endpoint, Engine, Version, Namespace, Prefix string

	// AppRole and Kubernetes are the login methods; both nil means the
	// VAULT_TOKEN environment variable.
	AppRole    *VaultAppRole
	Kubernetes *VaultKubernetes
	// TransitEngine and TransitKey wrap the stored values if TransitKey
	// is set.
	TransitEngine, TransitKey string
	// KeyFile, CertFile (a client certificate) and CAFile (file or
	// directory) are tls.{key,cert,ca}.
	KeyFile, CertFile, CAFile string
	// StatusPing is status.ping; zero means the driver default.
	StatusPing time.Duration
	// LegacyRetry is set when the file still carries approle.retry or
	// kubernetes.retry (minio/kes before v0.22), which no longer has an
	// effect: the driver retries with backoff by itself.
	LegacyRetry bool
}

// VaultAppRole is keystore.vault.approle.
type VaultAppRole struct {
	Engine, Namespace, ID string
	Secret                keystore.Secret
}

// VaultKubernetes is keystore.vault.kubernetes. JWT is the token or, if
// it contains a '/', the path of a file that holds it.
type VaultKubernetes struct {
	Engine, Namespace, Role string
	JWT                     keystore.Secret
}

// HPCSConfig is keystore.ibm.hpcs and seal.ibm.hpcs.
type HPCSConfig struct {
	Endpoint, InstanceID, RootKeyID, KeyRing string
	IAMEndpoint                              string
	APIKey                                   keystore.Secret
	CAFile                                   string
}

// PKCS11Config is keystore.pkcs11 and seal.pkcs11 (which has no Store).
type PKCS11Config struct {
	Module, Token, RootKey string
	PIN                    keystore.Secret
	CreateRootKey          bool
	// PreviousRootKeys are the labels of earlier root keys, newest
	// first, that still open values sealed before a rotation.
	PreviousRootKeys []string
	// Store is a directory for the sealed values; empty keeps them on
	// the token.
	Store string
}

// SealConfig holds exactly one non-nil sealer.
type SealConfig struct {
	HPCS   *HPCSConfig
	PKCS11 *PKCS11Config
}

// KMIPConfig is the kmip section: the KMIP bridge beside the HTTP API.
type KMIPConfig struct {
	Addr     string
	KeyFile  string
	CertFile string
	// CAFile holds the CAs that issue client certificates. Required: KMIP
	// clients are always verified.
	CAFile string
	// Compat adds the TLS 1.2 CBC and RSA key exchange suites that older
	// hypervisors need.
	Compat         bool
	Users          map[string]KMIPUser
	MaxMessageSize int
	ReadTimeout    time.Duration
	IdleTimeout    time.Duration
	// MaxConnections bounds the KMIP connections served at once
	// (kmip.max_connections; DefaultKMIPMaxConns if absent or 0). A
	// reload changes it without closing connections.
	MaxConnections int
}

// KMIPUser is a KMIP username/password login and its policy.
type KMIPUser struct {
	Password keystore.Secret
	Policy   string
}

// The YAML shape. Field tags are the config keys; checkFields reports
// every key that is not one of them.
type fileYAML struct {
	Version string `yaml:"version"`
	Address string `yaml:"address"`
	Admin   struct {
		Identity string `yaml:"identity"`
	} `yaml:"admin"`
	TLS struct {
		Key      string          `yaml:"key"`
		Cert     string          `yaml:"cert"`
		Password keystore.Secret `yaml:"password"`
		Auth     string          `yaml:"auth"`
		CA       string          `yaml:"ca"`
		Proxy    struct {
			Identities []string `yaml:"identities"`
			Header     struct {
				Cert string `yaml:"cert"`
			} `yaml:"header"`
		} `yaml:"proxy"`
	} `yaml:"tls"`
	API    map[string]apiYAML    `yaml:"api"`
	Policy map[string]policyYAML `yaml:"policy"`
	Cache  struct {
		Expiry struct {
			Any     *time.Duration `yaml:"any"`
			Unused  *time.Duration `yaml:"unused"`
			Offline time.Duration  `yaml:"offline"`
		} `yaml:"expiry"`
	} `yaml:"cache"`
	Log struct {
		Error string `yaml:"error"`
		Audit string `yaml:"audit"`
	} `yaml:"log"`
	Keys     []keyYAML     `yaml:"keys"`
	Keystore *keystoreYAML `yaml:"keystore"`
	Seal     *sealYAML     `yaml:"seal"`
	KMIP     *kmipYAML     `yaml:"kmip"`
	MLock    bool          `yaml:"mlock"`
	MLockAll bool          `yaml:"mlockall"`
}

type apiYAML struct {
	SkipAuth bool          `yaml:"skip_auth"`
	Timeout  time.Duration `yaml:"timeout"`
}

type policyYAML struct {
	Allow      []string `yaml:"allow"`
	Deny       []string `yaml:"deny"`
	Identities []string `yaml:"identities"`
}

type tlsCAYAML struct {
	CA string `yaml:"ca"`
}

type hpcsYAML struct {
	Endpoint   string `yaml:"endpoint"`
	InstanceID string `yaml:"instance_id"`
	RootKeyID  string `yaml:"root_key_id"`
	KeyRing    string `yaml:"key_ring"`
	IAM        struct {
		Endpoint string          `yaml:"endpoint"`
		APIKey   keystore.Secret `yaml:"api_key"`
	} `yaml:"iam"`
	TLS tlsCAYAML `yaml:"tls"`
}

type vaultYAML struct {
	Endpoint  string `yaml:"endpoint"`
	Engine    string `yaml:"engine"`
	Version   string `yaml:"version"`
	Namespace string `yaml:"namespace"`
	Prefix    string `yaml:"prefix"`
	AppRole   *struct {
		Engine    string          `yaml:"engine"`
		Namespace string          `yaml:"namespace"`
		ID        string          `yaml:"id"`
		Secret    keystore.Secret `yaml:"secret"`
		Retry     *time.Duration  `yaml:"retry"` // legacy, ignored
	} `yaml:"approle"`
	Kubernetes *struct {
		Engine    string          `yaml:"engine"`
		Namespace string          `yaml:"namespace"`
		Role      string          `yaml:"role"`
		JWT       keystore.Secret `yaml:"jwt"`
		Retry     *time.Duration  `yaml:"retry"` // legacy, ignored
	} `yaml:"kubernetes"`
	Transit *struct {
		Engine string `yaml:"engine"`
		Key    string `yaml:"key"`
	} `yaml:"transit"`
	TLS struct {
		Key  string `yaml:"key"`
		Cert string `yaml:"cert"`
		CA   string `yaml:"ca"`
	} `yaml:"tls"`
	Status struct {
		Ping time.Duration `yaml:"ping"`
	} `yaml:"status"`
}

// config validates keystore.vault as minio/kes does, with its messages.
func (y *vaultYAML) config() (*VaultConfig, error) {
	v := &VaultConfig{
		Endpoint: y.Endpoint, Engine: y.Engine, Version: y.Version, Namespace: y.Namespace, Prefix: y.Prefix,
		KeyFile: y.TLS.Key, CertFile: y.TLS.Cert, CAFile: y.TLS.CA, StatusPing: y.Status.Ping,
	}
	switch {
	case y.Endpoint == "":
		return nil, invalid("Hashicorp Vault keystore: no endpoint specified")
	case y.Version != "" && y.Version != "v1" && y.Version != "v2":
		return nil, invalid("Hashicorp Vault keystore: invalid K/V engine version '%s': must be v1 or v2", y.Version)
	case y.TLS.Key != "" && y.TLS.Cert == "":
		return nil, invalid("Hashicorp Vault keystore: tls.key specified without tls.cert")
	case y.TLS.Cert != "" && y.TLS.Key == "":
		return nil, invalid("Hashicorp Vault keystore: tls.cert specified without tls.key")
	case y.Status.Ping < 0:
		return nil, invalid("Hashicorp Vault keystore: status.ping must not be negative")
	}
	// A section only counts if it names credentials, as in minio/kes:
	// sample configs carry empty approle and kubernetes sections.
	if a := y.AppRole; a != nil {
		v.LegacyRetry = a.Retry != nil
		if a.ID != "" || !a.Secret.IsZero() {
			if a.ID == "" || a.Secret.IsZero() {
				return nil, invalid("Hashicorp Vault keystore: approle: both id and secret are required")
			}
			v.AppRole = &VaultAppRole{Engine: a.Engine, Namespace: a.Namespace, ID: a.ID, Secret: a.Secret}
		}
	}
	if k := y.Kubernetes; k != nil {
		v.LegacyRetry = v.LegacyRetry || k.Retry != nil
		if k.Role != "" || !k.JWT.IsZero() {
			if k.Role == "" || k.JWT.IsZero() {
				return nil, invalid("Hashicorp Vault keystore: kubernetes: both role and jwt are required")
			}
			v.Kubernetes = &VaultKubernetes{Engine: k.Engine, Namespace: k.Namespace, Role: k.Role, JWT: k.JWT}
		}
	}
	if v.AppRole != nil && v.Kubernetes != nil {
		return nil, invalid("Hashicorp Vault keystore: more than one authentication method specified: approle and kubernetes")
	}
	if t := y.Transit; t != nil && (t.Engine != "" || t.Key != "") {
		if t.Key == "" {
			return nil, invalid("Hashicorp Vault keystore: transit: no key specified")
		}
		v.TransitEngine, v.TransitKey = t.Engine, t.Key
	}
	return v, nil
}

type pkcs11YAML struct {
	Module        string          `yaml:"module"`
	Token         string          `yaml:"token"`
	PIN           keystore.Secret `yaml:"pin"`
	RootKey       string          `yaml:"root_key"`
	CreateRootKey bool            `yaml:"create_root_key"`
	PreviousKeys  []string        `yaml:"previous_root_keys"`
	Store         string          `yaml:"store"`
}

type keystoreYAML struct {
	FS *struct {
		Path string `yaml:"path"`
	} `yaml:"fs"`
	Entrust *struct {
		KeyControl *struct {
			Endpoint    string `yaml:"endpoint"`
			VaultID     string `yaml:"vault_id"`
			BoxID       string `yaml:"box_id"`
			Credentials struct {
				Username string          `yaml:"username"`
				Password keystore.Secret `yaml:"password"`
			} `yaml:"credentials"`
			TLS tlsCAYAML `yaml:"tls"`
		} `yaml:"keycontrol"`
	} `yaml:"entrust"`
	IBM *struct {
		HPCS *hpcsYAML `yaml:"hpcs"`
	} `yaml:"ibm"`
	PKCS11 *pkcs11YAML `yaml:"pkcs11"`
	Vault  *vaultYAML  `yaml:"vault"`
}

type sealYAML struct {
	IBM *struct {
		HPCS *hpcsYAML `yaml:"hpcs"`
	} `yaml:"ibm"`
	PKCS11 *pkcs11YAML `yaml:"pkcs11"`
}

type kmipYAML struct {
	Address string `yaml:"address"`
	TLS     struct {
		Key          string `yaml:"key"`
		Cert         string `yaml:"cert"`
		CA           string `yaml:"ca"`
		CipherSuites string `yaml:"cipher_suites"`
	} `yaml:"tls"`
	Users map[string]struct {
		Password keystore.Secret `yaml:"password"`
		Policy   string          `yaml:"policy"`
	} `yaml:"users"`
	MaxMessageSize *int `yaml:"max_message_size"`
	MaxConnections *int `yaml:"max_connections"`
	Timeout        struct {
		Read *time.Duration `yaml:"read"`
		Idle *time.Duration `yaml:"idle"`
	} `yaml:"timeout"`
}

// unsupportedKeystores are minio/kes backends this server does not
// implement; naming them gets a clear error instead of "unknown field".
var unsupportedKeystores = []string{"fortanix", "gemalto", "gcp", "aws", "azure", "kes"}

// ReadConfig reads and validates the config file at path. Unknown or
// misspelt keys, missing ${ENV} variables and invalid values are errors
// that name the line.
func ReadConfig(path string) (*Config, error) {
	b, err := readConfigSource(path, maxConfigSize)
	if err != nil {
		return nil, fmt.Errorf("failed to read config: %w", err)
	}
	return ParseConfig(b)
}

// ParseConfig parses and validates a config file's content.
func ParseConfig(b []byte) (*Config, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config is empty")
		}
		return nil, yamlError(err)
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return nil, fmt.Errorf("config line %d: the config must be a mapping", doc.Line)
	}
	// A second document would be ignored by the decoder, and with it
	// whatever the operator meant to configure there.
	for {
		var extra yaml.Node
		err := dec.Decode(&extra)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, yamlError(err)
		}
		// "---" with nothing after it is an empty document, not a
		// second config.
		if len(extra.Content) > 0 && !isEmptyDoc(&extra) {
			return nil, fmt.Errorf("config line %d: the config must be a single YAML document, found another one", extra.Line)
		}
	}
	root := doc.Content[0]
	if err := substituteEnv(root); err != nil {
		return nil, err
	}
	if err := checkKeystoreNames(root); err != nil {
		return nil, err
	}
	if err := checkFields(root, reflect.TypeFor[fileYAML]()); err != nil {
		return nil, err
	}
	var y fileYAML
	if err := root.Decode(&y); err != nil {
		// yaml.v3 lists every type error as "line N: ..."; the first one
		// says enough and keeps the message on one line.
		var te *yaml.TypeError
		if errors.As(err, &te) && len(te.Errors) > 0 {
			return nil, fmt.Errorf("config %s", te.Errors[0])
		}
		return nil, yamlError(err)
	}
	return y.config(root)
}

// isEmptyDoc reports whether a document holds nothing but an implicit
// null, which is what "---" followed by comments decodes to.
func isEmptyDoc(doc *yaml.Node) bool {
	c := doc.Content[0]
	return len(doc.Content) == 1 && c.Kind == yaml.ScalarNode && c.Value == "" && c.ShortTag() == "!!null" && c.Style == 0
}

// yamlError turns a yaml.v3 error into "config line N: ...", without
// the "yaml: " prefix of the library.
func yamlError(err error) error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	if strings.HasPrefix(msg, "line ") {
		return errors.New("config " + msg)
	}
	return errors.New("config: " + msg)
}

var envRef = regexp.MustCompile(`^\$\{([^{}\s]+)\}$`)

// substituteEnv replaces every scalar of the form ${NAME} by the value of
// the environment variable before any value is decoded, so that
// references work for durations and booleans too.
//
// The value is never YAML null: a value that YAML would resolve to null
// ("", "~", "null", "Null", "NULL") is kept as the literal string. Read
// as null, a password or API key set to "null" would silently become
// empty, and an optional setting would silently take its default. As a
// string it is the credential as given, and for a field that is not a
// string (a duration, a number) a type error that names the line.
func substituteEnv(n *yaml.Node) error {
	if n.Kind == yaml.ScalarNode {
		m := envRef.FindStringSubmatch(strings.TrimSpace(n.Value))
		if m == nil {
			return nil
		}
		v, ok := os.LookupEnv(m[1])
		if !ok {
			return fmt.Errorf("config line %d: referenced env. variable '%s' not found", n.Line, m[1])
		}
		// Clear tag and style so the value is resolved (and typed) as if
		// it had been written in place.
		n.Value, n.Tag, n.Style = v, "", 0
		if n.ShortTag() == "!!null" {
			n.Tag = "!!str"
		}
		return nil
	}
	for i, c := range n.Content {
		if n.Kind == yaml.MappingNode && i%2 == 0 {
			continue // keys are never substituted
		}
		if err := substituteEnv(c); err != nil {
			return err
		}
	}
	return nil
}

func checkKeystoreNames(root *yaml.Node) error {
	for i := 0; i+1 < len(root.Content); i += 2 {
		ks := root.Content[i+1]
		for ks.Kind == yaml.AliasNode && ks.Alias != nil {
			ks = ks.Alias
		}
		if root.Content[i].Value != "keystore" || ks.Kind != yaml.MappingNode {
			continue
		}
		for j := 0; j+1 < len(ks.Content); j += 2 {
			k := ks.Content[j]
			if slices.Contains(unsupportedKeystores, k.Value) {
				return fmt.Errorf("config line %d: keystore '%s' is not supported by this server", k.Line, k.Value)
			}
		}
	}
	return nil
}

// checkFields reports the first mapping key in n that the YAML type t
// does not have, with its line. It sees through aliases and merge keys
// (<<), so that a misspelt key in an anchored mapping is reported like
// any other.
func checkFields(n *yaml.Node, t reflect.Type) error {
	c := &fieldChecker{done: map[checked]bool{}}
	return c.check(n, t)
}

// checked is one node checked against one type. An anchored node is
// checked once per type however often it is aliased, which keeps the
// check linear in the size of the file (no "billion laughs") and ends
// the recursion of a node that contains an alias of itself.
type checked struct {
	n *yaml.Node
	t reflect.Type
}

type fieldChecker struct {
	done map[checked]bool
}

func (c *fieldChecker) check(n *yaml.Node, t reflect.Type) error {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	for n.Kind == yaml.AliasNode {
		if n.Alias == nil {
			return nil // the decoder reports it
		}
		n = n.Alias
	}
	key := checked{n, t}
	if c.done[key] {
		return nil
	}
	c.done[key] = true

	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode || t == reflect.TypeFor[keystore.Secret]() {
			return nil // a type error the decoder reports
		}
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fields[name] = f.Type
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if isMergeKey(k) {
				if err := c.checkMerge(n.Content[i+1], t); err != nil {
					return err
				}
				continue
			}
			ft, ok := fields[k.Value]
			if !ok {
				return fmt.Errorf("config line %d: unknown field '%s'", k.Line, k.Value)
			}
			if seen[k.Value] {
				return fmt.Errorf("config line %d: field '%s' appears twice", k.Line, k.Value)
			}
			seen[k.Value] = true
			if err := c.check(n.Content[i+1], ft); err != nil {
				return err
			}
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return nil
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if isMergeKey(k) {
				if err := c.checkMerge(n.Content[i+1], t); err != nil {
					return err
				}
				continue
			}
			if seen[k.Value] {
				return fmt.Errorf("config line %d: '%s' appears twice", k.Line, k.Value)
			}
			seen[k.Value] = true
			if err := c.check(n.Content[i+1], t.Elem()); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return nil
		}
		for _, e := range n.Content {
			if err := c.check(e, t.Elem()); err != nil {
				return err
			}
		}
	}
	return nil
}

// isMergeKey reports whether k is YAML's merge key "<<".
func isMergeKey(k *yaml.Node) bool {
	return k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge"
}

// checkMerge checks the value of a merge key: a mapping (usually an
// alias of one) or a sequence of them, merged into a mapping of type t.
func (c *fieldChecker) checkMerge(v *yaml.Node, t reflect.Type) error {
	for v.Kind == yaml.AliasNode && v.Alias != nil {
		v = v.Alias
	}
	if v.Kind != yaml.SequenceNode {
		return c.check(v, t)
	}
	for _, e := range v.Content {
		if err := c.check(e, t); err != nil {
			return err
		}
	}
	return nil
}

// atLine is invalid with the config line, if known (> 0).
func atLine(line int, format string, args ...any) error {
	if line <= 0 {
		return invalid(format, args...)
	}
	return fmt.Errorf("config line %d: "+format, append([]any{line}, args...)...)
}

// lineOf returns the line of the node at path below n, following
// aliases: mapping keys by name, sequence items by index. It returns 0 if
// there is no such node.
func lineOf(n *yaml.Node, path ...string) int {
	for _, p := range path {
		for n.Kind == yaml.AliasNode && n.Alias != nil {
			n = n.Alias
		}
		var next *yaml.Node
		switch n.Kind {
		case yaml.MappingNode:
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == p {
					next = n.Content[i+1]
				}
			}
		case yaml.SequenceNode:
			if i, err := strconv.Atoi(p); err == nil && i >= 0 && i < len(n.Content) {
				next = n.Content[i]
			}
		}
		if next == nil {
			return 0
		}
		n = next
	}
	return n.Line
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("invalid config: "+format, args...)
}

func (y *fileYAML) config(root *yaml.Node) (*Config, error) {
	if y.Version != "" && y.Version != "v1" {
		return nil, invalid("version '%s' is not supported: use 'v1'", y.Version)
	}
	c := &Config{
		Addr:     y.Address,
		API:      map[string]APIConfig{},
		Policies: map[string]PolicyConfig{},
		MLock:    y.MLock,
		MLockAll: y.MLockAll,
	}
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if err := checkAddr(c.Addr); err != nil {
		return nil, invalid("address: %v", err)
	}

	admin := strings.TrimSpace(y.Admin.Identity)
	if admin == "" {
		return nil, invalid("no admin identity specified (use 'disabled' to run without admin)")
	}
	if identity.Valid(admin) {
		c.Admin = identity.Identity(admin)
	}

	// TLS
	c.TLS = TLSConfig{
		KeyFile:     y.TLS.Key,
		CertFile:    y.TLS.Cert,
		Password:    y.TLS.Password,
		CAFile:      y.TLS.CA,
		ProxyHeader: y.TLS.Proxy.Header.Cert,
	}
	if c.TLS.KeyFile == "" {
		return nil, invalid("no TLS private key specified")
	}
	if c.TLS.CertFile == "" {
		return nil, invalid("no TLS certificate specified")
	}
	switch strings.ToLower(strings.TrimSpace(y.TLS.Auth)) {
	case "", "off":
	case "on":
		c.TLS.VerifyClients = true
	default:
		return nil, invalid("tls.auth '%s' is invalid: use 'on' or 'off'", y.TLS.Auth)
	}
	if c.TLS.ProxyHeader == "" {
		c.TLS.ProxyHeader = DefaultProxyHeader
	}
	for _, id := range y.TLS.Proxy.Identities {
		id = strings.TrimSpace(id)
		if !identity.Valid(id) {
			return nil, invalid("tls.proxy: '%s' is not an identity", id)
		}
		if identity.Identity(id) == c.Admin {
			return nil, invalid("tls.proxy: the admin identity cannot be a proxy identity")
		}
		c.TLS.ProxyIdentities = append(c.TLS.ProxyIdentities, identity.Identity(id))
	}

	// API
	for path, a := range y.API {
		if _, ok := routeByPath[path]; !ok {
			return nil, invalid("api: '%s' is not an API path", path)
		}
		if a.Timeout < 0 {
			return nil, invalid("api: '%s': timeout is negative", path)
		}
		c.API[path] = APIConfig(a)
	}

	// Policies
	owner := map[identity.Identity]string{}
	for name, p := range y.Policy {
		if !policy.ValidName(name) {
			return nil, invalid("policy name '%s' is empty, too long or contains invalid characters", name)
		}
		pc := PolicyConfig{Allow: p.Allow, Deny: p.Deny}
		for _, l := range []struct {
			name     string
			patterns []string
		}{{"allow", p.Allow}, {"deny", p.Deny}} {
			list := l.name
			for i, pattern := range l.patterns {
				if err := policy.CheckPattern(pattern); err != nil {
					line := lineOf(root, "policy", name, list, strconv.Itoa(i))
					return nil, atLine(line, "policy '%s': %s pattern '%s': %s", name, list, pattern, strings.TrimPrefix(err.Error(), "policy: "))
				}
			}
		}
		for _, id := range p.Identities {
			id = strings.TrimSpace(id)
			if !identity.Valid(id) {
				return nil, invalid("policy '%s': '%s' is not an identity", name, id)
			}
			i := identity.Identity(id)
			if i == c.Admin {
				return nil, invalid("policy '%s': identity '%s' is the admin and cannot have a policy", name, id)
			}
			if slices.Contains(c.TLS.ProxyIdentities, i) {
				return nil, invalid("policy '%s': identity '%s' is a proxy and cannot have a policy", name, id)
			}
			if other, ok := owner[i]; ok {
				return nil, invalid("identity '%s' already has a policy ('%s' and '%s')", id, min(other, name), max(other, name))
			}
			owner[i] = name
			pc.Identities = append(pc.Identities, i)
		}
		c.Policies[name] = pc
	}

	// Cache: the defaults minio/kes intended (5m / 30s / off).
	c.Cache.Expiry = DefaultCacheExpiry
	if y.Cache.Expiry.Any != nil {
		c.Cache.Expiry = *y.Cache.Expiry.Any
	}
	c.Cache.ExpiryUnused = DefaultCacheUnused
	if y.Cache.Expiry.Unused != nil {
		c.Cache.ExpiryUnused = *y.Cache.Expiry.Unused
	}
	c.Cache.ExpiryOffline = y.Cache.Expiry.Offline
	if c.Cache.Expiry < 0 || c.Cache.ExpiryUnused < 0 || c.Cache.ExpiryOffline < 0 {
		return nil, invalid("cache expiry is negative")
	}

	var err error
	if c.ErrorLevel, err = ParseLevel(y.Log.Error); err != nil {
		return nil, invalid("log.error: %v", err)
	}
	if c.AuditLevel, err = ParseLevel(y.Log.Audit); err != nil {
		return nil, invalid("log.audit: %v", err)
	}

	if c.Keys, c.Rotations, c.KeyRules, err = keysConfig(y.Keys); err != nil {
		return nil, invalid("%v", err)
	}

	if c.Keystore, err = y.Keystore.config(); err != nil {
		return nil, err
	}
	if y.Seal != nil {
		if c.Seal, err = y.Seal.config(); err != nil {
			return nil, err
		}
	}
	if y.KMIP != nil {
		if c.KMIP, err = y.KMIP.config(root, c.Policies); err != nil {
			return nil, err
		}
	}
	if err := c.checkPaths(); err != nil {
		return nil, err
	}
	return c, nil
}

// checkPaths refuses files of the config that are FIFOs, devices or
// sockets: reading one would block start-up or never end.
func (c *Config) checkPaths() error {
	type path struct {
		field, path string
		dirOK       bool
	}
	paths := []path{
		{"tls.key", c.TLS.KeyFile, false},
		{"tls.cert", c.TLS.CertFile, false},
		{"tls.ca", c.TLS.CAFile, true},
	}
	pkcs11Paths := func(section string, p *PKCS11Config) {
		if p != nil {
			paths = append(paths, path{section + ".pkcs11.module", p.Module, false}, path{section + ".pkcs11.store", p.Store, true})
		}
	}
	hpcsPaths := func(section string, h *HPCSConfig) {
		if h != nil {
			paths = append(paths, path{section + ".ibm.hpcs.tls.ca", h.CAFile, true})
		}
	}
	if kc := c.Keystore.KeyControl; kc != nil {
		paths = append(paths, path{"keystore.entrust.keycontrol.tls.ca", kc.CAFile, true})
	}
	if v := c.Keystore.Vault; v != nil {
		paths = append(paths,
			path{"keystore.vault.tls.key", v.KeyFile, false},
			path{"keystore.vault.tls.cert", v.CertFile, false},
			path{"keystore.vault.tls.ca", v.CAFile, true})
	}
	hpcsPaths("keystore", c.Keystore.HPCS)
	pkcs11Paths("keystore", c.Keystore.PKCS11)
	if c.Seal != nil {
		hpcsPaths("seal", c.Seal.HPCS)
		pkcs11Paths("seal", c.Seal.PKCS11)
	}
	if k := c.KMIP; k != nil {
		paths = append(paths, path{"kmip.tls.key", k.KeyFile, false}, path{"kmip.tls.cert", k.CertFile, false}, path{"kmip.tls.ca", k.CAFile, false})
	}
	for _, p := range paths {
		if err := checkPath(p.field, p.path, p.dirOK); err != nil {
			return err
		}
	}
	return nil
}

func checkAddr(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("'%s' is not an ip:port address", addr)
	}
	if host != "" && net.ParseIP(host) == nil {
		return fmt.Errorf("'%s' is not a valid IP address", host)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("'%s' is not a valid port", port)
	}
	return nil
}

// ParseLevel parses a log level of the config file: "" or "on" (INFO),
// "off" (nothing), DEBUG, INFO, WARN or ERROR with an optional +N/-N,
// or an integer.
func ParseLevel(s string) (slog.Level, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "", "on":
		return slog.LevelInfo, nil
	case "off":
		return LevelOff, nil
	}
	if n, err := strconv.Atoi(s); err == nil {
		return slog.Level(n), nil
	}
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("'%s' is not a log level", s)
	}
	return l, nil
}

// LevelOff is above every level that is logged: a logger at LevelOff
// says nothing.
const LevelOff = slog.LevelError + 1

func (y *keystoreYAML) config() (KeystoreConfig, error) {
	var k KeystoreConfig
	if y == nil {
		return k, invalid("no keystore specified")
	}
	n := 0
	if y.FS != nil {
		n++
		if y.FS.Path == "" {
			return k, invalid("keystore.fs: no path specified")
		}
		k.FS = &FSConfig{Path: y.FS.Path}
	}
	if y.Entrust != nil {
		kc := y.Entrust.KeyControl
		if kc == nil {
			return k, invalid("keystore.entrust: no keycontrol section")
		}
		n++
		switch {
		case kc.Endpoint == "":
			return k, invalid("Entrust KeyControl keystore: no endpoint specified")
		case kc.VaultID == "":
			return k, invalid("Entrust KeyControl keystore: no vault ID specified")
		case kc.BoxID == "":
			return k, invalid("Entrust KeyControl keystore: no box ID specified")
		case kc.Credentials.Username == "":
			return k, invalid("Entrust KeyControl keystore: no username specified")
		case kc.Credentials.Password.IsZero():
			return k, invalid("Entrust KeyControl keystore: no password specified")
		}
		k.KeyControl = &KeyControlConfig{
			Endpoint: kc.Endpoint, VaultID: kc.VaultID, BoxID: kc.BoxID,
			Username: kc.Credentials.Username, Password: kc.Credentials.Password,
			CAFile: kc.TLS.CA,
		}
	}
	if y.IBM != nil {
		if y.IBM.HPCS == nil {
			return k, invalid("keystore.ibm: no hpcs section")
		}
		n++
		h, err := y.IBM.HPCS.config("keystore")
		if err != nil {
			return k, err
		}
		k.HPCS = h
	}
	if y.PKCS11 != nil {
		n++
		p, err := y.PKCS11.config("keystore")
		if err != nil {
			return k, err
		}
		k.PKCS11 = p
	}
	if y.Vault != nil {
		n++
		v, err := y.Vault.config()
		if err != nil {
			return k, err
		}
		k.Vault = v
	}
	switch {
	case n == 0:
		return k, invalid("no keystore specified")
	case n > 1:
		return k, invalid("more than one keystore specified")
	}
	return k, nil
}

func (y *hpcsYAML) config(section string) (*HPCSConfig, error) {
	switch {
	case y.Endpoint == "":
		return nil, invalid("%s.ibm.hpcs: no endpoint specified", section)
	case y.InstanceID == "":
		return nil, invalid("%s.ibm.hpcs: no instance ID specified", section)
	case y.RootKeyID == "":
		return nil, invalid("%s.ibm.hpcs: no root key ID specified", section)
	case y.IAM.APIKey.IsZero():
		return nil, invalid("%s.ibm.hpcs: no IAM API key specified", section)
	}
	return &HPCSConfig{
		Endpoint: y.Endpoint, InstanceID: y.InstanceID, RootKeyID: y.RootKeyID, KeyRing: y.KeyRing,
		IAMEndpoint: y.IAM.Endpoint, APIKey: y.IAM.APIKey, CAFile: y.TLS.CA,
	}, nil
}

func (y *pkcs11YAML) config(section string) (*PKCS11Config, error) {
	switch {
	case y.Module == "":
		return nil, invalid("%s.pkcs11: no module specified", section)
	case y.Token == "":
		return nil, invalid("%s.pkcs11: no token specified", section)
	case y.PIN.IsZero():
		return nil, invalid("%s.pkcs11: no PIN specified", section)
	case y.RootKey == "":
		return nil, invalid("%s.pkcs11: no root key specified", section)
	case section == "seal" && y.Store != "":
		return nil, invalid("seal.pkcs11: 'store' is only valid for keystore.pkcs11")
	}
	for _, label := range y.PreviousKeys {
		if label == "" || label == y.RootKey {
			return nil, invalid("%s.pkcs11: previous_root_keys: '%s' is empty or the root key", section, label)
		}
	}
	return &PKCS11Config{
		Module: y.Module, Token: y.Token, PIN: y.PIN, RootKey: y.RootKey,
		CreateRootKey: y.CreateRootKey, PreviousRootKeys: y.PreviousKeys, Store: y.Store,
	}, nil
}

func (y *sealYAML) config() (*SealConfig, error) {
	s := &SealConfig{}
	n := 0
	if y.IBM != nil {
		if y.IBM.HPCS == nil {
			return nil, invalid("seal.ibm: no hpcs section")
		}
		n++
		h, err := y.IBM.HPCS.config("seal")
		if err != nil {
			return nil, err
		}
		s.HPCS = h
	}
	if y.PKCS11 != nil {
		n++
		p, err := y.PKCS11.config("seal")
		if err != nil {
			return nil, err
		}
		s.PKCS11 = p
	}
	switch {
	case n == 0:
		return nil, invalid("seal: no sealer specified")
	case n > 1:
		return nil, invalid("seal: more than one sealer specified")
	}
	return s, nil
}

func (y *kmipYAML) config(root *yaml.Node, policies map[string]PolicyConfig) (*KMIPConfig, error) {
	k := &KMIPConfig{
		Addr:           y.Address,
		KeyFile:        y.TLS.Key,
		CertFile:       y.TLS.Cert,
		CAFile:         y.TLS.CA,
		Users:          map[string]KMIPUser{},
		MaxMessageSize: DefaultKMIPMaxMessage,
		ReadTimeout:    DefaultKMIPRead,
		IdleTimeout:    DefaultKMIPIdle,
		MaxConnections: DefaultKMIPMaxConns,
	}
	if k.Addr == "" {
		k.Addr = DefaultKMIPAddr
	}
	if err := checkAddr(k.Addr); err != nil {
		return nil, invalid("kmip.address: %v", err)
	}
	switch {
	case k.KeyFile == "":
		return nil, invalid("kmip.tls: no private key specified")
	case k.CertFile == "":
		return nil, invalid("kmip.tls: no certificate specified")
	case k.CAFile == "":
		return nil, invalid("kmip.tls: no CA specified: KMIP clients are always verified")
	}
	switch y.TLS.CipherSuites {
	case "", "default":
	case "compat":
		k.Compat = true
	default:
		return nil, invalid("kmip.tls.cipher_suites '%s' is invalid: use 'default' or 'compat'", y.TLS.CipherSuites)
	}
	names := make([]string, 0, len(y.Users))
	for name := range y.Users {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		u := y.Users[name]
		if name == "" {
			return nil, invalid("kmip.users: empty user name")
		}
		if u.Password.IsZero() {
			return nil, invalid("kmip.users: user '%s' has no password", name)
		}
		if _, ok := policies[u.Policy]; !ok {
			return nil, invalid("kmip.users: user '%s': policy '%s' does not exist", name, u.Policy)
		}
		k.Users[name] = KMIPUser{Password: u.Password, Policy: u.Policy}
	}
	if y.MaxMessageSize != nil {
		if *y.MaxMessageSize <= 0 {
			return nil, invalid("kmip.max_message_size must be positive")
		}
		k.MaxMessageSize = *y.MaxMessageSize
	}
	if y.Timeout.Read != nil {
		k.ReadTimeout = *y.Timeout.Read
	}
	if y.Timeout.Idle != nil {
		k.IdleTimeout = *y.Timeout.Idle
	}
	if k.ReadTimeout <= 0 || k.IdleTimeout <= 0 {
		return nil, invalid("kmip.timeout values must be positive")
	}
	if n := y.MaxConnections; n != nil {
		// 0 is the default, not "unlimited": there is no unlimited
		// setting, since every connection costs a file descriptor.
		line := lineOf(root, "kmip", "max_connections")
		switch {
		case *n < 0:
			return nil, atLine(line, "kmip.max_connections must not be negative (0 means the default of %d)", DefaultKMIPMaxConns)
		case *n > MaxKMIPMaxConns:
			return nil, atLine(line, "kmip.max_connections %d exceeds the limit of %d", *n, MaxKMIPMaxConns)
		case *n > 0:
			k.MaxConnections = *n
		}
	}
	return k, nil
}
