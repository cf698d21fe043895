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
	"sort"
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
// the read-only extensions (User, CreatedUtc, UpdatedUtc) are ignored.
type webhookIn struct {
	ID          string            `json:"Id"`
	WebHookURI  string            `json:"WebHookUri"`
	Secret      string            `json:"Secret"`
	Description string            `json:"Description"`
	IsPaused    bool              `json:"IsPaused"`
	Filters     []string          `json:"Filters"`
	Headers     map[string]string `json:"Headers"`
	Properties  map[string]any    `json:"Properties"`
}

// inputError is a refusal with a message naming the field and the rule.
type inputError struct{ msg string }

func (e *inputError) Error() string { return e.msg }

func bad(format string, args ...any) error { return &inputError{msg: fmt.Sprintf(format, args...)} }

// decodeWebhook parses a request body. Only syntax and types are checked.
func decodeWebhook(body []byte) (*webhookIn, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, bad("request body: a JSON WebHook object is required")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var in webhookIn
	if err := dec.Decode(&in); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			field := te.Field
			if field == "" {
				return nil, bad("request body: must be a JSON object, got %s", te.Value)
			}
			return nil, bad("%s: must be %s, got %s", field, jsonKind(te.Type.Kind().String()), te.Value)
		}
		return nil, bad("request body: malformed JSON: %v", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, bad("request body: malformed JSON: unexpected data after the object")
	}
	return &in, nil
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "bool":
		return "a boolean"
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
	switch n := utf8.RuneCountInString(in.Secret); {
	case in.Secret == "" && keepSecret != "":
		w.Secret = keepSecret
	case in.Secret == "":
		w.Secret = randomHex(GeneratedSecretBytes)
	case n < SecretMinLength || n > SecretMaxLength:
		return nil, bad("Secret: must be between %d and %d characters long, got %d (leave it empty to have one generated)", SecretMinLength, SecretMaxLength, n)
	case !utf8.ValidString(in.Secret):
		return nil, bad("Secret: must be valid UTF-8")
	default:
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
	return w, nil
}

func checkURI(s string) (string, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return "", bad("WebHookUri: is required")
	}
	if len(s) > MaxURILength {
		return "", bad("WebHookUri: must be at most %d characters, got %d", MaxURILength, len(s))
	}
	if strings.IndexFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return "", bad("WebHookUri: must not contain spaces or control characters (percent-encode them, e.g. %%20)")
	}
	u, err := url.Parse(s)
	if err != nil {
		return "", bad("WebHookUri: must be an absolute http or https URI: %v", stripURL(err))
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
	return s, nil
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
		n := strings.ToLower(strings.TrimSpace(f))
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

// reservedHeaders are set by the sender (signature, framing); a webhook's
// Headers may not name them.
var reservedHeaders = map[string]bool{
	"ms-signature": true, "content-type": true, "content-length": true, "host": true,
	"user-agent": true, "transfer-encoding": true, "connection": true, "keep-alive": true,
	"te": true, "trailer": true, "upgrade": true, "proxy-connection": true,
	"content-encoding": true, // the body is sent as is; a coding would break its signature check
	"expect":           true, // 100-continue is the sender's business
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
		if reservedHeaders[l] || strings.HasPrefix(l, "webhook-") {
			return nil, bad("Headers: %q is set by the sender and cannot be overridden", k)
		}
		if prev, dup := lower[l]; dup {
			return nil, bad("Headers: %q and %q name the same header", prev, k)
		}
		lower[l] = k
		if len(v) > MaxHeaderValueLength {
			return nil, bad("Headers: value of %q must be at most %d bytes, got %d", k, MaxHeaderValueLength, len(v))
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

func checkProperties(in map[string]any) (map[string]any, error) {
	if len(in) > MaxProperties {
		return nil, bad("Properties: at most %d keys, got %d", MaxProperties, len(in))
	}
	if in == nil {
		return map[string]any{}, nil
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
