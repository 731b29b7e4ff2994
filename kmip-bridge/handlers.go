// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/policy"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// supportedVersions in server preference order.
var supportedVersions = []kmip.ProtocolVersion{kmip.V2_1, kmip.V2_0, kmip.V1_4, kmip.V1_3, kmip.V1_2, kmip.V1_1, kmip.V1_0}

// VendorIdentification is what Query Server Information reports.
const VendorIdentification = "KES bridge KMIP server"

// opNames are the path names of the implemented operations.
var opNames = map[kmip.Operation]string{
	kmip.OperationDiscoverVersions: "discover-versions",
	kmip.OperationQuery:            "query",
	kmip.OperationCreate:           "create",
	kmip.OperationRegister:         "register",
	kmip.OperationLocate:           "locate",
	kmip.OperationGet:              "get",
	kmip.OperationGetAttributes:    "get-attributes",
	kmip.OperationGetAttributeList: "get-attribute-list",
	kmip.OperationAddAttribute:     "add-attribute",
	kmip.OperationModifyAttribute:  "modify-attribute",
	kmip.OperationDeleteAttribute:  "delete-attribute",
	kmip.OperationActivate:         "activate",
	kmip.OperationRevoke:           "revoke",
	kmip.OperationDestroy:          "destroy",
	kmip.OperationReKey:            "re-key",
	kmip.OperationEncrypt:          "encrypt",
	kmip.OperationDecrypt:          "decrypt",
	kmip.OperationMAC:              "mac",
	kmip.OperationMACVerify:        "mac-verify",
	operationSetAttribute:          "set-attribute",
	operationAdjustAttribute:       "adjust-attribute",
	kmip.OperationCreateKeyPair:    "create-key-pair",
	kmip.OperationSign:             "sign",
	kmip.OperationSignatureVerify:  "signature-verify",
	kmip.OperationDeriveKey:        "derive-key",
}

func (s *Server) newExecutor() *kmipserver.BatchExecutor {
	e := kmipserver.NewBatchExecutor()
	e.Use(s.limitMessage, s.authenticate)
	e.BatchItemUse(s.auditItem, s.limitItem, s.v2Item)
	e.Route(kmip.OperationDiscoverVersions, handle(s, s.discoverVersions))
	e.Route(kmip.OperationQuery, handle(s, s.queryAll))
	e.Route(kmip.OperationCreate, handle(s, s.create))
	e.Route(kmip.OperationRegister, handle(s, s.register))
	e.Route(kmip.OperationLocate, handle(s, s.locate))
	e.Route(kmip.OperationGet, handle(s, s.get))
	e.Route(kmip.OperationGetAttributes, handle(s, s.getAttributes))
	e.Route(kmip.OperationGetAttributeList, handle(s, s.getAttributeList))
	e.Route(kmip.OperationAddAttribute, handle(s, s.addAttribute))
	e.Route(kmip.OperationModifyAttribute, handle(s, s.modifyAttribute))
	e.Route(kmip.OperationDeleteAttribute, handle(s, s.deleteAttribute))
	e.Route(kmip.OperationActivate, handle(s, s.activate))
	e.Route(kmip.OperationRevoke, handle(s, s.revoke))
	e.Route(kmip.OperationDestroy, handle(s, s.destroy))
	e.Route(kmip.OperationReKey, handle(s, s.rekey))
	e.Route(kmip.OperationDeriveKey, handle(s, s.deriveKey))
	s.routeCrypto(e)
	s.routeV2(e)
	s.routeAsym(e)
	return e
}

// handle adapts a typed operation handler and turns a panic in it into a
// General Failure with a safe message (the library's own recovery would
// send the panic text to the client and log to the global logger).
func handle[Req, Resp kmip.OperationPayload](s *Server, h func(context.Context, Req) (Resp, error)) kmipserver.OperationHandler {
	return kmipserver.HandleFunc(func(ctx context.Context, req Req) (resp Resp, err error) {
		defer func() {
			if r := recover(); r != nil {
				s.log.Error("kmip: panic in operation handler", "operation", req.Operation(), "panic", fmt.Sprint(r))
				var zero Resp
				resp, err = zero, kerr(kmip.ResultReasonGeneralFailure, "internal server error")
			}
		}()
		return h(ctx, req)
	})
}

