// The quote pages: request a quote, follow one as it is priced, a customer's quotes, the
// operations view. Plain JavaScript, no build step, nothing fetched but this server's API.
// Streams are read with fetch (so the bearer token goes in a header, ADR 0012) and resumed
// with Last-Event-ID after any drop.
'use strict';

const TOKEN_KEY = 'quotes.token';
const main = document.getElementById('main');

function show(...nodes) {
  main.replaceChildren(...nodes.flat(Infinity).filter((node) => node !== null && node !== undefined && node !== false));
}

const dollars = (cents) =>
  cents === null || cents === undefined
    ? '—'
    : (cents / 100).toLocaleString('en-US', { style: 'currency', currency: 'USD' });

const time = (iso) => (iso ? new Date(iso).toLocaleString() : '—');

function statusBadge(status) {
  return h('span', { class: `status status-${status}`, 'data-status': status }, status);
}

// ---------------------------------------------------------------------------------------------
// The session: a bearer token kept for this tab only.

const session = {
  get token() {
    return sessionStorage.getItem(TOKEN_KEY);
  },
  set token(value) {
    if (value) sessionStorage.setItem(TOKEN_KEY, value);
    else sessionStorage.removeItem(TOKEN_KEY);
    renderWho();
  },
  // The token's claims, for display and defaults only (the server checks the token).
  get claims() {
    const token = this.token;
    if (!token) return null;
    try {
      const payload = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
      return JSON.parse(atob(payload));
    } catch {
      return {};
    }
  },
  get subject() {
    return (this.claims || {}).sub || '';
  },
  get scopes() {
    return ((this.claims || {}).scope || '').split(/\s+/);
  },
  get agent() {
    return this.scopes.includes('quotes:agent');
  },
};

function renderWho() {
  const who = document.getElementById('who');
  if (!session.token) {
    who.replaceChildren(h('a', { href: '#/sign-in' }, 'Sign in'));
    return;
  }
  who.replaceChildren(
    `Signed in as ${session.subject || 'unknown'}${session.agent ? ' (agent)' : ''}`,
    h('button', { class: 'quiet', type: 'button', onclick: () => { session.token = null; go('#/sign-in'); } }, 'Sign out'),
  );
}

// ---------------------------------------------------------------------------------------------
// The API.

class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
  }
}

async function api(path, options = {}) {
  const headers = { Accept: 'application/json', ...(options.headers || {}) };
  if (session.token) headers.Authorization = `Bearer ${session.token}`;
  if (options.json !== undefined) {
    headers['Content-Type'] = 'application/json';
    options.body = JSON.stringify(options.json);
  }
  const response = await fetch(path, { ...options, headers });
  const text = await response.text();
  let body = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = { detail: text };
  }
  if (!response.ok) throw new Problem(response.status, body);
  return { status: response.status, headers: response.headers, body };
}

// Follows a Server-Sent Events route with fetch: `onEvent({id, event, data})` for each event
// named in `events`; it reconnects after a drop (backoff 0.5 s doubling to 10 s, with jitter)
// with the last id as Last-Event-ID. `onState` hears 'live', 'reconnecting', 'paused', 'ended'
// or 'refused'. The stream ends when the server closes it after an event for which `isFinal` is
// true (a quote's outcome); any other close (a proxy, the server's 15-minute limit or shutdown,
// a dropped connection) is resumed. One connection at most: each run has a generation, and a
// run whose generation is past (stopped, paused, resumed again) ends at its next step.
class Follower {
  constructor(path, { onEvent, onState, events, isFinal = () => false, lastId = null }) {
    this.path = path;
    this.onEvent = onEvent;
    this.onState = onState || (() => {});
    this.events = events;
    this.isFinal = isFinal;
    this.sawFinal = false;
    this.lastId = lastId;
    this.controller = null;
    this.generation = 0;
    this.paused = false;
    this.run(++this.generation);
  }

  stop() {
    this.generation++;
    if (this.controller) this.controller.abort();
  }

  pause() {
    if (this.paused) return;
    this.paused = true;
    this.stop();
    this.onState('paused');
  }

  resume() {
    if (!this.paused) return;
    this.paused = false;
    this.run(++this.generation);
  }

