// Plugins: the example Rust plugin (plugin/mappers/example-rust, built by
// the Rust side with its real toolchain) is chosen, given its settings,
// uploaded and previewed over every user, and installed after
// confirmation, all with the keyboard; then rolled back, which hands the
// mapping back to the rules.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';
import { after, before, test } from 'node:test';

import { api, checkA11y, go, launch, screenshot, seed, session, signIn, tabTo } from '../lib/console.mjs';

const A = seed.a;
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** `GET /admin/v1/mapper` through the bearer API. */
async function mapper() {
  const r = await api(A.adminToken, 'GET', '/admin/v1/mapper');
  assert.equal(r.status, 200, r.text);
  return r.json;
}

test('a plugin is uploaded and installed with confirmation (keyboard alone), previewed, and rolled back', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, A.adminToken);
  // Installing takes the rules' grants away from everyone: the API answers
  // 409 with the preview, and the console asks for confirmation.
  s.allowRefusals([409]);
  await go(page, 'Plugins');
  const name = basename(seed.plugin.path);
  // Chosen, given its settings and uploaded with the keyboard alone. The
  // browser hands the file chooser to the test only once it is told to,
  // which takes a round trip of its own: asked for before the key press.
  const choosing = page.waitForEvent('filechooser');
  await tabTo(page, page.getByLabel('Plugin component (.wasm)'));
  await page.keyboard.press('Space');
  const chooser = await choosing;
  await chooser.setFiles(seed.plugin.path);
  await tabTo(page, page.getByLabel('Settings (JSON object, optional)'));
  await page.keyboard.type(JSON.stringify(JSON.parse(readFileSync(seed.plugin.settings, 'utf8'))));
  await tabTo(page, page.getByRole('button', { name: 'Upload', exact: true }));
  await page.keyboard.press('Enter');
  const preview = page.getByRole('region', { name: `Preview of ${name}` });
  await preview.getByRole('heading', { name: 'What installing it would change' }).waitFor();
  // Every seeded user was run through the plugin.
  const users = preview.getByRole('term').filter({ hasText: /^Users$/ }).locator('xpath=following-sibling::dd[1]');
  assert.equal(await users.textContent(), String(A.users.length));
  const who = preview.getByRole('table', { name: 'Who gains and who loses what' });
  const ann = who.getByRole('row').filter({ has: page.getByRole('link', { name: A.learner.userName }) });
  await ann.getByText('+ learning path Negotiation Basics').waitFor();
  assert.equal((await mapper()).active, false, 'the preview installed the plugin');
  await checkA11y(page, 'the plugin preview');
  await screenshot(page, 'plugins', { top: page.getByRole('button', { name: 'Upload', exact: true }) });

  await tabTo(page, page.getByRole('button', { name: 'Install', exact: true }));
  await page.keyboard.press('Enter');
  const install = page.getByRole('dialog', { name: `Confirm: install ${name}` });
  await tabTo(page, install.getByRole('button', { name: 'Confirm' }), { back: true, max: 3 });
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: /^Plugin version \d+ is in force/ }).waitFor();
  const inForce = page.getByRole('region', { name: 'Plugin in force' });
  await inForce.getByText('active', { exact: true }).waitFor();
  let m = await mapper();
  assert.equal(m.active, true, JSON.stringify(m));

  await inForce.getByRole('button', { name: 'Roll back' }).click();
  const dialog = page.getByRole('dialog', { name: 'Confirm: roll back the plugin' });
  // The rollback may or may not take enough away to ask; confirm when it does.
  const done = page.getByRole('status').filter({ hasText: /^Rolled back/ });
  await dialog.or(done).first().waitFor();
  if (await dialog.isVisible()) await dialog.getByRole('button', { name: 'Confirm' }).click();
  await done.waitFor();
  await inForce.getByText(/the rules map this tenant's users/).waitFor();
  m = await mapper();
  assert.equal(m.active, false, JSON.stringify(m));
  s.assertClean();
  await s.close();
});
