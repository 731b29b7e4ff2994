// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package backup

import (
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"strings"
	"testing"
	"time"
)

func write(t *testing.T, entries ...Entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := NewWriter(&buf)
	h := Header{Created: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Keystore: "Filesystem: /k", Config: []byte("version: v1\n")}
	if err := w.Header(h); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if err := w.Entry(e.Name, e.Value); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func readAll(b []byte) (Header, []Entry, error) {
	r, err := NewReader(bytes.NewReader(b))
	if err != nil {
		return Header{}, nil, err
	}
	var out []Entry
	for {
		e, err := r.Next()
		if err == io.EOF {
			return r.Header(), out, nil
		}
		if err != nil {
			return r.Header(), out, err
		}
		out = append(out, e)
	}
}

func TestRoundTrip(t *testing.T) {
	in := []Entry{{"a", []byte("value-a")}, {"b", bytes.Repeat([]byte{0xff}, MaxValueSize)}, {"c", nil}}
	b := write(t, in...)
	if !strings.HasPrefix(string(b), Magic+"\n{") {
		t.Fatalf("payload starts with %q", b[:20])
	}
	h, out, err := readAll(b)
	if err != nil {
		t.Fatal(err)
	}
	if h.Keystore != "Filesystem: /k" || string(h.Config) != "version: v1\n" || h.Sealed {
		t.Fatalf("header %+v", h)
	}
	if len(out) != len(in) {
		t.Fatalf("got %d entries, want %d", len(out), len(in))
	}
	for i := range in {
		if out[i].Name != in[i].Name || !bytes.Equal(out[i].Value, in[i].Value) {
			t.Fatalf("entry %d differs", i)
		}
	}
}

func TestWriterRefuses(t *testing.T) {
	w := NewWriter(io.Discard)
	if err := w.Entry("a", nil); err == nil {
		t.Fatal("entry before header accepted")
	}
	if err := w.Header(Header{Config: make([]byte, MaxConfigSize+1)}); err == nil {
		t.Fatal("oversized config accepted")
	}
	if err := w.Header(Header{}); err != nil {
		t.Fatal(err)
	}
	if err := w.Entry("big", make([]byte, MaxValueSize+1)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("oversized value: %v", err)
	}
	if err := w.Entry("", nil); err == nil {
		t.Fatal("empty name accepted")
	}
}

func TestReaderRejects(t *testing.T) {
	good := write(t, Entry{"a", []byte("x")}, Entry{"b", []byte("y")})
	lines := strings.SplitAfter(string(good), "\n")
	head := lines[0] + lines[1]
	big := base64.StdEncoding.EncodeToString(make([]byte, MaxValueSize+1))
	huge := strings.Repeat("A", MaxLine+10)
	tests := []struct {
		name    string
		payload string
		want    error
	}{
		{"empty", "", ErrFormat},
		{"not a backup", "hello\n", ErrFormat},
		{"later version", "kes-backup v2\n{}\n", ErrFormat},
		{"no trailer", head + lines[2] + lines[3], ErrTruncated},
		{"cut inside an entry", head + lines[2][:10], ErrTruncated},
		{"cut inside the trailer", strings.TrimSuffix(string(good), "\n"), ErrTruncated},
		{"entry dropped", head + lines[2] + lines[4], ErrTruncated},
		{"data after the end", string(good) + lines[2], ErrFormat},
		{"oversized value", head + `{"name":"big","value":"` + big + `"}` + "\n" + lines[4], ErrTooLarge},
		{"oversized line", head + `{"name":"big","value":"` + huge + `"}` + "\n", ErrTooLarge},
		{"endless line", head + huge, ErrTooLarge},
		{"oversized header", Magic + "\n" + huge + "\n", ErrTooLarge},
		{"unknown field", head + `{"name":"a","value":"eA==","x":1}` + "\n", ErrFormat},
		{"no name", head + `{"value":"eA=="}` + "\n", ErrFormat},
		{"bad base64", head + `{"name":"a","value":"!!"}` + "\n", ErrFormat},
		{"bad trailer", head + `{"end":false,"keys":0}` + "\n", ErrFormat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readAll([]byte(tt.payload))
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
		})
	}
}

// FuzzReader checks that no payload makes the reader panic or return an
// entry over the limits.
func FuzzReader(f *testing.F) {
	f.Add([]byte(Magic + "\n{}\n{\"end\":true,\"keys\":0}\n"))
	f.Add([]byte(Magic + "\n{}\n{\"name\":\"a\",\"value\":\"eA==\"}\n{\"end\":true,\"keys\":1}\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := NewReader(bytes.NewReader(b))
		if err != nil {
			return
		}
		for {
			e, err := r.Next()
			if err != nil {
				return
			}
			if e.Name == "" || len(e.Name) > MaxNameSize || len(e.Value) > MaxValueSize {
				t.Fatalf("entry over the limits: %q (%d bytes)", e.Name, len(e.Value))
			}
		}
	})
}
