// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

//go:build cgo

package pkcs11

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/kesbridge/kes/keystore"
	"github.com/miekg/pkcs11"
)

const storeName = "pkcs11"

const defaultPoolSize = 4

func (c *Config) validate() error {
	switch {
	case c.Module == "":
		return errors.New("pkcs11: no module path")
	case c.TokenLabel == "":
		return errors.New("pkcs11: no token label")
	case c.PIN.IsZero():
		return errors.New("pkcs11: no PIN")
	case c.RootKeyLabel == "":
		return errors.New("pkcs11: no root key label")
	case c.PoolSize < 0:
		return errors.New("pkcs11: pool size is negative")
	}
	for _, label := range c.PreviousRootKeyLabels {
		switch label {
		case "":
			return errors.New("pkcs11: empty previous root key label")
		case c.RootKeyLabel:
			return fmt.Errorf("pkcs11: previous root key '%s' is the root key", label)
		}
	}
	return nil
}

var (
	errWrongPIN        = errors.New("pkcs11: login failed: wrong PIN")
	errPINLocked       = errors.New("pkcs11: login failed: PIN locked")
	errRootKeyNotFound = errors.New("pkcs11: root key not found")
	errClosed          = fmt.Errorf("pkcs11: %w", keystore.ErrClosed)
)

// tokenNotFoundError reports that no present token carries the label.
type tokenNotFoundError struct{ label string }

func (e *tokenNotFoundError) Error() string {
	return fmt.Sprintf("pkcs11: token '%s' not found", e.label)
}

// module is one loaded PKCS#11 library. A library is initialised once per
// process, and C_Finalize or C_Logout by one user affect every user, so
// all Sealers and Stores on the same module path share one module.
type module struct {
	path string
	ctx  *pkcs11.Ctx

	// use is read-locked around every call into the library and
	// write-locked to re-initialise it, so that C_Finalize never runs
	// while another goroutine is inside the library.
	use sync.RWMutex

	// gen counts initialisations. Sessions and object handles from an
	// older generation are gone.
	gen atomic.Uint64

	// objects is write-locked around operations that create or destroy
	// token objects and read-locked around all others. SoftHSM2 2.6.1
	// fails C_CreateObject now and then with CKR_GENERAL_ERROR or
	// CKR_TEMPLATE_INCONSISTENT while other threads use the token
	// (SoftHSMv2 issue #573); writes are rare enough that excluding
	// everything else meanwhile costs little.
	objects sync.RWMutex

	mu     sync.Mutex // guards refs and tokens
	refs   int
	tokens map[string]int // users per token label, to log out with the last one
}

var modules struct {
	sync.Mutex
	m map[string]*module
}

// openModule loads and initialises the library at path, or takes another
// reference to it. The library stays loaded for the life of the process:
// unloading libraries that register exit handlers (OpenSSL) is unsafe.
func openModule(path, token string) (*module, error) {
	modules.Lock()
	defer modules.Unlock()
	if modules.m == nil {
		modules.m = map[string]*module{}
	}
	// Two paths to one library (a symlink, as in Debian's SoftHSM2
	// package) load it once: they must share one module.
	key := path
	if real, err := filepath.EvalSymlinks(path); err == nil {
		key = real
	}
	m := modules.m[key]
	if m == nil {
		ctx := pkcs11.New(path)
		if ctx == nil {
			return nil, fmt.Errorf("pkcs11: cannot load module '%s'", path)
		}
		m = &module{path: path, ctx: ctx, tokens: map[string]int{}}
		modules.m[key] = m
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.refs == 0 {
		if err := m.ctx.Initialize(); err != nil && !hasCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
			return nil, fmt.Errorf("pkcs11: cannot initialise module '%s': %w", path, err)
		}
		m.gen.Add(1)
	}
	m.refs++
	m.tokens[token]++
	return m, nil
}

// release drops a reference to the module and to token, and finalises
// the library with its last user.
func (m *module) release(token string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tokens[token]--
	if m.tokens[token] == 0 {
		delete(m.tokens, token)
	}
	m.refs--
	if m.refs == 0 {
		m.use.Lock()
		_ = m.ctx.Finalize() // nothing to do about a failure here
		m.use.Unlock()
	}
}

func (m *module) lastTokenUser(token string) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.tokens[token] == 1 && m.refs > 1
}