// target resolves the Unique Identifier of a request (or the batch's ID
// placeholder), checks that it can name a key, and authorises op on it.
func (s *Server) target(ctx context.Context, op, uid string) (string, error) {
	if uid == "" {
		uid = kmipserver.IdPlaceholder(ctx)
		if uid == "" {
			return "", kerr(kmip.ResultReasonMissingData, "missing unique identifier")
		}
	}
	// A version's identifier is authorised as its key (rekey.go).
	name, _, ok := parseUID(uid)
	if err := s.authorize(ctx, op, name); err != nil {
		return "", err
	}
	if !ok || !policy.ValidName(name) {
		return "", errObjectNotFound
	}
	return uid, nil
}

// nowOf is the time of the key service's clock (keys.Config.Now), to the
// second: the dates the bridge records are compared with it.
func nowOf(ctx context.Context) time.Time {
	return stateOf(ctx).Keys.Now().UTC().Truncate(time.Second)
}

// view loads the KMIP view of the key version uid names (rekey.go).
func (s *Server) view(ctx context.Context, uid string) (*object, error) {
	var obj *object
	keySvc := stateOf(ctx).Keys
	err := s.withObject(ctx, uid, func(o *keys.Object) error {
		var err error
		obj, err = versionObject(o)
		if err == nil {
			obj.usage = keySvc.UsageOf(o) // with the configured export patterns
			obj.now = nowOf(ctx)
		}
		return err
	})
	return obj, err
}

// update changes the KMIP object uid names, one version of a key, with
// compare-and-swap: its state and KMIP record are the version's own
// (keys.Service.UpdateVersion).
func (s *Server) update(ctx context.Context, uid string, fn func(*object, *keys.Object) error, opts ...keys.UpdateOption) error {
	name, n, ok := parseUID(uid)
	if !ok {
		return keys.ErrKeyNotFound
	}
	return stateOf(ctx).Keys.UpdateVersion(ctx, name, n, func(o *keys.Object) error {
		obj, err := objectOf(o)
		if err != nil {
			return err
		}
		if err := fn(obj, o); err != nil {
			return err
		}
		m, err := obj.meta()
		// Only the state, the KMIP record and the dates are the
		// bridge's: the usage (and anything else internal/keys keeps)
		// stays.
		o.Meta.State, o.Meta.KMIP, o.Meta.Dates = m.State, m.KMIP, m.Dates
		return err
	}, opts...)
}

func (s *Server) discoverVersions(ctx context.Context, req *payloads.DiscoverVersionsRequestPayload) (*payloads.DiscoverVersionsResponsePayload, error) {
	if err := s.authorize(ctx, "discover-versions", ""); err != nil {
		return nil, err
	}
	resp := &payloads.DiscoverVersionsResponsePayload{}
	for _, v := range supportedVersions {
		if len(req.ProtocolVersion) == 0 || slices.Contains(req.ProtocolVersion, v) {
			resp.ProtocolVersion = append(resp.ProtocolVersion, v)
		}
	}
	return resp, nil
}

func (s *Server) query(ctx context.Context, req *payloads.QueryRequestPayload) (*payloads.QueryResponsePayload, error) {
	if err := s.authorize(ctx, "query", ""); err != nil {
		return nil, err
	}
	resp := &payloads.QueryResponsePayload{}
	for _, f := range req.QueryFunction {
		switch f {
		case kmip.QueryFunctionOperations:
			for _, op := range []kmip.Operation{kmip.OperationCreate, kmip.OperationRegister, kmip.OperationReKey,
				kmip.OperationLocate, kmip.OperationGet, kmip.OperationGetAttributes, kmip.OperationGetAttributeList,
				kmip.OperationAddAttribute, kmip.OperationModifyAttribute, kmip.OperationDeleteAttribute,
				kmip.OperationActivate, kmip.OperationRevoke, kmip.OperationDestroy, kmip.OperationQuery,
				kmip.OperationEncrypt, kmip.OperationDecrypt, kmip.OperationMAC, kmip.OperationMACVerify,
				kmip.OperationCreateKeyPair, kmip.OperationSign, kmip.OperationSignatureVerify,
				kmip.OperationDeriveKey, kmip.OperationDiscoverVersions} {
				if op != kmip.OperationDiscoverVersions || kmipserver.GetProtocolVersion(ctx) != kmip.V1_0 {
					resp.Operations = append(resp.Operations, op)
				}
			}
		case kmip.QueryFunctionObjects:
			resp.ObjectType = []kmip.ObjectType{kmip.ObjectTypeSymmetricKey, kmip.ObjectTypeSecretData, kmip.ObjectTypeOpaqueObject,
				kmip.ObjectTypeCertificate, kmip.ObjectTypeSplitKey, kmip.ObjectTypePrivateKey, kmip.ObjectTypePublicKey}
		case kmip.QueryFunctionServerInformation:
			resp.VendorIdentification = VendorIdentification
			resp.ServerInformation = &ttlv.Value{Tag: kmip.TagServerInformation, Value: ttlv.Struct{}}
		}
	}
	return resp, nil
}

