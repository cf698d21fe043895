package admin

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/rswebhooks/rswebhooks"
)

// Limits on a registration.
const (
	SecretMinLength      = 32
	SecretMaxLength      = 128
	GeneratedSecretBytes = 32 // 64 hex characters
	MaxURILength         = 2048
	MaxDescriptionLength = 1024
	MaxHeaders           = 32
	MaxHeaderNameLength  = 256
	MaxHeaderValueLength = 4096
	MaxProperties        = 32
	MaxPropertiesBytes   = 16 << 10
)

// webhookIn is the request body of POST and PUT. encoding/json matches
// names case-insensitively and ignores unknown fields, as Newtonsoft does;
// the read-only extensions (CreatedUtc, UpdatedUtc) are ignored, and so is
// User except from an administrator's PUT (which gives the webhook to
// another user). null is read as absent for Id, Secret, Description, Filters, Headers and
// Properties (as the stock Newtonsoft model binder does, so C# clients that
// serialise unset members as null keep working) and refused for IsPaused,
// WebHookUri and header values.
type webhookIn struct {
	ID          string
	WebHookURI  string
	Secret      string
	Description string
	IsPaused    bool
	Filters     []string
	Headers     map[string]string
	Properties  map[string]json.RawMessage
	User        *rswebhooks.User
	// Extensions; nil when absent (or null): false and 0 on POST, the
	// stored value on PUT, so a client that does not know them never
	// changes them.
	Ordered      *bool
	MaxPerSecond *float64
}

// webhookRaw holds each member undecoded, so null, invalid text and
// duplicate names are caught and the message can name the member.
type webhookRaw struct {
	ID           json.RawMessage `json:"Id"`
	WebHookURI   json.RawMessage `json:"WebHookUri"`
	Secret       json.RawMessage `json:"Secret"`
	Description  json.RawMessage `json:"Description"`
	IsPaused     json.RawMessage `json:"IsPaused"`
	Filters      json.RawMessage `json:"Filters"`
	Headers      json.RawMessage `json:"Headers"`
	Properties   json.RawMessage `json:"Properties"`
	User         json.RawMessage `json:"User"`
	Ordered      json.RawMessage `json:"Ordered"`
	MaxPerSecond json.RawMessage `json:"MaxPerSecond"`
}

// inputError is a refusal with a message naming the field and the rule.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func bad(format string, args ...any) error { return &inputError{msg: fmt.Sprintf(format, args...)} }

// decodeWebhook parses a request body. Only syntax and types are checked,
// and that every string reads back exactly as sent (valid UTF-8, no lone
// surrogate escapes, which a decoder would silently replace).
func decodeWebhook(body []byte) (*webhookIn, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, bad("request body: a JSON WebHook object is required")
	}
	var raw webhookRaw
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&raw); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return nil, bad("request body: must be a JSON object, got %s", te.Value)
		}
		return nil, bad("request body: malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("request body: malformed JSON: unexpected data after the object")
	}
	var in webhookIn
	fields := []struct {
		name     string
		raw      json.RawMessage
		nullable bool
		into     any
	}{
		{"Id", raw.ID, true, &in.ID},
		{"WebHookUri", raw.WebHookURI, false, &in.WebHookURI},
		{"Secret", raw.Secret, true, &in.Secret},
		{"Description", raw.Description, true, &in.Description},
		{"IsPaused", raw.IsPaused, false, &in.IsPaused},
		{"Filters", raw.Filters, true, &in.Filters},
		{"Ordered", raw.Ordered, true, &in.Ordered},
		{"MaxPerSecond", raw.MaxPerSecond, true, &in.MaxPerSecond},
	}
	for _, f := range fields {
		if len(f.raw) == 0 {
			continue
		}
		if string(f.raw) == "null" {
			if f.nullable {
				continue
			}
			return nil, bad("%s: must not be null", f.name)
		}
		if err := decodeExact(f.name, f.raw, f.into); err != nil {
			return nil, err
		}
	}
	if len(raw.User) > 0 && string(raw.User) != "null" {
		// Read-only for everyone but an administrator's PUT; a shape other
		// than {Id, Name} is ignored like any read-only member.
		var u rswebhooks.User
		if json.Unmarshal(raw.User, &u) == nil {
			in.User = &u
		}
	}
	if len(raw.Headers) > 0 && string(raw.Headers) != "null" {
		vals, err := objectMembers("Headers", raw.Headers)
		if err != nil {
			return nil, err
		}
		in.Headers = make(map[string]string, len(vals))
		for k, v := range vals {
			if string(v) == "null" {
				return nil, bad("Headers: value of %q must be a string, not null", k)
			}
			var sv string
			if err := decodeExact(fmt.Sprintf("Headers: value of %q", k), v, &sv); err != nil {
				return nil, err
			}
			in.Headers[k] = sv
		}
	}
	if len(raw.Properties) > 0 && string(raw.Properties) != "null" {
		vals, err := objectMembers("Properties", raw.Properties)
		if err != nil {
			return nil, err
		}
		in.Properties = vals
	}
	return &in, nil
}

