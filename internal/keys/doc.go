// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

// Package keys is the one service both front doors call: it maps a key
// name to a usable key (keystore → decode → cache), enforces the key's
// lifecycle state, and performs generate, encrypt, decrypt and HMAC.
//
// Lifecycle state and KMIP attributes are stored with the key itself, in
// a field of the stored value that minio/kes ignores, so that every node
// sees them and a key written by minio/kes (which has none) is simply
// Active. Changes go through Update, a compare-and-swap on the keystore.
// On a keystore whose compare-and-swap holds only within one process
// (keystore.Capabilities.LinearizableReplace false), Update and Delete
// first take a per-key lease, kept as records under reserved names
// (LeasePrefix, IsReserved), so that two nodes never change one key at
// once; lease.go states the scheme, why it is safe, its assumptions and
// where it does not help. Client changes stop LifecycleHeadroom below
// the keystore's value limit, so that a key can always be revoked and
// destroyed.
//
// # Versions
//
// A key is a series of versions (versions.go, rotate.go). Rotate makes a
// new one through Update; generate, encrypt and HMAC use the newest, or
// the version a VersionRef ("<name>.v<n>") names. The stored value keeps
// the newest version where minio/kes reads it (fields 1-4) and the older
// ones in a field it skips; a key never rotated is stored byte for byte
// as minio/kes stores it. Rules:
//   - a key never rotated writes ciphertext format 1; once rotated,
//     format 2 with the version id in its key id field;
//   - decrypt finds the version by that id (one lookup, one attempt); a
//     number above the newest version the cached key holds reads the key
//     again once (rotated on another node); every other ciphertext is
//     tried with version 1, then the newest: at most two attempts;
//   - a version has a lifecycle state of its own (see Lifecycle); over
//     the KES API an older version is Active or Retired (decrypt only,
//     KMIP Deactivated); the newest can be neither retired nor destroyed
//     over the KES API; only a version that is not Active can be
//     destroyed, which wipes it and removes it from the stored key, so
//     its ciphertexts fail with crypto.ErrDecrypt;
//   - a key has at most MaxVersions versions;
//   - a Schedule rotates keys whose newest version is older than a
//     period; the condition is checked again inside the compare-and-swap,
//     so several nodes on one keystore make one version per period.
//
// # Lifecycle
//
// This table is the one statement of what each door may do with a key in
// each state; README.md repeats it for operators. "KES key" is a key
// created or imported over the KES API (or written by minio/kes, Origin
// kes); "KMIP key" one a KMIP client created or registered (Origin kmip).
//
//	State        KES API                          KMIP
//	             generate  decrypt  delete        Encrypt  Decrypt  Get       Activate  Revoke    Destroy
//	             encrypt            (HTTP)        MAC      MAC                                    (and
//	             hmac                             Wrap     Verify                                 HTTP delete
//	                                              Key      Unwrap                                 of KMIP keys)
//	                                              Derive   Key
//	                                              Key      Signature
//	                                              Sign     Verify
//	Pre-Active   no        no       yes           no       no       if exp.   yes       yes       yes
//	Active       yes       yes      KES key: yes  yes      yes      if exp.   no        KMIP key  no
//	                                KMIP key: no
//	Deactivated  no        yes      yes           no       yes      if exp.   no        KMIP key  yes
//	Compromised  no        yes      yes           no       yes      if exp.   no        KMIP key  yes
//	Destroyed    every operation answers "not found"
//
// Unwrap Key is the exception of its column: a Compromised wrapping key
// does not unwrap (ErrUnwrapCompromised). Unwrapping makes a new key the
// server trusts, and whoever may hold a compromised key's material can
// make a blob unwrap to material of their choice; a Deactivated one still
// unwraps what it wrapped while it was Active.
//
// The state in the table is the effective one. A KMIP key may carry
// client-set lifecycle dates (Metadata.Dates, dates.go): a Pre-Active key
// is Active from its Activation Date on, and a Pre-Active or Active key
// Deactivated from its Deactivation Date on. Every read derives the state
// from the stored state and the dates against Config.Now, so all nodes
// and both doors agree at every moment without a timer; the next Update
// stores it. Within those states, the Process Start Date holds back
// decrypt and MAC verify until it comes, and the Protect Stop Date ends
// generate, encrypt and HMAC (ErrNotActive with the reason). A rotation
// keeps the dates: the old version its own, the new one the key's (KMIP
// Re-key then sets the new version's from its template or Offset). KES
// keys take no dates.
//
// KES keys are Active from creation and no door changes their state: KMIP
// Revoke and Destroy of a KES key fail with ErrKESManaged (KMIP
// Permission Denied), so that no hypervisor can take a MinIO master key
// out of service or destroy it; HTTP delete removes them in any state, as
// in minio/kes. A KMIP key of which any version is Active is refused by
// HTTP delete (ErrActiveKMIPKey, HTTP 409), as KMIP Destroy refuses an
// Active version: the delete removes every version, so revoke each
// Active one over KMIP first.
//
// The state is per version (versionstate.go): the newest version's is
// Metadata.State, an older one's its stored version state. Each row
// applies to the version an operation uses: generate, encrypt and HMAC
// the newest (or the one a VersionRef names), decrypt the one that made
// the ciphertext, KMIP operations the version the Unique Identifier
// names. Rotate (HTTP rotate) and the rotation schedule rotate only a
// key whose newest version is Active: HTTP rotate refuses any other
// (ErrNotActive, HTTP 409), the schedule skips it, so that neither
// undoes a KMIP Revoke. KMIP Re-key (RekeyKMIP) makes an Active version
// (Pre-Active if the key was never activated), whatever the state of the
// one it replaces. No rotation replaces material a client stored
// (secret data, opaque objects, keys of algorithms the server does not
// implement) with random bytes: HTTP rotate and Re-key refuse such a key
// (ErrNotRotatable, HTTP 409), the schedule skips it.
// KMIP Destroy of a version (DestroyKMIPVersion) shreds an older version
// alone; the newest one only as the last version, destroying the key;
// while older versions remain it is refused (ErrVersionIsCurrent). On
// the KES API, a KMIP key's usage mask applies too: generate and encrypt
// need Encrypt, decrypt Decrypt, HMAC MAC Generate.
//
// Sign is Encrypt's row and Signature Verify Decrypt's: a key signs only
// while Active, and a signature made while it was may be verified after
// it is taken out of service (Deactivated, or Compromised: a relying
// party may still need to check old signatures, and decides itself
// whether to trust them). The halves of a key pair are two keys, each in
// its own state (asym.go); a public key is always exportable, a private
// key as its Extractable and Sensitive attributes say.
//
// The KMIP operations also need the usage-mask bit (Encrypt, Decrypt, MAC
// Generate, MAC Verify, Sign, Verify, Wrap Key, Unwrap Key, Derive Key)
// and the algorithm they use. Wrap Key and Unwrap Key are the wrapping
// key's (kmipwrap.go), Derive Key the base key's (kmipderive.go); KES keys
// have none of the three, so they neither wrap, unwrap nor serve as a
// base. "if exp." is Usage.Exportable for a Get in the clear; a wrapped
// Get needs only Extractable (Sensitive keys leave only wrapped). KES
// keys are not extractable unless the admin allows it (AllowExport, or
// Config.ExportPatterns from the config's keys: entries), KMIP keys are
// unless the client created them with Extractable false (Sensitive true
// allows wrapped export only), and public material (certificates,
// NewObject.Public) always is. See usage.go for the usage and export attributes and
// kmipops.go for how each key is used.
package keys
