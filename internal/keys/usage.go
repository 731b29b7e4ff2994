// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package keys

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strings"

	"github.com/kesbridge/kes/internal/crypto"
)

// Origin says which door made a key. It decides the defaults of a key
// that stores no Usage and which lifecycle changes each door may make.
type Origin string

const (
	// OriginKES: created or imported over the KES API (or by minio/kes).
	OriginKES Origin = "kes"
	// OriginKMIP: created or registered by a KMIP client.
	OriginKMIP Origin = "kmip"
)

// UsageMask is a KMIP Cryptographic Usage Mask. The bit values are
// KMIP's (KMIP 1.4 §9.1.3.3.1), so that the bridge passes masks through
// unchanged.
type UsageMask uint32

// The usage bits the server enforces.
const (
	UsageEncrypt     UsageMask = 0x0004
	UsageDecrypt     UsageMask = 0x0008
	UsageWrapKey     UsageMask = 0x0010
	UsageUnwrapKey   UsageMask = 0x0020
	UsageMACGenerate UsageMask = 0x0080
	UsageMACVerify   UsageMask = 0x0100
	UsageDeriveKey   UsageMask = 0x0200
)

// Algorithm is the algorithm of a key's material, as far as the server
// performs operations with it. The empty Algorithm is material the
// server only stores (secret data, opaque objects, keys of algorithms it
// does not implement).
type Algorithm string

// The algorithms of KMIP Create and of the server-side operations.
const (
	AlgorithmAES        Algorithm = "AES"
	AlgorithmChaCha20   Algorithm = "ChaCha20"
	AlgorithmHMACSHA256 Algorithm = "HMAC-SHA256"
	AlgorithmHMACSHA384 Algorithm = "HMAC-SHA384"
	AlgorithmHMACSHA512 Algorithm = "HMAC-SHA512"
)

// Usage is what a key may be used for and whether its material may
// leave the server: the KMIP Cryptographic Usage Mask and the KMIP 1.4
// attributes Sensitive, Always Sensitive, Extractable and Never
// Extractable.
//
// It is stored in Metadata.Usage. A key that stores none has derived
// values (see UsageOf), so that a key written by minio/kes, or created
// over the KES API, keeps minio/kes's stored bytes exactly.
type Usage struct {
	Origin    Origin    `json:"origin"`
	Algorithm Algorithm `json:"alg,omitempty"`
	Mask      UsageMask `json:"mask"`

	// Sensitive: the material may leave the server only wrapped (KMIP
	// Get with a Key Wrapping Specification, WrapKMIP).
	Sensitive bool `json:"sensitive,omitempty"`
	// AlwaysSensitive: Sensitive has been true since creation.
	AlwaysSensitive bool `json:"alwaysSensitive,omitempty"`
	// Extractable: the material may leave the server (KMIP Get).
	Extractable bool `json:"extractable,omitempty"`
	// NeverExtractable: the material has not been exportable since
	// creation. It turns false at the first export, for good.
	NeverExtractable bool `json:"neverExtractable,omitempty"`
	// Public: the material is public (a certificate). It is always
	// exportable, whatever Extractable and Sensitive say, and never
	// Sensitive or Never Extractable.
	Public bool `json:"public,omitempty"`
	// Exported: the material has left the server at least once (KMIP
	// Get). KMIP's Fresh attribute is its negation. A key stored before
	// this was recorded reads as not exported.
	Exported bool `json:"exported,omitempty"`
	// Generated: the server generated the material (KMIP Create); no
	// client supplied it. Only such a key can wrap a Sensitive key
	// (sealedKEK): a client that registered the wrapping key knows its
	// bytes and would unwrap offline. Keys stored before this was
	// recorded read as not generated.
	Generated bool `json:"generated,omitempty"`
}

// Exportable reports whether KMIP Get may return the material in the
// clear. A wrapped Get needs only Extractable (see WrapKMIP). Public
// material is always exportable.
func (u Usage) Exportable() bool { return u.Public || u.Extractable && !u.Sensitive }

