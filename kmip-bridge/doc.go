// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package kmipbridge serves the keys of the configured keystore over KMIP
// 1.0–1.4 (binary TTLV over mutual TLS, normally on TCP port 5696).
//
// A KMIP managed object is a key of the keystore: its Unique Identifier is
// the key name. Keys created over the KES API appear as Active AES (or
// ChaCha20) 256-bit symmetric keys whose attributes are synthesised from
// the stored key; objects created or registered over KMIP carry their
// lifecycle state in keys.Metadata.State and every other attribute in
// keys.Metadata.KMIP, changed only through keys.Service.Update, so all
// nodes sharing a keystore see the same objects.
//
// # Operations
//
// Discover Versions, Query, Create, Register, Get, Get Attributes, Get
// Attribute List, Add Attribute, Modify Attribute, Delete Attribute,
// Locate, Activate, Revoke, Destroy, Re-key, Derive Key, Encrypt, Decrypt,
// MAC and MAC Verify are implemented; Get takes a Key Wrapping
// Specification and Register a wrapped Key Block (see Key wrapping). Every other
// operation answers Operation Not Supported for its batch item only. The
// Batch Error Continuation Options Continue and Stop (the default) are
// honoured; Undo is refused with Feature Not Supported, since the keystore
// has no transactions. Unique Batch Item IDs are echoed, and the ID
// placeholder set by Create, Register, Re-key and Locate serves later
// items of the batch that name no object.
//
// # Limits
//
// A request message is at most Config.MaxMessageSize bytes and
// MaxBatchItems batch items; a message over either is refused as a whole
// with Invalid Message before any item runs. A response is at most
// Config.MaxResponseSize bytes (DefaultMaxResponseSize), or the client's
// Maximum Response Size if that is smaller. The limit is kept while the
// response is built: each batch item is charged for its answer as it
// completes, and an item whose answer does not fit in what is left fails
// with Response Too Large, without payload, while the items before it keep
// their answers (under the Stop option the items after it are canceled).
// An item with side effects (Create, Add Attribute, ...) that fails this
// way has still taken effect. A limit too small for even the failure
// answers of all items refuses the message with Response Too Large. Get
// Attributes naming an attribute more than once fails with Invalid
// Message.
//
// # Objects
//
// Create makes AES-128, -192 and -256 keys and HMAC-SHA256/384/512 keys.
// Key material, HMAC keys and Unique Identifiers come from internal/keys
// (keys.Service.CreateKMIP), which reads keys.Config.Rand. Register accepts Symmetric
// Keys (Raw or Transparent Symmetric Key format), Secret Data and Opaque
// Objects. 256-bit AES (and ChaCha20) keys are stored as KES keys with a
// fresh HMAC key, so that once Active they serve the KES API's generate,
// encrypt and decrypt; other material is stored as raw bytes. Get answers
// Raw for symmetric keys unless Transparent Symmetric Key is asked for,
// Opaque for secret data, and Key Format Type Not Supported for any other
// format; key compression is not supported.
//
// # Export and usage
//
// Get returns material only of keys whose material may leave the server
// (keys.Service.Export): keys created over the KES API are not
// extractable, and Get of one answers Permission Denied, "key is not
// extractable: ...", unless the admin allowed it (kes key export-allow, or
// a keys: entry with export: true). Keys a KMIP client creates or
// registers are extractable unless its template sets Extractable false or
// Sensitive true. Every Get that returns material is audited a second
// time as operation "export" (/kmip/export/<uid>). Get Attributes and Get
// Attribute List report the Cryptographic Usage Mask and the KMIP 1.4
// Sensitive, Always Sensitive, Extractable and Never Extractable
// attributes from internal/keys; clients cannot change them. KMIP 1.4
// semantics: a Sensitive key leaves only wrapped (Get with a Key Wrapping
// Specification), a key whose Extractable is false does not leave even
// wrapped, and a KES key leaves, wrapped or not, only if the admin
// allowed export.
//
// # Key wrapping
//
// Get with a Key Wrapping Specification (wrap.go) returns the key
// encrypted by a wrapping key the server holds: Wrapping Method Encrypt;
// Encryption Key Information names the wrapping key and, in its
// Cryptographic Parameters, the Block Cipher Mode: NIST Key Wrap (RFC
// 3394, the default), AES Key Wrap with Padding (RFC 5649) or GCM (the
// server draws a 12-byte IV, returned in IV/Counter/Nonce; no additional
// data; the 16-byte tag follows the ciphertext). Encoding Option No
// Encoding wraps the raw Key Material and keeps the Key Value a structure
// whose Key Material is the wrapped bytes (what PyKMIP reads and sends);
// TTLV Encoding, the default, wraps the TTLV Key Value structure and
// returns the Key Value as a byte string. The wrapping key must be an AES
// key, Active, with the Wrap Key usage bit, not the key itself (Invalid
// Field), and without Encrypt and Decrypt (Permission Denied: KMIP
// Decrypt with the same key, AES-CBC with chosen IVs or GCM, would
// unwrap what it wrapped; keys.ErrWrapSeparation). Every wrapped
// export is audited as operation "export" with AuditEvent.WrappingKey
// set (/kmip/export/<uid>/wrapped-by/<wrapping uid> in the audit log).
// Sensitive protects the key on the wire, not from the client: whoever
// can read the wrapping key's material (a client that registered it, or
// may Get it) can unwrap, so grant /kmip/wrap/<uid> only for wrapping
// keys meant for that client.
//
// Register takes a Key Block with Key Wrapping Data naming a wrapping key
// the server holds (Unwrap Key usage bit, no Encrypt or Decrypt; Active,
// Deactivated or Compromised), unwraps it and stores the plaintext like any registered
// key. A blob that does not verify (tag, integrity check, length) is
// Cryptographic Failure and stores nothing; an unknown wrapping key is
// Item Not Found ("wrapping key not found"); MAC/signature wrapping
// methods and MAC/Signature Key Information are Feature Not Supported, as
// are other block cipher modes, Key Wrap Type As Registered and wrapped
// attributes.
//
// # Derive Key
//
// Derive Key (derive.go) makes a Symmetric Key or Secret Data from one
// base object (a symmetric key or secret data with the Derive Key usage
// bit, Active). The template must give Cryptographic Length (a multiple
// of 8, at most 4096 bits) and, for a symmetric key, Cryptographic
// Algorithm. Methods: PBKDF2 (Salt, Iteration Count 1 to 10,000,000, HMAC
// with the Hashing Algorithm of the Cryptographic Parameters: SHA-1,
// SHA-224, SHA-256, SHA-384 or SHA-512), Hash (the hash of the base
// material, at most the hash's length, no Derivation Data: OASIS
// TC-DERIVEKEY-1-10), HMAC (HMAC of the Derivation Data keyed with the
// base, at most the hash's length; PyKMIP's own server computes HKDF for
// this method instead), NIST800-108-C (SP 800-108 counter
// mode, HMAC as PRF, 32-bit counter before the Derivation Data, which is
// the fixed input data) and Encrypt (AES-CBC of the Derivation Data with
// the Initialization Vector, padding None or PKCS5, the first bytes of
// the ciphertext). The caps of internal/keys apply (keys.MaxDeriveWork,
// keys.DeriveTimeLimit, data and salt of at most keys.MaxDeriveData), and
// keys.MaxDeriveWork also bounds the PBKDF2 work of all the items of one
// message together, so that a batch cannot multiply it. A base whose
// usage mask also allows what the method would be an oracle for is
// refused (Permission Denied): for PBKDF2, HMAC and NIST800-108-C,
// Encrypt, Decrypt, MAC Generate and MAC Verify (a 256-bit AES key's KES
// ciphertexts are keyed with HMAC-SHA256 of it); for Encrypt, Encrypt,
// Decrypt, Wrap Key and Unwrap Key; Hash takes no input and refuses
// nothing. Keys made over the KES API have no Derive Key bit, for the
// same reason: an HMAC derivation of a MinIO master key with a
// ciphertext's IV is that ciphertext's key. The new object is Pre-Active
// unless the template activates it, carries a Derivation Base Object
// Link to the base, and the base gets a Derived Key Link to it (if the
// base cannot take it, the derivation still stands and a warning is
// logged).
//
// Encrypt and Decrypt use an AES key without exporting it: AES-GCM (IV
// 12 to 128 bytes, server-chosen 12 if none; tag 12 to 16 bytes, default
// 16, shorter tags need a 12-byte IV; AAD and tag in the KMIP 1.4 fields)
// and AES-CBC with PKCS5 padding (16-byte IV). A KES key is used as the
// raw AES-256 key (ChaCha20 KES keys are refused). MAC and MAC Verify are
// HMAC: a KES key (or any 256-bit key stored as one) computes
// HMAC-SHA256 with its HMAC key, the MAC the KES API's /v1/key/hmac
// returns; an HMAC key created or registered over KMIP uses its
// algorithm. Each needs its usage-mask bit and a state that allows it
// (internal/keys states the table). A tag or padding that does not verify
// is Cryptographic Failure; bad lengths are Invalid Field; multi-part
// (streaming) requests are Feature Not Supported. Data is bounded by
// Config.MaxMessageSize.
//
// # Authorisation
//
// The client identity is the SHA-256 of its certificate's public key, as on
// the HTTPS API. Each batch item is checked with policy.Set.Authorize
// against one of these paths:
//
//	/kmip/discover-versions
//	/kmip/query
//	/kmip/create
//	/kmip/register
//	/kmip/locate
//	/kmip/get/<uid>
//	/kmip/get-attributes/<uid>
//	/kmip/get-attribute-list/<uid>
//	/kmip/add-attribute/<uid>
//	/kmip/modify-attribute/<uid>
//	/kmip/delete-attribute/<uid>
//	/kmip/activate/<uid>
//	/kmip/revoke/<uid>
//	/kmip/destroy/<uid>
//	/kmip/re-key/<uid>   (the new key needs /kmip/create as well)
//	/kmip/encrypt/<uid>
//	/kmip/decrypt/<uid>
//	/kmip/mac/<uid>
//	/kmip/mac-verify/<uid>
//	/kmip/derive-key/<uid>   (the base; the new key needs /kmip/create as well)
//	/kmip/wrap/<uid>         (the wrapping key of a Get, besides /kmip/get/<key>)
//	/kmip/unwrap/<uid>       (the wrapping key of a Register, besides /kmip/register)
//
// A Username/Password credential in the request header, if present, must
// match one of Config.Users; the request is then authorised with that
// user's policy instead of the certificate identity's. A denied item fails
// with Permission Denied; the connection stays open.
//
// Locate is authorised as a whole with /kmip/locate and returns the
// matching identifiers without a per-object check: grant it only to
// clients that may learn key names. A Locate that filters by Name, Object
// Group or an x- custom attribute (string, integer, boolean or byte
// string value) reads only the candidates of the key service's index
// (keys.Index); any other Locate reads every key of the keystore, so its
// cost grows with the number of keys. The index is built by one full
// scan at the first such Locate and follows this node's own changes at
// once. Changes made on another node show within
// keys.DefaultIndexListPeriod (30 s: a key created or deleted there, found
// by one keystore List) or keys.DefaultIndexRescanPeriod (10 min: an
// attribute changed on an existing key, found by reading every key
// again, one keystore read per key; on KeyControl each List reads the
// whole box). Candidates are always read and checked against every
// filter, so a stale index can miss a key another node just changed but
// never returns one that does not match. The index keeps hashes of the
// terms: about 180 bytes per key with two terms.
//
// # Lifecycle
//
// Create and Register produce Pre-Active objects unless an Activation Date
// in the past is given; a future Activation Date is recorded but does not
// activate the object by itself (Activate does). Activate makes a Pre-Active object Active. Revoke
// with reason Key Compromise or CA Compromise makes it Compromised, with
// any other reason Deactivated. Destroy refuses Active objects with
// Permission Denied and otherwise deletes the key from the keystore, so it
// is gone for the KES API as well. Revoke and Destroy of a key created
// over the KES API are refused with Permission Denied ("key is managed
// over the KES API"): the lifecycle table of internal/keys. The state rules of internal/keys apply
// to both front doors: generate and encrypt need Active, decrypt accepts
// Active, Deactivated and Compromised.
package kmipbridge