// decodeExact decodes one member, refusing text that would not read back
// as sent.
func decodeExact(field string, raw json.RawMessage, v any) error {
	if err := exactText(field, raw); err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			return bad("%s: must be %s, got %s", field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return bad("%s: %v", field, err)
	}
	return nil
}

// exactText refuses JSON text whose strings a decoder would change:
// invalid UTF-8 and \u escapes of lone surrogates (both become U+FFFD).
func exactText(field string, raw []byte) error {
	if !utf8.Valid(raw) {
		return bad("%s: must be valid UTF-8", field)
	}
	for i := 0; i+1 < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		if raw[i+1] != 'u' || i+6 > len(raw) {
			i++ // skip the escaped character
			continue
		}
		r, err := strconv.ParseUint(string(raw[i+2:i+6]), 16, 16)
		if err != nil {
			return bad("%s: malformed \\u escape", field)
		}
		switch {
		case r >= 0xd800 && r < 0xdc00: // high surrogate: a low one must follow
			if i+12 > len(raw) || raw[i+6] != '\\' || raw[i+7] != 'u' {
				return bad("%s: must not contain a lone UTF-16 surrogate (\\u%04x)", field, r)
			}
			lo, err := strconv.ParseUint(string(raw[i+8:i+12]), 16, 16)
			if err != nil || lo < 0xdc00 || lo > 0xdfff {
				return bad("%s: must not contain a lone UTF-16 surrogate (\\u%04x)", field, r)
			}
			i += 11
		case r >= 0xdc00 && r <= 0xdfff:
			return bad("%s: must not contain a lone UTF-16 surrogate (\\u%04x)", field, r)
		default:
			i += 5
		}
	}
	return nil
}

// objectMembers splits a JSON object into its members, values compacted
// but otherwise as sent. Duplicate names are refused: only one could read
// back.
func objectMembers(field string, raw json.RawMessage) (map[string]json.RawMessage, error) {
	if err := exactText(field, raw); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, bad("%s: must be an object, got %s", field, jsonValueKind(raw))
	}
	out := map[string]json.RawMessage{}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad("%s: malformed JSON: %v", field, err)
		}
		name, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, bad("%s: malformed JSON: %v", field, err)
		}
		if _, dup := out[name]; dup {
			return nil, bad("%s: %q appears more than once", field, name)
		}
		var c bytes.Buffer
		if err := json.Compact(&c, v); err != nil {
			return nil, bad("%s: malformed JSON: %v", field, err)
		}
		out[name] = c.Bytes()
	}
	return out, nil
}

// jsonValueKind names the kind of a JSON value for messages.
func jsonValueKind(raw []byte) string {
	b := bytes.TrimSpace(raw)
	if len(b) == 0 {
		return "nothing"
	}
	switch b[0] {
	case '[':
		return "an array"
	case '"':
		return "a string"
	case 't', 'f':
		return "a boolean"
	case 'n':
		return "null"
	}
	return "a number"
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
	case "float64":
		return "a number"
	case "slice":
		return "an array"
	case "map", "struct":
		return "an object"
	}
	return "a " + k
}

