// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"context"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kesbridge/kes/internal/cache"
	"github.com/kesbridge/kes/internal/crypto"
	"github.com/kesbridge/kes/internal/keys"
	"github.com/kesbridge/kes/keystore"
	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// countingStore counts keystore reads.
type countingStore struct {
	keystore.Store
	gets atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, name string) ([]byte, error) {
	s.gets.Add(1)
	return s.Store.Get(ctx, name)
}

// createTagged creates a key over KMIP with a Name, an Object Group and
// an x-tag custom attribute.
func createTagged(t testing.TB, e *env, name, group, tag string) string {
	t.Helper()
	c := e.raw(e.client)
	resp := send(t, c, request(kmip.V1_4, &payloads.CreateRequestPayload{
		ObjectType: kmip.ObjectTypeSymmetricKey,
		TemplateAttribute: kmip.TemplateAttribute{Attribute: []kmip.Attribute{
			{AttributeName: kmip.AttributeNameCryptographicAlgorithm, AttributeValue: kmip.CryptographicAlgorithmAES},
			{AttributeName: kmip.AttributeNameCryptographicLength, AttributeValue: int32(256)},
			{AttributeName: kmip.AttributeNameCryptographicUsageMask, AttributeValue: kmip.CryptographicUsageEncrypt | kmip.CryptographicUsageDecrypt},
			{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: name, NameType: kmip.NameTypeUninterpretedTextString}},
			{AttributeName: kmip.AttributeNameObjectGroup, AttributeValue: group},
			{AttributeName: "x-tag", AttributeValue: tag},
		}},
	}))
	wantOK(t, resp.BatchItem[0])
	return resp.BatchItem[0].ResponsePayload.(*payloads.CreateResponsePayload).UniqueIdentifier
}

func locateBy(t testing.TB, e *env, attrs ...kmip.Attribute) []string {
	t.Helper()
	resp := send(t, e.raw(e.client), request(kmip.V1_4, &locateRequest{Attribute: attrs}))
	wantOK(t, resp.BatchItem[0])
	got := resp.BatchItem[0].ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier
	slices.Sort(got)
	return got
}

func byName(n string) kmip.Attribute {
	return kmip.Attribute{AttributeName: kmip.AttributeNameName, AttributeValue: kmip.Name{NameValue: n, NameType: kmip.NameTypeUninterpretedTextString}}
}

// A Locate by Name, Object Group or custom attribute reads the index's
// few candidates, not every key. The cache expires at once, so every
// key read is a keystore read.
func TestLocateReadsOnlyCandidates(t *testing.T) {
	store := &countingStore{Store: keystore.NewMem()}
	ks := keys.New(keys.Config{Store: store, Cache: cache.Config{Expiry: time.Nanosecond}})
	t.Cleanup(func() { ks.Close() })
	e := newEnv(t, func(c *Config) { c.Keys = ks })
	e.keys = ks
	var uids []string
	for i := range 100 {
		uids = append(uids, createTagged(t, e, fmt.Sprintf("key-%d", i), fmt.Sprintf("group-%d", i/10), fmt.Sprintf("tag-%d", i)))
	}
	locateBy(t, e, byName("key-1")) // builds the index
	for _, tt := range []struct {
		name   string
		filter kmip.Attribute
		want   []string
	}{
		{"name", byName("key-42"), uids[42:43]},
		{"group", kmip.Attribute{AttributeName: kmip.AttributeNameObjectGroup, AttributeValue: "group-3"}, uids[30:40]},
		{"custom", kmip.Attribute{AttributeName: "x-tag", AttributeValue: "tag-7"}, uids[7:8]},
	} {
		t.Run(tt.name, func(t *testing.T) {
			before := store.gets.Load()
			got := locateBy(t, e, tt.filter)
			want := slices.Clone(tt.want)
			slices.Sort(want)
			if !slices.Equal(got, want) {
				t.Fatalf("located %v, want %v", got, want)
			}
			if n := store.gets.Load() - before; n > int64(len(want)) {
				t.Fatalf("Locate read %d keys for %d candidates", n, len(want))
			}
		})
	}
}

