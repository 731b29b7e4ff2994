// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// testClock is a clock tests move by hand.
type testClock struct{ unix atomic.Int64 }

func newTestClock() *testClock {
	c := &testClock{}
	c.unix.Store(time.Now().Unix())
	return c
}

func (c *testClock) now() time.Time          { return time.Unix(c.unix.Load(), 0).UTC() }
func (c *testClock) advance(d time.Duration) { c.unix.Add(int64(d / time.Second)) }

// newClockEnv is newEnv whose key service runs on clock.
func newClockEnv(t *testing.T, clock *testClock) (*env, *keys.Service) {
	t.Helper()
	svc := keys.New(keys.Config{Store: keystore.NewMem(), Now: clock.now})
	t.Cleanup(func() { svc.Close() })
	e := newEnv(t, func(cfg *Config) { cfg.Keys = svc })
	return e, svc
}

func createAES(t *testing.T, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}, extra ...kmip.Attribute) string {
	t.Helper()
	attrs := append([]kmip.Attribute{
		{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
		{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
		{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt},
	}, extra...)
	resp := sendRaw(t, c, request(kmip.V1_4, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: kmip.TemplateAttribute{Attribute: attrs}}))
	wantOK(t, resp.BatchItem[0])
	return resp.BatchItem[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
}

func sendRaw(t *testing.T, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}, msg *kmip.RequestMessage) *kmip.ResponseMessage {
	t.Helper()
	var resp kmip.ResponseMessage
	if err := ttlv.UnmarshalTTLV(exchangeRaw(t, c, ttlv.MarshalTTLV(msg)), &resp); err != nil {
		t.Fatal(err)
	}
	return &resp
}

func attrsOf(t *testing.T, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}, v kmip.ProtocolVersion, uid string, names ...kmip.AttributeName) map[kmip.AttributeName]any {
	t.Helper()
	resp := sendRaw(t, c, request(v, &payloads.GetAttributesRequestPayload{UniqueIdentifier: uid, AttributeName: names}))
	wantOK(t, resp.BatchItem[0])
	out := map[kmip.AttributeName]any{}
	for _, a := range resp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload).Attribute {
		out[a.AttributeName] = a.AttributeValue
	}
	return out
}

// A future Activation Date activates the key when it comes, and the
// Deactivation Date deactivates it, without any operation in between.
func TestDatesAct(t *testing.T) {
	clock := newTestClock()
	e, _ := newClockEnv(t, clock)
	c := e.rawFor(t, e.client)
	start := clock.now()
	uid := createAES(t, c,
		kmip.Attribute{AttributeName: kmip.AttributeNameActivationDate, AttributeValue: start.Add(time.Hour)},
		kmip.Attribute{AttributeName: kmip.AttributeNameDeactivationDate, AttributeValue: start.Add(2 * time.Hour)})
	state := func() kmip.State {
		return attrsOf(t, c, kmip.V1_4, uid, kmip.AttributeNameState)[kmip.AttributeNameState].(kmip.State)
	}
	encrypt := func() kmip.ResponseBatchItem {
		return sendRaw(t, c, request(kmip.V1_4, &payloads.EncryptRequestPayload{UniqueIdentifier: uid,
			CryptographicParameters: &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC, PaddingMethod: kmip.PaddingMethodPKCS5},
			Data:                    []byte("hello")})).BatchItem[0]
	}
	if s := state(); s != kmip.StatePreActive {
		t.Fatalf("state %v before the activation date", s)
	}
	wantReason(t, encrypt(), kmip.ResultReasonPermissionDenied)
	clock.advance(time.Hour)
	if s := state(); s != kmip.StateActive {
		t.Fatalf("state %v at the activation date", s)
	}
	wantOK(t, encrypt())
	clock.advance(time.Hour)
	if s := state(); s != kmip.StateDeactivated {
		t.Fatalf("state %v at the deactivation date", s)
	}
	wantReason(t, encrypt(), kmip.ResultReasonPermissionDenied)
	// Deactivated by date: Destroy is allowed, as after Revoke.
	wantOK(t, sendRaw(t, c, request(kmip.V1_4, &payloads.DestroyRequestPayload{UniqueIdentifier: uid})).BatchItem[0])
}

