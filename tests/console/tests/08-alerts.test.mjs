// Alerts: a webhook for a local receiver is added (its signing secret
// shown once), a test alert reaches the receiver signed with that secret,
// the delivery log says it was delivered, and the webhook is deleted after
// confirmation.

import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { createServer } from 'node:http';
import { after, before, test } from 'node:test';

import { api, checkA11y, go, launch, screenshot, seed, session, signIn } from '../lib/console.mjs';

const A = seed.a;
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** A receiver on a free loopback port; `next()` resolves with the next request it gets. */
async function receiver() {
  const waiting = [];
  const got = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      res.writeHead(204);
      res.end();
      const r = { headers: req.headers, body: Buffer.concat(chunks).toString('utf8') };
      const w = waiting.shift();
      if (w) w(r);
      else got.push(r);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${server.address().port}/lms-alerts`,
    next: () => (got.length ? Promise.resolve(got.shift()) : new Promise((resolve) => waiting.push(resolve))),
    close: () => new Promise((resolve) => server.close(resolve)),
  };
}

/** The tenant's deliveries through the bearer API, until `done` holds for them (the worker sends on its own time). */
async function deliveriesWhen(done) {
  const deadline = Date.now() + 30000;
  for (;;) {
    const r = await api(A.adminToken, 'GET', '/admin/v1/alerts/deliveries?limit=10');
    assert.equal(r.status, 200, r.text);
    if (done(r.json.deliveries)) return r.json.deliveries;
    assert.ok(Date.now() < deadline, `deliveries never settled: ${r.text}`);
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
}

test('a webhook is added, a signed test alert reaches it and is logged as delivered, and it is deleted', async () => {
  const hook = await receiver();
  const s = await session(browser);
  const { page } = s;
  try {
    await signIn(s, A.adminToken);
    await go(page, 'Alerts');
    await page.getByLabel('Webhook URL').fill(hook.url);
    await page.getByRole('button', { name: 'Add webhook' }).click();
    await page.getByRole('status').filter({ hasText: `Added the webhook ${hook.url}.` }).waitFor();
    const secret = await page.getByRole('group', { name: 'Signing secret' }).getByLabel(`Signing secret for ${hook.url}`).inputValue();
    assert.ok(secret.length >= 32, `a short secret: ${secret}`);

    const row = page.getByRole('table', { name: 'Webhooks of this tenant' }).getByRole('row').filter({ hasText: hook.url });
    await row.getByRole('button', { name: `Send test to ${hook.url}` }).click();
    await page.getByRole('status').filter({ hasText: /A test alert is queued/ }).waitFor();
    const got = await hook.next();
    const [, t, v1] = got.headers['x-scim-signature'].match(/^t=(\d+),v1=([0-9a-f]{64})$/);
    assert.equal(v1, createHmac('sha256', secret).update(`${t}.${got.body}`).digest('hex'), 'the signature does not verify');
    const alert = JSON.parse(got.body);
    assert.equal(alert.kind, 'test', got.body);
    assert.equal(alert.tenant, A.tenant, got.body);
    assert.equal(alert.id, got.headers['x-scim-event-id'], 'the event id header and body differ');
    await deliveriesWhen((list) => list.some((d) => d.kind === 'test' && d.state === 'delivered'));
    await page.getByRole('button', { name: 'Refresh' }).click();
    const log = page.getByRole('table', { name: 'Alert deliveries' });
    await log.getByRole('row').filter({ hasText: 'test' }).filter({ hasText: 'delivered' }).first().waitFor();
    await checkA11y(page, 'the alerts with a new webhook');

    // The secret was shown once: not after coming back.
    await go(page, 'Settings');
    await go(page, 'Alerts');
    await row.waitFor();
    await log.getByRole('row').filter({ hasText: 'delivered' }).first().waitFor();
    assert.equal(await page.getByRole('group', { name: 'Signing secret' }).count(), 0, 'the secret is shown again');
    await checkA11y(page, 'the alerts');
    await screenshot(page, 'alerts', { bottom: page.getByRole('region', { name: 'Delivery log' }) });
    await row.getByRole('button', { name: `Delete webhook ${hook.url}` }).click();
    await page.getByRole('dialog', { name: 'Delete this webhook?' }).getByRole('button', { name: 'Confirm' }).click();
    await page.getByRole('status').filter({ hasText: `Deleted the webhook ${hook.url}.` }).waitFor();
    await row.waitFor({ state: 'detached' });
    const left = await api(A.adminToken, 'GET', '/admin/v1/alerts');
    assert.deepEqual(left.json.webhooks.filter((w) => w.url === hook.url), []);
    s.assertClean();
  } finally {
    await s.close();
    await hook.close();
  }
});
