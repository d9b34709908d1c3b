package config

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
)

// objectKeys decodes a JSON object into its keys, in the file's order
// (the last of a repeated key wins, as encoding/json does), and their
// values.
func objectKeys(raw []byte) ([]string, map[string]json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, nil, errors.New("not an object")
	}
	var keys []string
	vals := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, nil, err
		}
		k := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, nil, err
		}
		if _, seen := vals[k]; !seen {
			keys = append(keys, k)
		}
		vals[k] = v
	}
	return keys, vals, nil
}

// decodeObject decodes the JSON object raw, found at field at, into v (a
// pointer to a struct whose json tags are the keys it takes), one key at a
// time, so that an error names its key. A key v does not take is an error
// that says where it belongs when it is one of ours in the wrong place.
func (l *loader) decodeObject(raw json.RawMessage, v any, server, at string, p place) error {
	keys, vals, err := objectKeys(raw)
	if err != nil {
		return l.errf(server, at, "must be an object")
	}
	known := jsonKeys(v)
	for _, k := range keys {
		if string(vals[k]) == "null" && known[k] {
			continue // as if unset
		}
		if !known[k] {
			if where := l.belongs(p, k, server); where != "" {
				return l.errf(server, at+"."+k, "belongs in %s, not in %s", where, at)
			}
			hint := ""
			if s := nearest(k, known); s != "" {
				hint = fmt.Sprintf(": did you mean %q?", s)
			} else if s := nearest(k, allKeys); s != "" {
				if where := l.belongs(p, s, server); where != "" {
					hint = fmt.Sprintf(": did you mean %q? It belongs in %s", s, where)
				}
			}
			return l.errf(server, at+"."+k, "is not a known setting here%s", hint)
		}
		one, _ := json.Marshal(map[string]json.RawMessage{k: vals[k]})
		if err := json.Unmarshal(one, v); err != nil {
			return l.errf(server, at+"."+k, "%s", jsonReason(err))
		}
	}
	return nil
}

// jsonKeys returns the json keys of the struct v points to.
func jsonKeys(v any) map[string]bool {
	t := reflect.TypeOf(v).Elem()
	keys := map[string]bool{}
	for i := range t.NumField() {
		if k, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ","); k != "" && k != "-" {
			keys[k] = true
		}
	}
	return keys
}

// nearest returns the known key k is most likely a misspelling of, or "".
func nearest(k string, known map[string]bool) string {
	best, bestD := "", 3
	for c := range known {
		if d := distance(strings.ToLower(k), strings.ToLower(c)); d < bestD || d == bestD && best != "" && c < best {
			best, bestD = c, d
		}
	}
	return best
}

// distance is the Levenshtein distance between a and b.
func distance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// expandJSON rewrites the JSON value raw, at path, with each string
// replaced by f(its path, the string), keeping keys and their order.
func expandJSON(raw json.RawMessage, path []string, f func(path []string, s string) (string, error)) (json.RawMessage, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out bytes.Buffer
	if err := rewrite(dec, &out, path, f); err != nil {
		return nil, err
	}
	return out.Bytes(), nil
}

func rewrite(dec *json.Decoder, out *bytes.Buffer, path []string, f func([]string, string) (string, error)) error {
	t, err := dec.Token()
	if err != nil {
		return err
	}
	switch v := t.(type) {
	case json.Delim:
		if v == '{' {
			out.WriteByte('{')
			for i := 0; dec.More(); i++ {
				kt, err := dec.Token()
				if err != nil {
					return err
				}
				if i > 0 {
					out.WriteByte(',')
				}
				kb, _ := json.Marshal(kt.(string))
				out.Write(kb)
				out.WriteByte(':')
				if err := rewrite(dec, out, append(path[:len(path):len(path)], kt.(string)), f); err != nil {
					return err
				}
			}
			out.WriteByte('}')
		} else {
			out.WriteByte('[')
			for i := 0; dec.More(); i++ {
				if i > 0 {
					out.WriteByte(',')
				}
				p := append([]string(nil), path...)
				p[len(p)-1] += fmt.Sprintf("[%d]", i)
				if err := rewrite(dec, out, p, f); err != nil {
					return err
				}
			}
			out.WriteByte(']')
		}
		_, err := dec.Token() // the closing delimiter
		return err
	case string:
		s, err := f(path, v)
		if err != nil {
			return err
		}
		b, _ := json.Marshal(s)
		out.Write(b)
	case json.Number:
		out.WriteString(v.String())
	case bool:
		fmt.Fprint(out, v)
	case nil:
		out.WriteString("null")
	}
	return nil
}

