// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/kesbridge/kes/internal/cache"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/keystore"
)

// Errors the front doors map to their wire answers. Keystore errors
// (keystore.ErrKeyNotFound, keystore.ErrKeyExists, *keystore.UnreachableError,
// *keystore.UnavailableError) and crypto.ErrDecrypt pass through wrapped.
var (
	// ErrKeyNotFound and ErrKeyExists are the keystore's sentinels.
	ErrKeyNotFound = keystore.ErrKeyNotFound
	ErrKeyExists   = keystore.ErrKeyExists

	// ErrHMACNotSupported: the key is in the legacy format, which has no
	// HMAC key.
	ErrHMACNotSupported = errors.New("key does not support HMAC")

	// ErrNotActive: the key's lifecycle state forbids the operation (for
	// example generate on a Pre-Active or Deactivated key).
	ErrNotActive = errors.New("key is not active")

	// ErrNotEncryptionKey: the object holds material that is not a
	// 256-bit KES key (an AES-128 key, secret data or an opaque object
	// registered over KMIP).
	ErrNotEncryptionKey = errors.New("key is not a 256-bit encryption key")

	// ErrInvalidKey: imported key material has the wrong size.
	ErrInvalidKey = errors.New("invalid key")
)

// Config configures a Service.
type Config struct {
	// Store holds the keys. The Service owns it and closes it on Close.
	Store keystore.Store

	// Cache sets the cache expiries.
	Cache cache.Config

	// KeyType is the algorithm of keys created with Create. Zero means
	// crypto.DefaultKeyType().
	KeyType crypto.KeyType

	// HealthInterval is how often the keystore's status is checked to
	// switch the cache between online and offline. Zero means 10 s.
	HealthInterval time.Duration

	// Logger receives background errors. Nil discards them.
	Logger *slog.Logger

	// Rand is the randomness for new keys. Nil means crypto/rand.
	Rand io.Reader

	// ExportPatterns are the key names or patterns (see MatchName)
	// whose material may leave the server over KMIP whatever the key
	// stores: the config's keys: entries with export: true.
	ExportPatterns []string
	// Progress receives rotation and re-wrap results. Nil discards them.
	Progress Progress

	// Now is the clock the lifecycle dates of KMIP keys (Activation,
	// Deactivation, Process Start, Protect Stop; see dates.go) are
	// compared with. Nil means time.Now. Every node sharing a keystore
	// should run on synchronised clocks: a key changes state on each
	// node when that node's clock reaches the date.
	Now func() time.Time
}

// Service turns key names into usable keys: it reads them from the
// keystore through the cache, enforces their lifecycle state, and performs
// the cryptographic operations. Both front doors (the KES HTTP API and the
// KMIP bridge) call it; it knows nothing about either protocol.
type Service struct {
	store   keystore.Store
	cache   *cache.Cache[*Object]
	keyType crypto.KeyType
	log     *slog.Logger
	rand    io.Reader
	loader  func(context.Context, string) (*Object, error) // s.load, made once
	leases  *leaser                                        // nil if the store's Replace is linearizable
	reloads singleflight.Group                             // see refresh (versions.go)

	exportPatterns []string
	index          atomic.Pointer[Index] // see Index; nil until asked for

	progress Progress
	clock    func() time.Time // Config.Now; see now

	stop     chan struct{}
	done     chan struct{}
	bg       sync.WaitGroup // StartSchedule's loop
	closeOne sync.Once
}

