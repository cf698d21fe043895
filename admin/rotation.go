package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/rs/zerolog"

	"github.com/rswebhooks/rswebhooks"
)

// rotateRaw is the optional body of POST …/rotate; members are decoded one
// by one so a message can name the member. Unknown members are ignored.
type rotateRaw struct {
	Secret       json.RawMessage `json:"Secret"`
	GraceSeconds json.RawMessage `json:"GraceSeconds"`
}

// promoteRaw is the optional body of POST …/rotate/promote.
type promoteRaw struct {
	WebHookURI json.RawMessage `json:"WebHookUri"`
}

// readOptional reads an optional JSON object body into v: an empty body
// (or "null") leaves v as it is.
func (h *Handler) readOptional(w http.ResponseWriter, r *http.Request, v any) bool {
	if !jsonContentType(r.Header.Get("Content-Type")) {
		writeError(w, http.StatusUnsupportedMediaType, "Content-Type: must be application/json (or text/json), with no charset other than utf-8")
		return false
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var mb *http.MaxBytesError
		if errors.As(err, &mb) {
			writeError(w, http.StatusRequestEntityTooLarge, "request body: must be at most "+itoa(h.maxBody)+" bytes")
			return false
		}
		writeError(w, http.StatusBadRequest, "request body: cannot be read")
		return false
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 || string(body) == "null" {
		return true
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field == "" {
			writeError(w, http.StatusBadRequest, "request body: must be a JSON object, got "+te.Value)
			return false
		}
		writeError(w, http.StatusBadRequest, "request body: malformed JSON: "+err.Error())
		return false
	}
	if _, err := dec.Token(); err != io.EOF {
		writeError(w, http.StatusBadRequest, "request body: malformed JSON: unexpected data after the object")
		return false
	}
	return true
}

// parseRotate validates a rotate body: the new secret ("" = generate one)
// and the grace period.
func parseRotate(raw rotateRaw) (secret string, grace time.Duration, err error) {
	grace = rswebhooks.DefaultRotationGrace
	if len(raw.Secret) > 0 && string(raw.Secret) != "null" {
		if err := decodeExact("Secret", raw.Secret, &secret); err != nil {
			return "", 0, err
		}
		if secret != "" {
			if err := checkSecret(secret); err != nil {
				return "", 0, err
			}
		}
	}
	if len(raw.GraceSeconds) > 0 && string(raw.GraceSeconds) != "null" {
		maxSecs := int64(rswebhooks.MaxRotationGrace / time.Second)
		rule := "GraceSeconds: must be a whole number of seconds from 0 (replace the secret at once) to " +
			strconv.FormatInt(maxSecs, 10) + " (7 days)"
		var n json.Number
		if c := raw.GraceSeconds[0]; (c < '0' || c > '9') && c != '-' || json.Unmarshal(raw.GraceSeconds, &n) != nil {
			return "", 0, bad("%s, got %s", rule, raw.GraceSeconds)
		}
		f, err := n.Float64()
		if err != nil || f != math.Trunc(f) || f < 0 || f > float64(maxSecs) {
			return "", 0, bad("%s, got %s", rule, n)
		}
		grace = time.Duration(f) * time.Second
	}
	return secret, grace, nil
}

// rotate starts a secret rotation: the new secret (given or generated) is
// answered once with the webhook; during the grace period the previous one
// signs alongside it (see rswebhooks.Rotation and docs/rotation.md).
func (h *Handler) rotate(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	wh, ok := h.lookup(w, r, who, r.PathValue("id"))
	if !ok {
		return
	}
	var raw rotateRaw
	if !h.readOptional(w, r, &raw) {
		return
	}
	secret, grace, err := parseRotate(raw)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error())
		return
	}
	if secret == "" {
		secret = randomHex(GeneratedSecretBytes)
	}
	if secret == wh.Secret {
		writeError(w, http.StatusBadRequest, "Secret: must differ from the current secret (leave it empty to have one generated)")
		return
	}
	rotated, err := h.store.RotateSecret(r.Context(), wh.ID, secret, grace)
	if errors.Is(err, rswebhooks.ErrRotationInProgress) {
		writeError(w, http.StatusConflict, "rotate: "+err.Error()+
			"; promote it (POST …/rotate/promote) and wait for its end, or rotate with GraceSeconds 0 to replace the secret at once")
		return
	}
	if err != nil {
		storeError(w, r, err, "webhook")
		return
	}
	ev := zerolog.Ctx(r.Context()).Info().Str("webhook_id", wh.ID)
	if rotated.Rotation != nil {
		ev = ev.Time("grace_until", rotated.Rotation.GraceUntilUTC)
	}
	ev.Msg("webhook secret rotated")
	WriteJSON(w, http.StatusOK, h.out(rotated))
}

// promote makes ms-signature use the new secret before the grace period
// ends, optionally moving the webhook to a new WebHookUri (verified like a
// registration) in the same write.
func (h *Handler) promote(w http.ResponseWriter, r *http.Request, who *rswebhooks.Identity) {
	wh, ok := h.lookup(w, r, who, r.PathValue("id"))
	if !ok {
		return
	}
	var raw promoteRaw
	if !h.readOptional(w, r, &raw) {
		return
	}
	uri := ""
	if len(raw.WebHookURI) > 0 && string(raw.WebHookURI) != "null" {
		if err := decodeExact("WebHookUri", raw.WebHookURI, &uri); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
	}
	if !wh.Rotation.Active(h.now()) {
		writeError(w, http.StatusConflict, "promote: webhook "+wh.ID+" has no secret rotation in its grace period (POST …/rotate starts one)")
		return
	}
	if uri != "" {
		var err error
		if uri, err = checkURI(uri); err != nil {
			writeError(w, http.StatusBadRequest, err.Error())
			return
		}
		moved := *wh
		moved.URI = uri
		if !h.verify(w, r, who, &moved) {
			return
		}
	}
	promoted, err := h.store.PromoteRotation(r.Context(), wh.ID, uri)
	if errors.Is(err, rswebhooks.ErrNoRotation) {
		writeError(w, http.StatusConflict, "promote: "+err.Error()+" (it ended meanwhile)")
		return
	}
	if err != nil {
		storeError(w, r, err, "webhook")
		return
	}
	ev := zerolog.Ctx(r.Context()).Info().Str("webhook_id", wh.ID)
	if uri != "" {
		ev = ev.Str("uri", rswebhooks.RedactURL(uri))
	}
	ev.Msg("webhook secret rotation promoted: ms-signature uses the new secret")
	WriteJSON(w, http.StatusOK, h.out(promoted))
}
