// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"slices"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// KMIP 2.0 and 2.1 on the wire.
//
// The handlers work on the library's KMIP 1.x payload types. A 2.x
// request message is translated, as a TTLV tree, into the 1.x shape
// before it is decoded, and each answer back into 2.x after it is
// encoded. The translation is generic: it rewrites the structures 2.x
// changed wherever an operation's payload has them (v2RequestRules and
// responseToV2), so an operation added later gets its 2.x form without
// code of its own.
//
// Each batch item of a 2.x message is read in one of two shapes:
//   - 2.x: it has Attributes, Common / Private / Public Key Attributes,
//     Attribute Reference, Current / New Attribute or a non-text Unique
//     Identifier (or it is Set / Adjust Attribute). It is translated,
//     and its answer is given in 2.x form.
//   - 1.x: it has Template-Attribute (or a per-key one), Attribute,
//     Attribute Name or Attribute Index, as clients that only change the
//     header's version send (the ovh kmipclient with EnforceVersion
//     does). It is left as it is and answered in 1.x form: such a
//     client decodes the answer with its 1.x types.
// An item with both is refused with Invalid Message. An item with
// neither (Get Attribute List, Get Attributes of every attribute, Get,
// Activate ...) is answered in 2.x form, unless the connection has sent
// a 1.x-shaped item in a 2.x message before: then in 1.x form.

// v2Message is what the translation of one 2.x request message found.
type v2Message struct {
	version kmip.ProtocolVersion
	// items are the message's batch items, in order.
	items []v2Item
	// req is the decoded (1.x-shaped) message, to find an item's place.
	req *kmip.RequestMessage
}

// v2Item is one batch item of a 2.x message.
type v2Item struct {
	// op is the item's operation as the client sent it.
	op kmip.Operation
	// v2 is true if the answer is given in 2.x form.
	v2 bool
	// err, if not nil, fails the item: its translation failed. The
	// decoded item is then an empty Discover Versions that never runs.
	err error
	// current is the Attribute Value of a Modify or Delete Attribute's
	// Current Attribute, whose instance the operation changes.
	current *tnode
	// currentName is the attribute current belongs to.
	currentName kmip.AttributeName
}

type v2Key struct{}

// v2MessageOf returns the translation of the running message, or nil
// for a 1.x message.
func v2MessageOf(ctx context.Context) *v2Message {
	m, _ := ctx.Value(v2Key{}).(*v2Message)
	return m
}

// item returns the translation of batch item bi of m.
func (m *v2Message) item(bi *kmip.RequestBatchItem) *v2Item {
	if m.req == nil {
		return nil
	}
	for i := range m.req.BatchItem {
		if &m.req.BatchItem[i] == bi && i < len(m.items) {
			return &m.items[i]
		}
	}
	return nil
}

// isV2 reports whether msg is a request message of a supported 2.x
// version.
func isV2(msg []byte) bool { return requestVersion(msg).ProtocolVersionMajor == 2 }

// v2Markers are the payload items only a 2.x-shaped request has; v1Markers
// the ones only a 1.x-shaped one has (at the top of the payload).
var (
	v2Markers = map[uint32]bool{
		tagAttributes: true, tagCommonAttributes: true, tagPrivateKeyAttributes: true, tagPublicKeyAttributes: true,
		tagAttributeReference: true, tagCurrentAttribute: true, tagNewAttribute: true,
		tagProtectionStorageMasks: true, tagCommonProtectionStorageMasks: true,
		tagPrivateProtectionStorageMasks: true, tagPublicProtectionStorageMasks: true,
	}
	v1Markers = map[uint32]bool{
		kmip.TagTemplateAttribute: true, kmip.TagCommonTemplateAttribute: true,
		kmip.TagPrivateKeyTemplateAttribute: true, kmip.TagPublicKeyTemplateAttribute: true,
		kmip.TagAttribute: true, kmip.TagAttributeName: true, kmip.TagAttributeIndex: true,
	}
	// v2TemplateTags are the 2.x attribute lists and the 1.x
	// template-attribute each becomes.
	v2TemplateTags = map[uint32]uint32{
		tagAttributes:           kmip.TagTemplateAttribute,
		tagCommonAttributes:     kmip.TagCommonTemplateAttribute,
		tagPrivateKeyAttributes: kmip.TagPrivateKeyTemplateAttribute,
		tagPublicKeyAttributes:  kmip.TagPublicKeyTemplateAttribute,
	}
	// v1TemplateTags are the 1.x template-attributes an answer may carry
	// and 2.x answers do not.
	v1TemplateTags = map[uint32]bool{
		kmip.TagTemplateAttribute: true, kmip.TagCommonTemplateAttribute: true,
		kmip.TagPrivateKeyTemplateAttribute: true, kmip.TagPublicKeyTemplateAttribute: true,
	}
)

