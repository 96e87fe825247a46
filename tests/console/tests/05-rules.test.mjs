// Rules, with the keyboard alone: a new rule typed into the editor shows
// its line-precise error as it is typed, is fixed, previewed (who gains and
// who loses what), and applied after the confirmation the tenant's
// threshold asks for (Escape cancels it first); then the history's
// rollback restores the rules before.

import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';

import { api, checkA11y, focused, launch, screenshot, seed, session, signIn, tabTo } from '../lib/console.mjs';

const A = seed.a;
let browser;
before(async () => {
  browser = await launch();
});
after(async () => {
  await browser?.close();
});

/** The rules in force, through the bearer API. */
async function inForce() {
  const r = await api(A.adminToken, 'GET', '/admin/v1/mapping');
  assert.equal(r.status, 200, r.text);
  return r.json.current;
}

test('a rule is typed, its error shown and fixed, previewed and applied with confirmation, by keyboard alone', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, A.adminToken, { keyboard: true });
  // Above the threshold the API answers 409 with the preview, and the
  // console asks for confirmation.
  s.allowRefusals([409]);
  const before = await inForce();
  await tabTo(page, page.getByRole('link', { name: 'Rules', exact: true }), { back: true });
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { level: 1, name: 'Rules' }).waitFor();
  const editor = page.getByLabel('Rules document (TOML or JSON)');
  await page.getByText('No problems: 2 rules.').waitFor();
  assert.equal(await editor.inputValue(), before.document);

  // Engineers become instructors: Carol loses the learner role, more than
  // the 5% of learners the tenant lets go without confirmation. The regex
  // is first typed unclosed.
  await tabTo(page, editor);
  await page.keyboard.press('Control+End');
  await page.keyboard.type('\n[[rule]]\nname = "engineers"\ngrant.role = "instructor"\nwhen = { attribute = "department", regex = "(eng" }');
  const text = await editor.inputValue();
  const line = text.split('\n').findIndex((l) => l.includes('regex =')) + 1;
  const diagnostics = page.locator('#rules-diagnostics');
  const error = diagnostics.getByRole('listitem').filter({ hasText: `Line ${line}, column` }).filter({ hasText: /regular expression/ });
  await error.waitFor();
  assert.equal(await editor.getAttribute('aria-invalid'), 'true');
  await page.getByText(/1 error: nothing can be applied until it is fixed\./).waitFor();
  // Fixed: `(eng" }` becomes `(?i)eng.*" }`.
  assert.ok(await focused(editor), 'the editor lost the focus while checking');
  for (let i = 0; i < '(eng" }'.length; i++) await page.keyboard.press('Backspace');
  await page.keyboard.type('(?i)eng.*" }');
  await page.getByText('No problems: 3 rules.').waitFor();
  await error.waitFor({ state: 'detached' });
  assert.equal(await editor.getAttribute('aria-invalid'), 'false');

  // Preview: Carol gains instructor and loses learner; nothing applied.
  await tabTo(page, page.getByRole('button', { name: 'Preview', exact: true }));
  await page.keyboard.press('Enter');
  await page.getByRole('heading', { name: 'Preview of this document' }).waitFor();
  const who = page.getByRole('table', { name: 'Who gains and who loses what' });
  const carol = who.getByRole('row').filter({ has: page.getByRole('rowheader', { name: 'carol.diaz@acme.example' }) });
  await carol.getByText('+ role instructor').waitFor();
  await carol.getByText('− role learner').waitFor();
  assert.equal((await inForce()).version, before.version, 'the preview applied something');
  await checkA11y(page, 'the rules with a preview');
  await screenshot(page, 'rules', { top: page.getByText('No problems: 3 rules.') });

  // Apply: the confirmation opens on Cancel; Escape cancels.
  const apply = page.getByRole('button', { name: 'Apply', exact: true });
  await tabTo(page, apply);
  await page.keyboard.press('Enter');
  const dialog = page.getByRole('dialog', { name: 'Confirm: apply these rules' });
  await dialog.waitFor();
  await dialog.getByText(/above this tenant's threshold of 5%/).waitFor();
  assert.ok(await focused(dialog.getByRole('button', { name: 'Cancel' })), 'the dialog does not start on Cancel');
  await checkA11y(page, 'the apply confirmation');
  await page.keyboard.press('Escape');
  await dialog.waitFor({ state: 'detached' });
  await page.getByRole('status').filter({ hasText: 'Nothing was changed.' }).waitFor();
  assert.equal((await inForce()).version, before.version, 'applied although cancelled');

  // Again, confirmed: Shift+Tab from Cancel to Confirm, Enter.
  await tabTo(page, apply);
  await page.keyboard.press('Enter');
  await dialog.waitFor();
  await tabTo(page, dialog.getByRole('button', { name: 'Confirm' }), { back: true, max: 3 });
  await page.keyboard.press('Enter');
  await page.getByRole('status').filter({ hasText: /^Rules version \d+ are in force/ }).waitFor();
  const after = await inForce();
  assert.ok(after.version > before.version, `version ${after.version} after ${before.version}`);
  assert.match(after.document, /name = "engineers"/);
  s.assertClean();
  await s.close();
});

test('the history rolls back to the rules before, after confirmation', async () => {
  const s = await session(browser);
  const { page } = s;
  await signIn(s, A.adminToken);
  // Above the threshold the API answers 409 with the preview, and the
  // console asks for confirmation.
  s.allowRefusals([409]);
  await page.goto('/admin#/rules');
  const history = page.getByRole('region', { name: 'History' });
  await history.getByRole('table').getByRole('row').nth(2).waitFor();
  await history.getByRole('button', { name: 'Roll back' }).click();
  await page.getByRole('dialog', { name: 'Confirm: roll back to the previous rules' }).getByRole('button', { name: 'Confirm' }).click();
  await page.getByRole('status').filter({ hasText: /^Rolled back/ }).waitFor();
  await page.getByText('No problems: 2 rules.').waitFor();
  const current = await inForce();
  assert.equal(current.document, seed.rules, 'the rules before are not back');
  assert.doesNotMatch(await page.getByLabel('Rules document (TOML or JSON)').inputValue(), /engineers/);
  s.assertClean();
  await s.close();
});
