// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"bytes"
	"encoding/hex"
	"strings"
	"testing"

	"github.com/ovh/kmip-go/ttlv"
)

// TestGoldenXMLCodec reads every message of the 2.1 vectors, not only the
// ones a run reaches today, and checks the codec against the ovh one:
// the same bytes for every tree, the same tree back from them.
func TestGoldenXMLCodec(t *testing.T) {
	for _, c := range goldenCases(t) {
		if !c.v2 {
			continue
		}
		// Bind every placeholder to something, as a run would.
		doc := nowRe.ReplaceAllString(c.doc, "2020-01-02T03:04:05Z")
		doc = strings.NewReplacer(`type="ByteString" value="$`, `type="ByteString" value="00$`).Replace(doc)
		doc = goldenVarRe.ReplaceAllString(doc, "")
		msgs, err := parseGoldenXML(doc)
		if err != nil {
			t.Errorf("%s: %v", c.key, err)
			continue
		}
		if len(msgs) != len(goldenMessages(c.doc)) {
			t.Errorf("%s: %d messages read, %d in the document", c.key, len(msgs), len(goldenMessages(c.doc)))
		}
		for i, m := range msgs {
			mine, err := goldenEncode(m)
			if err != nil {
				t.Fatalf("%s message %d: %v", c.key, i, err)
			}
			if theirs := ttlv.MarshalTTLV(m); !bytes.Equal(mine, theirs) {
				t.Errorf("%s message %d: encodings differ:\n%x\n%x", c.key, i, mine, theirs)
			}
			back, err := goldenDecode(mine)
			if err != nil {
				t.Fatalf("%s message %d: %v", c.key, i, err)
			}
			var theirs ttlv.Value
			if err := ttlv.UnmarshalTTLV(mine, &theirs); err != nil {
				t.Fatalf("%s message %d: ovh decode: %v", c.key, i, err)
			}
			if goldenDump(back) != goldenDump(m) || goldenDump(theirs) != goldenDump(m) {
				t.Errorf("%s message %d: decoded tree differs:\n%s\nwant:\n%s", c.key, i, goldenDump(back), goldenDump(m))
			}
		}
	}
}

// TestGoldenXMLDateTimeExtended covers the 2.x type the ovh codec lacks.
func TestGoldenXMLDateTimeExtended(t *testing.T) {
	msgs, err := parseGoldenXML(`<KMIP><InitialDate type="DateTimeExtended" value="2020-01-02T03:04:05.123456Z"/></KMIP>`)
	if err != nil {
		t.Fatal(err)
	}
	b, err := goldenEncode(msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	// 2020-01-02T03:04:05.123456Z is 1577934245123456 µs after the epoch.
	if want := "4200390b00000008" + "00059b1f7228d580"; hex.EncodeToString(b) != want {
		t.Errorf("encoded %x, want %s", b, want)
	}
	back, err := goldenDecode(b)
	if err != nil || goldenDump(back) != goldenDump(msgs[0]) {
		t.Errorf("decoded %v (%v), want %v", back, err, msgs[0])
	}
}
