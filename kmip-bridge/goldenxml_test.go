// Copyright The KES bridge authors.
// SPDX-License-Identifier: AGPL-3.0-only

package kmipbridge

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"time"

	"github.com/ovh/kmip-go/ttlv"
)

// A reader of the OASIS XML test-case encoding for any KMIP version, and a
// TTLV codec over ttlv.Value trees that knows the 2.x type Date-Time
// Extended. The ovh XML codec knows only the 1.x tags and payloads; the
// 2.1 vectors are sent exactly as written, so they need neither.
//
// Tag names come from the ovh registry (every 1.x tag) plus goldenV2Tags,
// enumeration names from the ovh registry plus goldenV2Enums; an
// Attribute Reference enumeration names a tag.

// goldenV2Tags are the tags KMIP 2.0 and 2.1 added (the 2.1 tag table).
var goldenV2Tags = map[string]int{
	"Attributes": 0x420125, "CommonAttributes": 0x420126, "PrivateKeyAttributes": 0x420127,
	"PublicKeyAttributes": 0x420128, "ExtensionEnumeration": 0x420129, "ExtensionAttribute": 0x42012A,
	"ExtensionParentStructureTag": 0x42012B, "ExtensionDescription": 0x42012C, "ServerName": 0x42012D,
	"ServerSerialNumber": 0x42012E, "ServerVersion": 0x42012F, "ServerLoad": 0x420130,
	"ProductName": 0x420131, "BuildLevel": 0x420132, "BuildDate": 0x420133, "ClusterInfo": 0x420134,
	"AlternateFailoverEndpoints": 0x420135, "ShortUniqueIdentifier": 0x420136, "Tag": 0x420138,
	"CertificateRequestUniqueIdentifier": 0x420139, "NISTKeyType": 0x42013A, "AttributeReference": 0x42013B,
	"CurrentAttribute": 0x42013C, "NewAttribute": 0x42013D, "CertificateRequestValue": 0x420140,
	"LogMessage": 0x420141, "ProfileVersion": 0x420142, "ProfileVersionMajor": 0x420143,
	"ProfileVersionMinor": 0x420144, "ProtectionLevel": 0x420145, "ProtectionPeriod": 0x420146,
	"QuantumSafe": 0x420147, "QuantumSafeCapability": 0x420148, "Ticket": 0x420149, "TicketType": 0x42014A,
	"TicketValue": 0x42014B, "RequestCount": 0x42014C, "Rights": 0x42014D, "Objects": 0x42014E,
	"Operations": 0x42014F, "Right": 0x420150, "EndpointRole": 0x420151, "DefaultsInformation": 0x420152,
	"ObjectDefaults": 0x420153, "Ephemeral": 0x420154, "ServerHashedPassword": 0x420155,
	"OneTimePassword": 0x420156, "HashedPassword": 0x420157, "AdjustmentType": 0x420158,
	"ProtectionStorageMask": 0x42015E, "ProtectionStorageMasks": 0x42015F, "InteropFunction": 0x420160,
	"InteropIdentifier": 0x420161, "AdjustmentValue": 0x420162, "CommonProtectionStorageMasks": 0x420163,
	"PrivateProtectionStorageMasks": 0x420164, "PublicProtectionStorageMasks": 0x420165,
}

