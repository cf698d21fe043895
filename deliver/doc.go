// Package deliver sends notifications: it fans stored events out to the
// webhooks that may see them, signs each notification body, POSTs it to the
// receiver through an address-checked HTTP client, records every attempt and
// retries on a schedule until the receiver answers 2xx, says 410 Gone, or the
// schedule runs out.
//
// # Wire format
//
// The body is the report server's own notification shape (see Body), as
// indented JSON (two spaces, LF line ends), like Newtonsoft's
// JObject.ToString() on Linux. Receivers must verify the signature over the
// raw bytes and never re-serialise. Headers, in this order of precedence:
//
//	Content-Type: application/json; charset=utf-8
//	ms-signature: sha256=<UPPER hex HMAC-SHA256(secret, body)>
//	webhook-id: <delivery id>
//	webhook-timestamp: <unix seconds>
//	webhook-signature: v1,<base64 HMAC-SHA256(secret, id "." timestamp "." body)>
//	User-Agent: rswebhooks/<version>
//
// followed by the webhook's own Headers, which cannot replace any of the
// above, nor name any other header rswebhooks.ReservedHeader reserves (Host,
// framing, hop-by-hop, Content-Encoding, Expect, every webhook-*): the
// registrations API refuses them, and one stored anyway (by an older
// version, say) is not sent and is logged once per webhook.
//
// A ping (Engine.Ping) is a notification with Action "ping" and EventType
// "Ping", sent even to a paused webhook.
//
// # Delivery rules
//
// See Policy for the retry schedule and the classification of answers, and
// ClientOptions for the receiver address policy.
//
// # Order and rate
//
// A webhook with Ordered gets one attempt at a time, for the first of its
// pending deliveries in event order as the store's order index says (see
// order.go); the ones behind a delivery waiting for a retry are moved in
// the queue to its retry time. A webhook's MaxPerSecond and the 429/503
// slowdowns are kept by a per-webhook token bucket with an adaptive rate
// (see pacer in throttle.go and Burst). Deliveries held by either stay
// pending; when one read of the queue is full of them they are moved back,
// so they never hide other webhooks' due deliveries.
package deliver