// kesUsage is the derived usage of a key made over the KES API: usable
// for everything the KES API does with it (encrypt, decrypt, HMAC) and
// never exported.
func kesUsage(o *Object) Usage {
	u := Usage{Origin: OriginKES, Mask: UsageEncrypt | UsageDecrypt, Sensitive: true, AlwaysSensitive: true, NeverExtractable: true}
	if o.Version.HMACKey != nil {
		u.Mask |= UsageMACGenerate | UsageMACVerify
	}
	u.Algorithm = keyAlgorithm(o)
	return u
}

func keyAlgorithm(o *Object) Algorithm {
	if o.Version.Key == nil {
		return ""
	}
	if o.Version.Key.Type() == crypto.ChaCha20 {
		return AlgorithmChaCha20
	}
	return AlgorithmAES
}

// UsageOf returns the usage the key stores, or the derived one:
//   - no KMIP record: made over the KES API (OriginKES), not exportable;
//   - a KMIP record without stored usage (written before usage was
//     stored) on a key whose name is a server-generated identifier (see
//     isGeneratedUID): made over KMIP, exportable as it always was, with
//     the usage mask of its Cryptographic Usage Mask attribute (all four
//     enforced bits if it has none);
//   - a KMIP record without stored usage on any other name: a KES key
//     that a KMIP client gave attributes (or revoked) before usage was
//     stored, so OriginKES and not exportable. Before usage was stored
//     every KMIP-made key was named by such an identifier, and a KES
//     key was never: the record alone says nothing about who made it.
//
// It does not apply the configured export patterns; Service.UsageOf does.
func UsageOf(o *Object) Usage {
	switch {
	case o.Meta.Usage != nil:
		return *o.Meta.Usage
	case len(o.Meta.KMIP) == 0, !isGeneratedUID(o.Name):
		return kesUsage(o)
	}
	u := Usage{Origin: OriginKMIP, Extractable: true, Mask: UsageEncrypt | UsageDecrypt | UsageMACGenerate | UsageMACVerify}
	if m, ok := recordMask(o.Meta.KMIP); ok {
		u.Mask = m
	}
	u.Algorithm = keyAlgorithm(o)
	if u.Algorithm == "" {
		u.Algorithm = recordAlgorithm(o.Meta.KMIP)
	}
	return u
}

// isGeneratedUID reports whether name is exactly what the KMIP bridge
// generated as the identifier of a KMIP-made key before usage was
// stored: a version 4 UUID, lower-case hex, in canonical form (as
// Service.newUID makes it now). Anything else, upper-case hex included,
// was named by a KES API client.
func isGeneratedUID(name string) bool {
	if len(name) != 36 {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		case 14:
			if c != '4' {
				return false
			}
		case 19:
			if c != '8' && c != '9' && c != 'a' && c != 'b' {
				return false
			}
		default:
			if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
				return false
			}
		}
	}
	return true
}

// UsageOf returns the key's usage with the configured export patterns
// (Config.ExportPatterns) applied: a key whose name matches one is
// exportable whatever it stores.
func (s *Service) UsageOf(o *Object) Usage {
	u := UsageOf(o)
	if s.exportAllowed(o.Name) {
		u.Extractable, u.Sensitive = true, false
	}
	return u
}

func (s *Service) exportAllowed(name string) bool {
	for _, p := range s.exportPatterns {
		if MatchName(p, name) {
			return true
		}
	}
	return false
}

// MatchName reports whether a key name matches a config pattern: the
// name itself, or a prefix followed by '*' as in policies ("minio-*"
// matches every name that starts with "minio-").
func MatchName(pattern, name string) bool {
	if p, ok := strings.CutSuffix(pattern, "*"); ok {
		return strings.HasPrefix(name, p)
	}
	return name == pattern
}

