// Package identity establishes who is calling the admin API. It learns the
// access tokens the report server issues at POST /Token as they pass through
// the proxy (Resolver is a tap.Tap), and those issued by its own login
// endpoint, checks them against the report server, and maps the user name to
// the report server's user id and administrator flag with the service
// account. It also recognises the operator token. See docs/auth.md.
package identity

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/reportserver"
	"github.com/rswebhooks/rswebhooks/tap"
)

// Sentinel errors.
var (
	// ErrUnauthenticated means no token, an unknown token, or a token the
	// report server no longer accepts. The admin API answers 401.
	ErrUnauthenticated = errors.New("identity: unauthenticated")
	// ErrUnknownToken wraps ErrUnauthenticated for a token this process never
	// saw being issued: the caller should log in at POST /api/webhooks/login
	// (or obtain the token through the proxy).
	ErrUnknownToken = fmt.Errorf("%w: token was not issued through this proxy; obtain one at POST /api/webhooks/login", ErrUnauthenticated)
	// ErrForbidden means the token is valid but the report server's user
	// list does not hold an enabled user of that name. The admin API
	// answers 403.
	ErrForbidden = errors.New("identity: forbidden")
	// ErrBadCredentials is returned by Login when the report server refuses
	// the user name or password.
	ErrBadCredentials = reportserver.ErrBadCredentials
)

// TokenStore persists learned tokens (implemented by *store.DB).
type TokenStore interface {
	GetMeta(ctx context.Context, key string) ([]byte, error)
	// PutMetaUntil stores v until expires; an expiry in the past removes it.
	PutMetaUntil(ctx context.Context, key string, v []byte, expires time.Time) error
}

// persistedLife bounds how long a token the server gave no lifetime for is
// remembered across restarts.
const persistedLife = 24 * time.Hour

// OperatorID is the user id and name of the operator identity.
const OperatorID = "operator"

