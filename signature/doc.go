// Package signature signs and verifies webhook notifications: the
// ms-signature header of the report server's own sender (Sign, Verify) and
// the Standard Webhooks headers webhook-id, webhook-timestamp and
// webhook-signature (SignStandard, VerifyStandard). It imports only the
// standard library, so a receiver written in Go can verify notifications
// without linking the rest of rswebhooks.
package signature