// applyTemplate stores the client-settable attributes of a template on obj,
// the lifecycle dates included (validated: keys.Dates.Check), and returns
// the Cryptographic Algorithm, Length and Activation Date it names. Other
// attributes (server-managed ones, or ones the bridge does
// not keep) are ignored, as old clients send extra ones.
func applyTemplate(obj *object, ta kmip.TemplateAttribute) (alg kmip.CryptographicAlgorithm, length int32, mask *kmip.CryptographicUsageMask, activation *time.Time, err error) {
	for _, a := range ta.Attribute {
		switch a.AttributeName {
		case kmip.AttributeNameCryptographicAlgorithm:
			v, ok := a.AttributeValue.(kmip.CryptographicAlgorithm)
			if !ok {
				return 0, 0, nil, nil, kerr(kmip.ResultReasonInvalidField, "invalid cryptographic algorithm")
			}
			alg = v
		case kmip.AttributeNameCryptographicLength:
			v, ok := a.AttributeValue.(int32)
			if !ok {
				return 0, 0, nil, nil, kerr(kmip.ResultReasonInvalidField, "invalid cryptographic length")
			}
			length = v
		case kmip.AttributeNameCryptographicUsageMask:
			v, ok := a.AttributeValue.(kmip.CryptographicUsageMask)
			if !ok {
				return 0, 0, nil, nil, kerr(kmip.ResultReasonInvalidField, "invalid cryptographic usage mask")
			}
			mask = &v
		case kmip.AttributeNameActivationDate, kmip.AttributeNameDeactivationDate,
			kmip.AttributeNameProcessStartDate, kmip.AttributeNameProtectStopDate:
			if obj.has(a.AttributeName) {
				return 0, 0, nil, nil, kerr(kmip.ResultReasonInvalidField, "attribute '"+string(a.AttributeName)+"' given twice")
			}
			set, err := obj.setDate(a.AttributeName, a.AttributeValue)
			if err != nil {
				return 0, 0, nil, nil, err
			}
			if a.AttributeName == kmip.AttributeNameActivationDate {
				t := set.AttributeValue.(time.Time)
				activation = &t
			}
		default:
			if !clientSettable(a.AttributeName) || a.AttributeValue == nil {
				continue
			}
			if !multiValued(a.AttributeName) && obj.has(a.AttributeName) {
				return 0, 0, nil, nil, kerr(kmip.ResultReasonInvalidField, "attribute '"+string(a.AttributeName)+"' given twice")
			}
			if err := checkAttrValue(a); err != nil {
				return 0, 0, nil, nil, err
			}
			obj.add(a.AttributeName, a.AttributeValue)
		}
	}
	return alg, length, mask, activation, nil
}

// finish sets the server-managed attributes of a new object and its
// state. The usage mask and export attributes are kept by internal/keys.
func finish(obj *object, v *crypto.KeyVersion, now time.Time, activation *time.Time, format kmip.KeyFormatType) {
	obj.set(kmip.AttributeNameInitialDate, now)
	obj.state = keys.StatePreActive
	// A future Activation Date (and any Deactivation Date) acts when it
	// comes: internal/keys derives the state from the dates at every read.
	if activation != nil && !activation.After(now) {
		obj.state = keys.StateActive
	}
	if d, ok := digestOf(v, format); ok {
		obj.set(kmip.AttributeNameDigest, d)
	}
	obj.touch(now)
}

func (s *Server) create(ctx context.Context, req *payloads.CreateRequestPayload) (*payloads.CreateResponsePayload, error) {
	if err := s.authorize(ctx, "create", ""); err != nil {
		return nil, err
	}
	if req.ObjectType != kmip.ObjectTypeSymmetricKey {
		return nil, kerr(kmip.ResultReasonInvalidField, "only symmetric keys can be created")
	}
	uid, err := s.createKey(ctx, req.TemplateAttribute, nil)
	if err != nil {
		return nil, err
	}
	kmipserver.SetIdPlaceholder(ctx, uid)
	auditUID(ctx, uid)
	return &payloads.CreateResponsePayload{ObjectType: kmip.ObjectTypeSymmetricKey, UniqueIdentifier: uid}, nil
}

