package admin_test

import (
	"encoding/json"
	"fmt"
	"math/big"
	"regexp"
	"sort"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// specDoc is the served OpenAPI document, read as plain JSON so the
// validator and the generator see every keyword it uses.
type specDoc struct {
	root    map[string]any
	mu      sync.Mutex
	regexps map[string]*regexp.Regexp
}

func newSpecDoc(b []byte) (*specDoc, error) {
	d := &specDoc{regexps: map[string]*regexp.Regexp{}}
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.UseNumber()
	if err := dec.Decode(&d.root); err != nil {
		return nil, err
	}
	return d, nil
}

// resolve follows $ref (local references only).
func (d *specDoc) resolve(s map[string]any) map[string]any {
	for {
		ref, ok := s["$ref"].(string)
		if !ok {
			return s
		}
		var v any = d.root
		for _, p := range strings.Split(strings.TrimPrefix(ref, "#/"), "/") {
			v = v.(map[string]any)[p]
		}
		s = v.(map[string]any)
	}
}

// re compiles an ECMA-262 pattern as Go reads it (\uXXXX becomes \x{XXXX};
// the document's patterns use nothing else Go would read differently).
func (d *specDoc) re(p string) *regexp.Regexp {
	d.mu.Lock()
	defer d.mu.Unlock()
	if r, ok := d.regexps[p]; ok {
		return r
	}
	r := regexp.MustCompile(regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`).ReplaceAllString(p, `\x{$1}`))
	d.regexps[p] = r
	return r
}

// validate checks v (decoded with UseNumber) against schema s; it returns
// the first violation with its JSON path, or nil. It covers the keywords
// the document uses: $ref, type, enum, properties, required,
// additionalProperties, propertyNames, maxProperties, items, minLength,
// maxLength, pattern, minimum, maximum, format (date-time, uri), anyOf,
// allOf, not. Unknown keywords are an error, so the document cannot
// silently outgrow the validator.
func (d *specDoc) validate(s map[string]any, v any, path string) error {
	s = d.resolve(s)
	keys := make([]string, 0, len(s))
	for k := range s {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		kw := s[k]
		switch k {
		case "description", "readOnly", "default", "example", "summary", "title":
		case "type":
			if !hasType(kw, v) {
				return fmt.Errorf("%s: %s is not of type %v", path, short(v), kw)
			}
		case "enum":
			ok := false
			for _, e := range kw.([]any) {
				if fmt.Sprint(e) == fmt.Sprint(v) && jsonType(e) == jsonType(v) {
					ok = true
				}
			}
			if !ok {
				return fmt.Errorf("%s: %s is not one of %v", path, short(v), kw)
			}
		case "properties":
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			for name, ps := range kw.(map[string]any) {
				if pv, ok := m[name]; ok {
					if err := d.validate(ps.(map[string]any), pv, path+"."+name); err != nil {
						return err
					}
				}
			}
		case "required":
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			for _, name := range kw.([]any) {
				if _, ok := m[name.(string)]; !ok {
					return fmt.Errorf("%s: required property %s missing", path, name)
				}
			}
		case "additionalProperties":
			m, ok := v.(map[string]any)
			if !ok {
				continue
			}
			declared, _ := s["properties"].(map[string]any)
			for name, pv := range m {
				if _, ok := declared[name]; ok {
					continue
				}
				switch a := kw.(type) {
				case bool:
					if !a {
						return fmt.Errorf("%s: property %q is not allowed", path, name)
					}
				case map[string]any:
					if err := d.validate(a, pv, path+"."+name); err != nil {
						return err
					}
				}
			}
		case "propertyNames":
			if m, ok := v.(map[string]any); ok {
				for name := range m {
					if err := d.validate(kw.(map[string]any), name, path+" name "+fmt.Sprintf("%q", name)); err != nil {
						return err
					}
				}
			}
		case "maxProperties":
			if m, ok := v.(map[string]any); ok && int64(len(m)) > num(kw) {
				return fmt.Errorf("%s: %d properties, at most %v", path, len(m), kw)
			}
		case "items":
			if a, ok := v.([]any); ok {
				for i, e := range a {
					if err := d.validate(kw.(map[string]any), e, fmt.Sprintf("%s[%d]", path, i)); err != nil {
						return err
					}
				}
			}
		case "minLength", "maxLength":
			str, ok := v.(string)
			if !ok {
				continue
			}
			n := int64(utf8.RuneCountInString(str))
			if k == "minLength" && n < num(kw) || k == "maxLength" && n > num(kw) {
				return fmt.Errorf("%s: length %d violates %s %v", path, n, k, kw)
			}
		case "pattern":
			if str, ok := v.(string); ok && !d.re(kw.(string)).MatchString(str) {
				return fmt.Errorf("%s: %q does not match %s", path, str, kw)
			}
		case "minimum", "maximum":
			n, ok := v.(json.Number)
			if !ok {
				continue
			}
			x, _ := new(big.Float).SetString(n.String())
			lim, _ := new(big.Float).SetString(fmt.Sprint(kw))
			if c := x.Cmp(lim); k == "minimum" && c < 0 || k == "maximum" && c > 0 {
				return fmt.Errorf("%s: %s violates %s %v", path, n, k, kw)
			}
		case "format":
			str, ok := v.(string)
			if !ok {
				continue
			}
			switch kw {
			case "date-time":
				if _, err := time.Parse(time.RFC3339Nano, str); err != nil {
					return fmt.Errorf("%s: %q is not a date-time", path, str)
				}
			case "uri":
				if !uriRE.MatchString(str) {
					return fmt.Errorf("%s: %q is not a URI", path, str)
				}
			}
		case "anyOf":
			var errs []string
			for _, alt := range kw.([]any) {
				err := d.validate(alt.(map[string]any), v, path)
				if err == nil {
					errs = nil
					break
				}
				errs = append(errs, err.Error())
			}
			if errs != nil {
				return fmt.Errorf("%s: no alternative of anyOf matches: %s", path, strings.Join(errs, "; "))
			}
		case "allOf":
			for _, alt := range kw.([]any) {
				if err := d.validate(alt.(map[string]any), v, path); err != nil {
					return err
				}
			}
		case "not":
			if d.validate(kw.(map[string]any), v, path) == nil {
				return fmt.Errorf("%s: %s matches a schema it must not (%v)", path, short(v), kw)
			}
		default:
			return fmt.Errorf("%s: the validator does not know keyword %q", path, k)
		}
	}
	return nil
}

// uriRE is RFC 3986's URI (scheme ":" hier-part), loosely: what format:
// uri requires of any absolute URI.
var uriRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.\-]*:([A-Za-z0-9\-._~!$&'()*+,;=:@/?#\[\]]|%[0-9A-Fa-f]{2})*$`)

func num(v any) int64 {
	n, _ := v.(json.Number).Int64()
	return n
}

func jsonType(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil || !strings.ContainsAny(x.String(), ".eE") {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func hasType(kw, v any) bool {
	types := []any{kw}
	if a, ok := kw.([]any); ok {
		types = a
	}
	t := jsonType(v)
	for _, want := range types {
		if want == t || want == "number" && t == "integer" {
			return true
		}
	}
	return false
}

func short(v any) string {
	b, _ := json.Marshal(v)
	if len(b) > 80 {
		return string(b[:80]) + "…"
	}
	return string(b)
}