// reinit finalises and initialises the library again, unless somebody
// else did so since generation seen. It returns the current generation.
func (m *module) reinit(seen uint64) (uint64, error) {
	m.use.Lock()
	defer m.use.Unlock()
	if g := m.gen.Load(); g != seen {
		return g, nil
	}
	_ = m.ctx.Finalize() // usually CKR_CRYPTOKI_NOT_INITIALIZED already
	if err := m.ctx.Initialize(); err != nil && !hasCode(err, pkcs11.CKR_CRYPTOKI_ALREADY_INITIALIZED) {
		return seen, fmt.Errorf("C_Initialize: %w", err)
	}
	return m.gen.Add(1), nil
}

// hsm is a logged-in connection to one token with a session pool and the
// root key. It is shared by the Sealer and the Store built on it.
type hsm struct {
	mod       *module
	token     string
	pin       keystore.Secret // not a string: fmt would print it with the Sealer
	rootLabel string
	prev      []string // previous root key labels, newest first
	log       *slog.Logger
	sem       chan struct{} // one slot per session in use

	// recovering is write-locked for a whole recovery and read-locked
	// while opening a session, so that nobody opens one on a library
	// that is being re-initialised and then fails for good.
	recovering sync.RWMutex
	done       chan struct{} // closed by Close, to stop waiting for a slot

	mu     sync.Mutex
	closed bool
	epoch  uint64 // bumped by every recovery; sessions of older epochs are dropped
	modGen uint64 // module generation that slot and the sessions belong to
	slot   uint
	slotOK bool
	root   pkcs11.ObjectHandle
	rootOK bool
	idle   []pkcs11.SessionHandle
}

type session struct {
	h     pkcs11.SessionHandle
	epoch uint64
}

// openHSM connects to the token, logs in and finds (or creates) the root
// key. Errors are plain, for an operator reading a startup failure.
func openHSM(ctx context.Context, cfg Config) (*hsm, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	size := cfg.PoolSize
	if size == 0 {
		size = defaultPoolSize
	}
	mod, err := openModule(cfg.Module, cfg.TokenLabel)
	if err != nil {
		return nil, err
	}
	h := &hsm{
		mod:       mod,
		token:     cfg.TokenLabel,
		pin:       cfg.PIN,
		rootLabel: cfg.RootKeyLabel,
		prev:      slices.Clone(cfg.PreviousRootKeyLabels),
		log:       log,
		sem:       make(chan struct{}, size),
		done:      make(chan struct{}),
		modGen:    mod.gen.Load(),
	}
	err = h.doRaw(ctx, cfg.CreateRootKey, func(sh pkcs11.SessionHandle) error {
		root, err := h.findRootKey(sh)
		if errors.Is(err, errRootKeyNotFound) && cfg.CreateRootKey {
			root, err = h.createRootKey(sh)
			if err == nil {
				log.InfoContext(ctx, "pkcs11: created root key", "token", h.token, "root_key", h.rootLabel)
			}
		}
		if err != nil {
			return err
		}
		h.setRoot(root)
		return nil
	})
	if err != nil {
		h.Close()
		var tnf *tokenNotFoundError
		switch {
		case errors.As(err, &tnf):
			return nil, tnf
		case errors.Is(err, errWrongPIN):
			return nil, errWrongPIN
		case errors.Is(err, errPINLocked):
			return nil, errPINLocked
		case errors.Is(err, errRootKeyNotFound):
			return nil, fmt.Errorf("pkcs11: root key '%s' not found on token '%s'", h.rootLabel, h.token)
		}
		return nil, err
	}
	return h, nil
}

func (h *hsm) String() string {
	return fmt.Sprintf("PKCS#11: token %s, root key %s", h.token, h.rootLabel)
}

// do runs fn with a pooled, logged-in session. When fn or getting the
// session fails because the token, the module or the login went away, do
// recovers and runs fn once more. fn must be safe to repeat.
func (h *hsm) do(ctx context.Context, fn func(sh pkcs11.SessionHandle) error) error {
	return classify(h.doRaw(ctx, false, fn))
}

// doWrite is do for operations that create or destroy token objects.
func (h *hsm) doWrite(ctx context.Context, fn func(sh pkcs11.SessionHandle) error) error {
	return classify(h.doRaw(ctx, true, fn))
}