// createKey generates and stores a new key described by ta: AES, or an
// HMAC key. prepare, if not nil, may add attributes before the key is
// stored.
func (s *Server) createKey(ctx context.Context, ta kmip.TemplateAttribute, prepare func(obj *object)) (string, error) {
	obj := &object{typ: kmip.ObjectTypeSymmetricKey}
	alg, length, mask, activation, err := applyTemplate(obj, ta)
	if err != nil {
		return "", err
	}
	sensitive, extractable, err := exportFlags(ta)
	if err != nil {
		return "", err
	}
	if alg == 0 {
		alg = kmip.CryptographicAlgorithmAES
	}
	if length == 0 {
		length = 256
	}
	if alg != kmip.CryptographicAlgorithmAES && keysAlgorithm(alg) == "" || keysAlgorithm(alg) == keys.AlgorithmChaCha20 {
		return "", kerr(kmip.ResultReasonInvalidField, "only AES and HMAC keys can be created")
	}
	if mask == nil {
		m := kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt
		if alg != kmip.CryptographicAlgorithmAES {
			m = kmip.CryptographicUsageMACGenerate | kmip.CryptographicUsageMACVerify
		}
		mask = &m
	}
	obj.alg, obj.length = alg, length
	now := nowOf(ctx)
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// The server generates the key: record the generator it draws from.
	obj.set(kmip.AttributeNameRandomNumberGenerator, rngParameters(stateOf(ctx).Keys.SystemRandom()))
	return stateOf(ctx).Keys.CreateKMIP(ctx, keys.NewObject{
		Algorithm: keysAlgorithm(alg), Bits: int(length),
		Mask: keys.UsageMask(*mask), Sensitive: sensitive, Extractable: extractable,
		CreatedBy: sessionOf(ctx).identity.String(), CreatedAt: now,
		Meta: func(uid string, v *crypto.KeyVersion) (keys.Metadata, error) {
			obj.uid = uid
			finish(obj, v, now, activation, kmip.KeyFormatTypeRaw)
			if prepare != nil {
				prepare(obj)
			}
			return obj.meta()
		},
	})
}