// New returns a Service and starts its keystore health check.
func New(cfg Config) *Service {
	if cfg.KeyType == 0 {
		cfg.KeyType = crypto.DefaultKeyType()
	}
	if cfg.HealthInterval <= 0 {
		cfg.HealthInterval = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Rand == nil {
		cfg.Rand = rand.Reader
	}
	s := &Service{
		store:   cfg.Store,
		cache:   cache.New(cfg.Cache, func(o *Object) { o.Version.Destroy() }),
		keyType: cfg.KeyType,
		log:     cfg.Logger,
		rand:    cfg.Rand,
		leases:  newLeaser(cfg.Store, cfg.Logger, cfg.Rand),

		progress: cfg.Progress,
		clock:    cfg.Now,
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	s.exportPatterns = cfg.ExportPatterns
	s.loader = s.load
	go s.healthLoop(cfg.HealthInterval)
	return s
}

// Store returns the underlying keystore.
func (s *Service) Store() keystore.Store { return s.store }

// Close stops the health check, wipes the cache and closes the keystore.
func (s *Service) Close() error {
	var err error
	s.closeOne.Do(func() {
		close(s.stop)
		<-s.done
		s.bg.Wait()
		s.cache.Close()
		err = s.store.Close()
	})
	return err
}

func (s *Service) healthLoop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			ctx, cancel := context.WithTimeout(context.Background(), max(interval, 5*time.Second))
			_, err := s.Status(ctx)
			cancel()
			if err != nil {
				s.log.Warn("keystore health check failed", "keystore", s.store.String(), "err", err)
			}
		}
	}
}

// Status checks the keystore now and reports its latency. An unreachable
// keystore switches the cache to offline mode; a reachable one back.
func (s *Service) Status(ctx context.Context) (keystore.State, error) {
	start := time.Now()
	st, err := s.store.Status(ctx)
	switch {
	case err == nil:
		s.cache.SetOffline(false)
		if st.Latency <= 0 {
			st.Latency = time.Since(start)
		}
		return st, nil
	case keystore.IsUnreachable(err):
		s.cache.SetOffline(true)
	}
	return keystore.State{}, err
}

// Offline reports whether the keystore was last seen unreachable.
func (s *Service) Offline() bool { return s.cache.Offline() }

// Create generates a new key (of the configured type, with an HMAC key)
// and stores it. It returns ErrKeyExists if the name is taken.
func (s *Service) Create(ctx context.Context, name, createdBy string) error {
	key, err := crypto.GenerateSecretKey(s.keyType, s.rand)
	if err != nil {
		return err
	}
	return s.create(ctx, name, key, createdBy)
}

// Import stores the given 32-byte key under name with a fresh HMAC key.
func (s *Service) Import(ctx context.Context, name string, typ crypto.KeyType, material []byte, createdBy string) error {
	key, err := crypto.NewSecretKey(typ, material)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrInvalidKey, err)
	}
	return s.create(ctx, name, key, createdBy)
}

func (s *Service) create(ctx context.Context, name string, key *crypto.SecretKey, createdBy string) error {
	hmacKey, err := crypto.GenerateHMACKey(s.rand)
	if err != nil {
		key.Destroy()
		return err
	}
	v := &crypto.KeyVersion{Key: key, HMACKey: hmacKey, CreatedAt: time.Now().UTC(), CreatedBy: createdBy}
	defer v.Destroy()
	return s.CreateObject(ctx, name, v, Metadata{})
}

// CreateObject stores v with meta under name. It returns ErrKeyExists if
// the name is taken. The caller keeps ownership of v.
func (s *Service) CreateObject(ctx context.Context, name string, v *crypto.KeyVersion, meta Metadata) error {
	if IsReserved(name) {
		return fmt.Errorf("keys: key name '%s' is reserved", name)
	}
	u, err := usageOf(meta)
	if err != nil {
		return err
	}
	if meta.Dates != nil {
		if err := meta.Dates.Check(); err != nil {
			return err
		}
	}
	if err := checkGrowth(attrUsage{}, u); err != nil {
		return err
	}
	if err := setMeta(v, meta); err != nil {
		return err
	}
	value, err := v.MarshalText()
	if err != nil {
		return err
	}
	defer clear(value)
	if err := s.checkUpdate(0, value, false); err != nil {
		return err
	}
	if err := s.store.Create(ctx, name, value); err != nil {
		return s.storeError(err)
	}
	// A stale cached value from before a delete on another node must not
	// shadow the new key.
	s.cache.Delete(name)
	s.changed(name)
	return nil
}