// buildWebhook validates in and returns the webhook it describes (without
// ID, owner or times). Secret is generated when empty unless keepSecret is
// given (PUT keeps the stored one).
func (h *Handler) buildWebhook(in *webhookIn, keepSecret string) (*rswebhooks.Webhook, error) {
	w := &rswebhooks.Webhook{IsPaused: in.IsPaused}
	var err error
	if w.URI, err = checkURI(in.WebHookURI); err != nil {
		return nil, err
	}
	switch {
	case in.Secret == "" && keepSecret != "":
		w.Secret = keepSecret
	case in.Secret == "":
		w.Secret = randomHex(GeneratedSecretBytes)
	default:
		if err := checkSecret(in.Secret); err != nil {
			return nil, err
		}
		w.Secret = in.Secret
	}
	if n := utf8.RuneCountInString(in.Description); n > MaxDescriptionLength {
		return nil, bad("Description: must be at most %d characters, got %d", MaxDescriptionLength, n)
	}
	w.Description = in.Description
	if w.Filters, err = h.normaliseFilters(in.Filters); err != nil {
		return nil, err
	}
	if w.Headers, err = checkHeaders(in.Headers); err != nil {
		return nil, err
	}
	if w.Properties, err = checkProperties(in.Properties); err != nil {
		return nil, err
	}
	if in.Ordered != nil {
		w.Ordered = *in.Ordered
	}
	if in.MaxPerSecond != nil {
		v := *in.MaxPerSecond
		if v != 0 && (v < rswebhooks.MinPerSecond || v > rswebhooks.MaxPerSecondLimit) {
			return nil, bad("MaxPerSecond: must be 0 (no limit) or between %g and %d notifications per second, got %g",
				rswebhooks.MinPerSecond, rswebhooks.MaxPerSecondLimit, v)
		}
		w.MaxPerSecond = v
	}
	return w, nil
}

// checkSecret applies the rules of a given (not generated) Secret.
func checkSecret(s string) error {
	switch n := utf8.RuneCountInString(s); {
	case n < SecretMinLength || n > SecretMaxLength:
		return bad("Secret: must be between %d and %d characters long, got %d (leave it empty to have one generated)", SecretMinLength, SecretMaxLength, n)
	case !utf8.ValidString(s):
		return bad("Secret: must be valid UTF-8")
	case strings.IndexFunc(s, unicode.IsControl) >= 0:
		return secretControlError()
	}
	return nil
}

// secretControlError refuses control characters in a Secret: they cannot
// be typed into a receiver's configuration and some stores drop them.
func secretControlError() error {
	return bad("Secret: must not contain control characters")
}

// uriChars are the characters RFC 3986 allows in a URI (unreserved,
// reserved and '%' of a percent-encoding).
const uriChars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~:/?#[]@!$&'()*+,;=%"

// Patterns the OpenAPI document states and the handler enforces
// (ECMA-262 syntax that Go's regexp reads the same way).
const (
	// URIPattern: an absolute http or https URI of RFC 3986 characters,
	// with a host (no percent-encoding in it), an optional numeric port,
	// and no brackets outside an IP literal.
	URIPattern = `^[hH][tT][tT][pP][sS]?://(([A-Za-z0-9\-._~!$&'()*+,;=:]|%[0-9A-Fa-f]{2})*@)?` +
		`(\[` + ipv6Pattern + `\]|` + ipv4Pattern + `|` + regNamePattern + `)(:[0-9]*)?` +
		`([/?#]([A-Za-z0-9\-._~!$&'()*+,;=:@/?#]|%[0-9A-Fa-f]{2})*)?$`
	// HeaderNamePattern: an RFC 9110 token of 1–256 characters.
	HeaderNamePattern = "^[!#$%&'*+\\-.^_`|~0-9A-Za-z]{1,256}$"
	// HeaderValuePattern: no control characters other than tab.
	HeaderValuePattern = `^[^\u0000-\u0008\u000A-\u001F\u007F]*$`
	// SecretPattern: no control characters (C0, DEL, C1).
	SecretPattern = `^[^\u0000-\u001F\u007F-\u009F]*$` //nolint:gosec // G101: the rule a secret must follow, not a secret
)