// Process Start and Protect Stop Dates bound Decrypt and Encrypt
// (CS-BC-M-14: Permission Denied outside them).
func TestDatesUsagePeriod(t *testing.T) {
	clock := newTestClock()
	e, _ := newClockEnv(t, clock)
	c := e.rawFor(t, e.client)
	now := clock.now()
	uid := createAES(t, c,
		kmip.Attribute{AttributeName: kmip.AttributeNameActivationDate, AttributeValue: now.Add(-time.Hour)},
		kmip.Attribute{AttributeName: kmip.AttributeNameProcessStartDate, AttributeValue: now.Add(time.Hour)},
		kmip.Attribute{AttributeName: kmip.AttributeNameProtectStopDate, AttributeValue: now.Add(2 * time.Hour)})
	params := &kmip.CryptographicParameters{BlockCipherMode: kmip.BlockCipherModeCBC, PaddingMethod: kmip.PaddingMethodPKCS5}
	enc := sendRaw(t, c, request(kmip.V1_4, &payloads.EncryptRequestPayload{UniqueIdentifier: uid, CryptographicParameters: params, Data: []byte("hello")})).BatchItem[0]
	wantOK(t, enc)
	ep := enc.ResponsePayload.(*payloads.EncryptResponsePayload)
	decrypt := func() kmip.ResponseBatchItem {
		return sendRaw(t, c, request(kmip.V1_4, &payloads.DecryptRequestPayload{UniqueIdentifier: uid, CryptographicParameters: params,
			Data: ep.Data, IVCounterNonce: ep.IVCounterNonce})).BatchItem[0]
	}
	wantReason(t, decrypt(), kmip.ResultReasonPermissionDenied)
	clock.advance(time.Hour)
	wantOK(t, decrypt())
	clock.advance(time.Hour)
	wantReason(t, sendRaw(t, c, request(kmip.V1_4, &payloads.EncryptRequestPayload{UniqueIdentifier: uid, CryptographicParameters: params, Data: []byte("x")})).BatchItem[0],
		kmip.ResultReasonPermissionDenied)
	wantOK(t, decrypt())
}

