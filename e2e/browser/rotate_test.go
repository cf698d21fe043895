package browser_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

type rotation struct {
	GraceUntilUTC time.Time `json:"GraceUntilUtc"`
	Promoted      bool      `json:"Promoted"`
}

type rotatedWebhook struct {
	webhook
	Rotation *rotation `json:"Rotation"`
}

func TestRotateSecretInGrid(t *testing.T) {
	e := start(t)
	p := newPage(t, e.uiURL)
	alice := e.login(t, "alice")
	var w rotatedWebhook
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": e.rcURL + "/a", "Description": "Billing receiver",
	}, 201, &w)
	old := w.Secret
	get := func() rotatedWebhook {
		var got rotatedWebhook
		e.call(t, "GET", "/api/webhooks/registrations/"+w.ID, alice, nil, 200, &got)
		return got
	}

	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.uiURL))
	p.signIn("alice")
	row := fmt.Sprintf(`tr[data-id=%s]`, js(w.ID))
	p.wait("the row", fmt.Sprintf(`document.querySelector(%s) !== null`, js(row)))

	// An out-of-range grace period is refused before anything is sent.
	p.do("open Rotate", chromedp.Click(chromedp.CSS(row+" button.rotate")), chromedp.WaitVisible(chromedp.ID("rotate-dialog")))
	if got := p.text(`document.activeElement.id + '|' + document.getElementById('rotate-grace').value`); got != "rotate-grace|24" {
		t.Fatalf("focus and default grace = %q, want rotate-grace|24", got)
	}
	p.do("ask for 200 hours",
		chromedp.SetValue(chromedp.ID("rotate-grace"), "200"),
		chromedp.Click(chromedp.ID("rotate-ok")),
		chromedp.WaitVisible(chromedp.ID("rotate-grace-error")))
	if got := p.text(`document.getElementById('rotate-grace-error').textContent`); !strings.Contains(got, "0 to 168") {
		t.Fatalf("grace error = %q", got)
	}
	if got := get(); got.Secret != old || got.Rotation != nil {
		t.Fatalf("a refused rotation changed the webhook: %+v", got)
	}

	// Rotate with 48 hours: the new secret is shown once, in the dialog.
	p.do("rotate with 48 hours",
		chromedp.SetValue(chromedp.ID("rotate-grace"), "48"),
		chromedp.Click(chromedp.ID("rotate-ok")),
		chromedp.WaitVisible(chromedp.ID("rotate-done")))
	shown := p.value("rotate-secret")
	stored := get()
	if shown == "" || shown == old || stored.Secret != shown {
		t.Fatalf("dialog shows %q; stored secret %q (old %q)", shown, stored.Secret, old)
	}
	if stored.Rotation == nil || stored.Rotation.Promoted || stored.Rotation.GraceUntilUTC.Before(time.Now().Add(47*time.Hour)) {
		t.Fatalf("stored rotation = %+v, want 48 h, not promoted", stored.Rotation)
	}
	if got := p.text(`document.getElementById('rotate-intro').textContent`); !strings.Contains(got, "the old secret signs too") {
		t.Fatalf("after rotation the dialog says %q", got)
	}
	p.shot("rotate-secret.png")
	p.do("close", chromedp.Click(chromedp.ID("rotate-cancel")), chromedp.WaitNotVisible(chromedp.ID("rotate-dialog")))
	// The dialog's close event, which empties the field and moves focus, is
	// a task of its own after the dialog is hidden: wait for it.
	p.wait("the secret field emptied and focus back on Rotate after close",
		`document.getElementById('rotate-secret').value + '|' + document.activeElement.className === '|btn btn-small rotate'`)
	p.wait("the rotating chip", fmt.Sprintf(`(() => { const c = document.querySelector(%s); return c && c.textContent === 'Rotating' })()`, js(row+" .rotating")))

	// Promote (the ASP.NET step), moving to a new URL in the same change.
	echoes := e.rc.echoes.Load()
	p.do("open Rotate again", chromedp.Click(chromedp.CSS(row+" button.rotate")), chromedp.WaitVisible(chromedp.ID("rotate-promote")))
	if got := p.text(`document.getElementById('rotate-done').hidden + '|' + document.getElementById('rotate-ok').textContent`); got != "true|Promote new secret" {
		t.Fatalf("during a rotation the dialog offers %q", got)
	}
	p.do("promote to /b",
		chromedp.SendKeys(chromedp.ID("rotate-url"), e.rcURL+"/b"),
		chromedp.Click(chromedp.ID("rotate-ok")),
		chromedp.WaitNotVisible(chromedp.ID("rotate-dialog")))
	p.wait("the promoted chip", fmt.Sprintf(`(() => { const c = document.querySelector(%s); return c && c.textContent === 'Rotating (promoted)' })()`, js(row+" .rotating")))
	if got := get(); got.Rotation == nil || !got.Rotation.Promoted || got.URI != e.rcURL+"/b" || got.Secret != shown {
		t.Fatalf("after promote: %+v %+v", got, got.Rotation)
	}
	if e.rc.echoes.Load() <= echoes {
		t.Fatal("the new URL was not checked")
	}
	if probs := p.problems(); len(probs) != 0 {
		t.Fatalf("page problems: %q", probs)
	}
}