// goldenV2Enums are the 2.x enumeration values the vectors name that the 1.x
// registry lacks.
var goldenV2Enums = map[int]map[string]uint32{
	0x42005C: {"Log": 0x2C, "Login": 0x2D, "Logout": 0x2E, "DelegatedLogin": 0x2F, "AdjustAttribute": 0x30,
		"SetAttribute": 0x31, "SetEndpointRole": 0x32, "PKCS11": 0x33, "Interop": 0x34, "ReProvision": 0x35},
	0x42007E: {"InvalidTicket": 0x19, "UsageLimitExceeded": 0x1A, "NumericRange": 0x1B, "InvalidDataType": 0x1C,
		"ReadOnlyAttribute": 0x1D, "MultiValuedAttribute": 0x1E, "UnsupportedAttribute": 0x1F,
		"AttributeInstanceNotFound": 0x20, "AttributeNotFound": 0x21, "AttributeReadOnly": 0x22,
		"AttributeSingleValued": 0x23, "BadCryptographicParameters": 0x24, "BadPassword": 0x25, "CodecError": 0x26,
		"IllegalObjectType": 0x28, "IncompatibleCryptographicUsageMask": 0x29, "InternalServerError": 0x2A,
		"InvalidAsynchronousCorrelationValue": 0x2B, "InvalidAttribute": 0x2C, "InvalidAttributeValue": 0x2D,
		"InvalidCorrelationValue": 0x2E, "InvalidCSR": 0x2F, "InvalidObjectType": 0x30,
		"KeyWrapTypeNotSupported": 0x32, "MissingInitializationVector": 0x34, "NonUniqueNameAttribute": 0x35,
		"ObjectDestroyed": 0x36, "ObjectNotFound": 0x37, "NotAuthorised": 0x39, "ServerLimitExceeded": 0x3A,
		"UnknownEnumeration": 0x3B, "UnknownMessageExtension": 0x3C, "UnknownTag": 0x3D,
		"UnsupportedCryptographicParameters": 0x3E, "UnsupportedProtocolVersion": 0x3F,
		"WrappingObjectArchived": 0x40, "WrappingObjectDestroyed": 0x41, "WrappingObjectNotFound": 0x42,
		"WrongKeyLifecycleState": 0x43, "ProtectionStorageUnavailable": 0x44},
	0x420160: {"Begin": 1, "End": 2, "Reset": 3},
}

// goldenV2Masks are the 2.x bit masks encoded as Integers.
var goldenV2Masks = map[int]map[string]int32{
	0x42015E: {"Software": 0x1, "Hardware": 0x2, "OnProcessor": 0x4, "OnSystem": 0x8, "OffSystem": 0x10,
		"Hypervisor": 0x20, "OperatingSystem": 0x40, "Container": 0x80, "OnPremises": 0x100,
		"OffPremises": 0x200, "SelfManaged": 0x400, "Outsourced": 0x800, "Validated": 0x1000,
		"SameJurisdiction": 0x2000},
}

// goldenTypeDateTimeExtended is the 2.x TTLV type Date-Time Extended
// (microseconds since the epoch), unknown to the ovh codec.
const goldenTypeDateTimeExtended = 0x0B

// goldenDateTimeExt is a Date-Time Extended value in a ttlv.Value tree.
type goldenDateTimeExt time.Time

// goldenBytesVar is a byte-string placeholder ("$IV_COUNTER_NONCE") in an
// expected response: it binds to what the server returned.
type goldenBytesVar string

// goldenTagsByName maps the XML element names to tags.
var goldenTagsByName = func() map[string]int {
	m := map[string]int{}
	for tag := 0x420000; tag < 0x420200; tag++ {
		if n := ttlv.TagString(tag); !strings.HasPrefix(n, "0x") {
			m[n] = tag
		}
	}
	for n, tag := range goldenV2Tags {
		m[n] = tag
	}
	return m
}()

// goldenTagName names a tag for messages, 2.x tags included.
func goldenTagName(tag int) string {
	for n, t := range goldenV2Tags {
		if t == tag {
			return n
		}
	}
	return ttlv.TagString(tag)
}

// parseGoldenXML reads the messages of an OASIS test-case document, in
// order. Placeholders must have been substituted, except byte-string ones
// (goldenBytesVar) and "$NOW" in expected responses (dates are not
// compared).
func parseGoldenXML(doc string) ([]ttlv.Value, error) {
	d := xml.NewDecoder(strings.NewReader(doc))
	var msgs []ttlv.Value
	for {
		tok, err := d.Token()
		if err == io.EOF {
			return msgs, nil
		}
		if err != nil {
			return nil, err
		}
		if se, ok := tok.(xml.StartElement); ok && se.Name.Local != "KMIP" {
			v, err := goldenXMLElement(d, se, 0)
			if err != nil {
				return nil, err
			}
			msgs = append(msgs, v)
		}
	}
}