// regNamePattern is a host name that no resolver reads as an IPv4 address
// (see checkHost): after at most one trailing dot, its last label is empty
// or not a number in inet_aton's decimal, octal or 0x-hex forms. Labels are
// RFC 3986 reg-name characters without percent-encoding.
const (
	labelChar = `[A-Za-z0-9\-_~!$&'()*+,;=]`
	// hexish holds the characters a numeric label can be made of.
	hexish = `[0-9a-fA-FxX]`
	// notHexish: a label with one of these is never numeric.
	notHexish = `[g-wyzG-WYZ\-_~!$&'()*+,;=]`
	// nonNumericLabel: a label inet_aton does not read as a number.
	nonNumericLabel = `(` + labelChar + `*` + notHexish + labelChar + `*` +
		`|[a-fA-FxX]` + hexish + `*` +
		`|[1-9][0-9]*[a-fA-FxX]` + hexish + `*` +
		`|0[0-9]+[a-fA-FxX]` + hexish + `*` +
		`|0[a-fA-F]` + hexish + `*` +
		`|0[xX][0-9a-fA-F]*[xX]` + hexish + `*` +
		`|0[xX])`
	regNamePattern = `((` + labelChar + `|\.)*\.)?` + nonNumericLabel + `\.?` +
		`|(` + labelChar + `|\.)*\.\.|\.`
	// ipv4Pattern is RFC 3986's IPv4address (dotted decimal, no leading zeros).
	ipv4Pattern = decOctet + `\.` + decOctet + `\.` + decOctet + `\.` + decOctet
)

// ipv6Pattern is RFC 3986's IPv6address (no zone, no IPvFuture).
const (
	h16         = `[0-9A-Fa-f]{1,4}`
	decOctet    = `(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])`
	ls32        = `(` + h16 + `:` + h16 + `|` + decOctet + `\.` + decOctet + `\.` + decOctet + `\.` + decOctet + `)`
	ipv6Pattern = `((` + h16 + `:){6}` + ls32 +
		`|::(` + h16 + `:){5}` + ls32 +
		`|(` + h16 + `)?::(` + h16 + `:){4}` + ls32 +
		`|((` + h16 + `:){0,1}` + h16 + `)?::(` + h16 + `:){3}` + ls32 +
		`|((` + h16 + `:){0,2}` + h16 + `)?::(` + h16 + `:){2}` + ls32 +
		`|((` + h16 + `:){0,3}` + h16 + `)?::` + h16 + `:` + ls32 +
		`|((` + h16 + `:){0,4}` + h16 + `)?::` + ls32 +
		`|((` + h16 + `:){0,5}` + h16 + `)?::` + h16 +
		`|((` + h16 + `:){0,6}` + h16 + `)?::)`
)

var uriRE = regexp.MustCompile(goPattern(URIPattern))

// goPattern turns the \uXXXX escapes of an ECMA-262 pattern into Go's \x{XXXX}.
func goPattern(p string) string {
	return regexp.MustCompile(`\\u([0-9A-Fa-f]{4})`).ReplaceAllString(p, `\x{$1}`)
}

// ReservedHeaderPattern matches (case-insensitively, spelled out for
// ECMA-262, which has no inline flags) the header names a webhook's
// Headers may not use.
func ReservedHeaderPattern() string {
	var names []string
	for _, n := range rswebhooks.ReservedHeaders() {
		names = append(names, caseless(n))
	}
	sort.Strings(names)
	names = append(names, caseless(rswebhooks.ReservedHeaderPrefix)+".*")
	return "^(" + strings.Join(names, "|") + ")$"
}

// FilterPattern matches the filter names (any case) and "*".
func FilterPattern(names []string) string {
	alts := []string{`\*`}
	for _, n := range names {
		alts = append(alts, caseless(n))
	}
	return "^(" + strings.Join(alts, "|") + ")$"
}