// doRaw is do without classify, for callers that report errors
// differently (the constructors).
func (h *hsm) doRaw(ctx context.Context, write bool, fn func(sh pkcs11.SessionHandle) error) error {
	for attempt := 0; ; attempt++ {
		s, err := h.acquire(ctx)
		if err == nil {
			if write {
				h.mod.objects.Lock()
			} else {
				h.mod.objects.RLock()
			}
			h.mod.use.RLock()
			err = fn(s.h)
			if hasCode(err, pkcs11.CKR_USER_NOT_LOGGED_IN) {
				// Somebody logged out underneath; the session itself
				// is fine and one login serves all sessions.
				if err = h.login(s.h); err == nil {
					err = fn(s.h)
				}
			}
			h.mod.use.RUnlock()
			if write {
				h.mod.objects.Unlock()
			} else {
				h.mod.objects.RUnlock()
			}
			h.release(s, err)
			if err == nil {
				return nil
			}
		}
		if attempt == 0 && recoverable(err) {
			h.log.WarnContext(ctx, "pkcs11: recovering from token error", "token", h.token, "err", err)
			if rerr := h.recover(s.epoch, err); rerr != nil {
				if errors.Is(rerr, errClosed) {
					return rerr
				}
				return &keystore.UnreachableError{Store: storeName, Err: rerr}
			}
			continue
		}
		return err
	}
}

// acquire returns an idle session or opens and logs in a new one, waiting
// for a free pool slot until ctx ends. The returned epoch is valid even
// when err is not nil.
func (h *hsm) acquire(ctx context.Context) (session, error) {
	select {
	case h.sem <- struct{}{}:
	default:
		select {
		case h.sem <- struct{}{}:
		case <-h.done:
			return session{}, errClosed
		case <-ctx.Done():
			return session{epoch: h.currentEpoch()}, ctx.Err()
		}
	}
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		<-h.sem
		return session{}, errClosed
	}
	if g := h.mod.gen.Load(); g != h.modGen {
		// Another user of the module re-initialised it: our sessions
		// and handles are gone.
		h.dropLocked()
		h.modGen = g
	}
	s := session{epoch: h.epoch}
	if n := len(h.idle); n > 0 {
		s.h = h.idle[n-1]
		h.idle = h.idle[:n-1]
		h.mu.Unlock()
		return s, nil
	}
	h.mu.Unlock()

	h.recovering.RLock()
	defer h.recovering.RUnlock()
	h.mu.Lock()
	slot, slotOK := h.slot, h.slotOK
	s.epoch = h.epoch
	h.mu.Unlock()
	h.mod.use.RLock()
	defer h.mod.use.RUnlock()
	var err error
	if !slotOK {
		if slot, err = h.findSlot(); err != nil {
			<-h.sem
			return s, err
		}
		h.mu.Lock()
		if h.epoch == s.epoch {
			h.slot, h.slotOK = slot, true
		}
		h.mu.Unlock()
	}
	sh, err := h.mod.ctx.OpenSession(slot, pkcs11.CKF_SERIAL_SESSION|pkcs11.CKF_RW_SESSION)
	if err != nil {
		<-h.sem
		return s, fmt.Errorf("C_OpenSession: %w", err)
	}
	if err := h.login(sh); err != nil {
		_ = h.mod.ctx.CloseSession(sh)
		<-h.sem
		return s, err
	}
	s.h = sh
	return s, nil
}

// release returns s to the pool when it is still good, and frees its slot.
func (h *hsm) release(s session, opErr error) {
	h.mu.Lock()
	current := s.epoch == h.epoch
	keep := current && !h.closed && sessionReusable(opErr)
	if keep {
		h.idle = append(h.idle, s.h)
	}
	h.mu.Unlock()
	// A session from an older epoch is not closed: its handle may
	// already belong to somebody else after a re-initialisation.
	if !keep && current && !hasCode(opErr, sessionGone...) {
		h.mod.use.RLock()
		_ = h.mod.ctx.CloseSession(s.h)
		h.mod.use.RUnlock()
	}
	<-h.sem
}

func (h *hsm) isClosed() bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.closed
}

func (h *hsm) currentEpoch() uint64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.epoch
}

