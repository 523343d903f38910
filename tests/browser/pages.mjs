// The web pages in a real browser: Debian's Chromium, headless, driven by Playwright.
//
// Started by services/quotes/tests/browser.rs, which runs the platform on the emulators and
// passes, as variables:
//   BASE_URL        the event-source to test (its pages and API)
//   CUSTOMER_TOKEN  a customer's token; CUSTOMER its id
//   AGENT_TOKEN     an agent's token
//   POISON_QUOTE    a quote whose request fulfillment dead-lettered
//   STAGED_APP      an application whose lease reports 4200 ms behind the tip
//   SCREENSHOTS     where screenshots go (test artifacts)
//   CHROMIUM        the browser (default /usr/bin/chromium)
//   DEV_SIGN_IN     `works` when the platform runs embedded (default: expect it refused)
//   QUOTES          quotes requested through the form (default 5)
// It prints one line `RESULT {json}` with what it measured, and exits non-zero on any failure.

import { chromium } from 'playwright-core';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const BASE = env('BASE_URL');
const CUSTOMER = env('CUSTOMER');
const CUSTOMER_TOKEN = env('CUSTOMER_TOKEN');
const AGENT_TOKEN = env('AGENT_TOKEN');
const POISON_QUOTE = env('POISON_QUOTE');
const STAGED_APP = env('STAGED_APP');
const SCREENSHOTS = env('SCREENSHOTS');
const QUOTES = Number(process.env.QUOTES || 5);
mkdirSync(SCREENSHOTS, { recursive: true });

const LONG = 90_000; // a quote on the emulators is priced in seconds; leave room for a slow CI

const step = (text) => console.log(`[browser] ${text}`);
const shot = (page, name) => page.screenshot({ path: join(SCREENSHOTS, `${name}.png`), fullPage: true });

async function api(path, token, init = {}) {
  const response = await fetch(`${BASE}${path}`, {
    ...init,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...(init.headers || {}) },
  });
  const body = await response.json();
  return { status: response.status, body };
}

const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor((sorted.length - 1) / 2)] : null;
};

