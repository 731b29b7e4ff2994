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
// Locate, Activate, Revoke, Destroy, Re-key, Encrypt, Decrypt, MAC and MAC
// Verify are implemented. Every other
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
// Keys (Raw or Transparent Symmetric Key format), Secret Data and Opaque
// Objects. 256-bit AES (and ChaCha20) keys are stored as KES keys with a
// fresh HMAC key, so that once Active they serve the KES API's generate,
// encrypt and decrypt; other material is stored as raw bytes. Get answers
// Raw for symmetric keys unless Transparent Symmetric Key is asked for,
// Opaque for secret data, and Key Format Type Not Supported for any other
// format; key wrapping and compression are not supported.
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
// attributes from internal/keys; clients cannot change them.
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