// Delete removes the key from the keystore and the cache, under the
// rules of the lifecycle table (see lifecycle.go).
//
// On a store whose Replace is not linearizable across nodes, Delete
// holds the key's lease (see lease.go), so that it never runs between
// another node's compare and write of the key: that write would land in
// a key created anew under the name. It returns ErrKeyBusy if another
// node held the lease until ctx ended.
func (s *Service) Delete(ctx context.Context, name string) error {
	if IsReserved(name) {
		return ErrKeyNotFound
	}
	lctx, release, err := s.lease(ctx, name)
	if err != nil {
		return err
	}
	settled := true // no write of ours can still land
	defer func() { release(settled) }()
	err = s.delete(lctx, name, &settled)
	return s.leaseEnded(ctx, lctx, name, err)
}

// List returns the names that start with prefix, sorted, without the
// reserved names (lease records).
func (s *Service) List(ctx context.Context, prefix string) ([]string, error) {
	return withoutReserved(s.store.List(ctx, prefix))
}

// Info describes a key without its material.
type Info struct {
	Name      string
	Version   uint32         // the current version (1 for a key never rotated)
	Algorithm crypto.KeyType // zero for objects without a KES key
	CreatedAt time.Time
	CreatedBy string
	State     State
	// Usage is the key's usage and export attributes, with the
	// configured export patterns applied.
	Usage Usage
}

// Describe returns the key's metadata.
func (s *Service) Describe(ctx context.Context, name string) (Info, error) {
	var info Info
	err := s.With(ctx, name, func(o *Object) error {
		info = Info{Name: name, Version: o.Version.VersionNumber(), CreatedAt: o.Version.CreatedAt, CreatedBy: o.Version.CreatedBy, State: o.Meta.State, Usage: s.UsageOf(o)}
		if o.Version.Key != nil {
			info.Algorithm = o.Version.Key.Type()
		}
		return nil
	})
	return info, err
}

// Generate returns a new 32-byte data encryption key and its ciphertext
// under the named key, with assoc (the request context) as associated
// data.
func (s *Service) Generate(ctx context.Context, name string, assoc []byte) (plaintext, ciphertext []byte, err error) {
	err = s.With(ctx, name, func(o *Object) error {
		key, err := o.encryptionKey(true)
		if err != nil {
			return err
		}
		if err := checkUse(o, UsageEncrypt, "encrypt"); err != nil {
			return err
		}
		dek := make([]byte, crypto.KeySize)
		if _, err := io.ReadFull(s.rand, dek); err != nil {
			clear(dek)
			return fmt.Errorf("keys: failed to generate data key: %w", err)
		}
		ct, err := o.seal(key, dek, assoc)
		if err != nil {
			clear(dek)
			return err
		}
		plaintext, ciphertext = dek, ct
		return nil
	})
	return plaintext, ciphertext, err
}

// Encrypt encrypts plaintext under the named key with assoc as associated
// data.
func (s *Service) Encrypt(ctx context.Context, name string, plaintext, assoc []byte) ([]byte, error) {
	var ciphertext []byte
	err := s.With(ctx, name, func(o *Object) error {
		key, err := o.encryptionKey(true)
		if err != nil {
			return err
		}
		if err := checkUse(o, UsageEncrypt, "encrypt"); err != nil {
			return err
		}
		ciphertext, err = o.seal(key, plaintext, assoc)
		return err
	})
	return ciphertext, err
}

// Decrypt decrypts a ciphertext in any KES format, with the version of
// the key that made it (see decrypt in versions.go for how it is found).
// Keys that are Deactivated or Compromised still decrypt, so that data
// stays readable, and so do retired versions.
func (s *Service) Decrypt(ctx context.Context, name string, ciphertext, assoc []byte) ([]byte, error) {
	return s.decrypt(ctx, name, ciphertext, assoc)
}