// fieldPath joins a path into a field name: mcpool.servers.x.replicas[0].
func fieldPath(path []string) string { return strings.Join(path, ".") }

// jsonField returns the field an encoding/json error is about, if it says.
func jsonField(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return te.Field
	}
	return ""
}

// jsonReason says what is wrong, without the value (it may be a secret).
func jsonReason(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("want %s, got a JSON %s", jsonType(te.Type.String()), te.Value)
	}
	return strings.TrimPrefix(err.Error(), "json: ")
}

func jsonType(goType string) string {
	switch {
	case goType == "string", goType == "*string":
		return "a string"
	case strings.HasPrefix(goType, "[]"):
		return "an array of strings"
	case strings.HasPrefix(goType, "map["):
		return "an object of strings"
	case strings.Contains(goType, "int"):
		return "a whole number"
	case goType == "bool":
		return "true or false"
	}
	return "an object"
}

// jsonProblem describes a syntax error with its line and column.
func jsonProblem(data []byte, err error) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		// The offending byte is the last one read (a line break, when a
		// line ends too soon): its line, and its column counted from 1.
		at := max(0, min(int(se.Offset), len(data))-1)
		line := 1 + bytes.Count(data[:at], []byte("\n"))
		col := at - bytes.LastIndexByte(data[:at], '\n')
		return fmt.Sprintf("is not valid JSON at line %d, column %d: %v", line, col, err)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return fmt.Sprintf("want a JSON object, got a JSON %s", te.Value)
		}
		return fmt.Sprintf("%s: want %s, got a JSON %s", te.Field, jsonType(te.Type.String()), te.Value)
	}
	return err.Error()
}

// stripJSONC blanks out the comments (// and /* */) and trailing commas
// that VS Code allows in its mcp.json (JSON with Comments), so that the
// standard library can decode it. It replaces them with spaces, keeping
// newlines, so line and column numbers in errors stay true.
func stripJSONC(data []byte) []byte {
	out := bytes.Clone(data)
	blank := func(i int) {
		if out[i] != '\n' && out[i] != '\r' {
			out[i] = ' '
		}
	}
	inString := false
	lastComma := -1 // a comma after a value, that a '}' or ']' may make trailing
	var prev byte   // the last character outside comments and whitespace
	for i := 0; i < len(out); i++ {
		c := out[i]
		if inString {
			if c == '\\' {
				i++
			} else if c == '"' {
				inString, prev = false, '"'
			}
			continue
		}
		switch {
		case c == '"':
			inString, lastComma = true, -1
		case c == '/' && i+1 < len(out) && out[i+1] == '/':
			for ; i < len(out) && out[i] != '\n'; i++ {
				blank(i)
			}
		case c == '/' && i+1 < len(out) && out[i+1] == '*':
			end := bytes.Index(out[i+2:], []byte("*/"))
			stop := len(out)
			if end >= 0 {
				stop = i + 2 + end + 2
			}
			for ; i < stop; i++ {
				blank(i)
			}
			i--
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
		case c == ',':
			lastComma = -1
			if prev != 0 && prev != ',' && prev != '{' && prev != '[' && prev != ':' {
				lastComma = i
			}
			prev = c
		case c == '}' || c == ']':
			if lastComma >= 0 {
				out[lastComma] = ' '
			}
			lastComma, prev = -1, c
		default:
			lastComma, prev = -1, c
		}
	}
	return out
}

// nestedKeys checks the keys of the objects nested in raw (an object of
// settings at at) against the fields of their types, so that a misspelt key
// inside "tools", "access", "tokenExchange", "rateLimit" or "auth" is an
// error naming it, as it is one level up.
func (l *loader) nestedKeys(raw json.RawMessage, server, at string, types map[string]any) error {
	_, vals, err := objectKeys(raw)
	if err != nil {
		return nil // decodeObject has said so
	}
	for key, v := range types {
		sub, ok := vals[key]
		if !ok || string(sub) == "null" {
			continue
		}
		keys, _, err := objectKeys(sub)
		if err != nil {
			return l.errf(server, at+"."+key, "must be an object")
		}
		known := jsonKeys(v)
		for _, k := range keys {
			if known[k] {
				continue
			}
			hint := ""
			if s := nearest(k, known); s != "" {
				hint = fmt.Sprintf(": did you mean %q?", s)
			}
			return l.errf(server, at+"."+key+"."+k, "is not a known setting here%s", hint)
		}
	}
	return nil
}
