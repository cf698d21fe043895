package deliver

import (
	"bufio"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/rswebhooks/rswebhooks"
)

// TestStoredReservedHeadersNeverSent: a stored webhook whose Headers name
// reserved headers (written by an older version, or straight into the store)
// still gets only the sender's values on the wire; its other headers are
// sent. The receiver reads the raw request head, so nothing net/http would
// hide (Host, framing, Expect) escapes the check.
func TestStoredReservedHeadersNeverSent(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	heads := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		var head strings.Builder
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				break
			}
			head.WriteString(line)
			if line == "\r\n" {
				break
			}
		}
		heads <- head.String()
		_, _ = c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"))
	}()

	headers := map[string]string{"X-Tenant": "contoso"}
	for _, n := range rswebhooks.ReservedHeaders() {
		headers[n] = "from-webhook"
	}
	for _, n := range []string{"Webhook-Id", "webhook-timestamp", "WEBHOOK-SIGNATURE", "Webhook-Extra", "Content-Encoding", "Expect", "Proxy-Connection"} {
		headers[n] = "from-webhook"
	}
	h := newHarness(t, nil)
	h.addWebhook("http://"+ln.Addr().String()+"/hook", func(w *rswebhooks.Webhook) { w.Headers = headers })
	h.start()
	h.addEvent(rswebhooks.FilterReports, "r1")
	head := recv(t, heads, "the notification's request head")
	if d := h.nextFinal(); d.State != rswebhooks.DeliverySucceeded {
		t.Fatalf("delivery = %+v", d)
	}
	if !strings.Contains(head, "\r\nX-Tenant: contoso\r\n") {
		t.Errorf("the webhook's own header X-Tenant was not sent:\n%s", head)
	}
	for _, line := range strings.Split(head, "\r\n") {
		name, value, _ := strings.Cut(line, ":")
		if strings.Contains(value, "from-webhook") {
			t.Errorf("reserved header %s was sent with the stored webhook's value: %q", name, line)
		}
		if name != "" && rswebhooks.ReservedHeader(name) && strings.Count(head, "\r\n"+name+":") > 1 {
			t.Errorf("reserved header %s sent twice:\n%s", name, head)
		}
	}
	for _, n := range []string{"Content-Encoding", "Expect", "Keep-Alive", "TE", "Trailer", "Upgrade", "Proxy-Connection", "Webhook-Extra"} {
		if strings.Contains(strings.ToLower(head), "\r\n"+strings.ToLower(n)+":") {
			t.Errorf("header %s, which the sender does not set, was sent:\n%s", n, head)
		}
	}
	if _, err := http.ReadRequest(bufio.NewReader(strings.NewReader(head))); err != nil {
		t.Errorf("the request head does not parse: %v\n%s", err, head)
	}
}

// TestSenderHeadersAreReserved: every header the sender sets on an attempt
// is one a webhook's own Headers may not name, so the registrations API and
// delivery keep agreeing when a sender header is added.
func TestSenderHeadersAreReserved(t *testing.T) {
	h := newHarness(t, nil)
	w := &rswebhooks.Webhook{ID: "w1", URI: "http://127.0.0.1:1/hook", Secret: testSecret}
	d := &rswebhooks.Delivery{ID: "d1", WebhookID: "w1", Event: rswebhooks.Event{ID: "e1", Filter: rswebhooks.FilterReports, Type: rswebhooks.EventCreated}}
	req, _, err := h.e.newRequest(t.Context(), d, w, 1, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if len(req.Header) < 6 {
		t.Fatalf("the attempt carries only %v", req.Header)
	}
	for name := range req.Header {
		if !rswebhooks.ReservedHeader(name) {
			t.Errorf("the sender sets %s, which rswebhooks.ReservedHeader does not reserve: a webhook could register it", name)
		}
	}
}
