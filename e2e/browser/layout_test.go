package browser_test

import (
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// overflow reports what sticks out at the current width: the page, the
// table's container, any control past the container's right edge, and a
// shown secret overlapping its own buttons. "" means nothing does.
const overflow = `(() => {
	const bad = [];
	const root = document.documentElement;
	if (root.scrollWidth > root.clientWidth) bad.push('page ' + root.scrollWidth + ' > ' + root.clientWidth);
	const wrap = document.querySelector('.table-wrap');
	if (wrap.scrollWidth > wrap.clientWidth + 1) bad.push('table ' + wrap.scrollWidth + ' > ' + wrap.clientWidth);
	const edge = wrap.getBoundingClientRect().right;
	for (const b of document.querySelectorAll('#grid-body button, #grid-body .switch-track')) {
		const r = b.getBoundingClientRect();
		if (r.right > edge + 1) bad.push((b.className || b.tagName) + ' ends at ' + Math.round(r.right) + ' > ' + Math.round(edge));
	}
	for (const code of document.querySelectorAll('#grid-body code.secret.revealed')) {
		const c = code.getBoundingClientRect();
		for (const b of code.parentElement.querySelectorAll('button')) {
			const r = b.getBoundingClientRect();
			if (c.left < r.right && r.left < c.right && c.top < r.bottom && r.top < c.bottom) bad.push('secret overlaps ' + b.textContent);
		}
	}
	return bad.join('; ');
})()`

// urlBreaks returns how many times the URL in the row wraps, and the
// characters a line ends with when it is not one of / ? & =.
const urlBreaks = `((sel) => {
	const span = document.querySelector(sel + ' .url');
	const walker = document.createTreeWalker(span, NodeFilter.SHOW_TEXT);
	let top = null, prev = '', lines = 0;
	const bad = [];
	for (let n = walker.nextNode(); n; n = walker.nextNode()) {
		for (let i = 0; i < n.length; i++) {
			const r = document.createRange();
			r.setStart(n, i); r.setEnd(n, i + 1);
			const rect = r.getClientRects()[0];
			if (!rect) continue;
			if (top !== null && rect.top > top + 2) {
				lines++;
				if (!'/?&='.includes(prev)) bad.push(prev + '|' + n.data[i]);
			}
			top = rect.top;
			prev = n.data[i];
		}
	}
	return lines + ':' + bad.join(',');
})`

// TestLongValuesFitTheGrid: a 128-character secret shown, a 300-character
// URL and a long description never push the table past its container at
// 1280 or 1024 px, in the user's and the administrator's grid; URLs wrap at
// their separators; the summary counts paused webhooks.
func TestLongValuesFitTheGrid(t *testing.T) {
	e := start(t)
	p := newPage(t, e.uiURL)
	alice := e.login(t, "alice")

	long := e.rcURL + "/"
	for len(long) < 200 {
		long += "reports-and-categories/"
	}
	long += "hook?noecho=1"
	for len(long) <= 296 {
		long += "&x=1"
	}
	for len(long) < 300 {
		long += "y"
	}
	secret := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_-", 2)
	desc := "Sends every change of the quarterly finance reports to the reconciliation service run by the controlling team " +
		strings.Repeat("and keeps going ", 12) + "Supercalifragilisticexpialidocious-without-any-space-at-all-for-a-while"
	if len(long) != 300 || len(secret) != 128 {
		t.Fatalf("fixture lengths: URL %d, secret %d; want 300 and 128", len(long), len(secret))
	}
	var created webhook
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": long, "Secret": secret, "Description": desc, "Filters": []string{"reports", "categories", "connections", "tasks", "alerts"},
	}, 201, &created)
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": e.rcURL + "/short?noecho=1", "Description": "Short one",
	}, 201, nil)
	row := fmt.Sprintf(`tr[data-id=%s]`, js(created.ID))

	check := func(who string) {
		t.Helper()
		p.do("reveal the long secret", chromedp.Click(chromedp.CSS(row+" button.reveal")))
		p.wait("the secret shown", fmt.Sprintf(`document.querySelector(%s).textContent === %s`, js(row+" code.secret"), js(secret)))
		for _, width := range []int64{1280, 1024} {
			p.do(fmt.Sprintf("%d px", width), chromedp.EmulateViewport(width, 800))
			p.wait(fmt.Sprintf("layout at %d px", width), fmt.Sprintf(`document.documentElement.clientWidth === %d`, width))
			if got := p.text(overflow); got != "" {
				p.fail(fmt.Sprintf("%s grid at %d px", who, width), fmt.Errorf("overflow: %s", got))
			}
			got := p.text(urlBreaks + "(" + js(row) + ")")
			if lines, bad, _ := strings.Cut(got, ":"); lines == "0" || bad != "" {
				t.Errorf("%s grid at %d px: the URL wraps %s times, mid-word at %q; want wraps only after / ? & =", who, width, lines, bad)
			}
			if who == "admin" {
				p.shot(fmt.Sprintf("grid-admin-%d.png", width))
			}
		}
		p.do("hide the secret", chromedp.Click(chromedp.CSS(row+" button.reveal")))
	}

	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.uiURL))
	p.signIn("alice")
	p.wait("two rows", `document.querySelectorAll('#grid-body tr.webhook').length === 2`)
	check("alice")

	// Pausing updates the count in the summary; the switch reads Yes/No
	// under the "Paused" heading.
	if got := p.text(`document.getElementById('grid-summary').textContent`); got != "2 webhooks." {
		t.Fatalf("summary = %q, want %q", got, "2 webhooks.")
	}
	p.do("pause", chromedp.Click(chromedp.CSS(row+" input.pause-toggle")))
	p.wait("the summary counts the paused one", `document.getElementById('grid-summary').textContent === '2 webhooks, 1 paused.'`)
	if got := p.text(row2text(row, `r.querySelector('.switch-text').textContent + '|' + document.querySelector('#grid thead .col-paused').textContent`)); got != "Yes|Paused" {
		t.Fatalf("paused switch/heading = %q, want Yes|Paused", got)
	}

	p.signOut()
	p.signIn("admin")
	p.wait("the admin grid", `!document.getElementById('col-user').hidden && document.querySelectorAll('#grid-body tr.webhook').length === 2`)
	check("admin")

	if probs := p.problems(); len(probs) != 0 {
		t.Fatalf("page problems: %q", probs)
	}
}