// fromV2 translates a 2.x request message into the 1.x shape. It fails
// only if msg is not a well-formed request message; a batch item that
// cannot be translated is recorded in the result and fails alone.
func fromV2(msg []byte, sess *session) ([]byte, *v2Message, error) {
	root, err := parseTree(msg)
	if err != nil || root.tag != kmip.TagRequestMessage || root.typ != ttlv.TypeStructure {
		return nil, nil, errMalformed
	}
	m := &v2Message{version: requestVersion(msg)}
	walk(root, extendedToDateTime)
	for _, bi := range root.kids {
		if bi.tag != kmip.TagBatchItem || bi.typ != ttlv.TypeStructure {
			continue
		}
		var it v2Item
		opn, pl := bi.child(kmip.TagOperation), bi.child(kmip.TagRequestPayload)
		if opn == nil || opn.typ != ttlv.TypeEnumeration || pl == nil || pl.typ != ttlv.TypeStructure {
			// The library refuses it.
			m.items = append(m.items, it)
			continue
		}
		it.op = kmip.Operation(opn.u32())
		v1, v2 := payloadShape(it.op, pl)
		switch {
		case v1 && v2:
			it.err = errV2Mixed
		case v2:
			it.v2 = true
			it.err = requestToV1(it.op, pl, &it)
		case v1:
			sess.v1Shaped = true
		default:
			it.v2 = !sess.v1Shaped
		}
		if it.err != nil {
			opn.val = enumNode(0, uint32(kmip.OperationDiscoverVersions)).val
			pl.kids = nil
		}
		m.items = append(m.items, it)
	}
	return root.bytes(), m, nil
}

// payloadShape reports whether a request payload has items of the 1.x
// and of the 2.x shape.
func payloadShape(op kmip.Operation, pl *tnode) (v1, v2 bool) {
	v2 = op == operationSetAttribute || op == operationAdjustAttribute
	for _, k := range pl.kids {
		switch {
		case v2Markers[k.tag]:
			v2 = true
		case v1Markers[k.tag]:
			v1 = true
		case k.tag == kmip.TagUniqueIdentifier && k.typ != ttlv.TypeTextString:
			v2 = true
		default:
			// Deeper down, only 2.x has Attribute References (a Key
			// Wrapping Specification's) and Attributes (a Key Value's).
			walk(k, func(n *tnode) { v2 = v2 || n.tag == tagAttributeReference || n.tag == tagAttributes })
		}
	}
	return v1, v2
}