  async run(generation) {
    const current = () => generation === this.generation;
    let delay = 500;
    while (current()) {
      const controller = new AbortController();
      this.controller = controller;
      let closedCleanly = false;
      try {
        const headers = { Accept: 'text/event-stream', Authorization: `Bearer ${session.token}` };
        if (this.lastId !== null) headers['Last-Event-ID'] = this.lastId;
        const response = await fetch(this.path, { headers, signal: controller.signal });
        if (!response.ok) {
          let body = null;
          try { body = await response.json(); } catch { body = null; }
          // A refusal (not signed in, not allowed, no such quote) does not heal by retrying.
          if (response.status < 500 && response.status !== 408 && response.status !== 429) {
            if (current()) this.onState('refused', new Problem(response.status, body));
            return;
          }
          throw new Problem(response.status, body);
        }
        if (!current()) {
          controller.abort();
          return;
        }
        this.onState('live');
        delay = 500;
        await this.read(response.body.getReader(), current);
        closedCleanly = true;
      } catch (err) {
        if (!current()) return;
      } finally {
        controller.abort();
      }
      if (!current()) return;
      if (closedCleanly && this.sawFinal) {
        this.onState('ended');
        return;
      }
      this.onState('reconnecting');
      await new Promise((resolve) => setTimeout(resolve, delay * (0.5 + Math.random())));
      delay = Math.min(delay * 2, 10000);
    }
  }

  // Parses the event stream as the SSE specification says (CR, LF or CRLF line ends, a CRLF
  // split across chunks included; comments; multi-line data; an id without data still moves
  // the last id).
  async read(reader, current) {
    const decoder = new TextDecoder();
    let buffer = '';
    try {
      for (;;) {
        const { value, done } = await reader.read();
        if (done || !current()) return;
        buffer += decoder.decode(value, { stream: true });
        // A trailing CR may be the first half of a CRLF: keep it for the next chunk.
        const held = buffer.endsWith('\r') ? '\r' : '';
        let text = (held ? buffer.slice(0, -1) : buffer).replace(/\r\n?/g, '\n');
        let end;
        while ((end = text.indexOf('\n\n')) >= 0) {
          const block = text.slice(0, end);
          text = text.slice(end + 2);
          this.dispatch(block);
          if (!current()) return;
        }
        buffer = text + held;
      }
    } finally {
      reader.cancel().catch(() => {});
    }
  }

  dispatch(block) {
    const message = { id: null, event: 'message', data: '' };
    const data = [];
    for (const line of block.split('\n')) {
      if (!line || line.startsWith(':')) continue;
      const colon = line.indexOf(':');
      const field = colon < 0 ? line : line.slice(0, colon);
      let value = colon < 0 ? '' : line.slice(colon + 1);
      if (value.startsWith(' ')) value = value.slice(1);
      if (field === 'id' && !value.includes('\0')) message.id = value;
      else if (field === 'event') message.event = value;
      else if (field === 'data') data.push(value);
    }
    if (message.id !== null) this.lastId = message.id;
    if (!data.length || (this.events && !this.events.includes(message.event))) return;
    try {
      message.data = JSON.parse(data.join('\n'));
    } catch {
      console.error(`unreadable ${message.event} event from ${this.path}`);
      return;
    }
    if (this.isFinal(message)) this.sawFinal = true;
    try {
      this.onEvent(message);
    } catch (err) {
      // A page that cannot show an event says so; the stream goes on.
      console.error(`showing a ${message.event} event failed: ${err.message}`);
    }
  }
}

function liveIndicator() {
  const el = h('span', { class: 'live', role: 'status', 'data-state': 'connecting' }, 'connecting…');
  el.set = (state, problem) => {
    el.dataset.state = state;
    el.textContent = {
      live: 'live',
      reconnecting: 'reconnecting…',
      paused: 'paused',
      ended: 'complete',
      refused: `not available: ${problem ? problem.message : ''}`,
    }[state] || state;
  };
  return el;
}

// ---------------------------------------------------------------------------------------------
// Pages. Each returns a cleanup function (or nothing) run when the page is left.

function needsSignIn() {
  if (session.token) return false;
  show(
    h('h1', {}, 'Sign in first'),
    h('p', {}, 'These pages act with a bearer token. ', h('a', { href: '#/sign-in' }, 'Sign in'), '.'),
  );
  return true;
}

