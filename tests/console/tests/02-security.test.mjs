// Refusals: tenant A's session never sees tenant B's data (through the UI
// and by fetch from the page), and a forged cross-site POST changes
// nothing, whether the forging page is same-site (another port of the same
// host: the cookie is sent, the CSRF check must refuse) or cross-site
// (another loopback address: SameSite=Strict keeps the cookie back).

import assert from 'node:assert/strict';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { api, go, launch, pageFetch, seed, session, signIn } from '../lib/console.mjs';

const A = seed.a;
const B = seed.b;
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** Tenant A signed in, refusals of the test's own requests allowed. */
async function signedInA() {
  const s = await session(browser);
  await signIn(s, A.adminToken);
  s.allowRefusals();
  return s;
}

test("tenant A's session cannot read tenant B's learner, events or catalogue", async () => {
  const s = await signedInA();
  const { page } = s;
  const b = B.learner.id;
  const failure = B.failures[0];
  assert.equal((await pageFetch(page, `/admin/v1/learners/${b}`)).status, 404);
  assert.equal((await pageFetch(page, `/admin/v1/learners/${b}/explain`)).status, 404);
  for (const query of [
    `user=${b}`,
    `user=${encodeURIComponent(B.learner.userName)}`,
    `request=${failure.requestId}`,
    `change=${failure.changeId}`,
  ]) {
    const r = await pageFetch(page, `/admin/v1/events?${query}`);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json.events, [], `events?${query} shows another tenant's events`);
  }
  const found = await pageFetch(page, `/admin/v1/learners?q=${encodeURIComponent('zara')}`);
  assert.equal(found.status, 200, found.text);
  assert.deepEqual(found.json.learners, []);
  const catalogue = await pageFetch(page, '/admin/v1/catalogue');
  assert.ok(!catalogue.text.includes('globex-only-role'), catalogue.text);
  // Writes to B's learner are refused too, with the session's CSRF token.
  const { csrf } = (await pageFetch(page, '/admin/v1/session')).json;
  const grant = await pageFetch(page, `/admin/v1/learners/${b}/roles`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify({ name: 'learner' }),
  });
  assert.equal(grant.status, 404, grant.text);
  const zara = await api(B.adminToken, 'GET', `/admin/v1/learners/${b}`);
  assert.equal(zara.status, 200, zara.text);
  assert.deepEqual(zara.json.roles.filter((r) => r.sources.includes('manual')), []);
  s.assertClean();
  await s.close();
});

test("tenant A's console shows none of tenant B's data when led to it", async () => {
  const s = await signedInA();
  const { page } = s;
  // Straight to B's learner and B's failed event by their ids.
  await page.goto(`/admin#/learners/${B.learner.id}`);
  await page.getByRole('alert').filter({ hasText: /no learner/i }).waitFor();
  await page.goto(`/admin#/events/${B.failures[0].id}`);
  await page.getByRole('heading', { level: 1, name: 'Event not found' }).waitFor();
  await page.getByRole('alert').filter({ hasText: /no event/i }).waitFor();
  // A link to B's change (as an alert carries) in A's sync log lists nothing.
  await page.goto(`/admin#/events?change=${B.failures[0].changeId}`);
  await page.getByRole('cell', { name: 'No events match these filters.' }).waitFor();
  // B's name in A's search and sync log finds nothing.
  await go(page, 'Learners');
  await page.getByLabel('Name, email or id').fill('zara');
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: 'No learner matches.' }).waitFor();
  await go(page, 'Sync log');
  await page.getByLabel('User (id or name)').fill(B.learner.userName);
  await page.keyboard.press('Enter');
  await page.getByRole('cell', { name: 'No events match these filters.' }).waitFor();
  assert.equal(await page.getByText(/zara|globex/i).count(), 0, "B's data is on A's page");
  // Tenant B, for contrast, sees its own learner where A saw nothing.
  const sb = await session(browser);
  await signIn(sb, B.adminToken);
  await sb.page.goto(`/admin#/learners/${B.learner.id}`);
  await sb.page.getByRole('heading', { level: 1 }).filter({ hasText: /zara/i }).waitFor();
  sb.assertClean();
  await sb.close();
  s.assertClean();
  await s.close();
});

/** Tenant A's catalogue of roles through the bearer API. */
async function roles() {
  const r = await api(A.adminToken, 'GET', '/admin/v1/catalogue');
  assert.equal(r.status, 200, r.text);
  return r.json.roles;
}

