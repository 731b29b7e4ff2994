// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package backup

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"time"
)

// Magic is the first line of a version 1 payload, without its newline.
const Magic = "kes-backup v1"

// Limits of a version 1 payload, checked by Reader.
const (
	// MaxValueSize is the largest stored value: that of the fs keystore,
	// the largest of this module's drivers.
	MaxValueSize = 1 << 20

	// MaxConfigSize is the largest server config file, as the server
	// reads it.
	MaxConfigSize = 1 << 20

	// MaxNameSize is the longest key name.
	MaxNameSize = 1 << 10

	// MaxLine is the longest line: an entry with a MaxValueSize value
	// in base64 or a header with a MaxConfigSize config, plus JSON.
	MaxLine = (MaxValueSize+2)/3*4 + 64<<10

	// MaxEntries is the most entries a Reader accepts.
	MaxEntries = 10_000_000
)

// Header describes a backup. It is the second line of the payload.
type Header struct {
	Created  time.Time `json:"created"`
	Keystore string    `json:"keystore"`         // the source keystore, as it describes itself
	Sealed   bool      `json:"sealed"`           // values are sealed by the source's root key
	Sealer   string    `json:"sealer,omitempty"` // the source's root key, if Sealed
	Config   []byte    `json:"config,omitempty"` // the source's server config file
}

// Entry is one key of a backup.
type Entry struct {
	Name  string `json:"name"`
	Value []byte `json:"value"`
}

// trailer is the last line of the payload.
type trailer struct {
	End  bool  `json:"end"`
	Keys int64 `json:"keys"`
}

// Errors a Reader returns for a payload it rejects.
var (
	ErrFormat    = errors.New("backup: not a kes backup")
	ErrTruncated = errors.New("backup: file is truncated")
	ErrTooLarge  = errors.New("backup: entry exceeds the size limit")
)

// Writer writes a payload. Call Header once, then Entry per key, then
// Close; the first error sticks.
type Writer struct {
	w    *bufio.Writer
	n    int64
	err  error
	head bool
}

// NewWriter returns a Writer that writes to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriter(w)} }

// Header writes the format line and h.
func (w *Writer) Header(h Header) error {
	if w.head {
		return errors.New("backup: header written twice")
	}
	if len(h.Config) > MaxConfigSize {
		return fmt.Errorf("backup: config file is larger than %d bytes", MaxConfigSize)
	}
	w.head = true
	w.write([]byte(Magic))
	return w.line(h)
}

// Entry writes one key. Values the Reader would refuse are refused.
func (w *Writer) Entry(name string, value []byte) error {
	switch {
	case !w.head:
		return errors.New("backup: entry before header")
	case name == "" || len(name) > MaxNameSize:
		return fmt.Errorf("backup: invalid key name '%s'", name)
	case len(value) > MaxValueSize:
		return fmt.Errorf("backup: key '%s': %w", name, ErrTooLarge)
	case w.n >= MaxEntries:
		return fmt.Errorf("backup: more than %d keys", MaxEntries)
	}
	w.n++
	return w.line(Entry{Name: name, Value: value})
}

// Close writes the trailer and flushes. It does not close the
// underlying writer.
func (w *Writer) Close() error {
	if !w.head {
		return errors.New("backup: no header written")
	}
	if err := w.line(trailer{End: true, Keys: w.n}); err != nil {
		return err
	}
	if err := w.w.Flush(); err != nil && w.err == nil {
		w.err = err
	}
	return w.err
}

func (w *Writer) line(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		w.err = err
		return err
	}
	w.write(b)
	clear(b) // it may hold a key value in base64
	return w.err
}

func (w *Writer) write(b []byte) {
	if w.err != nil {
		return
	}
	if _, err := w.w.Write(b); err != nil {
		w.err = err
		return
	}
	w.err = w.w.WriteByte('\n')
}

// Reader reads a payload. NewReader reads the header; Next returns the
// entries and io.EOF after a valid trailer.
type Reader struct {
	r    *bufio.Reader
	buf  []byte
	n    int64
	done bool
	h    Header
}

// NewReader reads the format line and the header from r. It does not
// buffer more than MaxLine bytes.
func NewReader(r io.Reader) (*Reader, error) {
	rd := &Reader{r: bufio.NewReaderSize(r, 64<<10)}
	line, err := rd.line()
	if err != nil {
		if errors.Is(err, ErrTruncated) || errors.Is(err, ErrTooLarge) {
			return nil, ErrFormat
		}
		return nil, err
	}
	if string(line) != Magic {
		return nil, ErrFormat
	}
	line, err = rd.line()
	if err != nil {
		return nil, err
	}
	if err := strictUnmarshal(line, &rd.h); err != nil {
		return nil, fmt.Errorf("%w: invalid header", ErrFormat)
	}
	if len(rd.h.Config) > MaxConfigSize {
		return nil, fmt.Errorf("backup: config: %w", ErrTooLarge)
	}
	return rd, nil
}

// Header returns the backup's header.
func (r *Reader) Header() Header { return r.h }

// Next returns the next entry, or io.EOF after the trailer, which it
// checks against the number of entries read. The entry's Value is the
// caller's: clear it when done.
func (r *Reader) Next() (Entry, error) {
	if r.done {
		return Entry{}, io.EOF
	}
	line, err := r.line()
	if err != nil {
		return Entry{}, err
	}
	if bytes.HasPrefix(line, []byte(`{"end"`)) {
		var t trailer
		if err := strictUnmarshal(line, &t); err != nil || !t.End {
			return Entry{}, fmt.Errorf("%w: invalid end of file", ErrFormat)
		}
		if t.Keys != r.n {
			return Entry{}, fmt.Errorf("%w: the file holds %d keys, its end says %d", ErrTruncated, r.n, t.Keys)
		}
		if _, err := r.r.ReadByte(); err != io.EOF {
			return Entry{}, fmt.Errorf("%w: data after the end of the backup", ErrFormat)
		}
		r.done = true
		return Entry{}, io.EOF
	}
	if r.n >= MaxEntries {
		return Entry{}, fmt.Errorf("backup: more than %d keys: %w", MaxEntries, ErrTooLarge)
	}
	var e Entry
	err = strictUnmarshal(line, &e)
	clear(line)
	if err != nil {
		clear(e.Value)
		return Entry{}, fmt.Errorf("%w: invalid entry %d", ErrFormat, r.n+1)
	}
	switch {
	case e.Name == "" || len(e.Name) > MaxNameSize:
		clear(e.Value)
		return Entry{}, fmt.Errorf("%w: entry %d has an invalid key name", ErrFormat, r.n+1)
	case len(e.Value) > MaxValueSize:
		clear(e.Value)
		return Entry{}, fmt.Errorf("key '%s': %w", e.Name, ErrTooLarge)
	}
	r.n++
	return e, nil
}

// line returns the next line without its newline, at most MaxLine bytes.
// The returned slice is valid until the next call.
func (r *Reader) line() ([]byte, error) {
	r.buf = r.buf[:0]
	for {
		chunk, err := r.r.ReadSlice('\n')
		if len(r.buf)+len(chunk) > MaxLine+1 {
			clear(r.buf)
			return nil, ErrTooLarge
		}
		r.buf = append(r.buf, chunk...)
		switch {
		case err == nil:
			return r.buf[:len(r.buf)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			return nil, ErrTruncated
		default:
			return nil, err
		}
	}
}

// strictUnmarshal decodes one JSON object and refuses unknown fields, so
// that a later format version is not misread as this one.
func strictUnmarshal(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return errors.New("trailing data")
	}
	return nil
}
