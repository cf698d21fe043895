package daemon

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	badger "github.com/dgraph-io/badger/v4"

	"github.com/rswebhooks/rswebhooks"
	"github.com/rswebhooks/rswebhooks/internal/simulator"
	"github.com/rswebhooks/rswebhooks/store"
)

// seedUnreadable writes records no release can decode straight into the
// Badger directory (key layout: store/doc.go): two webhooks (one with a
// member of the wrong type, one not JSON at all), more undecodable events
// waiting for fan-out than one fan-out batch, and a due delivery.
func seedUnreadable(t *testing.T, dir string, events int) (eventIDs []string, deliveryID string) {
	t.Helper()
	db, err := store.Open(store.Options{Dir: dir}) // creates the store as the daemon will find it
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	bdb, err := badger.Open(badger.DefaultOptions(dir).WithLogger(nil).WithMemTableSize(store.DefaultMemTableSize))
	if err != nil {
		t.Fatal(err)
	}
	defer bdb.Close()
	old := time.Unix(1, 0) // ids older than anything the daemon writes: they sit at the head
	deliveryID = rswebhooks.IDFrom(old, [10]byte{9})
	err = bdb.Update(func(txn *badger.Txn) error {
		set := func(k string, v []byte) {
			if err == nil {
				err = txn.Set([]byte(k), v)
			}
		}
		set("w/badtype", []byte(`{"Id":"badtype","WebHookUri":"http://127.0.0.1:1/x?noecho","Secret":"s","Filters":["*"],"IsPaused":"no","User":{"Id":"someone","Name":"someone"}}`))
		set("wo/someone/badtype", nil)
		set("w/garbage", []byte("\x00\xffnot json"))
		for i := range events {
			var e [10]byte
			binary.BigEndian.PutUint32(e[:], uint32(i))
			id := rswebhooks.IDFrom(old, e)
			eventIDs = append(eventIDs, id)
			set("e/"+id, []byte(`{"Id":"`+id+`","Action":"categories","EventType":"Created","TimestampUtc":"not a time"}`))
			set("ef/"+id, nil)
		}
		set("d/"+deliveryID, []byte(`{"Id":`))
		set("dw/badtype/"+deliveryID, nil)
		set("q/"+string(make([]byte, 8))+"/"+deliveryID, []byte("badtype"))
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return eventIDs, deliveryID
}

// TestUnreadableRecordsPoisonNothing: undecodable webhooks, events and
// deliveries written straight into the store are skipped by listings,
// fan-out and delivery (another webhook still gets its notification),
// counted once each in rswebhooks_store_unreadable_records_total{kind},
// listed for administrators and deleted by id.
func TestUnreadableRecordsPoisonNothing(t *testing.T) {
	sim := simulator.New(simulator.Options{})
	up := httptest.NewServer(sim)
	defer up.Close()
	arrived := make(chan map[string]any, 16)
	rcv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		arrived <- body
	}))
	defer rcv.Close()
	dir := t.TempDir()
	const nEvents = 300 // more than one fan-out batch (256)
	eventIDs, deliveryID := seedUnreadable(t, dir, nEvents)

	const operator = "operator-token-unreadable-records"
	r := start(t, Options{Upstream: up.URL, DataDir: dir, AdminToken: operator, ServiceUser: "admin", ServicePassword: "admin",
		WatchInterval: 0, AllowTargets: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}})
	call := func(method, path, body string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest(method, r.adminURL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+operator)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}

	status, body := call("POST", "/api/webhooks/registrations", fmt.Sprintf(`{"WebHookUri":%q,"Filters":["categories"]}`, rcv.URL+"/?noecho=1"))
	if status != http.StatusCreated {
		t.Fatalf("register: %d %s", status, body)
	}
	var good rswebhooks.Webhook
	if err := json.Unmarshal([]byte(body), &good); err != nil {
		t.Fatal(err)
	}
	status, body = call("GET", "/api/webhooks/registrations", "")
	var list []rswebhooks.Webhook
	if err := json.Unmarshal([]byte(body), &list); status != 200 || err != nil || len(list) != 1 || list[0].ID != good.ID {
		t.Fatalf("list with unreadable webhooks stored: %d %s", status, body)
	}

	// A change through the proxy reaches the good webhook although 300
	// unreadable events wait ahead of it and an unreadable delivery is due.
	resp, err := http.PostForm(r.proxyURL+"/Token", url.Values{"grant_type": {"password"}, "username": {"admin"}, "password": {"admin"}})
	if err != nil {
		t.Fatal(err)
	}
	var tok struct{ Access_token string }
	decode(t, resp, &tok)
	req, _ := http.NewRequest("POST", r.proxyURL+"/api/reportserver/v2/categories", strings.NewReader(`{"Name":"after poison"}`))
	req.Header.Set("Authorization", "Bearer "+tok.Access_token)
	req.Header.Set("Content-Type", "application/json")
	resp, err = http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode/100 != 2 {
		t.Fatalf("create category: %v %v", err, resp.Status)
	}
	resp.Body.Close()
	select {
	case n := <-arrived:
		ns, _ := n["Notifications"].([]any)
		if len(ns) != 1 || ns[0].(map[string]any)["ResourceName"] != "after poison" {
			t.Fatalf("notification %v", n)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("no notification within 20s: an unreadable record blocked delivery")
	}

	// Administrators see every unreadable record with its id; each is
	// counted once, however often it is met.
	waitMetric(t, r.adminURL, `rswebhooks_store_unreadable_records_total{kind="delivery"}`)
	status, body = call("GET", "/api/webhooks/unreadable", "")
	var us []rswebhooks.Unreadable
	if err := json.Unmarshal([]byte(body), &us); status != 200 || err != nil {
		t.Fatalf("unreadable: %d %s", status, body)
	}
	byKind := map[string][]string{}
	for _, u := range us {
		if u.Error == "" {
			t.Errorf("%s %s listed without a reason", u.Kind, u.ID)
		}
		byKind[u.Kind] = append(byKind[u.Kind], u.ID)
	}
	if strings.Join(byKind["webhook"], ",") != "badtype,garbage" || len(byKind["event"]) != nEvents ||
		strings.Join(byKind["delivery"], ",") != deliveryID {
		t.Fatalf("unreadable records %v", byKind)
	}
	_, metrics := get(t, r.adminURL+"/metrics")
	for kind, want := range map[string]int{"webhook": 2, "event": nEvents, "delivery": 1, "attempt": 0} {
		series := fmt.Sprintf(`rswebhooks_store_unreadable_records_total{kind=%q} %d`, kind, want)
		if !strings.Contains(string(metrics), series+"\n") {
			t.Errorf("metrics lack %s", series)
		}
	}

	// Administrators delete each record by id without decoding it.
	for _, tc := range []struct{ method, path string }{
		{"DELETE", "/api/webhooks/registrations/badtype"},
		{"DELETE", "/api/webhooks/unreadable/webhook/garbage"},
		{"DELETE", "/api/webhooks/unreadable/event/" + eventIDs[0]},
		{"DELETE", "/api/webhooks/unreadable/delivery/" + deliveryID},
	} {
		if status, body := call(tc.method, tc.path, ""); status != 200 {
			t.Fatalf("%s %s: %d %s", tc.method, tc.path, status, body)
		}
	}
	if status, _ := call("GET", "/api/webhooks/registrations/badtype", ""); status != 404 {
		t.Fatalf("deleted webhook: %d, want 404", status)
	}
	if status, _ := call("DELETE", "/api/webhooks/unreadable/webhook/"+good.ID, ""); status != 404 {
		t.Fatalf("a readable webhook deleted through the unreadable endpoint: %d, want 404", status)
	}
	status, body = call("GET", "/api/webhooks/unreadable", "")
	us = nil
	if err := json.Unmarshal([]byte(body), &us); status != 200 || err != nil || len(us) != nEvents-1 {
		t.Fatalf("after deleting: %d, %d records left, want %d", status, len(us), nEvents-1)
	}
}