/**
 * An attacker's page on `host` (the HTML given by `body(target)`),
 * served until `close()`.
 */
async function attacker(host, body) {
  const server = createServer((req, res) => {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end(body(`${seed.url}/admin/v1/catalogue/roles`));
  });
  await new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, host, resolve);
  });
  return {
    url: `http://${host}:${server.address().port}/`,
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** A form that posts JSON-looking text/plain to the target as soon as it loads. */
const formPage = (name) => (target) => `<!doctype html><title>Win a prize</title>
<form id="f" method="POST" action="${target}" enctype="text/plain">
<input type="hidden" name='{"name":"${name}","x":"' value='"}'></form>
<script>document.getElementById('f').submit()</script>`;

/** A credentialed no-cors fetch to the target; the title says when it settled. */
const fetchPage = (name) => (target) => `<!doctype html><title>loading</title>
<script>
fetch(${JSON.stringify(target)}, {method: 'POST', mode: 'no-cors', credentials: 'include',
  headers: {'content-type': 'text/plain'}, body: JSON.stringify({name: ${JSON.stringify(name)}})})
  .then(() => { document.title = 'settled'; }, () => { document.title = 'settled'; });
</script>`;

for (const [site, host] of [
  ['same-site (another port of the same host)', '127.0.0.1'],
  ['cross-site (another address)', '127.0.0.2'],
]) {
  test(`a forged POST from a ${site} page changes nothing`, async () => {
    const s = await signedInA();
    const before = await roles();
    // The forging pages run in the signed-in browser, beside the console.
    const forged = await s.context.newPage();
    for (const [kind, page] of [
      ['form', formPage('Forged by form')],
      ['fetch', fetchPage('Forged by fetch')],
    ]) {
      const evil = await attacker(host, page);
      try {
        const answered = forged.waitForResponse((r) => r.url().endsWith('/admin/v1/catalogue/roles'));
        await forged.goto(evil.url);
        const r = await answered;
        // Refused before any handler: a foreign Origin (and, with the
        // cookie, no CSRF token).
        assert.equal(r.status(), 403, `${kind}: answered ${r.status()}`);
        // Same-site, the browser sends the session cookie along; cross-site,
        // SameSite=Strict keeps it back. (Chromium reports the sent headers
        // of the form's navigation; not those of a no-cors fetch.)
        if (kind === 'form') {
          const cookie = (await r.request().allHeaders()).cookie ?? '';
          if (host === '127.0.0.1') assert.match(cookie, /scim_admin=/, 'the same-site form went without the cookie');
          else assert.doesNotMatch(cookie, /scim_admin=/, 'the cross-site form carried the cookie');
        }
        if (kind === 'fetch') await forged.waitForFunction(() => document.title === 'settled');
      } finally {
        await evil.close();
      }
    }
    assert.deepEqual(await roles(), before, 'a forged POST changed the catalogue');
    s.assertClean();
    await s.close();
  });
}

test("a write with the session cookie but without the session's CSRF token is refused", async () => {
  const s = await signedInA();
  const before = await roles();
  const r = await pageFetch(s.page, '/admin/v1/catalogue/roles', {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'No CSRF token' }),
  });
  assert.equal(r.status, 403, r.text);
  assert.match(r.json.detail, /CSRF/);
  const wrong = await pageFetch(s.page, '/admin/v1/catalogue/roles', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': 'guessed' },
    body: JSON.stringify({ name: 'Guessed CSRF token' }),
  });
  assert.equal(wrong.status, 403, wrong.text);
  // Without any Origin (as a client that sends none would), the CSRF token
  // check alone refuses it.
  const cookie = (await s.context.cookies()).find((c) => c.name === 'scim_admin');
  const bare = await fetch(`${seed.url}/admin/v1/catalogue/roles`, {
    method: 'POST',
    headers: { cookie: `scim_admin=${cookie.value}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: 'No Origin, no CSRF token' }),
  });
  assert.equal(bare.status, 403, await bare.text());
  assert.deepEqual(await roles(), before);
  // The control: the same write with the session's token goes through.
  const { csrf } = (await pageFetch(s.page, '/admin/v1/session')).json;
  const ok = await pageFetch(s.page, '/admin/v1/catalogue/roles', {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-csrf-token': csrf },
    body: JSON.stringify({ name: 'With the CSRF token' }),
  });
  assert.equal(ok.status, 201, ok.text);
  assert.ok((await roles()).includes('With the CSRF token'));
  s.assertClean();
  await s.close();
});