// dropLocked forgets the pool, slot and root key handle without closing
// anything: after a failure their handles are invalid or reused.
func (h *hsm) dropLocked() {
	h.epoch++
	h.idle = nil
	h.slotOK = false
	h.rootOK = false
}

// recover prepares a retry after err: it refreshes the root key handle,
// or drops the sessions and, if the library itself failed, re-initialises
// it. Nothing happens if another goroutine recovered since epoch.
func (h *hsm) recover(epoch uint64, err error) error {
	h.recovering.Lock()
	defer h.recovering.Unlock()
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return errClosed
	}
	if h.epoch != epoch {
		h.mu.Unlock()
		return nil
	}
	if hasCode(err, pkcs11.CKR_KEY_HANDLE_INVALID) {
		h.rootOK = false // the root key was replaced on the token
		h.mu.Unlock()
		return nil
	}
	h.dropLocked()
	gen := h.modGen
	h.mu.Unlock()
	if !needsReinit(err) {
		return nil
	}
	g, rerr := h.mod.reinit(gen)
	if rerr != nil {
		return rerr
	}
	h.mu.Lock()
	h.modGen = g
	h.mu.Unlock()
	return nil
}

// findSlot finds the token by label. Slot IDs are not stable (SoftHSM2
// derives them from the token serial; hardware reorders them), labels are.
func (h *hsm) findSlot() (uint, error) {
	slots, err := h.mod.ctx.GetSlotList(true)
	if err != nil {
		return 0, fmt.Errorf("C_GetSlotList: %w", err)
	}
	var found []uint
	for _, slot := range slots {
		info, err := h.mod.ctx.GetTokenInfo(slot)
		if err != nil {
			continue // removed between the two calls
		}
		if info.Label == h.token {
			found = append(found, slot)
		}
	}
	switch len(found) {
	case 0:
		return 0, &tokenNotFoundError{label: h.token}
	case 1:
		return found[0], nil
	default:
		return 0, fmt.Errorf("pkcs11: more than one token labelled '%s'", h.token)
	}
}

func (h *hsm) login(sh pkcs11.SessionHandle) error {
	err := h.mod.ctx.Login(sh, pkcs11.CKU_USER, h.pin.Reveal())
	switch {
	case err == nil, hasCode(err, pkcs11.CKR_USER_ALREADY_LOGGED_IN):
		return nil
	case hasCode(err, pkcs11.CKR_PIN_INCORRECT):
		return errWrongPIN
	case hasCode(err, pkcs11.CKR_PIN_LOCKED):
		return errPINLocked
	}
	return fmt.Errorf("C_Login: %w", err)
}

// Close waits for operations in flight, closes the sessions, logs out
// when it is the last user of the token and finalises the library when it
// is the last user of it.
func (h *hsm) Close() error {
	h.mu.Lock()
	if h.closed {
		h.mu.Unlock()
		return nil
	}
	h.closed = true
	close(h.done)
	h.mu.Unlock()
	for range cap(h.sem) {
		h.sem <- struct{}{}
	}
	h.mu.Lock()
	idle := h.idle
	h.idle = nil
	current := h.modGen == h.mod.gen.Load()
	h.mu.Unlock()
	if current {
		h.mod.use.RLock()
		if len(idle) > 0 && h.mod.lastTokenUser(h.token) {
			_ = h.mod.ctx.Logout(idle[0])
		}
		for _, sh := range idle {
			_ = h.mod.ctx.CloseSession(sh)
		}
		h.mod.use.RUnlock()
	}
	h.mod.release(h.token)
	return nil
}

// find returns up to max (0: all) objects matching tmpl. An empty result
// in a session that is not logged in is CKR_USER_NOT_LOGGED_IN: private
// objects are invisible then, and "not found" would be a lie.
func (h *hsm) find(sh pkcs11.SessionHandle, tmpl []*pkcs11.Attribute, max int) ([]pkcs11.ObjectHandle, error) {
	if err := h.mod.ctx.FindObjectsInit(sh, tmpl); err != nil {
		return nil, fmt.Errorf("C_FindObjectsInit: %w", err)
	}
	var all []pkcs11.ObjectHandle
	for max == 0 || len(all) < max {
		objs, _, err := h.mod.ctx.FindObjects(sh, 64)
		if err != nil {
			_ = h.mod.ctx.FindObjectsFinal(sh)
			return nil, fmt.Errorf("C_FindObjects: %w", err)
		}
		if len(objs) == 0 {
			break
		}
		all = append(all, objs...)
	}
	if err := h.mod.ctx.FindObjectsFinal(sh); err != nil {
		return nil, fmt.Errorf("C_FindObjectsFinal: %w", err)
	}
	if len(all) == 0 {
		info, err := h.mod.ctx.GetSessionInfo(sh)
		if err != nil {
			return nil, fmt.Errorf("C_GetSessionInfo: %w", err)
		}
		if info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
			return nil, pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)
		}
	}
	return all, nil
}

