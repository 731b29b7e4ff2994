// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package kmipbridge serves the keys of the configured keystore over KMIP
// 1.0–1.4, 2.0 and 2.1 (binary TTLV over mutual TLS, normally on TCP port
// 5696).
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
// MAC, MAC Verify, Create Key Pair, Sign and Signature Verify are
// implemented, and at KMIP 2.x Set Attribute and Adjust Attribute (Re-key
// Key Pair is not); Get takes a Key Wrapping Specification and Register a
// wrapped Key Block (see Key wrapping). Every other
// operation answers Operation Not Supported for its batch item only. The
// Batch Error Continuation Options Continue and Stop (the default) are
// honoured; Undo is refused with Feature Not Supported, since the keystore
// has no transactions. Unique Batch Item IDs are echoed, and the ID
// placeholder set by Create, Create Key Pair (the private key),
// Register, Re-key and Locate serves later items of the batch that name
// no object.
//
// # KMIP 2.0 and 2.1
//
// Discover Versions answers 2.1, 2.0, 1.4, 1.3, 1.2, 1.1 and 1.0, in that
// order of preference: all of them for an empty request, otherwise the
// versions the client listed, still in the server's order (clients such
// as the ovh kmipclient take the first). It is answered in a message of
// any supported version, 1.0 included. A message of any other version
// (2.2, 3.0, ...) fails as a whole with Invalid Message. Every answer
// carries the protocol version of its request.
//
// The handlers work on KMIP 1.x payloads. A 2.x message is translated
// before it is decoded, and each answer after it is encoded, at the TTLV
// level and by one table for every operation (v2.go, v2attrs.go):
//
//   - Attributes (each attribute under its own tag) becomes a
//     Template-Attribute of Attribute {Attribute Name, Attribute Value},
//     and Common / Private Key / Public Key Attributes the per-key
//     template-attributes of Create Key Pair and Re-key Key Pair; in
//     Locate its attributes are the filter. Every attribute KMIP 1.4
//     defines has its tag in the table. A vendor attribute {Vendor
//     Identification "x" or "y", Attribute Name n, Attribute Value} is the
//     1.x custom attribute "x-n" or "y-n"; other vendors, a vendor
//     attribute without name or value, an unknown tag and an attribute
//     2.0 removed (Operation Policy Name, Certificate Identifier / Subject
//     / Issuer) fail with Invalid Field, more than 1,000 attributes with
//     Invalid Message. A Key Value's Attributes (Register) are translated
//     the same way.
//   - Attribute Reference (an Enumeration holding the attribute's tag, or
//     {Vendor Identification, Attribute Name}) becomes an Attribute Name,
//     also below the top of a payload (a Key Wrapping Specification's);
//     one naming no attribute fails with Attribute Not Found, one of
//     another shape with Invalid Field.
//   - New Attribute is the attribute of Add, Modify and Set Attribute.
//     Current Attribute (Modify, Delete) names the instance by its value;
//     the bridge finds its index, and one that matches no instance fails
//     with Attribute Not Found. Without Current Attribute, Modify and
//     Delete change the attribute's first instance (index 0), as at 1.x.
//   - A Unique Identifier given as the Enumeration ID Placeholder (0x01)
//     is the batch's ID placeholder: the identifier of the last Create,
//     Register, Re-key or Locate. The other values of the enumeration
//     (the result of a given earlier operation, Create Key Pair Public Key
//     ...) fail with Invalid Field: read as the placeholder they would
//     name another object. As an Integer it fails with Feature Not
//     Supported.
//   - Date-Time Extended values are accepted wherever a date is expected
//     and kept to the second. Protection Storage Masks are ignored: the
//     keystore is the one protection storage.
//   - Answers: Get Attributes returns one Attributes structure, Get
//     Attribute List Attribute References, Add / Modify / Delete / Set /
//     Adjust Attribute only the Unique Identifier, and Create, Register,
//     Re-key, Create Key Pair, Re-key Key Pair and Derive Key no
//     template-attribute. Attributes 2.x removed, and Attribute Index,
//     never appear in a 2.x answer. Query adds Set and Adjust Attribute to
//     its operations and answers Query Capabilities.
//   - Result Reasons of 2.x replace 1.x ones where 2.x defines them:
//     Attribute Read Only for a server-managed attribute, Attribute
//     Single Valued for a second instance of a single-valued one,
//     Attribute Not Found for a missing one, Wrong Key Lifecycle State
//     (2.1) for destroying an Active object or changing the Activation
//     Date of an activated one, Object Not Found for an identifier that
//     names no object, Non Unique Name Attribute for adding a Name the
//     object has, and Invalid Message (2.1, as CS-BC-M-11-21 expects) for
//     a Decrypt without the IV its mode needs.
//   - The 2.x attribute Key Format Type is the format a Get without one
//     answers; it is read-only and asked for by reference only.
//
// Set Attribute (2.x) adds an attribute the object does not have or
// replaces its only instance; an attribute with several instances fails
// with Multi Valued Attribute, a server-managed one with Attribute Read
// Only. It checks values as Add and Modify Attribute do (one helper,
// attrcheck.go): a Link needs a known type and an identifier, a Name may
// not repeat another of the object's names, and a lifecycle date follows
// the date rules of Add and Modify. Adjust Attribute (2.x) changes the only instance of an Integer,
// Long Integer, Interval or Date-Time attribute by the Adjustment Value
// (Integer, Long Integer or Interval, in seconds for dates and intervals;
// 1 if absent) for Increment and Decrement; Negate changes the sign of a
// number or inverts a Boolean. Only attributes a client may set (Process
// Start Date, Protect Stop Date, x- attributes ...) can be adjusted; an
// overflow, another type or another Adjustment Type fails with Invalid
// Field.
//
// A batch item is read in the 2.x shape if its payload has any of the
// structures above, and in the 1.x shape if it has a Template-Attribute,
// Attribute, Attribute Name or Attribute Index: clients that only change
// the header's version send these, the ovh kmipclient with
// EnforceVersion(kmip.V2_1) among them (it encodes and decodes its 1.x
// payload types under a 2.1 header). Such an item runs as at 1.4, with
// the 2.x Result Reasons, and is answered in 1.x form, which such a client
// decodes; the answer header says 2.1. An item with both shapes fails
// with Invalid Message. An item whose payload looks the same in both (Get
// Attribute List, Get Attributes of every attribute, Get, Activate, ...)
// is answered in 2.x form, unless its connection has sent a 1.x-shaped
// item in a 2.x message before: the ovh client at 2.1 reads its answers
// then, but on a connection whose first request is such an item it reads
// the 2.x Get Attribute List or Get Attributes answer as empty. A
// translation failure fails its batch item alone, with the operation the
// client sent, and is audited under that operation. The response size
// limit counts what a 2.x answer adds (a Vendor Identification per vendor
// attribute).
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
// Message. TTLV is nested at most 32 deep. Messages of 64 KiB or more
// share a budget of 32 MiB across connections while they are read and
// handled (decoding takes a multiple of a message's size): a message that
// gets no share before its read deadline is answered with General Failure
// and its connection closed, as is a message over the size limit or one
// cut short.
//
// At most Config.MaxConnections client connections (DefaultMaxConnections,
// 1000) are served at once, those still in their TLS handshake included.
// A connection over the limit is closed (reset) right after accept,
// before any handshake work; open connections are not affected, and every
// connection gives its slot back when it ends, whether its handshake
// failed, it timed out or its client went away. The TLS handshake has
// its own deadline, Config.HandshakeTimeout (DefaultHandshakeTimeout,
// 10 s, or ReadTimeout if shorter). When half of the slots are held by
// connections still in their handshake, or all of them are taken, the
// oldest connection in its handshake gives its slot to the new one if it
// has been handshaking for a second (handshakeGrace); otherwise the new
// one is refused at the limit and admitted under it, so that a burst of
// real handshakes is never cut off. Connections that open TCP and never
// handshake need no certificate; this way they cannot lock established
// clients out for long, nor keep a client that handshakes in
// milliseconds from getting in. Refusals are counted
// (Server.Refused) and reported to Config.ConnRefused at most 10 at once
// and then once a second, each report with the number left out before it.
// Server.SetMaxConnections changes the limit while the server runs.
// The answers to up to eight distinct KMIP 1.x Discover Versions
// requests without credentials are remembered by the requests' bytes
// (clients that open a connection per task send the same one first each
// time): such a request is answered with a copy under the current time
// stamp, after the same policy check and with the same audit record as
// any other.
//
// # Objects
//
// Create makes AES-128, -192 and -256 keys and HMAC-SHA256/384/512 keys.
// Key material, HMAC keys and Unique Identifiers come from internal/keys
// (keys.Service.CreateKMIP), which reads keys.Config.Rand. Register accepts Symmetric
// Keys (Raw or Transparent Symmetric Key format), Secret Data, Opaque
// Objects and Public and Private Keys (see Key pairs). 256-bit AES (and ChaCha20) keys are stored as KES keys with a
// fresh HMAC key, so that once Active they serve the KES API's generate,
// encrypt and decrypt; other material is stored as raw bytes. Get
// without a Key Format Type answers a registered symmetric key or secret
// data in the format it was registered in, a created key (or one stored
// before the format was kept) as Raw, secret data as Opaque; Raw and
// Transparent Symmetric Key (keys) and Raw and Opaque (secret data) are
// answered when asked for, and Key Format Type Not Supported for any
// other format; key compression is not supported.
//
// Register also accepts X.509 Certificates and Split Keys. A certificate's
// DER (at most MaxCertificateSize bytes) is parsed with crypto/x509 and
// refused with Invalid Field if it does not parse; one whose public key
// crypto/x509 does not implement (secp256k1, the brainpool curves) is
// accepted when the rest of it parses. PGP certificates are refused with
// Feature Not Supported. The DER is the object's material; Get returns it
// as registered (X.509 format only). Register derives the Certificate
// Type, Certificate Length, X.509 Certificate Identifier, Subject and
// Issuer (KMIP 1.1 on: the DER of the names and of the serial number's
// INTEGER), Certificate Identifier, Subject and Issuer (the 1.0 forms:
// RFC 2253 names, the serial number in upper-case hex; deprecated by 1.1
// but defined in every 1.x version, and the OASIS 1.1 and 1.2 cases
// expect them, so they are reported at every 1.x version), Digital
// Signature Algorithm and the Cryptographic Algorithm and Length of the
// certificate's public key. Clients cannot change them (Permission
// Denied); alternative names are not reported. A Split Key is one part
// of a key the client split: Register checks 1 <= Key Part Identifier <=
// Split Key Parts, 1 <= Split Key Threshold <= Split Key Parts (equal for
// XOR), a known Split Key Method and a Prime Field Size for (only) the
// prime field method, and stores its Raw key block; Get returns the part
// with its fields. The server does not split or join keys.
//
// Every object may carry Link attributes, several of them, which clients
// add, modify and delete (Register of a certificate may link it to its
// public key). A Link needs a Link Type of KMIP 1.x and a Linked Object
// Identifier, else Invalid Field; the linked object is not checked, as
// it may live elsewhere. A re-keyed key's versions show Replacement and
// Replaced Object Links, which the server derives.
//
// # Key pairs
//
// Create Key Pair makes RSA key pairs of 2048 to 4096 bits (Cryptographic
// Length; 2048 if none) and EC key pairs on P-256, P-384 or P-521
// (Cryptographic Algorithm EC or ECDSA, Recommended Curve in Cryptographic
// Domain Parameters or Cryptographic Length). It takes the Common, Private
// Key and Public Key Template-Attributes; an attribute of a half's template
// overrides the common one, and an algorithm or size only one half names
// holds for both. Other algorithms, sizes and curves, or halves
// that name different ones, are Invalid Field. The key is generated in
// internal/keys (keys.Service.CreateKeyPair), a few at a time (half the
// cores); when twice that many already wait, Create Key Pair fails at
// once with General Failure ("key pair generation is busy ... try
// again") instead of queueing until its deadline. The Create Key Pair
// items of one message may cost at most four RSA-4096 generations
// (keygenCost: an EC pair 1, RSA (bits/1024)^4, so RSA-4096 256 and
// RSA-2048 16); the item past that is Invalid Field before it generates
// anything, so one batch cannot hold a core for minutes. Its two halves are two
// objects, each with its own state, attributes and Unique Identifier: the
// private key has a Public Key Link to the public key and the public key
// a Private Key Link to the private key. The default usage masks are Sign
// (private key) and Verify (public key); a mask in a half's template with
// bits the half cannot serve (Verify or Encrypt on a private EC key, Sign
// on a public key, see keys.CheckAsymmetricMask) is Invalid Field. A mask
// in the common template is meant for both halves: each keeps the bits it
// can serve (Sign and Verify become Sign on the private key and Verify on
// the public key), and one left with none is refused. Both halves are Pre-Active
// unless an Activation Date in the past is given. Revoke and Destroy of
// one half leave the other as it is; Locate finds each by Object Type,
// Name and the other filters.
//
// Register also accepts Private Keys as PKCS#1 (RSA), PKCS#8, EC Private
// Key (SEC 1), Transparent RSA Private Key and Transparent EC (or ECDSA)
// Private Key, and Public Keys as PKCS#1 (RSA), X.509
// (SubjectPublicKeyInfo), Transparent RSA Public Key and Transparent EC
// (or ECDSA) Public Key, all unwrapped. The material is parsed and
// validated (RSA keys with their CRT values recomputed, EC points on
// their curve, scalars in range); anything else is Invalid Field. For
// interoperability registered RSA keys may be 1024 to 8192 bits long
// (Create makes 2048 to 4096); EC keys are on P-256, P-384 or P-521. The
// algorithm and length given must match the key. Registered halves are
// not linked unless the client adds Link attributes. internal/keys stores
// private keys as PKCS#8 and public keys as X.509, sealed with the key
// value like every other material (never in the attribute record).
//
// Get converts to the Key Format Type asked for: private RSA keys to
// PKCS#1, PKCS#8 or Transparent RSA Private Key, private EC keys to
// PKCS#8, EC Private Key or Transparent EC Private Key, public RSA keys to
// PKCS#1, X.509 or Transparent RSA Public Key, public EC keys to X.509 or
// Transparent EC Public Key; any other format is Key Format Type Not
// Supported. Without a format, RSA keys come as PKCS#1 (what the OASIS
// cases, PyKMIP and ovh/kmip-go expect) and EC keys as Transparent EC
// keys (KMIP's default format), named Transparent ECDSA for KMIP 1.0 to
// 1.2 clients, which know only those.
//
// Sign and Signature Verify use a private or public key on the server:
// RSASSA-PSS (MGF1 with the signature's hash; salt length of the hash
// unless Salt Length says otherwise; any salt length verifies unless one
// is given), RSA PKCS#1 v1.5 and ECDSA (ASN.1 DER signatures; raw r||s
// also verify), with SHA-256, SHA-384 or SHA-512, over Data or, from KMIP
// 1.4, Digested Data. The Cryptographic Parameters (the request's, or the
// key's first Cryptographic Parameters attribute) choose: Digital
// Signature Algorithm, or Cryptographic Algorithm and Padding Method (PSS
// or PKCS1 v1.5; none means PKCS#1 v1.5 for RSA keys) and Hashing
// Algorithm (SHA-256 if none); given together they must agree. Sign needs
// an Active private key whose mask has Sign; Signature Verify a public key
// that is Active, Deactivated or Compromised and whose mask has Verify
// (internal/keys states the table). A signature that does not verify is
// Validity Indicator Invalid, not an error; unsupported parameters are
// Invalid Field. Data is bounded by Config.MaxMessageSize. The Sign items
// of one message may cost at most 1,000 RSA-2048 signatures (signCost:
// an EC signature 1, RSA (bits/1024)^3, so RSA-2048 8 and RSA-8192 512);
// the item past that is Invalid Field before it signs.
//
// # Export and usage
//
// Get returns material only of keys whose material may leave the server
// (keys.Service.Export): keys created over the KES API are not
// extractable, and Get of one answers Permission Denied, "key is not
// extractable: ...", unless the admin allowed it (kes key export-allow, or
// a keys: entry with export: true). Keys a KMIP client creates or
// registers are extractable unless its template sets Extractable false or
// Sensitive true. The same holds for private keys; public keys are not
// secret and always extractable. Every Get that returns material is
// audited a second
// time as operation "export" (/kmip/export/<uid>). Get Attributes and Get
// Attribute List report the Cryptographic Usage Mask and the KMIP 1.4
// Sensitive, Always Sensitive, Extractable and Never Extractable
// attributes from internal/keys; clients cannot change them.
// Certificates are public: always exportable whatever their template or
// the admin's switch say, and their Get is not audited as an export.
// Split keys follow the rules of symmetric keys. KMIP 1.4 semantics: a Sensitive key leaves only wrapped (Get with a Key Wrapping
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
// A Sensitive key is wrapped only by a wrapping key whose material never
// left the server in the clear (Permission Denied otherwise,
// keys.ErrWrapWeak): made by KMIP Create
// (not Register: the client knows a registered key's bytes and would
// unwrap offline), Sensitive or not Extractable now, and Always Sensitive
// or Never Extractable (never exported in the clear). A key that is not
// Sensitive may be wrapped by any wrapping key: it leaves in the clear
// anyway. Grant /kmip/wrap/<uid> only for wrapping keys meant for the
// client.
//
// Register takes a Key Block with Key Wrapping Data naming a wrapping key
// the server holds (Unwrap Key usage bit, no Encrypt or Decrypt; Active
// or Deactivated: a Compromised wrapping key is refused as a key in the
// wrong state, since whoever holds its material could choose what a blob
// unwraps to), unwraps it and stores the plaintext like any registered
// key, Sensitive: a key registered wrapped keeps the protection of its
// wrapped form, so that a Sensitive key got wrapped and registered back
// is no copy Get returns in the clear. A template with Sensitive false is
// Permission Denied; Extractable is the client's. A blob that does not verify (tag, integrity check, length) is
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
// # Attributes
//
// Besides what it stores, an object reports attributes derived when it is
// read (attrs.go): Lease Time (LeaseTime, 1 hour, or less when a
// Deactivation or Protect Stop Date comes sooner: how long a client may
// keep using its copy before it asks again; the server keeps no record
// of leases and cannot call a copy back), Fresh (true until the material
// first leaves the server), Original Creation Date (a Register
// template's, else the Initial Date), Random Number Generator (recorded
// when Create or Re-key generates the key: Unspecified for the operating
// system's generator that crypto/rand reads, CTR-DRBG AES-256 in FIPS
// 140-3 mode) and Operation Policy Name (1.0 to 1.4; "default" unless a
// client set one, and listed only then). Clients cannot set them (Add or
// Modify Attribute answers Permission Denied). Listings (Get Attributes
// without names, Get Attribute List) and named requests carry only the
// attributes the client's protocol version defines; Random Number
// Generator is listed from 1.4 on, as in the OASIS reference responses.
// The Digest follows the client's version: KMIP 1.0 defines it without
// Key Format Type, 1.1 and later with it. Attribute Index is sent for
// every instance except index 0, which KMIP 1.x lets a server omit and
// the OASIS reference responses omit. Add Attribute refuses a second
// instance of a single-valued attribute and a Name the object already
// has (Illegal Operation).
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
//	/kmip/set-attribute/<uid>      (KMIP 2.x)
//	/kmip/adjust-attribute/<uid>   (KMIP 2.x)
//	/kmip/create-key-pair
//	/kmip/sign/<uid>
//	/kmip/signature-verify/<uid>
//	/kmip/derive-key/<uid>   (the base; the new key needs /kmip/create as well)
//	/kmip/wrap/<uid>         (the wrapping key of a Get, besides /kmip/get/<key>)
//	/kmip/unwrap/<uid>       (the wrapping key of a Register, besides /kmip/register)
//
// A Username/Password credential in the request header, if present, must
// match one of Config.Users; the request is then authorised with that
// user's policy instead of the certificate identity's. With no users
// configured, a credential is ignored (PyKMIP's sample configuration
// sends an empty one): it names no user, so it grants nothing, and the
// request is authorised with the certificate identity alone. A denied item fails
// with Permission Denied; the connection stays open.
//
// Locate is authorised as a whole with /kmip/locate and returns the
// matching identifiers without a per-object check: grant it only to
// clients that may learn key names. A Locate that filters by Name, Object
// Group, an x- custom attribute (string, integer, boolean or byte
// string value), a Link with a Linked Object Identifier or a certificate
// attribute (Certificate Type, X.509 Certificate Identifier, Subject or
// Issuer, or their 1.0 forms) reads only the candidates of the key
// service's index (keys.Index); any other Locate reads every key of the
// keystore, so its cost grows with the number of keys. A Link filter
// needs a Link Type of KMIP 1.x (else Invalid Field); without a Linked
// Object Identifier it finds every object with a link of that type, and
// the Replacement and Replaced Object Links of re-keyed versions are found
// by reading every key. Certificate names compare by their DER (X.509
// forms) or text (1.0 forms); a filter that gives alternative names
// matches nothing, since none are reported. The index is built by one full
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
// in the past is given. The lifecycle dates act: a client may set the
// Activation, Deactivation, Process Start and Protect Stop Dates in the
// Create or Register template, with Add Attribute, or with Modify
// Attribute (the Activation and Process Start Dates only while the
// object is Pre-Active, so that Modify of the Activation Date of an
// Active key answers Permission Denied as SKLC-M-3 expects; the other two
// while it is Pre-Active or Active). internal/keys derives the state from
// the stored state and the dates whenever the key is read (keys.Dates),
// so the object becomes Active at its Activation Date and Deactivated at
// its Deactivation Date on every node, for the KES API too, with no
// timer. Before the Process Start Date Decrypt and MAC Verify, from the
// Protect Stop Date on Encrypt and MAC answer Permission Denied. Dates
// outside the years 1970 to 9999, a Deactivation Date before the
// Activation Date and dates given twice are Invalid Field; a key created
// over the KES API takes none (Permission Denied). Dates cannot be
// deleted. Re-key gives the new version the dates of its template, or
// with an Offset the old dates moved as KMIP says (Activation Date = new
// Initial Date + Offset). Activate makes a Pre-Active object Active. Revoke
// with reason Key Compromise or CA Compromise makes it Compromised, with
// any other reason Deactivated. Destroy refuses Active objects with
// Permission Denied (Wrong Key Lifecycle State in a KMIP 2.1 message, as
// the OASIS 2.1 test cases expect) and otherwise deletes the key from the keystore, so it
// is gone for the KES API as well. Revoke and Destroy of a key created
// over the KES API are refused with Permission Denied ("key is managed
// over the KES API"): the lifecycle table of internal/keys. The state rules of internal/keys apply
// to both front doors: generate and encrypt need Active, decrypt accepts
// Active, Deactivated and Compromised.
package kmipbridge