// Options configures a Resolver.
type Options struct {
	// Client talks to the report server. Required. Without a service
	// account (Client.Configured() false) tokens are still checked with
	// TokenValid, the user id is the lower-cased user name, and the
	// administrator flag is asked with the caller's own token
	// (IsAdminWithToken; false when the server refuses to say).
	Client *reportserver.Client
	// OperatorToken, when non-empty, authenticates as the operator: a
	// system administrator with user id "operator". At least 16 characters.
	OperatorToken string
	// TTL is how long a token check and a user lookup are trusted before the
	// report server is asked again. It bounds how late a revoked or expired
	// token stops working. Default 60s.
	TTL time.Duration
	// MaxTokens bounds the number of remembered tokens. Default 100000;
	// expired entries go first, then the oldest.
	MaxTokens int
	// Tokens, when set, keeps what the resolver learned about tokens (by
	// SHA-256, never the token) until they expire, so a restart does not sign
	// everybody out. A token restored after a restart is checked with the
	// report server before it is used. Nil: memory only.
	Tokens TokenStore
	// Logger receives debug and warning lines; never tokens or passwords.
	Logger zerolog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

type tokenEntry struct {
	user     string    // user name, as the report server issued the token for it
	issued   time.Time // when it was seen
	expires  time.Time // zero: the server did not say
	verified time.Time // last successful TokenValid (or issue time)
}

type userEntry struct {
	id, name string
	admin    bool
	err      error // ErrForbidden for an unknown user, cached too
	fetched  time.Time
}

// Resolver maps bearer tokens to identities. It is safe for concurrent use.
type Resolver struct {
	client   *reportserver.Client
	operator [32]byte
	hasOp    bool
	ttl      time.Duration
	max      int
	log      zerolog.Logger
	now      func() time.Time
	store    TokenStore // nil: memory only

	mu     sync.Mutex
	tokens map[[32]byte]*tokenEntry // key: SHA-256 of the token
	users  map[string]*userEntry    // key: lower-cased user name
	// warming holds the user names being looked up in the background.
	warming map[string]bool
}

var _ tap.Tap = (*Resolver)(nil)

// New validates opts and returns a Resolver.
func New(opts Options) (*Resolver, error) {
	if opts.Client == nil {
		return nil, errors.New("identity: Options.Client is required")
	}
	if opts.OperatorToken != "" && len(opts.OperatorToken) < 16 {
		return nil, errors.New("identity: Options.OperatorToken must be at least 16 characters")
	}
	if opts.TTL < 0 {
		return nil, errors.New("identity: Options.TTL must not be negative")
	}
	r := &Resolver{
		client:  opts.Client,
		ttl:     opts.TTL,
		max:     opts.MaxTokens,
		log:     opts.Logger.With().Str("component", "identity").Logger(),
		now:     opts.Now,
		store:   opts.Tokens,
		tokens:  make(map[[32]byte]*tokenEntry),
		users:   make(map[string]*userEntry),
		warming: make(map[string]bool),
	}
	if opts.OperatorToken != "" {
		r.operator, r.hasOp = sha256.Sum256([]byte(opts.OperatorToken)), true
	}
	if r.ttl == 0 {
		r.ttl = 60 * time.Second
	}
	if r.max <= 0 {
		r.max = 100000
	}
	if r.now == nil {
		r.now = time.Now
	}
	return r, nil
}

// NameID is the owner id of a report-server user known only by name (no
// service account to read the user's GUID): the lower-cased name, except
// that a name equal to OperatorID or starting with "~" gets a "~" in front.
// The mapping is one-to-one and never yields OperatorID, so the operator and
// report-server users live in disjoint id namespaces: a user named
// "Operator" is "~operator" and never sees the operator's webhooks. (With a
// service account ids are the server's GUIDs, which cannot collide either.)
func NameID(name string) string {
	id := strings.ToLower(name)
	if id == OperatorID || strings.HasPrefix(id, "~") {
		return "~" + id
	}
	return id
}

// Operator returns the operator identity.
func Operator() *rswebhooks.Identity {
	return &rswebhooks.Identity{User: rswebhooks.User{ID: OperatorID, Name: OperatorID}, Admin: true, Operator: true}
}

// Wants implements tap.Tap: it asks for the bodies of POST …/Token.
func (r *Resolver) Wants(method, path string) bool {
	return method == "POST" && isTokenPath(path)
}

// isLogoutPath reports whether p is the report server's logout route.
func isLogoutPath(p string) bool {
	p = strings.ToLower(strings.TrimSuffix(p, "/"))
	return strings.HasSuffix(p, "/logout") && strings.Contains(p, "/api/reportserver/")
}

func (r *Resolver) isOperator(tok string) bool {
	k := sha256.Sum256([]byte(tok))
	return r.hasOp && subtle.ConstantTimeCompare(k[:], r.operator[:]) == 1
}

func isTokenPath(p string) bool {
	p = strings.TrimSuffix(p, "/")
	i := strings.LastIndexByte(p, '/')
	return i >= 0 && strings.EqualFold(p[i+1:], "Token")
}

// Observe implements tap.Tap: a 200 answer to POST /Token records the
// issued token (by its SHA-256) for the user name in the request form.
//
// A 2xx answer to the report server's logout route (POST
// api/reportserver[/v1|/v2]/logout) forgets the caller's token at once, so
// it stops authenticating at the admin API without waiting for the next
// re-check.
func (r *Resolver) Observe(_ context.Context, ex *tap.Exchange) {
	if ex.Status >= 200 && ex.Status <= 299 && ex.Method == "POST" && isLogoutPath(ex.Path) {
		if tok := rswebhooks.BearerToken(ex.RequestHeader); tok != "" && !r.isOperator(tok) {
			r.forget(sha256.Sum256([]byte(tok)))
			r.log.Debug().Str("request_id", ex.RequestID).Msg("forgot a token signed out through the proxy")
		}
		return
	}
	if ex.Status != 200 || !r.Wants(ex.Method, ex.Path) {
		return
	}
	if ex.RequestTruncated || ex.ResponseTruncated {
		r.log.Warn().Str("request_id", ex.RequestID).Msg("token exchange too large to read; token not learned")
		return
	}
	user, ok := formUser(ex.RequestBody)
	if !ok {
		r.log.Warn().Str("request_id", ex.RequestID).Msg("token request does not name exactly one user in a password grant form; token not learned (sign in through /api/webhooks/login)")
		return
	}
	body, err := tap.Decode(ex.ResponseBody, tap.Encoding(ex.ResponseHeader, ex.ResponseDecoded), tap.DefaultBodyLimit)
	if err != nil {
		r.log.Warn().Err(err).Str("request_id", ex.RequestID).Msg("token answer cannot be decoded; token not learned")
		return
	}
	t, err := reportserver.ParseTokenResponse(body)
	if err != nil {
		r.log.Warn().Err(err).Str("request_id", ex.RequestID).Msg("token answer not understood; token not learned")
		return
	}
	if t.UserName != "" && !strings.EqualFold(strings.TrimSpace(t.UserName), user) {
		r.log.Warn().Str("request_id", ex.RequestID).Msg("token answer names another user than the request; token not learned")
		return
	}
	at := ex.Time
	if at.IsZero() {
		at = r.now()
	}
	r.remember(t.AccessToken, user, at, t.ExpiresIn)
	r.log.Debug().Str("user", user).Str("request_id", ex.RequestID).Msg("learned a token issued at /Token")
	r.warm(t.AccessToken, user)
}

// warm looks the user up in the background (once per user name at a time),
// so that Peek, and with it the actor of the events this token causes, has
// the user id by the time the client makes its first change.
func (r *Resolver) warm(token, user string) {
	if !r.client.Configured() {
		return // the id is the user name; nothing to look up
	}
	key := strings.ToLower(user)
	r.mu.Lock()
	u, known := r.users[key]
	fresh := known && r.now().Sub(u.fetched) < r.ttl
	if fresh || r.warming[key] {
		r.mu.Unlock()
		return
	}
	r.warming[key] = true
	r.mu.Unlock()
	go func() {
		defer func() {
			r.mu.Lock()
			delete(r.warming, key)
			r.mu.Unlock()
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if _, err := r.user(ctx, token, user, r.now()); err != nil {
			r.log.Debug().Err(err).Str("user", user).Msg("looking up a user after /Token; retried on first use")
		}
	}()
}

// formUser returns the user name of a password-grant /Token request body,
// read exactly as the report server's OWIN host reads it (Katana
// ReadFormAsync): as application/x-www-form-urlencoded whatever the
// Content-Type says, pairs split on '&', a pair without '=' ignored, leading
// white space of a name dropped, '+' as a space, percent escapes decoded
// (an invalid escape kept as written), names compared ignoring case.
//
// It returns false, and the token is not learned, whenever the user is not
// unambiguous: no user name or more than one, a grant_type other than
// exactly one "password", a name that differs when ';' is also taken as a
// separator (as some form readers do), or a name that is not valid UTF-8.
func formUser(body []byte) (string, bool) {
	amp := owinForm(string(body), "&")
	both := owinForm(string(body), "&;")
	user, ok := oneValue(amp, "username")
	user2, ok2 := oneValue(both, "username")
	grant, okg := oneValue(amp, "grant_type")
	user = strings.TrimSpace(user)
	if !ok || !ok2 || !okg || grant != "password" || user == "" || user != strings.TrimSpace(user2) || !utf8.ValidString(user) {
		return "", false
	}
	return user, true
}

// owinForm parses a form body as Katana's ParseDelimited does, splitting
// pairs on any byte of seps.
func owinForm(text, seps string) [][2]string {
	var out [][2]string
	for len(text) > 0 {
		pair := text
		if i := strings.IndexAny(text, seps); i >= 0 {
			pair, text = text[:i], text[i+1:]
		} else {
			text = ""
		}
		name, value, found := strings.Cut(pair, "=")
		if !found {
			continue
		}
		name = strings.TrimLeftFunc(name, unicode.IsSpace)
		out = append(out, [2]string{owinUnescape(name), owinUnescape(value)})
	}
	return out
}

// oneValue returns the single value of name (any case); false when the
// form holds it zero or several times.
func oneValue(form [][2]string, name string) (string, bool) {
	var v string
	n := 0
	for _, kv := range form {
		if strings.EqualFold(kv[0], name) {
			v = kv[1]
			n++
		}
	}
	return v, n == 1
}

// owinUnescape turns '+' into a space and decodes %XX escapes, keeping an
// invalid escape as written (Uri.UnescapeDataString).
func owinUnescape(s string) string {
	s = strings.ReplaceAll(s, "+", " ")
	if !strings.Contains(s, "%") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			b.WriteByte(unhex(s[i+1])<<4 | unhex(s[i+2]))
			i += 2
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isHex(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c <= '9':
		return c - '0'
	case c <= 'F':
		return c - 'A' + 10
	}
	return c - 'a' + 10
}

func (r *Resolver) remember(token, user string, at time.Time, life time.Duration) {
	e := &tokenEntry{user: user, issued: at, verified: at}
	if life > 0 {
		e.expires = at.Add(life)
	}
	k := sha256.Sum256([]byte(token))
	r.mu.Lock()
	if len(r.tokens) >= r.max {
		r.pruneLocked()
	}
	r.tokens[k] = e
	r.mu.Unlock()
	r.persist(k, e)
}

// persistedToken is what is kept of a token across restarts (by its hash).
type persistedToken struct {
	User    string    `json:"user"`
	Issued  time.Time `json:"issued"`
	Expires time.Time `json:"expires,omitempty"`
}

func tokenKey(k [32]byte) string { return "token/" + hex.EncodeToString(k[:]) }

// persist keeps e until the token expires (at most persistedLife when the
// server gave no lifetime).
func (r *Resolver) persist(k [32]byte, e *tokenEntry) {
	if r.store == nil {
		return
	}
	until := e.expires
	if until.IsZero() {
		until = e.issued.Add(persistedLife)
	}
	v, _ := json.Marshal(persistedToken{User: e.user, Issued: e.issued, Expires: e.expires})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.PutMetaUntil(ctx, tokenKey(k), v, until); err != nil {
		r.log.Warn().Err(err).Msg("remembering a learned token across restarts")
	}
}

// restore loads a token learned before a restart. Its last check is unknown,
// so it is verified with the report server before use.
func (r *Resolver) restore(ctx context.Context, k [32]byte, now time.Time) (*tokenEntry, bool) {
	if r.store == nil {
		return nil, false
	}
	b, err := r.store.GetMeta(ctx, tokenKey(k))
	if err != nil {
		return nil, false
	}
	var p persistedToken
	if json.Unmarshal(b, &p) != nil || p.User == "" {
		return nil, false
	}
	e := &tokenEntry{user: p.User, issued: p.Issued, expires: p.Expires}
	if r.deadLocked(e, now) {
		return nil, false
	}
	r.mu.Lock()
	if len(r.tokens) >= r.max {
		r.pruneLocked()
	}
	r.tokens[k] = e
	r.mu.Unlock()
	return e, true
}

// forget removes a token the report server no longer accepts.
func (r *Resolver) forget(k [32]byte) {
	r.mu.Lock()
	delete(r.tokens, k)
	r.mu.Unlock()
	if r.store == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := r.store.PutMetaUntil(ctx, tokenKey(k), nil, time.Time{}); err != nil {
		r.log.Warn().Err(err).Msg("forgetting a revoked token")
	}
}

// pruneLocked drops expired entries, then the oldest quarter if still full.
func (r *Resolver) pruneLocked() {
	now := r.now()
	for k, e := range r.tokens {
		if r.deadLocked(e, now) {
			delete(r.tokens, k)
		}
	}
	if len(r.tokens) < r.max {
		return
	}
	// Still full: drop the entries older than the mean age (about half).
	var sum time.Duration
	for _, e := range r.tokens {
		sum += now.Sub(e.issued) / time.Duration(len(r.tokens))
	}
	cut := now.Add(-sum)
	for k, e := range r.tokens {
		if !e.issued.After(cut) {
			delete(r.tokens, k)
		}
	}
}

func (r *Resolver) deadLocked(e *tokenEntry, now time.Time) bool {
	return !e.expires.IsZero() && !now.Before(e.expires)
}

// LoginResult is what Login returns: the report server's own token.
type LoginResult struct {
	AccessToken string
	TokenType   string // "bearer"
	ExpiresIn   time.Duration
	UserName    string
}

// Login exchanges a user name and password at the report server's /Token
// and remembers the token, so it authenticates at the admin API like a token
// seen through the proxy. ErrBadCredentials when the server refuses them.
func (r *Resolver) Login(ctx context.Context, username, password string) (*LoginResult, error) {
	t, err := r.client.Exchange(ctx, username, password)
	if err != nil {
		return nil, err
	}
	r.remember(t.AccessToken, username, r.now(), t.ExpiresIn)
	return &LoginResult{AccessToken: t.AccessToken, TokenType: "bearer", ExpiresIn: t.ExpiresIn, UserName: t.UserName}, nil
}

// Resolve returns the identity behind a bearer token: the operator, or the
// report-server user a remembered token was issued to, provided the report
// server still accepts the token (checked at most once per TTL). Errors:
// ErrUnauthenticated (or ErrUnknownToken), ErrForbidden, or a wrapped
// transport/status error when the report server cannot be asked.
func (r *Resolver) Resolve(ctx context.Context, bearer string) (*rswebhooks.Identity, error) {
	if bearer == "" {
		return nil, fmt.Errorf("%w: no bearer token", ErrUnauthenticated)
	}
	k := sha256.Sum256([]byte(bearer))
	if r.hasOp && subtle.ConstantTimeCompare(k[:], r.operator[:]) == 1 {
		return Operator(), nil
	}
	now := r.now()
	r.mu.Lock()
	e, ok := r.tokens[k]
	var user string
	var fresh bool
	if ok {
		if r.deadLocked(e, now) {
			delete(r.tokens, k)
			ok = false
		} else {
			user, fresh = e.user, now.Sub(e.verified) < r.ttl
		}
	}
	r.mu.Unlock()
	if !ok {
		e, ok = r.restore(ctx, k, now)
		if !ok {
			return nil, ErrUnknownToken
		}
		user, fresh = e.user, false
	}
	if !fresh {
		valid, err := r.client.TokenValid(ctx, bearer)
		if err != nil {
			return nil, fmt.Errorf("identity: verify token of %q: %w", user, err)
		}
		if valid {
			r.mu.Lock()
			if e2, ok := r.tokens[k]; ok {
				e2.verified = now
			}
			r.mu.Unlock()
		} else {
			r.forget(k)
		}
		if !valid {
			return nil, fmt.Errorf("%w: the report server no longer accepts the token of %q", ErrUnauthenticated, user)
		}
	}
	return r.user(ctx, bearer, user, now)
}

// user maps a user name to an identity, cached for TTL.
func (r *Resolver) user(ctx context.Context, bearer, name string, now time.Time) (*rswebhooks.Identity, error) {
	key := strings.ToLower(name)
	r.mu.Lock()
	u, ok := r.users[key]
	r.mu.Unlock()
	if ok && now.Sub(u.fetched) < r.ttl {
		return u.identity()
	}
	u = &userEntry{id: NameID(name), name: name, fetched: now}
	if r.client.Configured() {
		ru, err := r.client.UserByName(ctx, name)
		switch {
		case errors.Is(err, reportserver.ErrNotFound):
			u.err = fmt.Errorf("%w: user %q is not in the report server's user list", ErrForbidden, name)
		case err != nil:
			return nil, fmt.Errorf("identity: look up user %q: %w", name, err)
		case !ru.Enabled:
			u.id, u.name = ru.ID, ru.Username
			u.err = fmt.Errorf("%w: user %q is disabled", ErrForbidden, ru.Username)
		default:
			u.id, u.name = ru.ID, ru.Username
			admin, err := r.client.IsAdmin(ctx, ru.Username)
			if err != nil {
				return nil, fmt.Errorf("identity: administrator check for %q: %w", name, err)
			}
			u.admin = admin
		}
	} else {
		// No service account: ask about the caller with the caller's own
		// token. Anything but a clear "true" leaves the user a non-admin.
		admin, err := r.client.IsAdminWithToken(ctx, bearer, name)
		if err != nil {
			r.log.Debug().Err(err).Str("user", name).Msg("administrator check with the caller's token failed; treating as non-administrator")
		}
		u.admin = admin && err == nil
	}
	r.mu.Lock()
	r.users[key] = u
	r.mu.Unlock()
	return u.identity()
}

func (u *userEntry) identity() (*rswebhooks.Identity, error) {
	if u.err != nil {
		return nil, u.err
	}
	return &rswebhooks.Identity{User: rswebhooks.User{ID: u.id, Name: u.name}, Admin: u.admin}, nil
}

// Actor names the user behind a token for an event: what Peek knows, or
// else a token learned by another node of a cluster (or before a restart)
// read from the store, bounded by ctx. It never calls the report server:
// the user id is filled in the background (warm) when not cached, so
// later events carry it. Meant for detect's actor; never use it for
// authorisation (a restored token is verified before it authenticates).
func (r *Resolver) Actor(ctx context.Context, bearer string) (*rswebhooks.Identity, bool) {
	if id, ok := r.Peek(bearer); ok || bearer == "" || r.store == nil {
		return id, ok
	}
	e, ok := r.restore(ctx, sha256.Sum256([]byte(bearer)), r.now())
	if !ok {
		return nil, false
	}
	r.warm(bearer, e.user)
	return r.Peek(bearer)
}

// Peek returns what the caches know about a token without any network call
// and without blocking on one: the operator, or the user a remembered,
// unexpired token belongs to. The user id is the last one looked up for that
// user name (ids never change), or, before any lookup, the user name when
// there is no service account and "" when there is one. Meant for detect's
// actor; never use it for authorisation.
func (r *Resolver) Peek(bearer string) (*rswebhooks.Identity, bool) {
	if bearer == "" {
		return nil, false
	}
	k := sha256.Sum256([]byte(bearer))
	if r.hasOp && subtle.ConstantTimeCompare(k[:], r.operator[:]) == 1 {
		return Operator(), true
	}
	now := r.now()
	r.mu.Lock()
	defer r.mu.Unlock()
	e, ok := r.tokens[k]
	if !ok || r.deadLocked(e, now) {
		return nil, false
	}
	id := &rswebhooks.Identity{User: rswebhooks.User{Name: e.user}}
	if u, ok := r.users[strings.ToLower(e.user)]; ok {
		id.ID, id.Name, id.Admin = u.id, u.name, u.admin && u.err == nil
	} else if !r.client.Configured() {
		id.ID = NameID(e.user)
	}
	return id, true
}