function signInPage() {
  const problem = h('div', { class: 'problem', role: 'alert', id: 'sign-in-problem' });
  const token = h('textarea', { id: 'token', rows: 3, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'token-hint' });
  const customer = h('input', { id: 'dev-customer', value: 'cust-42', autocomplete: 'off' });
  const agent = h('input', { id: 'dev-agent', type: 'checkbox' });
  show(
    h('h1', {}, 'Sign in'),
    problem,
    h('form', {
      class: 'card',
      onsubmit: (e) => {
        e.preventDefault();
        session.token = token.value.trim();
        go('#/');
      },
    },
      h('div', { class: 'field' },
        h('label', { for: 'token' }, 'Bearer token'),
        h('span', { class: 'hint', id: 'token-hint' }, 'A JWT from your identity provider, or from `quotes token --customer ID`.'),
        token),
      h('p', { class: 'actions' }, h('button', { type: 'submit' }, 'Use this token'))),
    h('form', {
      class: 'card',
      'aria-labelledby': 'dev-title',
      onsubmit: async (e) => {
        e.preventDefault();
        problem.textContent = '';
        try {
          const { body } = await api('/v1/dev/sign-in', {
            method: 'POST',
            json: { customer_id: customer.value.trim(), agent: agent.checked },
          });
          session.token = body.token;
          go('#/');
        } catch (err) {
          problem.textContent = err.message;
        }
      },
    },
      h('h2', { id: 'dev-title' }, 'Development sign-in'),
      h('p', {}, 'Only when the platform runs embedded (`quotes run`): mints a token for a customer of your choice. Refused on AWS.'),
      h('div', { class: 'grid' },
        h('div', { class: 'field' }, h('label', { for: 'dev-customer' }, 'Customer id'), customer),
        h('div', { class: 'field check' }, agent, h('label', { for: 'dev-agent' }, 'Agent (may act for any customer, reads operations)'))),
      h('p', { class: 'actions' }, h('button', { type: 'submit', id: 'dev-sign-in' }, 'Sign in for development'))),
  );
}

// The request form. Field names are the API's field paths, so a problem's `errors[].field`
// names the input it belongs to.
const STATES = 'AK AL AR AZ CA CO CT DC DE FL GA HI IA ID IL IN KS KY LA MA MD ME MI MN MO MS MT NC ND NE NH NJ NM NV NY OH OK OR PA RI SC SD TN TX UT VA VT WA WI WV WY'.split(' ');

function field(path, label, input, hint) {
  const id = `f-${path.replace(/[^a-z0-9]+/gi, '-')}`;
  input.id = id;
  input.name = path;
  const error = h('div', { class: 'error', id: `${id}-error` });
  const hintEl = hint ? h('span', { class: 'hint', id: `${id}-hint` }, hint) : null;
  input.setAttribute('aria-describedby', [hintEl ? `${id}-hint` : null, `${id}-error`].filter(Boolean).join(' '));
  return h('div', { class: 'field', 'data-field': path }, h('label', { for: id }, label), hintEl, input, error);
}

function choice(options, selected) {
  return h('select', {}, options.map(([value, text]) => h('option', { value, selected: String(value) === String(selected) }, text)));
}

function vehicleFieldset(i) {
  const p = (name) => `vehicles[${i}].${name}`;
  return h('fieldset', { 'data-vehicle': i },
    h('legend', {}, `Vehicle ${i + 1}`),
    h('div', { class: 'grid' },
      field(p('vin'), 'VIN', h('input', { value: i === 0 ? '1HGCM82633A004352' : '', autocomplete: 'off', spellcheck: 'false' }), '17 characters'),
      field(p('annual_mileage'), 'Miles a year', h('input', { inputmode: 'numeric', value: '12000' })),
      field(p('garaging_zip'), 'Garaging ZIP', h('input', { inputmode: 'numeric', value: '23220', autocomplete: 'postal-code' })),
      field(p('use'), 'Use', choice([['commute', 'Commute'], ['pleasure', 'Pleasure'], ['business', 'Business']], 'commute'))));
}

function driverFieldset(i) {
  const p = (name) => `drivers[${i}].${name}`;
  const first = i === 0;
  return h('fieldset', { 'data-driver': i },
    h('legend', {}, `Driver ${i + 1}`),
    h('div', { class: 'grid' },
      field(p('first_name'), 'First name', h('input', { value: first ? 'Ana' : '', autocomplete: 'given-name' })),
      field(p('last_name'), 'Last name', h('input', { value: first ? 'Diaz' : '', autocomplete: 'family-name' })),
      field(p('date_of_birth'), 'Date of birth', h('input', { type: 'date', value: first ? '1988-03-14' : '' })),
      field(p('license_number'), 'Licence number', h('input', { value: first ? 'T12345678' : '', autocomplete: 'off' })),
      field(p('license_state'), 'Licence state', choice(STATES.map((s) => [s, s]), 'VA')),
      field(p('first_licensed'), 'First licensed', h('input', { type: 'date', value: first ? '2006-05-01' : '' }))));
}

// "Add a …" and "Remove the last …" for a list of fieldsets (1 to `max`), each button disabled
// at its limit; focus goes to the first field of an added fieldset.
function addRemove(list, max, make, noun) {
  const add = h('button', { type: 'button', class: 'quiet' }, `Add a ${noun}`);
  const remove = h('button', { type: 'button', class: 'quiet' }, `Remove the last ${noun}`);
  const update = () => {
    add.disabled = list.children.length >= max;
    remove.disabled = list.children.length <= 1;
  };
  add.addEventListener('click', () => {
    if (list.children.length >= max) return;
    const fieldset = make(list.children.length);
    list.append(fieldset);
    fieldset.querySelector('input, select').focus();
    update();
  });
  remove.addEventListener('click', () => {
    if (list.children.length > 1) list.lastElementChild.remove();
    update();
  });
  update();
  return h('p', { class: 'actions' }, add, remove);
}

