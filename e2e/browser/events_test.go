package browser_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// rename renames a category through the proxy with a manager route no
// built-in rule knows: a successful change the unmatched table keeps.
func (e *env) rename(t *testing.T, id, name string) {
	t.Helper()
	tok, err := e.sim.IssueToken("admin")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(map[string]string{"Name": name})
	req, _ := http.NewRequest("POST", e.proxyURL+"/Category/Rename/"+id, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != 200 {
		t.Fatalf("renaming category %s: status %d", id, res.StatusCode)
	}
}

func (e *env) postsTo(path string) int {
	n := 0
	for _, p := range e.rc.received() {
		if p.path == path && len(p.Notifications) == 1 && p.Notifications[0].Action == "categories" {
			n++
		}
	}
	return n
}

// TestEventsViewAndReplay: the Events view lists events with their
// deliveries and updates without a reload, its chips filter, an
// administrator sees the calls no rule matched with a rule to copy, and the
// grid's Replay asks with the count before it sends the events again.
func TestEventsViewAndReplay(t *testing.T) {
	e := start(t)
	p := newPage(t, e.uiURL)
	alice := e.login(t, "alice")
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": e.rcURL + "/alice-cats?noecho=1", "Description": "Alice categories", "Filters": []string{"categories"},
	}, 201, nil)
	cat, err := e.sim.CreateCategory("Manager")
	if err != nil {
		t.Fatal(err)
	}
	e.rename(t, cat, "Managed")
	e.change(t, "Sales")

	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.uiURL))
	p.signIn("alice")
	p.do("open Events", chromedp.Click(chromedp.ID("tab-events")), chromedp.WaitVisible(chromedp.ID("events-view")))
	if got := p.text(`document.getElementById('tab-events').getAttribute('aria-current') + '/' + document.getElementById('grid-view').hidden`); got != "page/true" {
		t.Fatalf("Events tab current / grid hidden = %s", got)
	}
	created := `#events-body tr.event[data-type=Created][data-filter=categories]`
	p.wait("the category event with its succeeded delivery", fmt.Sprintf(`[...document.querySelectorAll(%s)].some(r =>
		r.textContent.includes('Sales') && r.querySelector('.dl[data-state=succeeded]') && r.textContent.includes('Alice categories'))`, js(created)))

	// New events appear without a reload.
	p.text(`window.__sameDocument = true, ''`)
	e.change(t, "Live")
	p.wait("the new event, same document", fmt.Sprintf(`window.__sameDocument === true && [...document.querySelectorAll(%s)].some(r => r.textContent.includes('Live'))`, js(created)))
	if got := p.text(`document.querySelector('#events-body tr.event').textContent`); !strings.Contains(got, "Live") {
		t.Fatalf("the newest event is not first: %q", got)
	}
	if got := p.text(`String(document.getElementById('unmatched-section').hidden)`); got != "true" {
		t.Fatal("a user sees the unmatched calls")
	}

	// Chips filter: Deleted shows nothing, then all again.
	chipSel := `#type-chips button[data-value=Deleted]`
	p.do("filter Deleted", chromedp.Click(chromedp.CSS(chipSel)))
	p.wait("no events", `!document.getElementById('events-empty').hidden && document.querySelectorAll('#events-body tr.event').length === 0`)
	p.do("unfilter", chromedp.Click(chromedp.CSS(chipSel)))
	p.wait("events again", `document.querySelectorAll('#events-body tr.event').length >= 2`)
	p.do("filter categories", chromedp.Click(chromedp.CSS(`#family-chips button[data-value=categories]`)))
	p.wait("the categories events, chip pressed", `document.querySelector('#family-chips button[data-value=categories]').getAttribute('aria-pressed') === 'true' &&
		[...document.querySelectorAll('#events-body tr.event')].length >= 2 && [...document.querySelectorAll('#events-body tr.event')].every(r => r.dataset.filter === 'categories')`)
	p.shot("events.png")

	// An administrator also sees the unmatched call with its rule.
	p.signOut()
	p.signIn("admin")
	p.do("open Events", chromedp.Click(chromedp.ID("tab-events")), chromedp.WaitVisible(chromedp.ID("unmatched-section")))
	card := `#unmatched-list .rule-card[data-route="POST Category/Rename/{categoryId}"]`
	p.wait("the unmatched route", fmt.Sprintf(`!!document.querySelector(%s)`, js(card)))
	snippet := p.text(fmt.Sprintf(`document.querySelector(%s).textContent`, js(card+" .snippet")))
	for _, want := range []string{"path: Category/Rename/{categoryId}", "filter: categories", "event: Updated", "id: path:categoryId"} {
		if !strings.Contains(snippet, want) {
			t.Fatalf("snippet lacks %q:\n%s", want, snippet)
		}
	}
	if strings.Contains(snippet, cat) {
		t.Fatalf("the snippet shows the id %s:\n%s", cat, snippet)
	}
	p.do("copy the rule", chromedp.Click(chromedp.CSS(card+" button.copy-rule")))
	p.wait("copied or selected", `/copied|Selected/.test(document.getElementById('toast-text').textContent)`)
	p.text(`document.getElementById('unmatched-section').scrollIntoView(), ''`)
	p.shot("events-unmatched.png")

	// Replay from the grid: the confirmation shows the count first.
	p.do("back to Webhooks", chromedp.Click(chromedp.ID("tab-webhooks")), chromedp.WaitVisible(chromedp.ID("grid-view")))
	row := `#grid-body tr.webhook`
	p.wait("alice's webhook", fmt.Sprintf(`[...document.querySelectorAll(%s)].some(r => r.textContent.includes('Alice categories'))`, js(row)))
	before := e.postsTo("/alice-cats")
	if before != 2 {
		t.Fatalf("alice's receiver got %d notifications before the replay, want 2 (Sales, Live)", before)
	}
	p.text(fmt.Sprintf(`[...document.querySelectorAll(%s)].find(r => r.textContent.includes('Alice categories')).querySelector('button.replay').click(), ''`, js(row)))
	p.wait("the count", `document.getElementById('replay-dialog').open && document.getElementById('replay-count').dataset.count === '2' && !document.getElementById('replay-ok').disabled`)
	if got := p.text(`document.getElementById('replay-count').textContent + '|' + document.getElementById('replay-ok').textContent`); got != "2 events will be sent again.|Replay 2 events" {
		t.Fatalf("confirmation = %q", got)
	}
	if n := e.postsTo("/alice-cats"); n != before {
		t.Fatalf("counting sent %d notifications", n-before)
	}
	p.shot("replay-confirm.png")
	p.do("replay", chromedp.Click(chromedp.ID("replay-ok")))
	p.wait("queued", `!document.getElementById('replay-dialog').open && document.getElementById('toast-text').textContent.startsWith('2 events queued again')`)
	p.wait("focus back on Replay", `document.activeElement && document.activeElement.classList.contains('replay')`)
	if err := waitFor(func() bool { return e.postsTo("/alice-cats") == before+2 }); err != nil {
		t.Fatalf("alice's receiver got %d notifications after the replay, want %d", e.postsTo("/alice-cats"), before+2)
	}
	if probs := p.problems(); len(probs) != 0 {
		t.Fatalf("page problems: %q", probs)
	}
}

// waitFor polls cond every 20ms for at most 20s.
func waitFor(cond func() bool) error {
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	deadline := time.After(20 * time.Second)
	for !cond() {
		select {
		case <-tick.C:
		case <-deadline:
			return errors.New("condition not met within 20s")
		}
	}
	return nil
}