func goldenXMLElement(d *xml.Decoder, se xml.StartElement, depth int) (ttlv.Value, error) {
	if depth > 32 {
		return ttlv.Value{}, errors.New("nested too deep")
	}
	name := se.Name.Local
	tag, ok := goldenTagsByName[name]
	if !ok {
		return ttlv.Value{}, fmt.Errorf("unknown tag %s", name)
	}
	var typ, val string
	for _, a := range se.Attr {
		switch a.Name.Local {
		case "type":
			typ = a.Value
		case "value":
			val = a.Value
		}
	}
	if typ == "" || typ == "Structure" {
		s := ttlv.Struct{}
		for {
			tok, err := d.Token()
			if err != nil {
				return ttlv.Value{}, err
			}
			switch t := tok.(type) {
			case xml.StartElement:
				v, err := goldenXMLElement(d, t, depth+1)
				if err != nil {
					return ttlv.Value{}, err
				}
				s = append(s, v)
			case xml.EndElement:
				return ttlv.Value{Tag: tag, Value: s}, nil
			}
		}
	}
	if err := d.Skip(); err != nil {
		return ttlv.Value{}, err
	}
	v, err := goldenXMLValue(tag, typ, val)
	if err != nil {
		return ttlv.Value{}, fmt.Errorf("%s: %w", name, err)
	}
	return ttlv.Value{Tag: tag, Value: v}, nil
}

func goldenXMLTime(val string) (time.Time, error) {
	if strings.HasPrefix(val, "$NOW") {
		return time.Now().UTC().Truncate(time.Second), nil
	}
	if strings.HasPrefix(val, "0x") {
		n, err := strconv.ParseInt(val[2:], 16, 64)
		return time.Unix(n, 0).UTC(), err
	}
	t, err := time.Parse(time.RFC3339Nano, val)
	return t.UTC(), err
}

func goldenXMLValue(tag int, typ, val string) (any, error) {
	switch typ {
	case "Integer":
		if n, err := strconv.ParseInt(val, 0, 32); err == nil {
			return int32(n), nil
		}
		if n, err := strconv.ParseUint(val, 0, 32); err == nil {
			return int32(n), nil
		}
		var mask int32
		for _, part := range strings.FieldsFunc(val, func(r rune) bool { return r == ' ' || r == '|' }) {
			bit, err := ttlv.BitmaskByStr(tag, part)
			if err != nil {
				b, ok := goldenV2Masks[tag][part]
				if !ok {
					return nil, fmt.Errorf("integer %q", val)
				}
				bit = b
			}
			mask |= bit
		}
		return mask, nil
	case "LongInteger":
		return strconv.ParseInt(val, 0, 64)
	case "BigInteger":
		b, err := hex.DecodeString(strings.TrimPrefix(val, "0x"))
		if err != nil {
			return nil, err
		}
		n := new(big.Int).SetBytes(b)
		if len(b) > 0 && b[0]&0x80 != 0 {
			n.Sub(n, new(big.Int).Lsh(big.NewInt(1), uint(8*len(b))))
		}
		return n, nil
	case "Enumeration":
		if strings.HasPrefix(val, "0x") {
			n, err := strconv.ParseUint(val[2:], 16, 32)
			return ttlv.Enum(n), err
		}
		if tag == goldenV2Tags["AttributeReference"] {
			t, ok := goldenTagsByName[val]
			if !ok {
				return nil, fmt.Errorf("attribute reference to unknown tag %q", val)
			}
			return ttlv.Enum(t), nil
		}
		if n, ok := goldenV2Enums[tag][val]; ok {
			return ttlv.Enum(n), nil
		}
		n, err := ttlv.EnumByName(tag, val)
		return ttlv.Enum(n), err
	case "Boolean":
		return strconv.ParseBool(val)
	case "TextString":
		return val, nil
	case "ByteString":
		if strings.HasPrefix(val, "$") {
			return goldenBytesVar(val), nil
		}
		return hex.DecodeString(val)
	case "DateTime":
		return goldenXMLTime(val)
	case "DateTimeExtended":
		t, err := goldenXMLTime(val)
		return goldenDateTimeExt(t), err
	case "Interval":
		n, err := strconv.ParseUint(val, 0, 32)
		return time.Duration(n) * time.Second, err
	}
	return nil, fmt.Errorf("unknown type %q", typ)
}

