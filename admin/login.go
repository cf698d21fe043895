package admin

import (
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/identity"
)

// LoginResponse is the answer of POST /api/webhooks/login: the report
// server's own token, in the shape of its /Token endpoint.
type LoginResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"`
	ExpiresIn   int64  `json:"expires_in"`
	UserName    string `json:"userName"`
}

// login exchanges a user name and password at the report server's /Token.
// The body is a form (username, password; as for /Token; also without a
// Content-Type) or a JSON object with the same names (any case), in UTF-8.
// Anything else is refused with 415 rather than guessed at.
func (h *Handler) login(w http.ResponseWriter, r *http.Request, _ *rswebhooks.Identity) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	isJSON := err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
	isForm := strings.TrimSpace(ct) == "" || err == nil && mt == "application/x-www-form-urlencoded"
	if !isJSON && !isForm || !utf8Charset(params) {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type: must be application/x-www-form-urlencoded or application/json, with no charset other than utf-8")
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<10))
	if err != nil {
		writeError(w, http.StatusRequestEntityTooLarge, "request body: must be at most 8192 bytes")
		return
	}
	var user, pass string
	if isJSON {
		var v struct {
			Username string `json:"username"`
			Password string `json:"password"`
		}
		if err := json.Unmarshal(body, &v); err != nil {
			writeError(w, http.StatusBadRequest, "request body: malformed JSON; send {\"username\": …, \"password\": …}")
			return
		}
		user, pass = v.Username, v.Password
	} else {
		q, err := url.ParseQuery(string(body))
		if err != nil {
			writeError(w, http.StatusBadRequest, "request body: malformed form; send username=…&password=…")
			return
		}
		user, pass = q.Get("username"), q.Get("password")
	}
	if strings.TrimSpace(user) == "" {
		writeError(w, http.StatusBadRequest, "username: is required")
		return
	}
	if pass == "" {
		writeError(w, http.StatusBadRequest, "password: is required")
		return
	}
	res, err := h.ids.Login(r.Context(), user, pass)
	switch {
	case errors.Is(err, identity.ErrBadCredentials):
		zerolog.Ctx(r.Context()).Info().Str("user", user).Msg("login refused by the report server")
		writeError(w, http.StatusBadRequest, "the user name or password is incorrect")
		return
	case err != nil:
		zerolog.Ctx(r.Context()).Error().Err(err).Msg("login failed")
		writeError(w, http.StatusBadGateway, "the report server could not be asked; try again")
		return
	}
	zerolog.Ctx(r.Context()).Info().Str("user", res.UserName).Msg("login")
	WriteJSON(w, http.StatusOK, LoginResponse{
		AccessToken: res.AccessToken, TokenType: res.TokenType,
		ExpiresIn: int64(res.ExpiresIn.Seconds()), UserName: res.UserName,
	})
}