function requestPage() {
  if (needsSignIn()) return;
  const problem = h('div', { class: 'problem', id: 'form-problem', tabindex: '-1' });
  const vehicles = h('div', {}, vehicleFieldset(0));
  const drivers = h('div', {}, driverFieldset(0));
  const submit = h('button', { type: 'submit', id: 'submit-quote' }, 'Request the quote');
  const customer = h('input', { value: session.agent ? '' : session.subject, autocomplete: 'off' });
  const form = h('form', { novalidate: true, id: 'quote-form' },
    h('fieldset', {},
      h('legend', {}, 'Customer'),
      h('div', { class: 'grid' },
        field('customer_id', 'Customer id', customer, session.agent ? 'Agents may request for any customer' : 'Your own id'),
        field('contact.email', 'E-mail', h('input', { type: 'email', value: 'ana@example.com', autocomplete: 'email' })),
        field('contact.phone', 'Phone', h('input', { type: 'tel', value: '+18045550142', autocomplete: 'tel' }), 'E.164, e.g. +18045550142'))),
    vehicles,
    addRemove(vehicles, 4, vehicleFieldset, 'vehicle'),
    drivers,
    addRemove(drivers, 6, driverFieldset, 'driver'),
    h('fieldset', {},
      h('legend', {}, 'Coverage'),
      h('div', { class: 'grid' },
        field('coverage.liability_limit', 'Liability limit', choice(['25/50/25', '50/100/50', '100/300/100', '250/500/250'].map((v) => [v, v]), '100/300/100'), 'thousands of dollars'),
        field('coverage.collision_deductible', 'Collision deductible', choice([250, 500, 1000, 2000].map((v) => [v, `$${v}`]), 500)),
        field('coverage.comprehensive_deductible', 'Comprehensive deductible', choice([250, 500, 1000, 2000].map((v) => [v, `$${v}`]), 500)))),
    h('fieldset', {},
      h('legend', {}, 'Notifications'),
      h('div', { class: 'grid' },
        h('div', { class: 'field check' }, h('input', { type: 'checkbox', id: 'f-notify-email', name: 'notify.email', checked: true }), h('label', { for: 'f-notify-email' }, 'E-mail me the quote')),
        h('div', { class: 'field check' }, h('input', { type: 'checkbox', id: 'f-notify-sms', name: 'notify.sms' }), h('label', { for: 'f-notify-sms' }, 'Text me the quote')),
        field('notify.max_premium', 'Only if the premium is at most ($)', h('input', { inputmode: 'numeric', value: '' }), 'optional'))),
    h('p', { class: 'actions' }, submit));
  // One Idempotency-Key per request as the customer means it: kept when the answer was lost
  // or the server failed (a retry then cannot make a second quote), renewed once the server
  // answered or the form changed.
  let idempotencyKey = null;
  form.addEventListener('input', () => { idempotencyKey = null; });
  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    clearErrors(form, problem);
    submit.disabled = true;
    idempotencyKey = idempotencyKey || newKey();
    try {
      const { body } = await api('/v1/quotes', {
        method: 'POST',
        json: requestBody(form),
        headers: { 'Idempotency-Key': idempotencyKey },
      });
      idempotencyKey = null;
      if (form.isConnected) go(`#/quotes/${encodeURIComponent(body.quote_id)}`);
    } catch (err) {
      if (err instanceof Problem && err.status < 500) idempotencyKey = null;
      showErrors(form, problem, err);
    } finally {
      submit.disabled = false;
    }
  });
  show(h('h1', {}, 'Request a quote'), problem, form);
}

// A fresh idempotency key (random; `crypto.randomUUID` needs a secure context).
function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

