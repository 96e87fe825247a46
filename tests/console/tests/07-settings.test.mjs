// Settings: a learning path added to the catalogue (the list updates, the
// API has it).

import assert from 'node:assert/strict';
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

test('a learning path is added to the catalogue', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, A.adminToken);
  await go(page, 'Settings');
  const catalogue = page.getByRole('region', { name: 'Catalogue' });
  await catalogue.getByRole('table', { name: 'Learning paths' }).getByRole('cell', { name: 'Sales Onboarding' }).waitFor();
  await catalogue.getByLabel('Kind').selectOption({ label: 'Learning path' });
  await catalogue.getByLabel('Name').fill('Safety Basics');
  await catalogue.getByRole('button', { name: 'Add' }).click();
  await page.getByRole('status').filter({ hasText: 'Added the learning path “Safety Basics” to the catalogue.' }).waitFor();
  await catalogue.getByRole('table', { name: 'Learning paths' }).getByRole('cell', { name: 'Safety Basics' }).waitFor();
  const r = await api(A.adminToken, 'GET', '/admin/v1/catalogue');
  assert.ok(r.json.learningPaths.includes('Safety Basics'), r.text);
  await page.getByRole('region', { name: 'Policy' }).getByLabel(/Confirmation threshold/).waitFor();
  await checkA11y(page, 'the settings');
  await screenshot(page, 'settings');
  s.assertClean();
  await s.close();
});