// The index follows this node's changes at once: a renamed key is found
// by its new name only, a new key and one made over the KES API at
// once, a destroyed key no more.
func TestLocateIndexFollowsOwnChanges(t *testing.T) {
	e := newEnv(t)
	a := createTagged(t, e, "a", "g", "t")
	if got := locateBy(t, e, byName("a")); !slices.Equal(got, []string{a}) {
		t.Fatalf("%v", got)
	}
	c := e.raw(e.client)
	wantOK(t, send(t, c, request(kmip.V1_4, &payloads.ModifyAttributeRequestPayload{
		UniqueIdentifier: a,
		Attribute:        byName("renamed"),
	})).BatchItem[0])
	if got := locateBy(t, e, byName("a")); len(got) != 0 {
		t.Fatalf("old name still found: %v", got)
	}
	if got := locateBy(t, e, byName("renamed")); !slices.Equal(got, []string{a}) {
		t.Fatalf("new name: %v", got)
	}
	if err := e.keys.Create(context.Background(), "kes-key", "test"); err != nil {
		t.Fatal(err)
	}
	if got := locateBy(t, e, byName("kes-key")); !slices.Equal(got, []string{"kes-key"}) {
		t.Fatalf("key made over the KES API: %v", got)
	}
	b := createTagged(t, e, "b", "g", "t")
	want := []string{a, b}
	slices.Sort(want)
	if got := locateBy(t, e, kmip.Attribute{AttributeName: kmip.AttributeNameObjectGroup, AttributeValue: "g"}); !slices.Equal(got, want) {
		t.Fatalf("group: %v, want %v", got, want)
	}
	wantOK(t, send(t, c, request(kmip.V1_4, &payloads.RevokeRequestPayload{
		UniqueIdentifier: b, RevocationReason: kmip.RevocationReason{RevocationReasonCode: kmip.RevocationReasonCodeCessationOfOperation},
	})).BatchItem[0])
	wantOK(t, send(t, c, request(kmip.V1_4, &payloads.DestroyRequestPayload{UniqueIdentifier: b})).BatchItem[0])
	if got := locateBy(t, e, kmip.Attribute{AttributeName: kmip.AttributeNameObjectGroup, AttributeValue: "g"}); !slices.Equal(got, []string{a}) {
		t.Fatalf("after destroy: %v", got)
	}
	// A filter the index does not know, with one it knows: both apply.
	if got := locateBy(t, e, byName("renamed"), kmip.Attribute{AttributeName: kmip.AttributeNameObjectType, AttributeValue: kmip.ObjectTypeSecretData}); len(got) != 0 {
		t.Fatalf("a filter beside the index's was ignored: %v", got)
	}
	// The same custom value with another type is another term.
	if got := locateBy(t, e, kmip.Attribute{AttributeName: "x-tag", AttributeValue: int32(1)}); len(got) != 0 {
		t.Fatalf("custom attribute of another type: %v", got)
	}
}

// A Locate with very many filters, or a huge value, is answered within
// the message limits and finds nothing it should not.
func TestLocateIndexHostileFilters(t *testing.T) {
	e := newEnv(t)
	a := createTagged(t, e, "a", "g", "t")
	many := []kmip.Attribute{byName("a")}
	for i := range 5000 {
		many = append(many, kmip.Attribute{AttributeName: "x-tag", AttributeValue: fmt.Sprintf("v%d", i)})
	}
	if got := locateBy(t, e, many...); len(got) != 0 {
		t.Fatalf("many filters: %v", got)
	}
	huge := kmip.Attribute{AttributeName: "x-tag", AttributeValue: strings.Repeat("v", 900_000)}
	if got := locateBy(t, e, huge); len(got) != 0 {
		t.Fatalf("huge value: %v", got)
	}
	if got := locateBy(t, e, byName("a"), byName("a")); !slices.Equal(got, []string{a}) {
		t.Fatalf("repeated filter: %v", got)
	}
}

// BenchmarkLocate100k measures Locate by Name, by Object Group (10 keys)
// and by a custom attribute among 100,000 keys once the index is warm,
// on the message path without TLS, and reports the median latency.
func BenchmarkLocate100k(b *testing.B) {
	const n = 100_000
	e := newEnv(b)
	ctx := context.Background()
	for i := range n {
		_, err := e.keys.CreateKMIP(ctx, keys.NewObject{
			Algorithm: keys.AlgorithmAES, Bits: 256,
			Meta: func(uid string, _ *crypto.KeyVersion) (keys.Metadata, error) {
				obj := &object{uid: uid, typ: kmip.ObjectTypeSymmetricKey, alg: kmip.CryptographicAlgorithmAES, length: 256}
				obj.set(kmip.AttributeNameName, kmip.Name{NameValue: fmt.Sprintf("key-%d", i), NameType: kmip.NameTypeUninterpretedTextString})
				obj.set(kmip.AttributeNameObjectGroup, fmt.Sprintf("group-%d", i/10))
				obj.set("x-tag", fmt.Sprintf("tag-%d", i))
				return obj.meta()
			},
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	sctx := sessionContext(e)
	msg := func(a kmip.Attribute) []byte {
		return ttlv.MarshalTTLV(request(kmip.V1_4, &locateRequest{Attribute: []kmip.Attribute{a}}))
	}
	for _, bb := range []struct {
		name   string
		filter func(i int) kmip.Attribute
		want   int
	}{
		{"name", func(i int) kmip.Attribute { return byName(fmt.Sprintf("key-%d", i%n)) }, 1},
		{"group", func(i int) kmip.Attribute {
			return kmip.Attribute{AttributeName: kmip.AttributeNameObjectGroup, AttributeValue: fmt.Sprintf("group-%d", i%(n/10))}
		}, 10},
		{"custom", func(i int) kmip.Attribute {
			return kmip.Attribute{AttributeName: "x-tag", AttributeValue: fmt.Sprintf("tag-%d", i%n)}
		}, 1},
	} {
		b.Run(bb.name, func(b *testing.B) {
			run := func(i int) {
				var resp kmip.ResponseMessage
				if err := ttlv.UnmarshalTTLV(e.srv.handleMessage(sctx, msg(bb.filter(i))), &resp); err != nil {
					b.Fatal(err)
				}
				wantOK(b, resp.BatchItem[0])
				if got := len(resp.BatchItem[0].ResponsePayload.(*payloads.LocateResponsePayload).UniqueIdentifier); got != bb.want {
					b.Fatalf("located %d, want %d", got, bb.want)
				}
			}
			run(0) // warm: the first Locate builds the index
			lat := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for i := range b.N {
				start := time.Now()
				run(i * 7919)
				lat = append(lat, time.Since(start))
			}
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
	}
}