// The JSON body from the form (numbers where the API wants numbers; empty optional values left
// out, so the API names what is missing).
function requestBody(form) {
  const value = (name) => {
    const el = form.elements.namedItem(name);
    return el ? el.value.trim() : '';
  };
  const number = (text) => (text === '' ? text : /^-?\d+(\.\d+)?$/.test(text) ? Number(text) : text);
  const body = {
    customer_id: value('customer_id'),
    contact: {},
    vehicles: [],
    drivers: [],
    coverage: {
      liability_limit: value('coverage.liability_limit'),
      collision_deductible: Number(value('coverage.collision_deductible')),
      comprehensive_deductible: Number(value('coverage.comprehensive_deductible')),
    },
    notify: {
      email: form.elements.namedItem('notify.email').checked,
      sms: form.elements.namedItem('notify.sms').checked,
    },
  };
  if (value('contact.email')) body.contact.email = value('contact.email');
  if (value('contact.phone')) body.contact.phone = value('contact.phone');
  if (value('notify.max_premium')) body.notify.max_premium = number(value('notify.max_premium'));
  for (let i = 0; form.elements.namedItem(`vehicles[${i}].vin`); i++) {
    const v = (name) => value(`vehicles[${i}].${name}`);
    body.vehicles.push({ vin: v('vin'), annual_mileage: number(v('annual_mileage')), garaging_zip: v('garaging_zip'), use: v('use') });
  }
  for (let i = 0; form.elements.namedItem(`drivers[${i}].first_name`); i++) {
    const d = (name) => value(`drivers[${i}].${name}`);
    body.drivers.push({
      first_name: d('first_name'), last_name: d('last_name'), date_of_birth: d('date_of_birth'),
      license_number: d('license_number'), license_state: d('license_state'), first_licensed: d('first_licensed'),
    });
  }
  return body;
}

function clearErrors(form, problem) {
  problem.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  for (const el of form.querySelectorAll('.error')) el.textContent = '';
}

// Puts each of the problem's field errors under its input; the rest goes to the summary.
function showErrors(form, problem, err) {
  const errors = (err.body && err.body.errors) || [];
  const unplaced = [];
  let first = null;
  for (const { field: path, reason } of errors) {
    const container = form.querySelector(`[data-field="${CSS.escape(path)}"]`);
    if (!container) {
      unplaced.push(`${path}: ${reason}`);
      continue;
    }
    const input = container.querySelector('input, select, textarea');
    input.setAttribute('aria-invalid', 'true');
    container.querySelector('.error').textContent = reason;
    first = first || input;
  }
  const title = err.body && err.body.title ? err.body.title : err.message;
  const placed = errors.length - unplaced.length;
  problem.replaceChildren(...[
    h('strong', {}, title),
    placed ? h('div', {}, `${placed} field${placed > 1 ? 's' : ''} to correct, marked below.`) : null,
    unplaced.length ? h('ul', {}, unplaced.map((t) => h('li', {}, t))) : null,
  ].filter(Boolean));
  if (first) first.focus();
  else problem.focus();
}