func (s *Server) register(ctx context.Context, req *payloads.RegisterRequestPayload) (*payloads.RegisterResponsePayload, error) {
	if err := s.authorize(ctx, "register", ""); err != nil {
		return nil, err
	}
	switch req.Object.(type) {
	case *kmip.PrivateKey, *kmip.PublicKey:
		return s.registerAsym(ctx, req)
	}
	obj := &object{typ: req.ObjectType}
	alg, length, mask, activation, err := applyTemplate(obj, req.TemplateAttribute)
	if err != nil {
		return nil, err
	}
	// Registered material may be older than this server's copy: the
	// client may say when it was made (KMIP 1.2 Original Creation Date).
	for _, a := range req.TemplateAttribute.Attribute {
		if a.AttributeName != kmip.AttributeNameOriginalCreationDate {
			continue
		}
		t, ok := a.AttributeValue.(time.Time)
		if !ok || (keys.Dates{Activation: t}).Check() != nil {
			return nil, kerr(kmip.ResultReasonInvalidField, "invalid original creation date")
		}
		obj.set(kmip.AttributeNameOriginalCreationDate, t.UTC().Truncate(time.Second))
	}
	sensitive, extractable, err := exportFlags(req.TemplateAttribute)
	if err != nil {
		return nil, err
	}

	var (
		material []byte
		block    *kmip.KeyBlock
		format   = kmip.KeyFormatTypeRaw
	)
	switch o := req.Object.(type) {
	case *kmip.SymmetricKey:
		block = &o.KeyBlock
		switch block.KeyFormatType {
		case kmip.KeyFormatTypeRaw, kmip.KeyFormatTypeTransparentSymmetricKey:
		default:
			return nil, kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "symmetric keys are registered in Raw or Transparent Symmetric Key format")
		}
	case *kmip.SecretData:
		block = &o.KeyBlock
		switch block.KeyFormatType {
		case kmip.KeyFormatTypeRaw, kmip.KeyFormatTypeOpaque:
		default:
			return nil, kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "secret data is registered in Opaque or Raw format")
		}
		obj.secretType = o.SecretDataType
		format = kmip.KeyFormatTypeOpaque
	case *kmip.OpaqueObject:
		material = o.OpaqueDataValue
		obj.opaqueType = o.OpaqueDataType
		format = 0
	case *kmip.Certificate:
		return s.registerCertificate(ctx, req, o)
	case *kmip.SplitKey:
		return s.registerSplitKey(ctx, req, o)
	default:
		return nil, kerr(kmip.ResultReasonFeatureNotSupported, "object type is not supported")
	}
	if block != nil && block.KeyWrappingData != nil {
		// Unwrapped on the server (wrap.go); the material below is the
		// plaintext, wiped with material.
		if block, err = s.unwrapBlock(ctx, block); err != nil {
			return nil, err
		}
		if sensitive, err = wrappedSensitive(sensitive); err != nil {
			return nil, err
		}
	}
	if block != nil {
		// A Get without a Key Format Type answers this one.
		obj.format = block.KeyFormatType
		if block.KeyValue == nil || block.KeyValue.Plain == nil {
			return nil, kerr(kmip.ResultReasonInvalidField, "key block has no plaintext key value")
		}
		if block.KeyCompressionType != 0 {
			return nil, kerr(kmip.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
		}
		km := block.KeyValue.Plain.KeyMaterial
		switch {
		case km.Bytes != nil:
			material = *km.Bytes
		case km.TransparentSymmetricKey != nil:
			material = km.TransparentSymmetricKey.Key
		}
		if block.CryptographicAlgorithm != 0 {
			alg = block.CryptographicAlgorithm
		}
		if block.CryptographicLength != 0 {
			length = block.CryptographicLength
		}
	}
	defer clear(material)
	if len(material) == 0 {
		return nil, kerr(kmip.ResultReasonInvalidField, "object has no material")
	}
	if req.ObjectType == kmip.ObjectTypeSymmetricKey {
		if length == 0 {
			length = int32(len(material) * 8)
		}
		if int(length) != len(material)*8 {
			return nil, kerr(kmip.ResultReasonInvalidField, "cryptographic length does not match the key")
		}
		if alg == 0 {
			return nil, kerr(kmip.ResultReasonMissingData, "missing cryptographic algorithm")
		}
		obj.alg, obj.length = alg, length
	}
	if mask == nil {
		m := defaultMask(obj)
		mask = &m
	}
	return s.storeRegistered(ctx, obj, keys.NewObject{
		Algorithm: keysAlgorithm(obj.alg), Material: material,
		Mask: keys.UsageMask(*mask), Sensitive: sensitive, Extractable: extractable,
	}, func(v *crypto.KeyVersion, now time.Time) error {
		finish(obj, v, now, activation, format)
		return nil
	})
}

// storeRegistered stores a registered object: the material and usage of
// spec, obj's attributes completed by fin with the new key version and
// the time of the registration. It answers Register with the new Unique
// Identifier, which becomes the batch's ID placeholder.
func (s *Server) storeRegistered(ctx context.Context, obj *object, spec keys.NewObject, fin func(v *crypto.KeyVersion, now time.Time) error) (*payloads.RegisterResponsePayload, error) {
	now := nowOf(ctx)
	octx, cancel := s.opContext(ctx)
	defer cancel()
	spec.CreatedBy, spec.CreatedAt = sessionOf(ctx).identity.String(), now
	spec.Meta = func(uid string, v *crypto.KeyVersion) (keys.Metadata, error) {
		obj.uid = uid
		if err := fin(v, now); err != nil {
			return keys.Metadata{}, err
		}
		return obj.meta()
	}
	uid, err := stateOf(ctx).Keys.CreateKMIP(octx, spec)
	if err != nil {
		return nil, err
	}
	kmipserver.SetIdPlaceholder(ctx, uid)
	auditUID(ctx, uid)
	return &payloads.RegisterResponsePayload{UniqueIdentifier: uid}, nil
}