// caseless spells a lower-case ASCII name as a case-insensitive pattern.
func caseless(s string) string {
	var b strings.Builder
	for _, c := range s {
		switch {
		case c >= 'a' && c <= 'z':
			b.WriteString("[" + string(c) + string(c-'a'+'A') + "]")
		case strings.ContainsRune(`\.+*?()|[]{}^$`, c):
			b.WriteString(`\` + string(c))
		default:
			b.WriteRune(c)
		}
	}
	return b.String()
}

func checkURI(s string) (string, error) {
	if s == "" {
		return "", bad("WebHookUri: is required")
	}
	if len(s) > MaxURILength {
		return "", bad("WebHookUri: must be at most %d characters, got %d", MaxURILength, len(s))
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", bad("WebHookUri: must not contain spaces or control characters (percent-encode them, e.g. %%20)")
	}
	for i, r := range s {
		if r >= utf8.RuneSelf || !strings.ContainsRune(uriChars, r) {
			return "", bad("WebHookUri: must be a URI (RFC 3986): %q is not allowed; percent-encode it (UTF-8 bytes as %%XX)", r)
		}
		if r == '%' && (i+2 >= len(s) || !isHex(s[i+1]) || !isHex(s[i+2])) {
			return "", bad("WebHookUri: must be a URI (RFC 3986): %% must start a percent-encoding %%XX")
		}
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", bad("WebHookUri: must be an absolute http or https URI: %v", stripURL(err))
	}
	if strings.Contains(u.Host, "%") {
		return "", bad("WebHookUri: the host must not contain percent-encodings")
	}
	if !u.IsAbs() || u.Host == "" {
		return "", bad("WebHookUri: must be an absolute http or https URI with a host")
	}
	if sch := strings.ToLower(u.Scheme); sch != "http" && sch != "https" {
		return "", bad("WebHookUri: scheme must be http or https, got %q", u.Scheme)
	}
	if u.Hostname() == "" {
		return "", bad("WebHookUri: must name a host")
	}
	if err := checkHost(u.Hostname()); err != nil {
		return "", err
	}
	if !uriRE.MatchString(s) {
		return "", bad("WebHookUri: must be an absolute http or https URI with a host, an optional numeric port, and brackets only around an IP literal (pattern %s)", URIPattern)
	}
	return s, nil
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// stripURL drops the URL from a url.Error so user info never reaches a message.
func stripURL(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err
	}
	return err
}

func (h *Handler) normaliseFilters(in []string) ([]string, error) {
	seen := make(map[string]bool)
	all := false
	for _, f := range in {
		n := strings.ToLower(f)
		if n == rswebhooks.FilterAll {
			all = true // still check the others: an unknown name is refused
			continue
		}
		if _, ok := h.known[n]; !ok {
			names := make([]string, 0, len(h.filters))
			for _, k := range h.filters {
				names = append(names, k.Name)
			}
			return nil, bad("Filters: unknown filter %q; valid filters are %s (or none, or %q, for all)", f, strings.Join(names, ", "), rswebhooks.FilterAll)
		}
		seen[n] = true
	}
	if all {
		return []string{rswebhooks.FilterAll}, nil
	}
	var out []string
	for _, k := range h.filters { // canonical order
		if seen[k.Name] {
			out = append(out, k.Name)
		}
	}
	// With every filter named, ["*"] would mean the same now but not if a
	// filter is added later; keep the explicit list.
	if len(out) == 0 {
		return []string{rswebhooks.FilterAll}, nil
	}
	return out, nil
}

func checkHeaders(in map[string]string) (map[string]string, error) {
	out := make(map[string]string, len(in))
	if len(in) > MaxHeaders {
		return nil, bad("Headers: at most %d headers, got %d", MaxHeaders, len(in))
	}
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names) // deterministic messages
	lower := make(map[string]string)
	for _, k := range names {
		v := in[k]
		if k == "" || len(k) > MaxHeaderNameLength || !validToken(k) {
			return nil, bad("Headers: %q is not a valid HTTP header name (1–%d token characters)", k, MaxHeaderNameLength)
		}
		l := strings.ToLower(k)
		if rswebhooks.ReservedHeader(l) {
			return nil, bad("Headers: %q is set by the sender and cannot be overridden", k)
		}
		if prev, dup := lower[l]; dup {
			return nil, bad("Headers: %q and %q name the same header", prev, k)
		}
		lower[l] = k
		if n := utf8.RuneCountInString(v); n > MaxHeaderValueLength {
			return nil, bad("Headers: value of %q must be at most %d characters, got %d", k, MaxHeaderValueLength, n)
		}
		if !validHeaderValue(v) {
			return nil, bad("Headers: value of %q must not contain control characters (CR, LF, NUL, …)", k)
		}
		out[k] = v
	}
	return out, nil
}

// validToken reports whether s is an RFC 9110 token.
func validToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// validHeaderValue refuses control characters other than horizontal tab.
func validHeaderValue(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < 0x20 && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

func checkProperties(in map[string]json.RawMessage) (map[string]json.RawMessage, error) {
	if len(in) > MaxProperties {
		return nil, bad("Properties: at most %d keys, got %d", MaxProperties, len(in))
	}
	if in == nil {
		return map[string]json.RawMessage{}, nil
	}
	b, err := json.Marshal(in)
	if err != nil {
		return nil, bad("Properties: cannot be encoded: %v", err)
	}
	if len(b) > MaxPropertiesBytes {
		return nil, bad("Properties: must encode to at most %d bytes of JSON, got %d", MaxPropertiesBytes, len(b))
	}
	return in, nil
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics on failure)
	return hex.EncodeToString(b)
}