// Dates a client may not set, or that cannot be stored, are refused
// without changing the key.
func TestDatesRefused(t *testing.T) {
	clock := newTestClock()
	e, svc := newClockEnv(t, clock)
	c := e.rawFor(t, e.client)
	now := clock.now()
	tmpl := func(attrs ...kmip.Attribute) kmip.ResponseBatchItem {
		return sendRaw(t, c, request(kmip.V1_4, &payloads.CreateRequestPayload{ObjectType: kmip.ObjectTypeSymmetricKey,
			TemplateAttribute: kmip.TemplateAttribute{Attribute: attrs}})).BatchItem[0]
	}
	act := func(t time.Time) kmip.Attribute {
		return kmip.Attribute{AttributeName: kmip.AttributeNameActivationDate, AttributeValue: t}
	}
	deact := func(t time.Time) kmip.Attribute {
		return kmip.Attribute{AttributeName: kmip.AttributeNameDeactivationDate, AttributeValue: t}
	}
	wantReason(t, tmpl(act(now.Add(time.Hour)), deact(now)), kmip.ResultReasonInvalidField)
	wantReason(t, tmpl(act(time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC))), kmip.ResultReasonInvalidField)
	wantReason(t, tmpl(act(time.Unix(-1<<40, 0))), kmip.ResultReasonInvalidField)
	wantReason(t, tmpl(act(now), act(now)), kmip.ResultReasonInvalidField)

	uid := createAES(t, c, act(now.Add(time.Hour)))
	add := func(a kmip.Attribute) kmip.ResponseBatchItem {
		return sendRaw(t, c, request(kmip.V1_4, &payloads.AddAttributeRequestPayload{UniqueIdentifier: uid, Attribute: a})).BatchItem[0]
	}
	modify := func(a kmip.Attribute) kmip.ResponseBatchItem {
		return sendRaw(t, c, request(kmip.V1_4, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: uid, Attribute: a})).BatchItem[0]
	}
	wantReason(t, add(deact(now)), kmip.ResultReasonInvalidField)                                          // before the activation date
	wantReason(t, add(deact(time.Date(99999, 1, 1, 0, 0, 0, 0, time.UTC))), kmip.ResultReasonInvalidField) // cannot be stored
	wantReason(t, add(act(now)), kmip.ResultReasonIllegalOperation)                                        // single-valued
	// Server-only attributes cannot be set (KMIP 1.x: Permission Denied).
	for _, a := range []kmip.Attribute{
		{AttributeName: kmip.AttributeNameFresh, AttributeValue: true},
		{AttributeName: kmip.AttributeNameLeaseTime, AttributeValue: time.Hour},
		{AttributeName: kmip.AttributeNameOriginalCreationDate, AttributeValue: now},
		{AttributeName: kmip.AttributeNameRandomNumberGenerator, AttributeValue: kmip.RNGParameters{RNGAlgorithm: kmip.RNGAlgorithmANSIX9_31}},
		{AttributeName: kmip.AttributeNameInitialDate, AttributeValue: now},
	} {
		wantReason(t, add(a), kmip.ResultReasonPermissionDenied)
		wantReason(t, modify(a), kmip.ResultReasonPermissionDenied)
	}
	// A huge Attribute Index names nothing.
	idx := int32(1 << 30)
	wantReason(t, modify(kmip.Attribute{AttributeName: kmip.AttributeNameActivationDate, AttributeIndex: &idx, AttributeValue: now}), kmip.ResultReasonItemNotFound)
	if a := attrsOf(t, c, kmip.V1_4, uid, kmip.AttributeNameState, kmip.AttributeNameDeactivationDate); a[kmip.AttributeNameState] != kmip.StatePreActive || a[kmip.AttributeNameDeactivationDate] != nil {
		t.Fatalf("refused changes changed the key: %v", a)
	}

	// Once Active (by its date), the Activation Date is fixed
	// (SKLC-M-3), the Deactivation Date may still be set.
	clock.advance(time.Hour)
	wantReason(t, modify(act(now.Add(5*time.Hour))), kmip.ResultReasonPermissionDenied)
	wantOK(t, add(deact(now.Add(3*time.Hour))))

	// A key made over the KES API takes no dates.
	if err := svc.Create(t.Context(), "kes-key", "admin"); err != nil {
		t.Fatal(err)
	}
	wantReason(t, sendRaw(t, c, request(kmip.V1_4, &payloads.AddAttributeRequestPayload{UniqueIdentifier: "kes-key", Attribute: deact(now.Add(time.Hour))})).BatchItem[0],
		kmip.ResultReasonPermissionDenied)
	if info, err := svc.Describe(t.Context(), "kes-key"); err != nil || info.State != keys.StateActive {
		t.Fatalf("KES key: %v, %v", info.State, err)
	}
}

