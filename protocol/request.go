package protocol

import (
	"bytes"
	"errors"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"unicode/utf8"

	json "github.com/goccy/go-json"

	"sandboxd/spec"
)

// envelope holds the fields every request may carry. Each command's argument
// struct embeds it, so that decoding a whole line strictly accepts them.
type envelope struct {
	Command string          `json:"command"`
	ID      json.RawMessage `json:"id"`
}

// header is what the dispatcher needs to know of a request before running it.
type header struct {
	envelope
	Box *int `json:"box"`
}

// validID tells whether a raw id is a JSON string of valid Unicode or an
// integer (or absent): the reply echoes it as it came.
func validID(raw json.RawMessage) bool {
	if len(raw) == 0 {
		return true
	}
	switch raw[0] {
	case '"':
		var s string
		return json.Unmarshal(raw, &s) == nil && checkText(raw) == nil
	case '-', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9':
		var n int64
		return json.Unmarshal(raw, &n) == nil
	}
	return false
}

// checkText refuses JSON text that is not valid Unicode: bytes that are
// not UTF-8, or a \u escape of a lone surrogate (which Python's json.dumps
// writes for a name it read with surrogateescape). The decoder would take
// either for U+FFFD without a word, and a path or a content would not be
// what the judge meant: names that are not UTF-8 go in path_base64, bytes
// that are not text in content_base64.
func checkText(text []byte) error {
	if !utf8.Valid(text) {
		return spec.Errorf(spec.CodeBadJSON, "request is not valid UTF-8 (a bad byte at offset %d): send names that are not UTF-8 as path_base64, contents as content_base64", invalidUTF8At(text))
	}
	for i := 0; i < len(text); i++ {
		if text[i] != '\\' {
			continue
		}
		r, ok := uEscape(text, i)
		switch {
		case !ok:
			i++ // another escape: skip its character
		case r >= 0xd800 && r < 0xdc00: // a high surrogate: a low one must follow
			if low, ok := uEscape(text, i+6); ok && low >= 0xdc00 && low <= 0xdfff {
				i += 11
				continue
			}
			fallthrough
		case r >= 0xdc00 && r <= 0xdfff:
			return spec.Errorf(spec.CodeInvalidArgument, "request holds %s, a lone surrogate, which is no Unicode character: send names that are not UTF-8 as path_base64, contents as content_base64", text[i:i+6])
		default:
			i += 5
		}
	}
	return nil
}

// uEscape reads the \uXXXX escape at text[i:], if there is one.
func uEscape(text []byte, i int) (rune, bool) {
	if i+6 > len(text) || text[i] != '\\' || text[i+1] != 'u' {
		return 0, false
	}
	n, err := strconv.ParseUint(string(text[i+2:i+6]), 16, 16)
	return rune(n), err == nil
}

func invalidUTF8At(text []byte) int {
	for i := 0; i < len(text); {
		r, n := utf8.DecodeRune(text[i:])
		if r == utf8.RuneError && n == 1 {
			return i
		}
		i += n
	}
	return -1
}

// decodeArgs decodes a request line strictly into v: unknown fields and
// values of the wrong type are errors with their protocol codes. Field names
// must match exactly: the JSON decoder alone would take "CPU_Time_Limit" for
// cpu_time_limit, which is not what a judge meant.
func decodeArgs(line []byte, v any) error {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(line, &fields); err != nil {
		return argsError(err)
	}
	known := fieldNames(reflect.TypeOf(v).Elem())
	for name, raw := range fields {
		if !known[name] {
			return spec.Errorf(spec.CodeUnknownField, "unknown field %s", spec.Quote(name))
		}
		if holdsNull(raw) {
			return spec.Errorf(spec.CodeInvalidArgument, "field %q: null is no value inside a list or an object", name)
		}
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return argsError(err)
	}
	return nil
}

// holdsNull tells whether a list or object holds a null, which decoding
// would take for an empty string ("argv": ["a", null]). A null field itself
// is an absent one, and fine.
func holdsNull(raw json.RawMessage) bool {
	if len(raw) == 0 || (raw[0] != '[' && raw[0] != '{') || !bytes.Contains(raw, []byte("null")) {
		return false
	}
	var v any
	if json.Unmarshal(raw, &v) != nil {
		return false // the strict decoding will say what is wrong
	}
	var walk func(any) bool
	walk = func(v any) bool {
		switch v := v.(type) {
		case nil:
			return true
		case []any:
			for _, e := range v {
				if walk(e) {
					return true
				}
			}
		case map[string]any:
			for _, e := range v {
				if walk(e) {
					return true
				}
			}
		}
		return false
	}
	return walk(v)
}

// fieldNamesOf caches fieldNames by type.
var fieldNamesOf sync.Map

// fieldNames are the JSON names of a struct's fields, embedded structs' included.
func fieldNames(t reflect.Type) map[string]bool {
	if names, ok := fieldNamesOf.Load(t); ok {
		return names.(map[string]bool)
	}
	names := map[string]bool{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if f.Anonymous && f.Type.Kind() == reflect.Struct {
			for n := range fieldNames(f.Type) {
				names[n] = true
			}
			continue
		}
		if name, _, _ := strings.Cut(f.Tag.Get("json"), ","); name != "" && name != "-" {
			names[name] = true
		}
	}
	fieldNamesOf.Store(t, names)
	return names
}

func argsError(err error) error {
	msg := err.Error()
	if rest, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		if name, err := strconv.Unquote(rest); err == nil {
			rest = spec.Quote(name)
		}
		return spec.Errorf(spec.CodeUnknownField, "unknown field %s", rest)
	}
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) && typeErr.Field != "" {
		return spec.Errorf(spec.CodeInvalidArgument, "field %s: expected %s, got JSON %s", spec.Quote(typeErr.Field), typeName(typeErr.Type.String()), spec.Clip(typeErr.Value, spec.MaxQuoted))
	}
	return spec.Errorf(spec.CodeInvalidArgument, "%s", strings.TrimPrefix(msg, "json: "))
}

// typeName says a Go type the way a judge author reads the protocol.
func typeName(goType string) string {
	switch {
	case strings.Contains(goType, "float"):
		return "a number"
	case strings.Contains(goType, "int"):
		return "an integer"
	case strings.Contains(goType, "string") && strings.HasPrefix(goType, "map"), strings.HasPrefix(goType, "map"):
		return "an object"
	case strings.HasPrefix(goType, "[]") || strings.HasPrefix(goType, "*[]"):
		return "a list"
	case strings.Contains(goType, "string"):
		return "a string"
	case strings.Contains(goType, "bool"):
		return "a boolean"
	}
	return fmt.Sprintf("a value of another type (%s)", goType)
}