// ErrNotExtractable is matched by every *ExportError.
var ErrNotExtractable = errors.New("key is not extractable")

// ExportError says why a key's material may not leave the server. Its
// message contains no key material; the front doors send it as it is.
type ExportError struct{ Reason string }

func (e *ExportError) Error() string { return "key is not extractable: " + e.Reason }

// Is makes every *ExportError match ErrNotExtractable.
func (e *ExportError) Is(target error) bool { return target == ErrNotExtractable }

func exportRefusal(u Usage) error {
	switch {
	case u.Exportable():
		return nil
	case u.Origin == OriginKES && !u.Extractable:
		return &ExportError{Reason: "it is managed over the KES API, and its material never leaves the server unless an admin allows export ('kes key export-allow' or a keys: entry with export: true)"}
	case u.Sensitive:
		return &ExportError{Reason: "it is sensitive: it leaves the server only wrapped (Get with a Key Wrapping Specification)"}
	default:
		return &ExportError{Reason: "its Extractable attribute is false"}
	}
}

// Export calls fn with the object if its material may leave the server
// (UsageOf(o).Exportable, with the configured patterns), and refuses
// with an *ExportError otherwise. The first export of a key records,
// before fn runs, that it has been exported (Usage.Exported: KMIP Fresh
// turns false) and, if it had been Never Extractable or Always
// Sensitive, that this is no longer true; a failure to record it fails
// the export.
// The object is only valid during fn, as with With.
func (s *Service) Export(ctx context.Context, name string, fn func(o *Object) error) error {
	return s.export(ctx, name, false, fn)
}

// ExportVersion is Export of version n of key name, VersionRef(name, n),
// without making and parsing that reference.
func (s *Service) ExportVersion(ctx context.Context, name string, n uint32, fn func(o *Object) error) error {
	if n == 0 || name == "" || strings.IndexByte(name, '.') >= 0 {
		// Not a reference ParseVersionRef would take apart: With uses
		// it as a name, as it is.
		return s.Export(ctx, VersionRef(name, n), fn)
	}
	if IsReserved(name) {
		return ErrKeyNotFound
	}
	return s.exportKey(ctx, name, n, false, fn)
}

// export is Export, or with wrapped the export of WrapKMIP: the rules of
// wrapRefusal, and a wrapped export leaves Always Sensitive as it is.
func (s *Service) export(ctx context.Context, name string, wrapped bool, fn func(o *Object) error) error {
	if IsReserved(name) {
		return ErrKeyNotFound
	}
	// The usage belongs to the key, whichever version is exported.
	if key, n, ok := ParseVersionRef(name); ok {
		return s.exportKey(ctx, key, n, wrapped, fn)
	}
	return s.exportKey(ctx, name, 0, wrapped, fn)
}

// exportKey is export of key (not a VersionRef) or, with n > 0, of its
// version n.
func (s *Service) exportKey(ctx context.Context, key string, n uint32, wrapped bool, fn func(o *Object) error) error {
	refusal := exportRefusal
	if wrapped {
		refusal = wrapRefusal
	}
	// Most exports are not the first: they run fn in this one look-up.
	var first bool
	err := s.use(ctx, key, n, func(o *Object) error {
		u := s.UsageOf(o)
		if err := refusal(u); err != nil {
			return err
		}
		if first = u.NeverExtractable || !wrapped && u.AlwaysSensitive || !u.Exported; first {
			return nil
		}
		return fn(o)
	})
	if err != nil || !first {
		return err
	}
	err = s.Update(ctx, key, func(o *Object) error {
		u := s.UsageOf(o)
		if err := refusal(u); err != nil {
			return err
		}
		stored := UsageOf(o)
		stored.NeverExtractable = false
		if !wrapped {
			stored.AlwaysSensitive = false
		}
		stored.Exported = true
		o.Meta.Usage = &stored
		return nil
	})
	if err != nil {
		return err
	}
	return s.use(ctx, key, n, func(o *Object) error {
		if err := refusal(s.UsageOf(o)); err != nil {
			return err
		}
		return fn(o)
	})
}