// HMAC returns HMAC-SHA256 of msg under the named key's HMAC key.
func (s *Service) HMAC(ctx context.Context, name string, msg []byte) ([]byte, error) {
	var sum []byte
	err := s.With(ctx, name, func(o *Object) error {
		if VersionState(o.Version.State) == VersionRetired {
			return ErrVersionRetired
		}
		if !o.Meta.State.Active() {
			return ErrNotActive
		}
		if err := o.protectWindow(o.Version); err != nil {
			return err
		}
		if o.Version.HMACKey == nil {
			return ErrHMACNotSupported
		}
		if err := checkUse(o, UsageMACGenerate, "MAC generate"); err != nil {
			return err
		}
		var err error
		sum, err = o.Version.HMACKey.Sum(msg)
		return err
	})
	return sum, err
}

// With calls fn with the cached object for name. The object and its key
// material are only valid during fn and must not be modified; fn may be
// called again if the cache evicted the object while fn was using it. A
// Destroyed object is reported as ErrKeyNotFound. For a VersionRef, fn
// sees that version of the key (Object.Selected).
func (s *Service) With(ctx context.Context, name string, fn func(*Object) error) error {
	if IsReserved(name) {
		return ErrKeyNotFound
	}
	if key, n, ok := ParseVersionRef(name); ok {
		return s.use(ctx, key, n, fn)
	}
	return s.use(ctx, name, 0, fn)
}

// use is With for key name, not a VersionRef, and with n > 0 for the
// view of its version n. A number above the newest version the cached
// key holds reads the key again once. fn is only called, never kept:
// callers' closures stay on their stack.
func (s *Service) use(ctx context.Context, name string, n uint32, fn func(*Object) error) error {
	for reloaded := false; ; reloaded = true {
		o, err := s.useCached(ctx, name, n, !reloaded, fn)
		if errors.Is(err, errStale) && o != nil {
			s.refresh(name, o)
			continue
		}
		return err
	}
}

// useCached is one round of use: it returns errStale and the object to
// refresh if mayReload and version n is above the newest cached one.
func (s *Service) useCached(ctx context.Context, name string, n uint32, mayReload bool, fn func(*Object) error) (*Object, error) {
	for attempt := 0; ; attempt++ {
		o, err := s.cache.Load(ctx, name, s.loader)
		if err != nil {
			return nil, err
		}
		if o.Meta.State == StateDestroyed {
			return nil, ErrKeyNotFound
		}
		o = s.withDates(o)
		target := o
		if n > 0 {
			v := o.At(n)
			if v == nil {
				if n > o.Current() && mayReload {
					return o, errStale
				}
				return nil, fmt.Errorf("keys: key '%s' version %d: %w", name, n, ErrVersionNotFound)
			}
			target = o.view(v)
		}
		err = fn(target)
		if errors.Is(err, crypto.ErrKeyDestroyed) && attempt < 3 {
			continue
		}
		return nil, err
	}
}

// Update reads the object under name from the keystore (not the cache),
// calls fn to change it, and writes it back with compare-and-swap,
// retrying if another writer got there first. fn may change o.Meta and
// o.Version; o.Version is destroyed after Update returns. A Destroyed
// object is reported as ErrKeyNotFound.
//
// A change that grows the stored key may use the keystore's
// MaxValueSize minus LifecycleHeadroom; one made with the Lifecycle
// option may use the headroom too (see Lifecycle).
//
// On a store whose Replace is not linearizable across nodes, Update
// holds the key's lease (see lease.go) while it reads and writes, and
// returns ErrKeyBusy if another node held it until ctx ended, or if the
// lease ran out before the change was written.
func (s *Service) Update(ctx context.Context, name string, fn func(o *Object) error, opts ...UpdateOption) error {
	if _, _, ok := ParseVersionRef(name); ok || IsReserved(name) {
		return ErrKeyNotFound // versions change through the key's own name
	}
	var cfg updateConfig
	for _, opt := range opts {
		opt.apply(&cfg)
	}
	lctx, release, err := s.lease(ctx, name)
	if err != nil {
		return err
	}
	settled := true // no write of ours can still land
	defer func() { release(settled) }()
	err = s.update(lctx, name, fn, cfg, &settled)
	return s.leaseEnded(ctx, lctx, name, err)
}

