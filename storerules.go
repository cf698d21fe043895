package rswebhooks

import (
	"errors"
	"fmt"
	"time"
)

// The rules every store engine applies to what it is given, in one place so
// that data moves between engines and a new engine inherits them. Engines
// wrap the errors with their own prefix.

// CheckStoreID refuses ids a store cannot key on: empty, over 256 bytes, or
// holding '/' or control characters. field names the id in the error.
func CheckStoreID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%s is required", field)
	}
	if len(id) > 256 {
		return fmt.Errorf("%s must be at most 256 bytes, got %d", field, len(id))
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; c == '/' || c < 0x20 || c == 0x7f {
			return fmt.Errorf("%s must not contain '/' or control characters: %q", field, id)
		}
	}
	return nil
}

// CheckStoredWebhook checks the ids a webhook is stored under.
func CheckStoredWebhook(w *Webhook) error {
	if w == nil {
		return errors.New("webhook is nil")
	}
	if err := CheckStoreID("webhook Id", w.ID); err != nil {
		return err
	}
	return CheckStoreID("webhook User.Id", w.User.ID)
}

// CheckStoredDelivery checks a delivery's ids and state.
func CheckStoredDelivery(d *Delivery) error {
	if d == nil {
		return errors.New("delivery is nil")
	}
	if err := CheckStoreID("delivery Id", d.ID); err != nil {
		return err
	}
	if err := CheckStoreID("delivery WebhookId", d.WebhookID); err != nil {
		return err
	}
	switch d.State {
	case DeliveryPending, DeliverySucceeded, DeliveryFailed, DeliveryGone, DeliverySkipped:
		return nil
	}
	return fmt.Errorf("delivery State must be pending, succeeded, failed, gone or skipped, got %q", d.State)
}

// CheckCompletedAttempt checks the attempt Complete records with d (nil:
// none), setting its DeliveryID to d's when empty.
func CheckCompletedAttempt(d *Delivery, a *Attempt) error {
	if a == nil {
		return nil
	}
	if a.DeliveryID == "" {
		a.DeliveryID = d.ID
	}
	if a.DeliveryID != d.ID {
		return fmt.Errorf("delivery %s: attempt DeliveryId is %q", d.ID, a.DeliveryID)
	}
	if a.N < 1 {
		return fmt.Errorf("delivery %s: attempt number must be at least 1, got %d", d.ID, a.N)
	}
	return nil
}

// Check reports the first invalid field of a lease request.
func (req LeaseRequest) Check() error {
	if req.Holder == "" {
		return errors.New("LeaseRequest.Holder is required")
	}
	if req.For <= 0 {
		return fmt.Errorf("LeaseRequest.For must be positive, got %s", req.For)
	}
	if req.PerWebhook < 0 {
		return fmt.Errorf("LeaseRequest.PerWebhook must not be negative, got %d", req.PerWebhook)
	}
	return nil
}

// KeepStored carries into w, an update of old, what UpdateWebhook does not
// take from its caller: the creation time when w has none; OwnerMissing,
// which is the engine's to set and starts afresh with a new owner; and the
// rotation, which is RotateSecret's to set and lasts while the secret is
// unchanged (a new secret written by an update replaces both at once).
func (w *Webhook) KeepStored(old *Webhook) {
	if w.CreatedUTC.IsZero() {
		w.CreatedUTC = old.CreatedUTC
	}
	w.OwnerMissing = old.OwnerMissing && old.User.ID == w.User.ID
	w.Rotation = nil
	if w.Secret == old.Secret {
		w.Rotation = old.Rotation
	}
}

// StartRotation makes secret w's signing secret at now. With a grace
// period the previous secret keeps signing alongside until it ends (and a
// rotation still running is ErrRotationInProgress); without one the
// previous secret is dropped at once.
func (w *Webhook) StartRotation(secret string, grace time.Duration, now time.Time) error {
	if grace > 0 && w.Rotation.Active(now) {
		return fmt.Errorf("webhook %s: %w until %s", w.ID, ErrRotationInProgress, w.Rotation.GraceUntilUTC.Format(time.RFC3339))
	}
	w.Rotation = nil
	if grace > 0 {
		w.Rotation = &Rotation{PreviousSecret: w.Secret, StartedUTC: now, GraceUntilUTC: now.Add(grace)}
	}
	w.Secret, w.UpdatedUTC = secret, now
	return nil
}