// A customer's quotes, newest first, statuses updating live.
function quotesPage(params) {
  if (needsSignIn()) return;
  const customer = params.get('customer') || (session.agent ? '' : session.subject);
  const live = liveIndicator();
  const rows = h('tbody', {});
  const byId = new Map();
  const announce = h('p', { class: 'visually-hidden', role: 'status' });
  const chooser = session.agent
    ? h('form', {
      class: 'actions',
      onsubmit: (e) => { e.preventDefault(); go(`#/quotes?customer=${encodeURIComponent(e.target.elements.customer.value.trim())}`); },
    }, h('label', { for: 'customer' }, 'Customer'), h('input', { id: 'customer', name: 'customer', value: customer }), h('button', { type: 'submit' }, 'Show'))
    : null;
  show(
    h('h1', {}, customer ? `Quotes of ${customer}` : 'Quotes'),
    chooser,
    h('p', {}, live),
    announce,
    h('div', { class: 'scroll' },
      h('table', { id: 'quotes' },
        h('caption', { class: 'hint' }, 'Newest first; each row changes as its quote is priced.'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Quote'), h('th', { scope: 'col' }, 'Status'), h('th', { scope: 'col' }, 'Annual premium'), h('th', { scope: 'col' }, 'Vehicles'), h('th', { scope: 'col' }, 'Requested'), h('th', { scope: 'col' }, 'Updated'))),
        rows)),
  );
  if (!customer) return;
  const follower = new Follower(`/v1/customers/${encodeURIComponent(customer)}/quotes/stream`, {
    events: ['quote'],
    onState: live.set,
    onEvent: ({ data }) => {
      const row = h('tr', { 'data-quote': data.quote_id, 'data-requested': data.requested_at, 'data-status': data.status },
        h('td', { class: 'mono' }, h('a', { href: `#/quotes/${encodeURIComponent(data.quote_id)}` }, data.quote_id)),
        h('td', {}, statusBadge(data.status)),
        h('td', {}, dollars(data.annual_premium_cents)),
        h('td', {}, (data.vehicles || []).map((v) => `${v.model_year || ''} ${v.make || v.vin}`.trim()).join(', ')),
        h('td', {}, time(data.requested_at)),
        h('td', {}, time(data.updated_at)));
      const old = byId.get(data.quote_id);
      byId.set(data.quote_id, row);
      if (old) {
        if (old.dataset.status !== data.status) announce.textContent = `Quote ${data.quote_id.slice(0, 8)} is now ${data.status}.`;
        old.replaceWith(row);
        return;
      }
      // Newest request first: before the first row requested earlier.
      const at = Date.parse(data.requested_at);
      const older = [...rows.children].find((tr) => Date.parse(tr.dataset.requested) < at);
      rows.insertBefore(row, older || null);
    },
  });
  return () => follower.stop();
}

const OUTCOMES = ['QuoteIssued', 'QuoteDeclined', 'QuoteReferred'];

const EVENT_LABELS = {
  QuoteRequested: 'Requested',
  VehicleDecoded: 'Vehicle decoded',
  DriverHistoryRetrieved: 'Driver history retrieved',
  QuoteIssued: 'Quoted',
  QuoteDeclined: 'Declined',
  QuoteReferred: 'Referred to an agent',
};

// One quote: its events as they are recorded, the time each hop took, the premium and its
// breakdown, and its state at any version.
function quotePage(params, quoteId) {
  if (needsSignIn()) return;
  const live = liveIndicator();
  const timeline = h('ol', { class: 'timeline', id: 'timeline', 'aria-live': 'polite' });
  const summary = h('div', { class: 'card', id: 'summary' }, 'Waiting for the quote…');
  const travelOutput = h('div', { id: 'travel-state' });
  const slider = h('input', { type: 'range', id: 'travel', min: 1, max: 1, value: 1, step: 1, disabled: true });
  const sliderLabel = h('output', { for: 'travel', id: 'travel-version' }, 'version 1');
  const pause = h('button', { type: 'button', class: 'quiet', 'aria-pressed': 'false', id: 'pause' }, 'Pause live updates');
  const events = [];
  let follower = null;

  // The state at the slider's version, read once the slider rests (a replay of many events
  // reads it once); an answer for a version no longer chosen is dropped.
  let travelTimer = null;
  let shownVersion = null;
  const travel = () => {
    const version = Number(slider.value);
    sliderLabel.textContent = `version ${version} of ${events.length}`;
    for (const li of timeline.children) li.classList.toggle('later', Number(li.dataset.version) > version);
    if (version === shownVersion) return;
    clearTimeout(travelTimer);
    travelTimer = setTimeout(async () => {
      let shown;
      try {
        const { body } = await api(`/v1/quotes/${encodeURIComponent(quoteId)}?version=${version}`);
        shown = stateList(body);
      } catch (err) {
        shown = document.createTextNode(err.message);
      }
      if (Number(slider.value) !== version || !travelOutput.isConnected) return;
      shownVersion = version;
      travelOutput.replaceChildren(shown);
    }, 100);
  };
  slider.addEventListener('input', travel);

  pause.addEventListener('click', () => {
    if (!follower) return;
    if (follower.paused) {
      follower.resume();
      pause.setAttribute('aria-pressed', 'false');
      pause.textContent = 'Pause live updates';
    } else {
      follower.pause();
      pause.setAttribute('aria-pressed', 'true');
      pause.textContent = 'Resume live updates';
    }
  });

  const addEvent = (envelope) => {
    if (events.some((e) => e.version === envelope.version)) return; // never twice
    events.push(envelope);
    const first = events[0];
    const previous = events.length > 1 ? events[events.length - 2] : null;
    const at = Date.parse(envelope.recorded_at);
    const hop = previous ? at - Date.parse(previous.recorded_at) : null;
    const total = at - Date.parse(first.recorded_at);
    // When the page showed it (for the commit-to-page latency the browser test measures).
    timeline.append(h('li', { 'data-version': envelope.version, 'data-type': envelope.event_type, 'data-shown-at': Date.now() },
      h('strong', {}, EVENT_LABELS[envelope.event_type] || envelope.event_type),
      ` by ${envelope.actor}`,
      h('div', { class: 'hop' },
        `v${envelope.version} · ${time(envelope.recorded_at)}`,
        hop === null ? '' : ` · +${hop} ms after the previous event · ${total} ms after the request`)));
    const wasLatest = Number(slider.value) === events.length - 1 || slider.disabled;
    slider.max = String(events.length);
    slider.disabled = false;
    if (wasLatest) slider.value = String(events.length);
    travel();
    renderSummary();
  };

  const renderSummary = () => {
    const outcome = events.find((e) => OUTCOMES.includes(e.event_type));
    const requested = events.find((e) => e.event_type === 'QuoteRequested');
    const parts = [h('p', {}, 'Status: ', statusBadge(outcome ? { QuoteIssued: 'quoted', QuoteDeclined: 'declined', QuoteReferred: 'referred' }[outcome.event_type] : 'pending'))];
    if (outcome && outcome.event_type === 'QuoteIssued') {
      const d = outcome.data;
      parts.push(h('p', {}, 'Annual premium ', h('span', { class: 'premium', id: 'premium' }, dollars(d.annual_premium))));
      parts.push(h('h2', {}, 'Breakdown'), h('table', { id: 'breakdown' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Coverage'), h('th', { scope: 'col' }, 'Amount'))),
        h('tbody', {}, (d.breakdown || []).map((b) => h('tr', {}, h('td', {}, b.coverage), h('td', {}, dollars(b.amount)))))));
      if ((d.factors || []).length) {
        parts.push(h('details', {}, h('summary', {}, `Rating factors (${d.factors.length})`),
          h('ul', {}, d.factors.map((f) => h('li', {}, `${f.name} ×${f.value}: ${f.detail}`)))));
      }
    } else if (outcome) {
      parts.push(h('p', {}, 'Reason: ', outcome.data.reason || (outcome.data.reasons || []).join('; ') || '—'));
    }
    if (requested) {
      const r = requested.data.request;
      parts.push(h('p', {}, `${r.vehicles.length} vehicle(s), ${r.drivers.length} driver(s), liability ${r.coverage.liability_limit}`));
    }
    summary.replaceChildren(...parts);
  };

  show(
    h('h1', {}, 'Quote ', h('span', { class: 'mono' }, quoteId)),
    h('p', { class: 'actions' }, live, pause),
    h('div', { class: 'split' },
      h('section', { 'aria-labelledby': 'timeline-title' },
        h('h2', { id: 'timeline-title' }, 'Timeline'),
        timeline),
      h('section', { 'aria-labelledby': 'summary-title' },
        h('h2', { id: 'summary-title' }, 'Outcome'),
        summary)),
    h('section', { class: 'card', 'aria-labelledby': 'travel-title' },
      h('h2', { id: 'travel-title' }, 'Time travel'),
      h('p', {}, 'The quote as it stood after each event (GET /v1/quotes/{id}?version=N).'),
      h('div', { class: 'field' }, h('label', { for: 'travel' }, 'Version'), slider, ' ', sliderLabel),
      travelOutput),
  );
  follower = new Follower(`/v1/quotes/${encodeURIComponent(quoteId)}/stream`, {
    events: Object.keys(EVENT_LABELS),
    isFinal: ({ event }) => OUTCOMES.includes(event),
    onState: (state, problem) => {
      live.set(state, problem);
      if (state === 'live' && !timeline.dataset.openedAt) timeline.dataset.openedAt = Date.now();
      if (state === 'ended' || state === 'refused') pause.disabled = true;
    },
    onEvent: ({ data }) => addEvent(data),
  });
  return () => follower.stop();
}

function stateList(state) {
  const rows = [
    ['Status', statusBadge(state.status)],
    ['Version', state.version],
    ['Annual premium', dollars(state.annual_premium_cents)],
    ['Vehicles', (state.vehicles || []).map((v) => `${v.vin}${v.make ? ` (${v.model_year || ''} ${v.make})` : ''}`).join(', ') || '—'],
    ['Drivers', state.drivers],
    ['Updated', time(state.updated_at)],
  ];
  return h('dl', { class: 'kv' }, rows.map(([k, v]) => [h('dt', {}, k), h('dd', {}, v)]));
}

// The operations view: per consumer application its shards, owners, lag and dead letters; the
// outbox.
function opsPage() {
  if (needsSignIn()) return;
  const live = liveIndicator();
  const body = h('div', { id: 'ops' }, 'Waiting for the first reading…');
  let shownKey = null;
  show(h('h1', {}, 'Operations'), h('p', {}, live, ' · read from the lease, dead-letter and event tables once a second'), body);
  const follower = new Follower('/v1/ops/stream', {
    onState: (state, problem) => {
      live.set(state, problem);
      if (state === 'refused') body.textContent = `The operations view needs an agent or ops:read token (${problem.message}).`;
    },
    events: ['ops'],
    // Re-drawn only when something but the reading time changed, so focus and reading
    // position stay put while nothing moves.
    onEvent: ({ data }) => {
      const key = JSON.stringify({ ...data, read_at: null });
      if (key === shownKey) return;
      shownKey = key;
      body.replaceChildren(opsView(data));
    },
  });
  return () => follower.stop();
}

function opsView(view) {
  const backlog = view.outbox.backlog;
  const outbox = h('section', { class: 'card', id: 'outbox', 'aria-labelledby': 'outbox-title' },
    h('h2', { id: 'outbox-title' }, 'Outbox'),
    backlog
      ? h('dl', { class: 'kv' },
        h('dt', {}, 'Unpublished events'), h('dd', { class: 'metric', id: 'outbox-events' }, `${backlog.truncated ? '≥' : ''}${backlog.events}`),
        h('dt', {}, 'Streams waiting'), h('dd', {}, backlog.streams),
        h('dt', {}, 'Oldest waiting'), h('dd', {}, backlog.oldest ? `${backlog.oldest.age_secs} s (${backlog.oldest.stream_id} v${backlog.oldest.version})` : 'none'),
        h('dt', {}, 'Relay dead letters'), h('dd', {}, view.outbox.relay_dead_letters === null ? '—' : `${view.outbox.relay_dead_letters_truncated ? '≥' : ''}${view.outbox.relay_dead_letters}`))
      : h('p', {}, `Cannot read the outbox: ${view.outbox.error}`));
  const apps = view.applications.map((app) => {
    const letters = app.dead_letters;
    return h('section', { class: 'card', 'data-app': app.name, 'aria-labelledby': `app-${app.name}` },
      h('h2', { id: `app-${app.name}` }, app.name),
      app.error
        ? h('p', {}, `Lease table not readable: ${app.error}`)
        : h('dl', { class: 'kv' },
          h('dt', {}, 'Behind the tip'), h('dd', { class: app.max_millis_behind_latest > 0 ? 'behind' : '', 'data-metric': 'behind' }, app.max_millis_behind_latest === null ? '—' : `${app.max_millis_behind_latest} ms`),
          h('dt', {}, 'Dead letters'), h('dd', { class: letters.count > 0 ? 'behind' : '', 'data-metric': 'dead-letters' }, letters.count ?? '—')),
      app.shards.length
        ? h('div', { class: 'scroll' }, h('table', {},
          h('thead', {}, h('tr', {}, [['Shard', null], ['Owner', null], ['State', null], ['Behind', 'MillisBehindLatest at the owner\'s last renewal, ms'], ['Pending', 'records processed since the last checkpoint'], ['Checkpoint', null]]
            .map(([text, title]) => h('th', { scope: 'col', title }, text)))),
          h('tbody', {}, app.shards.map((s) => h('tr', {},
            h('td', { class: 'mono', title: s.shard_id }, s.shard_id.replace(/^shardId-0*(?=.)/, '')),
            h('td', {}, s.owner || '—'),
            h('td', {}, s.state),
            h('td', {}, s.progress ? s.progress.millis_behind_latest : '—'),
            h('td', {}, s.progress ? s.progress.records_since_checkpoint : '—'),
            h('td', { class: 'mono' }, s.checkpoint.length > 14 ? `…${s.checkpoint.slice(-12)}` : s.checkpoint))))))
        : null,
      letters.newest.length
        ? h('div', {}, h('h3', {}, 'Newest dead letters'),
          h('ul', {}, letters.newest.map((l) => h('li', { 'data-letter': l.partition_key },
            h('span', { class: 'mono' }, l.partition_key), `: ${l.error} (${l.attempts} attempts, ${time(l.failed_at)})`))))
        : null);
  });
  return h('div', {}, outbox, h('div', { class: 'apps' }, apps));
}

// ---------------------------------------------------------------------------------------------
// Routing: #/ (request), #/quotes, #/quotes/{id}, #/ops, #/sign-in.

let leave = null;

function go(hash) {
  if (location.hash === hash) route();
  else location.hash = hash;
}

function route() {
  if (leave) leave();
  leave = null;
  renderWho();
  const [path, query] = location.hash.replace(/^#/, '').split('?');
  const params = new URLSearchParams(query || '');
  let parts;
  try {
    parts = (path || '/').split('/').filter(Boolean).map(decodeURIComponent);
  } catch {
    parts = ['not-found'];
  }
  let page = 'request';
  if (parts[0] === 'sign-in') { page = 'sign-in'; signInPage(); }
  else if (parts[0] === 'quotes' && parts[1]) { page = 'quotes'; leave = quotePage(params, parts[1]); }
  else if (parts[0] === 'quotes') { page = 'quotes'; leave = quotesPage(params); }
  else if (parts[0] === 'ops') { page = 'ops'; leave = opsPage(); }
  else if (parts.length === 0) requestPage();
  else { page = null; show(h('h1', {}, 'No such page'), h('p', {}, h('a', { href: '#/' }, 'Request a quote'))); }
  for (const a of document.querySelectorAll('[data-nav]')) {
    if (a.dataset.nav === page) a.setAttribute('aria-current', 'page');
    else a.removeAttribute('aria-current');
  }
  const heading = main.querySelector('h1');
  document.title = heading ? `${heading.textContent} · Quotes` : 'Quotes';
}

window.addEventListener('hashchange', () => { route(); main.focus(); });
renderWho();
route();
