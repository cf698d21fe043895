package rswebhooks

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestStoreRules(t *testing.T) {
	for _, id := range []string{"", "a/b", "a\x00", "a\x7f", strings.Repeat("x", 257)} {
		if CheckStoreID("webhook Id", id) == nil {
			t.Errorf("CheckStoreID(%q) accepted", id)
		}
	}
	if err := CheckStoreID("webhook Id", "01JDQ0000000000000000000AA"); err != nil {
		t.Errorf("a ULID refused: %v", err)
	}
	if err := CheckStoredDelivery(&Delivery{ID: "D1", WebhookID: "W1", State: "sent"}); err == nil || !strings.Contains(err.Error(), "delivery State") {
		t.Errorf("unknown state: %v", err)
	}
	d := &Delivery{ID: "D1", WebhookID: "W1", State: DeliveryPending}
	a := &Attempt{N: 1}
	if err := CheckCompletedAttempt(d, a); err != nil || a.DeliveryID != "D1" {
		t.Errorf("attempt without DeliveryId: %v, %q", err, a.DeliveryID)
	}
	if CheckCompletedAttempt(d, &Attempt{DeliveryID: "D2", N: 1}) == nil || CheckCompletedAttempt(d, &Attempt{N: 0}) == nil {
		t.Error("an attempt of another delivery or number 0 accepted")
	}
	if (LeaseRequest{Holder: "n1", For: time.Second}).Check() != nil || (LeaseRequest{For: time.Second}).Check() == nil {
		t.Error("lease request checks")
	}
}

func TestWebhookUpdateAndRotation(t *testing.T) {
	now := time.Now().UTC()
	old := &Webhook{ID: "W1", User: User{ID: "u1"}, Secret: "s1", CreatedUTC: now.Add(-time.Hour), OwnerMissing: true}
	if err := old.StartRotation("s2", time.Hour, now); err != nil || old.Secret != "s2" || old.Rotation.PreviousSecret != "s1" {
		t.Fatalf("rotation: %v %+v", err, old)
	}
	if err := old.StartRotation("s3", time.Hour, now); !errors.Is(err, ErrRotationInProgress) {
		t.Fatalf("second rotation during grace: %v", err)
	}
	w := &Webhook{ID: "W1", User: User{ID: "u1"}, Secret: "s2"}
	w.KeepStored(old)
	if !w.CreatedUTC.Equal(old.CreatedUTC) || !w.OwnerMissing || w.Rotation != old.Rotation {
		t.Fatalf("update keeping the secret and owner: %+v", w)
	}
	w = &Webhook{ID: "W1", User: User{ID: "u2"}, Secret: "s9"}
	w.KeepStored(old)
	if w.OwnerMissing || w.Rotation != nil {
		t.Fatalf("update with a new owner and secret: %+v", w)
	}
	if err := old.StartRotation("s4", 0, now); err != nil || old.Rotation != nil || old.Secret != "s4" {
		t.Fatalf("rotation without grace: %v %+v", err, old)
	}
}