func row2text(row, expr string) string {
	return fmt.Sprintf(`(() => { const r = document.querySelector(%s); return %s })()`, js(row), expr)
}

// TestMessagesAndErrors: errors are sentences with the technical detail
// behind a disclosure; the last message is gone after Sign out; the top bar
// keeps its height; the role badge stays at phone width; the new-webhook
// dialog explains the secret and the receiver check in plain words.
func TestMessagesAndErrors(t *testing.T) {
	e := start(t)
	p := newPage(t, e.uiURL)
	alice := e.login(t, "alice")
	var w webhook
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": e.rcURL + "/msg?noecho=1", "Description": "To delete",
	}, 201, &w)

	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.uiURL), chromedp.WaitVisible(chromedp.ID("login-username")))
	signInHeight := p.text(`String(document.querySelector('.topbar').getBoundingClientRect().height)`)

	// A wrong password: a sentence, capitalised, with a full stop.
	p.do("wrong password",
		chromedp.SendKeys(chromedp.ID("login-username"), "alice"),
		chromedp.SendKeys(chromedp.ID("login-password"), "not-her-password"),
		chromedp.Click(chromedp.ID("login-submit")),
		chromedp.WaitVisible(chromedp.ID("login-error")),
	)
	if got := p.text(`document.getElementById('login-error').textContent`); got != "The user name or password is incorrect." {
		t.Fatalf("login error = %q, want %q", got, "The user name or password is incorrect.")
	}
	p.signIn("alice")
	p.wait("the grid", `document.querySelectorAll('#grid-body tr.webhook').length === 1`)
	if got := p.text(`String(document.querySelector('.topbar').getBoundingClientRect().height)`); got != signInHeight {
		t.Errorf("top bar height: %s px signed in, %s px on the sign-in page; want the same", got, signInHeight)
	}

	// The new-webhook dialog: the secret is filled in and the hint says so;
	// the echo hint explains what the receiver must do and links the docs.
	p.do("new webhook", chromedp.Click(chromedp.ID("new-webhook")), chromedp.WaitVisible(chromedp.ID("edit-dialog")))
	hints := p.text(`document.getElementById('f-secret-hint').textContent + '|' + document.getElementById('f-url-hint').textContent + '|' + document.querySelector('#f-url-hint a').href + '|' + document.getElementById('f-secret').value.length`)
	for _, want := range []string{"filled in for you", "must answer with just that word", "noecho=1", "|https://github.com/rswebhooks/rswebhooks#receive-notifications|", "|48"} {
		if !strings.Contains(hints, want) {
			t.Errorf("dialog hints %q lack %q", hints, want)
		}
	}
	if strings.Contains(hints, "Leave empty") {
		t.Errorf("the secret hint says %q while a secret is filled in", hints)
	}

	// A receiver that is not listening. Alice is no administrator: she gets
	// the one uniform sentence about the check (the echo check must not
	// become a port scanner, docs/security.md), never the network error.
	dead := deadURL(t)
	p.do("save against a dead receiver",
		chromedp.SendKeys(chromedp.ID("f-url"), dead+"/hook"),
		chromedp.Click(chromedp.ID("edit-save")),
		chromedp.WaitVisible(chromedp.ID("f-url-error")),
	)
	msg := p.text(`document.getElementById('f-url-error').textContent`)
	if !strings.HasPrefix(msg, "The receiver did not pass the check: ") || !strings.Contains(msg, "echo") {
		t.Errorf("URL error = %q, want the uniform sentence about the receiver check", msg)
	}
	if strings.Contains(msg, "refused") || strings.Contains(msg, "dial tcp") {
		t.Errorf("URL error = %q tells a non-administrator why the connection failed", msg)
	}
	p.do("cancel", chromedp.Click(chromedp.ID("edit-cancel")), chromedp.WaitNotVisible(chromedp.ID("edit-dialog")))

	// Delete; the message must not survive Sign out into the next session.
	row := fmt.Sprintf(`tr[data-id=%s]`, js(w.ID))
	p.do("delete",
		chromedp.Click(chromedp.CSS(row+" button.delete")),
		chromedp.WaitVisible(chromedp.ID("confirm-dialog")),
		chromedp.Click(chromedp.ID("confirm-ok")),
		chromedp.WaitVisible(chromedp.ID("toast")),
	)
	if got := p.text(`document.getElementById('toast-text').textContent`); got != "Webhook deleted." {
		t.Fatalf("toast = %q", got)
	}
	p.signOut()
	if got := p.text(`document.getElementById('toast').hidden + '|' + document.getElementById('toast-text').textContent + '|' + document.getElementById('status-region').textContent`); got != "true||" {
		t.Errorf("after Sign out the toast/live region = %q, want hidden and empty", got)
	}
	p.signIn("bob")
	p.wait("bob's grid", `!document.getElementById('grid-view').hidden`)
	if got := p.text(`document.getElementById('toast').hidden + '|' + document.getElementById('toast-text').textContent`); got != "true|" {
		t.Errorf("bob sees alice's last message: %q", got)
	}

	// Phone width: the role badge stays, the top bar keeps its height.
	p.do("phone width", chromedp.EmulateViewport(375, 812, chromedp.EmulateMobile))
	p.wait("phone layout", `document.documentElement.clientWidth === 375`)
	got := p.text(`(() => { const b = document.getElementById('who-role').getBoundingClientRect(); const bar = document.querySelector('.topbar').getBoundingClientRect(); return (b.width > 0 && b.right <= 375) + '|' + bar.height + '|' + (document.documentElement.scrollWidth <= 375) })()`)
	if got != "true|"+signInHeight+"|true" {
		t.Errorf("phone: badge visible / top bar height / no overflow = %q, want true|%s|true", got, signInHeight)
	}
	if probs := p.problems(); len(probs) != 0 {
		t.Fatalf("page problems: %q", probs)
	}
}