// requestToV1 rewrites a 2.x-shaped request payload in place.
func requestToV1(op kmip.Operation, pl *tnode, it *v2Item) error {
	kids := make([]*tnode, 0, len(pl.kids))
	for _, k := range pl.kids {
		switch k.tag {
		case tagAttributes, tagCommonAttributes, tagPrivateKeyAttributes, tagPublicKeyAttributes:
			attrs, err := attrsToV1(k)
			if err != nil {
				return err
			}
			if op == kmip.OperationLocate && k.tag == tagAttributes {
				// 1.x Locate lists its filter attributes in the payload.
				kids = append(kids, attrs...)
				continue
			}
			kids = append(kids, structNode(v2TemplateTags[k.tag], attrs...))
		case tagAttributeReference:
			n, err := refToName(k)
			if err != nil {
				return err
			}
			kids = append(kids, n)
		case tagNewAttribute, tagCurrentAttribute:
			if k.typ != ttlv.TypeStructure || len(k.kids) != 1 {
				return errV2OneAttr
			}
			a, err := attrToV1(k.kids[0])
			if err != nil {
				return err
			}
			if k.tag == tagNewAttribute {
				kids = append(kids, a)
				continue
			}
			it.current = a.child(kmip.TagAttributeValue)
			it.currentName = kmip.AttributeName(a.child(kmip.TagAttributeName).text())
			if op == kmip.OperationDeleteAttribute && pl.child(tagAttributeReference) == nil {
				kids = append(kids, a.child(kmip.TagAttributeName))
			}
		case tagProtectionStorageMasks, tagCommonProtectionStorageMasks, tagPrivateProtectionStorageMasks, tagPublicProtectionStorageMasks:
			// The bridge has one protection storage: the keystore.
		case kmip.TagUniqueIdentifier:
			switch k.typ {
			case ttlv.TypeTextString:
				kids = append(kids, k)
			case ttlv.TypeEnumeration:
				// ID Placeholder: the bridge keeps one placeholder per
				// batch, the identifier of the last Create, Register,
				// Re-key or Locate, which an item without identifier
				// uses. The other values name the result of a given
				// earlier operation (Create Key Pair Public Key, ...);
				// read as the placeholder they would name another
				// object, the private key for the public one.
				if len(k.val) != 4 || k.u32() != v2UIDPlaceholder {
					return errV2UIDEnum
				}
			case ttlv.TypeInteger:
				return errV2IntegerUID
			default:
				return errV2InvalidUID
			}
		default:
			kids = append(kids, k)
		}
	}
	pl.kids = kids
	if err := walkErr(pl, nestedRefsToV1); err != nil {
		return err
	}
	return walkErr(pl, keyValueToV1)
}

// nestedRefsToV1 turns the Attribute References below n (a Key Wrapping
// Specification's, for example) into Attribute Names.
func nestedRefsToV1(n *tnode) error {
	for i, k := range n.kids {
		if k.tag != tagAttributeReference {
			continue
		}
		name, err := refToName(k)
		if err != nil {
			return err
		}
		n.kids[i] = name
	}
	return nil
}

// extendedToDateTime turns a Date-Time Extended (microseconds) into a
// Date-Time (seconds, rounded down), the only date type the handlers
// know.
func extendedToDateTime(n *tnode) {
	if n.typ != typeDateTimeExtended {
		return
	}
	us := n.i64()
	s := us / 1_000_000
	if us%1_000_000 < 0 {
		s--
	}
	n.typ = ttlv.TypeDateTime
	n.val = be64(s)
}

func be64(v int64) []byte {
	u := uint64(v)
	return []byte{byte(u >> 56), byte(u >> 48), byte(u >> 40), byte(u >> 32), byte(u >> 24), byte(u >> 16), byte(u >> 8), byte(u)}
}

// keyValueToV1 turns the Attributes of a 2.x Key Value (Register) into
// the Attribute items of a 1.x one.
func keyValueToV1(n *tnode) error {
	if n.tag != kmip.TagKeyValue || n.typ != ttlv.TypeStructure {
		return nil
	}
	kids := make([]*tnode, 0, len(n.kids))
	for _, k := range n.kids {
		if k.tag != tagAttributes {
			kids = append(kids, k)
			continue
		}
		attrs, err := attrsToV1(k)
		if err != nil {
			return err
		}
		kids = append(kids, attrs...)
	}
	n.kids = kids
	return nil
}

// keyValueToV2 is keyValueToV1 for answers (Get).
func keyValueToV2(n *tnode, changed *bool) {
	if n.tag != kmip.TagKeyValue || n.typ != ttlv.TypeStructure ||
		!slices.ContainsFunc(n.kids, func(k *tnode) bool { return k.tag == kmip.TagAttribute }) {
		return
	}
	var kids, attrs []*tnode
	for _, k := range n.kids {
		if k.tag != kmip.TagAttribute {
			kids = append(kids, k)
			continue
		}
		if a, ok := attrToV2(k); ok {
			attrs = append(attrs, a)
		}
	}
	if len(attrs) > 0 {
		kids = append(kids, structNode(tagAttributes, attrs...))
	}
	n.kids = kids
	*changed = true
}

