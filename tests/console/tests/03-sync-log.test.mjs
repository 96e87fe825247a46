// The sync log: find a failed event with the "Failed only" filter and open
// its detail with the keyboard alone; read a change's old and new values
// and the other events of its request; page through, export as CSV.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { checkA11y, go, launch, pageFetch, screenshot, seed, session, signIn, tabTo } from '../lib/console.mjs';

const A = seed.a;
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

async function signedIn(options) {
  const s = await session(browser);
  await signIn(s, A.adminToken, options);
  return s;
}

/** A row of `table` whose cells include each of `cells` exactly. */
function rowWith(page, table, ...cells) {
  let row = table.getByRole('row');
  for (const c of cells) row = row.filter({ has: page.getByRole('cell', { name: c, exact: true }) });
  return row;
}

test('a failed event is found with "Failed only" and opened, with the keyboard alone', async () => {
  const s = await signedIn({ keyboard: true });
  const { page } = s;
  // The overview's heading has the focus; the navigation is before it.
  await tabTo(page, page.getByRole('link', { name: 'Sync log' }), { back: true });
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Sync log' }).waitFor();
  const failedOnly = page.getByLabel('Failed only');
  await tabTo(page, failedOnly);
  await page.keyboard.press('Space');
  assert.equal(await failedOnly.isChecked(), true);
  await tabTo(page, page.getByRole('button', { name: 'Filter', exact: true }));
  await page.keyboard.press('Enter');
  const n = A.failures.length;
  await page.getByText(`Showing ${n} event${n === 1 ? '' : 's'}.`).waitFor();
  const table = page.getByRole('table', { name: 'Sync log events' });
  assert.equal(await rowWith(page, table, 'success').count(), 0, 'a successful event under "Failed only"');
  // Ann's refused PATCH: its time links to the detail.
  const refused = A.failures.find((e) => e.resourceId === A.learner.id);
  assert.ok(refused, `no failure of Ann's among ${JSON.stringify(A.failures)}`);
  const link = rowWith(page, table, refused.reason).getByRole('link');
  await tabTo(page, link);
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: `Event ${refused.id}: update User` }).waitFor();
  const summary = page.getByRole('region', { name: 'Summary' });
  await summary.getByText(refused.detail).waitFor();
  await summary.getByText(refused.reason, { exact: true }).waitFor();
  await page.getByRole('region', { name: 'Changes' }).getByText('This event records no attribute changes.').waitFor();
  const same = page.getByRole('region', { name: 'Events of the same request' });
  await same.getByText(refused.requestId, { exact: true }).waitFor();
  await rowWith(page, same.getByRole('table'), refused.reason).waitFor();
  await checkA11y(page, 'a failed event');
  // Back to the filtered list, still with the keyboard: the link follows
  // the heading, which has the focus.
  await tabTo(page, page.getByRole('link', { name: /^Back to the (sync log|event list)$/ }));
  await page.keyboard.press('Enter');
  await page.getByText(`Showing ${n} event${n === 1 ? '' : 's'}.`).waitFor();
  assert.equal(await page.getByLabel('Failed only').isChecked(), true);
  s.assertClean();
  await s.close();
});

test("a change's old and new values, and every event of its request", async () => {
  const s = await signedIn();
  const { page } = s;
  await go(page, 'Sync log');
  await page.getByRole('table', { name: 'Sync log events' }).getByRole('row').nth(1).waitFor();
  await checkA11y(page, 'the sync log');
  await screenshot(page, 'sync-log');
  // Dan, a teacher given `admin` by hand, became Head Teacher: the same
  // request updated the user and reported the role mismatch.
  await page.getByLabel('User (id or name)').fill(A.mismatch.userName);
  await page.getByRole('button', { name: 'Filter', exact: true }).click();
  const table = page.getByRole('table', { name: 'Sync log events' });
  const update = rowWith(page, table, 'update', 'User', 'success');
  await update.getByRole('link').click();
  await page.getByRole('heading', { level: 1, name: /^Event \d+: update User$/ }).waitFor();
  const title = page.getByRole('region', { name: 'Changes' }).getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'title' }) });
  await title.getByText('Teacher', { exact: false }).first().waitFor();
  await title.getByText('Head Teacher', { exact: false }).waitFor();
  const same = page.getByRole('region', { name: 'Events of the same request' }).getByRole('table');
  await rowWith(page, same, 'mismatch').waitFor();
  await checkA11y(page, 'an event with changes');
  await screenshot(page, 'event-detail');
  s.assertClean();
  await s.close();
});

test('the sync log pages through older events and exports CSV', async () => {
  const s = await signedIn();
  const { page } = s;
  await go(page, 'Sync log');
  const table = page.getByRole('table', { name: 'Sync log events' });
  await table.getByRole('row').nth(1).waitFor();
  const next = page.getByRole('button', { name: 'Next', exact: true });
  if (await next.isEnabled()) {
    const newest = await table.getByRole('row').nth(1).textContent();
    await next.click();
    await page.getByText(/\(older page\)/).waitFor();
    assert.notEqual(await table.getByRole('row').nth(1).textContent(), newest);
    await page.getByRole('button', { name: 'Previous', exact: true }).click();
    await page.getByText(/^Showing \d+ events?\.$/).waitFor();
  }
  const csv = page.getByRole('link', { name: 'Export CSV' });
  const href = await csv.getAttribute('href');
  assert.match(href, /format=csv/);
  const r = await pageFetch(page, href);
  assert.equal(r.status, 200, r.text);
  assert.match(r.text.split('\n')[0], /^id,time,action,resourceType,resourceId,resourceName,status,reason,detail,requestId,changeId/);
  assert.ok(r.text.includes(A.learner.userName), 'the CSV lacks the seeded users');
  s.assertClean();
  await s.close();
});