// TestRetryingDeliveryByKeyboard: a retrying delivery says when the next
// attempt is due, and its attempts open inline from the keyboard; the
// panel's refreshes keep the focus where it was.
func TestRetryingDeliveryByKeyboard(t *testing.T) {
	e := startWithDelays(t, []time.Duration{time.Minute})
	e.rc.fail.Store(true)
	p := newPage(t, e.uiURL)
	alice := e.login(t, "alice")
	var w webhook
	e.call(t, "POST", "/api/webhooks/registrations", alice, map[string]any{
		"WebHookUri": e.rcURL + "/retry?noecho=1", "Description": "Retrying receiver",
	}, 201, &w)

	p.do("open the page", chromedp.EmulateViewport(1280, 800), chromedp.Navigate(e.uiURL))
	p.signIn("alice")
	row := fmt.Sprintf(`tr[data-id=%s]`, js(w.ID))
	panel := "#panel-" + w.ID
	p.do("open deliveries", chromedp.Click(chromedp.CSS(row+" button.deliveries-toggle")), chromedp.WaitVisible(chromedp.CSS(panel+" .empty-deliveries")))
	e.change(t, "Retried")
	retrying := panel + " tr.delivery[data-state=pending]"
	p.wait("a retrying delivery with its next attempt", fmt.Sprintf(`(() => { const r = document.querySelector(%s); return r && r.querySelector('.next') && r.textContent.includes('retrying') })()`, js(retrying)))
	next := p.text(fmt.Sprintf(`document.querySelector(%s).textContent`, js(retrying+" .next")))
	if !strings.HasPrefix(next, "next attempt at ") || !strings.Contains(next, "(in ") {
		t.Errorf("next attempt = %q, want \"next attempt at <time> (in <duration>)\"", next)
	}
	p.shot("deliveries-retrying.png")

	// Focus the attempts button, open it with Enter: the attempts are listed
	// inline, not in a tooltip.
	toggle := retrying + " button.attempts-toggle"
	p.text(fmt.Sprintf(`document.querySelector(%s).focus(), ''`, js(row+" button.deliveries-toggle")))
	for range 30 {
		if p.text(fmt.Sprintf(`String(document.activeElement === document.querySelector(%s))`, js(toggle))) == "true" {
			break
		}
		p.do("Tab", chromedp.KeyEvent(kb.Tab))
	}
	p.do("Enter on the attempts", chromedp.KeyEvent(kb.Enter))
	list := panel + " tr.attempts-row:not([hidden]) .attempt-list li"
	p.wait("the attempts inline", fmt.Sprintf(`document.querySelectorAll(%s).length === 1 && document.querySelector(%s).getAttribute('aria-expanded') === 'true'`, js(list), js(toggle)))
	if got := p.text(fmt.Sprintf(`document.querySelector(%s).textContent`, js(list))); !strings.Contains(got, "#1") || !strings.Contains(got, "HTTP 500") {
		t.Errorf("attempt = %q, want #1 and HTTP 500", got)
	}
	// The panel refreshes often while a delivery is pending: after two
	// refreshes, the list is still open and the focus still on its button.
	p.text(fmt.Sprintf(`window.__rows = document.querySelector(%s), ''`, js(retrying)))
	p.wait("a refresh", fmt.Sprintf(`document.querySelector(%s) !== window.__rows`, js(retrying)))
	p.text(fmt.Sprintf(`window.__rows = document.querySelector(%s), ''`, js(retrying)))
	p.wait("another refresh", fmt.Sprintf(`document.querySelector(%s) !== window.__rows`, js(retrying)))
	if got := p.text(fmt.Sprintf(`(document.activeElement === document.querySelector(%s)) + '|' + document.querySelectorAll(%s).length`, js(toggle), js(list))); got != "true|1" {
		t.Errorf("after refreshes focus on the attempts button / attempts shown = %q, want true|1", got)
	}
	p.do("Enter closes them", chromedp.KeyEvent(kb.Enter))
	p.wait("the attempts hidden", fmt.Sprintf(`document.querySelectorAll(%s).length === 0`, js(list)))
	if probs := p.problems(); len(probs) != 0 {
		t.Fatalf("page problems: %q", probs)
	}
}

// deadURL is an http URL on loopback where nothing listens.
func deadURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String()
	l.Close()
	return u
}
