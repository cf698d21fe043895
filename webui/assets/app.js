// rswebhooks: the Webhooks grid, a single-page app over the registrations
// API (/api/webhooks/...). Plain JavaScript, no framework, no build step.
//
// CSRF: the bearer token is kept in sessionStorage (this tab only; gone when
// the tab closes) and sent only in the Authorization header of fetch calls.
// The API reads no cookie, so a form or image on another site reaches it
// without credentials and gets 401; a cross-origin fetch that sets
// Authorization needs a CORS preflight the admin listener never grants.
//
// XSS: the DOM is built with textContent and attributes only (never
// innerHTML), and the Content-Security-Policy allows no inline script.
'use strict';

(() => {
  const API = '/api/webhooks';
  const SESSION_KEY = 'rswebhooks.session';
  const SECRET_LENGTH = 48; // the API accepts 32–128
  const SECRET_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789';
  const DELIVERY_LIMIT = 10;
  const POLL_FAST_MS = 700; // while something is pending
  const POLL_SLOW_MS = 2500; // an open panel otherwise
  const PANEL_MAX_POLLS = 120; // then auto-refresh stops until "Refresh"
  const PING_MAX_POLLS = 30;
  const DEFAULT_FILTERS = [
    { Name: 'reports', Description: 'Reports added, edited or deleted.' },
    { Name: 'categories', Description: 'Categories added, edited or deleted.' },
    { Name: 'connections', Description: 'Data connections added, edited or deleted.' },
    { Name: 'tasks', Description: 'Scheduled tasks added, modified, deleted or executed.' },
    { Name: 'alerts', Description: 'Data alerts added, modified, deleted or executed.' },
  ];
  // Server messages start with the field they are about ("WebHookUri: …").
  const FIELD_OF = {
    webhookuri: 'f-url',
    secret: 'f-secret',
    filters: 'f-filters',
    description: 'f-description',
    ispaused: 'f-paused',
    ordered: 'f-ordered',
    maxpersecond: 'f-max-per-second',
  };

  const $ = (id) => document.getElementById(id);

  /** h builds an element; text is always set with textContent. */
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === false || v === null || v === undefined) continue;
      if (k === 'class') el.className = v;
      else if (k === 'text') el.textContent = v;
      else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
      else el.setAttribute(k, v === true ? '' : String(v));
    }
    for (const c of children.flat()) {
      if (c === null || c === undefined || c === false) continue;
      el.append(c instanceof Node ? c : String(c));
    }
    return el;
  }

  const state = {
    session: null, // {token, kind: 'user'|'operator', name}
    admin: false,
    filters: DEFAULT_FILTERS,
    webhooks: [],
    revealed: new Set(), // webhook ids whose secret is shown
    rotating: null, // the rotate dialog: {w, opener, mode, result}
    panels: new Map(), // webhook id → Panel
    editing: null, // webhook being edited, or null for a new one
    opener: null, // element to focus when a dialog closes
    focusAfterRender: null, // id of a webhook just created
    view: 'grid', // 'grid' (Webhooks) or 'events'
  };

  // ---------------------------------------------------------------- API

  class ApiError extends Error {
    /** message is a sentence for people; detail is what the server said. */
    constructor(status, message, detail) {
      super(message);
      this.status = status;
      this.detail = detail || '';
    }
  }

  /** sentence starts s with a capital letter and ends it with a stop. */
  function sentence(s) {
    s = String(s || '').trim();
    if (!s) return s;
    s = s.charAt(0).toUpperCase() + s.slice(1);
    return /[.!?…)]$/.test(s) ? s : s + '.';
  }

  // Network failures as Go reports them, in words a user understands.
  const NETWORK_ERRORS = [
    [/connection refused/i, 'nothing answered at that address and port (connection refused)'],
    [/no such host|server misbehaving/i, 'its host name could not be found'],
    [/i\/o timeout|deadline exceeded|did not answer .* within|Client\.Timeout/i, 'it did not answer in time'],
    [/x509|certificate|tls:/i, 'its TLS certificate was not accepted'],
    [/connection reset|EOF|broken pipe/i, 'it closed the connection without answering'],
    [/network is unreachable|no route to host/i, 'the network route to it is missing'],
    [/not allowed|denied|forbidden address/i, 'its address is not allowed by the daemon\'s receiver policy'],
  ];

  /**
   * explain turns a server message into a sentence for people. Messages that
   * name a field ("WebHookUri: …") keep the field so the form can place them.
   * The second value is the technical detail, '' when the sentence says it all.
   */
  function explain(raw) {
    raw = String(raw || '').trim();
    const m = /^([A-Za-z]+):\s*([\s\S]*)$/.exec(raw);
    const field = m && FIELD_OF[m[1].toLowerCase()] ? m[1] : '';
    let rule = field ? m[2] : raw;
    let technical = false;
    const verify = /^receiver verification failed:\s*/i;
    if (verify.test(rule)) {
      const why = rule.replace(verify, '');
      const net = NETWORK_ERRORS.find(([re]) => re.test(why));
      if (net) {
        rule = 'The receiver could not be checked: ' + net[1] + '.';
        technical = true;
      } else {
        rule = 'The receiver did not pass the check: ' + why;
      }
    } else {
      const net = NETWORK_ERRORS.find(([re]) => /dial tcp|lookup |Get "|Post "/.test(rule) && re.test(rule));
      if (net) {
        rule = 'The server could not be reached: ' + net[1] + '.';
        technical = true;
      }
    }
    rule = sentence(rule);
    const text = field ? field + ': ' + rule : rule;
    return [text, technical || rule.length > 200 ? raw : ''];
  }

  /**
   * parseExact is JSON.parse that keeps every number whose text a double
   * cannot reproduce (9007199254740993, 1e400, long decimals) as raw JSON,
   * so a webhook saved back sends its Properties exactly as the server
   * stored them.
   */
  function parseExact(text) {
    if (typeof JSON.rawJSON !== 'function') return JSON.parse(text);
    return JSON.parse(text, (key, value, ctx) => {
      if (typeof value === 'number' && ctx && typeof ctx.source === 'string' && String(value) !== ctx.source) {
        return JSON.rawJSON(ctx.source);
      }
      return value;
    });
  }

  async function api(method, path, body, opts = {}) {
    const headers = { Accept: 'application/json' };
    if (state.session) headers.Authorization = 'Bearer ' + state.session.token;
    const init = { method, headers, cache: 'no-store', credentials: 'omit', redirect: 'error' };
    if (body !== undefined) {
      headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    let res;
    try {
      res = await fetch(API + path, init);
    } catch (e) {
      throw new ApiError(0, 'The rswebhooks server cannot be reached; check the connection and try again.', String(e && e.message || e));
    }
    const text = await res.text();
    let data = null;
    if (text) {
      try { data = parseExact(text); } catch (e) { data = null; }
    }
    if (!res.ok) {
      let msg;
      let detail;
      if (data && typeof data.Message === 'string') {
        [msg, detail] = explain(data.Message);
      } else {
        msg = res.status >= 500
          ? 'The rswebhooks server had a problem; try again in a moment.'
          : 'The request was not accepted.';
        detail = `HTTP ${res.status} ${res.statusText}`.trim();
      }
      if (res.status === 401 && state.session && !opts.signingIn) {
        signOut('Your session has ended. Sign in again.');
      }
      throw new ApiError(res.status, msg, detail);
    }
    return data;
  }

  // ---------------------------------------------------------------- messages

  let toastTimer = 0;
  function announce(msg, kind = 'ok', detail = '') {
    const t = $('toast');
    $('toast-text').replaceChildren(msg, detail ? technicalDetail(detail) : '');
    t.className = 'toast toast-' + kind;
    t.hidden = false;
    // The live regions stay in the DOM so screen readers announce each
    // message; the toast is only its visible copy.
    if (kind === 'error') $('alert-region').textContent = msg;
    else $('status-region').textContent = msg;
    clearTimeout(toastTimer);
    // An error with detail stays until dismissed, so the detail can be read.
    if (!detail) toastTimer = setTimeout(() => { t.hidden = true; }, kind === 'error' ? 10000 : 5000);
  }

  /** clearMessages hides the toast and empties the live regions. */
  function clearMessages() {
    clearTimeout(toastTimer);
    $('toast').hidden = true;
    $('toast-text').replaceChildren();
    $('status-region').textContent = '';
    $('alert-region').textContent = '';
  }

  /** technicalDetail is a closed disclosure with the server's own words. */
  function technicalDetail(detail) {
    return h('details', { class: 'technical' },
      h('summary', { text: 'Technical detail' }),
      h('code', { text: detail }));
  }

  /** showError shows msg (and its technical detail, if any) in element id. */
  function showError(id, msg, detail) {
    const el = $(id);
    el.replaceChildren(msg || '', detail ? technicalDetail(detail) : '');
    el.hidden = !msg;
  }

  // ---------------------------------------------------------------- session

  function loadSession() {
    try {
      const s = JSON.parse(sessionStorage.getItem(SESSION_KEY));
      return s && typeof s.token === 'string' ? s : null;
    } catch (e) {
      return null;
    }
  }

  function saveSession(s) {
    if (s) sessionStorage.setItem(SESSION_KEY, JSON.stringify(s));
    else sessionStorage.removeItem(SESSION_KEY);
  }

  function show(view) {
    $('loading').hidden = true;
    $('signin-view').hidden = view !== 'signin';
    $('session').hidden = view !== 'grid';
    $('views').hidden = view !== 'grid';
    if (view === 'grid') setView(state.view || 'grid');
    else {
      $('grid-view').hidden = true;
      $('events-view').hidden = true;
      stopEvents();
    }
  }

  function showSignIn(notice) {
    show('signin');
    const n = $('signin-notice');
    n.textContent = notice || '';
    n.hidden = !notice;
    $('login-password').value = '';
    $('operator-token').value = '';
    $('login-username').focus();
  }

  /** signIn checks a token, learns who it belongs to and shows the grid. */
  async function signIn(session) {
    state.session = session;
    let me = null;
    try {
      me = await api('GET', '/me', undefined, { signingIn: true });
    } catch (e) {
      if (e.status === 401 || e.status === 403 || e.status === 0) {
        state.session = null;
        throw e;
      }
      me = null; // an older daemon without /me: decide from the rows below
    }
    if (me && me.Name) session.name = me.Name;
    try {
      await Promise.all([loadFilters(), loadWebhooks({ signingIn: true })]);
    } catch (e) {
      state.session = null;
      throw e;
    }
    state.admin = me
      ? Boolean(me.IsAdministrator || me.IsOperator)
      : session.kind === 'operator' || seesOthers(session.name);
    saveSession(session);
    $('who-name').textContent = session.kind === 'operator' ? 'Operator' : session.name;
    $('who-role').textContent = state.admin ? 'Administrator' : 'User';
    show('grid');
    render();
    $('main').focus();
  }

  /** seesOthers is the fallback admin test: rows owned by someone else. */
  function seesOthers(name) {
    const me = String(name || '').toLowerCase();
    const owners = new Set(state.webhooks.map((w) => (w.User && w.User.Id) || ''));
    return owners.size > 1 ||
      state.webhooks.some((w) => w.User && w.User.Name && w.User.Name.toLowerCase() !== me);
  }

  function signOut(notice) {
    clearMessages(); // the last message belongs to the user who leaves
    for (const p of state.panels.values()) p.stop();
    state.panels.clear();
    state.session = null;
    state.webhooks = [];
    state.revealed.clear();
    state.admin = false;
    state.view = 'grid';
    stopEvents();
    events.list = [];
    events.byId = new Map();
    events.unmatched = [];
    events.types.clear();
    events.families.clear();
    saveSession(null);
    for (const d of [$('edit-dialog'), $('confirm-dialog'), $('replay-dialog')]) if (d.open) d.close();
    $('grid-body').replaceChildren();
    showSignIn(notice);
  }

  async function onLogin(ev) {
    ev.preventDefault();
    const user = $('login-username').value.trim();
    const pass = $('login-password').value;
    showError('login-error', '');
    if (!user || !pass) {
      showError('login-error', !user ? 'Enter your user name.' : 'Enter your password.');
      (!user ? $('login-username') : $('login-password')).focus();
      return;
    }
    const btn = $('login-submit');
    btn.disabled = true;
    btn.textContent = 'Signing in…';
    try {
      const res = await api('POST', '/login', { username: user, password: pass }, { signingIn: true });
      await signIn({ token: res.access_token, kind: 'user', name: res.userName || user });
    } catch (e) {
      showError('login-error', e.message, e.detail);
      $('login-password').select();
      $('login-password').focus();
    } finally {
      btn.disabled = false;
      btn.textContent = 'Sign in';
    }
  }

  async function onTokenLogin(ev) {
    ev.preventDefault();
    const tok = $('operator-token').value.trim();
    showError('token-error', '');
    if (!tok) {
      showError('token-error', 'Enter the operator token.');
      $('operator-token').focus();
      return;
    }
    const btn = $('token-submit');
    btn.disabled = true;
    try {
      await signIn({ token: tok, kind: 'operator', name: 'operator' });
    } catch (e) {
      if (e.status === 401) showError('token-error', 'The token was not accepted.');
      else showError('token-error', e.message, e.detail);
      $('operator-token').focus();
    } finally {
      btn.disabled = false;
    }
  }

  // ---------------------------------------------------------------- data

  async function loadFilters() {
    try {
      const fs = await api('GET', '/filters', undefined, { signingIn: true });
      if (Array.isArray(fs) && fs.length) state.filters = fs;
    } catch (e) {
      if (e.status === 401) throw e;
      state.filters = DEFAULT_FILTERS; // the five built-ins
    }
  }

  async function loadWebhooks(opts) {
    const ws = await api('GET', '/registrations', undefined, opts);
    state.webhooks = Array.isArray(ws) ? ws : [];
  }

  async function refresh() {
    try {
      await loadWebhooks();
      render();
    } catch (e) {
      if (state.session) announce(e.message, 'error', e.detail);
    }
  }

  /** body is the PUT/POST body for w with changes applied. */
  function body(w, changes) {
    const filters = (w.Filters || []).filter((f) => f !== '*');
    return Object.assign({
      Id: w.Id,
      WebHookUri: w.WebHookUri,
      Secret: w.Secret,
      Description: w.Description || '',
      IsPaused: Boolean(w.IsPaused),
      Filters: filters,
      Headers: w.Headers || {},
      Properties: w.Properties || {},
      Ordered: Boolean(w.Ordered),
      MaxPerSecond: Number(w.MaxPerSecond) || 0,
    }, changes);
  }

  // ---------------------------------------------------------------- grid

  const COLUMNS = () => (state.admin ? 7 : 6);

  function render() {
    const n = state.webhooks.length;
    $('col-user').hidden = !state.admin;
    $('grid').classList.toggle('with-user', state.admin);
    $('grid').hidden = n === 0;
    $('empty').hidden = n !== 0;
    renderSummary();

    const ids = new Set(state.webhooks.map((w) => w.Id));
    for (const [id, p] of state.panels) {
      if (!ids.has(id)) {
        p.stop();
        state.panels.delete(id);
      }
    }
    const rows = [];
    for (const w of state.webhooks) {
      rows.push(row(w));
      const p = state.panels.get(w.Id);
      const panelRow = h('tr', { class: 'panel-row', id: 'panel-row-' + w.Id, 'data-panel-for': w.Id, hidden: !(p && p.open) },
        h('td', { colspan: COLUMNS() }, p ? p.el : null));
      rows.push(panelRow);
    }
    $('grid-body').replaceChildren(...rows);
  }

  /** renderSummary counts the webhooks: "4 webhooks, 1 paused." */
  function renderSummary() {
    const n = state.webhooks.length;
    const paused = state.webhooks.filter((w) => w.IsPaused).length;
    let summary = n === 1 ? '1 webhook' : `${n} webhooks`;
    if (paused) summary += `, ${paused} paused`;
    summary += state.admin ? '. As an administrator you see every user\'s webhooks.' : '.';
    $('grid-summary').textContent = summary;
  }

  /** urlText splits a URL after each / ? & and =; each part is a box that
   *  wraps as a whole, so a long URL breaks between its parts first (and
   *  inside a part only when the part alone is wider than the column). */
  function urlText(u) {
    return String(u).split(/(?<=[/?&=])/).map((part) => h('span', { class: 'url-part', text: part }));
  }

  function cell(label, cls, ...children) {
    return h('td', { class: cls, 'data-label': label }, ...children);
  }

  function row(w) {
    const label = w.Description || w.WebHookUri;
    const p = state.panels.get(w.Id);
    const open = Boolean(p && p.open);
    const cells = [];
    if (state.admin) {
      cells.push(cell('User', 'col-user', h('span', { class: 'user', text: (w.User && (w.User.Name || w.User.Id)) || '—' })));
    }
    cells.push(cell('Webhook URL', 'col-url', h('span', { class: 'url', title: w.WebHookUri }, urlText(w.WebHookUri))));
    cells.push(cell('Secret', 'col-secret', secretCell(w, label)));
    cells.push(cell('Filters', 'col-filters', filterChips(w.Filters)));
    cells.push(cell('Description', 'col-desc', w.Description
      ? h('span', { class: 'desc', text: w.Description })
      : h('span', { class: 'muted', text: '—' }), deliveryChips(w)));
    const paused = pauseSwitch(w, label);
    cells.push(cell('Paused', 'col-paused', w.OwnerMissing
      ? h('span', { class: 'state-stack' }, paused, h('span', {
        class: 'chip chip-warn owner-missing',
        title: 'The report server no longer knows this owner or has disabled it: notifications are skipped until the owner is back or an administrator gives the webhook to another user.',
        text: 'Owner missing',
      }))
      : paused));
    cells.push(cell('Actions', 'col-actions', h('div', { class: 'row-actions' },
      h('button', {
        type: 'button', class: 'btn btn-small deliveries-toggle', 'aria-expanded': String(open),
        'aria-controls': 'panel-row-' + w.Id, 'aria-label': 'Deliveries of ' + label,
        onclick: (ev) => togglePanel(w, ev.currentTarget),
      }, h('span', { class: 'chevron', 'aria-hidden': 'true' }), 'Deliveries'),
      h('button', { type: 'button', class: 'btn btn-small edit', 'aria-label': 'Edit ' + label, onclick: (ev) => openEditor(w, ev.currentTarget) }, 'Edit'),
      h('button', { type: 'button', class: 'btn btn-small replay', 'aria-label': 'Replay events to ' + label, onclick: (ev) => openReplay(w, ev.currentTarget) }, 'Replay'),
      h('button', { type: 'button', class: 'btn btn-small rotate', 'aria-label': 'Rotate the secret of ' + label, onclick: (ev) => openRotate(w, ev.currentTarget) }, 'Rotate'),
      h('button', { type: 'button', class: 'btn btn-small btn-danger-ghost delete', 'aria-label': 'Delete ' + label, onclick: (ev) => remove(w, ev.currentTarget) }, 'Delete'))));
    return h('tr', { class: 'webhook' + (w.IsPaused ? ' is-paused' : '') + (w.OwnerMissing ? ' is-owner-missing' : ''), 'data-id': w.Id }, cells);
  }

  /** rotating tells whether w's secret rotation is in its grace period. */
  function rotating(w) {
    return Boolean(w.Rotation && Date.parse(w.Rotation.GraceUntilUtc) > Date.now());
  }

  function secretCell(w, label) {
    const shown = state.revealed.has(w.Id);
    const code = h('code', { class: 'secret' + (shown ? ' revealed' : ''), text: shown ? w.Secret : '••••••••' });
    const chip = rotating(w)
      ? h('span', {
        class: 'chip chip-warn rotating',
        title: 'The old secret signs too until ' + fmtTime.format(new Date(w.Rotation.GraceUntilUtc)) + '; ms-signature uses the ' + (w.Rotation.Promoted ? 'new' : 'old') + ' secret.',
        text: w.Rotation.Promoted ? 'Rotating (promoted)' : 'Rotating',
      })
      : null;
    return h('div', { class: 'secret-cell' }, code, chip,
      h('button', {
        type: 'button', class: 'btn btn-icon reveal', 'aria-pressed': String(shown),
        'aria-label': (shown ? 'Hide' : 'Show') + ' secret of ' + label,
        onclick: (ev) => {
          if (state.revealed.has(w.Id)) state.revealed.delete(w.Id); else state.revealed.add(w.Id);
          const on = state.revealed.has(w.Id);
          code.textContent = on ? w.Secret : '••••••••';
          code.classList.toggle('revealed', on);
          ev.currentTarget.setAttribute('aria-pressed', String(on));
          ev.currentTarget.setAttribute('aria-label', (on ? 'Hide' : 'Show') + ' secret of ' + label);
          ev.currentTarget.textContent = on ? 'Hide' : 'Show';
        },
      }, shown ? 'Hide' : 'Show'),
      h('button', {
        type: 'button', class: 'btn btn-icon copy', 'aria-label': 'Copy secret of ' + label,
        onclick: () => copySecret(w, code),
      }, 'Copy'));
  }

  async function copySecret(w, code) {
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(w.Secret);
      announce('Secret copied to the clipboard.');
    } catch (e) {
      // Without clipboard access (plain http on another host): show and
      // select it so Ctrl+C works.
      state.revealed.add(w.Id);
      code.textContent = w.Secret;
      code.classList.add('revealed');
      const range = document.createRange();
      range.selectNodeContents(code);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(range);
      announce('The secret is selected; press Ctrl+C (⌘C) to copy it.');
    }
  }

  function filterChips(filters) {
    const fs = (filters || []).filter((f) => f !== '*');
    if (!fs.length) return h('span', { class: 'chip chip-all', text: 'All events' });
    return h('span', { class: 'chips' }, fs.map((f) => h('span', { class: 'chip', text: f })));
  }

  /** deliveryChips shows the delivery extensions that are on. */
  function deliveryChips(w) {
    const chips = [];
    if (w.Ordered) {
      chips.push(h('span', { class: 'chip chip-mode ordered', title: 'Sent one at a time in event order; a failing notification holds the ones behind it until it succeeds or gives up.', text: 'Ordered' }));
    }
    if (w.MaxPerSecond > 0) {
      chips.push(h('span', { class: 'chip chip-mode max-per-second', title: 'At most this many notifications per second; 429 and 503 answers slow it down further for a while.', text: '≤ ' + w.MaxPerSecond + '/s' }));
    }
    return chips.length ? h('span', { class: 'chips delivery-mode' }, chips) : null;
  }

  function pauseSwitch(w, label) {
    const input = h('input', {
      type: 'checkbox', role: 'switch', class: 'pause-toggle', checked: Boolean(w.IsPaused),
      'aria-label': 'Paused: ' + label,
      onchange: (ev) => setPaused(w, ev.currentTarget),
    });
    return h('label', { class: 'switch' }, input,
      h('span', { class: 'switch-track', 'aria-hidden': 'true' }),
      h('span', { class: 'switch-text', text: w.IsPaused ? 'Yes' : 'No' }));
  }

  async function setPaused(w, input) {
    const paused = input.checked;
    input.disabled = true;
    try {
      await api('PUT', '/registrations/' + encodeURIComponent(w.Id), body(w, { IsPaused: paused }));
      w.IsPaused = paused;
      announce((paused ? 'Paused ' : 'Resumed ') + (w.Description || w.WebHookUri) + '.');
      const tr = input.closest('tr');
      tr.classList.toggle('is-paused', paused);
      tr.querySelector('.switch-text').textContent = paused ? 'Yes' : 'No';
      renderSummary();
    } catch (e) {
      input.checked = !paused;
      announce(e.message, 'error', e.detail);
    } finally {
      input.disabled = false;
    }
  }

  // ---------------------------------------------------------------- editor

  function generateSecret(n = SECRET_LENGTH) {
    if (n < 32 || n > 128) throw new RangeError('secret length must be 32–128');
    const out = [];
    const max = 256 - (256 % SECRET_ALPHABET.length); // rejection sampling: no bias
    while (out.length < n) {
      const buf = new Uint8Array(n * 2);
      crypto.getRandomValues(buf);
      for (const b of buf) {
        if (b < max && out.length < n) out.push(SECRET_ALPHABET[b % SECRET_ALPHABET.length]);
      }
    }
    return out.join('');
  }

  function clearFieldErrors() {
    showError('form-error', '');
    for (const id of Object.values(FIELD_OF)) {
      const err = $(id + '-error');
      if (err) showError(id + '-error', '');
      $(id).removeAttribute('aria-invalid');
    }
  }

  /** showServerError puts "Field: rule" next to the field it names. */
  function showServerError(msg, detail) {
    const m = /^([A-Za-z]+):\s*([\s\S]*)$/.exec(msg);
    const id = m && FIELD_OF[m[1].toLowerCase()];
    if (id && $(id + '-error')) {
      const text = m[2] ? m[2].charAt(0).toUpperCase() + m[2].slice(1) : msg;
      showError(id + '-error', text, detail);
      $(id).setAttribute('aria-invalid', 'true');
      const focusable = id === 'f-filters' ? $('f-filter-list').querySelector('input') : $(id);
      if (focusable) focusable.focus();
      $('alert-region').textContent = text;
    } else {
      showError('form-error', msg, detail);
      $('alert-region').textContent = msg;
    }
  }

  function setSecretVisible(on) {
    $('f-secret').type = on ? 'text' : 'password';
    $('f-secret-show').setAttribute('aria-pressed', String(on));
    $('f-secret-show').textContent = on ? 'Hide' : 'Show';
  }

  function openEditor(w, opener) {
    state.editing = w || null;
    state.opener = opener || null;
    clearFieldErrors();
    $('edit-title').textContent = w ? 'Edit webhook' : 'New webhook';
    $('edit-save').textContent = w ? 'Save' : 'Create';
    $('f-url').value = w ? w.WebHookUri : '';
    $('f-secret').value = w ? w.Secret : generateSecret();
    $('f-secret-hint').textContent = w
      ? 'Signs each notification; your receiver needs the same secret. A change takes effect at once (32–128 characters).'
      : 'Signs each notification, so your receiver can tell they are genuine; it needs the same secret. ' +
        'A new one is filled in for you: keep it, press Generate for another, or paste your own (32–128 characters).';
    setSecretVisible(false);
    $('f-description').value = w ? (w.Description || '') : '';
    $('f-paused').checked = Boolean(w && w.IsPaused);
    $('f-ordered').checked = Boolean(w && w.Ordered);
    $('f-max-per-second').value = w && w.MaxPerSecond > 0 ? String(w.MaxPerSecond) : '';
    const selected = new Set(((w && w.Filters) || []).map((f) => f.toLowerCase()));
    $('f-filter-list').replaceChildren(...state.filters.map((f) => {
      const id = 'f-filter-' + f.Name;
      return h('div', { class: 'check' },
        h('input', { type: 'checkbox', id, name: 'Filters', value: f.Name, checked: selected.has(f.Name), 'aria-describedby': id + '-desc' }),
        h('label', { for: id }, h('span', { class: 'check-name', text: f.Name }),
          h('span', { class: 'check-desc', id: id + '-desc', text: f.Description || '' })));
    }));
    $('edit-dialog').showModal();
    $('f-url').focus();
  }

  function closeEditor() {
    const d = $('edit-dialog');
    if (d.open) d.close();
  }

  function restoreFocus() {
    if ($('edit-dialog').open) return; // a late close event of a previous opening
    const o = state.opener;
    state.opener = null;
    // The close event comes as a later task: if focus already moved on (the
    // browser restored it, or the user kept typing), do not take it back.
    const a = document.activeElement;
    if (a && a !== document.body && a !== o && a.isConnected && !$('edit-dialog').contains(a)) return;
    if (o && o.isConnected) o.focus();
    else $('new-webhook').focus();
  }

  async function onSave(ev) {
    ev.preventDefault();
    clearFieldErrors();
    const w = state.editing;
    const filters = [...$('f-filter-list').querySelectorAll('input:checked')].map((i) => i.value);
    const b = body(w || {}, {
      WebHookUri: $('f-url').value.trim(),
      Secret: $('f-secret').value,
      Description: $('f-description').value,
      IsPaused: $('f-paused').checked,
      Filters: filters,
      Ordered: $('f-ordered').checked,
      MaxPerSecond: maxPerSecond(),
    });
    const save = $('edit-save');
    const label = save.textContent;
    save.disabled = true;
    save.textContent = 'Checking the receiver…';
    try {
      if (w) {
        await api('PUT', '/registrations/' + encodeURIComponent(w.Id), b);
      } else {
        delete b.Id;
        const created = await api('POST', '/registrations', b);
        state.opener = null;
        state.focusAfterRender = created && created.Id;
      }
      closeEditor();
      announce(w ? 'Webhook saved.' : 'Webhook created; the receiver answered the echo check.');
      await refresh();
      focusRow(state.focusAfterRender);
      state.focusAfterRender = null;
    } catch (e) {
      if (state.session) showServerError(e.message, e.detail);
    } finally {
      save.disabled = false;
      save.textContent = label;
    }
  }

  /** maxPerSecond reads the rate field: empty is 0 (no limit); text that is
   *  not a number is sent as is, so the server names the rule. */
  function maxPerSecond() {
    const v = $('f-max-per-second').value.trim();
    if (v === '') return 0;
    const n = Number(v);
    return Number.isFinite(n) ? n : v;
  }

  function focusRow(id) {
    if (!id) return;
    const btn = document.querySelector(`tr[data-id="${CSS.escape(id)}"] button.edit`);
    if (btn) btn.focus();
  }

  // ---------------------------------------------------------------- rotate

  /**
   * openRotate starts a secret rotation, or, while one runs, offers to
   * promote it (ms-signature switches to the new secret, optionally with a
   * new URL). The new secret is shown once, in the dialog.
   */
  function openRotate(w, opener) {
    state.rotating = { w, opener, mode: rotating(w) ? 'promote' : 'start' };
    showError('rotate-error', '');
    showError('rotate-grace-error', '');
    $('rotate-grace').removeAttribute('aria-invalid');
    $('rotate-grace').value = '24';
    $('rotate-url').value = '';
    $('rotate-secret').value = '';
    renderRotate();
    $('rotate-dialog').showModal();
    (state.rotating.mode === 'promote' ? $('rotate-url') : $('rotate-grace')).focus();
  }

  function renderRotate() {
    const { w, mode } = state.rotating;
    const what = w.Description || w.WebHookUri;
    $('rotate-start').hidden = mode !== 'start';
    $('rotate-promote').hidden = mode !== 'promote';
    $('rotate-done').hidden = mode !== 'done';
    $('rotate-cancel').textContent = mode === 'done' ? 'Close' : 'Cancel';
    $('rotate-ok').hidden = mode === 'done';
    if (mode === 'start') {
      $('rotate-title').textContent = 'Rotate secret';
      $('rotate-ok').textContent = 'Rotate';
      $('rotate-intro').textContent = `A new secret is made for “${what}” and shown here once. During the grace period every ` +
        'notification is signed with both secrets in webhook-signature, so a Standard Webhooks receiver can switch whenever it likes; ' +
        'ms-signature (ASP.NET receivers) stays on the old secret until you promote the new one here or the grace period ends.';
    } else if (mode === 'promote') {
      const r = w.Rotation;
      $('rotate-title').textContent = 'Secret rotation in progress';
      $('rotate-ok').textContent = 'Promote new secret';
      $('rotate-intro').textContent = `The old secret of “${what}” signs next to the new one until ${fmtTime.format(new Date(r.GraceUntilUtc))}. ` +
        (r.Promoted
          ? 'ms-signature already uses the new secret.'
          : 'ms-signature still uses the old secret: promote the new one once your receiver holds it.');
    } else {
      const r = state.rotating.result.Rotation;
      $('rotate-title').textContent = 'New secret';
      $('rotate-intro').textContent = r
        ? `Give this secret to your receiver. Until ${fmtTime.format(new Date(r.GraceUntilUtc))} the old secret signs too, so nothing is rejected meanwhile; ` +
          'for an ASP.NET receiver, come back here to promote the new secret once the receiver holds it.'
        : 'Give this secret to your receiver: the old one no longer signs anything.';
    }
  }

  async function onRotate(ev) {
    ev.preventDefault();
    const st = state.rotating;
    if (!st) return;
    showError('rotate-error', '');
    showError('rotate-grace-error', '');
    const ok = $('rotate-ok');
    const path = '/registrations/' + encodeURIComponent(st.w.Id) + '/rotate';
    try {
      ok.disabled = true;
      if (st.mode === 'start') {
        const text = $('rotate-grace').value.trim();
        const hours = Number(text);
        if (text === '' || !Number.isInteger(hours) || hours < 0 || hours > 168) {
          $('rotate-grace').setAttribute('aria-invalid', 'true');
          showError('rotate-grace-error', 'Grace period: enter whole hours from 0 to 168.');
          $('rotate-grace').focus();
          return;
        }
        $('rotate-grace').removeAttribute('aria-invalid');
        st.result = await api('POST', path, { GraceSeconds: hours * 3600 });
        st.mode = 'done';
        $('rotate-secret').value = st.result.Secret;
        renderRotate();
        $('rotate-secret').focus();
        $('rotate-secret').select();
        announce('Secret rotated.');
      } else {
        const url = $('rotate-url').value.trim();
        ok.textContent = url ? 'Checking the receiver…' : ok.textContent;
        await api('POST', path + '/promote', url ? { WebHookUri: url } : {});
        closeRotate();
        announce('The new secret now signs ms-signature too.');
      }
      await refresh();
    } catch (e) {
      if (state.session) showError('rotate-error', e.message, e.detail);
    } finally {
      ok.disabled = false;
      if (state.rotating && state.rotating.mode === 'promote') ok.textContent = 'Promote new secret';
    }
  }

  function closeRotate() {
    const d = $('rotate-dialog');
    if (d.open) d.close();
  }

  function rotateClosed() {
    if ($('rotate-dialog').open) return;
    const st = state.rotating;
    state.rotating = null;
    $('rotate-secret').value = ''; // shown once
    const o = st && st.opener;
    const btn = st && document.querySelector(`tr[data-id="${CSS.escape(st.w.Id)}"] button.rotate`);
    if (btn) btn.focus();
    else if (o && o.isConnected) o.focus();
  }

  async function copyRotated() {
    const input = $('rotate-secret');
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(input.value);
      announce('Secret copied to the clipboard.');
    } catch (e) {
      input.focus();
      input.select();
      announce('The secret is selected; press Ctrl+C (⌘C) to copy it.');
    }
  }

  // ---------------------------------------------------------------- delete

  function confirmDialog(text, okLabel) {
    const d = $('confirm-dialog');
    $('confirm-text').textContent = text;
    $('confirm-ok').textContent = okLabel;
    return new Promise((resolve) => {
      const done = (v) => {
        $('confirm-ok').removeEventListener('click', ok);
        $('confirm-cancel').removeEventListener('click', cancel);
        d.removeEventListener('close', closed);
        if (d.open) d.close();
        resolve(v);
      };
      const ok = () => done(true);
      const cancel = () => done(false);
      // A close event is dispatched later, as a task: one left over from the
      // previous dialog may arrive after this one opened. Only a close of
      // this dialog counts.
      const closed = () => { if (!d.open) cancel(); };
      $('confirm-ok').addEventListener('click', ok);
      $('confirm-cancel').addEventListener('click', cancel);
      d.addEventListener('close', closed);
      d.showModal();
      $('confirm-cancel').focus(); // the safe choice first
    });
  }

  async function remove(w, opener) {
    const what = w.Description ? `“${w.Description}” (${w.WebHookUri})` : w.WebHookUri;
    const yes = await confirmDialog(`Delete the webhook ${what}? Notifications to it stop at once. This cannot be undone.`, 'Delete');
    if (!yes) {
      opener.focus();
      return;
    }
    try {
      await api('DELETE', '/registrations/' + encodeURIComponent(w.Id));
      announce('Webhook deleted.');
      await refresh();
      $('new-webhook').focus();
    } catch (e) {
      if (state.session) announce(e.message, 'error', e.detail);
      await refresh();
    }
  }

  // ---------------------------------------------------------------- deliveries

  const fmtTime = new Intl.DateTimeFormat(undefined, { dateStyle: 'short', timeStyle: 'medium' });
  const fmtClock = new Intl.DateTimeFormat(undefined, { timeStyle: 'medium' });

  /** explainDelivery words a delivery's last error for people; the attempts
   *  list keeps the exact error. */
  function explainDelivery(err) {
    const net = NETWORK_ERRORS.find(([re]) => re.test(err));
    return net ? 'the receiver could not be reached: ' + net[1] : err;
  }

  function fmtDuration(ms) {
    if (!isFinite(ms) || ms < 0) return '—';
    if (ms < 1) return '<1 ms';
    if (ms < 1000) return Math.round(ms) + ' ms';
    if (ms < 60000) return (ms / 1000).toFixed(1) + ' s';
    return Math.round(ms / 60000) + ' min';
  }

  function eventLabel(d) {
    if (d.Ping) return 'Test ping';
    const e = d.Event || {};
    return [e.Action, e.EventType].filter(Boolean).join(' ');
  }

  /** Panel is the deliveries panel of one webhook. */
  class Panel {
    constructor(w) {
      this.id = w.Id;
      this.open = false;
      this.timer = 0;
      this.polls = 0;
      this.fast = 0;
      this.details = new Map(); // delivery id → {updated, detail}
      this.expanded = new Set(); // delivery ids whose attempts are shown
      this.loading = false;
      this.result = h('p', { class: 'ping-result', role: 'status', 'aria-live': 'polite', hidden: true });
      this.note = h('p', { class: 'muted panel-note', 'aria-live': 'polite' });
      this.body = h('tbody');
      this.table = h('table', { class: 'deliveries', hidden: true },
        h('caption', { class: 'sr-only', text: 'Recent deliveries' }),
        h('thead', {}, h('tr', {},
          ['Time', 'Event', 'Status', 'Attempts', 'Response', 'Duration'].map((t) => h('th', { scope: 'col', text: t })),
          h('th', { scope: 'col' }, h('span', { class: 'sr-only', text: 'Actions' })))),
        this.body);
      this.empty = h('p', { class: 'muted empty-deliveries', text: 'No deliveries yet.', hidden: true });
      this.pingBtn = h('button', { type: 'button', class: 'btn btn-small ping', onclick: () => this.ping() }, 'Send test ping');
      this.el = h('div', { class: 'panel', id: 'panel-' + w.Id },
        h('div', { class: 'panel-head' },
          h('h3', { text: 'Recent deliveries' }),
          h('div', { class: 'panel-actions' },
            this.pingBtn,
            h('button', { type: 'button', class: 'btn btn-small panel-refresh', onclick: () => { this.polls = 0; this.load(); } }, 'Refresh'))),
        this.result, this.table, this.empty, this.note);
    }

    show() {
      this.open = true;
      this.polls = 0;
      this.load();
    }

    stop() {
      this.open = false;
      clearTimeout(this.timer);
      this.timer = 0;
    }

    schedule(pending) {
      clearTimeout(this.timer);
      if (!this.open || !state.session) return;
      this.polls++;
      if (this.polls > PANEL_MAX_POLLS && !pending && this.fast <= 0) {
        this.note.textContent = 'Auto-refresh stopped; use Refresh to update.';
        return;
      }
      this.note.textContent = '';
      const fast = pending || this.fast > 0;
      if (this.fast > 0) this.fast--;
      this.timer = setTimeout(() => this.load(), fast ? POLL_FAST_MS : POLL_SLOW_MS);
    }

    async load() {
      if (!this.open || this.loading) return;
      this.loading = true;
      let pending = false;
      try {
        const ds = await api('GET', `/registrations/${encodeURIComponent(this.id)}/deliveries?limit=${DELIVERY_LIMIT}`);
        const list = Array.isArray(ds) ? ds : [];
        await Promise.all(list.map((d) => this.detail(d)));
        pending = list.some((d) => d.State === 'pending');
        this.render(list);
      } catch (e) {
        if (e.status === 404) {
          this.stop();
          return;
        }
        this.note.textContent = e.message;
      } finally {
        this.loading = false;
      }
      this.schedule(pending);
    }

    async detail(d) {
      const c = this.details.get(d.Id);
      if (c && c.updated === d.UpdatedUtc) return c.detail;
      const detail = await api('GET', '/deliveries/' + encodeURIComponent(d.Id));
      this.details.set(d.Id, { updated: d.UpdatedUtc, detail });
      return detail;
    }

    render(list) {
      this.table.hidden = list.length === 0;
      this.empty.hidden = list.length !== 0;
      // Rows are rebuilt on each refresh: keep the focus on the same control.
      const a = document.activeElement;
      let keep = null;
      if (a && this.body.contains(a)) {
        const tr = a.closest('tr[data-delivery-id]');
        keep = tr && { id: tr.dataset.deliveryId, cls: a.classList[a.classList.length - 1] };
      }
      const ids = new Set(list.map((d) => d.Id));
      for (const id of this.expanded) if (!ids.has(id)) this.expanded.delete(id);
      this.body.replaceChildren(...list.flatMap((d) => this.row(d)));
      if (keep) {
        const again = this.body.querySelector(`tr[data-delivery-id="${CSS.escape(keep.id)}"] .${CSS.escape(keep.cls)}`);
        if (again) again.focus();
      }
    }

    toggleAttempts(id) {
      if (this.expanded.has(id)) this.expanded.delete(id); else this.expanded.add(id);
      const open = this.expanded.has(id);
      const tr = this.body.querySelector(`tr[data-attempts-for="${CSS.escape(id)}"]`);
      if (tr) tr.hidden = !open;
      const btn = this.body.querySelector(`tr[data-delivery-id="${CSS.escape(id)}"] button.attempts-toggle`);
      if (btn) btn.setAttribute('aria-expanded', String(open));
    }

    /** row is a delivery's row and, under it, its attempts (expandable). */
    row(d) {
      const c = this.details.get(d.Id);
      const attempts = (c && c.detail && c.detail.Attempts) || [];
      const last = attempts[attempts.length - 1];
      let duration = '—';
      let total = '';
      if (last) {
        const lastMs = last.DurationNs / 1e6;
        duration = fmtDuration(lastMs);
        const end = Date.parse(last.StartedUtc) + lastMs;
        if (attempts.length > 1 && d.State !== 'pending') {
          total = `done ${fmtDuration(end - Date.parse(d.CreatedUtc))} after it was queued`;
        }
      }
      let status = d.State;
      if (d.State === 'pending' && d.Attempts > 0) status = 'retrying';
      let next = '';
      const due = Date.parse(d.NextAttemptUtc);
      if (d.State === 'pending' && d.Attempts > 0 && due > 0) {
        const wait = due - Date.now();
        next = 'next attempt ' + (wait > 1000
          ? `at ${fmtClock.format(new Date(due))} (in ${fmtDuration(wait)})`
          : 'due now');
      }
      const why = [d.Reason, d.LastError ? explainDelivery(d.LastError) : ''].filter(Boolean).join(': ');
      const resp = d.LastStatusCode ? String(d.LastStatusCode) : (d.LastError ? 'error' : '—');
      const canRedeliver = d.State === 'failed' || d.State === 'gone';
      const open = this.expanded.has(d.Id);
      const listId = 'attempts-' + d.Id;
      const count = d.Attempts > 0
        ? h('button', {
          type: 'button', class: 'btn btn-icon attempts-toggle', 'aria-expanded': String(open), 'aria-controls': listId,
          'aria-label': `${d.Attempts} attempt${d.Attempts === 1 ? '' : 's'}: show each`, onclick: () => this.toggleAttempts(d.Id),
        }, h('span', { class: 'chevron', 'aria-hidden': 'true' }), String(d.Attempts))
        : String(d.Attempts);
      const main = h('tr', { class: 'delivery state-' + d.State, 'data-delivery-id': d.Id, 'data-state': d.State },
        h('td', { 'data-label': 'Time' }, h('time', { datetime: d.CreatedUtc, text: fmtTime.format(new Date(d.CreatedUtc)) })),
        h('td', { 'data-label': 'Event' }, h('span', { text: eventLabel(d) }),
          d.Event && d.Event.ResourceName ? h('span', { class: 'muted resource', text: d.Event.ResourceName }) : null),
        h('td', { 'data-label': 'Status' }, h('span', { class: 'badge badge-' + d.State, text: status }),
          next ? h('span', { class: 'next', text: next }) : null,
          why && d.State !== 'succeeded' ? h('span', { class: 'reason', text: why }) : null),
        h('td', { 'data-label': 'Attempts', class: 'num attempts' }, count),
        h('td', { 'data-label': 'Response', class: 'num response', text: resp }),
        h('td', { 'data-label': 'Last attempt', class: 'num duration' },
          h('span', { text: duration }), total ? h('span', { class: 'muted total', text: total }) : null),
        h('td', { class: 'delivery-actions' }, canRedeliver
          ? h('button', { type: 'button', class: 'btn btn-small redeliver', 'aria-label': 'Redeliver ' + eventLabel(d) + ' of ' + fmtTime.format(new Date(d.CreatedUtc)), onclick: (ev) => this.redeliver(d, ev.currentTarget) }, 'Redeliver')
          : null));
      const items = attempts.map((a) => h('li', {},
        h('span', { class: 'attempt-n', text: `#${a.Attempt}` }), ' ',
        h('time', { datetime: a.StartedUtc, text: fmtTime.format(new Date(a.StartedUtc)) }), ' · ',
        h('span', { class: 'attempt-result', text: a.StatusCode ? 'HTTP ' + a.StatusCode : (a.Error ? 'error' : '—') }), ' · ',
        h('span', { text: 'took ' + fmtDuration(a.DurationNs / 1e6) }),
        a.Error ? h('code', { class: 'attempt-error', text: a.Error }) : null));
      const sub = h('tr', { class: 'attempts-row', 'data-attempts-for': d.Id, hidden: !open },
        h('td', { colspan: 7 }, h('ol', { class: 'attempt-list', id: listId, 'aria-label': 'Attempts of ' + eventLabel(d) },
          items.length ? items : h('li', { class: 'muted', text: 'Loading the attempts…' }))));
      return [main, sub];
    }

    async redeliver(d, btn) {
      btn.disabled = true;
      try {
        await api('POST', '/deliveries/' + encodeURIComponent(d.Id) + '/redeliver');
        announce('Redelivery queued.');
        this.fast = 20;
        this.polls = 0;
        await this.load();
        const again = this.body.querySelector(`tr[data-delivery-id="${CSS.escape(d.Id)}"] td:first-child time`);
        if (again) again.closest('tr').classList.add('flash');
      } catch (e) {
        btn.disabled = false;
        if (state.session) announce(e.message, 'error', e.detail);
      }
    }

    setResult(text, kind) {
      this.result.textContent = text;
      this.result.className = 'ping-result ping-' + kind;
      this.result.hidden = false;
    }

    async ping() {
      this.pingBtn.disabled = true;
      this.setResult('Sending a test ping…', 'pending');
      try {
        let d = await api('POST', `/registrations/${encodeURIComponent(this.id)}/ping`);
        this.fast = 20;
        this.load();
        for (let i = 0; i < PING_MAX_POLLS && d.State === 'pending'; i++) {
          await new Promise((r) => setTimeout(r, POLL_FAST_MS));
          d = await api('GET', '/deliveries/' + encodeURIComponent(d.Id));
        }
        const as = Array.isArray(d.Attempts) ? d.Attempts : [];
        const a = as[as.length - 1];
        const took = a ? ' in ' + fmtDuration(a.DurationNs / 1e6) : '';
        if (d.State === 'succeeded') {
          this.setResult(`Test ping delivered: the receiver answered ${d.LastStatusCode}${took}.`, 'ok');
        } else if (d.State === 'pending') {
          this.setResult(`The test ping is still pending after ${d.AttemptCount || 0} attempt(s); it keeps retrying (see below).`, 'pending');
        } else {
          const why = [d.LastStatusCode ? 'HTTP ' + d.LastStatusCode : '', d.Reason, d.LastError ? explainDelivery(d.LastError) : ''].filter(Boolean).join(', ');
          this.setResult(`Test ping ${d.State}${why ? ': ' + why : ''}.`, 'error');
        }
        this.polls = 0;
        this.load();
      } catch (e) {
        if (state.session) this.setResult('Test ping failed: ' + e.message, 'error');
      } finally {
        this.pingBtn.disabled = false;
      }
    }
  }

  function togglePanel(w, btn) {
    let p = state.panels.get(w.Id);
    if (!p) {
      p = new Panel(w);
      state.panels.set(w.Id, p);
    }
    const tr = $('panel-row-' + w.Id);
    if (p.open) {
      p.stop();
      tr.hidden = true;
    } else {
      if (!tr.firstChild.firstChild) tr.firstChild.append(p.el);
      tr.hidden = false;
      p.show();
    }
    btn.setAttribute('aria-expanded', String(p.open));
  }

  // ---------------------------------------------------------------- events

  const EVENT_TYPES = ['Created', 'Updated', 'Deleted', 'Executed'];
  const EVENTS_PAGE = 50;
  const EVENTS_POLL_MS = 2000;

  const events = {
    list: [], // newest first
    byId: new Map(),
    cursor: '', // NextCursor of the oldest page loaded
    types: new Set(),
    families: new Set(),
    timer: 0,
    loading: false,
    unmatched: [],
  };

  function setView(view) {
    state.view = view;
    $('grid-view').hidden = view !== 'grid';
    $('events-view').hidden = view !== 'events';
    $('tab-webhooks').toggleAttribute('aria-current', false);
    $('tab-events').toggleAttribute('aria-current', false);
    (view === 'events' ? $('tab-events') : $('tab-webhooks')).setAttribute('aria-current', 'page');
    stopEvents();
    if (view === 'events') {
      renderChips();
      loadEvents(true);
    }
  }

  function stopEvents() {
    clearTimeout(events.timer);
    events.timer = 0;
  }

  function schedulePoll() {
    stopEvents();
    if (state.view !== 'events' || !state.session) return;
    events.timer = setTimeout(() => { events.timer = 0; if (!document.hidden) loadEvents(false); else schedulePoll(); }, EVENTS_POLL_MS);
  }

  function chip(label, set, value) {
    return h('button', {
      type: 'button', class: 'chip-toggle', 'aria-pressed': String(set.has(value)), 'data-value': value,
      onclick: (ev) => {
        if (set.has(value)) set.delete(value); else set.add(value);
        ev.currentTarget.setAttribute('aria-pressed', String(set.has(value)));
        loadEvents(true);
      },
    }, label);
  }

  function renderChips() {
    $('type-chips').replaceChildren(...EVENT_TYPES.map((t) => chip(t, events.types, t)));
    $('family-chips').replaceChildren(...state.filters.map((f) => chip(f.Name, events.families, f.Name)));
  }

  function eventsQuery(cursor) {
    const q = new URLSearchParams({ limit: String(EVENTS_PAGE) });
    if (events.types.size) q.set('type', [...events.types].join(','));
    if (events.families.size) q.set('filter', [...events.families].join(','));
    if (cursor) q.set('cursor', cursor);
    return '/events?' + q.toString();
  }

  /**
   * loadEvents reads the newest page: with reset it replaces the list (a
   * new filter, the view opened); otherwise it merges (new events on top,
   * deliveries of known ones updated) and keeps older pages loaded.
   */
  async function loadEvents(reset) {
    stopEvents();
    const gen = (events.gen = (events.gen || 0) + 1);
    try {
      const [page, unmatched] = await Promise.all([
        api('GET', eventsQuery('')),
        state.admin ? api('GET', '/unmatched').catch(() => null) : Promise.resolve(null),
      ]);
      if (gen !== events.gen || state.view !== 'events') return; // superseded
      const got = (page && page.Events) || [];
      if (reset) {
        events.list = got;
        events.byId = new Map(got.map((e) => [e.Id, e]));
        events.cursor = page.NextCursor || '';
        events.fresh = new Set();
      } else {
        const fresh = [];
        for (const e of got) {
          const known = events.byId.get(e.Id);
          if (known) known.Deliveries = e.Deliveries;
          else fresh.push(e);
        }
        for (const e of fresh) events.byId.set(e.Id, e);
        events.list = fresh.concat(events.list).sort((a, b) => (a.Id < b.Id ? 1 : a.Id > b.Id ? -1 : 0));
        events.fresh = new Set(fresh.map((e) => e.Id));
        if (fresh.length) $('status-region').textContent = fresh.length === 1 ? '1 new event.' : `${fresh.length} new events.`;
      }
      if (unmatched) events.unmatched = unmatched;
      renderEvents();
    } catch (e) {
      if (state.session && gen === events.gen) announce(e.message, 'error', e.detail);
    }
    if (gen === events.gen) schedulePoll();
  }

  async function loadOlder() {
    if (!events.cursor) return;
    const btn = $('events-more');
    btn.disabled = true;
    try {
      const page = await api('GET', eventsQuery(events.cursor));
      for (const e of page.Events || []) {
        if (!events.byId.has(e.Id)) {
          events.byId.set(e.Id, e);
          events.list.push(e);
        }
      }
      events.cursor = page.NextCursor || '';
      events.fresh = new Set();
      renderEvents();
    } catch (e) {
      announce(e.message, 'error', e.detail);
    } finally {
      btn.disabled = false;
    }
  }

  function pad(n) { return String(n).padStart(2, '0'); }

  /** when is a local date and time, YYYY-MM-DD HH:MM:SS. */
  function when(s) {
    const d = new Date(s);
    if (isNaN(d)) return String(s || '');
    return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}`;
  }

  function hookLabel(id) {
    const w = state.webhooks.find((x) => x.Id === id);
    if (!w) return 'webhook ' + id.slice(0, 8);
    if (w.Description) return w.Description;
    try { return new URL(w.WebHookUri).host; } catch (e) { return w.WebHookUri; }
  }

  function deliveryChip(d) {
    let text = d.State;
    if (d.LastStatusCode) text += ' (' + d.LastStatusCode + ')';
    const title = [d.Reason, d.LastError, d.Attempts ? d.Attempts + ' attempt' + (d.Attempts === 1 ? '' : 's') : ''].filter(Boolean).join(' · ');
    return h('span', { class: 'dl', 'data-delivery-id': d.Id, 'data-state': d.State, title: title || null },
      h('span', { class: 'badge badge-' + d.State, text }),
      h('span', { class: 'dl-hook', text: hookLabel(d.WebhookId) }));
  }

  function eventRow(e) {
    const resource = e.ResourceName || e.ResourceId || '—';
    const by = e.UserName || (e.Source === 'watch' ? 'schedule' : e.Source === 'reconcile' ? 'found by the reconciler' : '—');
    const ds = e.Deliveries || [];
    return h('tr', {
      class: 'event' + (events.fresh && events.fresh.has(e.Id) ? ' is-new' : ''),
      'data-event-id': e.Id, 'data-type': e.EventType, 'data-filter': e.Action,
    },
    h('td', { class: 'ev-time', 'data-label': 'Time' }, h('time', { datetime: e.TimestampUtc, text: when(e.TimestampUtc) })),
    h('td', { class: 'ev-what', 'data-label': 'Event' }, h('span', { class: 'chip', text: e.Action }), ' ', h('strong', { text: e.EventType })),
    h('td', { class: 'ev-resource', 'data-label': 'Resource' }, h('span', { text: resource }),
      e.ResourceName && e.ResourceId ? h('span', { class: 'ev-id', text: e.ResourceId }) : null),
    h('td', { class: 'ev-by', 'data-label': 'By' }, by),
    h('td', { class: 'ev-deliveries-cell', 'data-label': 'Deliveries' }, ds.length
      ? h('div', { class: 'ev-deliveries' }, ds.map(deliveryChip))
      : h('span', { class: 'muted', text: 'none' })));
  }

  function renderEvents() {
    const n = events.list.length;
    $('events').hidden = n === 0;
    $('events-empty').hidden = n !== 0;
    $('events-body').replaceChildren(...events.list.map(eventRow));
    $('events-more').hidden = !events.cursor;
    const sec = $('unmatched-section');
    sec.hidden = !state.admin;
    if (state.admin) {
      $('unmatched-empty').hidden = events.unmatched.length !== 0;
      $('unmatched-list').replaceChildren(...events.unmatched.map(unmatchedCard));
    }
  }

  function unmatchedCard(u) {
    const snippet = h('pre', { class: 'snippet' }, h('code', { text: u.Snippet }));
    return h('div', { class: 'card rule-card', 'data-route': u.Method + ' ' + u.Path },
      h('div', { class: 'rule-head' },
        h('span', { class: 'rule-route', text: u.Method + ' ' + u.Path }),
        h('span', { class: 'muted', text: `${u.Count} ${u.Count === 1 ? 'call' : 'calls'}, last ${when(u.LastSeenUtc)}` }),
        h('button', {
          type: 'button', class: 'btn btn-small copy-rule', 'aria-label': 'Copy the suggested rule for ' + u.Method + ' ' + u.Path,
          onclick: () => copyText(u.Snippet, snippet, 'Rule copied to the clipboard.'),
        }, 'Copy')),
      snippet);
  }

  async function copyText(text, el, done) {
    try {
      if (!navigator.clipboard || !window.isSecureContext) throw new Error('no clipboard');
      await navigator.clipboard.writeText(text);
      announce(done);
    } catch (e) {
      // Without clipboard access: select the text so Ctrl+C works.
      const r = document.createRange();
      r.selectNodeContents(el);
      const sel = window.getSelection();
      sel.removeAllRanges();
      sel.addRange(r);
      announce('Selected: press Ctrl+C (or ⌘C) to copy.');
    }
  }

  // ---------------------------------------------------------------- replay

  const replay = { w: null, opener: null, since: '', gen: 0 };

  function replayLabel(w) { return w.Description || w.WebHookUri; }

  async function openReplay(w, opener) {
    replay.w = w;
    replay.opener = opener;
    $('replay-target').textContent = 'Send stored events again to ' + replayLabel(w) + '.';
    showError('replay-error', '');
    $('replay-dialog').showModal();
    $('replay-since').focus();
    await countReplay();
  }

  async function countReplay() {
    const gen = ++replay.gen;
    const ok = $('replay-ok');
    ok.disabled = true;
    ok.textContent = 'Replay';
    $('replay-count').textContent = 'Counting…';
    replay.since = new Date(Date.now() - Number($('replay-since').value) * 3600e3).toISOString();
    try {
      const res = await api('POST', '/registrations/' + encodeURIComponent(replay.w.Id) + '/replay', { Since: replay.since, DryRun: true });
      if (gen !== replay.gen) return;
      const n = res.Queued;
      const more = res.Done ? '' : ' (the first batch; replay again for the rest)';
      $('replay-count').textContent = n === 0
        ? 'No stored event of this period matches this webhook.'
        : `${n} ${n === 1 ? 'event' : 'events'} will be sent again${more}.`;
      $('replay-count').dataset.count = String(n);
      ok.textContent = n === 0 ? 'Replay' : `Replay ${n} ${n === 1 ? 'event' : 'events'}`;
      ok.disabled = n === 0;
    } catch (e) {
      if (gen !== replay.gen) return;
      $('replay-count').textContent = '';
      showError('replay-error', e.message, e.detail);
    }
  }

  function closeReplay() {
    replay.gen++;
    if ($('replay-dialog').open) $('replay-dialog').close();
  }

  async function onReplay(ev) {
    ev.preventDefault();
    const ok = $('replay-ok');
    if (ok.disabled) return;
    ok.disabled = true;
    try {
      const res = await api('POST', '/registrations/' + encodeURIComponent(replay.w.Id) + '/replay', { Since: replay.since });
      closeReplay();
      announce(`${res.Queued} ${res.Queued === 1 ? 'event' : 'events'} queued again to ${replayLabel(replay.w)}.`);
    } catch (e) {
      showError('replay-error', e.message, e.detail);
      ok.disabled = false;
    }
  }

  // ---------------------------------------------------------------- start

  function start() {
    $('login-form').addEventListener('submit', onLogin);
    $('token-form').addEventListener('submit', onTokenLogin);
    $('sign-out').addEventListener('click', () => signOut('You are signed out.'));
    $('refresh').addEventListener('click', refresh);
    $('toast-close').addEventListener('click', () => { $('toast').hidden = true; });
    $('new-webhook').addEventListener('click', (ev) => openEditor(null, ev.currentTarget));
    $('edit-form').addEventListener('submit', onSave);
    $('edit-cancel').addEventListener('click', closeEditor);
    $('edit-dialog').addEventListener('close', restoreFocus);
    $('rotate-form').addEventListener('submit', onRotate);
    $('rotate-cancel').addEventListener('click', closeRotate);
    $('rotate-copy').addEventListener('click', copyRotated);
    $('rotate-dialog').addEventListener('close', rotateClosed);
    $('f-secret-generate').addEventListener('click', () => {
      $('f-secret').value = generateSecret();
      setSecretVisible(true);
      $('f-secret').focus();
      $('f-secret').select();
      showError('f-secret-error', '');
      $('f-secret').removeAttribute('aria-invalid');
    });
    $('f-secret-show').addEventListener('click', () => setSecretVisible($('f-secret').type === 'password'));
    $('tab-webhooks').addEventListener('click', () => { setView('grid'); refresh(); });
    $('tab-events').addEventListener('click', () => setView('events'));
    $('events-more').addEventListener('click', loadOlder);
    $('replay-form').addEventListener('submit', onReplay);
    $('replay-cancel').addEventListener('click', closeReplay);
    $('replay-since').addEventListener('change', countReplay);
    $('replay-dialog').addEventListener('close', () => {
      replay.gen++;
      // The grid may have been drawn again meanwhile: find the row's button.
      const again = replay.w && document.querySelector(`tr.webhook[data-id="${CSS.escape(replay.w.Id)}"] button.replay`);
      const back = replay.opener && document.contains(replay.opener) ? replay.opener : again;
      if (back) back.focus();
    });
    document.addEventListener('visibilitychange', () => {
      if (document.hidden) return;
      for (const p of state.panels.values()) if (p.open && !p.timer) p.load();
    });

    const saved = loadSession();
    if (!saved) {
      showSignIn();
      return;
    }
    signIn(saved).catch((e) => {
      saveSession(null);
      showSignIn(e.status === 401 ? 'Your session has ended. Sign in again.' : e.message);
    });
  }

  start();
})();
