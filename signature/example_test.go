package signature_test

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/rswebhooks/rswebhooks/signature"
)

// A receiver checks the ms-signature header over the raw body bytes.
func ExampleVerify() {
	secret := "a-secret-of-at-least-32-characters!!"
	body := []byte(`{"Id":"01JD","Attempt":1,"Properties":{},"Notifications":[]}`)
	header := signature.Sign(secret, body) // what the receiver finds in ms-signature

	fmt.Println(signature.Verify(secret, header, body))
	err := signature.Verify(secret, header, []byte(`{"Id":"01JD","Attempt":2}`))
	fmt.Println(errors.Is(err, signature.ErrSignatureMismatch))
	// Output:
	// <nil>
	// true
}

func ExampleSign() {
	fmt.Println(signature.Sign("key", []byte("The quick brown fox jumps over the lazy dog")))
	// Output: sha256=F7BC83F430538424B13298E6AA6FB143EF4D59A14946175997479DBC2D1A3CD8
}

// The Standard Webhooks headers verify with any Standard Webhooks library
// given "whsec_" + base64(secret), or with VerifyStandard.
func ExampleVerifyStandard() {
	secret := "a-secret-of-at-least-32-characters!!"
	body := []byte(`{"Id":"01JD","Attempt":1}`)
	sent := time.Unix(1_800_000_000, 0)

	h := http.Header{}
	h.Set("webhook-id", "01JD")
	h.Set("webhook-timestamp", strconv.FormatInt(sent.Unix(), 10))
	h.Set("webhook-signature", signature.SignStandard(secret, "01JD", sent, body))

	fmt.Println(signature.VerifyStandard(secret, h, body, sent.Add(time.Minute), 5*time.Minute))
	fmt.Println(signature.VerifyStandard(secret, h, body, sent.Add(time.Hour), 5*time.Minute) != nil)
	// Output:
	// <nil>
	// true
}
