// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"context"
	"errors"
	"math"
	"slices"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// The operations KMIP 2.0 added that the bridge implements.
const (
	operationAdjustAttribute kmip.Operation = 0x30
	operationSetAttribute    kmip.Operation = 0x31
)

// adjustmentType is the KMIP 2.0 Adjustment Type enumeration.
type adjustmentType uint32

const (
	adjustIncrement adjustmentType = 1
	adjustDecrement adjustmentType = 2
	adjustNegate    adjustmentType = 3
)

func init() {
	ttlv.RegisterEnum(tagAdjustmentType, map[adjustmentType]string{
		adjustIncrement: "Increment", adjustDecrement: "Decrement", adjustNegate: "Negate",
	})
	kmip.RegisterOperationPayload[setAttributeRequest, setAttributeResponse](operationSetAttribute)
	kmip.RegisterOperationPayload[adjustAttributeRequest, adjustAttributeResponse](operationAdjustAttribute)
}

// setAttributeRequest is the Set Attribute request once its New
// Attribute has been translated into a 1.x Attribute.
type setAttributeRequest struct {
	UniqueIdentifier string `ttlv:",omitempty"`
	Attribute        kmip.Attribute
}

// Operation implements kmip.OperationPayload.
func (*setAttributeRequest) Operation() kmip.Operation { return operationSetAttribute }

type setAttributeResponse struct {
	UniqueIdentifier string
}

// Operation implements kmip.OperationPayload.
func (*setAttributeResponse) Operation() kmip.Operation { return operationSetAttribute }

// adjustAttributeRequest is the Adjust Attribute request once its
// Attribute Reference has been translated into an Attribute Name.
type adjustAttributeRequest struct {
	UniqueIdentifier string `ttlv:",omitempty"`
	AttributeName    kmip.AttributeName
	AdjustmentType   adjustmentType `ttlv:"0x420158"`
	AdjustmentValue  *ttlv.Value    `ttlv:"0x420162,omitempty"`
}

// Operation implements kmip.OperationPayload.
func (*adjustAttributeRequest) Operation() kmip.Operation { return operationAdjustAttribute }

type adjustAttributeResponse struct {
	UniqueIdentifier string
}

// Operation implements kmip.OperationPayload.
func (*adjustAttributeResponse) Operation() kmip.Operation { return operationAdjustAttribute }