// goldenEncode encodes a value tree. A goldenBytesVar left in it (a placeholder
// no earlier response bound) is an error.
func goldenEncode(v ttlv.Value) (b []byte, err error) {
	var item func(dst []byte, v ttlv.Value) []byte
	item = func(dst []byte, v ttlv.Value) []byte {
		if err != nil {
			return nil
		}
		var typ byte
		var body []byte
		switch x := v.Value.(type) {
		case ttlv.Struct:
			typ = byte(ttlv.TypeStructure)
			for _, c := range x {
				body = item(body, c)
			}
		case int32:
			typ, body = byte(ttlv.TypeInteger), binary.BigEndian.AppendUint32(nil, uint32(x))
		case int64:
			typ, body = byte(ttlv.TypeLongInteger), binary.BigEndian.AppendUint64(nil, uint64(x))
		case *big.Int:
			typ, body = byte(ttlv.TypeBigInteger), goldenBigInt(x)
		case ttlv.Enum:
			typ, body = byte(ttlv.TypeEnumeration), binary.BigEndian.AppendUint32(nil, uint32(x))
		case bool:
			typ, body = byte(ttlv.TypeBoolean), make([]byte, 8)
			if x {
				body[7] = 1
			}
		case string:
			typ, body = byte(ttlv.TypeTextString), []byte(x)
		case []byte:
			typ, body = byte(ttlv.TypeByteString), x
		case time.Time:
			typ, body = byte(ttlv.TypeDateTime), binary.BigEndian.AppendUint64(nil, uint64(x.Unix()))
		case goldenDateTimeExt:
			typ, body = goldenTypeDateTimeExtended, binary.BigEndian.AppendUint64(nil, uint64(time.Time(x).UnixMicro()))
		case time.Duration:
			typ, body = byte(ttlv.TypeInterval), binary.BigEndian.AppendUint32(nil, uint32(x/time.Second))
		case goldenBytesVar:
			err = fmt.Errorf("%s: %s is not bound", goldenTagName(v.Tag), x)
			return nil
		default:
			err = fmt.Errorf("%s: cannot encode %T", goldenTagName(v.Tag), v.Value)
			return nil
		}
		dst = append(dst, byte(v.Tag>>16), byte(v.Tag>>8), byte(v.Tag), typ)
		dst = binary.BigEndian.AppendUint32(dst, uint32(len(body)))
		dst = append(dst, body...)
		for len(dst)%8 != 0 {
			dst = append(dst, 0)
		}
		return dst
	}
	b = item(nil, v)
	return b, err
}

// goldenBigInt is n in big-endian two's complement, sign-extended to
// a multiple of 8 bytes as TTLV requires.
func goldenBigInt(n *big.Int) []byte {
	size := (n.BitLen()/8 + 1 + 7) / 8 * 8 // room for the sign bit
	m := new(big.Int).Set(n)
	if n.Sign() < 0 {
		m.Add(m, new(big.Int).Lsh(big.NewInt(1), uint(8*size)))
	}
	return m.FillBytes(make([]byte, size))
}

// goldenDecode decodes one TTLV item into a value tree, Date-Time Extended
// included. Lengths are checked against the input, so a malformed
// answer is an error, never a panic.
func goldenDecode(b []byte) (ttlv.Value, error) {
	v, rest, err := goldenDecodeItem(b, 0)
	if err == nil && len(rest) != 0 {
		err = fmt.Errorf("%d bytes after the message", len(rest))
	}
	return v, err
}

