// Package reportserver is a typed client of the Telerik Report Server HTTP
// API: the service-account calls rswebhooks needs to map user names to ids,
// administrator flags, roles and permissions, plus the two calls made with a
// caller's own credentials (TokenValid and Exchange).
//
// The service account's access token is obtained at POST /Token
// (grant_type=password), cached until shortly before it expires, and fetched
// again once when the server answers 401. JSON is decoded case-insensitively
// (the server speaks PascalCase; RS.NET's token endpoint speaks camelCase).
// Errors carry the operation and the status but never a token or password.
package reportserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// Sentinel errors callers branch on.
var (
	// ErrNotConfigured is returned by service-account calls when Options held
	// neither User/Password nor Token.
	ErrNotConfigured = errors.New("reportserver: no service account configured")
	// ErrBadCredentials is returned by Exchange (and by service-account calls
	// when the service account's own credentials are refused) for a 400
	// invalid_grant (or 401) answer of POST /Token.
	ErrBadCredentials = errors.New("reportserver: user name or password refused")
	// ErrNotFound is returned when the server answers 404 or a lookup such as
	// UserByName finds nothing.
	ErrNotFound = errors.New("reportserver: not found")
)

// StatusError is an unexpected HTTP status from the report server.
type StatusError struct {
	Op         string // e.g. "GET api/reportserver/v2/users"
	StatusCode int
	Body       string // first 256 bytes of the answer, for diagnostics
}

func (e *StatusError) Error() string {
	if e.Body == "" {
		return fmt.Sprintf("reportserver: %s: status %d", e.Op, e.StatusCode)
	}
	return fmt.Sprintf("reportserver: %s: status %d: %s", e.Op, e.StatusCode, e.Body)
}

// Permission categories (PermissionCategory enum, v1/v2 integers).
const (
	CategoryReport         = 0
	CategoryCategory       = 1
	CategoryDataConnection = 2
	CategoryScheduledTask  = 3
	CategoryDataAlert      = 4
)

// Access flags (AccessPermission enum).
const (
	AccessRead         = 1
	AccessModify       = 2
	AccessDelete       = 4
	AccessCreate       = 8
	AccessUnrestricted = 15
)

// User is the server's User model.
type User struct {
	ID        string `json:"Id"`
	Username  string `json:"Username"`
	FirstName string `json:"FirstName"`
	LastName  string `json:"LastName"`
	Email     string `json:"Email"`
	Enabled   bool   `json:"Enabled"`
}

// Role is the server's UserRole model.
type Role struct {
	ID           string   `json:"Id"`
	Name         string   `json:"Name"`
	Description  string   `json:"Description"`
	IsSystemRole bool     `json:"IsSystemRole"`
	UserIDs      []string `json:"UserIds"`
}

// Permission is the server's Permission model.
type Permission struct {
	ID                 string `json:"Id"`
	PermissionCategory int    `json:"PermissionCategory"`
	Access             int    `json:"Access"`
	ResourceID         string `json:"ResourceId"`
	Scope              int    `json:"Scope"`
}

// Options configures a Client.
type Options struct {
	// BaseURL is the report server's base URL, including any virtual
	// directory (e.g. http://rs:83/reporting). Required; http or https.
	BaseURL *url.URL
	// HTTP sends every request. Default: a client with a 30 s timeout over
	// a clone of http.DefaultTransport (never the shared default itself).
	HTTP *http.Client
	// User and Password are the service account's credentials, exchanged at
	// POST /Token. Token is an alternative: a fixed access token used as is
	// (it cannot be renewed). With none of the three, service-account calls
	// return ErrNotConfigured and only TokenValid and Exchange work.
	User, Password string
	Token          string
	// ProbePath is the cheap authenticated GET TokenValid makes with the
	// caller's token. Default "api/reportserver/v2/categories".
	ProbePath string
	// Logger receives debug lines (method, path, status); never credentials.
	Logger zerolog.Logger
	// Now is the clock for token expiry. Default time.Now.
	Now func() time.Time
	// OnServiceLogin, when set, is told the outcome of every
	// service-account login at /Token (nil on success; ErrBadCredentials
	// when the report server refused the name or password, for instance
	// after a password change or with the account disabled), so the caller
	// can count and log them. Called without locks held by the caller's
	// request path; it must be fast.
	OnServiceLogin func(err error)
}

// Client talks to one report server. It is safe for concurrent use.
type Client struct {
	base   *url.URL
	http   *http.Client
	user   string
	pass   string
	static string
	probe  string
	log    zerolog.Logger
	now    func() time.Time
	login  func(error)

	mu      sync.Mutex // guards token and expires; held while fetching a token
	token   string
	expires time.Time
}

// maxBody bounds every response body the client reads.
const maxBody = 32 << 20

