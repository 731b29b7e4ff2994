// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovh/kmip-go"
	"github.com/ovh/kmip-go/payloads"
	"github.com/ovh/kmip-go/ttlv"
)

// The OASIS KMIP 1.0–1.4 profile test cases shipped with
// github.com/ovh/kmip-go replayed against the bridge, for the profiles it
// claims: Symmetric Key Lifecycle (SKLC), Symmetric Key Foundry (SKFF),
// Opaque Managed Object Store (OMOS), Tape Library (TL), and the baseline
// test cases of the 1.0–1.2 test-case document that use what the bridge
// implements (TC 3.1.x basic operations, 4.1 revoke, 7.1–7.2 message
// extensions, 9.1–9.4 re-key, 12.1 maximum response size, 17.1 attribute
// handling) with their 1.4 counterparts (TC-REKEY, TC-I18N).
//
// Comparison rules (anything not listed must match exactly, in order):
//   - Text strings "$UNIQUE_IDENTIFIER_n" in an expected response bind to
//     the identifier the bridge returned; later occurrences, in requests
//     and responses, must be that same identifier.
//   - Date-Time values are not compared (they are the time of the run).
//   - Result Message texts are not compared (free text).
//   - Key Material, Key (transparent symmetric key) and Digest Value byte
//     strings are compared by length only: generated keys are random.
//   - The attributes of a Get Attributes response without attribute names,
//     and the names of a Get Attribute List response, are compared as sets
//     (their order is not specified). Attributes that only the reference
//     server kept (refAttributes) may be missing.
//   - Attribute names are compared with runs of spaces collapsed: some
//     1.0–1.2 vectors carry layout spaces inside them.
//   - Query responses are server-specific: the Operation and Object Type
//     lists and the Vendor Identification text are not compared, the
//     other fields are.
//
// Cases the bridge does not pass by design are listed, with the reason, in
// goldenSkips: the one place for skipped cases. A key "file" skips the
// whole case; "file#n" sends message n but does not compare its response.

var goldenFiles = regexp.MustCompile(`^(SKLC[-_]M|SKFF[-_]M|OMOS[-_]M|TL[-_]M|TC_31[1-5]_|TC_41_|TC_9[1-4]_|TC_121_|TC_171_|TC_7[12]_|TC-REKEY|TC-I18N)`)

var goldenSkips = map[string]string{}

func init() {
	des := "3DES: the bridge creates AES keys only (3DES is deprecated; the profiles' AES variants are run)"
	tmpl := "registers a Template object: templates are deprecated since KMIP 1.3 and not supported"
	for _, f := range []string{
		"v1.0/SKFF_M_4_10_SymmetricKeyFoundryBasic_4.xml", "v1.0/SKFF_M_8_10_SymmetricKeyFoundryIntermediate_8.xml",
		"v1.0/SKFF_M_12_10_SymmetricKeyFoundryAdvanced_12.xml", "v1.0/TC_313_10_Create_Locate_Get_Destroy.xml",
		"v1.1/SKFF_M_4_11_SymmetricKeyFoundryBasic_4.xml", "v1.1/SKFF_M_8_11_SymmetricKeyFoundryIntermediate_8.xml",
		"v1.1/SKFF_M_12_11_SymmetricKeyFoundryAdvanced_12.xml", "v1.1/TC_313_11_Create_Locate_Get_Destroy.xml",
		"v1.2/TC_313_12_Create_Locate_Get_Destroy.xml",
		"v1.3/SKFF-M-4-13.xml", "v1.3/SKFF-M-8-13.xml", "v1.3/SKFF-M-12-13.xml",
		"v1.4/SKFF-M-4-14.xml", "v1.4/SKFF-M-8-14.xml", "v1.4/SKFF-M-12-14.xml",
	} {
		goldenSkips[f] = des
	}
	dates := "repeats Get Attributes until the Deactivation Date, 120 s ahead, has passed; the harness does not wait (TestDatesTC92 replays it with a test clock)"
	for _, f := range []string{
		"v1.0/TC_92_10_Existing_Key_Expired_Re_key_with_Same_Life_cycle.xml",
		"v1.1/TC_92_11_Existing_Key_Expired_Re_key_with_Same_Life_cycle.xml",
		"v1.2/TC_92_12_Existing_Key_Expired_Re_key_with_Same_Life_cycle.xml",
	} {
		goldenSkips[f] = dates
	}
	rng := "asks for the Random Number Generator attribute with the reference server's generator; the bridge's keys come from the operating system's CSPRNG, which it reports as Unspecified"
	for _, f := range []string{"v1.4/SKFF-M-10-14.xml#1", "v1.4/SKFF-M-11-14.xml#1", "v1.4/TL-M-3-14.xml#2"} {
		goldenSkips[f] = rng
	}
	goldenSkips["v1.2/TC_94_12_Create_Key_Re_key_with_New_Life_cycle.xml#4"] = "asks for \"Activation   Date\" and three more such names, a layout artefact of the 1.2 vector (the 1.0 and 1.1 cases run in full)"
	// The 1.1 case, the same with the real name, runs in full.
	goldenSkips["v1.2/TC_171_12_Handling_of_Attributes_and_Attribute_Index_Values.xml#2"] = "asks for \"Object   Type\", a layout artefact of the 1.2 vector, which names no attribute"
	for _, f := range []string{
		"v1.0/TC_312_10_Register_Create_Get_attributes_Destroy.xml", "v1.0/TC_314_10_Dual_Client_Test_Case_ID_Placeholder_linked_Locate_Get_Batch.xml",
		"v1.1/TC_312_11_Register_Create_Get_attributes_Destroy.xml", "v1.1/TC_314_11_Dual_Client_Test_Case_ID_Placeholder_linked_Locate_Get_Batch.xml",
		"v1.2/TC_312_12_Register_Create_Get_attributes_Destroy.xml", "v1.2/TC_314_12_Dual_Client_Test_Case_ID_Placeholder_linked_Locate_Get_Batch.xml",
	} {
		goldenSkips[f] = tmpl
	}
}