// The attributes every 1.x client may read, each with its true value.
func TestDerivedAttributes(t *testing.T) {
	clock := newTestClock()
	e, _ := newClockEnv(t, clock)
	c := e.rawFor(t, e.client)
	uid := createAES(t, c)
	a := attrsOf(t, c, kmip.V1_4, uid)
	if a[kmip.AttributeNameFresh] != true {
		t.Errorf("Fresh %v before any Get", a[kmip.AttributeNameFresh])
	}
	if a[kmip.AttributeNameLeaseTime] != LeaseTime {
		t.Errorf("Lease Time %v", a[kmip.AttributeNameLeaseTime])
	}
	if a[kmip.AttributeNameOriginalCreationDate] != a[kmip.AttributeNameInitialDate] || a[kmip.AttributeNameInitialDate] == nil {
		t.Errorf("Original Creation Date %v, Initial Date %v", a[kmip.AttributeNameOriginalCreationDate], a[kmip.AttributeNameInitialDate])
	}
	if rng, ok := a[kmip.AttributeNameRandomNumberGenerator].(kmip.RNGParameters); !ok || rng.RNGAlgorithm == 0 {
		t.Errorf("Random Number Generator %v", a[kmip.AttributeNameRandomNumberGenerator])
	}
	if _, ok := a[operationPolicyName]; ok {
		t.Errorf("the default Operation Policy Name is listed")
	}
	if p := attrsOf(t, c, kmip.V1_4, uid, operationPolicyName)[operationPolicyName]; p != "default" {
		t.Errorf("Operation Policy Name %v", p)
	}
	// Versions that do not define an attribute do not get it.
	a10 := attrsOf(t, c, kmip.V1_0, uid)
	for _, n := range []kmip.AttributeName{kmip.AttributeNameFresh, kmip.AttributeNameOriginalCreationDate, kmip.AttributeNameRandomNumberGenerator, kmip.AttributeNameSensitive} {
		if _, ok := a10[n]; ok {
			t.Errorf("KMIP 1.0 listing has %s", n)
		}
	}
	if _, ok := a10[kmip.AttributeNameLeaseTime]; !ok {
		t.Errorf("KMIP 1.0 listing lacks Lease Time")
	}
	// The first Get of the material makes the key not Fresh, for good.
	wantOK(t, sendRaw(t, c, request(kmip.V1_4, &payloads.GetRequestPayload{UniqueIdentifier: uid})).BatchItem[0])
	if f := attrsOf(t, c, kmip.V1_4, uid, kmip.AttributeNameFresh)[kmip.AttributeNameFresh]; f != false {
		t.Errorf("Fresh %v after Get", f)
	}
	// A lease ends no later than the Deactivation Date.
	wantOK(t, sendRaw(t, c, request(kmip.V1_4, &payloads.AddAttributeRequestPayload{UniqueIdentifier: uid,
		Attribute: kmip.Attribute{AttributeName: kmip.AttributeNameDeactivationDate, AttributeValue: clock.now().Add(10 * time.Minute)}})).BatchItem[0])
	if l := attrsOf(t, c, kmip.V1_4, uid, kmip.AttributeNameLeaseTime)[kmip.AttributeNameLeaseTime]; l != 10*time.Minute {
		t.Errorf("Lease Time %v with a Deactivation Date 10 min ahead", l)
	}
}

// TestDatesTC92 replays the OASIS case TC-92 (an expired key re-keyed
// with the same life cycle), which repeats Get Attributes until the
// Deactivation Date, 120 s after the Activation Date, has passed: the
// test clock moves 121 s before that message instead of waiting.
func TestDatesTC92(t *testing.T) {
	for _, file := range []string{"v1.0/TC_92_10_Existing_Key_Expired_Re_key_with_Same_Life_cycle.xml",
		"v1.1/TC_92_11_Existing_Key_Expired_Re_key_with_Same_Life_cycle.xml",
		"v1.2/TC_92_12_Existing_Key_Expired_Re_key_with_Same_Life_cycle.xml"} {
		t.Run(file, func(t *testing.T) { replayDated(t, file, 3, 121*time.Second) })
	}
}