func (s *Server) get(ctx context.Context, req *payloads.GetRequestPayload) (*payloads.GetResponsePayload, error) {
	uid, err := s.target(ctx, "get", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if req.KeyWrapType == kmip.AsRegistered {
		// Wrapped keys are unwrapped when registered (wrap.go).
		return nil, kerr(kmip.ResultReasonFeatureNotSupported, "key wrap type As Registered is not supported: keys are stored unwrapped")
	}
	if req.KeyCompressionType != 0 {
		return nil, kerr(kmip.ResultReasonKeyCompressionTypeNotSupported, "key compression is not supported")
	}
	if req.KeyWrappingSpecification != nil {
		return s.getWrapped(ctx, uid, req)
	}
	// The answer, for a symmetric key its parts and a small key's copy,
	// and the operation's context, in one allocation.
	ans := &getAnswer{resp: payloads.GetResponsePayload{UniqueIdentifier: uid}}
	s.initOpCtx(&ans.op, ctx)
	defer ans.op.end()
	ctx = &ans.op
	sess := sessionOf(ctx)
	resp := &ans.resp
	name, n, _ := parseUID(uid) // target has checked it
	// Export refuses keys whose material may not leave the server
	// (keys made over the KES API, unless an admin allowed it).
	err = stateOf(ctx).Keys.ExportVersion(ctx, name, n, func(o *keys.Object) error {
		obj, err := header(o)
		if err != nil {
			return err
		}
		var material []byte
		if err := useMaterial(o.Version, func(b []byte) error { material = ans.copyOf(b); return nil }); err != nil {
			return err
		}
		// The copy lives until the response is on the wire.
		sess.wipe = append(sess.wipe, material)
		resp.ObjectType = obj.typ
		switch obj.typ {
		case kmip.ObjectTypeSymmetricKey:
			block := kmip.KeyBlock{CryptographicAlgorithm: obj.alg, CryptographicLength: obj.length}
			f := req.KeyFormatType
			if f == 0 {
				// KMIP: the format the object was registered in.
				f = obj.format
			}
			switch f {
			case 0, kmip.KeyFormatTypeRaw:
				block.KeyFormatType = kmip.KeyFormatTypeRaw
				ans.material = material
				ans.plain.KeyMaterial.Bytes = &ans.material
				ans.value.Plain = &ans.plain
				block.KeyValue = &ans.value
			case kmip.KeyFormatTypeTransparentSymmetricKey:
				block.KeyFormatType = kmip.KeyFormatTypeTransparentSymmetricKey
				block.KeyValue = &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{TransparentSymmetricKey: &kmip.TransparentSymmetricKey{Key: material}}}}
			default:
				return kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "key format type is not supported for symmetric keys")
			}
			ans.key.KeyBlock = block
			resp.Object = &ans.key
		case kmip.ObjectTypeSecretData:
			f := req.KeyFormatType
			if f == 0 {
				f = obj.format
			}
			if f == 0 {
				f = kmip.KeyFormatTypeOpaque
			}
			if f != kmip.KeyFormatTypeOpaque && f != kmip.KeyFormatTypeRaw {
				return kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "key format type is not supported for secret data")
			}
			ans.material = material
			resp.Object = &kmip.SecretData{SecretDataType: obj.secretType, KeyBlock: kmip.KeyBlock{
				KeyFormatType: f,
				KeyValue:      &kmip.KeyValue{Plain: &kmip.PlainKeyValue{KeyMaterial: kmip.KeyMaterial{Bytes: &ans.material}}},
			}}
		case kmip.ObjectTypeOpaqueObject:
			if req.KeyFormatType != 0 {
				return kerr(kmip.ResultReasonKeyFormatTypeNotSupported, "opaque objects have no key format")
			}
			resp.Object = &kmip.OpaqueObject{OpaqueDataType: obj.opaqueType, OpaqueDataValue: material}
		case kmip.ObjectTypeCertificate:
			resp.Object, err = certificateObject(req.KeyFormatType, material)
			return err
		case kmip.ObjectTypeSplitKey:
			resp.Object, err = splitKeyObject(&obj, req.KeyFormatType, material)
			return err
		case kmip.ObjectTypePrivateKey, kmip.ObjectTypePublicKey:
			ko, err := asymObject(&obj, material, req.KeyFormatType, kmipserver.GetProtocolVersion(ctx), func(b []byte) { sess.wipe = append(sess.wipe, b) })
			if err != nil {
				return asymWireError(err)
			}
			resp.Object = ko
		default:
			return kerr(kmip.ResultReasonFeatureNotSupported, "object type is not supported")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if resp.ObjectType != kmip.ObjectTypeCertificate { // certificates are public
		s.auditExport(ctx, uid)
	}
	return resp, nil
}