// refAttributes are attributes the reference server reported that the
// bridge does not keep: Key Value Present.
var refAttributes = []string{"Key Value Present"}

func oasisRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMODCACHE").Output()
	if err != nil {
		t.Skipf("no module cache: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "github.com", "ovh", "kmip-go@v0.9.2", "kmiptest", "testdata")
}

var (
	msgRe = regexp.MustCompile(`(?s)<(RequestMessage|ResponseMessage)>.*?</(RequestMessage|ResponseMessage)>`)
	nowRe = regexp.MustCompile(`\$NOW([-+]\d+)?`)
	uidRe = regexp.MustCompile(`\$UNIQUE_IDENTIFIER_\d+`)
)

func TestOASIS(t *testing.T) {
	top := t
	root := oasisRoot(t)
	// The tape library cases build on each other (TL-M-3 reads the key
	// TL-M-2 wrote): they share one server per version.
	tl := map[string]*env{}
	for _, version := range []string{"v1.0", "v1.1", "v1.2", "v1.3", "v1.4"} {
		entries, err := os.ReadDir(filepath.Join(root, version))
		if err != nil {
			t.Fatal(err)
		}
		for _, ent := range entries {
			name := ent.Name()
			if !goldenFiles.MatchString(name) {
				continue
			}
			t.Run(version+"/"+name, func(t *testing.T) {
				if why, ok := goldenSkips[version+"/"+name]; ok {
					t.Skip(why)
				}
				data, err := os.ReadFile(filepath.Join(root, version, name))
				if err != nil {
					t.Fatal(err)
				}
				// A fresh server per case: Locate must not see
				// the objects of other cases.
				e := newEnv(t)
				if strings.HasPrefix(name, "TL") {
					if tl[version] == nil {
						tl[version] = newEnv(top)
					}
					e = tl[version]
				}
				runGolden(t, e, string(data))
			})
		}
	}
}

// TestOASISSkipsExist keeps the skip table honest: every entry names a
// case that exists.
func TestOASISSkipsExist(t *testing.T) {
	root := oasisRoot(t)
	for k := range goldenSkips {
		file, _, _ := strings.Cut(k, "#")
		if _, err := os.Stat(filepath.Join(root, file)); err != nil {
			t.Errorf("skip entry %q: %v", k, err)
		}
	}
}

func runGolden(t *testing.T, e *env, doc string) {
	msgs := msgRe.FindAllString(doc, -1)
	if len(msgs) == 0 || len(msgs)%2 != 0 {
		t.Fatalf("%d messages", len(msgs))
	}
	c := e.rawFor(t, e.client)
	uids := map[string]string{}
	now := func(s string) string {
		off := 0
		if m := nowRe.FindStringSubmatch(s); len(m) > 1 && m[1] != "" {
			off, _ = strconv.Atoi(m[1])
		}
		return time.Now().Add(time.Duration(off) * time.Second).UTC().Format(time.RFC3339)
	}
	for i := 0; i < len(msgs); i += 2 {
		reqXML := nowRe.ReplaceAllStringFunc(msgs[i], now)
		reqXML = uidRe.ReplaceAllStringFunc(reqXML, func(s string) string {
			if v, ok := uids[s]; ok {
				return v
			}
			return s
		})
		var req kmip.RequestMessage
		if err := ttlv.UnmarshalXML([]byte(reqXML), &req); err != nil {
			t.Fatalf("message %d: decode request: %v", i/2, err)
		}
		var exp kmip.ResponseMessage
		if err := ttlv.UnmarshalXML([]byte(nowRe.ReplaceAllStringFunc(msgs[i+1], now)), &exp); err != nil {
			t.Fatalf("message %d: decode expected response: %v", i/2, err)
		}
		actual := exchangeRaw(t, c, ttlv.MarshalTTLV(&req))
		var want, got ttlv.Value
		if err := ttlv.UnmarshalTTLV(ttlv.MarshalTTLV(&exp), &want); err != nil {
			t.Fatal(err)
		}
		if err := ttlv.UnmarshalTTLV(actual, &got); err != nil {
			t.Fatal(err)
		}
		if why, ok := goldenSkips[fmt.Sprintf("%s#%d", t.Name()[len("TestOASIS/"):], i/2)]; ok {
			t.Logf("message %d not compared: %s", i/2, why)
			continue
		}
		g := &golden{uids: uids, getAll: getAllItems(&req)}
		if err := g.compare(want, got, "ResponseMessage"); err != nil {
			var gotMsg kmip.ResponseMessage
			_ = ttlv.UnmarshalTTLV(actual, &gotMsg)
			t.Fatalf("message %d: %v\nrequest:\n%s\nexpected:\n%s\ngot:\n%s", i/2, err,
				ttlv.MarshalText(&req), ttlv.MarshalText(&exp), ttlv.MarshalText(&gotMsg))
		}
	}
}

// getAllItems returns the batch item positions of Get Attributes requests
// without attribute names.
func getAllItems(req *kmip.RequestMessage) map[int]bool {
	m := map[int]bool{}
	for i, bi := range req.BatchItem {
		if p, ok := bi.RequestPayload.(*payloads.GetAttributesRequestPayload); ok && len(p.AttributeName) == 0 {
			m[i] = true
		}
		if bi.Operation == kmip.OperationGetAttributeList {
			m[i] = true
		}
	}
	return m
}

func exchangeRaw(t *testing.T, c interface {
	Write([]byte) (int, error)
	Read([]byte) (int, error)
}, req []byte) []byte {
	t.Helper()
	if _, err := c.Write(req); err != nil {
		t.Fatalf("write: %v", err)
	}
	return readMessage(t, c)
}

type golden struct {
	uids   map[string]string
	getAll map[int]bool
	item   int
	query  bool
}

// queryFields drops the server-specific parts of a Query response.
func queryFields(s ttlv.Struct) ttlv.Struct {
	return slices.DeleteFunc(slices.Clone(s), func(v ttlv.Value) bool {
		return v.Tag == kmip.TagOperation || v.Tag == kmip.TagObjectType || v.Tag == kmip.TagVendorIdentification
	})
}

// attrName returns the name of an Attribute structure or the text of an
// Attribute Name.
func attrName(v ttlv.Value) string {
	switch x := v.Value.(type) {
	case string:
		return strings.Join(strings.Fields(x), " ")
	case ttlv.Struct:
		if len(x) > 0 {
			if s, ok := x[0].Value.(string); ok {
				return strings.Join(strings.Fields(s), " ")
			}
		}
	}
	return ""
}

func (g *golden) compare(want, got ttlv.Value, path string) error {
	if want.Tag == kmip.TagOperation && got.Tag == kmip.TagOperation && want.Value == ttlv.Enum(kmip.OperationQuery) {
		g.query = true
	}
	if want.Tag != got.Tag {
		return fmt.Errorf("%s: tag %s, want %s", path, ttlv.TagString(got.Tag), ttlv.TagString(want.Tag))
	}
	path += "/" + ttlv.TagString(want.Tag)
	switch w := want.Value.(type) {
	case ttlv.Struct:
		gs, ok := got.Value.(ttlv.Struct)
		if !ok {
			return fmt.Errorf("%s: got %T, want a structure", path, got.Value)
		}
		if want.Tag == kmip.TagBatchItem {
			defer func() { g.item++ }()
		}
		if want.Tag == kmip.TagResponsePayload && g.getAll[g.item] {
			return g.compareSet(w, gs, path)
		}
		if want.Tag == kmip.TagResponsePayload && g.query {
			w, gs = queryFields(w), queryFields(gs)
		}
		if len(w) != len(gs) {
			return fmt.Errorf("%s: %d fields, want %d", path, len(gs), len(w))
		}
		for i := range w {
			if err := g.compare(w[i], gs[i], path); err != nil {
				return err
			}
		}
		return nil
	case string:
		gv, ok := got.Value.(string)
		if !ok {
			return fmt.Errorf("%s: got %T, want text", path, got.Value)
		}
		if want.Tag == kmip.TagResultMessage {
			return nil
		}
		if want.Tag == kmip.TagAttributeName {
			w = strings.Join(strings.Fields(w), " ")
		}
		if uidRe.MatchString(w) && uidRe.FindString(w) == w {
			if bound, ok := g.uids[w]; ok {
				if bound != gv {
					return fmt.Errorf("%s: %q, want %s = %q", path, gv, w, bound)
				}
				return nil
			}
			g.uids[w] = gv
			return nil
		}
		if w != gv {
			return fmt.Errorf("%s: %q, want %q", path, gv, w)
		}
		return nil
	case time.Time:
		if _, ok := got.Value.(time.Time); !ok {
			return fmt.Errorf("%s: got %T, want a date", path, got.Value)
		}
		return nil
	case []byte:
		gv, ok := got.Value.([]byte)
		if !ok {
			return fmt.Errorf("%s: got %T, want bytes", path, got.Value)
		}
		switch want.Tag {
		case kmip.TagKeyMaterial, kmip.TagKey, kmip.TagDigestValue:
			if len(w) != len(gv) {
				return fmt.Errorf("%s: %d bytes, want %d", path, len(gv), len(w))
			}
			return nil
		}
		if !bytes.Equal(w, gv) {
			return fmt.Errorf("%s: %x, want %x", path, gv, w)
		}
		return nil
	default:
		if fmt.Sprint(want.Value) != fmt.Sprint(got.Value) || fmt.Sprintf("%T", want.Value) != fmt.Sprintf("%T", got.Value) {
			return fmt.Errorf("%s: %v (%T), want %v (%T)", path, got.Value, got.Value, want.Value, want.Value)
		}
		return nil
	}
}

// compareSet compares the fields of a structure in any order.
func (g *golden) compareSet(want, got ttlv.Struct, path string) error {
	left := slices.Clone(got)
next:
	for _, w := range want {
		if slices.Contains(refAttributes, attrName(w)) && !slices.ContainsFunc(left, func(v ttlv.Value) bool { return attrName(v) == attrName(w) }) {
			continue
		}
		for i, gv := range left {
			// Trial comparisons must not bind identifiers.
			saved := maps.Clone(g.uids)
			if g.compare(w, gv, path) == nil {
				left = slices.Delete(left, i, i+1)
				continue next
			}
			clear(g.uids)
			maps.Copy(g.uids, saved)
		}
		return fmt.Errorf("%s: no match for %s", path, ttlv.MarshalText(w))
	}
	// The export attributes are always reported; some vectors' servers
	// reported none.
	left = slices.DeleteFunc(left, func(v ttlv.Value) bool {
		return slices.Contains(exportAttributes, attrName(v)) && !slices.ContainsFunc(want, func(w ttlv.Value) bool { return attrName(w) == attrName(v) })
	})
	if len(left) > 0 {
		return fmt.Errorf("%s: unexpected %s", path, ttlv.MarshalText(left[0]))
	}
	return nil
}

// exportAttributes are the KMIP 1.4 attributes the bridge reports for
// every key, which some reference servers left out.
var exportAttributes = []string{"Sensitive", "Always Sensitive", "Extractable", "Never Extractable"}
