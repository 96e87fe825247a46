// Signing in: a wrong token is refused with a message, the right one (typed
// with the keyboard alone) opens the overview, the token is never kept in
// the URL or the page, and signing out ends the session.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { checkA11y, launch, pageFetch, screenshot, seed, session, signIn, tabTo } from '../lib/console.mjs';

let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

test('a wrong admin token is refused with a visible message', async () => {
  const s = await session(browser);
  s.allowRefusals([401]);
  const { page } = s;
  await page.goto('/admin');
  await page.getByLabel('Admin token').fill(`${seed.a.adminToken}-wrong`);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('alert').filter({ hasText: /refused/i }).waitFor();
  assert.equal(await page.getByRole('button', { name: 'Sign out' }).count(), 0, 'signed in with a wrong token');
  assert.equal((await pageFetch(page, '/admin/v1/overview')).status, 401);
  await checkA11y(page, 'the sign-in page with its error');
  await screenshot(page, 'sign-in');
  s.assertClean();
  await s.close();
});

test('signing in with the keyboard alone opens the overview; the token is kept nowhere in the page', async () => {
  const s = await session(browser);
  // Before sign-in the console asks whether a session exists (401).
  const { page } = s;
  await signIn(s, seed.a.adminToken, { keyboard: true });
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  assert.ok(!page.url().includes(seed.a.adminToken), `the token is in the URL ${page.url()}`);
  const html = await page.content();
  assert.ok(!html.includes(seed.a.adminToken), 'the token is in the page');
  const stored = await page.evaluate(() => JSON.stringify({ ...localStorage }) + JSON.stringify({ ...sessionStorage }));
  assert.ok(!stored.includes(seed.a.adminToken), 'the token is in web storage');
  const cookies = await s.context.cookies();
  const cookie = cookies.find((c) => c.name === 'scim_admin');
  assert.ok(cookie, `no session cookie: ${JSON.stringify(cookies)}`);
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
  assert.equal(cookie.path, '/admin');
  assert.ok(!cookie.value.includes(seed.a.adminToken));
  assert.equal(await page.evaluate(() => document.cookie), '', 'the session cookie is readable by script');
  s.assertClean();
  await s.close();
});

test('the overview shows the last 24 hours, the outbox, the mapper and the latest failures, linked to their detail', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, seed.a.adminToken);
  await page.getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
  await page.getByRole('region', { name: 'Requests, last 24 hours' }).waitFor();
  await page.getByRole('region', { name: 'Outbox' }).getByText('Backlog').waitFor();
  await page.getByRole('region', { name: 'Mapper in force' }).getByRole('definition').filter({ hasText: /^Rules/ }).waitFor();
  const latest = page.getByRole('region', { name: 'Latest failures' });
  const uniqueness = latest.getByRole('row').filter({ hasText: 'uniqueness' });
  await uniqueness.waitFor();
  await checkA11y(page, 'the overview');
  await screenshot(page, 'overview');
  await uniqueness.getByRole('link').click();
  await page.getByRole('heading', { level: 1, name: /^Event \d+: create User$/ }).waitFor();
  s.assertClean();
  await s.close();
});

test('signing out ends the session', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, seed.a.adminToken);
  await tabTo(page, page.getByRole('button', { name: 'Sign out' }));
  await page.keyboard.press('Enter');
  await page.getByLabel('Admin token').waitFor();
  s.allowRefusals([401]);
  assert.equal((await pageFetch(page, '/admin/v1/overview')).status, 401);
  s.assertClean();
  await s.close();
});