func (s *Service) update(ctx context.Context, name string, fn func(o *Object) error, cfg updateConfig, settled *bool) error {
	for attempt := 0; ; attempt++ {
		old, err := s.store.Get(ctx, name)
		if err != nil {
			return err
		}
		o, err := decode(name, old)
		if err != nil {
			clear(old)
			return err
		}
		if o.Meta.State == StateDestroyed {
			o.Version.Destroy()
			clear(old)
			return ErrKeyNotFound
		}
		// fn sees, and the write stores, the state the dates have
		// brought the key to (dates.go).
		o.clock = s.clock
		o.Meta.State = o.datesOf(o.Version).effective(o.Meta.State, s.now())
		value, err := func() ([]byte, error) {
			// fn may replace o.Version (Rotate does): wipe what it holds
			// at the end, which includes the versions it replaced.
			defer func() { o.Version.Destroy() }()
			before, err := usageOf(o.Meta)
			if err != nil {
				return nil, err
			}
			beforeMeta := o.Meta
			if err := fn(o); err != nil {
				return nil, err
			}
			pinUsage(beforeMeta, o)
			if err := checkDates(beforeMeta, o.Meta, o); err != nil {
				return nil, err
			}
			after, err := usageOf(o.Meta)
			if err != nil {
				return nil, err
			}
			if err := checkGrowth(before, after); err != nil {
				return nil, err
			}
			if err := setMeta(o.Version, o.Meta); err != nil {
				return nil, err
			}
			value, err := o.Version.MarshalText()
			if err != nil {
				return nil, err
			}
			if err := s.checkUpdate(len(old), value, cfg.lifecycle); err != nil {
				clear(value)
				return nil, err
			}
			return value, nil
		}()
		if err == nil && ctx.Err() != nil {
			err = context.Cause(ctx) // the lease may expire before the write lands
		}
		if err != nil {
			clear(old)
			clear(value)
			return err
		}
		err = s.store.Replace(ctx, name, old, value)
		*settled = writeSettled(err)
		clear(old)
		clear(value)
		if errors.Is(err, keystore.ErrConflict) && attempt < 10 {
			continue
		}
		s.cache.Delete(name)
		s.changed(name)
		return s.storeError(err)
	}
}

func (s *Service) load(ctx context.Context, name string) (*Object, error) {
	value, err := s.store.Get(ctx, name)
	if err != nil {
		return nil, err
	}
	defer clear(value)
	o, err := decode(name, value)
	if err == nil {
		o.clock = s.clock
		o.memo = new(memo) // the object goes to the cache, as it is
	}
	return o, err
}

func decode(name string, value []byte) (*Object, error) {
	v, err := crypto.ParseKeyVersion(value)
	if err != nil {
		return nil, fmt.Errorf("keys: key '%s': %w", name, err)
	}
	o := &Object{Name: name, Version: v, loaded: time.Now()}
	if len(v.Meta) > 0 {
		if err := json.Unmarshal(v.Meta, &o.Meta); err != nil {
			v.Destroy()
			return nil, fmt.Errorf("keys: key '%s': malformed metadata: %w", name, err)
		}
	}
	return o, nil
}

func setMeta(v *crypto.KeyVersion, meta Metadata) error {
	if meta.isZero() {
		v.Meta = nil
		return nil
	}
	b, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("keys: failed to encode metadata: %w", err)
	}
	v.Meta = b
	return nil
}