// setAttribute sets a single instance of an attribute (KMIP 2.0): it adds
// the attribute if the object has none, replaces it if it has one, and
// refuses an attribute with several instances.
func (s *Server) setAttribute(ctx context.Context, req *setAttributeRequest) (*setAttributeResponse, error) {
	uid, err := s.target(ctx, "set-attribute", req.UniqueIdentifier)
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
	err = s.update(ctx, uid, func(obj *object, _ *keys.Object) error {
		var at []int
		for i, o := range obj.attrs {
			if o.AttributeName == a.AttributeName {
				at = append(at, i)
			}
		}
		replacing := -1
		switch len(at) {
		case 0:
		case 1:
			replacing = at[0]
		default:
			return kerr(reasonMultiValuedAttribute, "attribute has several instances")
		}
		if err := checkAttrOnObject(obj, a, date, replacing); err != nil {
			return err
		}
		switch {
		case date:
			if _, err := obj.setDate(a.AttributeName, a.AttributeValue); err != nil {
				return err
			}
		case replacing < 0:
			obj.add(a.AttributeName, a.AttributeValue)
		default:
			obj.attrs[replacing].AttributeValue = a.AttributeValue
		}
		obj.touch(nowOf(ctx))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &setAttributeResponse{UniqueIdentifier: uid}, nil
}

// adjustAttribute changes a single-instance numeric or date attribute by
// an offset (KMIP 2.0): Increment and Decrement add or subtract the
// Adjustment Value (an Integer, Long Integer or Interval; 1 if absent)
// to an Integer, Long Integer, Interval or Date-Time value (dates move by
// that many seconds); Negate changes the sign of a number or inverts a
// Boolean. Only attributes clients may set can be adjusted.
func (s *Server) adjustAttribute(ctx context.Context, req *adjustAttributeRequest) (*adjustAttributeResponse, error) {
	uid, err := s.target(ctx, "adjust-attribute", req.UniqueIdentifier)
	if err != nil {
		return nil, err
	}
	if !clientSettable(req.AttributeName) {
		return nil, errReadOnly
	}
	var delta int64 = 1
	switch req.AdjustmentType {
	case adjustIncrement, adjustDecrement:
		if req.AdjustmentValue != nil {
			switch v := req.AdjustmentValue.Value.(type) {
			case int32:
				delta = int64(v)
			case int64:
				delta = v
			case time.Duration:
				delta = int64(v / time.Second)
			default:
				return nil, kerr(kmip.ResultReasonInvalidField, "invalid adjustment value")
			}
		}
		if req.AdjustmentType == adjustDecrement {
			if delta == math.MinInt64 {
				return nil, kerr(kmip.ResultReasonInvalidField, "invalid adjustment value")
			}
			delta = -delta
		}
	case adjustNegate:
		if req.AdjustmentValue != nil {
			return nil, kerr(kmip.ResultReasonInvalidField, "negate takes no adjustment value")
		}
	default:
		return nil, kerr(kmip.ResultReasonInvalidField, "invalid adjustment type")
	}
	ctx, cancel := s.opContext(ctx)
	defer cancel()
	err = s.update(ctx, uid, func(obj *object, _ *keys.Object) error {
		var at []int
		for i, o := range obj.attrs {
			if o.AttributeName == req.AttributeName {
				at = append(at, i)
			}
		}
		switch len(at) {
		case 0:
			return errAttrNotFound
		case 1:
		default:
			return kerr(reasonMultiValuedAttribute, "attribute has several instances")
		}
		a := &obj.attrs[at[0]]
		v, err := adjust(a.AttributeValue, req.AdjustmentType, delta)
		if err != nil {
			return err
		}
		a.AttributeValue = v
		obj.touch(nowOf(ctx))
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &adjustAttributeResponse{UniqueIdentifier: uid}, nil
}

var (
	errAdjustType     = kerr(kmip.ResultReasonInvalidField, "attribute cannot be adjusted")
	errAdjustOverflow = kerr(kmip.ResultReasonInvalidField, "adjustment overflows the attribute")
)

// adjust returns v adjusted; custom attributes hold a ttlv.Value.
func adjust(v any, typ adjustmentType, delta int64) (any, error) {
	if tv, ok := v.(ttlv.Value); ok {
		nv, err := adjust(tv.Value, typ, delta)
		if err != nil {
			return nil, err
		}
		return ttlv.Value{Tag: tv.Tag, Value: nv}, nil
	}
	if typ == adjustNegate {
		switch x := v.(type) {
		case int32:
			if x == math.MinInt32 {
				return nil, errAdjustOverflow
			}
			return -x, nil
		case int64:
			if x == math.MinInt64 {
				return nil, errAdjustOverflow
			}
			return -x, nil
		case bool:
			return !x, nil
		}
		return nil, errAdjustType
	}
	switch x := v.(type) {
	case int32:
		if delta > math.MaxUint32 || delta < -math.MaxUint32 {
			return nil, errAdjustOverflow
		}
		r := int64(x) + delta
		if r > math.MaxInt32 || r < math.MinInt32 {
			return nil, errAdjustOverflow
		}
		return int32(r), nil
	case int64:
		r := x + delta
		if (delta > 0 && r < x) || (delta < 0 && r > x) {
			return nil, errAdjustOverflow
		}
		return r, nil
	case time.Duration:
		secs := int64(x / time.Second)
		r := secs + delta
		if r < 0 || r > math.MaxUint32 {
			return nil, errAdjustOverflow
		}
		return time.Duration(r) * time.Second, nil
	case time.Time:
		secs := x.Unix()
		r := secs + delta
		if (delta > 0 && r < secs) || (delta < 0 && r > secs) {
			return nil, errAdjustOverflow
		}
		return time.Unix(r, 0).UTC(), nil
	}
	return nil, errAdjustType
}

// routeV2 registers the operations only KMIP 2.x has.
// It also sets the versions the executor accepts (a copy: the executor
// sorts them in place).
func (s *Server) routeV2(e *kmipserver.BatchExecutor) {
	e.SetSupportedProtocolVersions(slices.Clone(supportedVersions)...)
	e.Route(operationSetAttribute, handle(s, s.setAttribute))
	e.Route(operationAdjustAttribute, handle(s, s.adjustAttribute))
}

// queryAll is Query, with the 2.x additions in a 2.x message: the 2.x
// operations and the server's capabilities.
func (s *Server) queryAll(ctx context.Context, req *payloads.QueryRequestPayload) (*payloads.QueryResponsePayload, error) {
	resp, err := s.query(ctx, req)
	if err != nil || kmipserver.GetProtocolVersion(ctx).ProtocolVersionMajor < 2 {
		return resp, err
	}
	for _, f := range req.QueryFunction {
		switch f {
		case kmip.QueryFunctionOperations:
			resp.Operations = append(resp.Operations, operationAdjustAttribute, operationSetAttribute)
		case kmip.QueryFunctionCapabilities:
			no, yes := false, true
			resp.CapabilityInformation = append(resp.CapabilityInformation, kmip.CapabilityInformation{
				StreamingCapability:     &no,
				AsynchronousCapability:  &no,
				AttestationCapability:   &no,
				BatchUndoCapability:     &no,
				BatchContinueCapability: &yes,
			})
		}
	}
	return resp, nil
}

// v2Item runs one batch item of a 2.x message: an item whose translation
// failed fails with the translation's reason; a Modify or Delete
// Attribute with a Current Attribute gets the index of that instance; the
// handler's error gets the Result Reason KMIP 2.x defines for it. It runs
// innermost, so that the audit and the response budget see the item's
// real operation and final answer.
func (s *Server) v2Item(next kmipserver.BatchItemNext, ctx context.Context, bi *kmip.RequestBatchItem) (*kmip.ResponseBatchItem, error) {
	m := v2MessageOf(ctx)
	if m == nil {
		return next(ctx, bi)
	}
	it := m.item(bi)
	if it != nil && it.err != nil {
		bi.Operation = it.op
		return &kmip.ResponseBatchItem{Operation: it.op, UniqueBatchItemID: bi.UniqueBatchItemID}, it.err
	}
	if it != nil && it.current != nil {
		if err := s.resolveCurrent(ctx, bi, it); err != nil {
			return &kmip.ResponseBatchItem{Operation: bi.Operation, UniqueBatchItemID: bi.UniqueBatchItemID}, v2Reason(m.version, err)
		}
	}
	resp, err := next(ctx, bi)
	if err != nil {
		err = v2Reason(m.version, err)
	}
	return resp, err
}

// errNoInstance fails a Current Attribute that names no instance.
var errNoInstance = kerr(reasonAttributeNotFound, "attribute instance not found")

// resolveCurrent sets the Attribute Index of a translated Modify or Delete
// Attribute to the instance its 2.x Current Attribute names. Instances
// keep their index until deleted, so a concurrent change either leaves
// it in place or makes the operation fail with Attribute Not Found.
func (s *Server) resolveCurrent(ctx context.Context, bi *kmip.RequestBatchItem, it *v2Item) error {
	var (
		uid, op string
		index   **int32
	)
	switch p := bi.RequestPayload.(type) {
	case *payloads.ModifyAttributeRequestPayload:
		if p.Attribute.AttributeName != it.currentName {
			return kerr(kmip.ResultReasonInvalidField, "current and new attribute differ")
		}
		uid, op, index = p.UniqueIdentifier, "modify-attribute", &p.Attribute.AttributeIndex
	case *payloads.DeleteAttributeRequestPayload:
		if p.AttributeName != it.currentName {
			return kerr(kmip.ResultReasonInvalidField, "current attribute and reference differ")
		}
		uid, op, index = p.UniqueIdentifier, "delete-attribute", &p.AttributeIndex
	default:
		return kerr(kmip.ResultReasonInvalidField, "unexpected current attribute")
	}
	uid, err := s.target(ctx, op, uid)
	if err != nil {
		return err
	}
	octx, cancel := s.opContext(ctx)
	defer cancel()
	obj, err := s.view(octx, uid)
	if err != nil {
		return err
	}
	var want kmip.Attribute
	if err := ttlv.UnmarshalTTLV(structNode(kmip.TagAttribute, textNode(kmip.TagAttributeName, string(it.currentName)), it.current).bytes(), &want); err != nil {
		return kerr(kmip.ResultReasonInvalidField, "invalid current attribute")
	}
	wantEnc := encodeTagged(kmip.TagAttributeValue, want.AttributeValue)
	for _, a := range obj.attrs {
		if a.AttributeName == it.currentName && bytes.Equal(encodeTagged(kmip.TagAttributeValue, a.AttributeValue), wantEnc) {
			i := *a.AttributeIndex
			*index = &i
			return nil
		}
	}
	return errNoInstance
}

// Errors of the handlers that KMIP 2.x gives a reason of its own.
var (
	errSingleValued = kerr(kmip.ResultReasonIllegalOperation, "attribute is single-valued and already present")
	errAttrNotFound = kerr(kmip.ResultReasonItemNotFound, "attribute not found")
	errNameTaken    = kerr(kmip.ResultReasonIllegalOperation, "the object already has this name")
)

// errObjectNotFound is the handlers' answer to an identifier that names
// no object (handlers.go target, auth.go, crypto_ops.go build the same
// value).
var errObjectNotFound = kerr(kmip.ResultReasonItemNotFound, "object not found")

// errMissingIV is a Decrypt without the IV its mode needs.
var errMissingIV = kerr(kmip.ResultReasonMissingData, "missing IV/counter/nonce")

// objectNotFound reports whether err says that the request's object does
// not exist, not one of its attributes or a wrapping key.
func objectNotFound(err error) bool {
	return errors.Is(err, errObjectNotFound) || errors.Is(err, keys.ErrKeyNotFound) || errors.Is(err, keys.ErrVersionNotFound)
}

// stateError is a change the object's state forbids (a lifecycle date
// that may no longer change): Permission Denied at 1.x and 2.0, Wrong
// Key Lifecycle State at 2.1, as the OASIS case SKLC-M-3-21 expects.
type stateError struct{ e kmipserver.Error }

func stateErr(msg string) error {
	return stateError{kmipserver.Error{Reason: kmip.ResultReasonPermissionDenied, Message: msg}}
}
func (s stateError) Error() string { return s.e.Error() }
func (s stateError) Unwrap() error { return s.e }

// v2Reason returns err with the Result Reason KMIP 2.x (version v)
// defines for it where that differs from 1.x.
func v2Reason(v kmip.ProtocolVersion, err error) error {
	switch {
	case errors.Is(err, keys.ErrDestroyActive) && ttlv.CompareVersions(v, kmip.V2_1) >= 0:
		// The OASIS 2.1 test cases (SKLC-M-2-21) expect it; 1.x and 2.0
		// answer Permission Denied.
		return kerr(reasonWrongKeyLifecycleState, "object is active and cannot be destroyed")
	case errors.As(err, new(stateError)) && ttlv.CompareVersions(v, kmip.V2_1) >= 0:
		var se stateError
		errors.As(err, &se)
		return kerr(reasonWrongKeyLifecycleState, se.e.Message)
	case ttlv.CompareVersions(v, kmip.V2_0) >= 0 && objectNotFound(err):
		// KMIP 2.0 added Object Not Found for an identifier that names
		// no object (BL-M-4-21); Item Not Found stays for 1.x.
		return kerr(reasonObjectNotFound, errObjectNotFound.(kmipserver.Error).Message)
	case errors.Is(err, errMissingIV) && ttlv.CompareVersions(v, kmip.V2_1) >= 0:
		// The OASIS 2.1 cases CS-BC-M-11/12/13-21 expect Invalid
		// Message for a CBC Decrypt without an IV; no 1.x or 2.0 vector
		// says so, and there it stays Missing Data.
		return kerr(kmip.ResultReasonInvalidMessage, errMissingIV.(kmipserver.Error).Message)
	case errors.Is(err, errReadOnly):
		return kerr(reasonAttributeReadOnly, errReadOnly.(kmipserver.Error).Message)
	case errors.Is(err, errSingleValued):
		return kerr(reasonAttributeSingleValued, errSingleValued.(kmipserver.Error).Message)
	case errors.Is(err, errNameTaken):
		// BL-M-8-21: Add Attribute of a Name the object has.
		return kerr(reasonNonUniqueName, errNameTaken.(kmipserver.Error).Message)
	case errors.Is(err, errAttrNotFound):
		return kerr(reasonAttributeNotFound, errAttrNotFound.(kmipserver.Error).Message)
	}
	return err
}
