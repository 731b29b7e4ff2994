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
// (keystore.Capabilities.LinearizableReplace false), Update first takes a
// per-key lease, kept as a record under a reserved name (LeasePrefix), so
// that two nodes never change one key at once; lease.go states the
// scheme, its assumptions and where it does not help.
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
//	             hmac                                      Verify                                 HTTP delete
//	                                                                                              of KMIP keys)
//	Pre-Active   no        no       yes           no       no       if exp.   yes       yes       yes
//	Active       yes       yes      KES key: yes  yes      yes      if exp.   no        KMIP key  no
//	                                KMIP key: no
//	Deactivated  no        yes      yes           no       yes      if exp.   no        KMIP key  yes
//	Compromised  no        yes      yes           no       yes      if exp.   no        KMIP key  yes
//	Destroyed    every operation answers "not found"
//
// KES keys are Active from creation and no door changes their state: KMIP
// Revoke and Destroy of a KES key fail with ErrKESManaged (KMIP
// Permission Denied), so that no hypervisor can take a MinIO master key
// out of service or destroy it; HTTP delete removes them in any state, as
// in minio/kes. A KMIP key that is Active is refused by HTTP delete
// (ErrActiveKMIPKey, HTTP 409) exactly as by KMIP Destroy: revoke it over
// KMIP first.
//
// The KMIP operations also need the usage-mask bit (Encrypt, Decrypt, MAC
// Generate, MAC Verify) and the algorithm they use; "if exp." is Usage.
// Exportable: KES keys are not extractable unless the admin allows it
// (AllowExport, or Config.ExportPatterns from the config's keys: entries),
// KMIP keys are unless the client created them with Extractable false or
// Sensitive true. See usage.go for the usage and export attributes and
// kmipops.go for how each key is used.
package keys