// New validates opts and returns a Client.
func New(opts Options) (*Client, error) {
	if opts.BaseURL == nil {
		return nil, errors.New("reportserver: Options.BaseURL is required")
	}
	if s := strings.ToLower(opts.BaseURL.Scheme); (s != "http" && s != "https") || opts.BaseURL.Host == "" {
		return nil, fmt.Errorf("reportserver: Options.BaseURL must be an absolute http or https URL with a host, got %q", rswebhooks.RedactURL(opts.BaseURL.String()))
	}
	if (opts.User == "") != (opts.Password == "") {
		return nil, errors.New("reportserver: Options.User and Options.Password must be given together")
	}
	if opts.Token != "" && opts.User != "" {
		return nil, errors.New("reportserver: give either Options.Token or Options.User/Password, not both")
	}
	base := *opts.BaseURL
	base.RawQuery, base.Fragment, base.User = "", "", nil
	if !strings.HasSuffix(base.Path, "/") {
		base.Path += "/"
		if base.RawPath != "" {
			base.RawPath += "/"
		}
	}
	c := &Client{
		base:   &base,
		http:   opts.HTTP,
		user:   opts.User,
		pass:   opts.Password,
		static: opts.Token,
		probe:  strings.TrimPrefix(opts.ProbePath, "/"),
		log:    opts.Logger.With().Str("component", "reportserver").Logger(),
		now:    opts.Now,
		login:  opts.OnServiceLogin,
	}
	if c.http == nil {
		c.http = &http.Client{Timeout: 30 * time.Second, Transport: http.DefaultTransport.(*http.Transport).Clone()}
	}
	if c.probe == "" {
		c.probe = "api/reportserver/v2/categories"
	}
	if c.now == nil {
		c.now = time.Now
	}
	return c, nil
}

// Configured reports whether a service account was given.
func (c *Client) Configured() bool { return c.user != "" || c.static != "" }

// BaseURL returns a copy of the base URL (always ending in "/").
func (c *Client) BaseURL() *url.URL { u := *c.base; return &u }

func (c *Client) url(rel string) string {
	u := *c.base
	ref, err := url.Parse(strings.TrimPrefix(rel, "/"))
	if err != nil { // rel is built by this package from escaped segments
		return u.String() + strings.TrimPrefix(rel, "/")
	}
	return u.ResolveReference(ref).String()
}

// Users lists every user (GET api/reportserver/v2/users).
func (c *Client) Users(ctx context.Context) ([]User, error) {
	var us []User
	if err := c.GetJSON(ctx, "api/reportserver/v2/users", &us); err != nil {
		return nil, err
	}
	return us, nil
}

// User reads one user (GET api/reportserver/v2/users/{id}); ErrNotFound
// when the server does not know the id.
func (c *Client) User(ctx context.Context, id string) (*User, error) {
	var u User
	if err := c.GetJSON(ctx, "api/reportserver/v2/users/"+url.PathEscape(id), &u); err != nil {
		return nil, err
	}
	return &u, nil
}

// ReportCategory returns the category id of a report (GET
// api/reportserver/v2/reports/{id}); ErrNotFound for an unknown report.
func (c *Client) ReportCategory(ctx context.Context, reportID string) (string, error) {
	var r struct {
		CategoryID string `json:"CategoryId"`
	}
	if err := c.GetJSON(ctx, "api/reportserver/v2/reports/"+url.PathEscape(reportID), &r); err != nil {
		return "", err
	}
	return r.CategoryID, nil
}

// UserByName finds the user whose Username equals name, ignoring case (the
// report server's user names are case-insensitive). ErrNotFound if none.
func (c *Client) UserByName(ctx context.Context, name string) (*User, error) {
	us, err := c.Users(ctx)
	if err != nil {
		return nil, err
	}
	for i := range us {
		if strings.EqualFold(us[i].Username, name) {
			return &us[i], nil
		}
	}
	return nil, fmt.Errorf("reportserver: user %q: %w", name, ErrNotFound)
}

// UserRoles lists the roles of a user (GET api/reportserver/v2/users/{id}/userroles).
func (c *Client) UserRoles(ctx context.Context, userID string) ([]Role, error) {
	var rs []Role
	if err := c.GetJSON(ctx, "api/reportserver/v2/users/"+url.PathEscape(userID)+"/userroles", &rs); err != nil {
		return nil, err
	}
	return rs, nil
}

// Permissions lists the permissions of a user or role in one category
// (GET api/reportserver/v2/users/{id}/permissions/{category}).
func (c *Client) Permissions(ctx context.Context, userOrRoleID string, category int) ([]Permission, error) {
	var ps []Permission
	p := "api/reportserver/v2/users/" + url.PathEscape(userOrRoleID) + "/permissions/" + strconv.Itoa(category)
	if err := c.GetJSON(ctx, p, &ps); err != nil {
		return nil, err
	}
	return ps, nil
}