// replayDated runs an OASIS case against a server on a test clock, which
// moves by advance before message at (none if at < 0). $NOW is the test
// clock's time; a case without $NOW starts at its first response's time.
func replayDated(t *testing.T, file string, at int, advance time.Duration) {
	data, err := os.ReadFile(filepath.Join(oasisRoot(t), file))
	if err != nil {
		t.Fatal(err)
	}
	clock := newTestClock()
	if !nowRe.Match(data) {
		m := regexp.MustCompile(`TimeStamp type="DateTime" value="([^"]+)"`).FindSubmatch(data)
		start, err := time.Parse(time.RFC3339, string(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		clock.unix.Store(start.Unix())
	}
	e, _ := newClockEnv(t, clock)
	c := e.rawFor(t, e.client)
	msgs := msgRe.FindAllString(string(data), -1)
	if len(msgs) == 0 || len(msgs)%2 != 0 {
		t.Fatalf("%d messages", len(msgs))
	}
	uids := map[string]string{}
	now := func(s string) string {
		off := 0
		if m := nowRe.FindStringSubmatch(s); len(m) > 1 && m[1] != "" {
			off, _ = strconv.Atoi(m[1])
		}
		return clock.now().Add(time.Duration(off) * time.Second).Format(time.RFC3339)
	}
	for i := 0; i < len(msgs); i += 2 {
		if i/2 == at {
			clock.advance(advance)
		}
		reqXML := nowRe.ReplaceAllStringFunc(msgs[i], now)
		reqXML = uidRe.ReplaceAllStringFunc(reqXML, func(s string) string {
			if v, ok := uids[s]; ok {
				return v
			}
			return s
		})
		var req kmip.RequestMessage
		if err := ttlv.UnmarshalXML([]byte(reqXML), &req); err != nil {
			t.Fatalf("message %d: %v", i/2, err)
		}
		var want kmip.ResponseMessage
		if err := ttlv.UnmarshalXML([]byte(nowRe.ReplaceAllStringFunc(msgs[i+1], now)), &want); err != nil {
			t.Fatal(err)
		}
		actual := exchangeRaw(t, c, ttlv.MarshalTTLV(&req))
		var w, g ttlv.Value
		if err := ttlv.UnmarshalTTLV(ttlv.MarshalTTLV(&want), &w); err != nil {
			t.Fatal(err)
		}
		if err := ttlv.UnmarshalTTLV(actual, &g); err != nil {
			t.Fatal(err)
		}
		if regexp.MustCompile(`AttributeName type="TextString" value="[^"]*  `).MatchString(reqXML) {
			continue // a name such as "Activation   Date": a layout artefact of the 1.2 vector
		}
		gd := &golden{uids: uids, getAll: getAllItems(&req)}
		if err := gd.compare(w, g, "ResponseMessage"); err != nil {
			var got kmip.ResponseMessage
			_ = ttlv.UnmarshalTTLV(actual, &got)
			t.Fatalf("message %d: %v\ngot:\n%s", i/2, err, strings.TrimSpace(string(ttlv.MarshalText(&got))))
		}
	}
}

// The ovh client: dates set with Create, Add Attribute and Re-key act on
// the key the client uses (KMIP 1.4 and the version it negotiates).
func TestDatesClient(t *testing.T) {
	clock := newTestClock()
	e, _ := newClockEnv(t, clock)
	c := e.dial(e.client)
	now := clock.now()
	id := c.Create().AES(256, kmip.CryptographicUsageEncrypt|kmip.CryptographicUsageDecrypt).
		WithAttribute(kmip.AttributeNameActivationDate, now.Add(time.Minute)).MustExec().UniqueIdentifier
	state := func(id string) kmip.State {
		t.Helper()
		return attrValue(t, c.GetAttributes(id, kmip.AttributeNameState).MustExec().Attribute, kmip.AttributeNameState).(kmip.State)
	}
	if s := state(id); s != kmip.StatePreActive {
		t.Fatalf("state %v", s)
	}
	clock.advance(time.Minute)
	if s := state(id); s != kmip.StateActive {
		t.Fatalf("state %v at the activation date", s)
	}
	c.AddAttribute(id, kmip.AttributeNameDeactivationDate, now.Add(time.Hour)).MustExec()
	// Re-key with an Offset: the replacement's dates keep their distance.
	nid := c.Rekey(id).WithOffset(10 * time.Minute).MustExec().UniqueIdentifier
	attrs := c.GetAttributes(nid, kmip.AttributeNameActivationDate, kmip.AttributeNameDeactivationDate, kmip.AttributeNameState).MustExec().Attribute
	act := attrValue(t, attrs, kmip.AttributeNameActivationDate).(time.Time)
	deact := attrValue(t, attrs, kmip.AttributeNameDeactivationDate).(time.Time)
	if want := clock.now().Add(10 * time.Minute); !act.Equal(want) || deact.Sub(act) != 59*time.Minute {
		t.Fatalf("replacement dates %v, %v; want activation %v and the old distance 59m", act, deact, want)
	}
	if s := attrValue(t, attrs, kmip.AttributeNameState); s != kmip.StatePreActive {
		t.Fatalf("replacement state %v before its activation date", s)
	}
	clock.advance(10 * time.Minute)
	if s := state(nid); s != kmip.StateActive {
		t.Fatalf("replacement state %v at its activation date", s)
	}
	fresh := attrValue(t, c.GetAttributes(nid, kmip.AttributeNameFresh).MustExec().Attribute, kmip.AttributeNameFresh)
	if fresh != true {
		t.Fatalf("Fresh %v", fresh)
	}
}

// Attribute Index values up to 10,000: the indexes the server gives stay
// unique and dense, every other index names nothing (Item Not Found),
// and no such request changes the key. (record_limits_test.go covers the
// cap on instances, keys.MaxAttributes.)
func TestAttributeIndexFlood(t *testing.T) {
	e := newEnv(t)
	c := e.rawFor(t, e.client)
	uid := createAES(t, c)
	batch := func(items []kmip.OperationPayload) []kmip.ResponseBatchItem {
		msg := request(kmip.V1_4, items...)
		msg.Header.BatchErrorContinuationOption = kmip.BatchErrorContinuationOptionContinue
		// A connection per batch: each has a deadline of its own.
		return sendRaw(t, e.rawFor(t, e.client), msg).BatchItem
	}
	var adds []kmip.OperationPayload
	for i := 0; i < 3; i++ {
		adds = append(adds, &payloads.AddAttributeRequestPayload{UniqueIdentifier: uid,
			Attribute: kmip.Attribute{AttributeName: "x-tag", AttributeValue: strconv.Itoa(i)}})
	}
	ok := 0
	for _, bi := range batch(adds) {
		wantOK(t, bi)
		ok++
	}
	if ok != 3 {
		t.Fatalf("%d instances added", ok)
	}
	resp := sendRaw(t, c, request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: uid, AttributeName: []kmip.AttributeName{"x-tag"}}))
	wantOK(t, resp.BatchItem[0])
	seen := map[int32]bool{}
	for _, a := range resp.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload).Attribute {
		idx := int32(0)
		if a.AttributeIndex != nil {
			idx = *a.AttributeIndex
		}
		if seen[idx] || idx < 0 || int(idx) >= ok {
			t.Fatalf("attribute index %d (of %d instances)", idx, ok)
		}
		seen[idx] = true
	}
	if len(seen) != ok {
		t.Fatalf("%d instances listed, %d added", len(seen), ok)
	}
	for start := ok; start < 10000; start += 1000 {
		var mods []kmip.OperationPayload
		for i := start; i < min(start+1000, 10000); i++ {
			idx := int32(i)
			mods = append(mods, &payloads.ModifyAttributeRequestPayload{UniqueIdentifier: uid,
				Attribute: kmip.Attribute{AttributeName: "x-tag", AttributeIndex: &idx, AttributeValue: "v"}})
		}
		for _, bi := range batch(mods) {
			wantReason(t, bi, kmip.ResultReasonItemNotFound)
		}
	}
	after := sendRaw(t, e.rawFor(t, e.client), request(kmip.V1_4, &payloads.GetAttributesRequestPayload{UniqueIdentifier: uid, AttributeName: []kmip.AttributeName{"x-tag"}}))
	for _, a := range after.BatchItem[0].ResponsePayload.(*payloads.GetAttributesResponsePayload).Attribute {
		if a.AttributeValue == "v" {
			t.Fatalf("a refused Modify changed instance %v", a.AttributeIndex)
		}
	}
}

