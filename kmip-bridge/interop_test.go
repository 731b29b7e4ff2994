// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"testing"

	"github.com/ovh/kmip-go"
)

// TestObjectNotFoundReason: an identifier that names no object is Object
// Not Found at KMIP 2.0 and 2.1 (BL-M-4-21), Item Not Found at 1.x; an
// attribute that is not there keeps its own reason.
func TestObjectNotFoundReason(t *testing.T) {
	e := newEnv(t)
	c := e.raw(e.client)
	for _, tc := range []struct {
		major, minor int32
		reason       kmip.ResultReason
	}{{1, 4, kmip.ResultReasonItemNotFound}, {2, 0, reasonObjectNotFound}, {2, 1, reasonObjectNotFound}} {
		for _, o := range []v2op{
			op(kmip.OperationGet, text(kmip.TagUniqueIdentifier, "no-such-key")),
			op(kmip.OperationDestroy, text(kmip.TagUniqueIdentifier, "no-such-key")),
			// A version identifier of a key that does not exist.
			op(kmip.OperationGet, text(kmip.TagUniqueIdentifier, "no-such-key/7")),
		} {
			v2Fails(t, items(v2Exchange(t, c, versionRequest(tc.major, tc.minor, o)))[0], tc.reason)
		}
	}
	// An existing key without the attribute asked for: not Object Not
	// Found.
	uid := get(*v2OK(t, items(v2Exchange(t, c, v2Request(1, sklcCreate("onf"))))[0]), kmip.TagUniqueIdentifier).Value.(string)
	resp := v2Exchange(t, c, v2Request(1, op(kmip.OperationDeleteAttribute, text(kmip.TagUniqueIdentifier, uid), aref(kmip.TagContactInformation))))
	v2Fails(t, items(resp)[0], reasonAttributeNotFound)
}