func (s *Server) getAttributes(ctx context.Context, req *payloads.GetAttributesRequestPayload) (*payloads.GetAttributesResponsePayload, error) {
	uid, err := s.target(ctx, "get-attributes", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	// A name given twice would return its values twice: a few bytes of
	// request could ask for megabytes of answer. KMIP calls it an
	// invalid message (OASIS test case 17.1).
	seen := make(map[kmip.AttributeName]struct{}, len(req.AttributeName))
	for _, n := range req.AttributeName {
		if _, dup := seen[n]; dup {
			return nil, kerr(kmip.ResultReasonInvalidMessage, "attribute name given more than once")
		}
		seen[n] = struct{}{}
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	obj, err := s.view(ctx, uid)
	if err != nil {
		return nil, err
	}
	resp := &payloads.GetAttributesResponsePayload{UniqueIdentifier: uid}
	v := kmipserver.GetProtocolVersion(ctx)
	list := obj.all()
	if len(req.AttributeName) > 0 {
		list = nil
		for _, n := range req.AttributeName {
			list = append(list, obj.get(n)...)
		}
	}
	// An attribute the client's version does not define is left out,
	// also when named: clients reject names their version lacks.
	listing := len(req.AttributeName) == 0
	for _, a := range list {
		if listing && inListing(a.AttributeName, v) || !listing && inVersion(a.AttributeName, v) {
			resp.Attribute = append(resp.Attribute, digestForV1_0(forWire(a), v))
		}
	}
	return resp, nil
}

func (s *Server) getAttributeList(ctx context.Context, req *payloads.GetAttributeListRequestPayload) (*payloads.GetAttributeListResponsePayload, error) {
	uid, err := s.target(ctx, "get-attribute-list", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	obj, err := s.view(ctx, uid)
	if err != nil {
		return nil, err
	}
	v := kmipserver.GetProtocolVersion(ctx)
	names := slices.DeleteFunc(obj.names(), func(n kmip.AttributeName) bool { return !inListing(n, v) })
	return &payloads.GetAttributeListResponsePayload{UniqueIdentifier: uid, AttributeName: names}, nil
}

func (s *Server) addAttribute(ctx context.Context, req *payloads.AddAttributeRequestPayload) (*payloads.AddAttributeResponsePayload, error) {
	uid, err := s.target(ctx, "add-attribute", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	a := req.Attribute
	date, err := checkClientAttr(a)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var added kmip.Attribute
	err = s.update(ctx, uid, func(obj *object, _ *keys.Object) error {
		if !multiValued(a.AttributeName) && obj.has(a.AttributeName) {
			return errSingleValued
		}
		if err := checkAttrOnObject(obj, a, date, -1); err != nil {
			return err
		}
		if date {
			var err error
			added, err = obj.setDate(a.AttributeName, a.AttributeValue)
			if err != nil {
				return err
			}
		} else {
			added = obj.add(a.AttributeName, a.AttributeValue)
		}
		obj.touch(nowOf(ctx))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.AddAttributeResponsePayload{UniqueIdentifier: uid, Attribute: wireAttr(added)}, nil
}

// checkDateChange refuses a client's change of a lifecycle date that the
// object's state or origin does not allow: a key made over the KES API
// takes no dates (its state is never a KMIP client's to change).
func checkDateChange(obj *object, name kmip.AttributeName) error {
	if obj.usage.Origin == keys.OriginKES {
		return keys.ErrKESManaged
	}
	if !dateChangeAllowed(name, obj.state) {
		return stateErr(lower(name) + " cannot change in state " + obj.state.String())
	}
	return nil
}

func (s *Server) modifyAttribute(ctx context.Context, req *payloads.ModifyAttributeRequestPayload) (*payloads.ModifyAttributeResponsePayload, error) {
	uid, err := s.target(ctx, "modify-attribute", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	a := req.Attribute
	date, err := checkClientAttr(a)
	if err != nil {
		return nil, err
	}
	idx := int32(0)
	if a.AttributeIndex != nil {
		idx = *a.AttributeIndex
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var modified kmip.Attribute
	err = s.update(ctx, uid, func(obj *object, _ *keys.Object) error {
		now := nowOf(ctx)
		if date {
			// A date can only move while the state allows it
			// (dateChangeAllowed); internal/keys acts on the new one.
			if err := checkAttrOnObject(obj, a, date, -1); err != nil {
				return err
			}
			if obj.find(a.AttributeName, idx) < 0 {
				return errAttrNotFound
			}
			var err error
			if modified, err = obj.setDate(a.AttributeName, a.AttributeValue); err != nil {
				return err
			}
			obj.touch(now)
			return nil
		}
		i := obj.find(a.AttributeName, idx)
		if i < 0 {
			return errAttrNotFound
		}
		if err := checkAttrOnObject(obj, a, false, i); err != nil {
			return err
		}
		obj.attrs[i].AttributeValue = a.AttributeValue
		modified = obj.attrs[i]
		obj.touch(now)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.ModifyAttributeResponsePayload{UniqueIdentifier: uid, Attribute: wireAttr(modified)}, nil
}

func (s *Server) deleteAttribute(ctx context.Context, req *payloads.DeleteAttributeRequestPayload) (*payloads.DeleteAttributeResponsePayload, error) {
	uid, err := s.target(ctx, "delete-attribute", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if !clientSettable(req.AttributeName) {
		return nil, errReadOnly
	}
	idx := int32(0)
	if req.AttributeIndex != nil {
		idx = *req.AttributeIndex
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	var deleted kmip.Attribute
	err = s.update(ctx, uid, func(obj *object, _ *keys.Object) error {
		i := obj.find(req.AttributeName, idx)
		if i < 0 {
			return errAttrNotFound
		}
		deleted = obj.attrs[i]
		obj.attrs = slices.Delete(obj.attrs, i, i+1)
		obj.touch(nowOf(ctx))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &payloads.DeleteAttributeResponsePayload{UniqueIdentifier: uid, Attribute: wireAttr(deleted)}, nil
}

func (s *Server) activate(ctx context.Context, req *payloads.ActivateRequestPayload) (*payloads.ActivateResponsePayload, error) {
	uid, err := s.target(ctx, "activate", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err = s.update(ctx, uid, func(obj *object, _ *keys.Object) error {
		if obj.state != keys.StatePreActive {
			return kerr(kmip.ResultReasonPermissionDenied, "object is not pre-active")
		}
		now := nowOf(ctx)
		obj.state = keys.StateActive
		obj.set(kmip.AttributeNameActivationDate, now)
		obj.touch(now)
		return nil
	}, keys.Lifecycle())
	if err != nil {
		return nil, err
	}
	return &payloads.ActivateResponsePayload{UniqueIdentifier: uid}, nil
}

func (s *Server) revoke(ctx context.Context, req *payloads.RevokeRequestPayload) (*payloads.RevokeResponsePayload, error) {
	uid, err := s.target(ctx, "revoke", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err = s.update(ctx, uid, func(obj *object, o *keys.Object) error {
		if err := keys.CheckKMIPStateChange(o); err != nil {
			return err
		}
		now := nowOf(ctx)
		switch req.RevocationReason.RevocationReasonCode {
		case kmip.RevocationReasonCodeKeyCompromise, kmip.RevocationReasonCodeCACompromise:
			occurred := now
			if req.CompromiseOccurrenceDate != nil {
				occurred = req.CompromiseOccurrenceDate.UTC().Truncate(time.Second)
			}
			obj.state = keys.StateCompromised
			obj.set(kmip.AttributeNameCompromiseOccurrenceDate, occurred)
			obj.set(kmip.AttributeNameCompromiseDate, now)
		default:
			switch obj.state {
			case keys.StateActive, keys.StatePreActive:
				obj.state = keys.StateDeactivated
				obj.set(kmip.AttributeNameDeactivationDate, now)
			}
		}
		obj.set(kmip.AttributeNameRevocationReason, req.RevocationReason)
		obj.touch(now)
		return nil
	}, keys.Lifecycle())
	if err != nil {
		return nil, err
	}
	return &payloads.RevokeResponsePayload{UniqueIdentifier: uid}, nil
}

func (s *Server) destroy(ctx context.Context, req *payloads.DestroyRequestPayload) (*payloads.DestroyResponsePayload, error) {
	uid, err := s.target(ctx, "destroy", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	// internal/keys applies the lifecycle: an older version is
	// shredded, the last one destroys the key (claimed with a
	// compare-and-swap before the delete, so that a concurrent
	// activation on another node either comes first and is refused, or
	// fails).
	name, n, _ := parseUID(uid)
	if err := stateOf(ctx).Keys.DestroyKMIPVersion(ctx, name, n); err != nil {
		return nil, err
	}
	return &payloads.DestroyResponsePayload{UniqueIdentifier: uid}, nil
}