// walk calls fn on n and everything below it.
func walk(n *tnode, fn func(*tnode)) {
	fn(n)
	for _, k := range n.kids {
		walk(k, fn)
	}
}

// walkErr is walk with a function that may fail.
func walkErr(n *tnode, fn func(*tnode) error) error {
	if err := fn(n); err != nil {
		return err
	}
	for _, k := range n.kids {
		if err := walkErr(k, fn); err != nil {
			return err
		}
	}
	return nil
}

// toV2 translates the answers of the 2.x-shaped items of out, the
// encoded response to m's message, into 2.x form. out is cleared if a
// new encoding replaces it (it may hold key material).
func toV2(out []byte, m *v2Message) []byte {
	root, err := parseTree(out)
	if err != nil {
		return out
	}
	i, changed := 0, false
	for _, bi := range root.kids {
		if bi.tag != kmip.TagBatchItem {
			continue
		}
		if i >= len(m.items) {
			break
		}
		it := m.items[i]
		i++
		pl := bi.child(kmip.TagResponsePayload)
		if !it.v2 || pl == nil || pl.typ != ttlv.TypeStructure {
			continue
		}
		if responseToV2(it.op, pl) {
			changed = true
		}
	}
	if !changed {
		return out
	}
	b := root.bytes()
	clear(out)
	return b
}

// responseToV2 rewrites a 1.x answer payload of op in place and reports
// whether its encoding changed: a Get answer without attributes in its
// Key Value, the most common one, is the same in both forms.
func responseToV2(op kmip.Operation, pl *tnode) (changed bool) {
	kids := make([]*tnode, 0, len(pl.kids)+1)
	switch op {
	case kmip.OperationGetAttributes:
		var attrs []*tnode
		for _, k := range pl.kids {
			if k.tag != kmip.TagAttribute {
				kids = append(kids, k)
			} else if a, ok := attrToV2(k); ok {
				attrs = append(attrs, a)
			}
		}
		kids = append(kids, structNode(tagAttributes, attrs...))
		changed = true
	case kmip.OperationGetAttributeList:
		for _, k := range pl.kids {
			if k.tag != kmip.TagAttributeName {
				kids = append(kids, k)
				continue
			}
			changed = true
			if r, ok := nameToRef(k); ok {
				kids = append(kids, r)
			}
		}
	default:
		for _, k := range pl.kids {
			// 2.x answers of Add / Modify / Delete / Set / Adjust
			// Attribute carry only the identifier, and those of Create,
			// Register, Re-key ... no template-attribute.
			if !v1TemplateTags[k.tag] && k.tag != kmip.TagAttribute {
				kids = append(kids, k)
			}
		}
		changed = len(kids) != len(pl.kids)
	}
	pl.kids = kids
	walk(pl, func(n *tnode) { keyValueToV2(n, &changed) })
	return changed
}

// v2Growth bounds how many bytes the 2.x form of resp, the answer to bi,
// may take beyond its 1.x form, so that the response budget (limits.go)
// holds after the translation: a custom attribute gains a Vendor
// Identification (and, in Get Attribute List, a structure), where every
// other attribute only loses its name.
func v2Growth(ctx context.Context, bi *kmip.RequestBatchItem, resp *kmip.ResponseBatchItem, err error) int {
	m := v2MessageOf(ctx)
	if m == nil || err != nil || resp == nil {
		return 0
	}
	if it := m.item(bi); it == nil || !it.v2 {
		return 0
	}
	const perCustom = 24
	n := 0
	switch p := resp.ResponsePayload.(type) {
	case *payloads.GetAttributesResponsePayload:
		n = 8 // the Attributes structure
		for _, a := range p.Attribute {
			if a.AttributeName.IsCustom() {
				n += perCustom
			}
		}
	case *payloads.GetAttributeListResponsePayload:
		for _, a := range p.AttributeName {
			if a.IsCustom() {
				n += perCustom
			}
		}
	}
	return n
}