// AllowExport is the admin's export switch for one key: allow makes the
// key Extractable and not Sensitive; !allow makes it not Extractable. It
// is stored with the key, so every node sees it. Export patterns in the
// config apply on top of it. Public material (a certificate) stays
// exportable.
func (s *Service) AllowExport(ctx context.Context, name string, allow bool) error {
	return s.Update(ctx, name, func(o *Object) error {
		u := UsageOf(o)
		u.Extractable = allow || u.Public // public material stays exportable
		if allow {
			u.Sensitive = false
		}
		o.Meta.Usage = &u
		return nil
	})
}

// pinUsage keeps the derived usage of a KES-made key once a KMIP record
// is added to it (for example by KMIP Add Attribute): without it the key
// would read as a pre-usage KMIP key, and become exportable.
func pinUsage(before Metadata, o *Object) {
	if before.Usage == nil && len(before.KMIP) == 0 && o.Meta.Usage == nil && len(o.Meta.KMIP) > 0 {
		u := kesUsage(o)
		o.Meta.Usage = &u
	}
}

// recordMask finds the Cryptographic Usage Mask attribute in a KMIP
// record's TTLV attributes (see Metadata.KMIP).
func recordMask(kmip json.RawMessage) (UsageMask, bool) {
	var rec struct {
		Attrs []byte `json:"attrs"`
	}
	if json.Unmarshal(kmip, &rec) != nil || len(rec.Attrs) == 0 {
		return 0, false
	}
	tag, typ, body, _, ok := ttlvItem(rec.Attrs)
	if !ok || tag != tagTemplateAttribute || typ != ttlvStructure {
		return 0, false
	}
	for len(body) > 0 {
		tag, typ, attr, next, ok := ttlvItem(body)
		if !ok {
			return 0, false
		}
		body = next
		if tag != tagAttribute || typ != ttlvStructure {
			continue
		}
		var name string
		var value []byte
		var vtyp byte
		for len(attr) > 0 {
			tag, typ, v, next, ok := ttlvItem(attr)
			if !ok {
				return 0, false
			}
			attr = next
			switch tag {
			case tagAttributeName:
				name = string(v)
			case tagAttributeValue:
				value, vtyp = v, typ
			}
		}
		if name == "Cryptographic Usage Mask" && vtyp == ttlvInteger && len(value) == 4 {
			return UsageMask(binary.BigEndian.Uint32(value)), true
		}
	}
	return 0, false
}

// TTLV tags and types recordMask reads besides those of limits.go.
const (
	tagAttributeName = 0x42000A
	ttlvInteger      = 0x02
)

// recordAlgorithm reads the KMIP Cryptographic Algorithm of a KMIP
// record written before usage was stored (KMIP 1.4 §9.1.3.2.13 values).
func recordAlgorithm(kmip json.RawMessage) Algorithm {
	var rec struct {
		Alg uint32 `json:"alg"`
	}
	if json.Unmarshal(kmip, &rec) != nil {
		return ""
	}
	switch rec.Alg {
	case 0x03:
		return AlgorithmAES
	case 0x09:
		return AlgorithmHMACSHA256
	case 0x0A:
		return AlgorithmHMACSHA384
	case 0x0B:
		return AlgorithmHMACSHA512
	}
	return ""
}

// checkUse enforces the usage mask on the KES API (generate, encrypt,
// decrypt, HMAC) for a key a KMIP client made: an Encrypt-only key does
// not HMAC over either door. A KES key's mask is derived from what the
// KES API does with it (kesUsage), so nothing changes for those.
func checkUse(o *Object, bit UsageMask, op string) error {
	if u := UsageOf(o); u.Origin == OriginKMIP && u.Mask&bit == 0 {
		return &UsageError{Op: op}
	}
	return nil
}