// Pauses live updates as soon as the quote's stream is open; while paused nothing reaches the
// page although the quote is priced; resuming brings every event, each once. False when the
// quote was decided before the pause could be clicked (nothing to test then).
async function pausedWhileItIsPriced(page, quoteId) {
  await page.locator('.live[data-state="live"], .live[data-state="ended"]').waitFor();
  const pause = page.locator('#pause');
  if (await pause.isDisabled()) return false;
  await pause.click();
  await page.locator('.live[data-state="paused"]').waitFor();
  const shownWhenPaused = await page.locator('#timeline li').count();
  const deadline = Date.now() + LONG;
  for (;;) {
    const { body } = await api(`/v1/quotes/${quoteId}`, CUSTOMER_TOKEN);
    if (body.status !== 'pending') break;
    assert.ok(Date.now() < deadline, 'the quote was not priced');
    await new Promise((resolve) => setTimeout(resolve, 200));
  }
  await new Promise((resolve) => setTimeout(resolve, 500));
  assert.equal(await page.locator('#timeline li').count(), shownWhenPaused, 'events arrived while paused');
  assert.equal(await pause.getAttribute('aria-pressed'), 'true');
  await pause.click();
  await page.locator('.live[data-state="ended"]').waitFor({ timeout: LONG });
  const versions = await page.$$eval('#timeline li', (lis) => lis.map((li) => Number(li.dataset.version)));
  assert.deepEqual(versions, [1, 2, 3, 4], 'resuming brings every event once');
  return shownWhenPaused < 4;
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'],
  headless: true,
});
const result = {};
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const page = await context.newPage();
try {
  const failures = [];
  page.on('pageerror', (err) => failures.push(`page error: ${err.message}`));
  // Chromium logs every 4xx answer as an error; the refusals the test provokes are expected.
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !msg.text().startsWith('Failed to load resource')) failures.push(`console: ${msg.text()}`);
  });
  page.on('response', (response) => {
    if (response.status() === 404) failures.push(`404: ${response.url()}`);
  });

  // Every byte the pages need (first load, uncompressed): the budget is 150 KB over the wire.
  const sizes = new Map();
  page.on('response', async (response) => {
    const url = new URL(response.url());
    if (url.pathname === '/' || url.pathname === '/docs' || url.pathname.startsWith('/assets/')) {
      const length = (await response.body().catch(() => Buffer.alloc(0))).length;
      sizes.set(url.pathname, Math.max(length, sizes.get(url.pathname) || 0));
    }
  });

  await page.goto(`${BASE}/#/sign-in`);
  if (process.env.DEV_SIGN_IN === 'works') {
    step('the development sign-in (embedded) mints a token for the chosen customer');
    await page.locator('#dev-customer').fill(CUSTOMER);
    await page.locator('#dev-sign-in').click();
  } else {
    step('the development sign-in is refused on AWS; sign in with a pasted token');
    await page.locator('#dev-sign-in').click();
    await page.locator('#sign-in-problem', { hasText: 'only when the platform runs embedded' }).waitFor();
    await page.locator('#token').fill(CUSTOMER_TOKEN);
    await page.getByRole('button', { name: 'Use this token' }).click();
  }
  await page.locator('#who', { hasText: `Signed in as ${CUSTOMER}` }).waitFor();

  step('every control of the form has a label; the skip link comes first');
  await page.locator('#quote-form').waitFor();
  const unlabelled = await page.$$eval('#quote-form input, #quote-form select, #quote-form textarea',
    (els) => els.filter((el) => el.labels.length === 0).map((el) => el.name || el.id));
  assert.deepEqual(unlabelled, [], 'controls without a label');
  await page.reload();
  await page.locator('#quote-form').waitFor();
  await page.keyboard.press('Tab');
  assert.equal(await page.evaluate(() => document.activeElement.className), 'skip');

  step('a bad VIN gets the API\'s reason inline, on the field');
  await page.locator('#f-vehicles-0-vin').fill('BADVIN');
  await page.locator('#submit-quote').click();
  const vinError = page.locator('#f-vehicles-0-vin-error');
  await vinError.filter({ hasText: '17 characters' }).waitFor();
  assert.equal(await page.locator('#f-vehicles-0-vin').getAttribute('aria-invalid'), 'true');
  assert.equal(await page.evaluate(() => document.activeElement.id), 'f-vehicles-0-vin');
  assert.equal(await page.locator('#form-problem').innerText(), 'The request has invalid fields\n1 field to correct, marked below.');
  await shot(page, 'request-inline-error');

  step(`${QUOTES} quotes through the form, each watched until priced without a reload`);
  const latencies = [];
  const quoteIds = [];
  for (let n = 0; n < QUOTES; n++) {
    if (n > 0) await page.goto(`${BASE}/#/`);
    await page.locator('#f-vehicles-0-vin').fill('1HGCM82633A004352');
    await page.evaluate(() => { window.notReloaded = true; });
    await page.locator('#submit-quote').click();
    await page.waitForURL(/#\/quotes\/[0-9a-f-]{36}$/);
    const quoteId = decodeURIComponent(new URL(page.url()).hash.split('/').pop());
    quoteIds.push(quoteId);
    // The second quote is paused while it is priced (its events are not timed).
    const paused = n === 1 && await pausedWhileItIsPriced(page, quoteId);
    if (paused) result.paused_and_resumed = true;
    await page.locator('#premium').waitFor({ timeout: LONG });
    await page.locator('#summary [data-status="quoted"]').waitFor();
    assert.equal(await page.evaluate(() => window.notReloaded), true, 'the page reloaded');
    assert.equal(await page.locator('#timeline li').count(), 4);
    // Commit to page: when the page showed each event recorded after its stream opened.
    const shown = await page.$$eval('#timeline li', (lis) => lis.map((li) => ({
      version: Number(li.dataset.version), shownAt: Number(li.dataset.shownAt),
    })));
    const openedAt = Number(await page.locator('#timeline').getAttribute('data-opened-at'));
    const { body } = await api(`/v1/quotes/${quoteId}/events`, CUSTOMER_TOKEN);
    for (const event of body.events) {
      const committed = Date.parse(event.recorded_at);
      const on = shown.find((s) => s.version === event.version);
      if (on && committed > openedAt && !paused) latencies.push(on.shownAt - committed);
    }
    if (n === 0) await shot(page, 'quote-live');
  }
  result.commit_to_page_ms = { samples: latencies.length, p50: median(latencies), max: Math.max(...latencies) };
  // Embedded, a quote is priced in milliseconds, before its page opens the stream.
  if (process.env.DEV_SIGN_IN !== 'works') {
    assert.ok(latencies.length > 0, 'no event arrived while a quote page was open');
  }

  step('time travel shows the quote as it stood at version 1');
  await page.evaluate(() => {
    const slider = document.getElementById('travel');
    slider.value = '1';
    slider.dispatchEvent(new Event('input'));
  });
  await page.locator('#travel-version', { hasText: 'version 1 of 4' }).waitFor();
  await page.locator('#travel-state [data-status="pending"]').waitFor();
  await shot(page, 'quote-time-travel');

  step('a dropped stream resumes after its last event: no gap, no repeat');
  const lastIds = [];
  let drops = 0;
  await page.route('**/v1/quotes/*/stream', async (route) => {
    lastIds.push(route.request().headers()['last-event-id'] || null);
    if (drops++ > 0) return route.continue();
    // The first connection ends after two events, before the outcome.
    const response = await route.fetch();
    const text = await response.text();
    const blocks = text.split('\n\n').filter((b) => b.includes('data:'));
    await route.fulfill({ status: 200, headers: { 'content-type': 'text/event-stream' }, body: `${blocks.slice(0, 2).join('\n\n')}\n\n` });
  });
  await page.goto(`${BASE}/#/quotes/${quoteIds[0]}`);
  await page.locator('#premium').waitFor({ timeout: LONG });
  await page.locator('.live[data-state="ended"]').waitFor();
  const versions = await page.$$eval('#timeline li', (lis) => lis.map((li) => Number(li.dataset.version)));
  assert.deepEqual(versions, [1, 2, 3, 4]);
  assert.deepEqual(lastIds.slice(0, 2), [null, '2'], 'the second connection resumes after event 2');
  await page.unroute('**/v1/quotes/*/stream');

  step('my quotes: newest first, a new quote appears and is priced live');
  await page.goto(`${BASE}/#/quotes`);
  await page.locator(`#quotes tr[data-quote="${quoteIds[QUOTES - 1]}"]`).waitFor();
  const { status: postStatus, body: accepted } = await api('/v1/quotes', CUSTOMER_TOKEN, {
    method: 'POST',
    body: JSON.stringify({
      customer_id: CUSTOMER,
      contact: { email: 'ana@example.com' },
      vehicles: [{ vin: '1HGCM82633A004352', annual_mileage: 8000, garaging_zip: '23220', use: 'pleasure' }],
      drivers: [{ first_name: 'Ana', last_name: 'Diaz', date_of_birth: '1988-03-14', license_number: 'T12345678', license_state: 'VA', first_licensed: '2006-05-01' }],
      coverage: { liability_limit: '50/100/50', collision_deductible: 1000, comprehensive_deductible: 1000 },
    }),
  });
  assert.equal(postStatus, 202, JSON.stringify(accepted));
  const newRow = page.locator(`#quotes tbody tr:first-child[data-quote="${accepted.quote_id}"]`);
  await newRow.waitFor({ timeout: LONG });
  await newRow.locator('[data-status="quoted"]').waitFor({ timeout: LONG });
  assert.ok(await page.locator('#quotes tbody tr').count() >= QUOTES + 1);
  await shot(page, 'my-quotes');

  step('operations: a customer is refused; an agent sees lag and a dead letter');
  await page.goto(`${BASE}/#/ops`);
  await page.locator('.live[data-state="refused"]').waitFor();
  await page.evaluate((token) => sessionStorage.setItem('quotes.token', token), AGENT_TOKEN);
  await page.goto(`${BASE}/#/sign-in`);
  await page.goto(`${BASE}/#/ops`);
  await page.locator(`[data-app="${STAGED_APP}"] [data-metric="behind"]`, { hasText: '4200 ms' }).waitFor({ timeout: LONG });
  await page.locator(`[data-app="fulfillment"] [data-letter="quote#${POISON_QUOTE}"]`).first().waitFor({ timeout: LONG });
  const letters = Number(await page.locator('[data-app="fulfillment"] [data-metric="dead-letters"]').textContent());
  assert.ok(letters >= 1, `fulfillment shows ${letters} dead letters`);
  await page.locator('#outbox-events').waitFor();
  await shot(page, 'operations');

  step('the API reference works from this server alone');
  await page.goto(`${BASE}/docs`);
  const health = page.locator('section.card', { hasText: '/healthz' }).first();
  await health.waitFor();
  await health.getByRole('button', { name: 'Send GET' }).click();
  await health.locator('pre', { hasText: '200' }).waitFor();
  await shot(page, 'api-reference');

  step('on a small phone (320 px): no page scrolls sideways');
  const phone = await browser.newContext({ viewport: { width: 320, height: 640 }, isMobile: true, hasTouch: true });
  const small = await phone.newPage();
  const sideways = () => small.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  await small.goto(`${BASE}/#/sign-in`);
  await small.evaluate((token) => sessionStorage.setItem('quotes.token', token), CUSTOMER_TOKEN);
  await small.goto(`${BASE}/#/`);
  await small.locator('#quote-form').waitFor();
  assert.ok(await sideways() <= 0, 'the request page is wider than a phone');
  await small.goto(`${BASE}/#/quotes/${quoteIds[0]}`);
  await small.locator('#premium').waitFor({ timeout: LONG });
  assert.ok(await sideways() <= 0, 'the quote page is wider than a phone');
  await shot(small, 'quote-phone');
  await small.evaluate((token) => sessionStorage.setItem('quotes.token', token), AGENT_TOKEN);
  await small.goto(`${BASE}/#/sign-in`);
  await small.goto(`${BASE}/#/ops`);
  await small.locator('#outbox-events').waitFor({ timeout: LONG });
  assert.ok(await sideways() <= 0, 'the operations page is wider than a phone');
  await shot(small, 'operations-phone');
  await phone.close();

  const bytes = [...sizes.values()].reduce((a, b) => a + b, 0);
  result.page_bytes = bytes;
  result.files = Object.fromEntries(sizes);
  assert.ok(bytes > 0 && bytes < 150 * 1024, `the pages weigh ${bytes} bytes`);
  assert.deepEqual(failures, [], 'errors in the page');
  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (err) {
  // What the page showed when the test failed.
  await shot(page, 'failure').catch(() => {});
  throw err;
} finally {
  await browser.close();
}