func (h *hsm) setRoot(root pkcs11.ObjectHandle) {
	h.mu.Lock()
	h.root, h.rootOK = root, true
	h.mu.Unlock()
}

// rootKey returns the cached root key handle or looks it up.
func (h *hsm) rootKey(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	h.mu.Lock()
	root, ok, epoch := h.root, h.rootOK, h.epoch
	h.mu.Unlock()
	if ok {
		return root, nil
	}
	root, err := h.findRootKey(sh)
	if err != nil {
		return 0, err
	}
	h.mu.Lock()
	if h.epoch == epoch {
		h.root, h.rootOK = root, true
	}
	h.mu.Unlock()
	return root, nil
}

func (h *hsm) findRootKey(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	return h.findKey(sh, h.rootLabel)
}

// findKey finds the one AES-256 key labelled label: the root key or a
// previous one.
func (h *hsm) findKey(sh pkcs11.SessionHandle, label string) (pkcs11.ObjectHandle, error) {
	objs, err := h.find(sh, []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_LABEL, label),
	}, 2)
	if err != nil {
		return 0, err
	}
	switch len(objs) {
	case 0:
		return 0, errRootKeyNotFound
	case 1:
	default:
		return 0, fmt.Errorf("pkcs11: more than one root key labelled '%s'", label)
	}
	attrs, err := h.mod.ctx.GetAttributeValue(sh, objs[0], []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, nil),
	})
	if err != nil {
		return 0, fmt.Errorf("C_GetAttributeValue: %w", err)
	}
	if n, ok := ulong(attrs[0].Value); !ok || n != 32 {
		return 0, fmt.Errorf("pkcs11: root key '%s' is not an AES-256 key", label)
	}
	return objs[0], nil
}

// createRootKey generates the root key inside the token. It can be used
// but never read: sensitive, not extractable, and only for encryption.
func (h *hsm) createRootKey(sh pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	root, err := h.mod.ctx.GenerateKey(sh,
		[]*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		[]*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, true),
			pkcs11.NewAttribute(pkcs11.CKA_PRIVATE, true),
			pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
			pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
			pkcs11.NewAttribute(pkcs11.CKA_ENCRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_DECRYPT, true),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, false),
			pkcs11.NewAttribute(pkcs11.CKA_LABEL, h.rootLabel),
			pkcs11.NewAttribute(pkcs11.CKA_ID, []byte(h.rootLabel)),
		})
	if err != nil {
		return 0, fmt.Errorf("pkcs11: cannot create root key: C_GenerateKey: %w", err)
	}
	return root, nil
}

func gcm(iv []byte, name string) (*pkcs11.GCMParams, []*pkcs11.Mechanism) {
	p := pkcs11.NewGCMParams(iv, []byte(name), tagSize*8)
	return p, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p)}
}

// seal encrypts plaintext under the root key with name as associated data.
func (h *hsm) seal(sh pkcs11.SessionHandle, name string, plaintext []byte) ([]byte, error) {
	root, err := h.rootKey(sh)
	if err != nil {
		return nil, err
	}
	iv := make([]byte, ivSize)
	rand.Read(iv)
	p, mech := gcm(iv, name)
	defer p.Free()
	if err := h.mod.ctx.EncryptInit(sh, mech, root); err != nil {
		return nil, fmt.Errorf("C_EncryptInit: %w", h.keyError(sh, err))
	}
	ciphertext, err := h.mod.ctx.Encrypt(sh, plaintext)
	if err != nil {
		return nil, fmt.Errorf("C_Encrypt: %w", err)
	}
	if len(ciphertext) != len(plaintext)+tagSize {
		return nil, fmt.Errorf("pkcs11: C_Encrypt returned %d bytes for %d, want a 16-byte tag", len(ciphertext), len(plaintext))
	}
	// Some HSMs ignore the IV they are given and write back their own.
	if used := p.IV(); len(used) == ivSize {
		iv = used
	}
	return marshalBlob(iv, ciphertext), nil
}