// IsAdmin reports whether the user has administrator rights. It asks
// GET api/reportserver/v2/users/{username}/isadmin and accepts the shapes the
// documentation leaves open: a JSON boolean, a "true"/"false" string, or an
// array holding one of those. When that endpoint is missing (404) or answers
// something else, it falls back to the user's roles: an administrator holds a
// system role (IsSystemRole) whose name mentions "admin" (the seeded role
// is "System Administrator").
func (c *Client) IsAdmin(ctx context.Context, username string) (bool, error) {
	raw, err := c.getRaw(ctx, "api/reportserver/v2/users/"+url.PathEscape(username)+"/isadmin")
	if err == nil {
		if v, ok := parseBool(raw); ok {
			return v, nil
		}
		c.log.Debug().Str("user", username).Msg("isadmin answered an unknown shape; falling back to roles")
	} else if !errors.Is(err, ErrNotFound) {
		return false, err
	}
	u, err := c.UserByName(ctx, username)
	if err != nil {
		return false, err
	}
	roles, err := c.UserRoles(ctx, u.ID)
	if err != nil {
		return false, err
	}
	return HasAdminRole(roles), nil
}

// HasAdminRole reports whether roles include the system administrators role.
func HasAdminRole(roles []Role) bool {
	for _, r := range roles {
		if r.IsSystemRole && strings.Contains(strings.ToLower(r.Name), "admin") {
			return true
		}
	}
	return false
}

// IsAdminWithToken asks GET api/reportserver/v2/users/{username}/isadmin
// with the caller's own token (the server lets a user ask about
// themselves). It is the administrator check when no service account is
// configured; there is no role fallback, since listing users needs one.
func (c *Client) IsAdminWithToken(ctx context.Context, bearer, username string) (bool, error) {
	op := "GET api/reportserver/v2/users/{username}/isadmin"
	status, body, err := c.do(ctx, http.MethodGet, "api/reportserver/v2/users/"+url.PathEscape(username)+"/isadmin", bearer, nil, "")
	if err != nil {
		return false, fmt.Errorf("reportserver: %s: %w", op, err)
	}
	if status < 200 || status > 299 {
		return false, &StatusError{Op: op, StatusCode: status, Body: snippet(body)}
	}
	v, ok := parseBool(body)
	if !ok {
		return false, fmt.Errorf("reportserver: %s: answer is not a boolean", op)
	}
	return v, nil
}

func parseBool(raw []byte) (bool, bool) {
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return false, false
	}
	switch t := v.(type) {
	case bool:
		return t, true
	case string:
		b, err := strconv.ParseBool(strings.TrimSpace(t))
		return b, err == nil
	case []any:
		if len(t) != 1 {
			return false, false
		}
		b, err := json.Marshal(t[0])
		if err != nil {
			return false, false
		}
		return parseBool(b)
	}
	return false, false
}

// GetJSON makes an authenticated service-account GET of rel (relative to
// the base URL) and decodes the JSON answer into v. It is the building
// block for lookups this package does not wrap (tasks, alerts, executions).
func (c *Client) GetJSON(ctx context.Context, rel string, v any) error {
	raw, err := c.getRaw(ctx, rel)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("reportserver: GET %s: decode: %w", rel, err)
	}
	return nil
}

func (c *Client) getRaw(ctx context.Context, rel string) ([]byte, error) {
	if !c.Configured() {
		return nil, ErrNotConfigured
	}
	op := "GET " + rel
	for try := 0; ; try++ {
		tok, err := c.serviceToken(ctx)
		if err != nil {
			return nil, err
		}
		status, body, err := c.do(ctx, http.MethodGet, rel, tok, nil, "")
		if err != nil {
			return nil, fmt.Errorf("reportserver: %s: %w", op, err)
		}
		switch {
		case status >= 200 && status < 300:
			return body, nil
		case status == http.StatusUnauthorized && try == 0 && c.static == "":
			c.dropToken(tok)
			continue
		case status == http.StatusNotFound:
			return nil, fmt.Errorf("reportserver: %s: %w", op, ErrNotFound)
		default:
			return nil, &StatusError{Op: op, StatusCode: status, Body: snippet(body)}
		}
	}
}

// TokenValid checks a caller's access token with one cheap authenticated GET
// (Options.ProbePath) sent with that token. 2xx: valid. 401: invalid
// (expired, revoked, unknown). 403: valid — the server knows the caller but
// refuses this resource, which still proves the token. Anything else is an
// error, so a failing server is never mistaken for a bad token.
func (c *Client) TokenValid(ctx context.Context, bearer string) (bool, error) {
	if bearer == "" {
		return false, nil
	}
	status, body, err := c.do(ctx, http.MethodGet, c.probe, bearer, nil, "")
	if err != nil {
		return false, fmt.Errorf("reportserver: check token: %w", err)
	}
	switch {
	case status >= 200 && status < 300, status == http.StatusForbidden:
		return true, nil
	case status == http.StatusUnauthorized:
		return false, nil
	default:
		return false, &StatusError{Op: "check token: GET " + c.probe, StatusCode: status, Body: snippet(body)}
	}
}