func goldenDecodeItem(b []byte, depth int) (ttlv.Value, []byte, error) {
	if depth > 32 {
		return ttlv.Value{}, nil, errors.New("nested too deep")
	}
	if len(b) < 8 {
		return ttlv.Value{}, nil, errors.New("truncated item header")
	}
	tag := int(b[0])<<16 | int(b[1])<<8 | int(b[2])
	typ, n := b[3], int(binary.BigEndian.Uint32(b[4:8]))
	padded := (n + 7) / 8 * 8
	if padded > len(b)-8 {
		return ttlv.Value{}, nil, fmt.Errorf("%s: length %d beyond the message", goldenTagName(tag), n)
	}
	body, rest := b[8:8+n], b[8+padded:]
	fixed := map[byte]int{byte(ttlv.TypeInteger): 4, byte(ttlv.TypeLongInteger): 8, byte(ttlv.TypeEnumeration): 4,
		byte(ttlv.TypeBoolean): 8, byte(ttlv.TypeDateTime): 8, byte(ttlv.TypeInterval): 4, goldenTypeDateTimeExtended: 8}
	if want, ok := fixed[typ]; ok && n != want {
		return ttlv.Value{}, nil, fmt.Errorf("%s: length %d for type %#x", goldenTagName(tag), n, typ)
	}
	v := ttlv.Value{Tag: tag}
	switch typ {
	case byte(ttlv.TypeStructure):
		s := ttlv.Struct{}
		for len(body) > 0 {
			c, r, err := goldenDecodeItem(body, depth+1)
			if err != nil {
				return ttlv.Value{}, nil, err
			}
			s, body = append(s, c), r
		}
		v.Value = s
	case byte(ttlv.TypeInteger):
		v.Value = int32(binary.BigEndian.Uint32(body))
	case byte(ttlv.TypeLongInteger):
		v.Value = int64(binary.BigEndian.Uint64(body))
	case byte(ttlv.TypeBigInteger):
		x := new(big.Int).SetBytes(body)
		if n > 0 && body[0]&0x80 != 0 {
			x.Sub(x, new(big.Int).Lsh(big.NewInt(1), uint(8*n)))
		}
		v.Value = x
	case byte(ttlv.TypeEnumeration):
		v.Value = ttlv.Enum(binary.BigEndian.Uint32(body))
	case byte(ttlv.TypeBoolean):
		v.Value = binary.BigEndian.Uint64(body) != 0
	case byte(ttlv.TypeTextString):
		v.Value = string(body)
	case byte(ttlv.TypeByteString):
		v.Value = append([]byte(nil), body...)
	case byte(ttlv.TypeDateTime):
		v.Value = time.Unix(int64(binary.BigEndian.Uint64(body)), 0).UTC()
	case goldenTypeDateTimeExtended:
		v.Value = goldenDateTimeExt(time.UnixMicro(int64(binary.BigEndian.Uint64(body))).UTC())
	case byte(ttlv.TypeInterval):
		v.Value = time.Duration(binary.BigEndian.Uint32(body)) * time.Second
	default:
		return ttlv.Value{}, nil, fmt.Errorf("%s: unknown type %#x", goldenTagName(tag), typ)
	}
	return v, rest, nil
}

// goldenDump prints a value tree for goldenFailure messages, one item a line.
func goldenDump(v ttlv.Value) string {
	var sb strings.Builder
	var walk func(v ttlv.Value, indent string)
	walk = func(v ttlv.Value, indent string) {
		sb.WriteString(indent + goldenTagName(v.Tag))
		switch x := v.Value.(type) {
		case ttlv.Struct:
			sb.WriteString("\n")
			for _, c := range x {
				walk(c, indent+"  ")
			}
			return
		case ttlv.Enum:
			name := ttlv.EnumName(v.Tag, uint32(x))
			for n, val := range goldenV2Enums[v.Tag] {
				if val == uint32(x) {
					name = n
				}
			}
			if v.Tag == goldenV2Tags["AttributeReference"] {
				name = goldenTagName(int(x))
			}
			fmt.Fprintf(&sb, " (Enumeration): %s %#x", name, uint32(x))
		case []byte:
			fmt.Fprintf(&sb, " (ByteString): %x", x)
		case goldenDateTimeExt:
			fmt.Fprintf(&sb, " (DateTimeExtended): %s", time.Time(x).Format(time.RFC3339Nano))
		default:
			fmt.Fprintf(&sb, " (%T): %v", x, x)
		}
		sb.WriteString("\n")
	}
	walk(v, "")
	return sb.String()
}
