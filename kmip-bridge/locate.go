// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"time"

	"github.com/kesbridge/kes/keystore"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/kmipserver"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// locateRequest is the Locate request payload as clients really send it:
// besides the standard layout it accepts the filter attributes wrapped in
// a Template-Attribute (as some KMIP 1.0/1.1 clients do) and skips fields
// it does not know.
type locateRequest struct {
	MaximumItems int32
	OffsetItems  int32
	Attribute    []kmip.Attribute
}

func init() {
	// Replace the library's decoder for Locate requests with the lenient
	// one. Responses keep the library's type.
	kmip.RegisterOperationPayload[locateRequest, payloads.LocateResponsePayload](kmip.OperationLocate)
}

// Operation implements kmip.OperationPayload.
func (*locateRequest) Operation() kmip.Operation { return kmip.OperationLocate }

// TagEncodeTTLV encodes the payload in the standard layout.
func (p *locateRequest) TagEncodeTTLV(e *ttlv.Encoder, tag int) {
	e.Struct(tag, func(e *ttlv.Encoder) {
		if p.MaximumItems != 0 {
			e.Integer(kmip.TagMaximumItems, p.MaximumItems)
		}
		if p.OffsetItems != 0 {
			e.Integer(kmip.TagOffsetItems, p.OffsetItems)
		}
		for i := range p.Attribute {
			e.TagAny(kmip.TagAttribute, &p.Attribute[i])
		}
	})
}

// TagDecodeTTLV decodes either layout.
func (p *locateRequest) TagDecodeTTLV(d *ttlv.Decoder, tag int) error {
	return d.Struct(tag, func(d *ttlv.Decoder) error {
		for d.Tag() != 0 {
			var err error
			switch d.Tag() {
			case kmip.TagMaximumItems:
				p.MaximumItems, err = d.Integer(kmip.TagMaximumItems)
			case kmip.TagOffsetItems:
				p.OffsetItems, err = d.Integer(kmip.TagOffsetItems)
			case kmip.TagAttribute:
				var a kmip.Attribute
				err = d.TagAny(kmip.TagAttribute, &a)
				p.Attribute = append(p.Attribute, a)
			case kmip.TagTemplateAttribute:
				var ta kmip.TemplateAttribute
				err = d.TagAny(kmip.TagTemplateAttribute, &ta)
				p.Attribute = append(p.Attribute, ta.Attribute...)
			default:
				// Storage Status Mask, Object Group Member and
				// future fields do not narrow our (all on-line)
				// objects.
				err = d.Next()
			}
			if err != nil {
				return err
			}
		}
		return nil
	})
}

func (s *Server) locate(ctx context.Context, req *locateRequest) (*payloads.LocateResponsePayload, error) {
	if err := s.authorize(ctx, "locate", ""); err != nil {
		return nil, err
	}
	if req.MaximumItems < 0 || req.OffsetItems < 0 {
		return nil, kerr(kmip.ResultReasonInvalidField, "negative maximum or offset items")
	}
	// Two instances of a date attribute are a range; other filters must
	// all match.
	var (
		filters []kmip.Attribute
		ranges  = map[kmip.AttributeName][]time.Time{}
	)
	for _, a := range req.Attribute {
		if err := checkLocateFilter(a); err != nil {
			return nil, err
		}
		if t, ok := a.AttributeValue.(time.Time); ok {
			ranges[a.AttributeName] = append(ranges[a.AttributeName], t)
			continue
		}
		if a.AttributeValue == nil {
			continue
		}
		filters = append(filters, a)
	}
	for name, ts := range ranges {
		if len(ts) == 1 {
			filters = append(filters, kmip.Attribute{AttributeName: name, AttributeValue: ts[0]})
			delete(ranges, name)
		}
	}

	octx, cancel := s.opContext(ctx)
	defer cancel()
	names, err := s.locateNames(octx, filters)
	if err != nil {
		return nil, err
	}
	var found []string
	for _, name := range names {
		if err := octx.Err(); err != nil {
			return nil, err
		}
		obj, err := s.viewCurrent(octx, name) // a key's current version
		if err != nil {
			if keystore.IsUnreachable(err) || keystore.IsUnavailable(err) || octx.Err() != nil {
				// An outage is not an empty result.
				return nil, err
			}
			// Deleted since List, or unreadable: not a match.
			continue
		}
		ok := true
		for _, f := range filters {
			if !obj.matches(f) {
				ok = false
				break
			}
		}
		for name, ts := range ranges {
			lo, hi := ts[0], ts[1]
			if hi.Before(lo) {
				lo, hi = hi, lo
			}
			if ok && !obj.inRange(name, lo, hi) {
				ok = false
			}
		}
		if ok {
			found = append(found, obj.uid)
		}
	}
	total := int32(len(found))
	if off := int(req.OffsetItems); off > 0 {
		found = found[min(off, len(found)):]
	}
	if m := int(req.MaximumItems); m > 0 && len(found) > m {
		found = found[:m]
	}
	// Check what the identifiers take before the answer is built and
	// measured: there may be very many.
	size := 0
	for _, uid := range found {
		size += ttlvSize(len(uid))
		if !roomFor(ctx, size) {
			return nil, errTooLarge
		}
	}
	resp := &payloads.LocateResponsePayload{UniqueIdentifier: found}
	if req.MaximumItems > 0 || req.OffsetItems > 0 {
		resp.LocatedItems = &total
	}
	if len(found) > 0 {
		kmipserver.SetIdPlaceholder(ctx, found[0])
	}
	return resp, nil
}