// Token is an access token issued at POST /Token.
type Token struct {
	AccessToken string
	ExpiresIn   time.Duration // 0 when the server did not say
	UserName    string        // as the server echoed it; may be empty
}

// Exchange trades a user name and password for an access token at
// POST /Token. A 400 (invalid_grant) or 401 answer is ErrBadCredentials.
func (c *Client) Exchange(ctx context.Context, username, password string) (*Token, error) {
	if username == "" || password == "" {
		return nil, fmt.Errorf("reportserver: exchange: user name and password are required: %w", ErrBadCredentials)
	}
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	status, body, err := c.do(ctx, http.MethodPost, "Token", "", strings.NewReader(form.Encode()), "application/x-www-form-urlencoded")
	if err != nil {
		return nil, fmt.Errorf("reportserver: POST /Token: %w", err)
	}
	switch status {
	case http.StatusOK:
	case http.StatusBadRequest, http.StatusUnauthorized:
		return nil, fmt.Errorf("reportserver: POST /Token for %q: %w", username, ErrBadCredentials)
	default:
		return nil, &StatusError{Op: "POST /Token", StatusCode: status, Body: snippet(body)}
	}
	t, err := ParseTokenResponse(body)
	if err != nil {
		return nil, fmt.Errorf("reportserver: POST /Token: %w", err)
	}
	if t.UserName == "" {
		t.UserName = username
	}
	return t, nil
}

// ParseTokenResponse decodes a /Token answer: access_token or accessToken,
// expires_in or expiresIn (number or numeric string, seconds), userName.
func ParseTokenResponse(body []byte) (*Token, error) {
	var r struct {
		AccessToken  string          `json:"access_token"`
		AccessToken2 string          `json:"accessToken"`
		ExpiresIn    json.RawMessage `json:"expires_in"`
		ExpiresIn2   json.RawMessage `json:"expiresIn"`
		UserName     string          `json:"userName"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("decode token response: %w", err)
	}
	t := &Token{AccessToken: r.AccessToken, UserName: r.UserName}
	if t.AccessToken == "" {
		t.AccessToken = r.AccessToken2
	}
	if t.AccessToken == "" {
		return nil, errors.New("token response has no access_token")
	}
	exp := r.ExpiresIn
	if len(exp) == 0 {
		exp = r.ExpiresIn2
	}
	if len(exp) > 0 {
		s := strings.Trim(string(exp), `"`)
		if n, err := strconv.ParseFloat(s, 64); err == nil && n > 0 {
			t.ExpiresIn = time.Duration(n * float64(time.Second))
		}
	}
	return t, nil
}

// serviceToken returns a cached service-account token, fetching one when
// none is cached or the cached one is about to expire.
func (c *Client) serviceToken(ctx context.Context) (string, error) {
	if c.static != "" {
		return c.static, nil
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.token != "" && c.now().Before(c.expires) {
		return c.token, nil
	}
	t, err := c.Exchange(ctx, c.user, c.pass)
	if c.login != nil && ctx.Err() == nil {
		c.login(err)
	}
	if err != nil {
		return "", fmt.Errorf("reportserver: service account: %w", err)
	}
	life := t.ExpiresIn
	if life <= 0 {
		life = 10 * time.Minute
	}
	// Renew shortly before expiry: a minute early, or a tenth of short lives.
	margin := min(time.Minute, life/10)
	c.token, c.expires = t.AccessToken, c.now().Add(life-margin)
	c.log.Debug().Dur("expires_in", life).Msg("service account token obtained")
	return c.token, nil
}

func (c *Client) dropToken(tok string) {
	c.mu.Lock()
	if c.token == tok {
		c.token = ""
	}
	c.mu.Unlock()
}

func (c *Client) do(ctx context.Context, method, rel, bearer string, body io.Reader, contentType string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, method, c.url(rel), body)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Accept", "application/json")
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) { // keep the cause, drop the URL: it is ours and noisy
			return 0, nil, ue.Err
		}
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return resp.StatusCode, nil, fmt.Errorf("read answer: %w", err)
	}
	c.log.Debug().Str("method", method).Str("path", rel).Int("status", resp.StatusCode).Msg("report server call")
	return resp.StatusCode, bytes.TrimPrefix(b, []byte("\xef\xbb\xbf")), nil
}

func snippet(b []byte) string {
	if len(b) > 256 {
		b = b[:256]
	}
	return strings.TrimSpace(string(b))
}