// unseal reverses seal, with the root key or a previous one (see
// unsealAny).
func (h *hsm) unseal(sh pkcs11.SessionHandle, name string, sealed []byte) ([]byte, error) {
	plaintext, _, err := h.unsealAny(sh, name, sealed)
	return plaintext, err
}

// unsealAny reverses seal. A value the root key does not open is tried
// with each previous root key; old reports whether one of them opened it,
// so that the caller can seal it again under the root key. A value no
// key opens is ErrNotAuthentic.
func (h *hsm) unsealAny(sh pkcs11.SessionHandle, name string, sealed []byte) (plaintext []byte, old bool, err error) {
	iv, ciphertext, err := parseBlob(sealed)
	if err != nil {
		return nil, false, err
	}
	root, err := h.rootKey(sh)
	if err != nil {
		return nil, false, err
	}
	plaintext, err = h.decrypt(sh, root, iv, name, ciphertext)
	switch {
	case err == nil:
		return plaintext, false, nil
	case !errors.Is(err, ErrNotAuthentic):
		return nil, false, h.rootError(sh, err)
	}
	for _, label := range h.prev {
		key, kerr := h.findKey(sh, label)
		if errors.Is(kerr, errRootKeyNotFound) {
			continue // already removed from the token
		}
		if kerr != nil {
			return nil, false, kerr
		}
		plaintext, kerr = h.decrypt(sh, key, iv, name, ciphertext)
		if errors.Is(kerr, ErrNotAuthentic) {
			continue
		}
		if kerr != nil {
			return nil, false, kerr
		}
		return plaintext, true, nil
	}
	return nil, false, ErrNotAuthentic
}

// decryptInitError marks a C_DecryptInit failure, which for the root key
// may mean a stale handle (see keyError).
type decryptInitError struct{ err error }

func (e *decryptInitError) Error() string { return "C_DecryptInit: " + e.err.Error() }
func (e *decryptInitError) Unwrap() error { return e.err }

// rootError explains a C_DecryptInit failure with the root key handle.
func (h *hsm) rootError(sh pkcs11.SessionHandle, err error) error {
	var di *decryptInitError
	if errors.As(err, &di) {
		return fmt.Errorf("C_DecryptInit: %w", h.keyError(sh, di.err))
	}
	return err
}

// decrypt opens one sealed value with key. A failed tag check is
// ErrNotAuthentic: SoftHSM2 reports it as CKR_GENERAL_ERROR, the standard
// says CKR_ENCRYPTED_DATA_INVALID.
func (h *hsm) decrypt(sh pkcs11.SessionHandle, key pkcs11.ObjectHandle, iv []byte, name string, ciphertext []byte) ([]byte, error) {
	p, mech := gcm(iv, name)
	defer p.Free()
	if err := h.mod.ctx.DecryptInit(sh, mech, key); err != nil {
		return nil, &decryptInitError{err: err}
	}
	plaintext, err := h.mod.ctx.Decrypt(sh, ciphertext)
	if hasCode(err, pkcs11.CKR_GENERAL_ERROR, pkcs11.CKR_ENCRYPTED_DATA_INVALID, pkcs11.CKR_ENCRYPTED_DATA_LEN_RANGE) {
		return nil, ErrNotAuthentic
	}
	if err != nil {
		return nil, fmt.Errorf("C_Decrypt: %w", err)
	}
	return plaintext, nil
}

// keyError explains a failure to use the cached root key handle. After a
// logout the private root key is invisible and SoftHSM2 answers
// CKR_OBJECT_HANDLE_INVALID; after the key was replaced the handle is
// stale. The first needs a login, the second a fresh lookup.
func (h *hsm) keyError(sh pkcs11.SessionHandle, err error) error {
	if !hasCode(err, pkcs11.CKR_KEY_HANDLE_INVALID, pkcs11.CKR_OBJECT_HANDLE_INVALID) {
		return err
	}
	if info, ierr := h.mod.ctx.GetSessionInfo(sh); ierr == nil &&
		info.State != pkcs11.CKS_RW_USER_FUNCTIONS && info.State != pkcs11.CKS_RO_USER_FUNCTIONS {
		return pkcs11.Error(pkcs11.CKR_USER_NOT_LOGGED_IN)
	}
	return pkcs11.Error(pkcs11.CKR_KEY_HANDLE_INVALID)
}