// Repeated attribute names: a second instance of a single-valued
// attribute and a Name the object already has are refused (KMIP 1.x:
// Illegal Operation), as are server-only attributes (Permission Denied).
func TestRepeatedAttributes(t *testing.T) {
	e := newEnv(t)
	c := e.rawFor(t, e.client)
	disk := kmip.Name{NameValue: "disk", NameType: kmip.NameTypeUninterpretedTextString}
	uid := createAES(t, c, kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: disk})
	add := func(a kmip.Attribute) kmip.ResponseBatchItem {
		return sendRaw(t, c, request(kmip.V1_4, &payloads.AddAttributeRequestPayload{UniqueIdentifier: uid, Attribute: a})).BatchItem[0]
	}
	contact := kmip.Attribute{AttributeName: kmip.AttributeNameContactInformation, AttributeValue: "ops"}
	wantOK(t, add(contact))
	wantReason(t, add(contact), kmip.ResultReasonIllegalOperation)
	wantReason(t, add(kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: disk}), kmip.ResultReasonIllegalOperation)
	wantOK(t, add(kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: "disk-2", NameType: kmip.NameTypeUninterpretedTextString}}))
	wantReason(t, add(kmip.Attribute{AttributeName: kmip.AttributeNameFresh, AttributeValue: true}), kmip.ResultReasonPermissionDenied)
	// Operation Policy Name reads as "default" but is not there: a
	// client may set it once.
	opn := kmip.Attribute{AttributeName: operationPolicyName, AttributeValue: "default"}
	wantOK(t, add(opn))
	wantReason(t, add(opn), kmip.ResultReasonIllegalOperation)
}