// Codes after which the session handle is invalid.
var sessionGone = []uint{
	pkcs11.CKR_SESSION_HANDLE_INVALID,
	pkcs11.CKR_SESSION_CLOSED,
	pkcs11.CKR_DEVICE_REMOVED,
	pkcs11.CKR_TOKEN_NOT_PRESENT,
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
}

// Codes after which only a fresh C_Initialize helps.
var libraryGone = []uint{
	pkcs11.CKR_CRYPTOKI_NOT_INITIALIZED,
	pkcs11.CKR_DEVICE_ERROR,
	pkcs11.CKR_DEVICE_REMOVED,
	pkcs11.CKR_TOKEN_NOT_PRESENT,
	pkcs11.CKR_TOKEN_NOT_RECOGNIZED,
	pkcs11.CKR_SLOT_ID_INVALID,
}

func recoverable(err error) bool {
	var tnf *tokenNotFoundError
	return hasCode(err, sessionGone...) || hasCode(err, libraryGone...) ||
		hasCode(err, pkcs11.CKR_USER_NOT_LOGGED_IN, pkcs11.CKR_KEY_HANDLE_INVALID) ||
		errors.As(err, &tnf)
}

func needsReinit(err error) bool {
	var tnf *tokenNotFoundError
	return hasCode(err, libraryGone...) || errors.As(err, &tnf)
}

// sessionReusable reports whether a session may go back to the pool after
// an operation ended with err: after errors of our own making, yes; after
// an error from the library, the session may be in an odd state.
func sessionReusable(err error) bool {
	return err == nil || errors.Is(err, ErrNotAuthentic) || errors.Is(err, errMalformed) ||
		errors.Is(err, errBlobVersion) || errors.Is(err, keystore.ErrKeyNotFound) ||
		errors.Is(err, keystore.ErrKeyExists) || errors.Is(err, keystore.ErrConflict) ||
		errors.Is(err, errRootKeyNotFound)
}

// classify turns an error at the end of an operation into what callers
// of a keystore branch on.
func classify(err error) error {
	var (
		pe  pkcs11.Error
		tnf *tokenNotFoundError
	)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, errRootKeyNotFound):
		return &keystore.UnavailableError{Store: storeName, Reason: "root key not found"}
	case errors.Is(err, errWrongPIN):
		return &keystore.UnavailableError{Store: storeName, Reason: "login failed: wrong PIN"}
	case errors.Is(err, errPINLocked):
		return &keystore.UnavailableError{Store: storeName, Reason: "login failed: PIN locked"}
	case errors.Is(err, context.DeadlineExceeded):
		return &keystore.UnreachableError{Store: storeName, Err: fmt.Errorf("waiting for a session: %w", err)}
	case errors.Is(err, context.Canceled):
		return fmt.Errorf("pkcs11: %w", err)
	case errors.As(err, &tnf):
		return &keystore.UnreachableError{Store: storeName, Err: err}
	case errors.As(err, &pe):
		if recoverable(err) || hasCode(err, pkcs11.CKR_DEVICE_MEMORY, pkcs11.CKR_FUNCTION_FAILED) {
			return &keystore.UnreachableError{Store: storeName, Err: err}
		}
		return fmt.Errorf("pkcs11: %w", err)
	}
	return err
}

func hasCode(err error, codes ...uint) bool {
	var pe pkcs11.Error
	if !errors.As(err, &pe) {
		return false
	}
	for _, c := range codes {
		if uint(pe) == c {
			return true
		}
	}
	return false
}

// ulong decodes a CK_ULONG attribute value (native byte order).
func ulong(b []byte) (uint64, bool) {
	switch len(b) {
	case 8:
		return binary.NativeEndian.Uint64(b), true
	case 4:
		return uint64(binary.NativeEndian.Uint32(b)), true
	}
	return 0, false
}
